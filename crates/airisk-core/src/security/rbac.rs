//! Role-based access control: deny by default.
//!
//! Four roles and four permissions (the columns of the matrix below). Every finer action the
//! services perform maps onto exactly one of those permissions in [`Action::required_permission`],
//! the one table in code; [`Role::grants`] is the matrix. A role is allowed an action only if the
//! role grants the permission the action requires: there is no other path to "allowed".
//!
//! | Role     | create | approve | view | register_model |
//! |----------|--------|---------|------|----------------|
//! | admin    | yes    | yes     | yes  | yes            |
//! | analyst  | yes    | no      | yes  | no             |
//! | approver | no     | yes     | yes  | no             |
//! | viewer   | no     | no      | yes  | no             |
//!
//! Strings are parsed exactly: `"admin"` is a role, `"Admin"`, `" admin"` and `"root"` are
//! [`AuthorizationError::UnknownRole`], so a typo in a token or a configuration file denies rather
//! than guesses.

use std::fmt;
use std::str::FromStr;

/// Longest prefix of an unrecognised input echoed back in an error, so a hostile string cannot
/// flood a log line.
const ECHO_LIMIT: usize = 64;

/// A role held by a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Role {
    /// Everything, including model registration and key administration.
    Admin,
    /// Creates and changes governed objects (prompts, approval requests); cannot approve.
    Analyst,
    /// Reviews and decides approval requests; cannot create.
    Approver,
    /// Reads only.
    Viewer,
}

impl Role {
    /// Every role, in the order of the matrix.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Analyst, Role::Approver, Role::Viewer];

    /// The canonical lower-case name (`"admin"`, `"analyst"`, `"approver"`, `"viewer"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Approver => "approver",
            Role::Viewer => "viewer",
        }
    }

    /// The seed's matrix: whether this role holds `permission`.
    pub const fn grants(self, permission: Permission) -> bool {
        match self {
            Role::Admin => true,
            Role::Analyst => matches!(permission, Permission::Create | Permission::View),
            Role::Approver => matches!(permission, Permission::Approve | Permission::View),
            Role::Viewer => matches!(permission, Permission::View),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthorizationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| AuthorizationError::UnknownRole { input: echo(s) })
    }
}

/// The four permissions of the role matrix (its columns), and `shred` (admin only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Permission {
    /// Create or change governed objects.
    Create,
    /// Decide approval requests.
    Approve,
    /// Read.
    View,
    /// Register models; the admin-only column, which also carries other administrative actions.
    RegisterModel,
    /// Destroy a tenant's data keys (crypto-shredding): irreversible, so a permission of its own,
    /// granted to admin only.
    Shred,
}

impl Permission {
    /// Every permission, in the order of the matrix.
    pub const ALL: [Permission; 5] = [
        Permission::Create,
        Permission::Approve,
        Permission::View,
        Permission::RegisterModel,
        Permission::Shred,
    ];

    /// The canonical name (`"create"`, `"approve"`, `"view"`, `"register_model"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::Create => "create",
            Permission::Approve => "approve",
            Permission::View => "view",
            Permission::RegisterModel => "register_model",
            Permission::Shred => "shred",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operation a service performs on behalf of a principal.
///
/// Each action requires exactly one [`Permission`]; see [`Action::required_permission`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Action {
    /// Register a new model version (`model.register`).
    ModelRegister,
    /// Approve a model version (`model.approve`).
    ModelApprove,
    /// Reject a model version (`model.reject`).
    ModelReject,
    /// Ask for a deployment authorisation of an approved model (`model.authorize_deployment`).
    ModelAuthorizeDeployment,
    /// Read models and their versions (`model.view`).
    ModelView,
    /// Register a new prompt (`prompt.register`).
    PromptRegister,
    /// Add a new version to a prompt (`prompt.update`).
    PromptUpdate,
    /// Move a label such as `production` to an approved prompt version (`prompt.move_label`).
    PromptMoveLabel,
    /// Read prompts, versions, diffs and label history (`prompt.view`).
    PromptView,
    /// Open an approval request (`approval.request`).
    ApprovalRequest,
    /// Approve an approval request (`approval.approve`).
    ApprovalApprove,
    /// Reject an approval request (`approval.reject`).
    ApprovalReject,
    /// Cancel one's own approval request (`approval.cancel`).
    ApprovalCancel,
    /// Read approval requests (`approval.view`).
    ApprovalView,
    /// Append an application event to the audit ledger (`audit.append`).
    AuditAppend,
    /// Read audit entries, checkpoints and proofs (`audit.read`).
    AuditRead,
    /// Export a tenant's ledger (`audit.export`).
    AuditExport,
    /// Verify a tenant's ledger (`audit.verify`).
    AuditVerify,
    /// Sign a new checkpoint on demand (`audit.checkpoint`).
    AuditCheckpoint,
    /// Rotate or rewrap encryption keys (`keys.rotate`).
    KeyRotate,
    /// Destroy the tenant's data keys, erasing its sealed values (`tenant.shred`).
    TenantShred,
    /// Make a new data key for the tenant's new values (`keys.rotate_data_key`).
    KeysRotateDataKey,
    /// Destroy one data subject's data keys, erasing that person's sealed values
    /// (`tenant.shred_subject`).
    TenantShredSubject,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 23] = [
        Action::ModelRegister,
        Action::ModelApprove,
        Action::ModelReject,
        Action::ModelAuthorizeDeployment,
        Action::ModelView,
        Action::PromptRegister,
        Action::PromptUpdate,
        Action::PromptMoveLabel,
        Action::PromptView,
        Action::ApprovalRequest,
        Action::ApprovalApprove,
        Action::ApprovalReject,
        Action::ApprovalCancel,
        Action::ApprovalView,
        Action::AuditAppend,
        Action::AuditRead,
        Action::AuditExport,
        Action::AuditVerify,
        Action::AuditCheckpoint,
        Action::KeyRotate,
        Action::TenantShred,
        Action::KeysRotateDataKey,
        Action::TenantShredSubject,
    ];

    /// The canonical dotted name, e.g. `model.register`. This string is what audit records carry.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::ModelRegister => "model.register",
            Action::ModelApprove => "model.approve",
            Action::ModelReject => "model.reject",
            Action::ModelAuthorizeDeployment => "model.authorize_deployment",
            Action::ModelView => "model.view",
            Action::PromptRegister => "prompt.register",
            Action::PromptUpdate => "prompt.update",
            Action::PromptMoveLabel => "prompt.move_label",
            Action::PromptView => "prompt.view",
            Action::ApprovalRequest => "approval.request",
            Action::ApprovalApprove => "approval.approve",
            Action::ApprovalReject => "approval.reject",
            Action::ApprovalCancel => "approval.cancel",
            Action::ApprovalView => "approval.view",
            Action::AuditAppend => "audit.append",
            Action::AuditRead => "audit.read",
            Action::AuditExport => "audit.export",
            Action::AuditVerify => "audit.verify",
            Action::AuditCheckpoint => "audit.checkpoint",
            Action::KeyRotate => "keys.rotate",
            Action::TenantShred => "tenant.shred",
            Action::KeysRotateDataKey => "keys.rotate_data_key",
            Action::TenantShredSubject => "tenant.shred_subject",
        }
    }

    /// THE table: the one permission each action requires.
    ///
    /// Why some rows are as they are:
    /// * deployment authorisation and label moves need `create`, not `approve`: the human decision
    ///   was the approval request, which the workflow enforces (four eyes); executing the approved
    ///   change is the maker's step, and it fails without an approved request;
    /// * key rotation (of the keyring or of a tenant's data key) needs `register_model`, the matrix's
    ///   only admin-only column;
    /// * shredding a tenant or one data subject needs `shred`, admin only, on its own: it cannot
    ///   be undone;
    /// * audit append needs `create`: applications record their own events; reading, exporting and
    ///   verifying the ledger is `view`, so auditors need nothing more than a viewer.
    pub const fn required_permission(self) -> Permission {
        match self {
            Action::ModelRegister => Permission::RegisterModel,
            Action::ModelApprove | Action::ModelReject => Permission::Approve,
            Action::ModelAuthorizeDeployment => Permission::Create,
            Action::ModelView => Permission::View,
            Action::PromptRegister | Action::PromptUpdate | Action::PromptMoveLabel => {
                Permission::Create
            }
            Action::PromptView => Permission::View,
            Action::ApprovalRequest | Action::ApprovalCancel => Permission::Create,
            Action::ApprovalApprove | Action::ApprovalReject => Permission::Approve,
            Action::ApprovalView => Permission::View,
            Action::AuditAppend | Action::AuditCheckpoint => Permission::Create,
            Action::AuditRead | Action::AuditExport | Action::AuditVerify => Permission::View,
            Action::KeyRotate | Action::KeysRotateDataKey => Permission::RegisterModel,
            Action::TenantShred | Action::TenantShredSubject => Permission::Shred,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = AuthorizationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|action| action.as_str() == s)
            .ok_or_else(|| AuthorizationError::UnknownAction { input: echo(s) })
    }
}

/// Why an authorisation check denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizationError {
    /// The role does not hold the permission the action requires.
    #[error("role {role} may not perform {action} (requires the {required} permission)")]
    Denied {
        /// The caller's role.
        role: Role,
        /// What was attempted.
        action: Action,
        /// The permission the action requires.
        required: Permission,
    },
    /// The role string is not one of the canonical role names.
    #[error("unknown role {input:?}: expected one of admin, analyst, approver, viewer")]
    UnknownRole {
        /// The rejected input (at most 64 characters of it).
        input: String,
    },
    /// The action string is not one of the canonical action names.
    #[error("unknown action {input:?}")]
    UnknownAction {
        /// The rejected input (at most 64 characters of it).
        input: String,
    },
}

/// Checks permissions against the matrix. Stateless; cheap to copy.
#[derive(Debug, Clone, Copy, Default)]
pub struct RbacService;

impl RbacService {
    /// A new service.
    pub const fn new() -> Self {
        RbacService
    }

    /// Allows `action` for `role` only if the matrix grants the permission the action requires.
    ///
    /// # Errors
    /// [`AuthorizationError::Denied`] naming the role, the action and the missing permission.
    pub fn check_permission(&self, role: Role, action: Action) -> Result<(), AuthorizationError> {
        let required = action.required_permission();
        if role.grants(required) {
            Ok(())
        } else {
            Err(AuthorizationError::Denied {
                role,
                action,
                required,
            })
        }
    }

    /// Parses both strings exactly, then checks. Anything unrecognised is denied.
    ///
    /// # Errors
    /// [`AuthorizationError::UnknownRole`], [`AuthorizationError::UnknownAction`] or
    /// [`AuthorizationError::Denied`].
    pub fn check_permission_str(&self, role: &str, action: &str) -> Result<(), AuthorizationError> {
        let role: Role = role.parse()?;
        let action: Action = action.parse()?;
        self.check_permission(role, action)
    }
}

fn echo(input: &str) -> String {
    input.chars().take(ECHO_LIMIT).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_name_parses_back_to_itself() {
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
        }
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
    }

    #[test]
    fn long_unknown_input_is_truncated_in_the_error() {
        let long = "x".repeat(10_000);
        let Err(AuthorizationError::UnknownRole { input }) = long.parse::<Role>() else {
            unreachable!("a 10 000-character role cannot parse")
        };
        assert_eq!(input.len(), ECHO_LIMIT);
    }
}

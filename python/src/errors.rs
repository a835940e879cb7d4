//! The exception hierarchy and the mapping of every kernel error onto it.
//!
//! All exceptions derive from `AiriskError`. Each carries a `kind` attribute: a stable snake_case
//! string naming the variant (`"denied"`, `"not_found"`, `"self_approval"`, …), so callers can
//! branch without parsing messages. Messages are the kernel's own `Display` text, which never holds
//! key material or row contents.
//!
//! Which class a kernel error becomes:
//! * any RBAC refusal (`Forbidden`, an unknown role or action) → `AuthorizationError`, whatever
//!   service raised it, because "RBAC first" is one rule across services;
//! * a tenant mismatch → `TenantIsolationError`;
//! * an invalid identifier or field → `ValidationError`;
//! * everything else → the class of the family that failed: `AuditError`, `ModelRegistryError`,
//!   `PromptRegistryError`, `ApprovalError` (also for a model's approval step, e.g. approving a
//!   model twice), `EncryptionError`, `StoreError`, `ConfigurationError`.

use airisk_core::governance::approval_workflow::ApprovalError as CoreApprovalError;
use airisk_core::governance::audit_logger::AuditError as CoreAuditError;
use airisk_core::governance::audit_record::AuditValidationError;
use airisk_core::governance::model_registry::ModelRegistryError as CoreModelError;
use airisk_core::governance::prompt_registry::PromptRegistryError as CorePromptError;
use airisk_core::ports::StoreError as CoreStoreError;
use airisk_core::security::encryption::EncryptionError as CoreEncryptionError;
use airisk_core::security::rbac::AuthorizationError as CoreAuthorizationError;
use airisk_core::security::tenant_context::{IdentifierError, TenantIsolationError as CoreTenant};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pyo3::create_exception!(
    airisk,
    AiriskError,
    PyException,
    "Base class of every error the kernel raises. `kind` names the variant."
);
pyo3::create_exception!(
    airisk,
    AuthorizationError,
    AiriskError,
    "The principal's role may not perform the action (or the role/action is unknown)."
);
pyo3::create_exception!(
    airisk,
    TenantIsolationError,
    AiriskError,
    "A resource of one tenant was addressed from another."
);
pyo3::create_exception!(
    airisk,
    ValidationError,
    AiriskError,
    "An input broke a rule; nothing was written."
);
pyo3::create_exception!(
    airisk,
    AuditError,
    AiriskError,
    "The audit ledger refused or failed an operation."
);
pyo3::create_exception!(
    airisk,
    ModelRegistryError,
    AiriskError,
    "The model registry refused an operation."
);
pyo3::create_exception!(
    airisk,
    PromptRegistryError,
    AiriskError,
    "The prompt registry refused an operation."
);
pyo3::create_exception!(
    airisk,
    ApprovalError,
    AiriskError,
    "The approval workflow refused a transition (four eyes, not pending, expired, ...)."
);
pyo3::create_exception!(
    airisk,
    EncryptionError,
    AiriskError,
    "Encryption or decryption failed (missing or wrong key, tampered ciphertext, ...)."
);
pyo3::create_exception!(
    airisk,
    StoreError,
    AiriskError,
    "The store failed or refused; nothing was written."
);
pyo3::create_exception!(
    airisk,
    ConfigurationError,
    AiriskError,
    "airisk.open() was given (or found in the environment) an unusable configuration."
);

/// Which exception class a failure becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `AuthorizationError`.
    Authorization,
    /// `TenantIsolationError`.
    TenantIsolation,
    /// `ValidationError`.
    Validation,
    /// `AuditError`.
    Audit,
    /// `ModelRegistryError`.
    ModelRegistry,
    /// `PromptRegistryError`.
    PromptRegistry,
    /// `ApprovalError`.
    Approval,
    /// `EncryptionError`.
    Encryption,
    /// `StoreError`.
    Store,
    /// `ConfigurationError`.
    Configuration,
}

/// A kernel failure, built without the GIL (on the kernel's runtime) and turned into a Python
/// exception when it is delivered.
#[derive(Debug, Clone)]
pub struct Failure {
    family: Family,
    kind: &'static str,
    message: String,
}

impl Failure {
    /// A failure of `family` with variant `kind`.
    pub fn new(family: Family, kind: &'static str, message: impl Into<String>) -> Self {
        Failure {
            family,
            kind,
            message: message.into(),
        }
    }

    /// The exception, with its `kind` attribute set.
    pub fn into_pyerr(self, py: Python<'_>) -> PyErr {
        let err = match self.family {
            Family::Authorization => AuthorizationError::new_err(self.message),
            Family::TenantIsolation => TenantIsolationError::new_err(self.message),
            Family::Validation => ValidationError::new_err(self.message),
            Family::Audit => AuditError::new_err(self.message),
            Family::ModelRegistry => ModelRegistryError::new_err(self.message),
            Family::PromptRegistry => PromptRegistryError::new_err(self.message),
            Family::Approval => ApprovalError::new_err(self.message),
            Family::Encryption => EncryptionError::new_err(self.message),
            Family::Store => StoreError::new_err(self.message),
            Family::Configuration => ConfigurationError::new_err(self.message),
        };
        // Setting an attribute on a fresh exception instance cannot fail short of memory
        // exhaustion; if it does, the exception still carries its class and message.
        let _ = err.value(py).setattr("kind", self.kind);
        err
    }
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> PyErr {
        Python::attach(|py| f.into_pyerr(py))
    }
}

impl From<CoreAuthorizationError> for Failure {
    fn from(e: CoreAuthorizationError) -> Self {
        let kind = match e {
            CoreAuthorizationError::Denied { .. } => "denied",
            CoreAuthorizationError::UnknownRole { .. } => "unknown_role",
            CoreAuthorizationError::UnknownAction { .. } => "unknown_action",
            _ => "denied",
        };
        Failure::new(Family::Authorization, kind, e.to_string())
    }
}

impl From<CoreTenant> for Failure {
    fn from(e: CoreTenant) -> Self {
        Failure::new(Family::TenantIsolation, "tenant_mismatch", e.to_string())
    }
}

impl From<IdentifierError> for Failure {
    fn from(e: IdentifierError) -> Self {
        Failure::new(Family::Validation, "invalid_identifier", e.to_string())
    }
}

impl From<AuditValidationError> for Failure {
    fn from(e: AuditValidationError) -> Self {
        Failure::new(Family::Validation, "invalid_record", e.to_string())
    }
}

impl From<CoreStoreError> for Failure {
    fn from(e: CoreStoreError) -> Self {
        let kind = match e {
            CoreStoreError::Conflict { .. } => "conflict",
            CoreStoreError::Unavailable { .. } => "unavailable",
            CoreStoreError::Refused { .. } => "refused",
            CoreStoreError::Corrupt { .. } => "corrupt",
            _ => "store",
        };
        Failure::new(Family::Store, kind, e.to_string())
    }
}

impl From<CoreAuditError> for Failure {
    fn from(e: CoreAuditError) -> Self {
        match e {
            CoreAuditError::Forbidden(inner) => inner.into(),
            CoreAuditError::TenantIsolation(inner) => inner.into(),
            CoreAuditError::Invalid(inner) => inner.into(),
            CoreAuditError::Store(inner) => inner.into(),
            CoreAuditError::NoSigningKey => {
                Failure::new(Family::Audit, "no_signing_key", e.to_string())
            }
            CoreAuditError::BeyondTree { .. } => {
                Failure::new(Family::Audit, "beyond_tree", e.to_string())
            }
            // The HTTP API answers 403: writing a kernel record is not the caller's to do.
            CoreAuditError::KernelNamespace { .. } => {
                Failure::new(Family::Authorization, "kernel_namespace", e.to_string())
            }
            other => Failure::new(Family::Audit, "audit", other.to_string()),
        }
    }
}

impl From<CoreApprovalError> for Failure {
    fn from(e: CoreApprovalError) -> Self {
        let kind = match &e {
            CoreApprovalError::Forbidden(inner) => return inner.clone().into(),
            CoreApprovalError::Audit(inner) => return inner.clone().into(),
            CoreApprovalError::Store(inner) => return inner.clone().into(),
            CoreApprovalError::NotHuman => "not_human",
            CoreApprovalError::SelfApproval => "self_approval",
            CoreApprovalError::AlreadyApproved { .. } => "already_approved",
            CoreApprovalError::NotRequester => "not_requester",
            CoreApprovalError::NotFound => "not_found",
            CoreApprovalError::NotPending { .. } => "not_pending",
            CoreApprovalError::Expired { .. } => "expired",
            CoreApprovalError::Conflict => "conflict",
            CoreApprovalError::Invalid(_) => {
                return Failure::new(Family::Validation, "invalid", e.to_string());
            }
            _ => "approval",
        };
        Failure::new(Family::Approval, kind, e.to_string())
    }
}

impl From<CoreModelError> for Failure {
    fn from(e: CoreModelError) -> Self {
        match e {
            CoreModelError::Forbidden(inner) => inner.into(),
            CoreModelError::Approval(inner) => inner.into(),
            CoreModelError::Audit(inner) => inner.into(),
            CoreModelError::Store(inner) => inner.into(),
            CoreModelError::NotFound => {
                Failure::new(Family::ModelRegistry, "not_found", e.to_string())
            }
            CoreModelError::AlreadyRegistered { .. } => {
                Failure::new(Family::ModelRegistry, "already_registered", e.to_string())
            }
            CoreModelError::Invalid(_) => {
                Failure::new(Family::Validation, "invalid", e.to_string())
            }
            other => Failure::new(Family::ModelRegistry, "model_registry", other.to_string()),
        }
    }
}

impl From<CorePromptError> for Failure {
    fn from(e: CorePromptError) -> Self {
        let kind = match &e {
            CorePromptError::Forbidden(inner) => return inner.clone().into(),
            CorePromptError::Audit(inner) => return inner.clone().into(),
            CorePromptError::Store(inner) => return inner.clone().into(),
            CorePromptError::Invalid(_) | CorePromptError::Approval(_) => {
                return Failure::new(Family::Validation, "invalid", e.to_string());
            }
            CorePromptError::NotFound => "not_found",
            CorePromptError::AlreadyExists { .. } => "already_exists",
            CorePromptError::NoChange { .. } => "no_change",
            CorePromptError::Conflict => "conflict",
            CorePromptError::MoveNotApproved { .. } => "move_not_approved",
            _ => "prompt_registry",
        };
        Failure::new(Family::PromptRegistry, kind, e.to_string())
    }
}

impl From<CoreEncryptionError> for Failure {
    fn from(e: CoreEncryptionError) -> Self {
        let kind = match e {
            CoreEncryptionError::KeyMissing => "key_missing",
            CoreEncryptionError::KeyringNotUnicode | CoreEncryptionError::KeyInvalid { .. } => {
                "key_invalid"
            }
            CoreEncryptionError::UnknownKeyId { .. } => "unknown_key_id",
            CoreEncryptionError::MalformedCiphertext { .. } => "malformed_ciphertext",
            CoreEncryptionError::DecryptionFailed => "decryption_failed",
            CoreEncryptionError::RandomUnavailable => "random_unavailable",
            CoreEncryptionError::PlaintextTooLong => "plaintext_too_long",
            _ => "encryption",
        };
        Failure::new(Family::Encryption, kind, e.to_string())
    }
}

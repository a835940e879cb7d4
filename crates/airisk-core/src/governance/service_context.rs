//! What the governance services share: the store, the clock, the id generator and RBAC, and the
//! three things every command does with them: check the role (`authorize`),
//! record a refusal (`deny`) and build the audit event of what it did
//! (`event`).
//!
//! One [`ServiceContext`] is built by the composition root and handed to
//! [`super::approval_workflow::ApprovalWorkflow`], [`super::model_registry::ModelRegistry`] and
//! [`super::prompt_registry::PromptRegistry`]; cloning it clones three `Arc`s.
//!
//! Every public method of those services runs in a `tracing` span named after it, with the
//! fields `tenant_id`, `actor`, `action` and (for commands) `correlation_id`, so a log line
//! can be tied to its request; a store's `commit` opens a `store.commit` span inside it. The
//! spans skip every argument (`skip_all`): templates, reasons, metadata and keys are never
//! recorded.

use std::borrow::Cow;
use std::sync::Arc;

use uuid::Uuid;

use super::audit_record::{AuditEvent, AuditValidationError, Outcome};
use crate::ports::{ChangeSet, Clock, GovernanceStore, IdGenerator, StoreError};
use crate::request::CorrelationId;
use crate::security::rbac::{Action, AuthorizationError, RbacService};
use crate::security::tenant_context::Principal;

/// The collaborators every governance service works with.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    pub(crate) store: Arc<dyn GovernanceStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdGenerator>,
    pub(crate) rbac: RbacService,
}

/// What an audit record is about. Each variant knows its `resource_type` and `resource_id`, so
/// the services never spell either: the strings below are the ones every ledger already holds,
/// byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource<'a> {
    /// A model version: `model`, `name@version`.
    Model {
        /// Model name (as given; it may not be valid yet when a refusal is recorded).
        name: &'a str,
        /// Model version (as given).
        version: &'a str,
    },
    /// An approval request: `approval_request`, its id.
    ApprovalRequest(Uuid),
    /// A prompt named by a command that has no version yet: `prompt`, `name`.
    Prompt {
        /// Prompt name (as given).
        name: &'a str,
    },
    /// One version of a prompt: `prompt`, `name@version`.
    PromptVersion {
        /// Prompt name.
        name: &'a str,
        /// Version number.
        version: u32,
    },
    /// A label move: `prompt_label`, `name@version#label`.
    PromptLabel {
        /// Prompt name.
        name: &'a str,
        /// The version the label would point to.
        version: u32,
        /// The label.
        label: &'a str,
    },
}

impl Resource<'_> {
    /// The audit record's `resource_type`.
    pub(crate) const fn resource_type(&self) -> &'static str {
        match self {
            Resource::Model { .. } => "model",
            Resource::ApprovalRequest(_) => "approval_request",
            Resource::Prompt { .. } | Resource::PromptVersion { .. } => "prompt",
            Resource::PromptLabel { .. } => "prompt_label",
        }
    }

    /// The audit record's `resource_id`.
    pub(crate) fn resource_id(&self) -> Cow<'_, str> {
        match self {
            Resource::Model { name, version } => Cow::Owned(format!("{name}@{version}")),
            Resource::ApprovalRequest(id) => Cow::Owned(id.to_string()),
            Resource::Prompt { name } => Cow::Borrowed(name),
            Resource::PromptVersion { name, version } => Cow::Owned(format!("{name}@{version}")),
            Resource::PromptLabel {
                name,
                version,
                label,
            } => Cow::Owned(format!("{name}@{version}#{label}")),
        }
    }
}

impl ServiceContext {
    /// The context of services working on `store`, reading time from `clock` and taking record ids
    /// from `ids`.
    pub fn new(
        store: Arc<dyn GovernanceStore>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        ServiceContext {
            store,
            clock,
            ids,
            rbac: RbacService::new(),
        }
    }

    /// The audit event of `principal` succeeding at `action` on `resource`.
    ///
    /// # Errors
    /// [`AuditValidationError`] if a field breaks a record's rules (an over-long reason, say).
    pub(crate) fn event(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        action: Action,
        resource: Resource<'_>,
        reason: Option<String>,
        metadata: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<AuditEvent, AuditValidationError> {
        self.event_named(
            principal,
            correlation,
            action.as_str(),
            Outcome::Success,
            resource,
            reason,
            metadata,
        )
    }

    /// The audit event of `principal` doing the kernel action named `action` on `resource`, with
    /// any outcome: for the deployment gate (which records its refusals on the merits as
    /// `denied`) and for actions no role grants (such as
    /// [`super::approval_workflow::EXPIRE_ACTION`], the clock's doing).
    ///
    /// # Errors
    /// As [`ServiceContext::event`].
    #[allow(clippy::too_many_arguments)] // one argument per audit field
    pub(crate) fn event_named(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        action: &str,
        outcome: Outcome,
        resource: Resource<'_>,
        reason: Option<String>,
        metadata: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<AuditEvent, AuditValidationError> {
        AuditEvent::new(
            self.ids.new_id(),
            principal.tenant().clone(),
            principal.actor().clone(),
            action,
            outcome,
            resource.resource_type(),
            &resource.resource_id(),
            reason,
            correlation.clone(),
            metadata,
        )
    }

    /// Records a refused attempt. Caller input that a record cannot hold as it is (control
    /// characters, over-long or empty ids) is recorded escaped (see
    /// [`super::audit_record::recordable_text`]), with the original's SHA-256 in the metadata, so
    /// every refusal is recorded. A failure to store the record is logged; the caller is refused
    /// either way.
    pub(crate) async fn deny(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        action: Action,
        resource: Resource<'_>,
        why: &str,
    ) {
        let event = denial_event(
            self.ids.new_id(),
            principal,
            correlation,
            action.as_str(),
            resource.resource_type(),
            &resource.resource_id(),
            why,
        );
        let result = match event {
            Ok(event) => self
                .store
                .commit(ChangeSet::audit_only(
                    principal.tenant().clone(),
                    vec![event],
                ))
                .await
                .map(|_| ()),
            Err(e) => Err(StoreError::Refused {
                message: e.to_string(),
            }),
        };
        if let Err(e) = result {
            tracing::error!(tenant_id = %principal.tenant(), action = action.as_str(), error = %e, "could not record a denial");
        }
    }

    /// Checks the role, recording a denial if refused.
    ///
    /// # Errors
    /// [`AuthorizationError`] if `principal`'s role does not grant `action`.
    pub(crate) async fn authorize(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        action: Action,
        resource: Resource<'_>,
    ) -> Result<(), AuthorizationError> {
        if let Err(denied) = self.rbac.check_permission(principal.role(), action) {
            self.deny(
                principal,
                correlation,
                action,
                resource,
                &denied.to_string(),
            )
            .await;
            return Err(denied);
        }
        Ok(())
    }
}

/// The denial record of `principal` attempting `action` on a resource, with every piece of caller
/// input made recordable (see [`super::audit_record::recordable_text`]); escaped fields are named
/// in the metadata under `escaped`, each with the original's SHA-256 and length.
///
/// # Errors
/// [`AuditValidationError`] only if `action` or `resource_type` (kernel constants) are invalid.
pub(crate) fn denial_event(
    id: Uuid,
    principal: &Principal,
    correlation: &CorrelationId,
    action: &str,
    resource_type: &str,
    resource_id: &str,
    why: &str,
) -> Result<AuditEvent, AuditValidationError> {
    use super::audit_record::{REASON_MAX_LEN, RESOURCE_ID_MAX_LEN, recordable_text};
    let rid = recordable_text(resource_id, RESOURCE_ID_MAX_LEN);
    let reason = recordable_text(why, REASON_MAX_LEN);
    let mut escaped = serde_json::Map::new();
    for (field, text) in [("resource_id", &rid), ("reason", &reason)] {
        if let Some(original) = text.original_json() {
            escaped.insert(field.to_owned(), original);
        }
    }
    let metadata = (!escaped.is_empty()).then(|| {
        let mut m = serde_json::Map::new();
        m.insert("escaped".to_owned(), serde_json::Value::Object(escaped));
        m
    });
    AuditEvent::new(
        id,
        principal.tenant().clone(),
        principal.actor().clone(),
        action,
        Outcome::Denied,
        resource_type,
        &rid.text,
        Some(reason.text),
        correlation.clone(),
        metadata,
    )
}

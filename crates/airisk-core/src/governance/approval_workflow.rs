//! The approval workflow service: opens approval requests and records decisions on them, each
//! with its audit record in one transaction. The request itself and its pure transitions (the
//! four-eyes rules) are [`super::approval_request`]; a command here checks the role, loads the
//! request in the principal's tenant, applies the transition and commits it with the version it
//! read, so of two concurrent decisions exactly one wins.

use std::sync::Arc;

use uuid::Uuid;

pub use super::approval_request::{
    Approval, ApprovalError, ApprovalRequest, ApprovalStatus, Decision, MAX_REQUIRED_APPROVALS,
    NewApprovalRequest, REASON_MAX_LEN, RequestedSubject, Subject,
};
use super::audit_record::{AuditEvent, AuditReceipt, AuditValidationError, Outcome};
use super::service_context::{Resource, ServiceContext};
use crate::input::InputError;
use crate::ports::{
    ApprovalFilter, ApprovalWithSubject, ChangeSet, Clock, GovernanceStore, IdGenerator, Mutation,
    Page, StoreError, SubjectState,
};
use crate::request::CorrelationId;
use crate::security::rbac::Action;
use crate::security::tenant_context::Principal;

/// The audit action recorded when a command finds a pending request past its expiry.
pub const EXPIRE_ACTION: &str = "approval.expire";

/// The approval workflow service.
#[derive(Debug, Clone)]
pub struct ApprovalWorkflow {
    ctx: ServiceContext,
}

/// What a command on an approval request wrote: the request as opened or decided, and the audit
/// receipts of its transaction.
#[derive(Debug, Clone)]
pub struct ApprovalChange {
    /// The request as it now stands.
    pub request: ApprovalRequest,
    /// Receipts of the audit records written with it.
    pub receipts: Vec<AuditReceipt>,
}

impl ApprovalWorkflow {
    /// A workflow over `store` (a shorthand for [`ApprovalWorkflow::with_context`] with a new
    /// [`ServiceContext`]).
    pub fn new(
        store: Arc<dyn GovernanceStore>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self::with_context(ServiceContext::new(store, clock, ids))
    }

    /// A workflow working with the shared `ctx`.
    pub fn with_context(ctx: ServiceContext) -> Self {
        ApprovalWorkflow { ctx }
    }

    /// The context this workflow works with.
    pub(crate) fn context(&self) -> &ServiceContext {
        &self.ctx
    }

    /// Opens a pending request in the principal's tenant (`approval.request`).
    ///
    /// # Errors
    /// [`ApprovalError::Forbidden`], [`ApprovalError::Invalid`], [`ApprovalError::Store`].
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::ApprovalRequest.as_str(), correlation_id = %correlation)
    )]
    pub async fn request_approval(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        new: NewApprovalRequest,
    ) -> Result<ApprovalChange, ApprovalError> {
        let k = &self.ctx;
        k.authorize(
            principal,
            correlation,
            Action::ApprovalRequest,
            new.subject.resource(),
        )
        .await?;
        let subject = match &new.subject {
            RequestedSubject::Model { .. } => {
                return Err(InputError::new(
                    "subject",
                    "is a model: a model's approval request is opened by registering the model",
                )
                .into());
            }
            RequestedSubject::PromptLabel { .. } => new.subject.parse()?,
        };
        if let Subject::PromptLabel { name, version, .. } = &subject {
            let exists = k
                .store
                .prompt_versions(principal.tenant(), name)
                .await?
                .iter()
                .any(|v| v.version() == *version);
            if !exists {
                return Err(ApprovalError::NotFound);
            }
        }
        let request = ApprovalRequest::open(k.ids.new_id(), principal, new, k.clock.now())?;
        let event = self.request_event(principal, correlation, &request)?;
        let receipts = k
            .store
            .commit(ChangeSet {
                tenant: principal.tenant().clone(),
                mutations: vec![Mutation::InsertApproval(request.clone())],
                audit: vec![event],
            })
            .await?;
        Ok(ApprovalChange { request, receipts })
    }

    pub(crate) fn request_event(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        request: &ApprovalRequest,
    ) -> Result<AuditEvent, AuditValidationError> {
        let mut metadata = serde_json::Map::new();
        metadata.insert(
            "approval_request_id".into(),
            request.id().to_string().into(),
        );
        metadata.insert("subject".into(), request.subject().resource_id().into());
        metadata.insert(
            "required_approvals".into(),
            request.required_approvals().into(),
        );
        if let Some(t) = request.expires_at() {
            metadata.insert(
                "expires_at".into(),
                super::audit_record::format_timestamp(&t).into(),
            );
        }
        self.ctx.event(
            principal,
            correlation,
            Action::ApprovalRequest,
            Resource::ApprovalRequest(request.id()),
            Some(request.justification().to_owned()),
            Some(metadata),
        )
    }

    /// Reads a request of the principal's tenant (`approval.view`). Another tenant's request is
    /// [`ApprovalError::NotFound`].
    ///
    /// # Errors
    /// [`ApprovalError::Forbidden`], [`ApprovalError::NotFound`], [`ApprovalError::Store`].
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::ApprovalView.as_str())
    )]
    pub async fn get(
        &self,
        principal: &Principal,
        id: Uuid,
    ) -> Result<ApprovalRequest, ApprovalError> {
        self.ctx
            .rbac
            .check_permission(principal.role(), Action::ApprovalView)?;
        self.ctx
            .store
            .approval(principal.tenant(), id)
            .await?
            .ok_or(ApprovalError::NotFound)
    }

    /// Lists requests of the principal's tenant (`approval.view`), oldest first.
    ///
    /// # Errors
    /// [`ApprovalError::Forbidden`], [`ApprovalError::Store`].
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::ApprovalView.as_str())
    )]
    pub async fn list(
        &self,
        principal: &Principal,
        filter: &ApprovalFilter,
        page: Page,
    ) -> Result<Vec<ApprovalRequest>, ApprovalError> {
        self.ctx
            .rbac
            .check_permission(principal.role(), Action::ApprovalView)?;
        Ok(self
            .ctx
            .store
            .approvals(principal.tenant(), filter, page)
            .await?)
    }

    /// Approves (`approval.approve`).
    ///
    /// # Errors
    /// [`ApprovalError::Forbidden`], [`ApprovalError::NotFound`], [`ApprovalError::NotHuman`],
    /// [`ApprovalError::SelfApproval`], [`ApprovalError::AlreadyApproved`],
    /// [`ApprovalError::NotPending`], [`ApprovalError::Expired`], [`ApprovalError::Conflict`].
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::ApprovalApprove.as_str(), correlation_id = %correlation)
    )]
    pub async fn approve(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        id: Uuid,
        reason: &str,
    ) -> Result<ApprovalChange, ApprovalError> {
        self.decide(principal, correlation, id, reason, Verdict::Approve)
            .await
    }

    /// Rejects (`approval.reject`).
    ///
    /// # Errors
    /// As [`ApprovalWorkflow::approve`].
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::ApprovalReject.as_str(), correlation_id = %correlation)
    )]
    pub async fn reject(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        id: Uuid,
        reason: &str,
    ) -> Result<ApprovalChange, ApprovalError> {
        self.decide(principal, correlation, id, reason, Verdict::Reject)
            .await
    }

    /// Withdraws one's own pending request (`approval.cancel`).
    ///
    /// # Errors
    /// [`ApprovalError::Forbidden`], [`ApprovalError::NotFound`], [`ApprovalError::NotRequester`],
    /// [`ApprovalError::NotPending`], [`ApprovalError::Expired`], [`ApprovalError::Conflict`].
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::ApprovalCancel.as_str(), correlation_id = %correlation)
    )]
    pub async fn cancel(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        id: Uuid,
        reason: &str,
    ) -> Result<ApprovalChange, ApprovalError> {
        self.decide(principal, correlation, id, reason, Verdict::Cancel)
            .await
    }

    async fn decide(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        id: Uuid,
        reason: &str,
        verdict: Verdict,
    ) -> Result<ApprovalChange, ApprovalError> {
        let k = &self.ctx;
        let action = verdict.action();
        let resource = Resource::ApprovalRequest(id);
        k.authorize(principal, correlation, action, resource)
            .await?;
        // One read: the request and the stored state of what it names.
        let Some(read) = k
            .store
            .approval_with_subject(principal.tenant(), id)
            .await?
        else {
            k.deny(principal, correlation, action, resource, "not found")
                .await;
            return Err(ApprovalError::NotFound);
        };
        self.decide_on(principal, correlation, read, reason, verdict)
            .await
    }

    /// Decides a request read with its subject by the caller (the model registry reads a
    /// model's request together with the model, in one read), after checking the role exactly
    /// as [`ApprovalWorkflow::approve`] does.
    pub(crate) async fn decide_read(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        read: ApprovalWithSubject,
        reason: &str,
        verdict: Verdict,
    ) -> Result<ApprovalChange, ApprovalError> {
        let resource = Resource::ApprovalRequest(read.request.id());
        self.ctx
            .authorize(principal, correlation, verdict.action(), resource)
            .await?;
        self.decide_on(principal, correlation, read, reason, verdict)
            .await
    }

    /// The decision itself, on a request read (with its subject) after the role was checked:
    /// expiry, the four-eyes transition, and one commit of the request, the subject and their
    /// records.
    async fn decide_on(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        read: ApprovalWithSubject,
        reason: &str,
        verdict: Verdict,
    ) -> Result<ApprovalChange, ApprovalError> {
        let k = &self.ctx;
        let action = verdict.action();
        let ApprovalWithSubject {
            request: current,
            subject: subject_state,
        } = read;
        let id = current.id();
        let resource = Resource::ApprovalRequest(id);
        let now = k.clock.now();
        if let Some(expired) = current.expire_if_due(now) {
            let expires_at = current.expires_at().unwrap_or(now);
            self.record_expiry(principal, correlation, &current, expired)
                .await?;
            return Err(ApprovalError::Expired { expires_at });
        }
        let next = match verdict {
            Verdict::Approve => current.approve(principal, reason, now),
            Verdict::Reject => current.reject(principal, reason, now),
            Verdict::Cancel => current.cancel(principal, reason, now),
        };
        let next = match next {
            Ok(next) => next,
            Err(
                e @ (ApprovalError::SelfApproval
                | ApprovalError::NotHuman
                | ApprovalError::NotRequester
                | ApprovalError::AlreadyApproved { .. }),
            ) => {
                k.deny(principal, correlation, action, resource, &e.to_string())
                    .await;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let mut mutations = vec![Mutation::UpdateApproval {
            expected_version: current.version(),
            request: next.clone(),
        }];
        let mut audit = vec![self.decision_event(principal, correlation, action, &next, reason)?];
        // The subject follows the terminal decision in the same transaction.
        if let Subject::Model { name, version } = next.subject()
            && matches!(
                next.status(),
                ApprovalStatus::Approved | ApprovalStatus::Rejected
            )
        {
            let SubjectState::Model(Some(model)) = subject_state else {
                return Err(ApprovalError::Store(StoreError::Corrupt {
                    message: format!("approval {id} names a missing model {name}@{version}"),
                }));
            };
            let decided = model.decided(&next);
            audit.push(k.event(
                principal,
                correlation,
                if next.status() == ApprovalStatus::Approved {
                    Action::ModelApprove
                } else {
                    Action::ModelReject
                },
                next.subject().resource(),
                Some(reason.to_owned()),
                None,
            )?);
            mutations.push(Mutation::UpdateModel {
                expected_version: model.row_version(),
                model: decided,
            });
        }
        let receipts = k
            .store
            .commit(ChangeSet {
                tenant: principal.tenant().clone(),
                mutations,
                audit,
            })
            .await?;
        Ok(ApprovalChange {
            request: next,
            receipts,
        })
    }

    async fn record_expiry(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        current: &ApprovalRequest,
        expired: ApprovalRequest,
    ) -> Result<(), ApprovalError> {
        let k = &self.ctx;
        // Expiry is the clock's doing, not an action a role grants: it is recorded under its own
        // action name, with the principal whose command noticed it.
        let event = k.event_named(
            principal,
            correlation,
            EXPIRE_ACTION,
            Outcome::Success,
            Resource::ApprovalRequest(current.id()),
            Some("expired before a decision".to_owned()),
            None,
        )?;
        let result = k
            .store
            .commit(ChangeSet {
                tenant: principal.tenant().clone(),
                mutations: vec![Mutation::UpdateApproval {
                    expected_version: current.version(),
                    request: expired,
                }],
                audit: vec![event],
            })
            .await;
        // Someone else recorded the expiry first: the outcome is the same.
        result
            .map(|_| ())
            .or_else(|e| e.map_conflict(|| Ok(()), |e| Err(e.into())))
    }

    fn decision_event(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        action: Action,
        next: &ApprovalRequest,
        reason: &str,
    ) -> Result<AuditEvent, AuditValidationError> {
        let mut metadata = serde_json::Map::new();
        metadata.insert("status".into(), next.status().as_str().into());
        metadata.insert("approvals".into(), (next.approvals().len() as u64).into());
        metadata.insert(
            "required_approvals".into(),
            next.required_approvals().into(),
        );
        metadata.insert("subject".into(), next.subject().resource_id().into());
        self.ctx.event(
            principal,
            correlation,
            action,
            Resource::ApprovalRequest(next.id()),
            Some(reason.to_owned()),
            Some(metadata),
        )
    }
}

/// What a decision does to a pending request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Verdict {
    Approve,
    Reject,
    Cancel,
}

impl Verdict {
    fn action(self) -> Action {
        match self {
            Verdict::Approve => Action::ApprovalApprove,
            Verdict::Reject => Action::ApprovalReject,
            Verdict::Cancel => Action::ApprovalCancel,
        }
    }
}

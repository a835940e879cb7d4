//! The approval request and its pure state machine: maker-checker (four eyes) for every
//! governed change. The service that loads, authorises, audits and stores these transitions is
//! [`super::approval_workflow`].
//!
//! An [`ApprovalRequest`] starts `pending` and ends in exactly one terminal state:
//!
//! ```text
//!            approve (quorum reached)            reject
//! PENDING ───────────────────────────▶ APPROVED   PENDING ──────▶ REJECTED
//!    │  approve (quorum not reached: stays PENDING)
//!    ├── cancel (requester only) ───▶ CANCELLED
//!    └── any command after expires_at ─▶ EXPIRED
//! ```
//!
//! Rules, each a typed [`ApprovalError`]:
//! * only roles with the `approve` permission approve or reject; only humans approve, never a
//!   service principal;
//! * the requester never approves or rejects their own request; the same approver never counts
//!   twice;
//! * `required_approvals` distinct approvals make it approved; one rejection rejects it;
//! * transitions happen only from `pending`; terminal states are final;
//! * every request carries a `version`; a store applies a change only if the version it read is
//!   still current, so of two concurrent approvals exactly one wins and the other gets
//!   [`ApprovalError::Conflict`].

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit_record::AuditValidationError;
use super::model_version::{ModelName, ModelVersionTag};
use super::prompt_registry::{LabelName, PromptName};
use super::service_context::Resource;
use super::visible_text::{self, HiddenCharacter};
use crate::input::InputError;
use crate::ports::StoreError;
use crate::security::rbac::AuthorizationError;
use crate::security::tenant_context::{ActorId, Principal, PrincipalKind, TenantId};

/// Longest justification or decision reason, in bytes.
pub const REASON_MAX_LEN: usize = 4096;
/// Most approvals a request may require.
pub const MAX_REQUIRED_APPROVALS: u32 = 10;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApprovalStatus {
    /// Waiting for decisions.
    Pending,
    /// Enough distinct approvals were given.
    Approved,
    /// An approver rejected it.
    Rejected,
    /// Its `expires_at` passed while pending.
    Expired,
    /// The requester withdrew it.
    Cancelled,
}

impl ApprovalStatus {
    /// `PENDING`, `APPROVED`, …
    pub const fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "PENDING",
            ApprovalStatus::Approved => "APPROVED",
            ApprovalStatus::Rejected => "REJECTED",
            ApprovalStatus::Expired => "EXPIRED",
            ApprovalStatus::Cancelled => "CANCELLED",
        }
    }

    /// Whether no further transition is possible.
    pub const fn is_terminal(self) -> bool {
        !matches!(self, ApprovalStatus::Pending)
    }
}

impl fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request asks approval for. Its names are validated types, so a subject names only
/// what could exist; serialized as `{"kind": "model", "name": …, "version": …}` or
/// `{"kind": "prompt_label", "name": …, "version": …, "label": …}` with every name a plain
/// string (the stores' subject columns and the API commit to that form).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    /// Deploying a registered model version.
    Model {
        /// Model name.
        name: ModelName,
        /// Model version.
        version: ModelVersionTag,
    },
    /// Moving a prompt label (such as `production`) to a prompt version.
    PromptLabel {
        /// Prompt name.
        name: PromptName,
        /// The version the label would point to.
        version: u32,
        /// The label.
        label: LabelName,
    },
}

impl Subject {
    /// The audit `resource_type` of the subject.
    pub fn resource_type(&self) -> &'static str {
        self.resource().resource_type()
    }

    /// The audit `resource_id` of the subject: `name@version`, or `name@version#label`.
    pub fn resource_id(&self) -> String {
        self.resource().resource_id().into_owned()
    }

    /// The subject as the resource of an audit record.
    pub(crate) fn resource(&self) -> Resource<'_> {
        match self {
            Subject::Model { name, version } => Resource::Model {
                name: name.as_str(),
                version: version.as_str(),
            },
            Subject::PromptLabel {
                name,
                version,
                label,
            } => Resource::PromptLabel {
                name: name.as_str(),
                version: *version,
                label: label.as_str(),
            },
        }
    }
}

/// A subject as a caller names it, its names not yet checked: what a command to open a request
/// carries ([`NewApprovalRequest`]). The service checks the caller's role first and records a
/// refusal with the names as sent (escaped where a record cannot hold them); only then are the
/// names parsed into a [`Subject`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedSubject {
    /// Deploying a registered model version.
    Model {
        /// Model name, as sent.
        name: String,
        /// Model version, as sent.
        version: String,
    },
    /// Moving a prompt label to a prompt version.
    PromptLabel {
        /// Prompt name, as sent.
        name: String,
        /// The version the label would point to.
        version: u32,
        /// The label, as sent.
        label: String,
    },
}

impl RequestedSubject {
    /// The subject, once its names are valid.
    ///
    /// # Errors
    /// [`InputError`] naming the first invalid name (`model name`, `model version`,
    /// `prompt name` or `label`).
    pub fn parse(&self) -> Result<Subject, InputError> {
        Ok(match self {
            RequestedSubject::Model { name, version } => Subject::Model {
                name: ModelName::parse(name)?,
                version: ModelVersionTag::parse(version)?,
            },
            RequestedSubject::PromptLabel {
                name,
                version,
                label,
            } => Subject::PromptLabel {
                name: PromptName::parse(name)?,
                version: *version,
                label: LabelName::parse(label)?,
            },
        })
    }

    /// The subject as the resource of an audit record, names as sent.
    pub(crate) fn resource(&self) -> Resource<'_> {
        match self {
            RequestedSubject::Model { name, version } => Resource::Model { name, version },
            RequestedSubject::PromptLabel {
                name,
                version,
                label,
            } => Resource::PromptLabel {
                name,
                version: *version,
                label,
            },
        }
    }
}

impl From<Subject> for RequestedSubject {
    fn from(subject: Subject) -> Self {
        match subject {
            Subject::Model { name, version } => RequestedSubject::Model {
                name: name.into(),
                version: version.into(),
            },
            Subject::PromptLabel {
                name,
                version,
                label,
            } => RequestedSubject::PromptLabel {
                name: name.into(),
                version,
                label: label.into(),
            },
        }
    }
}

/// One approval given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved.
    pub approver: ActorId,
    /// When.
    pub at: DateTime<Utc>,
    /// Why (mandatory).
    pub reason: String,
}

/// A rejection or cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Who decided.
    pub by: ActorId,
    /// When.
    pub at: DateTime<Utc>,
    /// Why (mandatory).
    pub reason: String,
}

/// A request for human approval. Immutable: every transition returns a new value with
/// `version + 1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    id: Uuid,
    tenant_id: TenantId,
    subject: Subject,
    requested_by: ActorId,
    justification: String,
    required_approvals: u32,
    approvals: Vec<Approval>,
    rejection: Option<Decision>,
    cancellation: Option<Decision>,
    status: ApprovalStatus,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    decided_at: Option<DateTime<Utc>>,
    /// Set when a single-use approval (a label move) was spent.
    used_at: Option<DateTime<Utc>>,
    version: u64,
}

/// Why an approval operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// The caller's role may not do this (recorded as a denial).
    #[error(transparent)]
    Forbidden(#[from] AuthorizationError),
    /// A service (non-human) principal tried to approve or reject (recorded as a denial).
    #[error("only a human may approve or reject a request")]
    NotHuman,
    /// The requester tried to decide their own request (recorded as a denial).
    #[error("the requester cannot approve or reject their own request")]
    SelfApproval,
    /// This approver already approved this request.
    #[error("{approver} has already approved this request")]
    AlreadyApproved {
        /// The approver.
        approver: ActorId,
    },
    /// Only the requester may cancel.
    #[error("only the requester may cancel this request")]
    NotRequester,
    /// No such request in the caller's tenant (also what another tenant's request looks like).
    #[error("approval request not found")]
    NotFound,
    /// The request is no longer pending.
    #[error("the request is {status}, not PENDING; no further transition is possible")]
    NotPending {
        /// Its status.
        status: ApprovalStatus,
    },
    /// The request expired before this decision (its status is now EXPIRED).
    #[error("the request expired at {expires_at}")]
    Expired {
        /// When it expired.
        expires_at: DateTime<Utc>,
    },
    /// Another decision changed the request first; read it again.
    #[error("the request was changed concurrently; read it again and retry")]
    Conflict,
    /// An input is invalid (nothing was written).
    #[error("invalid input: {0}")]
    Invalid(#[from] InputError),
    /// A justification or reason holds a character a reader would not see (see
    /// [`visible_text`]); nothing was written.
    #[error(transparent)]
    HiddenCharacter(#[from] HiddenCharacter),
    /// The audit record could not be built.
    #[error(transparent)]
    Audit(#[from] AuditValidationError),
    /// The store failed; nothing was written.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ApprovalError {
    fn from(e: StoreError) -> Self {
        e.map_conflict(|| ApprovalError::Conflict, ApprovalError::Store)
    }
}

/// What [`super::approval_workflow::ApprovalWorkflow::request_approval`] needs.
#[derive(Debug, Clone)]
pub struct NewApprovalRequest {
    /// What is to be approved, as the caller named it (parsed by
    /// [`ApprovalRequest::open`]).
    pub subject: RequestedSubject,
    /// Why it is asked for (mandatory).
    pub justification: String,
    /// Distinct approvals needed (1 to 10).
    pub required_approvals: u32,
    /// Expire after this long without a decision (none: never).
    pub expires_in: Option<Duration>,
}

impl ApprovalRequest {
    /// Validates and opens a new pending request.
    ///
    /// # Errors
    /// [`ApprovalError::Invalid`] for an invalid subject name, an empty or oversize
    /// justification, a quorum outside 1..=10, or a non-positive expiry.
    pub fn open(
        id: Uuid,
        principal: &Principal,
        new: NewApprovalRequest,
        now: DateTime<Utc>,
    ) -> Result<Self, ApprovalError> {
        let subject = new.subject.parse()?;
        check_reason("justification", &new.justification)?;
        if !(1..=MAX_REQUIRED_APPROVALS).contains(&new.required_approvals) {
            return Err(InputError::new(
                "required_approvals",
                format!("must be between 1 and {MAX_REQUIRED_APPROVALS}"),
            )
            .into());
        }
        let expires_at = match new.expires_in {
            Some(d) if d <= Duration::zero() => {
                return Err(InputError::new("expires_in", "must be positive").into());
            }
            Some(d) => Some(
                now.checked_add_signed(d)
                    .ok_or_else(|| InputError::new("expires_in", "is too large"))?,
            ),
            None => None,
        };
        Ok(ApprovalRequest {
            id,
            tenant_id: principal.tenant().clone(),
            subject,
            requested_by: principal.actor().clone(),
            justification: new.justification,
            required_approvals: new.required_approvals,
            approvals: Vec::new(),
            rejection: None,
            cancellation: None,
            status: ApprovalStatus::Pending,
            created_at: now,
            expires_at,
            decided_at: None,
            used_at: None,
            version: 1,
        })
    }

    /// The request's id.
    pub fn id(&self) -> Uuid {
        self.id
    }
    /// Its tenant.
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }
    /// What it asks approval for.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }
    /// Who asked.
    pub fn requested_by(&self) -> &ActorId {
        &self.requested_by
    }
    /// Why.
    pub fn justification(&self) -> &str {
        &self.justification
    }
    /// Distinct approvals needed.
    pub fn required_approvals(&self) -> u32 {
        self.required_approvals
    }
    /// Approvals given so far.
    pub fn approvals(&self) -> &[Approval] {
        &self.approvals
    }
    /// The rejection, if rejected.
    pub fn rejection(&self) -> Option<&Decision> {
        self.rejection.as_ref()
    }
    /// The cancellation, if cancelled.
    pub fn cancellation(&self) -> Option<&Decision> {
        self.cancellation.as_ref()
    }
    /// The stored status (see [`ApprovalRequest::status_at`] for the status at an instant).
    pub fn status(&self) -> ApprovalStatus {
        self.status
    }
    /// The status at `now`: a pending request past its expiry reads as EXPIRED even before a
    /// command records the transition.
    pub fn status_at(&self, now: DateTime<Utc>) -> ApprovalStatus {
        if self.is_expired_at(now) {
            ApprovalStatus::Expired
        } else {
            self.status
        }
    }
    /// When it was opened.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    /// When it expires, if ever.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }
    /// When it reached a terminal state.
    pub fn decided_at(&self) -> Option<DateTime<Utc>> {
        self.decided_at
    }
    /// When a single-use approval was spent.
    pub fn used_at(&self) -> Option<DateTime<Utc>> {
        self.used_at
    }
    /// Optimistic-concurrency version: 1 when opened, +1 per change.
    pub fn version(&self) -> u64 {
        self.version
    }

    fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.status == ApprovalStatus::Pending && self.expires_at.is_some_and(|t| now >= t)
    }

    fn next(&self) -> ApprovalRequest {
        let mut next = self.clone();
        next.version += 1;
        next
    }

    /// The request marked EXPIRED, if it is pending and past its expiry at `now`.
    pub fn expire_if_due(&self, now: DateTime<Utc>) -> Option<ApprovalRequest> {
        if !self.is_expired_at(now) {
            return None;
        }
        let mut next = self.next();
        next.status = ApprovalStatus::Expired;
        next.decided_at = Some(now);
        Some(next)
    }

    fn ensure_pending(&self) -> Result<(), ApprovalError> {
        if self.status == ApprovalStatus::Pending {
            Ok(())
        } else {
            Err(ApprovalError::NotPending {
                status: self.status,
            })
        }
    }

    fn ensure_may_decide(&self, principal: &Principal) -> Result<(), ApprovalError> {
        if principal.kind() != PrincipalKind::Human {
            return Err(ApprovalError::NotHuman);
        }
        // Canonical comparison: a case or compatibility variant of the requester's id is the
        // requester (ids stored before canonicalisation may still be mixed case).
        if principal.actor().same_identity(&self.requested_by) {
            return Err(ApprovalError::SelfApproval);
        }
        Ok(())
    }

    /// The pure four-eyes transition: `principal` approves at `now`.
    ///
    /// # Errors
    /// [`ApprovalError::NotHuman`], [`ApprovalError::SelfApproval`], [`ApprovalError::NotPending`],
    /// [`ApprovalError::AlreadyApproved`], [`ApprovalError::Invalid`] (empty reason).
    /// Expiry is the caller's to check first (see [`ApprovalRequest::expire_if_due`]).
    pub fn approve(
        &self,
        principal: &Principal,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ApprovalRequest, ApprovalError> {
        self.ensure_may_decide(principal)?;
        self.ensure_pending()?;
        check_reason("reason", reason)?;
        if self
            .approvals
            .iter()
            .any(|a| a.approver.same_identity(principal.actor()))
        {
            return Err(ApprovalError::AlreadyApproved {
                approver: principal.actor().clone(),
            });
        }
        let mut next = self.next();
        next.approvals.push(Approval {
            approver: principal.actor().clone(),
            at: now,
            reason: reason.to_owned(),
        });
        if next.approvals.len() as u64 >= u64::from(next.required_approvals) {
            next.status = ApprovalStatus::Approved;
            next.decided_at = Some(now);
        }
        Ok(next)
    }

    /// The pure transition: `principal` rejects at `now`.
    ///
    /// # Errors
    /// As [`ApprovalRequest::approve`], less `AlreadyApproved`.
    pub fn reject(
        &self,
        principal: &Principal,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ApprovalRequest, ApprovalError> {
        self.ensure_may_decide(principal)?;
        self.ensure_pending()?;
        check_reason("reason", reason)?;
        let mut next = self.next();
        next.status = ApprovalStatus::Rejected;
        next.rejection = Some(Decision {
            by: principal.actor().clone(),
            at: now,
            reason: reason.to_owned(),
        });
        next.decided_at = Some(now);
        Ok(next)
    }

    /// The pure transition: the requester withdraws the request at `now`.
    ///
    /// # Errors
    /// [`ApprovalError::NotRequester`], [`ApprovalError::NotPending`], [`ApprovalError::Invalid`].
    pub fn cancel(
        &self,
        principal: &Principal,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ApprovalRequest, ApprovalError> {
        if !principal.actor().same_identity(&self.requested_by) {
            return Err(ApprovalError::NotRequester);
        }
        self.ensure_pending()?;
        check_reason("reason", reason)?;
        let mut next = self.next();
        next.status = ApprovalStatus::Cancelled;
        next.cancellation = Some(Decision {
            by: principal.actor().clone(),
            at: now,
            reason: reason.to_owned(),
        });
        next.decided_at = Some(now);
        Ok(next)
    }

    /// Spends a single-use approval (label moves).
    ///
    /// # Errors
    /// [`ApprovalError::NotPending`] unless APPROVED and not yet used.
    pub fn mark_used(&self, now: DateTime<Utc>) -> Result<ApprovalRequest, ApprovalError> {
        if self.status != ApprovalStatus::Approved || self.used_at.is_some() {
            return Err(ApprovalError::NotPending {
                status: self.status,
            });
        }
        let mut next = self.next();
        next.used_at = Some(now);
        Ok(next)
    }
}

fn check_reason(field: &'static str, reason: &str) -> Result<(), ApprovalError> {
    if reason.trim().is_empty() {
        return Err(InputError::new(field, "must not be empty").into());
    }
    if reason.len() > REASON_MAX_LEN {
        return Err(InputError::new(
            field,
            format!(
                "is {} bytes long; at most {REASON_MAX_LEN} are allowed",
                reason.len()
            ),
        )
        .into());
    }
    // What an approver approves is what they could see: no invisible or reordering characters.
    visible_text::check(field, reason)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_print_their_specified_names_and_only_pending_is_open() {
        // The names the API, the stores and the audit metadata commit to.
        for (status, name, terminal) in [
            (ApprovalStatus::Pending, "PENDING", false),
            (ApprovalStatus::Approved, "APPROVED", true),
            (ApprovalStatus::Rejected, "REJECTED", true),
            (ApprovalStatus::Expired, "EXPIRED", true),
            (ApprovalStatus::Cancelled, "CANCELLED", true),
        ] {
            assert_eq!(status.as_str(), name);
            assert_eq!(status.to_string(), name);
            assert_eq!(serde_json::to_value(status).unwrap(), name);
            assert_eq!(status.is_terminal(), terminal, "{name}");
        }
    }

    fn person(actor: &str, role: crate::security::rbac::Role) -> Principal {
        Principal::human(
            ActorId::parse(actor).unwrap(),
            TenantId::parse("acme").unwrap(),
            role,
        )
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    /// A label move requested by an analyst at `at(0)`, quorum `quorum`, expiring after an hour.
    fn requested(quorum: u32) -> ApprovalRequest {
        use crate::security::rbac::Role;
        ApprovalRequest::open(
            Uuid::now_v7(),
            &person("alice@acme.example", Role::Analyst),
            NewApprovalRequest {
                subject: RequestedSubject::PromptLabel {
                    name: "greeting".into(),
                    version: 3,
                    label: "production".into(),
                },
                justification: "ship v3".into(),
                required_approvals: quorum,
                expires_in: Some(Duration::hours(1)),
            },
            at(0),
        )
        .unwrap()
    }

    #[test]
    fn a_request_reports_what_it_was_opened_with_and_who_cancelled_it() {
        use crate::security::rbac::Role;
        let r = requested(3);
        assert_eq!(r.justification(), "ship v3");
        assert_eq!(r.required_approvals(), 3);
        assert_eq!(r.expires_at(), Some(at(3600)));
        assert_eq!(r.created_at(), at(0));
        assert_eq!(r.cancellation(), None);
        let cancelled = r
            .cancel(
                &person("alice@acme.example", Role::Analyst),
                "not needed",
                at(60),
            )
            .unwrap();
        assert_eq!(cancelled.status(), ApprovalStatus::Cancelled);
        let decision = cancelled.cancellation().unwrap();
        assert_eq!(
            (decision.by.as_str(), decision.at, decision.reason.as_str()),
            ("alice@acme.example", at(60), "not needed")
        );
        assert_eq!(cancelled.rejection(), None);
    }

    #[test]
    fn a_reason_may_be_4096_bytes_long_and_no_longer() {
        use crate::security::rbac::Role;
        let approver = person("bob@acme.example", Role::Approver);
        let at_limit = "r".repeat(4096);
        let approved = requested(1).approve(&approver, &at_limit, at(1)).unwrap();
        assert_eq!(approved.approvals()[0].reason, at_limit);
        let over = "r".repeat(4097);
        let refused = requested(1).approve(&approver, &over, at(1));
        assert!(
            matches!(&refused, Err(ApprovalError::Invalid(e)) if e.to_string().contains("4097 bytes")),
            "{refused:?}"
        );
        assert!(matches!(
            requested(1).approve(&approver, " \t", at(1)),
            Err(ApprovalError::Invalid(_))
        ));
    }

    #[test]
    fn only_an_approved_request_is_spent_and_only_once() {
        use crate::security::rbac::Role;
        let pending = requested(1);
        assert!(matches!(
            pending.mark_used(at(1)),
            Err(ApprovalError::NotPending {
                status: ApprovalStatus::Pending
            })
        ));
        let approved = pending
            .approve(&person("bob@acme.example", Role::Approver), "fine", at(2))
            .unwrap();
        assert_eq!(approved.status(), ApprovalStatus::Approved);
        let spent = approved.mark_used(at(3)).unwrap();
        assert_eq!(spent.used_at(), Some(at(3)));
        assert!(matches!(
            spent.mark_used(at(4)),
            Err(ApprovalError::NotPending {
                status: ApprovalStatus::Approved
            })
        ));
        let rejected = requested(1)
            .reject(&person("bob@acme.example", Role::Approver), "no", at(2))
            .unwrap();
        assert!(matches!(
            rejected.mark_used(at(3)),
            Err(ApprovalError::NotPending {
                status: ApprovalStatus::Rejected
            })
        ));
    }

    #[test]
    fn a_subject_names_its_resource_as_audit_records_do() {
        let model: Subject = serde_json::from_value(serde_json::json!(
            {"kind": "model", "name": "credit-scoring", "version": "1.0.0"}
        ))
        .unwrap();
        assert_eq!(model.resource_type(), "model");
        assert_eq!(model.resource_id(), "credit-scoring@1.0.0");
        let label: Subject = serde_json::from_value(serde_json::json!(
            {"kind": "prompt_label", "name": "greeting", "version": 3, "label": "production"}
        ))
        .unwrap();
        assert_eq!(label.resource_type(), "prompt_label");
        assert_eq!(label.resource_id(), "greeting@3#production");
    }
}

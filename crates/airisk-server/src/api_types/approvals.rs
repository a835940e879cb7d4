//! The approval routes' bodies (`/v1/approvals/…`): subjects, requests, decisions and pages.

use airisk_core::governance::approval_workflow::{
    ApprovalRequest, Decision, RequestedSubject, Subject,
};
use airisk_core::input::InputError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{integral, ts};

/// What an approval request is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SubjectView {
    /// Deploying a model version (opened by registering the model).
    Model {
        /// Model name.
        name: String,
        /// Model version.
        version: String,
    },
    /// Moving a prompt label to a version.
    PromptLabel {
        /// Prompt name.
        name: String,
        /// The version the label would point to.
        version: u32,
        /// The label.
        label: String,
    },
}

impl From<&Subject> for SubjectView {
    fn from(s: &Subject) -> Self {
        match s {
            Subject::Model { name, version } => SubjectView::Model {
                name: name.to_string(),
                version: version.to_string(),
            },
            Subject::PromptLabel {
                name,
                version,
                label,
            } => SubjectView::PromptLabel {
                name: name.to_string(),
                version: *version,
                label: label.to_string(),
            },
        }
    }
}

impl TryFrom<SubjectView> for Subject {
    type Error = InputError;
    fn try_from(s: SubjectView) -> Result<Self, InputError> {
        let requested = match s {
            SubjectView::Model { name, version } => RequestedSubject::Model { name, version },
            SubjectView::PromptLabel {
                name,
                version,
                label,
            } => RequestedSubject::PromptLabel {
                name,
                version,
                label,
            },
        };
        requested.parse()
    }
}

/// What a new approval request is for. Only prompt-label moves are opened through
/// `POST /v1/approvals`: a model's request is opened by registering the model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NewSubjectBody {
    /// Moving a prompt label to a version.
    PromptLabel {
        /// Prompt name (as in `POST /v1/prompts`).
        #[schema(
            pattern = "^[A-Za-z0-9][A-Za-z0-9._/-]*$",
            min_length = 1,
            max_length = 128
        )]
        name: String,
        /// The version the label would point to.
        #[serde(deserialize_with = "integral::u32")]
        #[schema(minimum = 0, maximum = 4_294_967_295_u64, format = Int64)]
        version: u32,
        /// The label: 1 to 64 ASCII letters, digits, `.`, `_`, `-`, `/`, starting with a letter
        /// or digit.
        #[schema(
            pattern = "^[A-Za-z0-9][A-Za-z0-9._/-]*$",
            min_length = 1,
            max_length = 64
        )]
        label: String,
    },
}

impl NewSubjectBody {
    /// The subject as sent. The service checks the caller's role first (recording a refusal
    /// with the names as sent, escaped) and only then the names, as the registry checks them
    /// (a malformed name or label is a 422).
    pub(crate) fn into_requested(self) -> RequestedSubject {
        match self {
            NewSubjectBody::PromptLabel {
                name,
                version,
                label,
            } => RequestedSubject::PromptLabel {
                name,
                version,
                label,
            },
        }
    }
}

/// A new approval request (for a prompt label move; a model's is opened by registering it).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApprovalBody {
    /// What is to be approved.
    pub subject: NewSubjectBody,
    /// Why (mandatory): visible text, not blank, at most 4096 bytes of UTF-8.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 4096)]
    pub justification: String,
    /// Distinct approvals needed (1 to 10; default 1).
    #[serde(default, deserialize_with = "integral::opt_u32")]
    #[schema(minimum = 1, maximum = 10)]
    pub required_approvals: Option<u32>,
    /// Seconds until it expires (1 to 315576000, ten years; default: never).
    #[serde(default, deserialize_with = "integral::opt_i64")]
    #[schema(minimum = 1, maximum = 315_576_000)]
    pub expires_in_seconds: Option<i64>,
}

/// One approval given.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalGivenView {
    /// Who.
    pub approver: String,
    /// When.
    pub at: String,
    /// Why.
    pub reason: String,
}

/// A rejection or cancellation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionView {
    /// Who.
    pub by: String,
    /// When.
    pub at: String,
    /// Why.
    pub reason: String,
}

impl From<&Decision> for DecisionView {
    fn from(d: &Decision) -> Self {
        DecisionView {
            by: d.by.to_string(),
            at: ts(d.at),
            reason: d.reason.clone(),
        }
    }
}

/// An approval request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalView {
    /// Its id.
    pub id: String,
    /// What it is for.
    pub subject: SubjectView,
    /// Who asked.
    pub requested_by: String,
    /// Why.
    pub justification: String,
    /// Distinct approvals needed.
    pub required_approvals: u32,
    /// Approvals given so far.
    pub approvals: Vec<ApprovalGivenView>,
    /// The rejection, if rejected.
    pub rejection: Option<DecisionView>,
    /// The cancellation, if cancelled.
    pub cancellation: Option<DecisionView>,
    /// `PENDING`, `APPROVED`, `REJECTED`, `EXPIRED` or `CANCELLED`, as of now (a pending
    /// request past its expiry reads EXPIRED).
    pub status: String,
    /// When it was opened.
    pub created_at: String,
    /// When it expires.
    pub expires_at: Option<String>,
    /// When it reached a terminal state.
    pub decided_at: Option<String>,
    /// When a single-use approval was spent.
    pub used_at: Option<String>,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl ApprovalView {
    /// The view of `r` as of `now`.
    pub fn of(r: &ApprovalRequest, now: DateTime<Utc>) -> Self {
        ApprovalView {
            id: r.id().to_string(),
            subject: r.subject().into(),
            requested_by: r.requested_by().to_string(),
            justification: r.justification().to_owned(),
            required_approvals: r.required_approvals(),
            approvals: r
                .approvals()
                .iter()
                .map(|a| ApprovalGivenView {
                    approver: a.approver.to_string(),
                    at: ts(a.at),
                    reason: a.reason.clone(),
                })
                .collect(),
            rejection: r.rejection().map(Into::into),
            cancellation: r.cancellation().map(Into::into),
            status: r.status_at(now).as_str().to_owned(),
            created_at: ts(r.created_at()),
            expires_at: r.expires_at().map(ts),
            decided_at: r.decided_at().map(ts),
            used_at: r.used_at().map(ts),
            version: r.version(),
        }
    }
}

/// A page of approval requests.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalPage {
    /// The requests, oldest first.
    pub requests: Vec<ApprovalView>,
    /// Pass as `offset` to continue; absent on the last page.
    pub next_offset: Option<u64>,
}

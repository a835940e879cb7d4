//! The one error type of the HTTP layer, rendered as RFC 9457 `application/problem+json`.
//!
//! Every service error maps onto an [`ApiError`] here, in one place, and each variant names its
//! status. Bodies never carry internals: a 500 says only that something failed and which
//! correlation id to quote; the real cause goes to the log line with that id. A resource of
//! another tenant is [`ApiError::NotFound`] with the very body a missing one gets.

use std::collections::BTreeMap;

use airisk_core::governance::approval_workflow::ApprovalError;
use airisk_core::governance::audit_logger::AuditError;
use airisk_core::governance::model_registry::{DeploymentDenial, ModelRegistryError};
use airisk_core::governance::prompt_registry::PromptRegistryError;
use airisk_core::governance::visible_text::HiddenCharacter;
use airisk_core::input::InputError;
use airisk_core::ledger::{CheckpointError, ProofError};
use airisk_core::ports::StoreError;
use airisk_core::security::encryption::EncryptionError;
use airisk_core::security::rbac::AuthorizationError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};

use crate::context;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem details object, as every error response carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:airisk:problem:not-found`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short, fixed summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, in words (never internals).
    pub detail: String,
    /// The request's correlation id (also in the `X-Correlation-Id` header).
    pub correlation_id: String,
    /// For `urn:airisk:problem:hidden-character` only: the refused character and where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_character: Option<HiddenCharacterView>,
}

/// A character refused in text a person approves (invisible, bidirectional control, …), and
/// where it is: the extension member of a `hidden-character` problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct HiddenCharacterView {
    /// The field, e.g. `template`, `justification`, `metadata.owner`.
    pub field: String,
    /// The code point, `U+` and at least four upper-case hex digits, e.g. `U+E0041`.
    pub code_point: String,
    /// Its position in the field, in characters (Unicode scalar values) from 1.
    pub position: u64,
    /// Its line, from 1.
    pub line: u64,
    /// Its column in that line, in characters from 1.
    pub column: u64,
}

impl From<&HiddenCharacter> for HiddenCharacterView {
    fn from(h: &HiddenCharacter) -> Self {
        HiddenCharacterView {
            field: h.field.clone(),
            code_point: h.code_point(),
            position: h.position as u64,
            line: h.line as u64,
            column: h.column as u64,
        }
    }
}

/// Why a request failed. Each variant's doc names its HTTP status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the body is not well-formed JSON (or cannot be read).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no bearer token, or one that does not verify (signature, expiry, issuer, audience,
    /// claims). Sent with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller's role may not do this, or a governance rule refuses this caller (four
    /// eyes, only humans approve, only the requester cancels).
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource in the caller's tenant. Another tenant's resource gets exactly this.
    #[error("{0}")]
    NotFound(String),
    /// 404: no route matches the path.
    #[error("no route matches {0}")]
    NoRoute(String),
    /// 405: the route exists, the method does not.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// 409: the request conflicts with the current state (existing version, decided request,
    /// concurrent change, deployment refused on the merits).
    #[error("{detail}")]
    Conflict {
        /// Slug of the problem type (`conflict`, `deployment-denied`, …).
        kind: &'static str,
        /// What conflicts.
        detail: String,
    },
    /// 408: the client did not send the request body within the body read timeout. Sent with
    /// `Connection: close`.
    #[error("the request body was not received within {seconds} s")]
    RequestTimeout {
        /// The body read timeout in seconds.
        seconds: u64,
    },
    /// 413: the body is larger than the configured limit.
    #[error("the request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 415: a body was sent with a media type other than JSON.
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// 422: the body or parameters are well-formed but invalid (a query or path parameter that
    /// does not parse as its documented type is invalid too).
    #[error("{0}")]
    Unprocessable(String),
    /// 429: the caller keeps being refused; its refusals are throttled (see `throttle.rs`). Sent
    /// with `Retry-After`.
    #[error("too many refused requests from this principal; retry after {retry_after_secs} s")]
    TooManyRequests {
        /// Seconds until the next request may be refused and recorded again.
        retry_after_secs: u64,
    },
    /// 422: text a person approves holds a character they would not see (tag characters, bidi
    /// controls, zero-width characters, …); the problem names the code point and its position.
    #[error(transparent)]
    HiddenCharacter(HiddenCharacter),
    /// 503: the request took longer than the configured timeout.
    #[error("the request did not complete within {seconds} s")]
    Timeout {
        /// The timeout in seconds.
        seconds: u64,
    },
    /// 503: the store is unreachable; retry later.
    #[error("the store is unavailable; retry later")]
    Unavailable(String),
    /// 503: a key this service needs (the key-encryption key or the ledger's signing key, held by
    /// a key provider such as a PKCS#11 token) cannot be used now; nothing was written. The cause
    /// is logged with the correlation id, never sent.
    #[error("a key this service needs is unavailable; retry later")]
    KeysUnavailable(String),
    /// 500: anything else. The cause is logged with the correlation id, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) | ApiError::HiddenCharacter(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout { .. } | ApiError::Unavailable(_) | ApiError::KeysUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Slug and title of the problem type.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::BadRequest(_) => ("bad-request", "Malformed request"),
            ApiError::Unauthorized(_) => ("unauthorized", "Authentication required"),
            ApiError::Forbidden(_) => ("forbidden", "Not allowed"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::NoRoute(_) => ("no-route", "No such route"),
            ApiError::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            ApiError::Conflict { kind, .. } => (kind, "Conflict with the current state"),
            ApiError::RequestTimeout { .. } => {
                ("request-timeout", "Request body not received in time")
            }
            ApiError::PayloadTooLarge { .. } => ("payload-too-large", "Request body too large"),
            ApiError::UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
            ApiError::Unprocessable(_) => ("validation", "Invalid input"),
            ApiError::TooManyRequests { .. } => ("too-many-refusals", "Too many refused requests"),
            ApiError::HiddenCharacter(_) => ("hidden-character", "Hidden character refused"),
            ApiError::Timeout { .. } => ("timeout", "Request timed out"),
            ApiError::Unavailable(_) => ("unavailable", "Service unavailable"),
            ApiError::KeysUnavailable(_) => ("keys-unavailable", "Key provider unavailable"),
            ApiError::Internal(_) => ("internal", "Internal error"),
        }
    }

    /// The body this error renders to, for `correlation_id`.
    pub fn problem(&self, correlation_id: &str) -> Problem {
        let (slug, title) = self.kind();
        let detail = match self {
            ApiError::Internal(_) => {
                "the request failed on the server; quote the correlation id to the operator"
                    .to_owned()
            }
            // The store's own message may name hosts or files: keep it for the log.
            ApiError::Unavailable(_) => "the store is unavailable; retry later".to_owned(),
            other => other.to_string(),
        };
        Problem {
            problem_type: format!("urn:airisk:problem:{slug}"),
            title: title.to_owned(),
            status: self.status().as_u16(),
            detail,
            correlation_id: correlation_id.to_owned(),
            hidden_character: match self {
                ApiError::HiddenCharacter(h) => Some(h.into()),
                _ => None,
            },
        }
    }

    /// Renders with an explicit correlation id (for middleware outside the request's scope).
    pub fn into_response_with(self, correlation_id: &str) -> Response {
        match &self {
            ApiError::Internal(cause) => {
                tracing::error!(correlation_id, error = %cause, "internal error");
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(correlation_id, error = %cause, "store unavailable");
            }
            ApiError::KeysUnavailable(cause) => {
                tracing::warn!(correlation_id, error = %cause, "key provider unavailable");
            }
            _ => {}
        }
        let status = self.status();
        let body = serde_json::to_vec(&self.problem(correlation_id)).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"airisk\""),
            );
        }
        if status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still come: the connection cannot carry another request.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::TooManyRequests { retry_after_secs } = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let correlation_id = context::correlation_id();
        self.into_response_with(&correlation_id)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => ApiError::Conflict {
                kind: "conflict",
                detail: "the resource was changed concurrently; read it again and retry".to_owned(),
            },
            StoreError::Unavailable { message } => ApiError::Unavailable(message),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<EncryptionError> for ApiError {
    fn from(e: EncryptionError) -> Self {
        match e {
            e @ EncryptionError::ProviderUnavailable { .. } => {
                ApiError::KeysUnavailable(e.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<CheckpointError> for ApiError {
    fn from(e: CheckpointError) -> Self {
        match e {
            e @ CheckpointError::SigningUnavailable { .. } => {
                ApiError::KeysUnavailable(e.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<AuthorizationError> for ApiError {
    fn from(e: AuthorizationError) -> Self {
        ApiError::Forbidden(e.to_string())
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        ApiError::Unprocessable(e.to_string())
    }
}

impl From<ApprovalError> for ApiError {
    fn from(e: ApprovalError) -> Self {
        match e {
            ApprovalError::Forbidden(e) => e.into(),
            e @ (ApprovalError::NotHuman
            | ApprovalError::SelfApproval
            | ApprovalError::NotRequester) => ApiError::Forbidden(e.to_string()),
            ApprovalError::NotFound => ApiError::NotFound("approval request not found".into()),
            e @ (ApprovalError::AlreadyApproved { .. }
            | ApprovalError::NotPending { .. }
            | ApprovalError::Expired { .. }
            | ApprovalError::Conflict) => ApiError::Conflict {
                kind: "conflict",
                detail: e.to_string(),
            },
            ApprovalError::Invalid(e) => e.into(),
            ApprovalError::HiddenCharacter(h) => ApiError::HiddenCharacter(h),
            ApprovalError::Audit(e) => ApiError::Unprocessable(e.to_string()),
            ApprovalError::Store(e) => e.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ModelRegistryError> for ApiError {
    fn from(e: ModelRegistryError) -> Self {
        match e {
            ModelRegistryError::Forbidden(e) => e.into(),
            ModelRegistryError::NotFound => ApiError::NotFound("model version not found".into()),
            e @ ModelRegistryError::AlreadyRegistered { .. } => ApiError::Conflict {
                kind: "conflict",
                detail: e.to_string(),
            },
            ModelRegistryError::Invalid(e) => e.into(),
            ModelRegistryError::HiddenCharacter(h) => ApiError::HiddenCharacter(h),
            ModelRegistryError::Approval(e) => e.into(),
            ModelRegistryError::Audit(e) => ApiError::Unprocessable(e.to_string()),
            ModelRegistryError::Store(e) => e.into(),
            ModelRegistryError::Sealing(e) => e.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<DeploymentDenial> for ApiError {
    fn from(d: DeploymentDenial) -> Self {
        ApiError::Conflict {
            kind: "deployment-denied",
            detail: format!("deployment refused: {d}"),
        }
    }
}

impl From<PromptRegistryError> for ApiError {
    fn from(e: PromptRegistryError) -> Self {
        match e {
            PromptRegistryError::Forbidden(e) => e.into(),
            PromptRegistryError::NotFound => {
                ApiError::NotFound("prompt, version or label not found".into())
            }
            e @ (PromptRegistryError::AlreadyExists { .. }
            | PromptRegistryError::NoChange { .. }
            | PromptRegistryError::Conflict) => ApiError::Conflict {
                kind: "conflict",
                detail: e.to_string(),
            },
            e @ PromptRegistryError::MoveNotApproved { .. } => ApiError::Conflict {
                kind: "approval-required",
                detail: e.to_string(),
            },
            PromptRegistryError::Invalid(e) => e.into(),
            // Spending the approval of a label move was refused: unprocessable as it stands.
            PromptRegistryError::Approval(e) => ApiError::Unprocessable(e.to_string()),
            PromptRegistryError::HiddenCharacter(h) => ApiError::HiddenCharacter(h),
            PromptRegistryError::Audit(e) => ApiError::Unprocessable(e.to_string()),
            PromptRegistryError::Store(e) => e.into(),
            PromptRegistryError::Sealing(e) => e.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Forbidden(e) => e.into(),
            e @ AuditError::KernelNamespace { .. } => ApiError::Forbidden(e.to_string()),
            // The server writes the principal's own tenant into every record, so this cannot
            // happen through the API; if it did, it must look like a missing resource.
            AuditError::TenantIsolation(_) => ApiError::NotFound("not found".into()),
            AuditError::Invalid(e) => ApiError::Unprocessable(e.to_string()),
            AuditError::Store(e) => e.into(),
            AuditError::KeyProvider(e) => e.into(),
            AuditError::Checkpoint(e) => e.into(),
            // A tree size or entry the ledger has not reached, or a proof from a larger tree to a
            // smaller one: no such proof exists (yet), as for any missing resource. Every
            // parameter the document can state (types, minimum sizes) is a 422 before this.
            e @ AuditError::BeyondTree { .. } => ApiError::NotFound(e.to_string()),
            AuditError::Proof(
                e @ (ProofError::IndexOutOfRange { .. } | ProofError::SizesOutOfOrder { .. }),
            ) => ApiError::NotFound(e.to_string()),
            AuditError::Proof(
                e @ (ProofError::EmptyTreeConsistency | ProofError::InvalidRange { .. }),
            ) => ApiError::Unprocessable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// OpenAPI responses for a set of error statuses, all `application/problem+json` bodies.
pub(crate) fn problem_responses(
    statuses: &[(u16, &str)],
) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    statuses
        .iter()
        .map(|(status, description)| {
            let response = ResponseBuilder::new()
                .description(*description)
                .content(
                    PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                            "Problem",
                        ))))
                        .build(),
                )
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

macro_rules! error_set {
    ($(#[$doc:meta])* $name:ident: $($status:literal => $description:literal),+ $(,)?) => {
        $(#[$doc])*
        pub(crate) struct $name;
        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
                problem_responses(&[$(($status, $description)),+])
            }
        }
    };
}

error_set!(
    /// Errors of a read by a known route.
    ReadErrors:
    401 => "Missing or invalid bearer token",
    403 => "The caller's role may not read this",
    404 => "No such resource in the caller's tenant (another tenant's looks the same)",
    422 => "A parameter does not match its schema (type, range, pattern)",
    429 => "Too many requests refused to this caller; retry after Retry-After",
    503 => "Timed out, overloaded, or the store or a key provider is unavailable; retry after Retry-After",
);
error_set!(
    /// Errors of a listing (no 404).
    ListErrors:
    401 => "Missing or invalid bearer token",
    403 => "The caller's role may not read this",
    422 => "A parameter does not match its schema (type, range, pattern)",
    429 => "Too many requests refused to this caller; retry after Retry-After",
    503 => "Timed out, overloaded, or the store or a key provider is unavailable; retry after Retry-After",
);
error_set!(
    /// Errors of a write.
    WriteErrors:
    400 => "The body is not well-formed JSON",
    401 => "Missing or invalid bearer token",
    403 => "The caller's role may not do this, or a governance rule refuses the caller",
    404 => "No such resource in the caller's tenant (another tenant's looks the same)",
    408 => "The body did not arrive within the body read timeout",
    409 => "Conflict with the current state",
    413 => "The body exceeds the size limit",
    415 => "The body is not application/json",
    422 => "The body or a parameter is well-formed but invalid (schema, or a `hidden-character` problem naming the code point and its position)",
    429 => "Too many requests refused to this caller; retry after Retry-After",
    503 => "Timed out, overloaded, or the store or a key provider is unavailable; retry after Retry-After",
);
error_set!(
    /// Errors of checking the ledger against a kept checkpoint (`POST /v1/audit/verify`).
    VerifyCheckpointErrors:
    400 => "The body is not well-formed JSON",
    401 => "Missing or invalid bearer token",
    403 => "The caller's role may not verify the ledger",
    408 => "The body did not arrive within the body read timeout",
    413 => "The body exceeds the size limit",
    415 => "The body is not application/json",
    422 => "The checkpoint is missing, too long, not a signed note, not signed by this ledger's key, or for another tenant's ledger",
    429 => "Too many requests refused to this caller; retry after Retry-After",
    503 => "Timed out, overloaded, or the store or a key provider is unavailable; retry after Retry-After",
);

//! Why a console request failed, rendered as a friendly HTML page with the right status. Service
//! errors map through [`ApiError`] (one mapping for the API and the console), so a refusal reads
//! the same in both, and another tenant's resource is the same 404 as a missing one.

use airisk_core::governance::approval_workflow::ApprovalError;
use airisk_core::governance::audit_logger::AuditError;
use airisk_core::governance::model_registry::ModelRegistryError;
use airisk_core::governance::prompt_registry::PromptRegistryError;
use airisk_core::ports::StoreError;
use airisk_core::security::rbac::AuthorizationError;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::layout;
use super::session::see_other;
use crate::context;
use crate::error::ApiError;

/// A console failure. Each variant's doc names its status.
#[derive(Debug)]
pub(crate) enum ConsoleError {
    /// The status of the [`ApiError`] (403 refused, 404 missing or another tenant's, 409, 422…).
    Api(ApiError),
    /// 303 to the sign-in page, which returns to `next` afterwards.
    SignInRequired {
        /// Where to come back to.
        next: String,
    },
    /// 403: the form's CSRF token is missing, stale or not this session's.
    Csrf,
    /// 403: a POST from another site.
    CrossSite,
    /// 503: the console has no MAC key (the random generator failed at start-up).
    Unavailable,
}

macro_rules! via_api_error {
    ($($t:ty),+) => {$(
        impl From<$t> for ConsoleError {
            fn from(e: $t) -> Self {
                ConsoleError::Api(ApiError::from(e))
            }
        }
    )+};
}

via_api_error!(
    ApprovalError,
    ModelRegistryError,
    PromptRegistryError,
    AuditError,
    StoreError,
    AuthorizationError
);

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError::Api(e)
    }
}

impl ConsoleError {
    /// A 404 that reads like every other "not found".
    pub(crate) fn not_found(what: &str) -> Self {
        ConsoleError::Api(ApiError::NotFound(format!("{what} not found")))
    }

    /// A 422 for a form field.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        ConsoleError::Api(ApiError::Unprocessable(message.into()))
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let correlation = context::correlation_id();
        let (status, title, detail) = match self {
            ConsoleError::SignInRequired { next } => {
                return see_other(&format!("/console/sign-in?next={}", layout::pct(&next)));
            }
            ConsoleError::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was not sent from this session's page (its security token is missing \
                 or stale, for instance after signing in again or a restart of the service). \
                 Nothing was changed: go back, reload the page and try again."
                    .to_owned(),
            ),
            ConsoleError::CrossSite => (
                StatusCode::FORBIDDEN,
                "Refused: sent from another site",
                "The console only accepts forms sent from its own pages. Nothing was changed."
                    .to_owned(),
            ),
            ConsoleError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The console is unavailable",
                "The service could not draw a session key at start-up. Quote the correlation id \
                 to the operator."
                    .to_owned(),
            ),
            ConsoleError::Api(e) => {
                let status = e.status();
                // The cause goes to the log with the correlation id, never to the page.
                match &e {
                    ApiError::Internal(cause) => {
                        tracing::error!(correlation_id = %correlation, error = %cause, "console: internal error");
                    }
                    ApiError::Unavailable(cause) => {
                        tracing::warn!(correlation_id = %correlation, error = %cause, "console: store unavailable");
                    }
                    _ => {}
                }
                let problem = e.problem(&correlation);
                let title = match status {
                    StatusCode::FORBIDDEN => "Not allowed",
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::CONFLICT => "Not possible in the current state",
                    StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
                        "Please check what you entered"
                    }
                    StatusCode::UNAUTHORIZED => "Please sign in again",
                    StatusCode::PAYLOAD_TOO_LARGE => "Too much data",
                    StatusCode::SERVICE_UNAVAILABLE => "Please try again shortly",
                    StatusCode::TOO_MANY_REQUESTS => "Too many refused requests",
                    _ => "Something went wrong",
                };
                (status, title, problem.detail)
            }
        };
        let page = layout::error_page(status, title, &detail, &correlation);
        (status, Html(page.into_string())).into_response()
    }
}

/// Any other path under `/console`.
pub(crate) async fn not_found(request: Request) -> ConsoleError {
    ConsoleError::Api(ApiError::NotFound(format!(
        "there is no console page at {}",
        request.uri().path()
    )))
}

//! Extractors whose every failure is an [`ApiError`] (so every error is problem+json with the
//! correlation id): the authenticated caller, JSON bodies under the size limit, query strings and
//! path parameters.

use airisk_core::request::CorrelationId;
use airisk_core::security::tenant_context::Principal;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::auth::AuthError;
use crate::context;
use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller and the request's correlation id: what every service call takes.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who, in which tenant, with which role: from the verified token only.
    pub principal: Principal,
    /// The request's correlation id.
    pub correlation: CorrelationId,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then_some(token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing);
        let principal = token
            .and_then(|t| state.auth().verify(t))
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        context::set_caller(principal.tenant().as_str(), principal.actor().as_str());
        Ok(Caller {
            principal,
            correlation: context::correlation(),
        })
    }
}

/// A JSON body, read up to the configured limit (413 beyond), deserialized strictly (400 for
/// malformed JSON, 422 for a well-formed body of the wrong shape, 415 for another media type).
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config().body_limit;
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if json != Some(true) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        let bytes = Limited::new(request.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    ApiError::PayloadTooLarge { limit }
                } else {
                    ApiError::BadRequest("the request body could not be read".to_owned())
                }
            })?
            .to_bytes();
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            if e.classify() == serde_json::error::Category::Data {
                ApiError::Unprocessable(format!("invalid body: {e}"))
            } else {
                ApiError::BadRequest(format!("the body is not well-formed JSON: {e}"))
            }
        })
    }
}

/// A query string; failures are 422 (a parameter that does not match its documented schema:
/// wrong type, out of range, missing), like every other invalid parameter.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| {
                ApiError::Unprocessable(format!("invalid query string: {}", e.body_text()))
            })
    }
}

/// Path parameters; failures are 422, as for query strings.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| ApiPath(p))
            .map_err(|e| {
                ApiError::Unprocessable(format!("invalid path parameter: {}", e.body_text()))
            })
    }
}

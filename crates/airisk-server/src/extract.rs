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
        let value = serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            if e.classify() == serde_json::error::Category::Data {
                ApiError::Unprocessable(format!("invalid body: {e}"))
            } else {
                ApiError::BadRequest(format!("the body is not well-formed JSON: {e}"))
            }
        })?;
        if json_has_nul(&bytes) {
            return Err(nul_refused("the body"));
        }
        Ok(value)
    }
}

/// The 422 for a NUL character (U+0000) anywhere in a request's strings. No field of the API
/// accepts one, and PostgreSQL cannot store one in text, so it is refused at the edge, the same
/// on every store, before anything is read or written.
fn nul_refused(where_: &str) -> ApiError {
    ApiError::Unprocessable(format!(
        "{where_} contains a NUL character (U+0000), which no field accepts"
    ))
}

/// Whether a well-formed JSON text has a `\u0000` escape inside a string (a raw NUL byte is not
/// well-formed JSON, so the parser has refused it already).
fn json_has_nul(bytes: &[u8]) -> bool {
    let mut in_string = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match (in_string, b) {
            (false, b'"') => in_string = true,
            (true, b'"') => in_string = false,
            (true, b'\\') => {
                if bytes.get(i + 1) == Some(&b'u') && bytes.get(i + 2..i + 6) == Some(b"0000") {
                    return true;
                }
                // Skip the escaped character (a `\uXXXX`'s digits are never quotes).
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// Whether a raw (still percent-encoded) path or query string encodes a NUL byte (`%00`, read as
/// a decoder reads it: `%2500` is the text `%00`, not a NUL).
fn encodes_nul(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            match bytes.get(i + 1..i + 3) {
                Some(b"00") => return true,
                Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => i += 3,
                _ => i += 1,
            }
        } else {
            i += 1;
        }
    }
    false
}

/// A query string; failures are 400, a NUL character (`%00`) anywhere in it 422.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(encodes_nul) {
            return Err(nul_refused("the query string"));
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::BadRequest(format!("invalid query string: {}", e.body_text())))
    }
}

/// Path parameters; failures are 400, a NUL character (`%00`) anywhere in the path 422.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if encodes_nul(parts.uri.path()) {
            return Err(nul_refused("the path"));
        }
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| ApiPath(p))
            .map_err(|e| ApiError::BadRequest(format!("invalid path parameter: {}", e.body_text())))
    }
}

#[cfg(test)]
mod tests {
    use super::{encodes_nul, json_has_nul};

    #[test]
    fn a_nul_escape_is_found_only_inside_a_string_and_only_as_an_escape() {
        assert!(json_has_nul(br#"{"a":"x\u0000y"}"#));
        assert!(json_has_nul(br#"{"a\u0000":1}"#));
        assert!(json_has_nul(br#"{"m":{"k":["\u0000"]}}"#));
        assert!(
            !json_has_nul(br#"{"a":"x\\u0000y"}"#),
            "an escaped backslash, then text"
        );
        assert!(!json_has_nul(br#"{"a":"\u0001"}"#));
        assert!(!json_has_nul(br#"{"a":"u0000","b":0}"#));
        assert!(json_has_nul(br#"{"a":"\"","b":"\u0000"}"#));
    }

    #[test]
    fn a_percent_encoded_nul_is_found_as_a_decoder_reads_it() {
        assert!(encodes_nul("actor=%00"));
        assert!(encodes_nul("/v1/models/credit%00/versions/1"));
        assert!(encodes_nul("a=%%00"));
        assert!(!encodes_nul("actor=%2500"), "the text %00");
        assert!(!encodes_nul("offset=100&limit=1000"));
        assert!(!encodes_nul("a=%0"));
    }
}

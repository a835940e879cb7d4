//! Extractors whose every failure is an [`ApiError`] (so every error is problem+json with the
//! correlation id): the authenticated caller, JSON bodies under the size limit, query strings and
//! path parameters.

use airisk_core::request::CorrelationId;
use airisk_core::security::tenant_context::Principal;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::auth::AuthError;
use crate::context;
use crate::error::ApiError;
use crate::state::AppState;
use crate::throttle;

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
        let principal = match token {
            Ok(t) => state.auth().verify_fresh(t).await,
            Err(e) => Err(e),
        };
        let principal = match principal {
            Ok(p) => p,
            // Genuine but not mapped to a tenant and one role here: 403, and on the record.
            Err(e @ AuthError::NotMapped { .. }) => {
                crate::mapping::record_refusal(state, &e, context::correlation().as_ref()).await;
                return Err(ApiError::Forbidden(e.to_string()));
            }
            Err(e) => return Err(ApiError::Unauthorized(e.to_string())),
        };
        context::set_caller(principal.tenant().as_str(), principal.actor().as_str());
        // A principal that keeps being refused waits before anything else runs (and is recorded).
        let key = throttle::key_of(&principal);
        if let Err(wait) = state.denials().check(&key) {
            return Err(ApiError::TooManyRequests {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        if let Some(slot) = parts.extensions.get::<throttle::CallerSlot>() {
            slot.set(key);
        }
        // Admission after authentication, before the body is read: see `crate::admission`.
        context::admit(state, principal.tenant().as_str()).await?;
        Ok(Caller {
            principal,
            correlation: context::correlation(),
        })
    }
}

/// A JSON body, read up to the configured limit (413 beyond) within the body read timeout (408
/// beyond), deserialized strictly (400 for malformed JSON, 422 for a well-formed body of the wrong
/// shape, 415 for another media type).
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
        let read = state.config().body_read_timeout;
        let bytes = tokio::time::timeout(read, Limited::new(request.into_body(), limit).collect())
            .await
            .map_err(|_| ApiError::RequestTimeout {
                seconds: read.as_secs().max(1),
            })?
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

/// A query string; failures are 422 (a parameter that does not match its documented schema:
/// wrong type, out of range, missing), like every other invalid parameter; so is a NUL character
/// (`%00`) anywhere in it.
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
            .map_err(|e| {
                ApiError::Unprocessable(format!("invalid query string: {}", e.body_text()))
            })
    }
}

/// Path parameters; failures are 422, as for query strings, and so is a NUL character (`%00`)
/// anywhere in the path.
///
/// A parameter whose percent-decoded bytes are not UTF-8 is not refused here: it is handed on
/// with every byte that is not part of valid UTF-8 kept as its `%XX` escape (upper-case hex), so
/// the service still checks the caller and records its refusal (a name holding `%` matches no
/// resource).
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
        let bad = |e: String| ApiError::Unprocessable(format!("invalid path parameter: {e}"));
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(p)) => Ok(ApiPath(p)),
            Err(PathRejection::FailedToDeserializePathParams(e))
                if matches!(e.kind(), ErrorKind::InvalidUtf8InPathParam { .. }) =>
            {
                // axum refuses the raw parameters too, so they are read from the path itself:
                // the segments where the matched template has a `{parameter}`.
                let template = parts
                    .extensions
                    .get::<MatchedPath>()
                    .ok_or_else(|| bad(e.to_string()))?;
                let template: Vec<&str> = template.as_str().split('/').collect();
                let raw: Vec<&str> = parts.uri.path().split('/').collect();
                if template.len() != raw.len() {
                    return Err(bad(e.to_string()));
                }
                let values: Vec<serde_json::Value> = template
                    .iter()
                    .zip(&raw)
                    .filter(|(t, _)| t.starts_with('{') && t.ends_with('}'))
                    .map(|(_, v)| serde_json::Value::String(escape_invalid_utf8(v)))
                    .collect();
                let value = match <[serde_json::Value; 1]>::try_from(values) {
                    Ok([one]) => one,
                    Err(many) => serde_json::Value::Array(many),
                };
                serde_json::from_value(value)
                    .map(ApiPath)
                    .map_err(|e| bad(e.to_string()))
            }
            Err(e) => Err(bad(e.body_text())),
        }
    }
}

/// Percent-decodes `raw`, keeping every byte that is not part of valid UTF-8 as `%XX`.
fn escape_invalid_utf8(raw: &str) -> String {
    let bytes: Vec<u8> = percent_decode(raw.as_bytes());
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'%'
            && let (Some(h), Some(l)) = (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
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

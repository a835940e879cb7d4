//! Who is signed in for a request ([`Identity`]) and the extractors handlers take it with, plus
//! the redirect helpers of the sign-in flow.

use airisk_core::security::tenant_context::Principal;
use axum::RequestPartsExt;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::cookies::CookiePolicy;
use super::error::ConsoleError;
use super::session_store::SessionData;
use crate::context;
use crate::extract::Caller;
use crate::state::AppState;

pub(crate) use super::csrf::CSRF_FIELD;

/// The sign-in path (its POST is checked against the pre-session cookie).
pub(crate) const SIGN_IN_PATH: &str = "/console/sign-in";

/// Who is signed in, for this request: from the verified token only.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The verified principal.
    pub(crate) principal: Principal,
    /// The CSRF token every form of this session carries.
    pub(crate) csrf: String,
    /// The token's expiry (seconds since the epoch).
    pub(crate) expires_at: u64,
    /// Signed in by the SSO proxy's header (sign-out cannot end that).
    pub(crate) via_proxy: bool,
    /// The server-side session of a person signed in through the OpenID provider (`None` for a
    /// token's session: dev mode's pasted token, the SSO proxy's header).
    pub(crate) session: Option<Box<SessionData>>,
}

impl Identity {
    /// What every service call takes, with this request's correlation id.
    pub(crate) fn caller(&self) -> Caller {
        Caller {
            principal: self.principal.clone(),
            correlation: context::correlation(),
        }
    }
}

/// The signed-in person, or a redirect to the sign-in page (which comes back here afterwards).
#[derive(Debug, Clone)]
pub(crate) struct Signed(pub(crate) Identity);

impl FromRequestParts<AppState> for Signed {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Identity>() {
            Some(id) => {
                // The denial throttle covers the console's forms as it covers the API.
                let key = crate::throttle::key_of(&id.principal);
                if let Err(wait) = state.denials().check(&key) {
                    return Err(ConsoleError::Api(crate::ApiError::TooManyRequests {
                        retry_after_secs: wait.as_secs().max(1),
                    }));
                }
                if let Some(slot) = parts.extensions.get::<crate::throttle::CallerSlot>() {
                    slot.set(key);
                }
                Ok(Signed(id.clone()))
            }
            None => {
                let uri = parts.extract::<axum::http::Uri>().await.ok();
                let next = uri
                    .and_then(|u| u.path_and_query().map(|p| p.as_str().to_owned()))
                    .unwrap_or_else(|| "/console/queue".to_owned());
                Err(ConsoleError::SignInRequired { next })
            }
        }
    }
}

/// The signed-in person if any (the sign-in page).
#[derive(Debug, Clone)]
pub(crate) struct MaybeSigned(pub(crate) Option<Identity>, pub(crate) CookiePolicy);

impl FromRequestParts<AppState> for MaybeSigned {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let policy = parts
            .extensions
            .get::<CookiePolicy>()
            .copied()
            // Set by the console's middleware on every console request; fail closed otherwise.
            .unwrap_or(CookiePolicy { secure: true });
        Ok(MaybeSigned(
            parts.extensions.get::<Identity>().cloned(),
            policy,
        ))
    }
}

/// A 303 See Other to `location` (POST-redirect-GET).
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// A `next` target is followed only if it is a console path (no open redirect).
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/console" || n.starts_with("/console/"))
                && !n.contains("//")
                && !n.contains('\\')
                && !n.starts_with(SIGN_IN_PATH) =>
        {
            n.to_owned()
        }
        _ => "/console/queue".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_targets_stay_inside_the_console() {
        assert_eq!(safe_next(Some("/console/audit?x=1")), "/console/audit?x=1");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/console//evil",
            "/v1/models",
            "/console/sign-in",
            "/console\\evil",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console/queue", "{bad}");
        }
        assert_eq!(safe_next(None), "/console/queue");
    }
}

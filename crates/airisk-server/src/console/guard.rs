//! The console's middleware: finds the session of a request, checks every POST (same origin,
//! CSRF token) before any handler runs, and sets the security headers on every response.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::cookies::{CookiePolicy, cookie_safe, read_cookie};
use super::csrf::{CsrfKey, cross_site, csrf_of};
use super::error::ConsoleError;
use super::headers::security_headers;
use super::session::{Identity, SIGN_IN_PATH};
use super::session_store::{self, Record, SESSION_PURPOSE, SessionData, hash_hex};
use super::{Console, ConsoleConfig};
use crate::context;
use crate::state::AppState;
use airisk_core::governance::audit_record::Outcome;

/// The token the SSO proxy's header carries, if the header is configured and present.
fn proxy_token<'a>(config: &ConsoleConfig, headers: &'a HeaderMap) -> Option<&'a str> {
    let name = config.trusted_header.as_ref()?;
    let value = headers.get(name)?.to_str().ok()?.trim();
    let token = match value.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => value,
    };
    (!token.is_empty()).then_some(token)
}

/// The outcome of looking for a session.
struct Resolved {
    identity: Option<Identity>,
    /// Set-Cookie headers to add to the response (adopting the proxy's token, or clearing a
    /// cookie that no longer verifies).
    cookies: Vec<HeaderValue>,
    /// The session token (for the CSRF check).
    token: Option<String>,
}

async fn resolve(
    app: &AppState,
    console: &Console,
    keys: &CsrfKey,
    headers: &HeaderMap,
    policy: CookiePolicy,
) -> Resolved {
    let cookie = read_cookie(headers, policy.session_name());
    let mut cookies = Vec::new();
    // The proxy, when configured and present, is authoritative: it authenticated this request.
    if let Some(token) = proxy_token(&console.config, headers) {
        return match app.auth().verify_claims_fresh(token).await.and_then(|c| {
            let p = c.principal()?;
            Ok((p, c.exp))
        }) {
            Ok((principal, exp)) => {
                if cookie != Some(token) && cookie_safe(token) {
                    cookies.extend(policy.set_session(token, exp));
                }
                Resolved {
                    identity: Some(Identity {
                        principal,
                        csrf: keys.session_csrf(token),
                        expires_at: exp,
                        via_proxy: true,
                        session: None,
                    }),
                    cookies,
                    token: Some(token.to_owned()),
                }
            }
            Err(e) => {
                tracing::info!(error = %e, "console: the SSO proxy's token was refused");
                if cookie.is_some() {
                    cookies.extend(policy.clear_session());
                }
                Resolved {
                    identity: None,
                    cookies,
                    token: None,
                }
            }
        };
    }
    let Some(value) = cookie else {
        return Resolved {
            identity: None,
            cookies,
            token: None,
        };
    };
    if value.starts_with("v1.") {
        return sealed_session(app, console, keys, value, policy).await;
    }
    // A cookie holding a token: only where tokens sign people in (dev mode's pasted token, or
    // the SSO proxy's token adopted as the cookie).
    let token = value;
    if !console.config.token_sign_in && console.config.trusted_header.is_none() {
        cookies.extend(policy.clear_session());
        return Resolved {
            identity: None,
            cookies,
            token: None,
        };
    }
    match app.auth().verify_claims_fresh(token).await.and_then(|c| {
        let p = c.principal()?;
        Ok((p, c.exp))
    }) {
        Ok((principal, exp)) => Resolved {
            identity: Some(Identity {
                principal,
                csrf: keys.session_csrf(token),
                expires_at: exp,
                via_proxy: false,
                session: None,
            }),
            cookies,
            token: Some(token.to_owned()),
        },
        Err(e) => {
            // Expired or no longer trusted: forget it.
            tracing::info!(error = %e, "console: the session token no longer verifies");
            cookies.extend(policy.clear_session());
            Resolved {
                identity: None,
                cookies,
                token: None,
            }
        }
    }
}

/// A session of a person signed in through the OpenID provider: opened, checked against its
/// timeouts and the ledger (signed out elsewhere?), and re-sealed with its new "last used" time.
/// See [`super::session_store`].
async fn sealed_session(
    app: &AppState,
    console: &Console,
    keys: &CsrfKey,
    value: &str,
    policy: CookiePolicy,
) -> Resolved {
    let nobody = |cookies: Vec<HeaderValue>| Resolved {
        identity: None,
        cookies,
        token: None,
    };
    let Some(seal) = console.seal.as_ref() else {
        return nobody(policy.clear_session().into_iter().collect());
    };
    let Some(mut session) = seal.open::<SessionData>(SESSION_PURPOSE, value) else {
        // Tampered, sealed under another secret, or from before a restart in dev mode.
        tracing::info!("console: a session cookie that does not open was dropped");
        return nobody(policy.clear_session().into_iter().collect());
    };
    let config = &console.config.session;
    let now = session_store::now(app);
    match session_store::ended(app, &session).await {
        Ok(true) => return nobody(policy.clear_session().into_iter().collect()),
        Ok(false) => {}
        Err(e) => {
            // Fail closed, but keep the cookie: the ledger may answer the next request.
            tracing::warn!(error = %e, "console: could not check whether a session was ended");
            return nobody(Vec::new());
        }
    }
    if let Some(why) = session.expired(config, now) {
        let reason = match why {
            "idle" => format!(
                "the session was unused for {} s (idle timeout)",
                config.idle_timeout.as_secs()
            ),
            _ => format!(
                "the session is older than {} s (absolute timeout)",
                config.absolute_timeout.as_secs()
            ),
        };
        let recorded = session_store::record(
            app,
            Record {
                tenant: Some(&session.tenant),
                actor: Some(&session.actor),
                action: "auth.session_expired",
                outcome: Outcome::Success,
                resource_id: &hash_hex(&session.sid),
                reason: Some(reason),
                metadata: Some(serde_json::json!({ "timeout": why })),
            },
        )
        .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, "console: could not record a session expiry");
        }
        return nobody(policy.clear_session().into_iter().collect());
    }
    let Some(principal) = session.principal() else {
        return nobody(policy.clear_session().into_iter().collect());
    };
    session.seen = now;
    let mut cookies = Vec::new();
    let max_age = session
        .created
        .saturating_add(config.absolute_timeout.as_secs())
        .saturating_sub(now);
    if let Some(resealed) = seal.seal(SESSION_PURPOSE, &session) {
        cookies.extend(policy.set_session_for(&resealed, max_age));
    }
    Resolved {
        identity: Some(Identity {
            principal,
            csrf: keys.session_csrf(&session.sid),
            expires_at: session.ends_at(config),
            via_proxy: false,
            session: Some(Box::new(session.clone())),
        }),
        cookies,
        token: Some(session.sid),
    }
}

/// The console's middleware: finds the session, checks every POST (same origin, CSRF token),
/// and sets the security headers on every response.
pub(crate) async fn guard(
    State(app): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = checked(&app, &console, request, next).await;
    security_headers(response.headers_mut());
    response
}

async fn checked(app: &AppState, console: &Console, request: Request, next: Next) -> Response {
    let Some(keys) = console.keys.as_ref() else {
        return ConsoleError::Unavailable.into_response();
    };
    let policy = console.cookies;
    let resolved = resolve(app, console, keys, request.headers(), policy).await;
    if let Some(id) = &resolved.identity {
        context::set_caller(
            id.principal.tenant().as_str(),
            id.principal.actor().as_str(),
        );
        // A signed-in person's pages call the services: they take an admission slot of their
        // tenant's share, like `/v1` requests (see `crate::admission`). The sign-in page and
        // assets, unauthenticated, take none.
        if let Err(e) = context::admit(app, id.principal.tenant().as_str()).await {
            return with_cookies(ConsoleError::Api(e).into_response(), &resolved.cookies);
        }
    }
    let (parts, body) = request.into_parts();
    let request = if parts.method == Method::POST {
        if cross_site(&parts.headers, app.config().public_url.as_ref()) {
            return with_cookies(ConsoleError::CrossSite.into_response(), &resolved.cookies);
        }
        let limit = app.config().body_limit;
        let read = app.config().body_read_timeout;
        let bytes = match tokio::time::timeout(read, axum::body::to_bytes(body, limit)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => {
                return with_cookies(
                    ConsoleError::Api(crate::ApiError::PayloadTooLarge { limit }).into_response(),
                    &resolved.cookies,
                );
            }
            Err(_) => {
                return with_cookies(
                    ConsoleError::Api(crate::ApiError::RequestTimeout {
                        seconds: read.as_secs().max(1),
                    })
                    .into_response(),
                    &resolved.cookies,
                );
            }
        };
        let presented = csrf_of(&bytes).unwrap_or_default();
        let ok = if parts.uri.path() == SIGN_IN_PATH {
            read_cookie(&parts.headers, policy.presession_name())
                .is_some_and(|nonce| keys.check_sign_in_csrf(nonce, &presented))
        } else {
            match &resolved.token {
                Some(token) => keys.check_session_csrf(token, &presented),
                None => {
                    return with_cookies(
                        ConsoleError::SignInRequired {
                            next: "/console/queue".to_owned(),
                        }
                        .into_response(),
                        &resolved.cookies,
                    );
                }
            }
        };
        if !ok {
            return with_cookies(ConsoleError::Csrf.into_response(), &resolved.cookies);
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        Request::from_parts(parts, body)
    };
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(policy);
    if let Some(id) = resolved.identity {
        parts.extensions.insert(id);
    }
    let response = next.run(Request::from_parts(parts, body)).await;
    with_cookies(response, &resolved.cookies)
}

/// Adds the session's cookies to `response`, except those the handler set itself: a handler's
/// decision (sign-out clearing the session, a sign-in replacing it) wins over the middleware's
/// refresh of the session it found.
fn with_cookies(mut response: Response, cookies: &[HeaderValue]) -> Response {
    fn name(v: &HeaderValue) -> Option<&str> {
        v.to_str().ok()?.split_once('=').map(|(n, _)| n.trim())
    }
    let set: Vec<String> = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| name(v).map(str::to_owned))
        .collect();
    for c in cookies {
        if name(c).is_some_and(|n| set.iter().any(|s| s == n)) {
            continue;
        }
        response.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    response
}

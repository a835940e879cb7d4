//! Console sessions: the verified JWT kept in an `HttpOnly`, `SameSite=Strict` cookie, and the
//! synchronizer (CSRF) tokens bound to it. See the module docs of [`crate::console`].

use std::sync::Arc;

use airisk_core::security::tenant_context::Principal;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, RequestPartsExt};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::error::ConsoleError;
use super::{Console, ConsoleConfig};
use crate::auth::now_secs;
use crate::context;
use crate::extract::Caller;
use crate::state::{AppState, PublicUrl};

/// The session cookie's name when insecure cookies are configured (dev mode, or knowingly on
/// loopback): no `Secure`, so no `__Host-` prefix.
pub(crate) const SESSION_COOKIE: &str = "airisk-console";
/// The session cookie's name otherwise (`Secure`; the prefix pins it to this host and `/`).
pub(crate) const SECURE_SESSION_COOKIE: &str = "__Host-airisk-console";
/// The pre-session cookie that binds the sign-in form's CSRF token, when insecure.
pub(crate) const PRESESSION_COOKIE: &str = "airisk-console-pre";
/// The pre-session cookie otherwise.
pub(crate) const SECURE_PRESESSION_COOKIE: &str = "__Host-airisk-console-pre";
/// The form field every POST carries its CSRF token in.
pub(crate) const CSRF_FIELD: &str = "csrf";
/// The sign-in path (its POST is checked against the pre-session cookie).
pub(crate) const SIGN_IN_PATH: &str = "/console/sign-in";
/// A token longer than this does not fit a cookie (browsers keep about 4 KiB per cookie).
pub(crate) const MAX_TOKEN_LEN: usize = 3800;
/// The pre-session cookie lives this long (seconds): time to paste a token.
const PRESESSION_MAX_AGE: u64 = 3600;

/// The console's MAC key (drawn at start-up from the system's random generator).
pub(crate) struct Keys {
    mac: hmac::Key,
}

impl Keys {
    /// A fresh key; `None` if the random generator fails.
    pub(crate) fn generate() -> Option<Self> {
        hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .ok()
            .map(|mac| Keys { mac })
    }

    fn message(purpose: &str, data: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(32 + purpose.len() + data.len());
        m.extend_from_slice(b"airisk-console/");
        m.extend_from_slice(purpose.as_bytes());
        m.push(0);
        m.extend_from_slice(data);
        m
    }

    fn tag(&self, purpose: &str, data: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.mac, &Self::message(purpose, data)).as_ref())
    }

    /// Constant-time check of a presented tag (ring's `hmac::verify`).
    fn check(&self, purpose: &str, data: &[u8], presented: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(presented.as_bytes()) else {
            return false;
        };
        hmac::verify(&self.mac, &Self::message(purpose, data), &tag).is_ok()
    }

    /// The CSRF token of a session: bound to its JWT (through the token's SHA-256).
    pub(crate) fn session_csrf(&self, token: &str) -> String {
        self.tag(
            "session",
            ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref(),
        )
    }

    fn check_session_csrf(&self, token: &str, presented: &str) -> bool {
        self.check(
            "session",
            ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref(),
            presented,
        )
    }

    /// The sign-in form's CSRF token, bound to the pre-session cookie's nonce.
    pub(crate) fn sign_in_csrf(&self, nonce: &str) -> String {
        self.tag("sign-in", nonce.as_bytes())
    }

    fn check_sign_in_csrf(&self, nonce: &str, presented: &str) -> bool {
        self.check("sign-in", nonce.as_bytes(), presented)
    }
}

/// A fresh random nonce for the pre-session cookie.
pub(crate) fn new_nonce() -> Option<String> {
    let mut bytes = [0u8; 18];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

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

/// How cookies are set: from the configuration only, never from a request header (a proxy may
/// well forward `Host: 127.0.0.1`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CookiePolicy {
    /// `Secure` (and `__Host-` names): always, unless insecure cookies are configured and the
    /// public URL is not https.
    pub(crate) secure: bool,
}

impl CookiePolicy {
    /// The policy `config` and the service's public URL call for: `Secure` when the public URL
    /// is https, whatever else is set; insecure only when `dangerous_insecure_cookies` is set;
    /// else `Secure` (fail closed).
    pub(crate) fn configured(config: &ConsoleConfig, public_url: Option<&PublicUrl>) -> Self {
        let https = public_url.is_some_and(PublicUrl::is_https);
        CookiePolicy {
            secure: https || !config.dangerous_insecure_cookies,
        }
    }

    pub(crate) fn session_name(self) -> &'static str {
        if self.secure {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        }
    }

    pub(crate) fn presession_name(self) -> &'static str {
        if self.secure {
            SECURE_PRESESSION_COOKIE
        } else {
            PRESESSION_COOKIE
        }
    }

    fn cookie(self, name: &str, value: &str, max_age: u64) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
        ))
        .ok()
    }

    /// Keeps `token` until its expiry.
    pub(crate) fn set_session(self, token: &str, expires_at: u64) -> Option<HeaderValue> {
        let max_age = expires_at.saturating_sub(now_secs());
        self.cookie(self.session_name(), token, max_age)
    }

    pub(crate) fn clear_session(self) -> Option<HeaderValue> {
        self.cookie(self.session_name(), "", 0)
    }

    pub(crate) fn set_presession(self, nonce: &str) -> Option<HeaderValue> {
        self.cookie(self.presession_name(), nonce, PRESESSION_MAX_AGE)
    }

    pub(crate) fn clear_presession(self) -> Option<HeaderValue> {
        self.cookie(self.presession_name(), "", 0)
    }
}

/// The value of cookie `name`, if sent.
pub(crate) fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Whether a token can be kept in a cookie verbatim (a JWT is base64url and dots).
pub(crate) fn cookie_safe(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

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
    keys: &Keys,
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
    let Some(token) = cookie else {
        return Resolved {
            identity: None,
            cookies,
            token: None,
        };
    };
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

/// Whether a POST comes from another site (checked before the CSRF token, as a second wall). A
/// sent `Origin` must be the configured public URL's origin when there is one (behind a proxy the
/// `Host` the service sees need not be what the browser addressed), else the `Host`'s.
fn cross_site(headers: &HeaderMap, public_url: Option<&PublicUrl>) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    // Under `Referrer-Policy: no-referrer` browsers send `Origin: null` on form posts: it tells
    // nothing, so the Fetch Metadata above and the CSRF token decide.
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| *o != "null");
    if let (Some(origin), Some(public)) = (origin, public_url) {
        return !origin.eq_ignore_ascii_case(public.origin());
    }
    match (origin, host) {
        (None, _) => false,
        (Some(origin), Some(host)) => {
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            authority != Some(host)
        }
        (Some(_), None) => true,
    }
}

/// The `csrf` field of a URL-encoded form body (its value is base64url: no decoding needed).
fn csrf_of(body: &[u8]) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == CSRF_FIELD)
        .map(|(_, v)| v.to_owned())
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

fn with_cookies(mut response: Response, cookies: &[HeaderValue]) -> Response {
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    response
}

/// The Content-Security-Policy of every console response.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    // Pages are personal and change with every decision: never stored. Assets set their own.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
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
    fn csrf_tokens_are_bound_to_their_session_and_purpose() {
        let keys = Keys::generate().unwrap();
        let t = keys.session_csrf("a.b.c");
        assert!(keys.check_session_csrf("a.b.c", &t));
        assert!(!keys.check_session_csrf("a.b.d", &t));
        assert!(!keys.check_session_csrf("a.b.c", ""));
        assert!(!keys.check_session_csrf("a.b.c", "not base64!"));
        assert!(!keys.check_sign_in_csrf("a.b.c", &t));
        let other = Keys::generate().unwrap();
        assert!(!other.check_session_csrf("a.b.c", &t));
    }

    #[test]
    fn cookies_are_secure_unless_configured_insecure_and_always_under_an_https_url() {
        let https = PublicUrl::parse("https://risk.bank.example").unwrap();
        let http = PublicUrl::parse("http://127.0.0.1:8080").unwrap();
        let insecure = ConsoleConfig {
            dangerous_insecure_cookies: true,
            ..ConsoleConfig::default()
        };
        let default = ConsoleConfig::default();
        assert!(CookiePolicy::configured(&default, None).secure);
        assert!(CookiePolicy::configured(&default, Some(&http)).secure);
        assert!(CookiePolicy::configured(&insecure, Some(&https)).secure);
        assert!(!CookiePolicy::configured(&insecure, None).secure);
        assert!(!CookiePolicy::configured(&insecure, Some(&http)).secure);
    }

    #[test]
    fn cookies_are_httponly_strict_and_secure_off_loopback() {
        let local = CookiePolicy { secure: false };
        let remote = CookiePolicy { secure: true };
        let exp = now_secs() + 60;
        let l = local.set_session("x.y.z", exp).unwrap();
        let l = l.to_str().unwrap();
        assert!(l.starts_with("airisk-console=x.y.z; Path=/; HttpOnly; SameSite=Strict; Max-Age="));
        assert!(!l.contains("Secure"));
        let r = remote.set_session("x.y.z", exp).unwrap();
        let r = r.to_str().unwrap();
        assert!(r.starts_with("__Host-airisk-console=x.y.z;"));
        assert!(r.ends_with("; Secure"));
        assert!(
            remote
                .clear_session()
                .unwrap()
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }

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

    #[test]
    fn only_same_origin_posts_pass_the_origin_check() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(!cross_site(&h, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(!cross_site(&h, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(cross_site(&h, None));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!cross_site(&h, None));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h, None));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(!cross_site(&h, None));
        // Behind a proxy forwarding `Host: 127.0.0.1`, the public URL's origin is this origin.
        let public = PublicUrl::parse("https://risk.bank.example").unwrap();
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://risk.bank.example"),
        );
        assert!(!cross_site(&h, Some(&public)));
        assert!(cross_site(&h, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(cross_site(&h, Some(&public)));
    }

    #[test]
    fn the_csrf_field_is_read_from_a_form_body() {
        assert_eq!(csrf_of(b"reason=ok&csrf=abc_-1").as_deref(), Some("abc_-1"));
        assert_eq!(csrf_of(b"reason=ok"), None);
    }
}

//! The console's cookie policy: names, attributes (`HttpOnly`, `SameSite`, `Secure` and the
//! `__Host-` prefix, decided by configuration only) and reading them back.

use axum::http::{HeaderMap, HeaderValue, header};

use super::ConsoleConfig;
use crate::auth::now_secs;
use crate::state::PublicUrl;

/// The session cookie's name when insecure cookies are configured (dev mode, or knowingly on
/// loopback): no `Secure`, so no `__Host-` prefix.
pub(crate) const SESSION_COOKIE: &str = "airisk-console";
/// The session cookie's name otherwise (`Secure`; the prefix pins it to this host and `/`).
pub(crate) const SECURE_SESSION_COOKIE: &str = "__Host-airisk-console";
/// The pre-session cookie that binds the sign-in form's CSRF token, when insecure.
pub(crate) const PRESESSION_COOKIE: &str = "airisk-console-pre";
/// The pre-session cookie otherwise.
pub(crate) const SECURE_PRESESSION_COOKIE: &str = "__Host-airisk-console-pre";
/// The sign-in flow cookie (state, nonce, PKCE verifier, sealed), when insecure.
pub(crate) const FLOW_COOKIE: &str = "airisk-console-flow";
/// The sign-in flow cookie otherwise.
pub(crate) const SECURE_FLOW_COOKIE: &str = "__Host-airisk-console-flow";
/// The sign-in flow cookie lives this long (seconds): time to sign in at the provider.
pub(crate) const FLOW_MAX_AGE: u64 = 600;
/// A token longer than this does not fit a cookie (browsers keep about 4 KiB per cookie).
pub(crate) const MAX_TOKEN_LEN: usize = 3800;
/// The pre-session cookie lives this long (seconds): time to paste a token.
const PRESESSION_MAX_AGE: u64 = 3600;

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

    pub(crate) fn flow_name(self) -> &'static str {
        if self.secure {
            SECURE_FLOW_COOKIE
        } else {
            FLOW_COOKIE
        }
    }

    fn cookie(self, name: &str, value: &str, max_age: u64) -> Option<HeaderValue> {
        self.cookie_same_site(name, value, max_age, "Strict")
    }

    fn cookie_same_site(
        self,
        name: &str,
        value: &str,
        max_age: u64,
        same_site: &str,
    ) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"
        ))
        .ok()
    }

    /// Keeps a sealed session for `max_age` seconds.
    pub(crate) fn set_session_for(self, sealed: &str, max_age: u64) -> Option<HeaderValue> {
        self.cookie(self.session_name(), sealed, max_age)
    }

    /// Keeps a sealed sign-in flow. `SameSite=Lax`, not `Strict`: the provider sends the browser
    /// back with a top-level GET from its own site, and a `Strict` cookie would not come along.
    /// It holds no authority: only the state, nonce and PKCE verifier of one sign-in.
    pub(crate) fn set_flow(self, sealed: &str) -> Option<HeaderValue> {
        self.cookie_same_site(self.flow_name(), sealed, FLOW_MAX_AGE, "Lax")
    }

    pub(crate) fn clear_flow(self) -> Option<HeaderValue> {
        self.cookie_same_site(self.flow_name(), "", 0, "Lax")
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

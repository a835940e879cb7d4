//! CSRF defences of the console's forms: the synchronizer tokens (an HMAC-SHA-256 bound to the
//! session or, on the sign-in page, to a pre-session cookie) and the same-origin check that runs
//! before them. See the module docs of [`crate::console`].

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::state::PublicUrl;

/// The form field every POST carries its CSRF token in.
pub(crate) const CSRF_FIELD: &str = "csrf";

/// The console's MAC key (drawn at start-up from the system's random generator).
pub(crate) struct CsrfKey {
    mac: hmac::Key,
}

impl CsrfKey {
    /// A fresh key; `None` if the random generator fails.
    pub(crate) fn generate() -> Option<Self> {
        hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .ok()
            .map(|mac| CsrfKey { mac })
    }

    /// CsrfKey from a MAC key derived from the configured session secret (the same on every
    /// replica holding it).
    pub(crate) fn from_key(mac: hmac::Key) -> Self {
        CsrfKey { mac }
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

    pub(crate) fn check_session_csrf(&self, token: &str, presented: &str) -> bool {
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

    pub(crate) fn check_sign_in_csrf(&self, nonce: &str, presented: &str) -> bool {
        self.check("sign-in", nonce.as_bytes(), presented)
    }
}

/// A fresh random nonce for the pre-session cookie.
pub(crate) fn new_nonce() -> Option<String> {
    let mut bytes = [0u8; 18];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether a POST comes from another site (checked before the CSRF token, as a second wall). A
/// sent `Origin` must be the configured public URL's origin when there is one (behind a proxy the
/// `Host` the service sees need not be what the browser addressed), else the `Host`'s.
pub(crate) fn cross_site(headers: &HeaderMap, public_url: Option<&PublicUrl>) -> bool {
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
pub(crate) fn csrf_of(body: &[u8]) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == CSRF_FIELD)
        .map(|(_, v)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn csrf_tokens_are_bound_to_their_session_and_purpose() {
        let keys = CsrfKey::generate().unwrap();
        let t = keys.session_csrf("a.b.c");
        assert!(keys.check_session_csrf("a.b.c", &t));
        assert!(!keys.check_session_csrf("a.b.d", &t));
        assert!(!keys.check_session_csrf("a.b.c", ""));
        assert!(!keys.check_session_csrf("a.b.c", "not base64!"));
        assert!(!keys.check_sign_in_csrf("a.b.c", &t));
        let other = CsrfKey::generate().unwrap();
        assert!(!other.check_session_csrf("a.b.c", &t));
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

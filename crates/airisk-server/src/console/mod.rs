//! The approver console: server-rendered HTML pages under `/console` for the people in the loop
//! (approvers, risk officers, auditors).
//!
//! # What it is, and what it is not
//!
//! * **The same identity, services and rules as the API.** A person signs in through the bank's
//!   OpenID provider ([`oidc_sign_in`]), or is signed in by the bank's SSO proxy's header, or,
//!   in dev mode only, pastes the JWT the API takes; the principal, its role and its tenant come
//!   from the verified ID token or JWT and the issuer's claim mapping only. Every page
//!   calls the same services with the same [`crate::Caller`] the API builds, so RBAC, the tenant
//!   wall, four eyes and the audit records are the API's, never a side path. A page hides what
//!   the role may not do (a viewer sees no approve button), but the server refuses it anyway.
//! * **Plain HTML first.** Every flow works without JavaScript: GET pages, POST forms, and a 303
//!   redirect after each successful POST (POST-redirect-GET). The one small script only adds
//!   comfort (local times). Every asset is compiled into the binary ([`assets`]); nothing is
//!   fetched from elsewhere.
//! * **Strict headers.** Every response carries a Content-Security-Policy that admits only this
//!   origin's script and style (no inline script, no `style` attribute), `nosniff`,
//!   `no-referrer`, `frame-ancestors 'none'`, and pages are `no-store`.
//!
//! # Sessions, cookies and CSRF
//!
//! One module per job: [`session`] (who is signed in, the extractors), [`session_store`] (the
//! sealed session of a person signed in through the provider: 256-bit random id, idle and
//! absolute timeouts, ended everywhere by an `auth.sign_out` record in the tenant's ledger),
//! [`cookies`] (names and attributes), [`csrf`] (synchronizer tokens and the same-origin check),
//! [`guard`] (the middleware that resolves the session and checks every POST first) and
//! [`headers`] (the security headers).
//!
//! Every cookie is `HttpOnly`, `Path=/`, and `Secure` (named with the `__Host-` prefix) by
//! configuration, never by a request header: always when the service's public URL is https, and
//! unless [`ConsoleConfig::dangerous_insecure_cookies`] is set (dev mode, or a loopback-only
//! deployment) otherwise. The session cookie is `SameSite=Strict`; the short-lived sign-in flow
//! cookie is `SameSite=Lax` (the provider's redirect back is a cross-site navigation). A session
//! of dev mode's pasted token or the SSO proxy holds the token itself, re-verified on every
//! request. Every POST carries a synchronizer token, an HMAC-SHA-256 (ring) over the session's
//! id (or token) under a key derived from the session secret (drawn at start-up when none is
//! configured), compared in constant time; the sign-in form's token is bound the same way to a
//! random pre-session cookie (no login CSRF). Cross-site POSTs (`Sec-Fetch-Site: cross-site`, or
//! a foreign `Origin`) are refused before that.

pub(crate) mod assets;
mod audit;
mod cookies;
mod csrf;
mod error;
mod guard;
mod headers;
mod layout;
mod models;
mod oidc_sign_in;
mod prompts;
mod queue;
mod requests;
pub(crate) mod session;
pub(crate) mod session_store;
mod sign_in;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};
use zeroize::Zeroizing;

use airisk_core::security::tenant_context::TenantId;
use axum::http::HeaderName;
use axum::routing::{get, post};
use axum::{Extension, Router, middleware};

use crate::state::AppState;

pub(crate) use error::ConsoleError;

/// How long a ledger verification result is reused for the status banner.
const VERIFY_CACHE_TTL: Duration = Duration::from_secs(5);

/// How the approver console signs people in.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    /// A request header that carries the signed-in person's JWT (the raw token, or
    /// `Bearer <token>`), set by the bank's SSO proxy in front of the service, e.g.
    /// `x-airisk-jwt`. `None` (the default): off; people paste a token on the sign-in page.
    ///
    /// The proxy MUST remove this header from every request it receives from a client before it
    /// sets its own: any header the proxy passes through is one a client can forge. The token is
    /// still verified like any other (signature, issuer, audience, expiry).
    pub trusted_header: Option<HeaderName>,
    /// Set the console's cookies without `Secure` (and so without the `__Host-` prefix), for a
    /// console reached over plain http: dev mode, or a loopback-only deployment. Ignored when
    /// the service's public URL is https. Off (the default): cookies are `Secure`. Dangerous: the
    /// session cookie holds the bearer token, and without `Secure` a browser sends it over
    /// plain http.
    pub dangerous_insecure_cookies: bool,
    /// How long the audit page's ledger verification is reused. `None` (the default): 5 seconds.
    /// Tests set `Some(Duration::ZERO)` so that a tampered ledger shows at the next page load
    /// without waiting out the cache.
    #[doc(hidden)]
    pub verify_cache_ttl: Option<Duration>,
    /// Offer the pasted-token form on the sign-in page (and keep a pasted token as the session).
    /// `airisk serve --dev` only: in production people sign in through the OpenID provider
    /// ([`ConsoleConfig::oidc`]) or the SSO proxy. Off by default.
    pub token_sign_in: bool,
    /// Sign-in through the bank's OpenID provider (authorization-code flow with PKCE). `None`
    /// (the default): off.
    pub oidc: Option<ConsoleOidcConfig>,
    /// Session lifetimes and the secret that seals sessions.
    pub session: session_store::SessionConfig,
}

/// The console's OpenID Connect client: a confidential client of the bank's provider, signing
/// people in with the authorization-code flow, PKCE (S256), `state` and `nonce`.
#[derive(Clone)]
pub struct ConsoleOidcConfig {
    /// The provider's issuer URL: the primary OpenID issuer or one of the `[[issuers]]`; its
    /// discovered keys, claim mapping, identity and person claims apply to the ID token.
    pub issuer: String,
    /// The client id registered at the provider (the ID token's `aud`).
    pub client_id: String,
    /// The client secret (sent to the token endpoint with HTTP Basic authentication). Never in
    /// `Debug`, logs or errors.
    pub client_secret: Zeroizing<String>,
    /// Where the provider sends the browser back: `<public URL>/console/oidc/callback`,
    /// registered at the provider exactly so.
    pub redirect_uri: String,
    /// Where the provider sends the browser after signing out there:
    /// `<public URL>/console/sign-in?signed_out=1`, registered at the provider.
    pub post_logout_redirect_uri: String,
    /// The scopes asked for (`openid` is always included).
    pub scopes: Vec<String>,
    /// The provider's name on the sign-in button ("Sign in with …").
    pub display_name: String,
}

impl std::fmt::Debug for ConsoleOidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleOidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uri", &self.redirect_uri)
            .field("post_logout_redirect_uri", &self.post_logout_redirect_uri)
            .field("scopes", &self.scopes)
            .field("display_name", &self.display_name)
            .finish()
    }
}

/// The path the provider sends the browser back to.
pub const OIDC_CALLBACK_PATH: &str = "/console/oidc/callback";
/// Where the provider sends the browser after its sign-out.
pub const POST_LOGOUT_PATH: &str = "/console/sign-in?signed_out=1";
/// The environment variable holding the console's OpenID client secret (never a flag or the
/// configuration file: the process list and backups show those).
pub const CLIENT_SECRET_ENV: &str = "AIRISK_CONSOLE_OIDC_CLIENT_SECRET";
/// The environment variable holding the secret console sessions are sealed with (the same on
/// every replica).
pub const SESSION_SECRET_ENV: &str = "AIRISK_CONSOLE_SESSION_SECRET";

impl ConsoleOidcConfig {
    /// The client `client_id` of the provider `issuer`, with its redirect and post-logout
    /// addresses under the service's public URL ([`OIDC_CALLBACK_PATH`], [`POST_LOGOUT_PATH`]),
    /// asking for `scopes` (`openid` is added) and showing `display_name` on the button (default:
    /// the issuer's host).
    ///
    /// # Errors
    /// A message (never holding the secret) for an empty client id or secret, or an issuer that
    /// is not an https URL (http only to a loopback host).
    pub fn new(
        issuer: &str,
        client_id: &str,
        client_secret: Zeroizing<String>,
        public_url: &crate::state::PublicUrl,
        scopes: &[String],
        display_name: Option<&str>,
    ) -> Result<Self, String> {
        if client_id.trim().is_empty() {
            return Err("the console's OpenID client id is empty".to_owned());
        }
        if client_secret.trim().is_empty() {
            return Err(format!("{CLIENT_SECRET_ENV} is empty"));
        }
        let host = issuer
            .split_once("://")
            .map_or(issuer, |(_, r)| r)
            .split('/')
            .next()
            .unwrap_or(issuer);
        if !(issuer.starts_with("https://")
            || issuer.starts_with("http://127.0.0.1")
            || issuer.starts_with("http://localhost")
            || issuer.starts_with("http://[::1]"))
        {
            return Err(format!(
                "the console's issuer {issuer:?} must be https:// (plain http only to a loopback host)"
            ));
        }
        let origin = public_url.origin();
        Ok(ConsoleOidcConfig {
            issuer: issuer.to_owned(),
            client_id: client_id.trim().to_owned(),
            client_secret,
            redirect_uri: format!("{origin}{OIDC_CALLBACK_PATH}"),
            post_logout_redirect_uri: format!("{origin}{POST_LOGOUT_PATH}"),
            scopes: scopes
                .iter()
                .flat_map(|s| s.split_whitespace())
                .map(str::to_owned)
                .collect(),
            display_name: display_name.map_or_else(|| host.to_owned(), str::to_owned),
        })
    }
}

impl ConsoleConfig {
    /// A configuration that trusts the SSO proxy's header `name`.
    ///
    /// # Errors
    /// A message if `name` is not a header name, or is one a browser sets itself (`Cookie`,
    /// `Host`, `Origin`, `Referer`, `Content-*`, `Sec-*`).
    pub fn trusting_header(name: &str) -> Result<Self, String> {
        let header = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{name:?} is not a valid header name"))?;
        let n = header.as_str();
        if matches!(n, "cookie" | "host" | "origin" | "referer")
            || n.starts_with("content-")
            || n.starts_with("sec-")
        {
            return Err(format!(
                "{n} is set by browsers; choose a header of your proxy's own"
            ));
        }
        Ok(ConsoleConfig {
            trusted_header: Some(header),
            ..ConsoleConfig::default()
        })
    }
}

/// The console's own state: its configuration, its MAC key and the banner's cache.
pub(crate) struct Console {
    pub(crate) config: ConsoleConfig,
    /// How cookies are set, from the configuration (never from a request).
    pub(crate) cookies: cookies::CookiePolicy,
    /// `None` only if the system random generator failed at start-up: then every console page
    /// answers 503 rather than run with a guessable key.
    pub(crate) keys: Option<csrf::CsrfKey>,
    /// The keys sealing sessions and sign-in flows (`None` only if deriving them failed: every
    /// console page then answers 503, like without `keys`).
    pub(crate) seal: Option<session_store::SealKeys>,
    /// The `state` values of sign-ins completed by this process, until their flow cookie
    /// lapses: a replayed callback is refused here before the provider is asked (which refuses
    /// a used code anyway, whichever replica asks).
    pub(crate) used_states: Mutex<HashMap<String, u64>>,
    verify_cache: Mutex<HashMap<TenantId, (Instant, Arc<audit::LedgerStatus>)>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("config", &self.config)
            .field("cookies", &self.cookies)
            .field("keys", &self.keys.as_ref().map(|_| "<redacted>"))
            .field("seal", &self.seal.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Console {
    fn new(config: ConsoleConfig, public_url: Option<&crate::state::PublicUrl>) -> Self {
        let secret = match &config.session.secret {
            Some(s) => Some(s.clone()),
            None => session_store::SessionSecret::generate().ok(),
        };
        let seal = secret.as_ref().and_then(session_store::SealKeys::derive);
        // With a configured secret every replica derives the same CSRF key, so a form opened on
        // one replica may be sent to another.
        let keys = match (&config.session.secret, &seal) {
            (Some(_), Some(seal)) => Some(csrf::CsrfKey::from_key(seal.csrf.clone())),
            _ => csrf::CsrfKey::generate(),
        };
        if keys.is_none() || seal.is_none() {
            tracing::error!(
                "console: the session keys could not be drawn or derived; the console will answer 503"
            );
        }
        Console {
            cookies: cookies::CookiePolicy::configured(&config, public_url),
            config,
            keys: keys.filter(|_| seal.is_some()),
            seal,
            used_states: Mutex::new(HashMap::new()),
            verify_cache: Mutex::new(HashMap::new()),
        }
    }

    fn verify_cache_ttl(&self) -> Duration {
        self.config.verify_cache_ttl.unwrap_or(VERIFY_CACHE_TTL)
    }

    fn cached_status(&self, tenant: &TenantId) -> Option<Arc<audit::LedgerStatus>> {
        let ttl = self.verify_cache_ttl();
        let cache = self.verify_cache.lock().ok()?;
        cache
            .get(tenant)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, s)| s.clone())
    }

    fn cache_status(&self, tenant: &TenantId, status: Arc<audit::LedgerStatus>) {
        let ttl = self.verify_cache_ttl();
        if let Ok(mut cache) = self.verify_cache.lock() {
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            cache.insert(tenant.clone(), (Instant::now(), status));
        }
    }
}

/// Every console route, with the console's middleware (session, CSRF, security headers). Not
/// part of the OpenAPI document: these are HTML pages for people, not API routes.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let console = Arc::new(Console::new(
        state.config().console.clone(),
        state.config().public_url.as_ref(),
    ));
    Router::new()
        .route("/console", get(queue::home))
        .route("/console/", get(queue::home))
        .route("/console/sign-in", get(sign_in::page).post(sign_in::submit))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/oidc/start", get(oidc_sign_in::start))
        .route(OIDC_CALLBACK_PATH, get(oidc_sign_in::callback))
        .route("/console/queue", get(queue::page))
        .route("/console/requests/{id}", get(requests::page))
        .route("/console/requests/{id}/approve", post(requests::approve))
        .route("/console/requests/{id}/reject", post(requests::reject))
        .route("/console/models", get(models::index).post(models::register))
        .route("/console/models/{name}", get(models::detail))
        .route(
            "/console/prompts",
            get(prompts::index).post(prompts::register),
        )
        .route("/console/prompts/view", get(prompts::detail))
        .route("/console/audit", get(audit::search))
        .route("/console/audit/checkpoint", post(audit::check_checkpoint))
        .route("/console/audit/{seq}", get(audit::entry))
        .route("/console/assets/{file}", get(assets::serve))
        .route(
            "/console/{*rest}",
            get(error::not_found).post(error::not_found),
        )
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(Extension(console))
}

//! The approver console: server-rendered HTML pages under `/console` for the people in the loop
//! (approvers, risk officers, auditors).
//!
//! # What it is, and what it is not
//!
//! * **The same identity, services and rules as the API.** A person signs in with the very JWT
//!   the API takes (pasted on the sign-in page, or taken from a header set by the bank's SSO
//!   proxy); the principal, its role and its tenant come from the verified token only. Every page
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
//! # Sessions and CSRF ([`session`], [`cookies`], [`csrf`], [`guard`], [`headers`])
//!
//! The session cookie holds the JWT itself and is re-verified on every request (signature,
//! issuer, audience, expiry), so a session can never outlive its token and no session state is
//! kept on the server: any replica that verifies the token serves the console. The cookie is
//! `HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` (named with the `__Host-` prefix) by
//! configuration, never by a request header: always when the service's public URL is https, and
//! unless [`ConsoleConfig::dangerous_insecure_cookies`] is set (dev mode, or a loopback-only
//! deployment) otherwise. Every POST carries a synchronizer token, an HMAC-SHA-256
//! (ring) over the session's token under a key drawn at start-up, compared in constant time; the
//! sign-in form's token is bound the same way to a random pre-session cookie (no login CSRF).
//! Cross-site POSTs (`Sec-Fetch-Site: cross-site`, or a foreign `Origin`) are refused before that.

pub(crate) mod assets;
mod audit;
mod cookies;
mod csrf;
mod error;
mod guard;
mod headers;
mod layout;
mod models;
mod prompts;
mod queue;
mod requests;
pub(crate) mod session;
mod sign_in;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    pub(crate) keys: Option<csrf::Keys>,
    verify_cache: Mutex<HashMap<TenantId, (Instant, Arc<audit::LedgerStatus>)>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("config", &self.config)
            .field("cookies", &self.cookies)
            .field("cookies", &self.cookies)
            .field("keys", &self.keys.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Console {
    fn new(config: ConsoleConfig, public_url: Option<&crate::state::PublicUrl>) -> Self {
        let keys = csrf::Keys::generate();
        if keys.is_none() {
            tracing::error!(
                "console: the system random generator failed; the console will answer 503"
            );
        }
        Console {
            cookies: cookies::CookiePolicy::configured(&config, public_url),
            config,
            keys,
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

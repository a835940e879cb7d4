//! OpenID Connect issuer discovery and the provider's signing keys.
//!
//! # Design
//!
//! * **Discovery**: the issuer URL (`AIRISK_OIDC_ISSUER`) gives
//!   `<issuer>/.well-known/openid-configuration`, whose `issuer` must be the configured one
//!   exactly (OpenID Connect Discovery 1.0 §4.3: a document naming another issuer is refused), and
//!   whose `jwks_uri` gives the keys. The discovery document is read again on every refresh, so a
//!   provider that moves its `jwks_uri` is followed.
//! * **Keys**: Ed25519 (EdDSA), RSA (RS256) and EC P-256 (ES256) signing keys of the JWKS
//!   ([`crate::auth`] reads them). A key's type fixes its algorithm.
//! * **Refresh**: on a schedule (`refresh_every`, default 15 minutes; while no key was ever
//!   fetched, every `min_refresh_gap`), and when a token names a `kid` no known key has. That
//!   second path is rate-limited: at most one fetch per `min_refresh_gap` (default 30 s), however
//!   many tokens with made-up key ids arrive; they wait for the one fetch in flight, or are
//!   refused at once inside the gap.
//! * **Provider unreachable** (fail closed, bounded): at start-up the service runs, refuses
//!   provider tokens and reports not ready (`/readyz` 503 with the reason) until a fetch succeeds.
//!   Later, a failed refresh keeps the last good keys for at most `max_stale` (default 24 hours)
//!   after the last successful fetch; past that the keys are dropped, provider tokens are refused
//!   and `/readyz` says why. A key the provider removed is dropped at the first successful fetch
//!   that no longer lists it.
//! * **Transport**: HTTP/1.1 (hyper) over TLS (rustls with ring, the tree's one crypto backend),
//!   trusting the Mozilla roots (webpki-roots) or, when configured (`AIRISK_OIDC_CA_FILE`), only
//!   the certificates of a PEM bundle. No redirects are followed. Plain `http://` is accepted only
//!   for a loopback host (`127.0.0.1`, `::1`, `localhost`): tests and a provider sidecar, never
//!   across a network. Every fetch has a timeout and a 1 MiB body limit.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode, Uri};
use serde::Deserialize;

use crate::auth::{AuthConfigError, VerifyKey, keys_from_jwks};

/// Default interval of the scheduled key refresh.
pub const DEFAULT_REFRESH_EVERY: Duration = Duration::from_secs(15 * 60);
/// Default least time between two fetches caused by unknown key ids.
pub const DEFAULT_MIN_REFRESH_GAP: Duration = Duration::from_secs(30);
/// Default longest use of keys after the last successful fetch.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(24 * 60 * 60);
/// Default timeout of one fetch (connect, TLS, request and body).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest discovery or JWKS document read.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// How to reach an OpenID provider and how long to trust its keys.
#[derive(Debug, Clone)]
pub struct OidcOptions {
    /// The issuer URL, exactly as the provider's tokens carry it in `iss`.
    pub issuer: String,
    /// A PEM bundle of the CA certificates to trust instead of the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// Interval of the scheduled refresh.
    pub refresh_every: Duration,
    /// Least time between two fetches caused by unknown key ids.
    pub min_refresh_gap: Duration,
    /// Longest use of keys after the last successful fetch.
    pub max_stale: Duration,
    /// Timeout of one fetch.
    pub fetch_timeout: Duration,
}

impl OidcOptions {
    /// The defaults for `issuer`.
    pub fn new(issuer: &str) -> Self {
        OidcOptions {
            issuer: issuer.to_owned(),
            ca_file: None,
            refresh_every: DEFAULT_REFRESH_EVERY,
            min_refresh_gap: DEFAULT_MIN_REFRESH_GAP,
            max_stale: DEFAULT_MAX_STALE,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
        }
    }
}

/// The endpoints of a provider's discovery document that the console's sign-in uses
/// (authorization-code flow and RP-initiated logout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEndpoints {
    /// Where the browser is sent to sign in (`authorization_endpoint`).
    pub authorization_endpoint: String,
    /// Where the service exchanges the code for tokens (`token_endpoint`).
    pub token_endpoint: String,
    /// Where the browser is sent to sign out at the provider (`end_session_endpoint`), if the
    /// provider has one.
    pub end_session_endpoint: Option<String>,
}

#[derive(Default)]
struct KeyState {
    keys: Arc<Vec<VerifyKey>>,
    endpoints: Option<ProviderEndpoints>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

/// The signing keys an OpenID provider publishes, kept fresh. Shared by every request.
pub struct OidcKeys {
    options: OidcOptions,
    http: crate::https::HttpsClient,
    state: RwLock<KeyState>,
    refresh: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for OidcKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcKeys")
            .field("options", &self.options)
            .field("fetches", &self.fetches.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

impl Discovery {
    /// The sign-in endpoints, when the document names both the authorization and the token
    /// endpoint and every named endpoint passes the same URL rules as `jwks_uri` (https, or http
    /// to a loopback host; https when the issuer is https). An endpoint that fails them is
    /// dropped with a warning: API tokens keep working, the console's sign-in does not start.
    fn endpoints(&self, https_issuer: bool) -> Option<ProviderEndpoints> {
        let ok = |what: &str, url: &str| match check_url(what, url) {
            Ok(_) if https_issuer && !url.starts_with("https://") => {
                tracing::warn!(
                    endpoint = what,
                    url,
                    "oidc: the provider's endpoint is not https; ignored"
                );
                false
            }
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(endpoint = what, error = %e, "oidc: the provider's endpoint is unusable; ignored");
                false
            }
        };
        let authorization = self.authorization_endpoint.clone()?;
        let token = self.token_endpoint.clone()?;
        if !ok("authorization_endpoint", &authorization) || !ok("token_endpoint", &token) {
            return None;
        }
        Some(ProviderEndpoints {
            authorization_endpoint: authorization,
            token_endpoint: token,
            end_session_endpoint: self
                .end_session_endpoint
                .clone()
                .filter(|u| ok("end_session_endpoint", u)),
        })
    }
}

/// Checks that `url` is `https://`, or `http://` to a loopback host.
fn check_url(what: &str, url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|_| format!("{what} {url:?} is not a URL"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("{what} {url:?} has no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http")
            if matches!(
                host.trim_start_matches('[').trim_end_matches(']'),
                "127.0.0.1" | "::1" | "localhost"
            ) =>
        {
            Ok(uri)
        }
        _ => Err(format!(
            "{what} {url:?} must be https:// (plain http only to a loopback host)"
        )),
    }
}

impl OidcKeys {
    /// Checks the options and builds the TLS client. Fetches nothing: call
    /// [`OidcKeys::refresh`] (start-up) and [`OidcKeys::spawn_refresher`].
    ///
    /// # Errors
    /// [`AuthConfigError::InvalidOidc`] for an issuer that is not an https URL (or http to a
    /// loopback host), or a CA file that cannot be read or holds no certificate.
    pub fn new(options: OidcOptions) -> Result<Arc<Self>, AuthConfigError> {
        check_url("the issuer", &options.issuer).map_err(AuthConfigError::InvalidOidc)?;
        if options.min_refresh_gap.is_zero() || options.refresh_every.is_zero() {
            return Err(AuthConfigError::InvalidOidc(
                "the refresh intervals must be more than 0".to_owned(),
            ));
        }
        let tls = crate::https::tls_config(options.ca_file.as_deref())
            .map_err(AuthConfigError::InvalidOidc)?;
        Ok(Arc::new(OidcKeys {
            options,
            http: crate::https::HttpsClient::with_tls(tls),
            state: RwLock::new(KeyState::default()),
            refresh: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }))
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.options.issuer
    }

    /// The options.
    pub fn options(&self) -> &OidcOptions {
        &self.options
    }

    /// How many refreshes were attempted (discovery and JWKS count as one).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeyState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The keys usable now: none before the first successful fetch or past the staleness bound.
    pub(crate) fn current(&self) -> Option<Arc<Vec<VerifyKey>>> {
        let state = self.read();
        let fetched = state.fetched_at?;
        (fetched.elapsed() <= self.options.max_stale).then(|| state.keys.clone())
    }

    /// The provider's sign-in endpoints from its last successful discovery, while its keys are
    /// usable (none before the first fetch, past the staleness bound, or when the provider names
    /// no authorization or token endpoint).
    pub fn endpoints(&self) -> Option<ProviderEndpoints> {
        let state = self.read();
        let fetched = state.fetched_at?;
        (fetched.elapsed() <= self.options.max_stale)
            .then(|| state.endpoints.clone())
            .flatten()
    }

    /// Whether a usable key has this id.
    pub(crate) fn knows_kid(&self, kid: &str) -> bool {
        self.current()
            .is_some_and(|keys| keys.iter().any(|k| k.kid.as_deref() == Some(kid)))
    }

    /// The ids of the usable keys (for `airisk auth check` and diagnostics).
    pub fn key_ids(&self) -> Vec<String> {
        self.current()
            .map(|keys| keys.iter().filter_map(|k| k.kid.clone()).collect())
            .unwrap_or_default()
    }

    /// `Ok` when usable keys are held; else why not.
    ///
    /// # Errors
    /// The reason, for `/readyz` and the logs.
    pub fn readiness(&self) -> Result<(), String> {
        let state = self.read();
        let why = state
            .last_error
            .as_deref()
            .unwrap_or("no fetch has completed yet");
        match state.fetched_at {
            None => Err(format!(
                "the OpenID provider {} has not provided its signing keys: {why}",
                self.options.issuer
            )),
            Some(t) if t.elapsed() > self.options.max_stale => Err(format!(
                "the OpenID provider {}'s signing keys are older than {} s and could not be \
                 refreshed: {why}",
                self.options.issuer,
                self.options.max_stale.as_secs()
            )),
            Some(_) => Ok(()),
        }
    }

    /// Fetches discovery and keys now and replaces the held keys; on failure the held keys stay
    /// (within the staleness bound) and the error is recorded for [`OidcKeys::readiness`].
    ///
    /// # Errors
    /// Why the fetch failed.
    pub async fn refresh(&self) -> Result<usize, String> {
        let _one = self.refresh.lock().await;
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> Result<usize, String> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.state.write() {
            s.last_attempt = Some(Instant::now());
        }
        let result = self.fetch_keys().await;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok((keys, endpoints)) => {
                let n = keys.len();
                state.keys = Arc::new(keys);
                state.endpoints = endpoints;
                state.fetched_at = Some(Instant::now());
                state.last_error = None;
                tracing::info!(issuer = %self.options.issuer, keys = n, "oidc: signing keys fetched");
                Ok(n)
            }
            Err(e) => {
                tracing::warn!(issuer = %self.options.issuer, error = %e, "oidc: key refresh failed; keeping the last good keys within the staleness bound");
                state.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// A refresh because a token named an unknown `kid`, rate-limited: `false` without a fetch
    /// when the last attempt (by anyone) is within `min_refresh_gap`; callers that arrive while a
    /// fetch is in flight wait for it and then find the gap not yet passed. `true` when a fetch
    /// succeeded (the caller should verify again).
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        let _one = self.refresh.lock().await;
        let recent = self
            .read()
            .last_attempt
            .is_some_and(|t| t.elapsed() < self.options.min_refresh_gap);
        if recent {
            return false;
        }
        self.refresh_locked().await.is_ok()
    }

    /// Refreshes on the schedule for as long as the returned task runs (abort it to stop):
    /// every `refresh_every`, or every `min_refresh_gap` while no usable key is held.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let keys = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let wait = if keys.current().is_some() {
                    keys.options.refresh_every
                } else {
                    keys.options.min_refresh_gap
                };
                tokio::time::sleep(wait).await;
                let _ = keys.refresh().await;
            }
        })
    }

    async fn fetch_keys(&self) -> Result<(Vec<VerifyKey>, Option<ProviderEndpoints>), String> {
        let issuer = self.options.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let body = self.get(&url).await?;
        let discovery: Discovery = serde_json::from_slice(&body)
            .map_err(|e| format!("the discovery document {url} is invalid: {e}"))?;
        if discovery.issuer != self.options.issuer {
            return Err(format!(
                "the discovery document names the issuer {:?}, not the configured {:?}",
                discovery.issuer, self.options.issuer
            ));
        }
        check_url("jwks_uri", &discovery.jwks_uri)?;
        // An https issuer's keys come over https too (never downgraded, even to loopback).
        if self.options.issuer.starts_with("https://")
            && !discovery.jwks_uri.starts_with("https://")
        {
            return Err(format!(
                "the discovery document's jwks_uri {:?} is not https",
                discovery.jwks_uri
            ));
        }
        let jwks = self.get(&discovery.jwks_uri).await?;
        let text = std::str::from_utf8(&jwks)
            .map_err(|_| format!("the JWKS at {} is not UTF-8", discovery.jwks_uri))?;
        let keys = keys_from_jwks(text).map_err(|e| format!("{}: {e}", discovery.jwks_uri))?;
        if keys.is_empty() {
            return Err(format!(
                "the JWKS at {} holds no usable signing key",
                discovery.jwks_uri
            ));
        }
        let endpoints = discovery.endpoints(self.options.issuer.starts_with("https://"));
        Ok((keys, endpoints))
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        match self.fetch(Method::GET, url, None, None).await? {
            (StatusCode::OK, body) => Ok(body),
            (status, _) => Err(format!("GET {url}: HTTP status {status}")),
        }
    }

    /// POSTs an `application/x-www-form-urlencoded` body to one of the provider's endpoints (the
    /// token endpoint), with an `Authorization` header, through the same transport as the key
    /// fetches (TLS, timeout, size limit, no redirects). Returns the status and the body, whatever
    /// the status (a token endpoint explains a refusal in a 400's JSON body). The error never
    /// holds the request's body or header (they carry the client secret and the code).
    ///
    /// # Errors
    /// Why the request failed (URL, connection, TLS, timeout, body too large).
    pub(crate) async fn post_form(
        &self,
        url: &str,
        authorization: &str,
        body: String,
    ) -> Result<(StatusCode, Vec<u8>), String> {
        let authorization = HeaderValue::from_str(authorization)
            .map_err(|_| format!("POST {url}: the Authorization header could not be built"))?;
        self.fetch(
            Method::POST,
            url,
            Some(authorization),
            Some(Bytes::from(body)),
        )
        .await
    }

    /// One request through the shared HTTPS client; the timeout covers the whole exchange,
    /// body included.
    async fn fetch(
        &self,
        method: Method,
        url: &str,
        authorization: Option<HeaderValue>,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Vec<u8>), String> {
        let what = format!("{method} {url}");
        tokio::time::timeout(
            self.options.fetch_timeout,
            self.fetch_inner(method, url, authorization, body),
        )
        .await
        .map_err(|_| {
            format!(
                "{what} timed out after {} ms",
                self.options.fetch_timeout.as_millis()
            )
        })?
    }

    async fn fetch_inner(
        &self,
        method: Method,
        url: &str,
        authorization: Option<HeaderValue>,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Vec<u8>), String> {
        check_url("the URL", url)?;
        let what = format!("{method} {url}");
        let mut headers = vec![(
            hyper::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        )];
        if body.is_some() {
            headers.push((
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            ));
        }
        if let Some(value) = authorization {
            headers.push((hyper::header::AUTHORIZATION, value));
        }
        // The error names the method and URL only: the request may carry the client secret.
        let response = self
            .http
            .send(method, url, &headers, body, self.options.fetch_timeout)
            .await?;
        let status = response.status();
        crate::https::read_body(response, MAX_DOCUMENT_BYTES)
            .await
            .map(|b| (status, b.to_vec()))
            .map_err(|e| format!("{what}: {e}"))
    }
}

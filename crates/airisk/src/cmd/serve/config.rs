//! `airisk serve`'s configuration layering: command-line flags (and their `AIRISK_…` environment
//! variables) over the TOML file given with `--config` over built-in defaults, into one effective
//! [`Settings`]. Secrets are never read here: they come from the environment only (see
//! [`super::keys`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use airisk_core::governance::audit_logger::CheckpointPolicy;
use airisk_server::auth::{
    DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_LEEWAY_SECS, MAX_LEEWAY_SECS, PersonClaim,
};
use airisk_server::oidc::OidcOptions;
use airisk_server::throttle::{
    DEFAULT_DENIAL_BURST, DEFAULT_DENIALS_PER_MINUTE, DenialThrottleConfig,
};
use airisk_server::{
    CLIENT_SECRET_ENV, ConsoleConfig, ConsoleOidcConfig, DEFAULT_ABSOLUTE_TIMEOUT,
    DEFAULT_BODY_LIMIT, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_IN_FLIGHT_PER_TENANT,
    DEFAULT_REQUEST_TIMEOUT, OIDC_CALLBACK_PATH, PublicUrl, SESSION_SECRET_ENV, SessionConfig,
    SessionSecret,
};
use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{DEFAULT_BIND, DEFAULT_DATABASE_URL, ServeArgs};
use crate::store::MEMORY_URL;

/// The `--config` file. Secrets are not accepted here.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    bind: Option<String>,
    database_url: Option<String>,
    jwks_file: Option<PathBuf>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    jwt_leeway_secs: Option<u64>,
    dangerous_allow_hs256: Option<bool>,
    body_limit_bytes: Option<usize>,
    request_timeout_ms: Option<u64>,
    max_in_flight: Option<usize>,
    max_in_flight_per_tenant: Option<usize>,
    header_read_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    public_url: Option<String>,
    dangerous_insecure_cookies: Option<bool>,
    checkpoint_every_entries: Option<u64>,
    checkpoint_interval_ms: Option<u64>,
    log: Option<String>,
    console_trusted_header: Option<String>,
    person_claim: Option<String>,
    identity_claim: Option<String>,
    denials_per_minute: Option<u32>,
    denial_burst: Option<u32>,
    oidc_issuer: Option<String>,
    oidc_ca_file: Option<PathBuf>,
    oidc_refresh_secs: Option<u64>,
    oidc_min_refresh_gap_secs: Option<u64>,
    oidc_max_stale_secs: Option<u64>,
    console_oidc_client_id: Option<String>,
    console_oidc_issuer: Option<String>,
    console_oidc_scopes: Option<String>,
    console_oidc_provider_name: Option<String>,
    console_session_idle_secs: Option<u64>,
    console_session_absolute_secs: Option<u64>,
    /// More OpenID providers, each with its claim mapping (`[[issuers]]` tables).
    #[serde(default)]
    issuers: Vec<IssuerConfig>,
}

/// One `[[issuers]]` table: an OpenID provider and how its claims map to tenant and role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IssuerConfig {
    /// The issuer URL, exactly the tokens' `iss`.
    pub(super) issuer: String,
    /// Expected `aud` [default: the service's jwt_audience].
    pub(super) audience: Option<String>,
    /// PEM CA bundle for this provider.
    pub(super) ca_file: Option<PathBuf>,
    /// Every token of this issuer acts in this tenant (one provider per tenant)…
    pub(super) tenant: Option<String>,
    /// …or the tenant is this claim's value (one shared provider).
    pub(super) tenant_claim: Option<String>,
    /// The claim whose values map to roles [default: roles].
    pub(super) role_claim: Option<String>,
    /// Claim value → role (admin, analyst, approver, viewer).
    pub(super) roles: BTreeMap<String, String>,
    /// For tokens mapping to several roles: the first of these the token maps to. Without it,
    /// such tokens are refused as ambiguous.
    #[serde(default)]
    pub(super) role_precedence: Vec<String>,
    /// Immutable claim for the actor id (e.g. oid) [default: sub].
    pub(super) identity_claim: Option<String>,
    /// NAME=VALUE that makes the subject a person [default: the service's person_claim].
    pub(super) person_claim: Option<String>,
}

/// The effective configuration, after layering. (No `Debug`: the database URL may hold a
/// password.)
pub(super) struct Settings {
    pub(super) dev: bool,
    pub(super) bind: String,
    pub(super) database_url: String,
    pub(super) jwks_file: Option<PathBuf>,
    pub(super) jwt_issuer: String,
    pub(super) jwt_audience: String,
    pub(super) jwt_leeway_secs: u64,
    pub(super) dangerous_allow_hs256: bool,
    pub(super) body_limit_bytes: usize,
    pub(super) request_timeout: Duration,
    pub(super) max_in_flight: usize,
    pub(super) max_in_flight_per_tenant: usize,
    pub(super) header_read_timeout: Duration,
    pub(super) body_read_timeout: Duration,
    pub(super) public_url: Option<PublicUrl>,
    pub(super) policy: CheckpointPolicy,
    pub(super) log: String,
    pub(super) console: ConsoleConfig,
    pub(super) person_claim: PersonClaim,
    pub(super) identity_claim: Option<String>,
    pub(super) denial_throttle: DenialThrottleConfig,
    pub(super) mlflow_config: Option<PathBuf>,
    pub(super) oidc: Option<OidcOptions>,
    pub(super) issuers: Vec<IssuerConfig>,
}

impl Settings {
    /// Layers flags (and their `AIRISK_…` variables) over the `--config` file over the defaults,
    /// and refuses contradictory or unsafe combinations.
    pub(super) fn layer(args: &ServeArgs) -> anyhow::Result<Settings> {
        let file = match &args.config {
            Some(path) => read_config(path)?,
            None => FileConfig::default(),
        };
        let every_entries = args
            .checkpoint_every_entries
            .or(file.checkpoint_every_entries)
            .unwrap_or(1000);
        let interval_ms = args
            .checkpoint_interval_ms
            .or(file.checkpoint_interval_ms)
            .unwrap_or(10_000);
        let read_timeout = |name: &str, ms: Option<u64>, default: Duration| match ms {
            Some(0) => Err(anyhow!("{name} must be more than 0")),
            Some(ms) => Ok(Duration::from_millis(ms)),
            None => Ok(default),
        };
        let public_url = args
            .public_url
            .clone()
            .or(file.public_url)
            .map(|u| PublicUrl::parse(&u))
            .transpose()
            .map_err(|e| anyhow!("public_url: {e}"))?;
        let https = public_url.as_ref().is_some_and(PublicUrl::is_https);
        let asked_insecure = args
            .dangerous_insecure_cookies
            .or(file.dangerous_insecure_cookies)
            .unwrap_or(false);
        if https && asked_insecure {
            bail!(
                "dangerous_insecure_cookies contradicts the https public URL: under https the \
                 console's cookies are always Secure; drop one of the two"
            );
        }
        // Fail closed: insecure cookies only when asked for (or in dev mode), never under https.
        let insecure_cookies = !https && (asked_insecure || args.dev);
        if public_url.is_some() && !https && !insecure_cookies {
            bail!(
                "the public URL is http://, but the console's cookies are Secure and browsers do not \
                 keep Secure cookies from plain http: serve over https (TLS at your proxy) with an \
                 https:// public URL, or, for a loopback-only deployment, knowingly set \
                 AIRISK_DANGEROUS_INSECURE_COOKIES=true"
            );
        }
        let oidc = match args.oidc_issuer.clone().or(file.oidc_issuer) {
            None => None,
            Some(issuer) => {
                let mut o = OidcOptions::new(&issuer);
                o.ca_file = args.oidc_ca_file.clone().or(file.oidc_ca_file);
                let secs = |name: &str, v: Option<u64>, default: Duration| match v {
                    Some(0) => Err(anyhow!("{name} must be more than 0")),
                    Some(s) => Ok(Duration::from_secs(s)),
                    None => Ok(default),
                };
                o.refresh_every = secs(
                    "oidc_refresh_secs",
                    args.oidc_refresh_secs.or(file.oidc_refresh_secs),
                    o.refresh_every,
                )?;
                o.min_refresh_gap = secs(
                    "oidc_min_refresh_gap_secs",
                    args.oidc_min_refresh_gap_secs
                        .or(file.oidc_min_refresh_gap_secs),
                    o.min_refresh_gap,
                )?;
                o.max_stale = secs(
                    "oidc_max_stale_secs",
                    args.oidc_max_stale_secs.or(file.oidc_max_stale_secs),
                    o.max_stale,
                )?;
                if o.max_stale < o.refresh_every {
                    bail!(
                        "oidc_max_stale_secs ({}) is shorter than oidc_refresh_secs ({}): the keys \
                         would lapse between two scheduled refreshes",
                        o.max_stale.as_secs(),
                        o.refresh_every.as_secs()
                    );
                }
                Some(o)
            }
        };
        let jwt_issuer = args.jwt_issuer.clone().or(file.jwt_issuer);
        if let (Some(o), Some(iss)) = (&oidc, &jwt_issuer)
            && *iss != o.issuer
        {
            bail!(
                "jwt_issuer {iss:?} contradicts oidc_issuer {:?}: the provider's tokens carry its \
                 issuer; drop jwt_issuer",
                o.issuer
            );
        }
        let jwt_leeway_secs = args
            .jwt_leeway_secs
            .or(file.jwt_leeway_secs)
            .unwrap_or(DEFAULT_LEEWAY_SECS);
        if jwt_leeway_secs > MAX_LEEWAY_SECS {
            bail!(
                "jwt_leeway_secs {jwt_leeway_secs} is more than {MAX_LEEWAY_SECS}: a leeway that \
                 long keeps expired tokens alive; fix the clocks instead"
            );
        }
        let console_sign_in = console_oidc(
            ConsoleOidcSettings {
                client_id: args
                    .console_oidc_client_id
                    .clone()
                    .or(file.console_oidc_client_id),
                issuer: args
                    .console_oidc_issuer
                    .clone()
                    .or(file.console_oidc_issuer),
                scopes: args
                    .console_oidc_scopes
                    .clone()
                    .or(file.console_oidc_scopes),
                provider_name: args
                    .console_oidc_provider_name
                    .clone()
                    .or(file.console_oidc_provider_name),
            },
            public_url.as_ref(),
            oidc.as_ref().map(|o| o.issuer.as_str()),
            &file.issuers,
            args.dev,
        )?;
        let console_session = console_sessions(
            args.console_session_idle_secs
                .or(file.console_session_idle_secs),
            args.console_session_absolute_secs
                .or(file.console_session_absolute_secs),
        )?;
        Ok(Settings {
            mlflow_config: args.mlflow_config.clone(),
            dev: args.dev,
            bind: args
                .bind
                .clone()
                .or(file.bind)
                .unwrap_or_else(|| DEFAULT_BIND.to_owned()),
            database_url: args
                .database_url
                .clone()
                .or(file.database_url)
                .unwrap_or_else(|| {
                    if args.dev {
                        MEMORY_URL.to_owned()
                    } else {
                        DEFAULT_DATABASE_URL.to_owned()
                    }
                }),
            jwks_file: args.jwks_file.clone().or(file.jwks_file),
            jwt_issuer: jwt_issuer
                .or_else(|| oidc.as_ref().map(|o| o.issuer.clone()))
                .unwrap_or_else(|| DEFAULT_ISSUER.to_owned()),
            jwt_audience: args
                .jwt_audience
                .clone()
                .or(file.jwt_audience)
                .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
            jwt_leeway_secs,
            dangerous_allow_hs256: args
                .dangerous_allow_hs256
                .or(file.dangerous_allow_hs256)
                .unwrap_or(false),
            body_limit_bytes: args
                .body_limit_bytes
                .or(file.body_limit_bytes)
                .unwrap_or(DEFAULT_BODY_LIMIT),
            request_timeout: args
                .request_timeout_ms
                .or(file.request_timeout_ms)
                .map_or(DEFAULT_REQUEST_TIMEOUT, Duration::from_millis),
            max_in_flight: args
                .max_in_flight
                .or(file.max_in_flight)
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT),
            max_in_flight_per_tenant: args
                .max_in_flight_per_tenant
                .or(file.max_in_flight_per_tenant)
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT_PER_TENANT),
            header_read_timeout: read_timeout(
                "header_read_timeout_ms",
                args.header_read_timeout_ms.or(file.header_read_timeout_ms),
                DEFAULT_HEADER_READ_TIMEOUT,
            )?,
            body_read_timeout: read_timeout(
                "body_read_timeout_ms",
                args.body_read_timeout_ms.or(file.body_read_timeout_ms),
                DEFAULT_BODY_READ_TIMEOUT,
            )?,
            public_url,
            policy: CheckpointPolicy {
                every_entries: Some(every_entries).filter(|n| *n > 0),
                every_interval: Some(Duration::from_millis(interval_ms)).filter(|d| !d.is_zero()),
            },
            log: args
                .log
                .clone()
                .or(file.log)
                .unwrap_or_else(|| "info".to_owned()),
            console: ConsoleConfig {
                trusted_header: args
                    .console_trusted_header
                    .clone()
                    .or(file.console_trusted_header)
                    .map(|h| ConsoleConfig::trusting_header(&h).map(|c| c.trusted_header))
                    .transpose()
                    .map_err(|e| anyhow!("console_trusted_header: {e}"))?
                    .flatten(),
                dangerous_insecure_cookies: insecure_cookies,
                // The pasted-token form: dev mode only.
                token_sign_in: args.dev,
                oidc: console_sign_in,
                session: console_session,
                ..ConsoleConfig::default()
            },
            person_claim: args
                .person_claim
                .clone()
                .or(file.person_claim)
                .map(|spec| PersonClaim::parse(&spec))
                .transpose()
                .map_err(|e| anyhow!("person_claim: {e}"))?
                .unwrap_or_default(),
            identity_claim: args.identity_claim.clone().or(file.identity_claim),
            denial_throttle: DenialThrottleConfig {
                per_minute: args
                    .denials_per_minute
                    .or(file.denials_per_minute)
                    .unwrap_or(DEFAULT_DENIALS_PER_MINUTE),
                burst: args
                    .denial_burst
                    .or(file.denial_burst)
                    .unwrap_or(DEFAULT_DENIAL_BURST),
                ..DenialThrottleConfig::default()
            },
            oidc,
            issuers: file.issuers,
        })
    }
}

/// The console's OpenID sign-in settings, before validation.
struct ConsoleOidcSettings {
    client_id: Option<String>,
    issuer: Option<String>,
    scopes: Option<String>,
    provider_name: Option<String>,
}

/// The console's OpenID client, when a client id is configured: its issuer must be a configured
/// provider, the public URL gives the redirect URI, the secret comes from the environment only.
fn console_oidc(
    c: ConsoleOidcSettings,
    public_url: Option<&PublicUrl>,
    primary: Option<&str>,
    issuers: &[IssuerConfig],
    dev: bool,
) -> anyhow::Result<Option<ConsoleOidcConfig>> {
    let Some(client_id) = c.client_id else {
        if c.issuer.is_some() {
            bail!("console_oidc_issuer is set without console_oidc_client_id");
        }
        return Ok(None);
    };
    let issuer = c
        .issuer
        .or_else(|| primary.map(str::to_owned))
        .ok_or_else(|| {
            anyhow!(
                "console_oidc_client_id needs a provider: set oidc_issuer or console_oidc_issuer"
            )
        })?;
    if primary != Some(issuer.as_str()) && !issuers.iter().any(|t| t.issuer == issuer) {
        bail!(
            "console_oidc_issuer {issuer:?} is neither oidc_issuer nor an [[issuers]] table: its \
             keys and claim mapping would be unknown"
        );
    }
    let public_url = public_url.ok_or_else(|| {
        anyhow!(
            "console sign-in through the OpenID provider needs public_url: the redirect URI \
             registered at the provider is <public URL>{OIDC_CALLBACK_PATH}"
        )
    })?;
    if !dev && std::env::var_os(SESSION_SECRET_ENV).is_none() {
        bail!(
            "console sign-in through the OpenID provider needs {SESSION_SECRET_ENV} (at least 32 \
             random bytes, the same on every replica: e.g. `openssl rand -base64 48`)"
        );
    }
    let secret = std::env::var(CLIENT_SECRET_ENV)
        .map(Zeroizing::new)
        .map_err(|_| anyhow!("console_oidc_client_id is set but {CLIENT_SECRET_ENV} is not"))?;
    let scopes = c.scopes.map_or_else(
        || vec!["openid".to_owned(), "profile".to_owned()],
        |s| s.split_whitespace().map(str::to_owned).collect(),
    );
    ConsoleOidcConfig::new(
        &issuer,
        &client_id,
        secret,
        public_url,
        &scopes,
        c.provider_name.as_deref(),
    )
    .map(Some)
    .map_err(|e| anyhow!("console OpenID sign-in: {e}"))
}

/// Console session lifetimes and the sealing secret (environment only; required with OpenID
/// sign-in outside dev mode, see [`console_oidc`]).
fn console_sessions(idle: Option<u64>, absolute: Option<u64>) -> anyhow::Result<SessionConfig> {
    let secs = |name: &str, v: Option<u64>, default: Duration| match v {
        Some(0) => Err(anyhow!("{name} must be more than 0")),
        Some(s) => Ok(Duration::from_secs(s)),
        None => Ok(default),
    };
    let idle_timeout = secs("console_session_idle_secs", idle, DEFAULT_IDLE_TIMEOUT)?;
    let absolute_timeout = secs(
        "console_session_absolute_secs",
        absolute,
        DEFAULT_ABSOLUTE_TIMEOUT,
    )?;
    if idle_timeout > absolute_timeout {
        bail!("console_session_idle_secs is longer than console_session_absolute_secs");
    }
    let secret = match std::env::var(SESSION_SECRET_ENV) {
        Ok(s) => Some(
            SessionSecret::new(s.trim().as_bytes())
                .map_err(|e| anyhow!("{SESSION_SECRET_ENV}: {e}"))?,
        ),
        // Dev mode, or no OpenID sign-in: a secret drawn at start-up (sessions end at a restart).
        Err(_) => None,
    };
    Ok(SessionConfig {
        secret,
        idle_timeout,
        absolute_timeout,
    })
}

fn read_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read the configuration file {}", path.display()))?;
    toml::from_str(&text).with_context(|| {
        format!(
            "{} is not a valid configuration file (secrets belong in the environment, not here)",
            path.display()
        )
    })
}

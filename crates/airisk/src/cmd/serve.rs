//! `airisk serve`: the HTTP service.
//!
//! Configuration, highest precedence first: command-line flags, `AIRISK_…` environment variables,
//! the TOML file given with `--config`, built-in defaults. Secrets (encryption keys, the ledger
//! signing key, an HS256 secret) come from the environment only, never from flags or the file.
//!
//! Without `--dev` the service refuses to start unless it has its encryption keys, its ledger
//! signing key and a JWT verification key, and says in one sentence each how to make them. With
//! `--dev` it generates its own (ephemeral with the default in-memory data; kept beside a durable
//! dev database, so a restart still verifies that database's ledger), prints a ready token for one
//! user of each role in tenant `demo`, and says loudly that it is dev mode.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use airisk_core::governance::audit_logger::CheckpointPolicy;
use airisk_core::ledger::{LedgerName, LedgerSigner, SIGNING_KEY_ENV};
use airisk_core::ports::{Clock, SystemClock, UuidV7Generator};
use airisk_core::security::encryption::{
    ENV_VAR as ENCRYPTION_KEYS_ENV, EncryptionKeyId, Encryptor,
};
use airisk_core::security::envelope::{DEFAULT_DEK_CACHE, Envelope, KeyringKeyProvider};
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::TenantId;
use airisk_server::auth::{
    Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_LEEWAY_SECS, JwtVerifier, MAX_LEEWAY_SECS,
    PersonClaim, TokenSigner,
};
use airisk_server::mapping::{ClaimMapping, TenantSource};
use airisk_server::oidc::{OidcKeys, OidcOptions};
use airisk_server::throttle::{
    DEFAULT_DENIAL_BURST, DEFAULT_DENIALS_PER_MINUTE, DenialThrottleConfig,
};
use airisk_server::{
    AppState, ConsoleConfig, DEFAULT_BODY_LIMIT, DEFAULT_BODY_READ_TIMEOUT,
    DEFAULT_CHECKPOINT_TICK, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_IN_FLIGHT_PER_TENANT, DEFAULT_REQUEST_TIMEOUT, LedgerConfig, PublicUrl,
    ServerConfig, Stores,
};
use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Args;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::store::{MEMORY_URL, redact_url};

/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default store: a SQLite file under `./airisk-data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://airisk-data/airisk.db";
/// The tenant dev mode prints tokens for.
pub const DEV_TENANT: &str = "demo";
/// How long dev tokens are valid.
const DEV_TOKEN_TTL_SECS: u64 = 8 * 3600;

/// Arguments of `airisk serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Dev mode: generated encryption, ledger and HS256 keys (kept in `<file>.dev-keys` beside a
    /// SQLite --database-url; ephemeral with the default in-memory data), and a printed token for
    /// one user of each role in tenant `demo`. Never for production.
    #[arg(long)]
    dev: bool,

    /// TOML file with any of: bind, database_url, jwks_file, jwt_issuer, jwt_audience,
    /// jwt_leeway_secs, dangerous_allow_hs256, body_limit_bytes, request_timeout_ms, max_in_flight,
    /// max_in_flight_per_tenant, header_read_timeout_ms, body_read_timeout_ms, public_url,
    /// dangerous_insecure_cookies, checkpoint_every_entries, checkpoint_interval_ms, log,
    /// console_trusted_header, person_claim, identity_claim, denials_per_minute, denial_burst,
    /// oidc_issuer, oidc_ca_file, oidc_refresh_secs, oidc_min_refresh_gap_secs,
    /// oidc_max_stale_secs.
    /// Flags and environment override it.
    #[arg(long, env = "AIRISK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:8080]. Port 0 picks a free port (printed).
    #[arg(long, env = "AIRISK_BIND")]
    bind: Option<String>,

    /// Database URL [default: sqlite://airisk-data/airisk.db; with --dev: memory:].
    /// `postgres://…` for PostgreSQL. A URL with a password is refused here (the process list
    /// shows it): put it in AIRISK_DATABASE_URL or the --config file, or the password in
    /// PGPASSWORD or ~/.pgpass.
    #[arg(long, env = "AIRISK_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    /// JWKS file with the Ed25519 (EdDSA) or RSA (RS256) public keys tokens are verified with.
    /// `airisk token keygen` makes a key pair and its JWKS.
    #[arg(long, env = "AIRISK_JWKS_FILE", value_name = "FILE")]
    jwks_file: Option<PathBuf>,

    /// HS256 secret (at least 32 bytes). Environment only; accepted only with --dev or
    /// AIRISK_DANGEROUS_ALLOW_HS256=true.
    #[arg(long, env = "AIRISK_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,

    /// Accept HS256 tokens signed with AIRISK_JWT_SECRET outside dev mode. Dangerous: every holder
    /// of the secret can mint any identity in any tenant.
    #[arg(long, env = "AIRISK_DANGEROUS_ALLOW_HS256")]
    dangerous_allow_hs256: Option<bool>,

    /// Expected `iss` claim [default: airisk].
    #[arg(long, env = "AIRISK_JWT_ISSUER")]
    jwt_issuer: Option<String>,

    /// Expected `aud` claim [default: airisk-api].
    #[arg(long, env = "AIRISK_JWT_AUDIENCE")]
    jwt_audience: Option<String>,

    /// Clock-skew leeway for exp/nbf, seconds, at most 300 [default: 30].
    #[arg(long, env = "AIRISK_JWT_LEEWAY_SECS")]
    jwt_leeway_secs: Option<u64>,

    /// Largest request body in bytes; larger is a 413 [default: 1048576].
    #[arg(long, env = "AIRISK_BODY_LIMIT_BYTES")]
    body_limit_bytes: Option<usize>,

    /// Request timeout in milliseconds; slower is a 503 [default: 30000].
    #[arg(long, env = "AIRISK_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<u64>,

    /// Most /v1 requests handled at once; others wait in line within the request timeout; 0: no
    /// limit [default: 16].
    #[arg(long, env = "AIRISK_MAX_IN_FLIGHT")]
    max_in_flight: Option<usize>,

    /// Most /v1 requests of one tenant handled at once, within --max-in-flight; the tenant's
    /// others wait in their own line. 0: no per-tenant limit [default: 8].
    #[arg(long, env = "AIRISK_MAX_IN_FLIGHT_PER_TENANT")]
    max_in_flight_per_tenant: Option<usize>,

    /// Longest a client may take to send a request's head, milliseconds; the connection is then
    /// closed [default: 10000].
    #[arg(long, env = "AIRISK_HEADER_READ_TIMEOUT_MS")]
    header_read_timeout_ms: Option<u64>,

    /// Longest a client may take to send a request's body, milliseconds; slower is a 408
    /// [default: 10000].
    #[arg(long, env = "AIRISK_BODY_READ_TIMEOUT_MS")]
    body_read_timeout_ms: Option<u64>,

    /// The service's public URL as browsers reach it, e.g. `https://risk.bank.example`. https:
    /// Strict-Transport-Security on every response and Secure, __Host- console cookies always.
    #[arg(long, env = "AIRISK_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,

    /// Console cookies without Secure (so without the __Host- prefix), for a console reached
    /// over plain http on loopback; ignored under an https --public-url; implied by --dev.
    /// Dangerous: the cookie holds the bearer token.
    #[arg(long, env = "AIRISK_DANGEROUS_INSECURE_COOKIES")]
    dangerous_insecure_cookies: Option<bool>,

    /// Sign a checkpoint after this many new entries; 0: never by count [default: 1000].
    #[arg(long, env = "AIRISK_CHECKPOINT_EVERY_ENTRIES")]
    checkpoint_every_entries: Option<u64>,

    /// Sign a checkpoint when the last is older than this and new entries exist, milliseconds;
    /// 0: never by time [default: 10000].
    #[arg(long, env = "AIRISK_CHECKPOINT_INTERVAL_MS")]
    checkpoint_interval_ms: Option<u64>,

    /// Log filter (tracing env-filter syntax) [default: info].
    #[arg(long, env = "AIRISK_LOG")]
    log: Option<String>,

    /// Approver console: a request header carrying the person's JWT, set by your SSO proxy
    /// (e.g. x-airisk-jwt) [default: off; people paste a token]. The proxy MUST strip this header
    /// from every client request, or anyone can send it.
    #[arg(long, env = "AIRISK_CONSOLE_TRUSTED_HEADER", value_name = "HEADER")]
    console_trusted_header: Option<String>,

    /// How a token says its subject is a person, NAME=VALUE (a list claim counts if it contains
    /// VALUE). Only such principals approve or reject; any other token is a service
    /// [default: kind=human].
    #[arg(long, env = "AIRISK_PERSON_CLAIM", value_name = "NAME=VALUE")]
    person_claim: Option<String>,

    /// Take the actor id from this immutable claim (e.g. oid) instead of sub; tokens without it
    /// are refused [default: sub].
    #[arg(long, env = "AIRISK_IDENTITY_CLAIM", value_name = "CLAIM")]
    identity_claim: Option<String>,

    /// Refused requests one principal may cause per minute, sustained, before it is answered 429;
    /// 0: no throttle [default: 30].
    #[arg(long, env = "AIRISK_DENIALS_PER_MINUTE")]
    denials_per_minute: Option<u32>,

    /// Refused requests one principal may cause in a burst [default: 60].
    #[arg(long, env = "AIRISK_DENIAL_BURST")]
    denial_burst: Option<u32>,

    /// MLflow integration: the TOML file of connected MLflow instances (`airisk integrations
    /// mlflow connect` writes it; docs/MLFLOW.md). Their secrets come from the environment
    /// variables it names. The service refuses to start if an instance cannot be loaded.
    #[arg(long, env = "AIRISK_MLFLOW_CONFIG", value_name = "FILE")]
    mlflow_config: Option<PathBuf>,

    /// OpenID provider issuer URL (https://…, exactly the tokens' `iss`): its signing keys are
    /// discovered from `<issuer>/.well-known/openid-configuration`, refreshed on an unknown `kid`
    /// and on a schedule. Also the expected `iss` (a different --jwt-issuer is refused).
    #[arg(long, env = "AIRISK_OIDC_ISSUER", value_name = "URL")]
    oidc_issuer: Option<String>,

    /// PEM bundle of the CA certificates to trust for the OpenID provider, instead of the Mozilla
    /// roots (a bank's private CA).
    #[arg(long, env = "AIRISK_OIDC_CA_FILE", value_name = "FILE")]
    oidc_ca_file: Option<PathBuf>,

    /// Scheduled refresh of the provider's keys, seconds [default: 900].
    #[arg(long, env = "AIRISK_OIDC_REFRESH_SECS")]
    oidc_refresh_secs: Option<u64>,

    /// Least time between two key fetches caused by tokens with an unknown `kid`, seconds
    /// [default: 30].
    #[arg(long, env = "AIRISK_OIDC_MIN_REFRESH_GAP_SECS")]
    oidc_min_refresh_gap_secs: Option<u64>,

    /// Longest use of the provider's keys after the last successful fetch while it is
    /// unreachable, seconds; then its tokens are refused and /readyz fails [default: 86400].
    #[arg(long, env = "AIRISK_OIDC_MAX_STALE_SECS")]
    oidc_max_stale_secs: Option<u64>,
}

/// The `--config` file. Secrets are not accepted here.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
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
    /// More OpenID providers, each with its claim mapping (`[[issuers]]` tables).
    #[serde(default)]
    issuers: Vec<IssuerConfig>,
}

/// One `[[issuers]]` table: an OpenID provider and how its claims map to tenant and role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerConfig {
    /// The issuer URL, exactly the tokens' `iss`.
    issuer: String,
    /// Expected `aud` [default: the service's jwt_audience].
    audience: Option<String>,
    /// PEM CA bundle for this provider.
    ca_file: Option<PathBuf>,
    /// Every token of this issuer acts in this tenant (one provider per tenant)…
    tenant: Option<String>,
    /// …or the tenant is this claim's value (one shared provider).
    tenant_claim: Option<String>,
    /// The claim whose values map to roles [default: roles].
    role_claim: Option<String>,
    /// Claim value → role (admin, analyst, approver, viewer).
    roles: BTreeMap<String, String>,
    /// For tokens mapping to several roles: the first of these the token maps to. Without it,
    /// such tokens are refused as ambiguous.
    #[serde(default)]
    role_precedence: Vec<String>,
    /// Immutable claim for the actor id (e.g. oid) [default: sub].
    identity_claim: Option<String>,
    /// NAME=VALUE that makes the subject a person [default: the service's person_claim].
    person_claim: Option<String>,
}

/// The effective configuration, after layering. (No `Debug`: the database URL may hold a
/// password.)
struct Settings {
    dev: bool,
    bind: String,
    database_url: String,
    jwks_file: Option<PathBuf>,
    jwt_issuer: String,
    jwt_audience: String,
    jwt_leeway_secs: u64,
    dangerous_allow_hs256: bool,
    body_limit_bytes: usize,
    request_timeout: Duration,
    max_in_flight: usize,
    max_in_flight_per_tenant: usize,
    header_read_timeout: Duration,
    body_read_timeout: Duration,
    public_url: Option<PublicUrl>,
    policy: CheckpointPolicy,
    log: String,
    console: ConsoleConfig,
    person_claim: PersonClaim,
    identity_claim: Option<String>,
    denial_throttle: DenialThrottleConfig,
    mlflow_config: Option<PathBuf>,
    oidc: Option<OidcOptions>,
    issuers: Vec<IssuerConfig>,
}

impl Settings {
    fn layer(args: &ServeArgs) -> anyhow::Result<Settings> {
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

/// The keys the service needs, from the environment or (dev mode) freshly generated.
struct Keys {
    ledger: Arc<LedgerSigner>,
    /// The key-encryption key: wraps each tenant's data keys, which seal prompt templates
    /// (docs/ENCRYPTION.md, "Envelope encryption").
    encryption: Encryptor,
    auth: JwtVerifier,
    /// Dev mode only: the HS256 secret and the tokens minted with it.
    dev_tokens: Option<DevTokens>,
}

/// What dev mode prints: its HS256 secret and one token per role of tenant `demo`.
struct DevTokens {
    secret: Zeroizing<String>,
    tokens: Vec<(Role, String)>,
    /// Where the dev keys are kept (a durable dev database), if anywhere.
    kept_in: Option<PathBuf>,
}

/// Dev mode's keys. With a durable database they are generated once and kept in a file beside it
/// (mode 0600), so a restart signs with the same ledger key (the database's old checkpoints still
/// verify) and the printed tokens stay valid. With `memory:` they die with the process, like the
/// data.
struct DevSecrets {
    encryption: Zeroizing<String>,
    ledger: Zeroizing<String>,
    jwt: Zeroizing<String>,
}

const DEV_ENCRYPTION: &str = "AIRISK_ENCRYPTION_KEYS";
const DEV_LEDGER: &str = "AIRISK_LEDGER_SIGNING_KEY";
const DEV_JWT: &str = "AIRISK_JWT_SECRET";

impl DevSecrets {
    fn generate() -> anyhow::Result<DevSecrets> {
        let kid = EncryptionKeyId::generate(SystemClock.now().date_naive())?;
        let encryption = airisk_core::security::encryption::generate_key_entry(&kid)?;
        let (ledger, _) =
            airisk_core::ledger::generate_key_pair(&LedgerName::parse("airisk.dev/ledger")?)?;
        let mut bytes = Zeroizing::new([0u8; 32]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut *bytes)
            .map_err(|_| anyhow!("the system random number generator failed"))?;
        Ok(DevSecrets {
            encryption,
            ledger,
            jwt: Zeroizing::new(URL_SAFE_NO_PAD.encode(*bytes)),
        })
    }

    /// Reads `NAME=value` lines written by [`DevSecrets::save`].
    fn load(path: &Path) -> anyhow::Result<DevSecrets> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("could not read the dev keys {}", path.display()))?,
        );
        let get = |name: &str| -> anyhow::Result<Zeroizing<String>> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(|v| Zeroizing::new(v.trim().to_owned()))
                .ok_or_else(|| {
                    anyhow!(
                        "{} lacks {name}: delete it together with the dev database",
                        path.display()
                    )
                })
        };
        Ok(DevSecrets {
            encryption: get(DEV_ENCRYPTION)?,
            ledger: get(DEV_LEDGER)?,
            jwt: get(DEV_JWT)?,
        })
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write as _;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("could not create {}", dir.display()))?;
        }
        let text = Zeroizing::new(format!(
            "# airisk dev mode keys for the database beside this file. Dev only; delete both together.\n\
             {DEV_ENCRYPTION}={}\n{DEV_LEDGER}={}\n{DEV_JWT}={}\n",
            self.encryption.as_str(),
            self.ledger.as_str(),
            self.jwt.as_str()
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .with_context(|| format!("could not create the dev keys {}", path.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("could not write the dev keys {}", path.display()))
    }
}

/// Where dev mode keeps its keys for `database_url`: beside a SQLite file
/// (`<file>.dev-keys`), in `airisk-data/dev-keys` for another durable store, nowhere for
/// `memory:`.
fn dev_keys_file(database_url: &str) -> Option<PathBuf> {
    if database_url == MEMORY_URL {
        return None;
    }
    match database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
    {
        // The file's path only: the store ignores a `?query`, and it may carry a password.
        Some(path) => Some(PathBuf::from(format!(
            "{}.dev-keys",
            path.split_once('?').map_or(path, |(p, _)| p)
        ))),
        None => Some(PathBuf::from("airisk-data/dev-keys")),
    }
}

impl Keys {
    fn production(settings: &Settings, jwt_secret: Option<&str>) -> anyhow::Result<Keys> {
        let mut problems = Vec::new();
        let encryption = match Encryptor::from_env() {
            Ok(e) => Some(e),
            Err(e) => {
                problems.push(format!(
                    "{ENCRYPTION_KEYS_ENV} is missing or invalid ({e}): make a key with `airisk keys generate` and export AIRISK_ENCRYPTION_KEYS=<its output>."
                ));
                None
            }
        };
        let ledger = match LedgerSigner::from_env() {
            Ok(s) => Some(s),
            Err(e) => {
                problems.push(format!(
                    "{SIGNING_KEY_ENV} is missing or invalid ({e}): make one with `airisk keys generate --ledger` and export the first line it prints as {SIGNING_KEY_ENV}."
                ));
                None
            }
        };
        let auth = match verifier(settings, jwt_secret) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(format!("{e:#}"));
                None
            }
        };
        match (encryption, ledger, auth) {
            (Some(encryption), Some(ledger), Some(auth)) if problems.is_empty() => Ok(Keys {
                ledger: Arc::new(ledger),
                encryption,
                auth,
                dev_tokens: None,
            }),
            _ => bail!(
                "the service cannot start without its keys:\n  - {}",
                problems.join("\n  - ")
            ),
        }
    }

    fn dev(settings: &Settings, jwt_secret: Option<&str>) -> anyhow::Result<Keys> {
        let keep = dev_keys_file(&settings.database_url);
        let mut secrets = match &keep {
            Some(path) if path.exists() => DevSecrets::load(path)?,
            _ => {
                let fresh = DevSecrets::generate()?;
                if let Some(path) = &keep {
                    fresh.save(path)?;
                }
                fresh
            }
        };
        if let Some(s) = jwt_secret {
            secrets.jwt = Zeroizing::new(s.to_owned());
        }
        let encryption = Encryptor::from_env_value(&secrets.encryption)
            .context("the dev encryption key is invalid")?;
        let ledger = LedgerSigner::from_signing_key(secrets.ledger.trim())
            .context("the dev ledger signing key is invalid")?;
        let secret = secrets.jwt;
        // A JWKS or an OpenID provider, if configured, is honoured in dev mode too.
        let auth = if settings.jwks_file.is_some()
            || settings.oidc.is_some()
            || !settings.issuers.is_empty()
        {
            verifier(settings, None)?
        } else {
            JwtVerifier::new(&settings.jwt_issuer, &settings.jwt_audience)
                .with_leeway(settings.jwt_leeway_secs)
        }
        .dangerous_with_hs256_secret(secret.as_bytes())?;
        let signer = TokenSigner::Hs256(Zeroizing::new(secret.as_bytes().to_vec()));
        let mut tokens = Vec::new();
        for role in Role::ALL {
            let mut claims = Claims::new(
                &format!("{}@{DEV_TENANT}", role.as_str()),
                DEV_TENANT,
                role,
                DEV_TOKEN_TTL_SECS,
            );
            claims.iss.clone_from(&settings.jwt_issuer);
            claims.aud.clone_from(&settings.jwt_audience);
            tokens.push((role, signer.sign(&claims)?));
        }
        Ok(Keys {
            ledger: Arc::new(ledger),
            encryption,
            auth,
            dev_tokens: Some(DevTokens {
                secret,
                tokens,
                kept_in: keep,
            }),
        })
    }
}

/// The token verifier the settings call for: the JWKS file's keys, plus HS256 if allowed.
fn verifier(settings: &Settings, jwt_secret: Option<&str>) -> anyhow::Result<JwtVerifier> {
    let mut v = JwtVerifier::new(&settings.jwt_issuer, &settings.jwt_audience)
        .with_leeway(settings.jwt_leeway_secs);
    if let Some(options) = &settings.oidc {
        v = v.with_oidc(OidcKeys::new(options.clone()).context("oidc_issuer")?);
    }
    for table in &settings.issuers {
        v = v
            .with_issuer(issuer_verifier(settings, table)?)
            .context("[[issuers]]")?;
    }
    if let Some(path) = &settings.jwks_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read the JWKS file {}", path.display()))?;
        v = v
            .with_jwks(&text)
            .with_context(|| format!("the JWKS file {} is unusable", path.display()))?;
    }
    match (jwt_secret, settings.dangerous_allow_hs256) {
        (Some(secret), true) => {
            v = v.dangerous_with_hs256_secret(secret.as_bytes())?;
        }
        (Some(_), false) if !v.has_keys() => bail!(
            "AIRISK_JWT_SECRET is set but HS256 is refused outside dev mode: set AIRISK_JWKS_FILE to the JWKS `airisk token keygen` prints (or, knowingly, AIRISK_DANGEROUS_ALLOW_HS256=true)."
        ),
        (Some(_), false) => tracing::warn!(
            "AIRISK_JWT_SECRET is set but ignored: HS256 is refused outside dev mode unless AIRISK_DANGEROUS_ALLOW_HS256=true"
        ),
        (None, _) => {}
    }
    if !v.has_keys() {
        bail!(
            "no JWT verification key is configured: run `airisk token keygen --private-key jwt.pem > jwks.json` and set AIRISK_JWKS_FILE=jwks.json."
        );
    }
    Ok(v)
}

/// The token verifier `airisk serve` would build from `args` (keys, issuers, identity and person
/// claims), for `airisk auth check`. Nothing else is read (no encryption or ledger keys).
///
/// # Errors
/// A configuration `airisk serve` would refuse.
pub fn configured_verifier(args: &ServeArgs) -> anyhow::Result<JwtVerifier> {
    let settings = Settings::layer(args)?;
    let v = verifier(&settings, args.jwt_secret.as_deref())?;
    let v = match &settings.identity_claim {
        Some(claim) => v.with_identity_claim(claim)?,
        None => v,
    };
    Ok(v.with_person_claim(settings.person_claim.clone()))
}

/// The verifier of one `[[issuers]]` table: the provider's keys and its claim mapping.
fn issuer_verifier(settings: &Settings, table: &IssuerConfig) -> anyhow::Result<JwtVerifier> {
    let what = || format!("[[issuers]] {}", table.issuer);
    let mut options = OidcOptions::new(&table.issuer);
    options.ca_file.clone_from(&table.ca_file);
    if let Some(o) = &settings.oidc {
        options.refresh_every = o.refresh_every;
        options.min_refresh_gap = o.min_refresh_gap;
        options.max_stale = o.max_stale;
    }
    let tenant = match (&table.tenant, &table.tenant_claim) {
        (Some(t), None) => {
            TenantSource::Fixed(TenantId::parse(t).map_err(|e| anyhow!("{}: tenant: {e}", what()))?)
        }
        (None, Some(c)) => TenantSource::Claim(c.clone()),
        _ => bail!("{}: set exactly one of tenant and tenant_claim", what()),
    };
    let mapping = ClaimMapping::new(
        tenant,
        table.role_claim.as_deref().unwrap_or("roles"),
        &table.roles,
        &table.role_precedence,
    )
    .with_context(what)?;
    let person = match &table.person_claim {
        Some(spec) => PersonClaim::parse(spec).with_context(what)?,
        None => settings.person_claim.clone(),
    };
    let mut v = JwtVerifier::new(
        &table.issuer,
        table.audience.as_deref().unwrap_or(&settings.jwt_audience),
    )
    .with_leeway(settings.jwt_leeway_secs)
    .with_oidc(OidcKeys::new(options).with_context(what)?)
    .with_mapping(mapping)
    .with_person_claim(person);
    if let Some(claim) = &table.identity_claim {
        v = v.with_identity_claim(claim).with_context(what)?;
    }
    Ok(v)
}

/// Opens the stores a database URL names, through the composition root's one opener.
async fn open_stores(url: &str, clock: Arc<dyn Clock>) -> anyhow::Result<Stores> {
    let opened = crate::store::open(url, clock).await?;
    Ok(Stores {
        audit: opened.audit,
        governance: opened.governance,
    })
}

/// Runs `airisk serve`.
///
/// # Errors
/// Missing keys, a bad configuration, a store that cannot be opened, or a port that cannot be
/// bound.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::layer(&args)?;
    init_logging(&settings.log)?;
    if settings.max_in_flight > 0
        && (settings.max_in_flight_per_tenant == 0
            || settings.max_in_flight_per_tenant >= settings.max_in_flight)
    {
        tracing::warn!(
            max_in_flight = settings.max_in_flight,
            max_in_flight_per_tenant = settings.max_in_flight_per_tenant,
            "one tenant can take every in-flight slot: set max_in_flight_per_tenant below max_in_flight when several tenants share the service"
        );
    }
    let jwt_secret = args.jwt_secret.as_deref().map(str::trim);
    let keys = if settings.dev {
        Keys::dev(&settings, jwt_secret)?
    } else {
        Keys::production(&settings, jwt_secret)?
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(serve(settings, keys))
}

fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("invalid log filter {filter:?}"))?;
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| anyhow!("could not install the logger: {e}"))
}

async fn serve(settings: Settings, keys: Keys) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let stores = open_stores(&settings.database_url, clock.clone()).await?;
    let addr: SocketAddr = tokio::net::lookup_host(&settings.bind)
        .await
        .with_context(|| format!("invalid bind address {:?}", settings.bind))?
        .next()
        .ok_or_else(|| anyhow!("bind address {:?} resolves to nothing", settings.bind))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not listen on {addr}"))?;
    let local = listener.local_addr()?;
    let verifier_key = keys.ledger.verifier().to_verifier_key();
    for oidc in keys.auth.oidc_sources() {
        // Not fatal: the service runs and reports not ready until the provider answers (the
        // refresher retries), so a provider outage at start-up is not a crash loop.
        match oidc.refresh().await {
            Ok(n) => {
                tracing::info!(issuer = %oidc.issuer(), keys = n, "oidc: provider keys loaded")
            }
            Err(e) => {
                tracing::warn!(issuer = %oidc.issuer(), error = %e, "oidc: the provider is unreachable at start-up; not ready until it answers")
            }
        }
        oidc.spawn_refresher();
    }
    // Envelope encryption: the keyring is the key-encryption key; each tenant's data keys live
    // wrapped in the store and seal prompt templates (docs/ENCRYPTION.md).
    let envelope = Arc::new(Envelope::new(
        Arc::new(KeyringKeyProvider::new(Arc::new(keys.encryption))),
        DEFAULT_DEK_CACHE,
    ));
    let state = AppState::new_sealed(
        stores,
        clock,
        Arc::new(UuidV7Generator),
        LedgerConfig {
            signer: keys.ledger,
            policy: settings.policy,
        },
        match &settings.identity_claim {
            Some(claim) => keys.auth.with_identity_claim(claim)?,
            None => keys.auth,
        }
        .with_person_claim(settings.person_claim.clone()),
        ServerConfig {
            body_limit: settings.body_limit_bytes,
            request_timeout: settings.request_timeout,
            checkpoint_tick: DEFAULT_CHECKPOINT_TICK,
            max_in_flight: settings.max_in_flight,
            max_in_flight_per_tenant: settings.max_in_flight_per_tenant,
            header_read_timeout: settings.header_read_timeout,
            body_read_timeout: settings.body_read_timeout,
            public_url: settings.public_url.clone(),
            console: settings.console.clone(),
            denial_throttle: settings.denial_throttle,
        },
        Some(envelope),
    );
    let mlflow_sync = match &settings.mlflow_config {
        Some(path) => {
            let mlflow = airisk_server::integrations::mlflow::MlflowIntegration::load(
                path,
                airisk_server::integrations::mlflow::SyncSettings::default(),
            )
            .map_err(|e| anyhow!("MLflow integration: {e}"))?;
            let mlflow = Arc::new(mlflow);
            state.connect_mlflow(mlflow.clone());
            tracing::info!(
                instances = mlflow.instances().count(),
                "MLflow integration connected"
            );
            Some(tokio::spawn(mlflow.run(state.clone())))
        }
        None => None,
    };
    if let Some(dev) = &keys.dev_tokens {
        print_dev_banner(
            local,
            &settings.database_url,
            dev.kept_in.as_deref(),
            &dev.secret,
            &dev.tokens,
            &verifier_key,
        );
    } else {
        println!("airisk listening on http://{local}");
    }
    tracing::info!(
        address = %local,
        database = %redact_url(&settings.database_url),
        dev = settings.dev,
        ledger_verifier_key = %verifier_key,
        "airisk service started"
    );
    let served = airisk_server::serve(listener, state, shutdown).await;
    if let Some(sync) = mlflow_sync {
        sync.abort();
    }
    served.context("the server failed")?;
    tracing::info!("airisk service stopped");
    Ok(())
}

fn print_dev_banner(
    local: SocketAddr,
    database_url: &str,
    kept_in: Option<&Path>,
    secret: &str,
    tokens: &[(Role, String)],
    verifier_key: &str,
) {
    let bar = "!".repeat(78);
    eprintln!("{bar}");
    eprintln!("!!  AIRISK DEV MODE: generated keys, HS256 tokens, NOT FOR PRODUCTION.");
    if database_url == MEMORY_URL {
        eprintln!("!!  Data lives in memory and is gone when this process stops.");
    } else {
        eprintln!("!!  Data goes to {}.", redact_url(database_url));
    }
    if let Some(path) = kept_in {
        eprintln!(
            "!!  Dev keys are kept in {} (delete it together with the database).",
            path.display()
        );
    }
    eprintln!("{bar}");
    // Paste-able into a shell: `export …` lines, one token per role of tenant `demo`.
    println!("# airisk dev mode: paste these lines into your shell");
    println!("export AIRISK_URL=http://{local}");
    for (role, token) in tokens {
        println!("export {}_TOKEN={token}", role.as_str().to_uppercase());
    }
    println!(
        "# mint more tokens with: AIRISK_JWT_SECRET=... airisk token issue --sub … --tenant … --role …"
    );
    println!("export AIRISK_JWT_SECRET={secret}");
    println!("export AIRISK_LEDGER_VERIFIER_KEY={verifier_key}");
    println!("# approver console: http://{local}/console/ (sign in with a token above)");
    println!("# airisk listening on http://{local}");
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: call it before announcing the service, so a signal sent as
/// soon as the "listening" line appears already means "shut down gracefully" (final checkpoints
/// signed) rather than the default "die at once".
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (interrupt, terminate) = handlers;
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {}
                () = wait(terminate) => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutdown signal received: finishing requests in flight");
    }
}

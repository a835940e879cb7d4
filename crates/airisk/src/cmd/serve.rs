//! `airisk serve`: the HTTP service.
//!
//! Configuration, highest precedence first: command-line flags, `AIRISK_…` environment variables,
//! the TOML file given with `--config`, built-in defaults. Secrets (encryption keys, the ledger
//! signing key, an HS256 secret) come from the environment only, never from flags or the file.
//!
//! Without `--dev` the service refuses to start unless it has its encryption keys, its ledger
//! signing key (from the environment, or both in a PKCS#11 token: [`crate::cmd::hsm`]) and a JWT
//! verification key, and says in one sentence each how to make them. With
//! `--dev` it generates its own (ephemeral with the default in-memory data; kept beside a durable
//! dev database, so a restart still verifies that database's ledger), prints a ready token for one
//! user of each role in tenant `demo`, and says loudly that it is dev mode.
//!
//! This file holds the arguments and the run loop (open the store, bind, build the state, serve
//! until a signal); [`config`] layers the configuration, [`keys`] gathers the keys and the token
//! verifier, [`dev_keys`] keeps dev mode's keys beside its database. Logging is
//! [`crate::telemetry`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use airisk_core::ports::{Clock, SystemClock, UuidV7Generator};
use airisk_core::security::envelope::{DEFAULT_DEK_CACHE, Envelope};
use airisk_core::security::rbac::Role;
use airisk_server::auth::JwtVerifier;
use airisk_server::{AppState, DEFAULT_CHECKPOINT_TICK, LedgerConfig, ServerConfig};
use anyhow::{Context, anyhow};
use clap::Args;

use self::config::Settings;
use self::keys::{ServiceKeys, verifier};
use crate::store::{MEMORY_URL, redact_url};

/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default store: a SQLite file under `./airisk-data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://airisk-data/airisk.db";
/// The tenant dev mode prints tokens for.
pub const DEV_TENANT: &str = "demo";
/// How long dev tokens are valid.
const DEV_TOKEN_TTL_SECS: u64 = 8 * 3600;

mod config;
mod dev_keys;
mod keys;

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
    /// oidc_max_stale_secs, console_oidc_client_id, console_oidc_issuer, console_oidc_scopes,
    /// console_oidc_provider_name, console_session_idle_secs, console_session_absolute_secs,
    /// issuers tables. Flags and environment override it.
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

    /// Console sign-in through an OpenID provider: the client id registered there (a
    /// confidential client; its secret in AIRISK_CONSOLE_OIDC_CLIENT_SECRET, environment only).
    /// Needs --public-url (the redirect URI is PUBLIC_URL/console/oidc/callback) and, outside
    /// --dev, AIRISK_CONSOLE_SESSION_SECRET [default: off].
    #[arg(long, env = "AIRISK_CONSOLE_OIDC_CLIENT_ID", value_name = "ID")]
    console_oidc_client_id: Option<String>,

    /// The provider the console signs people in with: --oidc-issuer or one of the issuers tables
    /// [default: --oidc-issuer].
    #[arg(long, env = "AIRISK_CONSOLE_OIDC_ISSUER", value_name = "URL")]
    console_oidc_issuer: Option<String>,

    /// Scopes the console asks for, space-separated (openid is always asked for)
    /// [default: openid profile].
    #[arg(long, env = "AIRISK_CONSOLE_OIDC_SCOPES")]
    console_oidc_scopes: Option<String>,

    /// The provider's name on the console's sign-in button [default: the issuer's host].
    #[arg(long, env = "AIRISK_CONSOLE_OIDC_PROVIDER_NAME")]
    console_oidc_provider_name: Option<String>,

    /// A console session unused this long ends, seconds [default: 1800].
    #[arg(long, env = "AIRISK_CONSOLE_SESSION_IDLE_SECS")]
    console_session_idle_secs: Option<u64>,

    /// A console session this old ends however busy, seconds [default: 28800].
    #[arg(long, env = "AIRISK_CONSOLE_SESSION_ABSOLUTE_SECS")]
    console_session_absolute_secs: Option<u64>,
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

/// Runs `airisk serve`.
///
/// # Errors
/// Missing keys, a bad configuration, a store that cannot be opened, or a port that cannot be
/// bound.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::layer(&args)?;
    crate::telemetry::init(&settings.log)?;
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
        ServiceKeys::dev(&settings, jwt_secret)?
    } else {
        ServiceKeys::production(&settings, jwt_secret)?
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(serve(settings, keys))
}

async fn serve(settings: Settings, keys: ServiceKeys) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let stores = crate::store::open(&settings.database_url, clock.clone()).await?;
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
    // Envelope encryption: the keyring (or the PKCS#11 token's KEK) is the key-encryption key;
    // each tenant's data keys live wrapped in the store and seal prompt templates
    // (docs/ENCRYPTION.md).
    let envelope = Arc::new(Envelope::new(keys.kek, DEFAULT_DEK_CACHE));
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

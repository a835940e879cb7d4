//! # airisk-server
//!
//! The HTTP API of the ai-risk-engine governance & security kernel (axum). It exposes the core's
//! services; it never opens a database itself: the composition root (the `airisk` binary, or a
//! test) builds an [`AppState`] from the store ports and hands it in.
//!
//! * [`router`]: every route under `/v1`, plus `/healthz`, `/readyz`, `/metrics` and
//!   `/openapi.json` (OpenAPI 3.1, generated from the same declarations as the router), and the
//!   approver console's HTML pages under `/console` ([`ConsoleConfig`]), which call the same
//!   services with the same identity.
//! * [`auth`]: bearer JWTs verified locally; the tenant and role come only from the token.
//! * [`ApiError`]: the one error type, rendered as RFC 9457 problem+json with the correlation id.
//! * [`serve`]: runs the router on a listener with the checkpoint timer, until a shutdown signal;
//!   then stops accepting, finishes requests in flight, and signs a final checkpoint per tenant.
//!   A client gets [`ServerConfig::header_read_timeout`] to send a request's head and
//!   [`ServerConfig::body_read_timeout`] to send its body; `/v1` requests are admitted only once
//!   authenticated, within a per-tenant share of the in-flight limit ([`ServerConfig`]).
//! * Every response carries `X-Content-Type-Options: nosniff`, and `Strict-Transport-Security`
//!   when the configured public URL is https.
//!
//! Every request gets a correlation id (`X-Correlation-Id`, accepted when valid, else generated),
//! returned on every response, passed to every service call (so it is in the audit records), and
//! written on the request's one JSON log line.
#![deny(missing_docs)]

mod admission;
pub mod api_types;
pub mod auth;
mod console;
mod context;
mod error;
mod extract;
pub mod https;
mod idempotency;
pub mod integrations;
pub mod mapping;
pub mod metrics;
pub mod oidc;
mod routes;
mod state;
pub mod throttle;

use std::future::Future;
use std::time::Duration;

use airisk_core::ports::AuditRepository;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use console::session_store::{
    DEFAULT_ABSOLUTE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, MIN_SESSION_SECRET_LEN, SessionConfig,
    SessionSecret,
};
pub use console::{
    CLIENT_SECRET_ENV, ConsoleConfig, ConsoleOidcConfig, OIDC_CALLBACK_PATH, POST_LOGOUT_PATH,
    SESSION_SECRET_ENV,
};
pub use context::{CORRELATION_HEADER, UNMATCHED_ROUTE};
pub use error::{ApiError, HiddenCharacterView, PROBLEM_JSON, Problem};
pub use extract::Caller;
pub use idempotency::{IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_REPLAYED_HEADER};
pub use routes::{openapi, router};
pub use state::{
    AppState, DEFAULT_BODY_LIMIT, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_CHECKPOINT_TICK,
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_IN_FLIGHT_PER_TENANT,
    DEFAULT_REQUEST_TIMEOUT, LedgerConfig, PublicUrl, ServerConfig, Stores,
};

/// Serves `state`'s router on `listener` until `shutdown` completes, with the checkpoint timer
/// running. On shutdown: stops accepting connections, lets requests in flight finish (each is
/// bounded by the request timeout), stops the timer, and signs a checkpoint over each tenant's
/// head so the tail of every ledger is committed.
///
/// # Errors
/// None today: an error accepting a connection (out of file descriptors, say) is logged and the
/// service keeps accepting. The `Result` stays for the listener errors a future transport may
/// have.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_timer, timer_stopped) = watch::channel(false);
    let timer = tokio::spawn(checkpoint_timer(state.clone(), timer_stopped));
    let app = router(state.clone());
    let served = accept_loop(listener, app, state.config(), shutdown).await;
    let _ = stop_timer.send(true);
    let _ = timer.await;
    flush(&state).await;
    served
}

/// Accepts connections until `shutdown`, serving each (HTTP/1.1) with the header read timeout;
/// then asks every connection to finish its request in flight and close, and waits for them.
///
/// (`axum::serve` runs hyper without a timer, so without a header read timeout: a client that
/// never finishes its headers would hold its connection and task forever.)
async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    // Signalled when shutdown begins: every connection then starts its graceful shutdown.
    let (stop_tx, stop_rx) = watch::channel(());
    // Each connection holds a clone; `closed()` completes when the last is gone.
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin, keep serving.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.as_mut().await;
                }
            }
            drop(done);
        });
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(());
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// Asks every tenant's ledger, every tick, whether its checkpoint is stale (entries appended
/// through the governance store do not pass the logger's append path, so this timer is what
/// commits them).
async fn checkpoint_timer(state: AppState, mut stop: watch::Receiver<bool>) {
    let tick: Duration = state.config().checkpoint_tick;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        let tenants = match state.stores().audit.tenants().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint timer: cannot list tenants");
                continue;
            }
        };
        for tenant in tenants {
            if let Err(e) = state.audit().checkpoint_if_stale(&tenant).await {
                tracing::warn!(tenant_id = %tenant, error = %e, "checkpoint timer: could not sign");
            }
        }
    }
}

/// Signs a checkpoint over every tenant's current head (a no-op where one already covers it).
async fn flush(state: &AppState) {
    let repo: &dyn AuditRepository = state.stores().audit.as_ref();
    let tenants = match repo.tenants().await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "shutdown: cannot list tenants to sign final checkpoints");
            return;
        }
    };
    for tenant in tenants {
        match state.audit().checkpoint(&tenant).await {
            Ok(cp) => {
                tracing::info!(tenant_id = %tenant, size = cp.size, "shutdown: ledger committed by a checkpoint")
            }
            Err(e) => {
                tracing::error!(tenant_id = %tenant, error = %e, "shutdown: could not sign a final checkpoint")
            }
        }
    }
}

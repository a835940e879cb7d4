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
//!
//! Every request gets a correlation id (`X-Correlation-Id`, accepted when valid, else generated),
//! returned on every response, passed to every service call (so it is in the audit records), and
//! written on the request's one JSON log line.
#![deny(missing_docs)]

pub mod auth;
mod console;
mod context;
mod error;
mod extract;
pub mod metrics;
mod routes;
mod state;
pub mod views;

use std::future::Future;
use std::time::Duration;

use airisk_core::ports::AuditRepository;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use console::ConsoleConfig;
pub use context::{CORRELATION_HEADER, UNMATCHED_ROUTE};
pub use error::{ApiError, HiddenCharacterView, PROBLEM_JSON, Problem};
pub use extract::Caller;
pub use routes::{openapi, router};
pub use state::{
    AppState, DEFAULT_BODY_LIMIT, DEFAULT_CHECKPOINT_TICK, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_REQUEST_TIMEOUT, LedgerConfig, ServerConfig, Stores,
};

/// Serves `state`'s router on `listener` until `shutdown` completes, with the checkpoint timer
/// running. On shutdown: stops accepting connections, lets requests in flight finish (each is
/// bounded by the request timeout), stops the timer, and signs a checkpoint over each tenant's
/// head so the tail of every ledger is committed.
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_timer, timer_stopped) = watch::channel(false);
    let timer = tokio::spawn(checkpoint_timer(state.clone(), timer_stopped));
    let app = router(state.clone());
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop_timer.send(true);
    let _ = timer.await;
    flush(&state).await;
    served
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

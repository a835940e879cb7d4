//! Operations: liveness, readiness, metrics, the OpenAPI document. No authentication (put them
//! behind the network boundary you trust; they reveal no tenant data).

use airisk_core::security::tenant_context::TenantId;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use uuid::Uuid;

use crate::api_types::HealthView;
use crate::state::AppState;

/// The process is up.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = HealthView))
)]
pub(crate) async fn healthz() -> Json<HealthView> {
    Json(HealthView {
        status: "ok".into(),
        reason: None,
    })
}

/// The stores answer: a cheap read of each (tree head of a probe tenant, one approval lookup).
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = HealthView),
        (status = 503, description = "A store does not answer", body = HealthView)
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<HealthView>) {
    let ready = match TenantId::parse("readyz-probe") {
        Ok(probe) => {
            let audit = state.stores().audit.tree_head(&probe).await;
            let governance = state
                .stores()
                .governance
                .approval(&probe, Uuid::nil())
                .await;
            if let Err(e) = &audit {
                tracing::warn!(error = %e, "readiness: the audit store does not answer");
            }
            if let Err(e) = &governance {
                tracing::warn!(error = %e, "readiness: the governance store does not answer");
            }
            audit.is_ok() && governance.is_ok()
        }
        Err(_) => false,
    };
    // Tokens can be verified: an OpenID provider that has not answered is a reason to wait.
    let auth = state.auth().readiness();
    if let Err(reason) = &auth {
        tracing::warn!(reason = %reason, "readiness: token verification is not ready");
    }
    let ready = ready && auth.is_ok();
    if ready {
        (
            StatusCode::OK,
            Json(HealthView {
                status: "ok".into(),
                reason: None,
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthView {
                status: "unavailable".into(),
                reason: auth.err(),
            }),
        )
    }
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "text/plain; version=0.0.4", body = String))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render() + &state.denials().render(),
    )
}

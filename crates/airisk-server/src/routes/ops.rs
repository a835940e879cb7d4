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

/// The stores answer: a cheap read of each (tree head of a probe tenant, one approval lookup);
/// tokens can be verified; and the keys kept in a PKCS#11 token (key-encryption key, ledger
/// signing key) are reachable there.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = HealthView),
        (status = 503, description = "A store, the token verifier or a key's token does not answer", body = HealthView)
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
    // The keys: a key-encryption key or ledger key in an HSM that is unreachable (or has lost the
    // key) means every write that needs it fails closed, so the instance is not ready. Asking a
    // token is a blocking call (and waits for the token's session), so it runs off the runtime.
    let probe = state.clone();
    let (kek, signing) = tokio::task::spawn_blocking(move || {
        let kek = probe
            .envelope()
            .map_or(Ok(()), |e| e.provider().readiness())
            .map_err(|r| format!("key-encryption key: {r}"));
        let signing = probe
            .audit()
            .signer_readiness()
            .map_err(|r| format!("ledger signing key: {r}"));
        (kek, signing)
    })
    .await
    .unwrap_or_else(|e| (Err(format!("the key readiness probe failed: {e}")), Ok(())));
    if let Err(reason) = &kek {
        tracing::warn!(reason = %reason, "readiness: the key-encryption key is not usable");
    }
    if let Err(reason) = &signing {
        tracing::warn!(reason = %reason, "readiness: the ledger signing key is not usable");
    }
    let ready = ready && auth.is_ok() && kek.is_ok() && signing.is_ok();
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
                reason: auth.err().or(kek.err()).or(signing.err()),
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

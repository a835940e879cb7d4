//! `/v1/tenant/shred`: crypto-shredding of the caller's own tenant (`tenant.shred`: admin only,
//! its own permission). Destroys the tenant's data keys, so every value sealed under them reads
//! as erased; the ledger, which holds only ciphertext, still verifies, and records the shred.

use airisk_core::security::key_custody::{KeyCustodyError, shred_own_tenant};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api_types::ReceiptView;
use crate::error::{ApiError, WriteErrors};
use crate::extract::{ApiJson, Caller};
use crate::state::AppState;

/// Why the tenant is shredded (recorded in its ledger).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShredBody {
    /// The reason, e.g. the erasure request's reference: visible text, not blank, at most 4096
    /// bytes of UTF-8.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 4096)]
    pub reason: String,
}

/// What a shred did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShredView {
    /// Live data keys destroyed (0 if there were none left).
    pub keys_destroyed: usize,
    /// The `tenant.shred` ledger record.
    pub receipt: ReceiptView,
}

impl From<KeyCustodyError> for ApiError {
    fn from(e: KeyCustodyError) -> Self {
        match e {
            KeyCustodyError::Forbidden(e) => e.into(),
            KeyCustodyError::Invalid(m) => ApiError::Unprocessable(m),
            KeyCustodyError::Audit(e) => ApiError::Unprocessable(e.to_string()),
            KeyCustodyError::Store(e) => e.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Destroy the caller's tenant's data keys (`tenant.shred`: admin only). Irreversible.
#[utoipa::path(
    post, path = "/v1/tenant/shred", tag = "operations",
    request_body = ShredBody,
    responses((status = 200, description = "Shredded and recorded", body = ShredView), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn shred(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ShredBody>,
) -> Result<Json<ShredView>, ApiError> {
    let outcome = shred_own_tenant(
        state.stores().governance.as_ref(),
        state.ids().as_ref(),
        state.envelope(),
        &caller.principal,
        &caller.correlation,
        &body.reason,
    )
    .await?;
    Ok(Json(ShredView {
        keys_destroyed: outcome.keys_destroyed,
        receipt: ReceiptView::from(&outcome.receipt),
    }))
}

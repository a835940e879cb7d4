//! `/v1/tenant/…`: key custody of the caller's own tenant.
//!
//! * `POST /v1/tenant/shred`: crypto-shredding (`tenant.shred`, or with `subject`
//!   `tenant.shred_subject`: admin only, the `shred` permission). Destroys the tenant's data
//!   keys, or one data subject's, so every value sealed under them reads as erased; the ledger,
//!   which holds only ciphertext, still verifies, and records the shred.
//! * `POST /v1/tenant/rotate-data-key`: a new data key for the tenant's new values
//!   (`keys.rotate_data_key`: admin only); old values still open under their own key.

use airisk_core::security::key_custody::{
    KeyCustodyError, rotate_own_data_key, shred_own_subject, shred_own_tenant,
};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api_types::ReceiptView;
use crate::error::{ApiError, WriteErrors};
use crate::extract::{ApiJson, Caller};
use crate::state::AppState;

/// What to shred, and why (recorded in the tenant's ledger).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShredBody {
    /// The reason, e.g. the erasure request's reference: visible text, not blank, at most 4096
    /// bytes of UTF-8.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 4096)]
    pub reason: String,
    /// One data subject to erase (the identifier given as `data_subject` when its values were
    /// appended: 1 to 128 visible ASCII characters, compared exactly, case included). Without
    /// it, the whole tenant is shredded. The ledger records the subject only as a keyed
    /// pseudonym, never in plaintext.
    #[serde(default)]
    #[schema(pattern = "^[!-~]+$", min_length = 1, max_length = 128)]
    pub subject: Option<String>,
}

/// What a shred did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShredView {
    /// Live data keys destroyed (0 if there were none left: a repeated shred, or a subject the
    /// tenant never sealed a value for).
    pub keys_destroyed: usize,
    /// For a subject's shred: the subject's pseudonym as recorded (64 hex digits), when the
    /// tenant has a pseudonym key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_pseudonym: Option<String>,
    /// The `tenant.shred` (or `tenant.shred_subject`) ledger record.
    pub receipt: ReceiptView,
}

/// What a data-key rotation did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RotateDataKeyView {
    /// The new data key's id: every value sealed from now on names it.
    pub kid: String,
    /// The key it replaces as the newest, if the tenant had one (its values still open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_kid: Option<String>,
    /// The `keys.rotate_data_key` ledger record.
    pub receipt: ReceiptView,
}

impl From<KeyCustodyError> for ApiError {
    fn from(e: KeyCustodyError) -> Self {
        match e {
            KeyCustodyError::Forbidden(e) => e.into(),
            KeyCustodyError::Invalid(m) => ApiError::Unprocessable(m),
            KeyCustodyError::Audit(e) => ApiError::Unprocessable(e.to_string()),
            KeyCustodyError::Store(e) => e.into(),
            KeyCustodyError::Encryption(e) => e.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Destroy the caller's tenant's data keys, or one data subject's (`tenant.shred` /
/// `tenant.shred_subject`: admin only). Irreversible.
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
    let governance = state.stores().governance.as_ref();
    if let Some(subject) = &body.subject {
        // Validated after the permission check, like every input (invariant 3).
        let outcome = shred_own_subject(
            governance,
            state.ids().as_ref(),
            state.envelope(),
            &caller.principal,
            &caller.correlation,
            subject,
            &body.reason,
        )
        .await?;
        return Ok(Json(ShredView {
            keys_destroyed: outcome.keys_destroyed,
            subject_pseudonym: outcome.pseudonym.map(|p| p.as_str().to_owned()),
            receipt: ReceiptView::from(&outcome.receipt),
        }));
    }
    let outcome = shred_own_tenant(
        governance,
        state.ids().as_ref(),
        state.envelope(),
        &caller.principal,
        &caller.correlation,
        &body.reason,
    )
    .await?;
    Ok(Json(ShredView {
        keys_destroyed: outcome.keys_destroyed,
        subject_pseudonym: None,
        receipt: ReceiptView::from(&outcome.receipt),
    }))
}

/// Make a new data key for the caller's tenant (`keys.rotate_data_key`: admin only): values
/// sealed from now on use it; values sealed before still open under their own key.
#[utoipa::path(
    post, path = "/v1/tenant/rotate-data-key", tag = "operations",
    responses((status = 200, description = "Rotated and recorded", body = RotateDataKeyView), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn rotate_data_key(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<RotateDataKeyView>, ApiError> {
    let outcome = rotate_own_data_key(
        state.stores().governance.as_ref(),
        state.ids().as_ref(),
        state.envelope(),
        state.clock().now(),
        &caller.principal,
        &caller.correlation,
    )
    .await?;
    Ok(Json(RotateDataKeyView {
        kid: outcome.kid.as_str().to_owned(),
        previous_kid: outcome.previous.map(|k| k.as_str().to_owned()),
        receipt: ReceiptView::from(&outcome.receipt),
    }))
}

//! The operations routes' bodies (`/healthz`, `/readyz`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Liveness or readiness.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// `ok`, or `unavailable` (readiness only).
    pub status: String,
    /// Why not ready, when the reason is safe to show (an OpenID provider that has not provided
    /// its keys); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

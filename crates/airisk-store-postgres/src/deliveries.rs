//! The shared replay memory of signed webhook deliveries
//! ([`GovernanceStore::claim_delivery`](airisk_core::ports::GovernanceStore::claim_delivery)):
//! each call its own short transaction, scoped to the tenant like every other (row-level
//! security). The primary key decides a race: `INSERT … ON CONFLICT DO NOTHING` inserts for
//! exactly one of two concurrent claims.

use airisk_core::ports::{DeliveryClaim, StoreError};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::error::map;
use crate::write::begin_for;

/// Prunes the tenant's expired claims, then claims `claim` unless it is there.
pub(crate) async fn claim(
    pool: &PgPool,
    claim: &DeliveryClaim,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    claim.check()?;
    let mut tx = begin_for(pool, &claim.tenant, false).await?;
    sqlx::query("DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND until_ms < $2")
        .bind(claim.tenant.as_str())
        .bind(now.timestamp_millis())
        .execute(&mut *tx)
        .await
        .map_err(|e| map(&e))?;
    let inserted = sqlx::query(
        "INSERT INTO webhook_deliveries (tenant_id, source, delivery_id, until_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(claim.tenant.as_str())
    .bind(&claim.source)
    .bind(&claim.delivery_id)
    .bind(claim.until.timestamp_millis())
    .execute(&mut *tx)
    .await
    .map_err(|e| map(&e))?
    .rows_affected();
    tx.commit().await.map_err(|e| map(&e))?;
    Ok(inserted == 1)
}

/// Sets the claim's `until` (stores it if it is not there).
pub(crate) async fn settle(pool: &PgPool, claim: &DeliveryClaim) -> Result<(), StoreError> {
    claim.check()?;
    let mut tx = begin_for(pool, &claim.tenant, false).await?;
    sqlx::query(
        "INSERT INTO webhook_deliveries (tenant_id, source, delivery_id, until_ms) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, source, delivery_id) DO UPDATE SET until_ms = EXCLUDED.until_ms",
    )
    .bind(claim.tenant.as_str())
    .bind(&claim.source)
    .bind(&claim.delivery_id)
    .bind(claim.until.timestamp_millis())
    .execute(&mut *tx)
    .await
    .map_err(|e| map(&e))?;
    tx.commit().await.map_err(|e| map(&e))
}

/// Deletes the claim.
pub(crate) async fn release(pool: &PgPool, claim: &DeliveryClaim) -> Result<(), StoreError> {
    let mut tx = begin_for(pool, &claim.tenant, false).await?;
    sqlx::query(
        "DELETE FROM webhook_deliveries \
         WHERE tenant_id = $1 AND source = $2 AND delivery_id = $3",
    )
    .bind(claim.tenant.as_str())
    .bind(&claim.source)
    .bind(&claim.delivery_id)
    .execute(&mut *tx)
    .await
    .map_err(|e| map(&e))?;
    tx.commit().await.map_err(|e| map(&e))
}

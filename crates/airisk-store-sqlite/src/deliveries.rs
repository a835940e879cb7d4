//! The shared replay memory of signed webhook deliveries
//! ([`GovernanceStore::claim_delivery`](airisk_core::ports::GovernanceStore::claim_delivery)),
//! applied by the writer thread inside its batch transaction like every other write, so two
//! claims of one delivery are serialised and exactly one inserts.

use airisk_core::ports::{DeliveryClaim, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use crate::error::map_sqlite;

/// What the writer is asked to do with a claim.
#[derive(Debug)]
pub(crate) enum DeliveryOp {
    /// Prune the tenant's claims expired at `now`, then insert unless present.
    Claim(DeliveryClaim, DateTime<Utc>),
    /// Set `until` (insert if absent).
    Settle(DeliveryClaim),
    /// Delete.
    Release(DeliveryClaim),
}

/// Applies `op`; `true` when a claim was inserted (always `true` for settle and release).
pub(crate) fn apply(conn: &Connection, op: &DeliveryOp) -> Result<bool, StoreError> {
    match op {
        DeliveryOp::Claim(claim, now) => {
            claim.check()?;
            conn.execute(
                "DELETE FROM webhook_deliveries WHERE tenant_id = ?1 AND until_ms < ?2",
                params![claim.tenant.as_str(), now.timestamp_millis()],
            )
            .map_err(|e| map_sqlite(&e))?;
            let inserted = conn
                .execute(
                    "INSERT INTO webhook_deliveries (tenant_id, source, delivery_id, until_ms) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    params![
                        claim.tenant.as_str(),
                        claim.source,
                        claim.delivery_id,
                        claim.until.timestamp_millis()
                    ],
                )
                .map_err(|e| map_sqlite(&e))?;
            Ok(inserted == 1)
        }
        DeliveryOp::Settle(claim) => {
            claim.check()?;
            conn.execute(
                "INSERT INTO webhook_deliveries (tenant_id, source, delivery_id, until_ms) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (tenant_id, source, delivery_id) DO UPDATE SET until_ms = excluded.until_ms",
                params![
                    claim.tenant.as_str(),
                    claim.source,
                    claim.delivery_id,
                    claim.until.timestamp_millis()
                ],
            )
            .map_err(|e| map_sqlite(&e))?;
            Ok(true)
        }
        DeliveryOp::Release(claim) => {
            conn.execute(
                "DELETE FROM webhook_deliveries \
                 WHERE tenant_id = ?1 AND source = ?2 AND delivery_id = ?3",
                params![claim.tenant.as_str(), claim.source, claim.delivery_id],
            )
            .map_err(|e| map_sqlite(&e))?;
            Ok(true)
        }
    }
}

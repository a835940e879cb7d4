//! Operations on tenants' data keys that change stored state, each with its audit record in the
//! same transaction (invariant 1): crypto-shredding a tenant and rewrapping its data keys after a
//! key-encryption-key rotation.
//!
//! These are operator commands (`airisk tenant shred`, `airisk keys rewrap-data-keys`): the
//! operator holds the database, so there is no RBAC principal; the actor named in the record is
//! the operator's identity as given on the command line.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::encryption::EncryptionError;
use super::envelope::Envelope;
use super::tenant_context::{ActorId, TenantId};
use crate::governance::audit_record::{AuditEvent, AuditReceipt, AuditValidationError, Outcome};
use crate::ports::{ChangeSet, GovernanceStore, IdGenerator, Mutation, StoreError};
use crate::request::CorrelationId;

/// The action of a crypto-shredding record.
pub const SHRED_ACTION: &str = "tenant.shred";
/// The action of a data-key rewrap (KEK rotation) record.
pub const REWRAP_ACTION: &str = "keys.rewrap_data_keys";

/// Why a key-custody operation failed; in every case nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyCustodyError {
    /// The audit record could not be built.
    #[error(transparent)]
    Audit(#[from] AuditValidationError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A data key could not be rewrapped (its KEK is not in the keyring, or it was tampered with).
    #[error(transparent)]
    Encryption(#[from] EncryptionError),
}

/// What a shred did.
#[derive(Debug, Clone)]
pub struct ShredOutcome {
    /// Live data keys destroyed by this shred (0 if the tenant had none, or was shredded before).
    pub keys_destroyed: usize,
    /// The receipt of the `tenant.shred` record.
    pub receipt: AuditReceipt,
}

/// Destroys every data key of `tenant` (their wrapped text is erased; an id tombstone stays) and
/// appends a `tenant.shred` record to the tenant's ledger, in one transaction. Afterwards every
/// value sealed under those keys reads as erased; the ledger, which commits to ciphertext only,
/// still verifies. Evicts the tenant's keys from `envelope`'s cache, if given.
///
/// # Errors
/// [`KeyCustodyError::Store`] or [`KeyCustodyError::Audit`]; nothing changed then.
pub async fn shred_tenant(
    store: &dyn GovernanceStore,
    ids: &dyn IdGenerator,
    envelope: Option<&Arc<Envelope>>,
    tenant: &TenantId,
    actor: &ActorId,
    reason: &str,
) -> Result<ShredOutcome, KeyCustodyError> {
    let live = store
        .data_keys(tenant)
        .await?
        .iter()
        .filter(|k| k.wrapped.is_some())
        .count();
    let mut meta = Map::new();
    meta.insert("data_keys_destroyed".into(), Value::from(live));
    let event = AuditEvent::new(
        ids.new_id(),
        tenant.clone(),
        actor.clone(),
        SHRED_ACTION,
        Outcome::Success,
        "tenant",
        tenant.as_str(),
        Some(reason.to_owned()),
        CorrelationId::generate(),
        Some(meta),
    )?;
    let receipts = store
        .commit(ChangeSet {
            tenant: tenant.clone(),
            mutations: vec![Mutation::ShredDataKeys {
                tenant: tenant.clone(),
            }],
            audit: vec![event],
        })
        .await?;
    if let Some(env) = envelope {
        env.forget_tenant(tenant);
    }
    let receipt = receipts
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Refused {
            message: "the store returned no receipt for the shred record".to_owned(),
        })?;
    Ok(ShredOutcome {
        keys_destroyed: live,
        receipt,
    })
}

/// Rewraps every live data key of `tenant` under `envelope`'s current key-encryption key (after
/// a KEK rotation), with a `keys.rewrap_data_keys` record, in one transaction. Only data keys
/// change; no sealed value is touched. Returns how many keys changed (0: nothing to do, and
/// nothing is written).
///
/// # Errors
/// [`KeyCustodyError`]; nothing changed then.
pub async fn rewrap_tenant_keys(
    store: &dyn GovernanceStore,
    ids: &dyn IdGenerator,
    envelope: &Envelope,
    tenant: &TenantId,
    actor: &ActorId,
) -> Result<usize, KeyCustodyError> {
    let keys = store.data_keys(tenant).await?;
    let changed = envelope.rewrap_keys(&keys)?;
    if changed.is_empty() {
        return Ok(0);
    }
    let mut meta = Map::new();
    meta.insert("data_keys_rewrapped".into(), Value::from(changed.len()));
    let event = AuditEvent::new(
        ids.new_id(),
        tenant.clone(),
        actor.clone(),
        REWRAP_ACTION,
        Outcome::Success,
        "tenant",
        tenant.as_str(),
        None,
        CorrelationId::generate(),
        Some(meta),
    )?;
    let n = changed.len();
    store
        .commit(ChangeSet {
            tenant: tenant.clone(),
            mutations: changed.into_iter().map(Mutation::RewrapDataKey).collect(),
            audit: vec![event],
        })
        .await?;
    Ok(n)
}

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
    /// An input is invalid; nothing was written.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The caller's role may not do this (the refusal was recorded).
    #[error(transparent)]
    Forbidden(#[from] super::rbac::AuthorizationError),
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

/// The action of the record that makes a tenant's first data key outside another command.
pub const CREATE_DATA_KEY_ACTION: &str = "keys.create_data_key";
/// The purpose bound into the AAD of a sealed audit metadata value (the row is `<record id>/<key>`).
pub const AUDIT_METADATA_PURPOSE: &str = "audit.metadata";

/// The context an audit metadata value is sealed under: tenant, [`AUDIT_METADATA_PURPOSE`], row
/// `<record id>/<key>`.
///
/// # Errors
/// [`EncryptionError::RowTooLong`] for a key longer than about 980 bytes.
pub fn audit_metadata_context(
    tenant: &TenantId,
    record_id: uuid::Uuid,
    key: &str,
) -> Result<super::encryption::EncryptionContext, EncryptionError> {
    let purpose = super::encryption::Purpose::parse(AUDIT_METADATA_PURPOSE)
        .map_err(|_| EncryptionError::KeyMissing)?;
    super::encryption::EncryptionContext::new(tenant.clone(), purpose)
        .with_row(format!("{record_id}/{key}"))
}

/// Seals `sensitive` into `event` (its `sealed_metadata` leaf member) under the tenant's newest
/// data key, before any leaf is built: the ledger commits to the ciphertext. Each value is sealed
/// as its canonical JSON text, bound to the tenant, [`AUDIT_METADATA_PURPOSE`] and the row
/// `<record id>/<key>`. If the tenant has no live data key yet, one is made first and stored with
/// a `keys.create_data_key` record (its own transaction: the key exists before anything depends
/// on it).
///
/// # Errors
/// [`KeyCustodyError`]; nothing of the event was written then.
pub async fn seal_sensitive_metadata(
    store: &dyn GovernanceStore,
    ids: &dyn IdGenerator,
    envelope: &Envelope,
    now: chrono::DateTime<chrono::Utc>,
    event: AuditEvent,
    sensitive: &crate::governance::audit_record::SensitiveMetadata,
) -> Result<AuditEvent, KeyCustodyError> {
    if sensitive.is_empty() {
        return Ok(event);
    }
    let tenant = event.tenant_id().clone();
    let mut keys = store.data_keys(&tenant).await?;
    if !keys.iter().any(|k| k.wrapped.is_some()) {
        let (dek, _key) = envelope.new_data_key(&tenant, now)?;
        let mut meta = Map::new();
        meta.insert("kid".into(), Value::from(dek.kid.as_str()));
        let record = AuditEvent::new(
            ids.new_id(),
            tenant.clone(),
            event.actor().clone(),
            CREATE_DATA_KEY_ACTION,
            Outcome::Success,
            "tenant",
            tenant.as_str(),
            None,
            event.correlation_id().clone(),
            Some(meta),
        )?;
        store
            .commit(ChangeSet {
                tenant: tenant.clone(),
                mutations: vec![Mutation::InsertDataKey(dek)],
                audit: vec![record],
            })
            .await?;
        keys = store.data_keys(&tenant).await?;
    }
    let mut sealed = Map::new();
    for (key, value) in sensitive.expose() {
        let ctx = audit_metadata_context(&tenant, event.id(), key)?;
        let text =
            zeroize::Zeroizing::new(crate::ledger::to_canonical_json(value).map_err(|e| {
                AuditValidationError::MetadataNotCanonical {
                    reason: e.to_string(),
                }
            })?);
        let (ciphertext, fresh) = envelope.seal(&keys, &ctx, &text, now)?;
        if fresh.is_some() {
            // The key made above is gone again (shredded meanwhile): fail closed.
            return Err(KeyCustodyError::Store(StoreError::Conflict {
                what: "the tenant's data keys changed while sealing; retry".to_owned(),
            }));
        }
        sealed.insert(key.clone(), Value::from(ciphertext));
    }
    Ok(event.with_sealed_metadata(sealed)?)
}

/// What one sealed audit metadata value opened to.
#[derive(Clone, PartialEq)]
pub enum OpenedValue {
    /// The value (as the caller gave it).
    Value(Value),
    /// Its data key was shredded.
    Erased,
}

impl std::fmt::Debug for OpenedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenedValue::Value(_) => f.write_str("Value(<redacted>)"),
            OpenedValue::Erased => f.write_str("Erased"),
        }
    }
}

/// Opens the sealed metadata of a recorded event (for an auditor holding the key-encryption key):
/// each key to its value, or [`OpenedValue::Erased`] if the tenant was shredded.
///
/// # Errors
/// [`KeyCustodyError::Encryption`] for a value that does not open (tampered, moved, unknown key).
pub async fn open_sealed_metadata(
    store: &dyn GovernanceStore,
    envelope: &Envelope,
    event: &AuditEvent,
) -> Result<Vec<(String, OpenedValue)>, KeyCustodyError> {
    let Some(sealed) = event.sealed_metadata() else {
        return Ok(Vec::new());
    };
    let keys = store.data_keys(event.tenant_id()).await?;
    let mut out = Vec::with_capacity(sealed.len());
    for (key, value) in sealed {
        let ctx = audit_metadata_context(event.tenant_id(), event.id(), key)?;
        let text = value.as_str().unwrap_or_default();
        let opened = match envelope.open(&keys, &ctx, text)? {
            super::envelope::Opened::Plain(json) => OpenedValue::Value(
                serde_json::from_str(&json).map_err(|_| EncryptionError::DecryptionFailed)?,
            ),
            super::envelope::Opened::Erased => OpenedValue::Erased,
        };
        out.push((key.clone(), opened));
    }
    Ok(out)
}

/// [`shred_tenant`] for an authenticated caller (the HTTP API): the principal must hold the
/// `shred` permission ([`crate::security::rbac::Action::TenantShred`], admin only); a refusal is
/// itself recorded, as a `tenant.shred` denial. Only the caller's own tenant can be shredded.
///
/// # Errors
/// [`KeyCustodyError::Forbidden`] (recorded), or those of [`shred_tenant`].
pub async fn shred_own_tenant(
    store: &dyn GovernanceStore,
    ids: &dyn IdGenerator,
    envelope: Option<&Arc<Envelope>>,
    principal: &super::tenant_context::Principal,
    correlation: &CorrelationId,
    reason: &str,
) -> Result<ShredOutcome, KeyCustodyError> {
    use super::rbac::{Action, RbacService};
    let tenant = principal.tenant().clone();
    if let Err(denied) = RbacService::new().check_permission(principal.role(), Action::TenantShred)
    {
        let event = crate::governance::service_context::denial_event(
            ids.new_id(),
            principal,
            correlation,
            SHRED_ACTION,
            "tenant",
            tenant.as_str(),
            &denied.to_string(),
        )?;
        if let Err(e) = store
            .commit(ChangeSet::audit_only(tenant, vec![event]))
            .await
        {
            tracing::error!(error = %e, "could not record a refused tenant.shred");
        }
        return Err(KeyCustodyError::Forbidden(denied));
    }
    if reason.trim().is_empty() {
        return Err(KeyCustodyError::Invalid(
            "a shred needs a reason (e.g. the erasure request's reference)".to_owned(),
        ));
    }
    shred_tenant(store, ids, envelope, &tenant, principal.actor(), reason).await
}

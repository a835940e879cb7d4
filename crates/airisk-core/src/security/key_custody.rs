//! Operations on tenants' data keys that change stored state, each with its audit record in the
//! same transaction (invariant 1): crypto-shredding a tenant or one data subject, rotating a
//! tenant's data key, and rewrapping data keys after a key-encryption-key rotation.
//!
//! The plain functions are operator commands (`airisk tenant shred`, `airisk tenant
//! rewrap-data-keys`, `airisk keys rotate-data-key`): the operator holds the database, so there is
//! no RBAC principal; the actor named in the record is the operator's identity as given on the
//! command line. The `*_own_*` functions are the same for an authenticated caller (the HTTP API):
//! they check the permission first and record a refusal.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::data_subject::{DataSubject, SubjectPseudonym};
use super::encryption::{EncryptionError, EncryptionKeyId};
use super::envelope::{DataKeyKind, Envelope, WrappedDataKey};
use super::tenant_context::{ActorId, Principal, TenantId};
use crate::governance::audit_record::{AuditEvent, AuditReceipt, AuditValidationError, Outcome};
use crate::ports::{ChangeSet, GovernanceStore, IdGenerator, Mutation, StoreError};
use crate::request::CorrelationId;

/// The action of a crypto-shredding record.
pub const SHRED_ACTION: &str = "tenant.shred";
/// The action of a data-key rewrap (KEK rotation) record.
pub const REWRAP_ACTION: &str = "keys.rewrap_data_keys";
/// The action of a tenant data-key rotation record.
pub const ROTATE_DATA_KEY_ACTION: &str = "keys.rotate_data_key";
/// The action of a data subject's crypto-shredding record.
pub const SHRED_SUBJECT_ACTION: &str = "tenant.shred_subject";

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
    /// The operation needs the key-encryption key (to compute a subject's pseudonym, or to wrap
    /// a new data key) and none is configured; nothing was written.
    #[error("no encryption keys are configured (AIRISK_ENCRYPTION_KEYS)")]
    NoKeys,
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
/// data key, or, when `sensitive` names a data subject, under that subject's newest key, before
/// any leaf is built: the ledger commits to the ciphertext. Each value is sealed as its canonical
/// JSON text, bound to the tenant, [`AUDIT_METADATA_PURPOSE`] and the row `<record id>/<key>` (and
/// the subject's pseudonym, for a subject's value). A key that does not exist yet (the tenant's
/// first data key, its pseudonym key, a subject's first key) is made first and stored with a
/// `keys.create_data_key` record (its own transaction: the key exists before anything depends on
/// it). The record of a subject's key names its kind, never the subject or its pseudonym.
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
    let changed = || {
        // A key made above is gone again (shredded meanwhile): fail closed.
        KeyCustodyError::Store(StoreError::Conflict {
            what: "the tenant's data keys changed while sealing; retry".to_owned(),
        })
    };
    let subject = match sensitive.subject() {
        None => {
            if !keys
                .iter()
                .any(|k| k.is_live() && k.kind() == DataKeyKind::Tenant)
            {
                let (dek, _key) = envelope.new_data_key(&tenant, now)?;
                create_key(store, ids, &event, dek).await?;
                keys = store.data_keys(&tenant).await?;
            }
            None
        }
        Some(subject) => {
            let mut pseudonyms = envelope.pseudonyms(&keys, &tenant, subject)?;
            if pseudonyms.is_empty() {
                let (hk, _key) = envelope.new_key(DataKeyKind::Pseudonym, &tenant, None, now)?;
                create_key(store, ids, &event, hk).await?;
                keys = store.data_keys(&tenant).await?;
                pseudonyms = envelope.pseudonyms(&keys, &tenant, subject)?;
            }
            let pseudonym = pseudonyms.into_iter().next().ok_or_else(changed)?;
            let has_key = keys.iter().any(|k| {
                k.is_live()
                    && k.kind() == DataKeyKind::Subject
                    && k.subject.as_ref() == Some(&pseudonym)
            });
            if !has_key {
                let (sk, _key) = envelope.new_key(
                    DataKeyKind::Subject,
                    &tenant,
                    Some(pseudonym.clone()),
                    now,
                )?;
                create_key(store, ids, &event, sk).await?;
                keys = store.data_keys(&tenant).await?;
            }
            Some(pseudonym)
        }
    };
    let mut sealed = Map::new();
    for (key, value) in sensitive.expose() {
        let ctx = audit_metadata_context(&tenant, event.id(), key)?;
        let text =
            zeroize::Zeroizing::new(crate::ledger::to_canonical_json(value).map_err(|e| {
                AuditValidationError::MetadataNotCanonical {
                    reason: e.to_string(),
                }
            })?);
        let ciphertext = match &subject {
            None => {
                let (ciphertext, fresh) = envelope.seal(&keys, &ctx, &text, now)?;
                if fresh.is_some() {
                    return Err(changed());
                }
                ciphertext
            }
            Some(pseudonym) => envelope
                .seal_for_subject(&keys, &ctx, pseudonym, &text)?
                .ok_or_else(changed)?,
        };
        sealed.insert(key.clone(), Value::from(ciphertext));
    }
    Ok(event.with_sealed_metadata(sealed)?)
}

/// Stores a new data key with its `keys.create_data_key` record (metadata `kid`, and `kind` for a
/// subject or pseudonym key), attributed to the actor and correlation of `cause`.
async fn create_key(
    store: &dyn GovernanceStore,
    ids: &dyn IdGenerator,
    cause: &AuditEvent,
    key: WrappedDataKey,
) -> Result<(), KeyCustodyError> {
    let tenant = key.tenant_id.clone();
    let mut meta = Map::new();
    meta.insert("kid".into(), Value::from(key.kid.as_str()));
    match key.kind() {
        DataKeyKind::Tenant => {}
        DataKeyKind::Subject => {
            meta.insert("kind".into(), Value::from("subject"));
        }
        DataKeyKind::Pseudonym => {
            meta.insert("kind".into(), Value::from("pseudonym"));
        }
    }
    let record = AuditEvent::new(
        ids.new_id(),
        tenant.clone(),
        cause.actor().clone(),
        CREATE_DATA_KEY_ACTION,
        Outcome::Success,
        "tenant",
        tenant.as_str(),
        None,
        cause.correlation_id().clone(),
        Some(meta),
    )?;
    store
        .commit(ChangeSet {
            tenant,
            mutations: vec![Mutation::InsertDataKey(key)],
            audit: vec![record],
        })
        .await?;
    Ok(())
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
/// each key to its value, or [`OpenedValue::Erased`] if the tenant, or the data subject the value
/// was sealed for, was shredded.
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

/// Checks `principal` may perform `action`; a refusal is recorded in the principal's own ledger
/// as a denial of `action` on its tenant, then returned.
async fn authorize(
    store: &dyn GovernanceStore,
    ids: &dyn IdGenerator,
    principal: &Principal,
    correlation: &CorrelationId,
    action: super::rbac::Action,
) -> Result<(), KeyCustodyError> {
    use super::rbac::RbacService;
    let Err(denied) = RbacService::new().check_permission(principal.role(), action) else {
        return Ok(());
    };
    let tenant = principal.tenant().clone();
    let event = crate::governance::service_context::denial_event(
        ids.new_id(),
        principal,
        correlation,
        action.as_str(),
        "tenant",
        tenant.as_str(),
        &denied.to_string(),
    )?;
    if let Err(e) = store
        .commit(ChangeSet::audit_only(tenant, vec![event]))
        .await
    {
        tracing::error!(error = %e, action = action.as_str(), "could not record a refusal");
    }
    Err(KeyCustodyError::Forbidden(denied))
}

fn require_reason(reason: &str) -> Result<(), KeyCustodyError> {
    if reason.trim().is_empty() {
        return Err(KeyCustodyError::Invalid(
            "a shred needs a reason (e.g. the erasure request's reference)".to_owned(),
        ));
    }
    Ok(())
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
    principal: &Principal,
    correlation: &CorrelationId,
    reason: &str,
) -> Result<ShredOutcome, KeyCustodyError> {
    use super::rbac::Action;
    authorize(store, ids, principal, correlation, Action::TenantShred).await?;
    require_reason(reason)?;
    shred_tenant(
        store,
        ids,
        envelope,
        principal.tenant(),
        principal.actor(),
        reason,
    )
    .await
}

/// What a tenant data-key rotation did.
#[derive(Debug, Clone)]
pub struct RotateOutcome {
    /// The new data key: every value sealed from now on names it.
    pub kid: EncryptionKeyId,
    /// The key it replaces as the newest (values sealed under it still open), if there was one.
    pub previous: Option<EncryptionKeyId>,
    /// The receipt of the `keys.rotate_data_key` record.
    pub receipt: AuditReceipt,
}

/// Rotates `tenant`'s data key: makes a new one, wrapped by the current KEK, and stores it with
/// a `keys.rotate_data_key` record (metadata `kid` and, if there was one, `previous_kid`) in one
/// transaction. From then on new values are sealed under it; values sealed before still open
/// with their own key (its id is in every ciphertext) and are not rewritten. Its creation time is
/// after every existing tenant key's, even on a clock that stands still or went back, so it is
/// the newest. Subject keys and the pseudonym key are not rotated.
///
/// # Errors
/// [`KeyCustodyError`]; nothing changed then.
pub async fn rotate_data_key(
    store: &dyn GovernanceStore,
    ids: &dyn IdGenerator,
    envelope: &Envelope,
    now: chrono::DateTime<chrono::Utc>,
    tenant: &TenantId,
    actor: &ActorId,
    correlation: &CorrelationId,
) -> Result<RotateOutcome, KeyCustodyError> {
    let keys = store.data_keys(tenant).await?;
    let tenant_keys = || {
        keys.iter()
            .filter(|k| k.kind() == DataKeyKind::Tenant && k.is_live())
    };
    let previous = tenant_keys()
        .max_by_key(|k| k.created_at)
        .map(|k| k.kid.clone());
    let after = tenant_keys()
        .map(|k| k.created_at + chrono::TimeDelta::microseconds(1))
        .max();
    let created = after.map_or(now, |a| a.max(now));
    let (dek, _key) = envelope.new_key(DataKeyKind::Tenant, tenant, None, created)?;
    let kid = dek.kid.clone();
    let mut meta = Map::new();
    meta.insert("kid".into(), Value::from(kid.as_str()));
    if let Some(p) = &previous {
        meta.insert("previous_kid".into(), Value::from(p.as_str()));
    }
    let event = AuditEvent::new(
        ids.new_id(),
        tenant.clone(),
        actor.clone(),
        ROTATE_DATA_KEY_ACTION,
        Outcome::Success,
        "tenant",
        tenant.as_str(),
        None,
        correlation.clone(),
        Some(meta),
    )?;
    let receipt = store
        .commit(ChangeSet {
            tenant: tenant.clone(),
            mutations: vec![Mutation::InsertDataKey(dek)],
            audit: vec![event],
        })
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Refused {
            message: "the store returned no receipt for the rotation record".to_owned(),
        })?;
    Ok(RotateOutcome {
        kid,
        previous,
        receipt,
    })
}

/// [`rotate_data_key`] for an authenticated caller (the HTTP API): the principal must be allowed
/// `keys.rotate_data_key` ([`crate::security::rbac::Action::KeysRotateDataKey`], admin only); a
/// refusal is recorded. Only the caller's own tenant is rotated.
///
/// # Errors
/// [`KeyCustodyError::Forbidden`] (recorded), [`KeyCustodyError::NoKeys`] without an envelope,
/// or those of [`rotate_data_key`].
pub async fn rotate_own_data_key(
    store: &dyn GovernanceStore,
    ids: &dyn IdGenerator,
    envelope: Option<&Arc<Envelope>>,
    now: chrono::DateTime<chrono::Utc>,
    principal: &Principal,
    correlation: &CorrelationId,
) -> Result<RotateOutcome, KeyCustodyError> {
    use super::rbac::Action;
    authorize(
        store,
        ids,
        principal,
        correlation,
        Action::KeysRotateDataKey,
    )
    .await?;
    let envelope = envelope.ok_or(KeyCustodyError::NoKeys)?;
    rotate_data_key(
        store,
        ids,
        envelope,
        now,
        principal.tenant(),
        principal.actor(),
        correlation,
    )
    .await
}

/// What a data subject's shred did.
#[derive(Debug, Clone)]
pub struct SubjectShredOutcome {
    /// Live keys of the subject destroyed by this shred: 0 for a subject the tenant never sealed a
    /// value for, or one shredded before (a shred is idempotent).
    pub keys_destroyed: usize,
    /// The subject's pseudonym, as recorded; `None` when the tenant has no pseudonym key (it
    /// never sealed any subject's value, or was shredded whole), so nobody's key can match.
    pub pseudonym: Option<SubjectPseudonym>,
    /// The receipt of the `tenant.shred_subject` record.
    pub receipt: AuditReceipt,
}

/// Destroys every data key of one data subject of `tenant` (wrapped text and pseudonym erased; an
/// id tombstone stays) and appends a `tenant.shred_subject` record, in one transaction. The record
/// names the subject only by its pseudonym (metadata `subject_pseudonym`, with
/// `data_keys_destroyed`), never in plaintext. Afterwards that subject's sealed values read as
/// erased; other subjects' and the tenant's own values still open; the ledger still verifies.
/// A subject with no live key is not an error: the request is recorded with 0 keys destroyed.
/// Needs the key-encryption key (the pseudonym is keyed).
///
/// # Errors
/// [`KeyCustodyError`]; nothing changed then.
#[allow(clippy::too_many_arguments)] // each is a distinct input of the recorded command
pub async fn shred_subject(
    store: &dyn GovernanceStore,
    ids: &dyn IdGenerator,
    envelope: &Envelope,
    tenant: &TenantId,
    subject: &DataSubject,
    actor: &ActorId,
    reason: &str,
    correlation: &CorrelationId,
) -> Result<SubjectShredOutcome, KeyCustodyError> {
    let keys = store.data_keys(tenant).await?;
    let pseudonyms = envelope.pseudonyms(&keys, tenant, subject)?;
    let doomed: Vec<EncryptionKeyId> = keys
        .iter()
        .filter(|k| k.is_live() && k.kind() == DataKeyKind::Subject)
        .filter(|k| k.subject.as_ref().is_some_and(|s| pseudonyms.contains(s)))
        .map(|k| k.kid.clone())
        .collect();
    let mut meta = Map::new();
    meta.insert("data_keys_destroyed".into(), Value::from(doomed.len()));
    if let Some(p) = pseudonyms.first() {
        meta.insert("subject_pseudonym".into(), Value::from(p.as_str()));
    }
    let event = AuditEvent::new(
        ids.new_id(),
        tenant.clone(),
        actor.clone(),
        SHRED_SUBJECT_ACTION,
        Outcome::Success,
        "tenant",
        tenant.as_str(),
        Some(reason.to_owned()),
        correlation.clone(),
        Some(meta),
    )?;
    let receipt = store
        .commit(ChangeSet {
            tenant: tenant.clone(),
            mutations: pseudonyms
                .iter()
                .map(|p| Mutation::ShredSubjectKeys {
                    tenant: tenant.clone(),
                    subject: p.clone(),
                })
                .collect(),
            audit: vec![event],
        })
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Refused {
            message: "the store returned no receipt for the shred record".to_owned(),
        })?;
    envelope.forget_keys(tenant, &doomed);
    Ok(SubjectShredOutcome {
        keys_destroyed: doomed.len(),
        pseudonym: pseudonyms.into_iter().next(),
        receipt,
    })
}

/// [`shred_subject`] for an authenticated caller (the HTTP API): the principal must be allowed
/// `tenant.shred_subject` ([`crate::security::rbac::Action::TenantShredSubject`], the `shred`
/// permission, admin only); a refusal is recorded. Then `subject` is validated
/// ([`DataSubject::parse`]). Only a subject of the caller's own tenant.
///
/// # Errors
/// [`KeyCustodyError::Forbidden`] (recorded), [`KeyCustodyError::Invalid`] for an invalid
/// subject or a blank reason, [`KeyCustodyError::NoKeys`] without an envelope, or those of
/// [`shred_subject`].
pub async fn shred_own_subject(
    store: &dyn GovernanceStore,
    ids: &dyn IdGenerator,
    envelope: Option<&Arc<Envelope>>,
    principal: &Principal,
    correlation: &CorrelationId,
    subject: &str,
    reason: &str,
) -> Result<SubjectShredOutcome, KeyCustodyError> {
    use super::rbac::Action;
    authorize(
        store,
        ids,
        principal,
        correlation,
        Action::TenantShredSubject,
    )
    .await?;
    let subject =
        DataSubject::parse(subject).map_err(|e| KeyCustodyError::Invalid(e.to_string()))?;
    require_reason(reason)?;
    let envelope = envelope.ok_or(KeyCustodyError::NoKeys)?;
    shred_subject(
        store,
        ids,
        envelope,
        principal.tenant(),
        &subject,
        principal.actor(),
        reason,
        correlation,
    )
    .await
}

//! Sealing existing rows in place: a maintenance operation for a database written before prompt
//! templates were sealed (`airisk keys seal-existing`).
//!
//! Each plaintext prompt version is sealed under the tenant's newest data key (a first one is
//! made in the same transaction), exactly as a new version would be, and rewritten through
//! [`Mutation::SealPromptVersion`] with a `keys.seal_existing` record in the tenant's ledger, in
//! one transaction per row (invariant 1). The run is resumable (an interrupted run leaves every
//! row either plaintext or sealed, never half; the next run picks up the plaintext ones) and
//! idempotent (a run with nothing left writes nothing). Before a row is written its template's
//! SHA-256 is checked against the row's stored `template_sha256` (the digest the ledger and the
//! approvals committed to) and the ciphertext is opened again and compared; the store checks the
//! digest once more inside the write transaction, and the databases' immutability triggers allow
//! this one change and no other.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::encryption::{EncryptionError, key_id_of};
use super::envelope::{Envelope, Opened, prompt_template_context};
use super::key_custody::KeyCustodyError;
use super::tenant_context::{ActorId, TenantId};
use crate::governance::audit_record::{AuditEvent, Outcome};
use crate::governance::model_version::Sha256Digest;
use crate::ports::{ChangeSet, GovernanceStore, IdGenerator, Mutation, StoreError};
use crate::request::CorrelationId;

/// The action of the record written with every prompt version sealed in place.
pub const SEAL_EXISTING_ACTION: &str = "keys.seal_existing";

/// Rows read per batch while sealing.
const BATCH: u32 = 100;

/// What [`SealExisting::run`] did for one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealExistingOutcome {
    /// Prompt versions this run sealed, as `name@version`, in order.
    pub sealed: Vec<String>,
    /// Rows another run sealed between this run's read and its write (skipped, not an error).
    pub sealed_elsewhere: usize,
    /// Whether plaintext rows remain because `max_rows` stopped the run.
    pub stopped_early: bool,
}

/// One run of sealing in place: where, with which keys, as whom. Build it once and call
/// [`SealExisting::run`] per tenant.
#[derive(Clone, Copy)]
pub struct SealExisting<'a> {
    /// The store holding the rows (and the tenant's data keys and ledger).
    pub store: &'a dyn GovernanceStore,
    /// Ids of the ledger records.
    pub ids: &'a dyn IdGenerator,
    /// The tenants' data keys, wrapped by the key-encryption key.
    pub envelope: &'a Envelope,
    /// Who runs the maintenance, as recorded in the ledger.
    pub actor: &'a ActorId,
    /// When (a first data key's creation time).
    pub now: DateTime<Utc>,
    /// At most this many rows per tenant, when given (a bounded maintenance window; run again
    /// to continue).
    pub max_rows: Option<usize>,
}

impl std::fmt::Debug for SealExisting<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealExisting")
            .field("actor", self.actor)
            .field("now", &self.now)
            .field("max_rows", &self.max_rows)
            .finish_non_exhaustive()
    }
}

impl SealExisting<'_> {
    /// Seals every prompt version of `tenant` stored with a plaintext template, one transaction
    /// per row, each with a `keys.seal_existing` record (resource `prompt`, `name@version`;
    /// metadata `template_sha256`, `kid` and `sealed_in_this_run`, the row's number in this run).
    /// `on_sealed` is called after each row is committed (for progress output).
    ///
    /// # Errors
    /// [`KeyCustodyError::Invalid`] for a row whose template does not hash to its stored digest
    /// (left as it is; the rows sealed before it stay sealed), [`KeyCustodyError::Encryption`],
    /// [`KeyCustodyError::Store`] (a conflict when the store lists as plaintext again a row whose
    /// seal it refused as already sealed in this run), [`KeyCustodyError::Audit`]. The row being
    /// written when an error happens is left plaintext.
    pub async fn run(
        &self,
        tenant: &TenantId,
        on_sealed: &mut (dyn FnMut(&str) + Send),
    ) -> Result<SealExistingOutcome, KeyCustodyError> {
        let (store, ids, envelope, actor, now, max_rows) = (
            self.store,
            self.ids,
            self.envelope,
            self.actor,
            self.now,
            self.max_rows,
        );
        let mut outcome = SealExistingOutcome::default();
        // Rows the store answered "sealed already" (a conflict) in this run. Listed as plaintext
        // again, the store contradicts itself, and trying again would loop.
        let mut refused: std::collections::HashSet<String> = std::collections::HashSet::new();
        loop {
            let rows = store.unsealed_prompt_versions(tenant, BATCH).await?;
            if rows.is_empty() {
                return Ok(outcome);
            }
            for row in rows {
                if max_rows.is_some_and(|m| outcome.sealed.len() >= m) {
                    outcome.stopped_early = true;
                    return Ok(outcome);
                }
                let id = format!("{}@{}", row.name(), row.version());
                if refused.contains(&id) {
                    return Err(KeyCustodyError::Store(StoreError::Conflict {
                        what: format!(
                            "prompt {id} is still listed as plaintext after the store refused its \
                             seal as already sealed; stopped rather than retry (run again)"
                        ),
                    }));
                }
                if !Sha256Digest::of(row.template().as_bytes()).matches(row.template_sha256()) {
                    return Err(KeyCustodyError::Invalid(format!(
                        "prompt {id}: its template does not hash to its stored template_sha256; \
                         left unsealed (restore the row from a backup, then run again)"
                    )));
                }
                let keys = store.data_keys(tenant).await?;
                let ctx = prompt_template_context(tenant, row.name(), row.version())?;
                let (ciphertext, fresh) = envelope.seal(&keys, &ctx, row.template(), now)?;
                // The value must open to exactly the template before the plaintext is replaced.
                let mut check = keys;
                check.extend(fresh.iter().cloned());
                match envelope.open(&check, &ctx, &ciphertext)? {
                    Opened::Plain(text) if text == row.template() => {}
                    _ => return Err(EncryptionError::DecryptionFailed.into()),
                }
                let kid = key_id_of(&ciphertext)?;
                let sealed = row
                    .sealed_with(ciphertext)
                    .map_err(|e| KeyCustodyError::Invalid(e.to_string()))?;
                let mut meta = Map::new();
                meta.insert(
                    "template_sha256".into(),
                    Value::from(row.template_sha256().to_hex()),
                );
                meta.insert("kid".into(), Value::from(kid.as_str()));
                meta.insert(
                    "sealed_in_this_run".into(),
                    Value::from(outcome.sealed.len() + 1),
                );
                let event = AuditEvent::new(
                    ids.new_id(),
                    tenant.clone(),
                    actor.clone(),
                    SEAL_EXISTING_ACTION,
                    Outcome::Success,
                    "prompt",
                    &id,
                    Some("sealing a plaintext prompt template in place".to_owned()),
                    CorrelationId::generate(),
                    Some(meta),
                )?;
                let mut mutations = Vec::with_capacity(2);
                if let Some(dek) = fresh {
                    mutations.push(Mutation::InsertDataKey(dek));
                }
                mutations.push(Mutation::SealPromptVersion(sealed));
                match store
                    .commit(ChangeSet {
                        tenant: tenant.clone(),
                        mutations,
                        audit: vec![event],
                    })
                    .await
                {
                    Ok(_) => {
                        on_sealed(&id);
                        outcome.sealed.push(id);
                    }
                    // Sealed by another run since it was read: nothing to do for this row.
                    Err(StoreError::Conflict { .. }) => {
                        outcome.sealed_elsewhere += 1;
                        refused.insert(id);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

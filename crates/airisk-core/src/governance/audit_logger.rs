//! The audit logger: appends records to each tenant's tamper-evident ledger, signs checkpoints
//! and serves proofs. Verifying a whole ledger is [`AuditLogger::verify`], whose checks live in
//! [`super::audit_verification`].
//!
//! The seed's `audit_logger.log_action(actor, tenant_id, action, resource_type, resource_id,
//! reason, correlation_id, metadata)` is [`AuditLogger::log_action`]; it returns an
//! [`AuditReceipt`] once the record is durable.

use crate::governance::audit_record::SensitiveMetadata;
use crate::ports::GovernanceStore;
use crate::security::envelope::Envelope;
use crate::security::key_custody::{KeyCustodyError, seal_sensitive_metadata};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::audit_record::{
    AuditEvent, AuditEventInput, AuditReceipt, AuditValidationError, Outcome,
};
use super::audit_verification::{VerifyOptions, VerifyReport, verify_ledger};
use crate::ledger::{
    self, Checkpoint, CheckpointError, Hash, LedgerName, LedgerSigner, LedgerVerifier, NodeId,
    ProofError,
};
use crate::ports::{AuditRepository, Clock, IdGenerator, StoreError, StoredCheckpoint, TreeHead};
use crate::request::CorrelationId;
use crate::security::encryption::EncryptionError;
use crate::security::rbac::{Action, AuthorizationError, RbacService};
use crate::security::tenant_context::{
    ActorId, Principal, TenantContext, TenantId, TenantIsolationError,
};

/// When the logger signs a new checkpoint on its own (besides [`AuditLogger::checkpoint`], which
/// signs on demand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Sign once at least this many entries were appended since the last checkpoint.
    pub every_entries: Option<u64>,
    /// Sign once the last checkpoint is at least this old and new entries exist; checked after
    /// each append and by [`AuditLogger::checkpoint_if_stale`], which a service calls on a timer.
    pub every_interval: Option<Duration>,
}

impl Default for CheckpointPolicy {
    /// Every 1,000 entries or every 10 seconds, whichever comes first.
    fn default() -> Self {
        CheckpointPolicy {
            every_entries: Some(1_000),
            every_interval: Some(Duration::from_secs(10)),
        }
    }
}

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The principal's role does not allow the action (the denial was recorded).
    #[error(transparent)]
    Forbidden(#[from] AuthorizationError),
    /// The record names another tenant than the principal's (the denial was recorded).
    #[error(transparent)]
    TenantIsolation(#[from] TenantIsolationError),
    /// The record's fields are invalid; nothing was written.
    #[error(transparent)]
    Invalid(#[from] AuditValidationError),
    /// The store failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The action is in one of the kernel's own namespaces, which only the kernel writes (the
    /// denial was recorded).
    #[error(
        "action {action:?} is in a namespace reserved for the kernel's own records; application actions must use another namespace"
    )]
    KernelNamespace {
        /// The refused action (escaped if it held control characters).
        action: String,
    },
    /// No signing key is configured, so no checkpoint can be signed.
    #[error(
        "no ledger signing key is configured (set AIRISK_LEDGER_SIGNING_KEY; make one with `airisk keys generate --ledger`)"
    )]
    NoSigningKey,
    /// A checkpoint could not be made or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A proof could not be made (sizes out of order, or the store lacks a node).
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// Sensitive metadata could not be sealed (no envelope configured, a key-store or cipher
    /// failure); nothing was recorded.
    #[error("sensitive metadata could not be sealed: {0}")]
    Sealing(String),
    /// The key provider holding the key-encryption key (a PKCS#11 token) cannot be used now, so
    /// sensitive metadata could not be sealed; nothing was recorded. Retry later.
    #[error(transparent)]
    KeyProvider(EncryptionError),
    /// A proof or root was asked for a tree size the ledger has not reached.
    #[error("tree size {requested} is beyond the ledger's {size} entries")]
    BeyondTree {
        /// The size asked for.
        requested: u64,
        /// The ledger's current size.
        size: u64,
    },
}

/// Appends, checkpoints, proves and verifies. Cheap to share behind an `Arc`.
pub struct AuditLogger {
    repo: Arc<dyn AuditRepository>,
    ids: Arc<dyn IdGenerator>,
    clock: Arc<dyn Clock>,
    rbac: RbacService,
    name: LedgerName,
    signer: Option<Arc<LedgerSigner>>,
    policy: CheckpointPolicy,
    /// Per tenant: size and time of the newest checkpoint this process knows of.
    last_checkpoint: Mutex<HashMap<TenantId, (u64, DateTime<Utc>)>>,
    /// Where data keys live and how they are wrapped, for sealing sensitive metadata.
    sealing: Option<(Arc<dyn GovernanceStore>, Arc<Envelope>)>,
}

impl fmt::Debug for AuditLogger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLogger")
            .field("repo", &self.repo)
            .field("name", &self.name)
            .field("signer", &self.verifier_key())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl AuditLogger {
    /// A logger over `repo`. Without a signer it appends and verifies leaves and roots, but signs
    /// no checkpoints.
    pub fn new(
        repo: Arc<dyn AuditRepository>,
        ids: Arc<dyn IdGenerator>,
        clock: Arc<dyn Clock>,
        name: LedgerName,
        signer: Option<Arc<LedgerSigner>>,
        policy: CheckpointPolicy,
    ) -> Self {
        AuditLogger {
            repo,
            ids,
            clock,
            rbac: RbacService::new(),
            name,
            signer,
            policy,
            last_checkpoint: Mutex::new(HashMap::new()),
            sealing: None,
        }
    }

    /// The same logger, able to seal sensitive metadata ([`AuditLogger::log_action_sensitive`])
    /// under the tenant's data keys, which `store` keeps wrapped.
    #[must_use]
    pub fn with_sealing(
        mut self,
        store: Arc<dyn GovernanceStore>,
        envelope: Arc<Envelope>,
    ) -> Self {
        self.sealing = Some((store, envelope));
        self
    }

    /// The repository behind this logger.
    pub fn repository(&self) -> &Arc<dyn AuditRepository> {
        &self.repo
    }

    /// The ledger's name (first part of every checkpoint origin line).
    pub fn name(&self) -> &LedgerName {
        &self.name
    }

    /// Whether the configured signer can sign now (always, for a key in this process; its
    /// custodian's answer for a key in a token). `Ok` without a signer.
    ///
    /// # Errors
    /// A short reason, free of key material and credentials.
    pub fn signer_readiness(&self) -> Result<(), String> {
        self.signer.as_ref().map_or(Ok(()), |s| s.readiness())
    }

    /// The verifier key of the configured signer, if any.
    pub fn verifier_key(&self) -> Option<String> {
        self.signer.as_ref().map(|s| s.verifier().to_verifier_key())
    }

    /// The seed's `log_action`: checks the principal may append to this tenant's ledger, validates
    /// the fields, and appends one record durably.
    ///
    /// Order of checks: role (`audit.append`), tenant (the record's tenant must be the
    /// principal's), the action's namespace (the kernel's own namespaces,
    /// [`super::audit_record::KERNEL_NAMESPACES`], are refused, in any case or compatibility
    /// spelling), then fields. A refused role, tenant or namespace is itself recorded, as a
    /// denial, in the principal's own ledger. The record written is marked as an application
    /// record (`"origin":"application"` in its leaf), so it can never pass for a kernel record,
    /// whatever its correlation id.
    ///
    /// # Errors
    /// [`AuditError::Forbidden`], [`AuditError::KernelNamespace`], [`AuditError::TenantIsolation`],
    /// [`AuditError::Invalid`] or [`AuditError::Store`].
    pub async fn log_action(
        &self,
        principal: &Principal,
        input: AuditEventInput,
    ) -> Result<AuditReceipt, AuditError> {
        self.log_action_sensitive(principal, input, &SensitiveMetadata::new())
            .await
    }

    /// [`AuditLogger::log_action`], with `sensitive` values sealed under the tenant's data key
    /// into the record's `sealed_metadata` before its leaf is built (the ledger commits to the
    /// ciphertext). The values are never logged.
    ///
    /// # Errors
    /// As [`AuditLogger::log_action`]; [`AuditError::Sealing`] if values are given and this
    /// logger has no envelope ([`AuditLogger::with_sealing`]) or sealing fails.
    // skip_all: the metadata and sensitive values are never recorded in a span; the correlation
    // id is caller input, so it is recorded escaped (Debug).
    #[tracing::instrument(
        skip_all,
        fields(
            tenant_id = %principal.tenant(),
            actor = %principal.actor(),
            action = Action::AuditAppend.as_str(),
            correlation_id = ?input.correlation_id,
        )
    )]
    pub async fn log_action_sensitive(
        &self,
        principal: &Principal,
        input: AuditEventInput,
        sensitive: &SensitiveMetadata,
    ) -> Result<AuditReceipt, AuditError> {
        if let Err(denied) = self
            .rbac
            .check_permission(principal.role(), Action::AuditAppend)
        {
            self.record_denial(principal, &input, &denied.to_string())
                .await;
            return Err(denied.into());
        }
        let tenant_matches = TenantId::parse(&input.tenant_id)
            .ok()
            .map(|t| TenantContext::validate_access(&t, principal.tenant()));
        if let Some(Err(isolation)) = tenant_matches {
            self.record_denial(principal, &input, "record names another tenant")
                .await;
            return Err(isolation.into());
        }
        if super::audit_record::is_kernel_action(&input.action) {
            let refused = AuditError::KernelNamespace {
                action: super::audit_record::recordable_text(&input.action, 128).text,
            };
            self.record_denial(principal, &input, &refused.to_string())
                .await;
            return Err(refused);
        }
        let event =
            AuditEvent::parse(self.ids.new_id(), Outcome::Success, input)?.into_application();
        let event = if sensitive.is_empty() {
            event
        } else {
            let Some((store, envelope)) = &self.sealing else {
                return Err(AuditError::Sealing(
                    "this service has no encryption keys configured".to_owned(),
                ));
            };
            seal_sensitive_metadata(
                store.as_ref(),
                self.ids.as_ref(),
                envelope,
                self.clock.now(),
                event,
                sensitive,
            )
            .await
            .map_err(|e| match e {
                KeyCustodyError::Audit(v) => AuditError::Invalid(v),
                KeyCustodyError::Store(e) => AuditError::Store(e),
                KeyCustodyError::Encryption(e @ EncryptionError::ProviderUnavailable { .. }) => {
                    AuditError::KeyProvider(e)
                }
                other => AuditError::Sealing(other.to_string()),
            })?
        };
        let mut receipts = self.append(vec![event]).await?;
        receipts.pop().ok_or_else(|| {
            AuditError::Store(StoreError::Corrupt {
                message: "append returned no receipt".to_owned(),
            })
        })
    }

    /// Appends already-validated events (one transaction) without a permission check: for the
    /// governance services, which check before they act, and for operators with direct store
    /// access. Signs checkpoints the policy calls for.
    ///
    /// # Errors
    /// [`AuditError::Store`]; a failure to sign a due checkpoint is logged, not returned, because
    /// the records themselves are durable.
    pub async fn append(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditReceipt>, AuditError> {
        // The audit line's fields, taken before the store consumes the events (not the whole
        // event: its metadata maps are not logged), and only when the line is written.
        let logged: Vec<AuditLine> = if tracing::enabled!(target: "audit", tracing::Level::INFO) {
            events.iter().map(AuditLine::of).collect()
        } else {
            Vec::new()
        };
        let receipts = self.repo.append(events).await?;
        for (line, receipt) in logged.iter().zip(&receipts) {
            // The structured audit line. Metadata values are not logged: the ledger is the record
            // of truth, and callers may put personal data there.
            tracing::info!(
                target: "audit",
                id = %receipt.id,
                tenant_id = %receipt.tenant_id,
                seq = receipt.seq,
                leaf_hash = %receipt.leaf_hash,
                recorded_at = %super::audit_record::format_timestamp(&receipt.recorded_at),
                actor = %line.actor,
                action = line.action,
                outcome = line.outcome,
                resource_type = line.resource_type,
                resource_id = line.resource_id,
                reason = line.reason,
                correlation_id = %line.correlation_id,
                metadata_keys = line.metadata_keys,
                "audit record appended"
            );
        }
        if self.signer.is_some() {
            let mut newest: HashMap<&TenantId, u64> = HashMap::new();
            for r in &receipts {
                let size = newest.entry(&r.tenant_id).or_insert(0);
                *size = (*size).max(r.seq + 1);
            }
            for (tenant, size) in newest {
                if let Err(e) = self.checkpoint_if_due(tenant, size).await {
                    tracing::warn!(tenant_id = %tenant, error = %e, "could not sign a due checkpoint");
                }
            }
        }
        Ok(receipts)
    }

    /// Records a refused attempt in the principal's ledger (a kernel record). Caller input a
    /// record cannot hold as it is is recorded escaped, as the governance services' denials are.
    /// A failure to store the record is logged: the caller is refused either way.
    async fn record_denial(&self, principal: &Principal, input: &AuditEventInput, why: &str) {
        let correlation = CorrelationId::parse(&input.correlation_id)
            .unwrap_or_else(|_| CorrelationId::generate());
        let event = super::service_context::denial_event(
            self.ids.new_id(),
            principal,
            &correlation,
            Action::AuditAppend.as_str(),
            "audit_record",
            &input.resource_id,
            why,
        );
        let result = match event {
            Ok(event) => self.append(vec![event]).await.map(|_| ()),
            Err(e) => Err(AuditError::Invalid(e)),
        };
        if let Err(e) = result {
            tracing::error!(tenant_id = %principal.tenant(), error = %e, "could not record a denial");
        }
    }

    async fn checkpoint_if_due(&self, tenant: &TenantId, size: u64) -> Result<(), AuditError> {
        let (last_size, last_at) = self.last_known_checkpoint(tenant).await?;
        let by_count = self
            .policy
            .every_entries
            .is_some_and(|n| size.saturating_sub(last_size) >= n.max(1));
        let by_time = self.policy.every_interval.is_some_and(|t| {
            size > last_size
                && (self.clock.now() - last_at)
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    >= t
        });
        if by_count || by_time {
            self.checkpoint(tenant).await?;
        }
        Ok(())
    }

    /// Signs a checkpoint if the policy's interval has passed since the last one and new entries
    /// exist. Services call this on a timer so an idle ledger's tail is committed too.
    ///
    /// # Errors
    /// [`AuditError::Store`], [`AuditError::NoSigningKey`].
    pub async fn checkpoint_if_stale(&self, tenant: &TenantId) -> Result<(), AuditError> {
        let head = self.repo.tree_head(tenant).await?;
        self.checkpoint_if_due(tenant, head.size).await
    }

    async fn last_known_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<(u64, DateTime<Utc>), AuditError> {
        if let Some(known) = self.lock_last().get(tenant).copied() {
            return Ok(known);
        }
        let known = match self.repo.latest_checkpoint(tenant).await? {
            Some(cp) => (cp.size, cp.signed_at),
            None => (0, self.clock.now()),
        };
        self.lock_last().entry(tenant.clone()).or_insert(known);
        Ok(known)
    }

    fn lock_last(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, (u64, DateTime<Utc>)>> {
        // A poisoned lock only means another task panicked while holding a plain map of hints.
        self.last_checkpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Signs and stores a checkpoint of `tenant`'s current tree head, unless the newest stored
    /// checkpoint already commits to that size; returns the checkpoint that covers the head.
    ///
    /// # Errors
    /// [`AuditError::NoSigningKey`], [`AuditError::Store`], and [`AuditError::Checkpoint`] when
    /// an external signing key (a PKCS#11 token) cannot sign: nothing is stored then.
    pub async fn checkpoint(&self, tenant: &TenantId) -> Result<StoredCheckpoint, AuditError> {
        let signer = self.signer.as_ref().ok_or(AuditError::NoSigningKey)?;
        let head = self.repo.tree_head(tenant).await?;
        if let Some(latest) = self.repo.latest_checkpoint(tenant).await?
            && latest.size >= head.size
        {
            return Ok(latest);
        }
        let checkpoint = Checkpoint::new(self.name.origin_for(tenant), head.size, head.root);
        let note = checkpoint.sign(signer)?.into_note_text();
        let stored = StoredCheckpoint {
            size: head.size,
            root: head.root,
            note,
            signed_at: self.clock.now(),
        };
        match self.repo.add_checkpoint(tenant, stored.clone()).await {
            Ok(()) => {}
            // Another task signed the same size first: equally good.
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.lock_last()
            .insert(tenant.clone(), (stored.size, stored.signed_at));
        Ok(stored)
    }

    /// The current tree head of `tenant`.
    ///
    /// # Errors
    /// [`AuditError::Store`].
    pub async fn tree_head(&self, tenant: &TenantId) -> Result<TreeHead, AuditError> {
        Ok(self.repo.tree_head(tenant).await?)
    }

    /// An RFC 6962 inclusion proof of entry `seq` in the tree of size `tree_size`, built from
    /// stored subtree hashes (one store round trip, no rehashing of the log).
    ///
    /// # Errors
    /// [`AuditError::Proof`] if `seq >= tree_size` or `tree_size` exceeds the tree;
    /// [`AuditError::Store`].
    pub async fn inclusion_proof(
        &self,
        tenant: &TenantId,
        seq: u64,
        tree_size: u64,
    ) -> Result<Vec<Hash>, AuditError> {
        self.check_size(tenant, tree_size).await?;
        let needed = ledger::inclusion_proof_nodes(seq, tree_size)?;
        let lookup = self.fetch_nodes(tenant, needed).await?;
        Ok(ledger::inclusion_proof(seq, tree_size, |id| {
            lookup.get(&id).copied()
        })?)
    }

    /// An RFC 6962 consistency proof between tree sizes `size1 <= size2`.
    ///
    /// # Errors
    /// [`AuditError::Proof`] for sizes out of order or beyond the tree; [`AuditError::Store`].
    pub async fn consistency_proof(
        &self,
        tenant: &TenantId,
        size1: u64,
        size2: u64,
    ) -> Result<Vec<Hash>, AuditError> {
        self.check_size(tenant, size2).await?;
        let needed = ledger::consistency_proof_nodes(size1, size2)?;
        let lookup = self.fetch_nodes(tenant, needed).await?;
        Ok(ledger::consistency_proof(size1, size2, |id| {
            lookup.get(&id).copied()
        })?)
    }

    /// The root of `tenant`'s tree when it had `tree_size` entries.
    ///
    /// # Errors
    /// [`AuditError::Proof`] if `tree_size` exceeds the tree; [`AuditError::Store`].
    pub async fn root_at(&self, tenant: &TenantId, tree_size: u64) -> Result<Hash, AuditError> {
        self.check_size(tenant, tree_size).await?;
        let needed = ledger::range_nodes(0, tree_size);
        let lookup = self.fetch_nodes(tenant, needed).await?;
        Ok(ledger::root_at(tree_size, |id| lookup.get(&id).copied())?)
    }

    async fn check_size(&self, tenant: &TenantId, tree_size: u64) -> Result<(), AuditError> {
        let head = self.repo.tree_head(tenant).await?;
        if tree_size > head.size {
            return Err(AuditError::BeyondTree {
                requested: tree_size,
                size: head.size,
            });
        }
        Ok(())
    }

    async fn fetch_nodes(
        &self,
        tenant: &TenantId,
        needed: impl IntoIterator<Item = NodeId>,
    ) -> Result<HashMap<NodeId, Hash>, AuditError> {
        let ids: Vec<NodeId> = needed.into_iter().collect();
        Ok(self.repo.nodes(tenant, &ids).await?.into_iter().collect())
    }

    /// Recomputes `tenant`'s whole ledger from storage (see [`AuditLogger::verify_with`]),
    /// checking stored checkpoints' signatures with `verifier` if given and, if given, a
    /// checkpoint kept elsewhere.
    ///
    /// # Errors
    /// As [`AuditLogger::verify_with`].
    pub async fn verify(
        &self,
        tenant: &TenantId,
        verifier: Option<&LedgerVerifier>,
        kept_checkpoint: Option<&str>,
        progress: impl FnMut(u64, u64) + Send,
    ) -> Result<VerifyReport, AuditError> {
        let options = VerifyOptions {
            verifier,
            kept_checkpoint,
            deep: false,
        };
        self.verify_with(tenant, &options, progress).await
    }

    /// Recomputes `tenant`'s whole ledger from storage: every leaf's hash and form, the gapless
    /// sequence, every stored checkpoint's root and signature, the stored head, and, if given, a
    /// checkpoint kept elsewhere (which detects truncation and rollback). Stops at the first
    /// problem and names it. One consistent snapshot is checked, so appends and checkpoints
    /// committed while it reads are never mistaken for tampering.
    ///
    /// Spreads over the cores: the next page is read (on the store's thread) while one is
    /// checked, and each page is checked in chunks of
    /// [`VERIFY_CHUNK`](super::audit_verification::VERIFY_CHUNK) entries on as many threads as
    /// the process may use cores (at most eight; the calling thread is one of them); the
    /// problem named is still the first an entry-by-entry check would meet. The calling task's
    /// thread is busy while a page is checked: from an async server, call it where a long
    /// CPU-bound task is acceptable.
    ///
    /// `progress(done, total)` is called after each page.
    ///
    /// # Errors
    /// [`AuditError::Store`] if the store cannot be read. Integrity problems are not errors: they
    /// are the report's [`VerifyReport::problem`].
    pub async fn verify_with(
        &self,
        tenant: &TenantId,
        options: &VerifyOptions<'_>,
        progress: impl FnMut(u64, u64) + Send,
    ) -> Result<VerifyReport, AuditError> {
        Ok(verify_ledger(self.repo.as_ref(), &self.name, tenant, options, progress).await?)
    }
}

/// The fields of one event the `audit` log line shows, taken before the store consumes it.
struct AuditLine {
    actor: ActorId,
    action: String,
    outcome: &'static str,
    resource_type: String,
    resource_id: String,
    reason: Option<String>,
    correlation_id: CorrelationId,
    metadata_keys: usize,
}

impl AuditLine {
    fn of(event: &AuditEvent) -> Self {
        Self {
            actor: event.actor().clone(),
            action: event.action().to_owned(),
            outcome: event.outcome().as_str(),
            resource_type: event.resource_type().to_owned(),
            resource_id: event.resource_id().to_owned(),
            reason: event.reason().map(str::to_owned),
            correlation_id: event.correlation_id().clone(),
            metadata_keys: event.metadata().map_or(0, |m| m.len()),
        }
    }
}

//! The audit logger: appends records to each tenant's tamper-evident ledger, signs checkpoints,
//! serves proofs and verifies the whole record.
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
use serde_json::Value;

use super::audit_record::{
    AuditEvent, AuditEventInput, AuditReceipt, AuditRecord, AuditValidationError, Outcome,
};
use crate::ledger::{
    self, Checkpoint, CheckpointError, Frontier, Hash, LedgerName, LedgerSigner, LedgerVerifier,
    NodeId, ProofError, verify_checkpoint,
};
use crate::ports::{AuditRepository, Clock, IdGenerator, StoreError, StoredCheckpoint, TreeHead};
use crate::request::CorrelationId;
use crate::security::rbac::{Action, AuthorizationError, RbacService};
use crate::security::tenant_context::{Principal, TenantContext, TenantId, TenantIsolationError};

/// How many entries `verify` reads per page.
const VERIFY_PAGE: usize = 16_384;

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
        let logged: Vec<(AuditEvent, usize)> = events
            .iter()
            .map(|e| (e.clone(), e.metadata().map_or(0, |m| m.len())))
            .collect();
        let receipts = self.repo.append(events).await?;
        for ((event, metadata_keys), receipt) in logged.iter().zip(&receipts) {
            // The structured audit line. Metadata values are not logged: the ledger is the record
            // of truth, and callers may put personal data there.
            tracing::info!(
                target: "audit",
                id = %receipt.id,
                tenant_id = %receipt.tenant_id,
                seq = receipt.seq,
                leaf_hash = %receipt.leaf_hash,
                recorded_at = %super::audit_record::format_timestamp(&receipt.recorded_at),
                actor = %event.actor(),
                action = event.action(),
                outcome = event.outcome().as_str(),
                resource_type = event.resource_type(),
                resource_id = event.resource_id(),
                reason = event.reason(),
                correlation_id = %event.correlation_id(),
                metadata_keys,
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
    /// [`AuditError::NoSigningKey`], [`AuditError::Store`].
    pub async fn checkpoint(&self, tenant: &TenantId) -> Result<StoredCheckpoint, AuditError> {
        let signer = self.signer.as_ref().ok_or(AuditError::NoSigningKey)?;
        let head = self.repo.tree_head(tenant).await?;
        if let Some(latest) = self.repo.latest_checkpoint(tenant).await?
            && latest.size >= head.size
        {
            return Ok(latest);
        }
        let checkpoint = Checkpoint::new(self.name.origin_for(tenant), head.size, head.root);
        let note = checkpoint.sign(signer).into_note_text();
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

    /// Recomputes `tenant`'s whole ledger from storage: every leaf's hash and form, the gapless
    /// sequence, every stored checkpoint's root and signature, the stored head, and, if given, a
    /// checkpoint kept elsewhere (which detects truncation and rollback). Stops at the first
    /// problem and names it.
    ///
    /// One consistent snapshot is checked: the tree head and the stored checkpoints as of one
    /// moment ([`AuditRepository::head_and_checkpoints`]), and the entries up to that head only,
    /// so appends and checkpoints committed while it reads are never mistaken for tampering.
    /// Afterwards, a row stored beyond that head that no newer head covers is reported.
    ///
    /// `progress(done, total)` is called after each page.
    ///
    /// # Errors
    /// [`AuditError::Store`] if the store cannot be read. Integrity problems are not errors: they
    /// are the report's [`VerifyReport::problem`].
    pub async fn verify(
        &self,
        tenant: &TenantId,
        verifier: Option<&LedgerVerifier>,
        kept_checkpoint: Option<&str>,
        progress: impl FnMut(u64, u64) + Send,
    ) -> Result<VerifyReport, AuditError> {
        self.verify_with(tenant, verifier, kept_checkpoint, false, progress)
            .await
    }

    /// [`AuditLogger::verify`], and with `deep` also decodes every leaf fully and insists its bytes
    /// are exactly the canonical form of what they decode to (a check of the writer, not needed to
    /// detect tampering: the leaf hashes and signed roots already do that). Several times slower.
    ///
    /// # Errors
    /// As [`AuditLogger::verify`].
    pub async fn verify_with(
        &self,
        tenant: &TenantId,
        verifier: Option<&LedgerVerifier>,
        kept_checkpoint: Option<&str>,
        deep: bool,
        mut progress: impl FnMut(u64, u64) + Send,
    ) -> Result<VerifyReport, AuditError> {
        // One consistent snapshot: the head and the checkpoints as of one moment. Entries are
        // then read up to that head only. The ledger is append-only, so the first `head.size`
        // entries read later are exactly those the head committed to; entries appended meanwhile
        // lie beyond it and are not part of this verification (they are checked, after the
        // snapshot, only for being covered by a head at all).
        let (head, checkpoints) = self.repo.head_and_checkpoints(tenant).await?;
        let origin = self.name.origin_for(tenant);
        let mut report = VerifyReport {
            tenant: tenant.clone(),
            entries: 0,
            root: None,
            checkpoints_verified: 0,
            kept_checkpoint_verified: false,
            problem: None,
        };

        // Parse and check every signature before reading entries, so a forged checkpoint is
        // named even if the entries are fine.
        let mut expected_roots: Vec<(u64, Hash, String)> = Vec::new();
        for cp in &checkpoints {
            match check_note(&cp.note, verifier, &origin) {
                Ok(parsed) if parsed.size == cp.size && parsed.root == cp.root => {
                    expected_roots.push((
                        cp.size,
                        cp.root,
                        format!("stored checkpoint {}", cp.size),
                    ));
                }
                Ok(_) => {
                    report.problem = Some(Problem::CheckpointMismatch {
                        size: cp.size,
                        detail: "the signed note does not match the stored size and root".into(),
                    });
                    return Ok(report);
                }
                Err(e) => {
                    report.problem = Some(Problem::BadCheckpoint {
                        size: cp.size,
                        detail: e,
                    });
                    return Ok(report);
                }
            }
        }
        if let Some(text) = kept_checkpoint {
            match check_note(text, verifier, &origin) {
                Ok(kept) => {
                    if kept.size > head.size {
                        report.problem = Some(Problem::Truncated {
                            kept_size: kept.size,
                            ledger_size: head.size,
                        });
                        return Ok(report);
                    }
                    expected_roots.push((kept.size, kept.root, "kept checkpoint".into()));
                }
                Err(e) => {
                    report.problem = Some(Problem::BadKeptCheckpoint { detail: e });
                    return Ok(report);
                }
            }
        }
        expected_roots.sort_by_key(|(size, _, _)| *size);
        let mut expected = expected_roots.into_iter().peekable();

        let mut frontier = Frontier::new();
        // A checkpoint of size 0 commits to the empty tree.
        while let Some((0, root, what)) = expected.peek().cloned() {
            if frontier.root() != root {
                report.problem = Some(Problem::RootMismatch { size: 0, what });
                return Ok(report);
            }
            bump(&mut report, &what);
            expected.next();
        }
        let mut next_seq = 0u64;
        // How many entries to ask for from `from`: never past the snapshot's head.
        let want = |from: u64| {
            usize::try_from(head.size.saturating_sub(from))
                .unwrap_or(VERIFY_PAGE)
                .min(VERIFY_PAGE)
        };
        let mut page = self.repo.entries(tenant, 0, want(0)).await?;
        while let Some(last_seq) = page.last().map(|e| e.seq) {
            // Read the next page while this one is checked: the store reads on its own thread
            // (SQLite: a blocking reader; PostgreSQL: the server), so reading and hashing overlap.
            let from = last_seq.saturating_add(1);
            let mut next_page = std::pin::pin!(self.repo.entries(tenant, from, want(from)));
            let early =
                std::future::poll_fn(|cx| std::task::Poll::Ready(next_page.as_mut().poll(cx)))
                    .await;
            for entry in &page {
                if entry.seq >= head.size {
                    // A row at or past the snapshot's head (a store that ignored the limit, or a
                    // row planted beyond a gap): judged after the snapshot, below.
                    break;
                }
                if entry.seq != next_seq {
                    report.problem = Some(Problem::Gap {
                        expected_seq: next_seq,
                        found_seq: entry.seq,
                    });
                    return Ok(report);
                }
                if let Some(problem) =
                    check_leaf(tenant, entry.seq, &entry.leaf, &entry.leaf_hash, deep)
                {
                    report.problem = Some(problem);
                    return Ok(report);
                }
                if let Err(e) = frontier.append(entry.leaf_hash) {
                    report.problem = Some(Problem::HeadMismatch {
                        detail: e.to_string(),
                    });
                    return Ok(report);
                }
                next_seq += 1;
                while let Some((size, root, what)) = expected.peek().cloned() {
                    if size != next_seq {
                        break;
                    }
                    if frontier.root() != root {
                        report.problem = Some(Problem::RootMismatch { size, what });
                        return Ok(report);
                    }
                    bump(&mut report, &what);
                    expected.next();
                }
            }
            report.entries = next_seq;
            progress(next_seq, head.size);
            page = match early {
                std::task::Poll::Ready(result) => result?,
                std::task::Poll::Pending => next_page.await?,
            };
            if next_seq >= head.size || page.first().is_some_and(|e| e.seq >= head.size) {
                break;
            }
        }
        report.entries = next_seq;
        if next_seq != head.size {
            report.problem = Some(Problem::HeadMismatch {
                detail: format!(
                    "the stored head says {} entries, {} were read",
                    head.size, next_seq
                ),
            });
            return Ok(report);
        }
        if frontier.root() != head.root {
            report.problem = Some(Problem::HeadMismatch {
                detail: "the stored head root differs from the recomputed root".into(),
            });
            return Ok(report);
        }
        if let Some(problem) = self.rows_beyond(tenant, head.size).await? {
            report.problem = Some(problem);
            return Ok(report);
        }
        if let Some((size, _, what)) = expected.next() {
            // Only reachable if a checkpoint is beyond the entries read: entries were removed.
            report.problem = Some(Problem::Truncated {
                kept_size: size,
                ledger_size: next_seq,
            });
            let _ = what;
            return Ok(report);
        }
        report.root = Some(frontier.root());
        Ok(report)
    }
}

impl AuditLogger {
    /// After a snapshot of `size` entries verified: a row stored at or beyond `size` is genuine
    /// only if a head committed after it covers it (an append stores its rows and its head in one
    /// transaction, and heads only grow). So the first such row is read, then the head again; a
    /// row the newer head does not cover was put there outside the ledger.
    async fn rows_beyond(
        &self,
        tenant: &TenantId,
        size: u64,
    ) -> Result<Option<Problem>, AuditError> {
        let Some(row) = self.repo.entries(tenant, size, 1).await?.into_iter().next() else {
            return Ok(None);
        };
        let now = self.repo.tree_head(tenant).await?;
        Ok((row.seq >= now.size).then(|| Problem::HeadMismatch {
            detail: format!(
                "entry {} is stored beyond the tree head ({} entries): it is not part of the ledger",
                row.seq, now.size
            ),
        }))
    }
}

fn bump(report: &mut VerifyReport, what: &str) {
    if what == "kept checkpoint" {
        report.kept_checkpoint_verified = true;
    } else {
        report.checkpoints_verified += 1;
    }
}

/// Opens a checkpoint note: verifies its signature when a verifier is known (otherwise only parses
/// its body) and checks it names this tenant's ledger.
fn check_note(
    note: &str,
    verifier: Option<&LedgerVerifier>,
    origin: &ledger::Origin,
) -> Result<Checkpoint, String> {
    let checkpoint = match verifier {
        Some(v) => verify_checkpoint(note, v).map_err(|e| e.to_string())?,
        None => {
            let body = note
                .rfind("\n\n")
                .and_then(|i| note.get(..=i))
                .ok_or("the note has no signature block")?;
            Checkpoint::parse_body(body).map_err(|e| e.to_string())?
        }
    };
    if checkpoint.origin != *origin {
        return Err(format!(
            "the note is for {:?}, not this ledger ({:?})",
            checkpoint.origin.as_str(),
            origin.as_str()
        ));
    }
    Ok(checkpoint)
}

/// Reads `(v, seq, tenant_id)` from the end of a canonical leaf without parsing the rest.
///
/// In RFC 8785 form the record's members are sorted, so a canonical leaf ends with exactly
/// `,"seq":<digits>,"tenant_id":"<id>","v":<digits>}`; and since a `"` inside a JSON string is
/// always escaped, the last `,"seq":` of the bytes is that member (a nested `seq` in metadata sorts
/// earlier). Anything else returns `None` and the caller parses the JSON properly.
fn canonical_tail(leaf: &[u8]) -> Option<(u64, u64, &[u8])> {
    const SEQ: &[u8] = b",\"seq\":";
    const TENANT: &[u8] = b",\"tenant_id\":\"";
    const V: &[u8] = b"\",\"v\":";
    let start = leaf.windows(SEQ.len()).rposition(|w| w == SEQ)?;
    let rest = leaf.get(start + SEQ.len()..)?.strip_suffix(b"}")?;
    let digits = |b: &[u8]| -> Option<u64> {
        if b.is_empty() || b.len() > 19 || (b.len() > 1 && b.first() == Some(&b'0')) {
            return None;
        }
        b.iter().try_fold(0u64, |n, d| {
            d.is_ascii_digit()
                .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
                .flatten()
        })
    };
    let seq_end = rest.iter().position(|b| !b.is_ascii_digit())?;
    let seq = digits(rest.get(..seq_end)?)?;
    let rest = rest.get(seq_end..)?.strip_prefix(TENANT)?;
    let tenant_end = rest.iter().position(|b| *b == b'"')?;
    let tenant = rest.get(..tenant_end)?;
    let v = digits(rest.get(tenant_end..)?.strip_prefix(V)?)?;
    Some((v, seq, tenant))
}

/// The members of a leaf that place it: read without decoding the rest.
#[derive(serde::Deserialize)]
struct LeafPlace<'a> {
    v: u64,
    seq: u64,
    #[serde(borrow)]
    tenant_id: std::borrow::Cow<'a, str>,
}

/// Checks one stored leaf: its hash, and that it says it is this tenant's entry `seq`; with
/// `deep`, also that it decodes to a valid record whose canonical form is exactly these bytes.
fn check_leaf(
    tenant: &TenantId,
    seq: u64,
    leaf: &[u8],
    stored_hash: &Hash,
    deep: bool,
) -> Option<Problem> {
    if &ledger::leaf_hash(leaf) != stored_hash {
        return Some(Problem::LeafHashMismatch { seq });
    }
    if !deep {
        if let Some((v, leaf_seq, leaf_tenant)) = canonical_tail(leaf) {
            return if v != super::audit_record::LEAF_VERSION {
                Some(Problem::MalformedLeaf {
                    seq,
                    detail: format!("unsupported leaf version {v}"),
                })
            } else if leaf_seq != seq {
                Some(Problem::MisplacedLeaf {
                    seq,
                    detail: format!("the leaf says seq {leaf_seq}"),
                })
            } else if leaf_tenant != tenant.as_str().as_bytes() {
                Some(Problem::MisplacedLeaf {
                    seq,
                    detail: format!(
                        "the leaf belongs to tenant {}",
                        String::from_utf8_lossy(leaf_tenant)
                    ),
                })
            } else {
                None
            };
        }
        return match serde_json::from_slice::<LeafPlace<'_>>(leaf) {
            Err(e) => Some(Problem::MalformedLeaf {
                seq,
                detail: format!("leaf bytes are not an audit record: {e}"),
            }),
            Ok(place) if place.v != super::audit_record::LEAF_VERSION => {
                Some(Problem::MalformedLeaf {
                    seq,
                    detail: format!("unsupported leaf version {}", place.v),
                })
            }
            Ok(place) if place.seq != seq => Some(Problem::MisplacedLeaf {
                seq,
                detail: format!("the leaf says seq {}", place.seq),
            }),
            Ok(place) if place.tenant_id != tenant.as_str() => Some(Problem::MisplacedLeaf {
                seq,
                detail: format!("the leaf belongs to tenant {}", place.tenant_id),
            }),
            Ok(_) => None,
        };
    }
    match AuditRecord::from_leaf_bytes(leaf) {
        Err(e) => Some(Problem::MalformedLeaf {
            seq,
            detail: e.to_string(),
        }),
        Ok(record) if record.seq() != seq => Some(Problem::MisplacedLeaf {
            seq,
            detail: format!("the leaf says seq {}", record.seq()),
        }),
        Ok(record) if record.event().tenant_id() != tenant => Some(Problem::MisplacedLeaf {
            seq,
            detail: format!("the leaf belongs to tenant {}", record.event().tenant_id()),
        }),
        Ok(_) => None,
    }
}

/// The outcome of [`AuditLogger::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The tenant verified.
    pub tenant: TenantId,
    /// Entries read and checked before stopping.
    pub entries: u64,
    /// The recomputed root, if the whole ledger verified.
    pub root: Option<Hash>,
    /// Stored checkpoints whose signature and root were confirmed.
    pub checkpoints_verified: u64,
    /// Whether a kept checkpoint was given and confirmed.
    pub kept_checkpoint_verified: bool,
    /// The first problem found, if any.
    pub problem: Option<Problem>,
}

impl VerifyReport {
    /// True when nothing was wrong.
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }

    /// The report as JSON, for `--json` output.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "tenant": self.tenant.as_str(),
            "intact": self.is_intact(),
            "entries": self.entries,
            "root": self.root.map(|r| r.to_hex()),
            "checkpoints_verified": self.checkpoints_verified,
            "kept_checkpoint_verified": self.kept_checkpoint_verified,
            "first_bad_seq": self.problem.as_ref().and_then(Problem::seq),
            "problem": self.problem.as_ref().map(ToString::to_string),
        })
    }
}

/// What `verify` found wrong. Each names where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The stored leaf bytes do not hash to the stored leaf hash: the record was altered.
    #[error("entry {seq}: leaf bytes do not match the stored leaf hash (record altered)")]
    LeafHashMismatch {
        /// The bad entry.
        seq: u64,
    },
    /// The stored leaf bytes are not a canonical audit record.
    #[error("entry {seq}: {detail}")]
    MalformedLeaf {
        /// The bad entry.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// The leaf is intact but sits at the wrong place (records swapped or copied).
    #[error("entry {seq}: misplaced record: {detail}")]
    MisplacedLeaf {
        /// The bad entry.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// A sequence number is missing (record deleted).
    #[error(
        "entry {expected_seq}: missing (next stored entry is {found_seq}); a record was deleted"
    )]
    Gap {
        /// The first missing seq.
        expected_seq: u64,
        /// The seq found in its place.
        found_seq: u64,
    },
    /// The recomputed root at a checkpoint's size differs from what the checkpoint signed.
    #[error("root at size {size} differs from the {what}: an entry before {size} was altered")]
    RootMismatch {
        /// The tree size.
        size: u64,
        /// Which checkpoint.
        what: String,
    },
    /// A stored checkpoint's signature or text is invalid.
    #[error("stored checkpoint at size {size} is invalid: {detail}")]
    BadCheckpoint {
        /// Its size.
        size: u64,
        /// Why.
        detail: String,
    },
    /// A stored checkpoint's note disagrees with its stored size or root.
    #[error("stored checkpoint at size {size}: {detail}")]
    CheckpointMismatch {
        /// Its size.
        size: u64,
        /// Why.
        detail: String,
    },
    /// The checkpoint given on the command line is invalid.
    #[error("the kept checkpoint is invalid: {detail}")]
    BadKeptCheckpoint {
        /// Why.
        detail: String,
    },
    /// A checkpoint commits to more entries than the ledger holds.
    #[error(
        "ledger truncated or rolled back: a checkpoint commits to {kept_size} entries, the ledger holds {ledger_size}"
    )]
    Truncated {
        /// The checkpoint's size.
        kept_size: u64,
        /// The entries present.
        ledger_size: u64,
    },
    /// The stored tree head disagrees with the entries.
    #[error("tree head mismatch: {detail}")]
    HeadMismatch {
        /// Why.
        detail: String,
    },
}

impl Problem {
    /// The first bad entry's seq, where one can be named.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Problem::LeafHashMismatch { seq }
            | Problem::MalformedLeaf { seq, .. }
            | Problem::MisplacedLeaf { seq, .. } => Some(*seq),
            Problem::Gap { expected_seq, .. } => Some(*expected_seq),
            Problem::Truncated { ledger_size, .. } => Some(*ledger_size),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::audit_record::{AuditEventInput, Outcome};

    fn leaf(seq: u64, metadata: Option<Value>) -> Vec<u8> {
        AuditEvent::parse(
            uuid::Uuid::now_v7(),
            Outcome::Success,
            AuditEventInput {
                actor: "alice".into(),
                tenant_id: "acme-eu".into(),
                action: "model.register".into(),
                resource_type: "model".into(),
                resource_id: "m@1".into(),
                reason: Some("a \"quoted\" ,\"seq\":9 reason".into()),
                correlation_id: "c1".into(),
                metadata,
            },
        )
        .unwrap()
        .seal(seq, chrono::Utc::now())
        .unwrap()
        .into_leaf_bytes()
    }

    #[test]
    fn the_tail_of_a_canonical_leaf_places_it_like_a_full_parse() {
        for (seq, metadata) in [
            (0, None),
            (
                41,
                Some(serde_json::json!({"seq": 7, "tenant_id": "globex", "v": 2})),
            ),
            (
                9_007_199_254_740_991,
                Some(serde_json::json!({"nested": {"seq": 1}})),
            ),
        ] {
            let bytes = leaf(seq, metadata);
            let full: LeafPlace<'_> = serde_json::from_slice(&bytes).unwrap();
            let (v, s, t) = canonical_tail(&bytes).unwrap();
            assert_eq!((v, s, t), (full.v, full.seq, full.tenant_id.as_bytes()));
            assert_eq!((v, s, t), (1, seq, &b"acme-eu"[..]));
        }
    }

    #[test]
    fn anything_but_the_exact_canonical_tail_falls_back_to_parsing() {
        for bad in [
            &b""[..],
            b"{}",
            b"{\"seq\":1,\"tenant_id\":\"a\",\"v\":1}",
            b"{\"x\":0,\"seq\":01,\"tenant_id\":\"a\",\"v\":1}",
            b"{\"x\":0,\"seq\":1,\"tenant_id\":\"a\",\"v\":1} ",
            b"{\"x\":0,\"seq\":1,\"tenant_id\":\"a\",\"v\":1,\"w\":2}",
            b"{\"x\":0,\"seq\":99999999999999999999,\"tenant_id\":\"a\",\"v\":1}",
        ] {
            assert_eq!(
                canonical_tail(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

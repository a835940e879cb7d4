//! # airisk-store-memory
//!
//! [`InMemoryStore`]: every store port ([`AuditRepository`], [`GovernanceStore`]) in memory,
//! behind one lock. Not durable: what `airisk serve --database-url memory:` (and `--dev`) and the
//! Python module's `database_url="memory:"` run on, and the store most tests use. It passes the
//! same conformance suites as the SQLite and PostgreSQL stores (`airisk-testkit`).
//!
//! With the `tamper` feature (turned on by the test kit only), the store also has `dangerous_*`
//! methods that break its own guarantees on purpose (rewrite, delete, swap or truncate ledger
//! entries, replace checkpoint notes, fail the next appends), so tests can prove verification
//! notices. A build of the `airisk` binary or the Python module does not compile them.
#![deny(missing_docs)]

use std::collections::{BTreeMap, HashMap, HashSet};
#[cfg(feature = "tamper")]
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use airisk_core::governance::approval_workflow::{ApprovalRequest, Subject};
use airisk_core::governance::audit_record::{AuditEvent, AuditReceipt};
use airisk_core::governance::model_registry::{ModelName, ModelVersion, ModelVersionTag};
use airisk_core::governance::prompt_registry::{LabelMove, PromptName, PromptVersion};
use airisk_core::ledger::{self, Frontier, Hash, NodeId};
use airisk_core::ports::{
    ApprovalFilter, ApprovalWithSubject, AuditRepository, ChangeSet, Clock, GovernanceStore,
    IDEMPOTENT_CORRELATION_PREFIX, Mutation, Page, StoreError, StoredCheckpoint, StoredEntry,
    SubjectState, TreeHead, idempotency_conflict,
};
use airisk_core::security::tenant_context::TenantId;
use async_trait::async_trait;
use uuid::Uuid;

#[derive(Debug, Default)]
struct Ledger {
    entries: Vec<StoredEntry>,
    nodes: HashMap<NodeId, Hash>,
    frontier: Frontier,
    checkpoints: BTreeMap<u64, StoredCheckpoint>,
}

#[derive(Debug, Default)]
struct State {
    ledgers: BTreeMap<TenantId, Ledger>,
    /// Approval requests in creation order.
    approvals: Vec<ApprovalRequest>,
    /// Model versions in registration order.
    models: Vec<ModelVersion>,
    prompts: BTreeMap<(TenantId, String, u32), PromptVersion>,
    labels: BTreeMap<(TenantId, String, String), u32>,
    label_moves: Vec<(TenantId, LabelMove)>,
    data_keys: Vec<airisk_core::security::envelope::WrappedDataKey>,
    /// The idempotent correlation ids each tenant's ledger holds (the contract of
    /// `AuditRepository`: a second write with one of them is refused).
    idempotent: HashSet<(TenantId, String)>,
    /// Webhook delivery claims: `(tenant, source, delivery id) → until`.
    deliveries: HashMap<(TenantId, String, String), chrono::DateTime<chrono::Utc>>,
}

impl State {
    /// Checks every mutation and seals every event first, then applies all of it: a failure
    /// leaves no trace.
    fn commit(
        &mut self,
        mutations: &[Mutation],
        events: Vec<AuditEvent>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<AuditReceipt>, StoreError> {
        let mut keys = Vec::new();
        for e in &events {
            let id = e.correlation_id().as_str();
            if id.starts_with(IDEMPOTENT_CORRELATION_PREFIX) {
                let key = (e.tenant_id().clone(), id.to_owned());
                if self.idempotent.contains(&key) {
                    return Err(idempotency_conflict());
                }
                keys.push(key);
            }
        }
        for m in mutations {
            self.check(m)?;
        }
        let mut next: HashMap<TenantId, u64> = HashMap::new();
        let mut sealed = Vec::with_capacity(events.len());
        for event in events {
            let tenant = event.tenant_id().clone();
            let seq = next
                .entry(tenant.clone())
                .or_insert_with(|| self.ledgers.get(&tenant).map_or(0, |l| l.frontier.size()));
            let record = event.seal(*seq, now).map_err(|e| StoreError::Refused {
                message: e.to_string(),
            })?;
            *seq += 1;
            sealed.push((tenant, record));
        }
        for m in mutations {
            self.apply(m.clone());
        }
        let mut receipts = Vec::with_capacity(sealed.len());
        for (tenant, record) in sealed {
            let ledger = self.ledgers.entry(tenant.clone()).or_default();
            let leaf_hash = ledger::leaf_hash(record.leaf_bytes());
            let completed = ledger
                .frontier
                .append(leaf_hash)
                .map_err(|e| StoreError::Refused {
                    message: e.to_string(),
                })?;
            ledger.nodes.extend(completed);
            receipts.push(AuditReceipt {
                id: record.event().id(),
                tenant_id: tenant,
                seq: record.seq(),
                leaf_hash: leaf_hash.to_hex(),
                recorded_at: record.recorded_at(),
            });
            ledger.entries.push(StoredEntry {
                seq: record.seq(),
                leaf: record.into_leaf_bytes(),
                leaf_hash,
            });
        }
        self.idempotent.extend(keys);
        Ok(receipts)
    }

    fn check(&self, m: &Mutation) -> Result<(), StoreError> {
        let conflict = |what: String| Err(StoreError::Conflict { what });
        match m {
            Mutation::InsertApproval(r) => {
                if self
                    .approvals
                    .iter()
                    .any(|a| a.id() == r.id() && a.tenant_id() == r.tenant_id())
                {
                    return conflict(format!("approval request {} exists", r.id()));
                }
            }
            Mutation::UpdateApproval {
                expected_version,
                request,
            } => {
                let current = self
                    .approvals
                    .iter()
                    .find(|a| a.id() == request.id() && a.tenant_id() == request.tenant_id());
                if current.map(ApprovalRequest::version) != Some(*expected_version) {
                    return conflict(format!("approval request {} changed", request.id()));
                }
            }
            Mutation::InsertModel(model) => {
                if self
                    .find_model(
                        model.tenant_id(),
                        model.model_name().as_str(),
                        model.version().as_str(),
                    )
                    .is_some()
                {
                    return conflict(format!(
                        "model {}@{} exists",
                        model.model_name(),
                        model.version()
                    ));
                }
            }
            Mutation::UpdateModel {
                expected_version,
                model,
            } => {
                let current = self.find_model(
                    model.tenant_id(),
                    model.model_name().as_str(),
                    model.version().as_str(),
                );
                if current.map(ModelVersion::row_version) != Some(*expected_version) {
                    return conflict(format!(
                        "model {}@{} changed",
                        model.model_name(),
                        model.version()
                    ));
                }
            }
            Mutation::InsertPromptVersion(pv) => {
                let key = (pv.tenant_id().clone(), pv.name().to_owned(), pv.version());
                if self.prompts.contains_key(&key) {
                    return conflict(format!("prompt {}@{} exists", pv.name(), pv.version()));
                }
            }
            Mutation::SealPromptVersion(pv) => {
                let key = (pv.tenant_id().clone(), pv.name().to_owned(), pv.version());
                let Some(stored) = self.prompts.get(&key) else {
                    return conflict(format!(
                        "prompt {}@{} is not stored",
                        pv.name(),
                        pv.version()
                    ));
                };
                if stored.is_sealed() {
                    return conflict(format!(
                        "prompt {}@{} is sealed already",
                        pv.name(),
                        pv.version()
                    ));
                }
                let digest = airisk_core::governance::model_registry::Sha256Digest::of(
                    stored.template().as_bytes(),
                );
                if !pv.is_sealed()
                    || !digest.matches(stored.template_sha256())
                    || !stored.differs_only_in_template(pv)
                {
                    return Err(StoreError::Refused {
                        message: format!(
                            "prompt {}@{}: only sealing its own plaintext template in place is allowed",
                            pv.name(),
                            pv.version()
                        ),
                    });
                }
            }
            Mutation::MoveLabel {
                expected_from,
                label_move,
            } => {
                let current = self
                    .labels
                    .get(&(
                        label_move.tenant_id.clone(),
                        label_move.name.clone(),
                        label_move.label.clone(),
                    ))
                    .copied();
                if current != *expected_from {
                    return conflict(format!("label {} moved", label_move.label));
                }
            }
            Mutation::InsertDataKey(k) => {
                if self
                    .data_keys
                    .iter()
                    .any(|d| d.tenant_id == k.tenant_id && d.kid == k.kid)
                {
                    return conflict(format!("data key {} exists", k.kid));
                }
            }
            Mutation::RewrapDataKey(k) => {
                if !self
                    .data_keys
                    .iter()
                    .any(|d| d.tenant_id == k.tenant_id && d.kid == k.kid && d.wrapped.is_some())
                {
                    return conflict(format!("data key {} is not live", k.kid));
                }
            }
            Mutation::ShredDataKeys { .. } | Mutation::ShredSubjectKeys { .. } => {}
            _ => {
                return Err(StoreError::Refused {
                    message: "unknown mutation".to_owned(),
                });
            }
        }
        Ok(())
    }

    fn apply(&mut self, m: Mutation) {
        match m {
            Mutation::InsertApproval(r) => self.approvals.push(r),
            Mutation::UpdateApproval { request, .. } => {
                if let Some(a) = self
                    .approvals
                    .iter_mut()
                    .find(|a| a.id() == request.id() && a.tenant_id() == request.tenant_id())
                {
                    *a = request;
                }
            }
            Mutation::InsertModel(model) => self.models.push(model),
            Mutation::UpdateModel { model, .. } => {
                if let Some(m) = self.models.iter_mut().find(|m| {
                    m.tenant_id() == model.tenant_id()
                        && m.model_name() == model.model_name()
                        && m.version() == model.version()
                }) {
                    *m = model;
                }
            }
            Mutation::InsertPromptVersion(pv) | Mutation::SealPromptVersion(pv) => {
                let key = (pv.tenant_id().clone(), pv.name().to_owned(), pv.version());
                self.prompts.insert(key, pv);
            }
            Mutation::MoveLabel { label_move, .. } => {
                let t = label_move.tenant_id.clone();
                self.labels.insert(
                    (t.clone(), label_move.name.clone(), label_move.label.clone()),
                    label_move.to_version,
                );
                self.label_moves.push((t, label_move));
            }
            Mutation::InsertDataKey(k) => self.data_keys.push(k),
            Mutation::RewrapDataKey(k) => {
                if let Some(d) = self
                    .data_keys
                    .iter_mut()
                    .find(|d| d.tenant_id == k.tenant_id && d.kid == k.kid)
                {
                    d.wrapped = k.wrapped;
                }
            }
            Mutation::ShredDataKeys { tenant } => {
                for d in self.data_keys.iter_mut().filter(|d| d.tenant_id == tenant) {
                    d.wrapped = None;
                    d.subject = None;
                }
            }
            Mutation::ShredSubjectKeys { tenant, subject } => {
                for d in self
                    .data_keys
                    .iter_mut()
                    .filter(|d| d.tenant_id == tenant && d.subject.as_ref() == Some(&subject))
                {
                    d.wrapped = None;
                    d.subject = None;
                }
            }
            _ => {}
        }
    }

    fn find_model(&self, tenant: &TenantId, name: &str, version: &str) -> Option<&ModelVersion> {
        self.models.iter().find(|m| {
            m.tenant_id() == tenant
                && m.model_name().as_str() == name
                && m.version().as_str() == version
        })
    }
}

/// Every store port in memory, behind one lock (so appends are serialised per process, like a
/// database transaction). Cheap to clone; clones share state.
///
/// With the `tamper` feature, the `dangerous_*` methods break the store's own guarantees on
/// purpose, so tests can prove that verification notices.
#[derive(Debug, Clone)]
pub struct InMemoryStore {
    state: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
    #[cfg(feature = "tamper")]
    failing_appends: Arc<AtomicU32>,
}

impl InMemoryStore {
    /// An empty store that stamps records with `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        InMemoryStore {
            state: Arc::default(),
            clock,
            #[cfg(feature = "tamper")]
            failing_appends: Arc::default(),
        }
    }

    /// Fails with [`StoreError::Unavailable`] while `dangerous_fail_next_appends` has failures
    /// left to inject (never without the `tamper` feature).
    #[allow(clippy::unnecessary_wraps, clippy::unused_self)]
    fn take_injected_failure(&self) -> Result<(), StoreError> {
        #[cfg(feature = "tamper")]
        if self
            .failing_appends
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable {
                message: "injected audit append failure".to_owned(),
            });
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The test-only tampering switches (feature `tamper`, turned on by `airisk-testkit`).
#[cfg(feature = "tamper")]
impl InMemoryStore {
    /// Makes the next `n` audit appends fail with [`StoreError::Unavailable`] before writing
    /// anything. A governance commit appends audit records, so it fails too, whole.
    pub fn dangerous_fail_next_appends(&self, n: u32) {
        self.failing_appends.store(n, Ordering::SeqCst);
    }

    /// Replaces the stored leaf bytes of an entry, leaving its stored hash alone.
    pub fn dangerous_overwrite_leaf(&self, tenant: &TenantId, seq: u64, leaf: Vec<u8>) {
        let _found = self.entry_mut(tenant, seq, |e| e.leaf = leaf);
    }

    /// Replaces the stored leaf bytes AND the stored leaf hash of an entry: only roots and signed
    /// checkpoints can catch this.
    pub fn dangerous_rewrite_entry(&self, tenant: &TenantId, seq: u64, leaf: Vec<u8>) {
        let hash = ledger::leaf_hash(&leaf);
        let _ = self.entry_mut(tenant, seq, |e| {
            e.leaf = leaf;
            e.leaf_hash = hash;
        });
    }

    /// Removes one entry (its row only; the head is left as it was).
    pub fn dangerous_delete_entry(&self, tenant: &TenantId, seq: u64) {
        if let Some(l) = self.lock().ledgers.get_mut(tenant) {
            l.entries.retain(|e| e.seq != seq);
        }
    }

    /// Swaps the contents (leaf and hash) of two entries, keeping their seqs.
    pub fn dangerous_swap_entries(&self, tenant: &TenantId, a: u64, b: u64) {
        let mut state = self.lock();
        let Some(l) = state.ledgers.get_mut(tenant) else {
            return;
        };
        let ia = l.entries.iter().position(|e| e.seq == a);
        let ib = l.entries.iter().position(|e| e.seq == b);
        if let (Some(ia), Some(ib)) = (ia, ib) {
            let (leaf_a, hash_a) = l
                .entries
                .get(ia)
                .map(|e| (e.leaf.clone(), e.leaf_hash))
                .unwrap_or_default();
            let (leaf_b, hash_b) = l
                .entries
                .get(ib)
                .map(|e| (e.leaf.clone(), e.leaf_hash))
                .unwrap_or_default();
            if let Some(e) = l.entries.get_mut(ia) {
                e.leaf = leaf_b;
                e.leaf_hash = hash_b;
            }
            if let Some(e) = l.entries.get_mut(ib) {
                e.leaf = leaf_a;
                e.leaf_hash = hash_a;
            }
        }
    }

    /// Cuts the ledger back to its first `size` entries and rebuilds head, nodes and checkpoints
    /// to match, as an operator restoring an old backup would: only a checkpoint kept elsewhere
    /// can catch this.
    pub fn dangerous_truncate(&self, tenant: &TenantId, size: u64) {
        let mut state = self.lock();
        let Some(l) = state.ledgers.get_mut(tenant) else {
            return;
        };
        l.entries.retain(|e| e.seq < size);
        l.checkpoints.retain(|s, _| *s <= size);
        l.nodes.clear();
        l.frontier = Frontier::new();
        for e in &l.entries {
            if let Ok(completed) = l.frontier.append(e.leaf_hash) {
                l.nodes.extend(completed);
            }
        }
    }

    /// Replaces the note of a stored checkpoint.
    pub fn dangerous_replace_checkpoint_note(&self, tenant: &TenantId, size: u64, note: String) {
        if let Some(cp) = self
            .lock()
            .ledgers
            .get_mut(tenant)
            .and_then(|l| l.checkpoints.get_mut(&size))
        {
            cp.note = note;
        }
    }

    fn entry_mut(
        &self,
        tenant: &TenantId,
        seq: u64,
        f: impl FnOnce(&mut StoredEntry),
    ) -> Option<()> {
        let mut state = self.lock();
        let e = state
            .ledgers
            .get_mut(tenant)?
            .entries
            .iter_mut()
            .find(|e| e.seq == seq)?;
        f(e);
        Some(())
    }
}

#[async_trait]
impl AuditRepository for InMemoryStore {
    async fn append(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditReceipt>, StoreError> {
        self.take_injected_failure()?;
        let mut state = self.lock();
        let now = self.clock.now();
        state.commit(&[], events, now)
    }

    async fn tree_head(&self, tenant: &TenantId) -> Result<TreeHead, StoreError> {
        let state = self.lock();
        Ok(match state.ledgers.get(tenant) {
            Some(l) => TreeHead {
                size: l.frontier.size(),
                root: l.frontier.root(),
            },
            None => TreeHead {
                size: 0,
                root: Frontier::new().root(),
            },
        })
    }

    async fn entries(
        &self,
        tenant: &TenantId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let state = self.lock();
        Ok(state
            .ledgers
            .get(tenant)
            .map(|l| {
                l.entries
                    .iter()
                    .filter(|e| e.seq >= from_seq)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn nodes(
        &self,
        tenant: &TenantId,
        ids: &[NodeId],
    ) -> Result<Vec<(NodeId, Hash)>, StoreError> {
        let state = self.lock();
        let Some(l) = state.ledgers.get(tenant) else {
            return Ok(Vec::new());
        };
        Ok(ids
            .iter()
            .filter_map(|id| l.nodes.get(id).map(|h| (*id, *h)))
            .collect())
    }

    async fn add_checkpoint(
        &self,
        tenant: &TenantId,
        checkpoint: StoredCheckpoint,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let l = state.ledgers.entry(tenant.clone()).or_default();
        if l.checkpoints.contains_key(&checkpoint.size) {
            return Err(StoreError::Conflict {
                what: format!("checkpoint of size {} exists", checkpoint.size),
            });
        }
        l.checkpoints.insert(checkpoint.size, checkpoint);
        Ok(())
    }

    async fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let state = self.lock();
        Ok(state
            .ledgers
            .get(tenant)
            .map(|l| l.checkpoints.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn head_and_checkpoints(
        &self,
        tenant: &TenantId,
    ) -> Result<(TreeHead, Vec<StoredCheckpoint>), StoreError> {
        // Both under one lock: one snapshot.
        let state = self.lock();
        Ok(match state.ledgers.get(tenant) {
            Some(l) => (
                TreeHead {
                    size: l.frontier.size(),
                    root: l.frontier.root(),
                },
                l.checkpoints.values().cloned().collect(),
            ),
            None => (
                TreeHead {
                    size: 0,
                    root: Frontier::new().root(),
                },
                Vec::new(),
            ),
        })
    }

    async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let state = self.lock();
        Ok(state
            .ledgers
            .get(tenant)
            .and_then(|l| l.checkpoints.values().next_back().cloned()))
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let state = self.lock();
        Ok(state
            .ledgers
            .iter()
            .filter(|(_, l)| !l.entries.is_empty())
            .map(|(t, _)| t.clone())
            .collect())
    }
}

#[async_trait]
impl GovernanceStore for InMemoryStore {
    #[tracing::instrument(
        name = "store.commit",
        skip_all,
        fields(tenant_id = %change.tenant, mutations = change.mutations.len(), audit_records = change.audit.len())
    )]
    async fn commit(&self, change: ChangeSet) -> Result<Vec<AuditReceipt>, StoreError> {
        change.check_tenant()?;
        if !change.audit.is_empty() {
            self.take_injected_failure()?;
        }
        let mut state = self.lock();
        let now = self.clock.now();
        state.commit(&change.mutations, change.audit, now)
    }

    async fn approval(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<ApprovalRequest>, StoreError> {
        Ok(self
            .lock()
            .approvals
            .iter()
            .find(|a| a.tenant_id() == tenant && a.id() == id)
            .cloned())
    }

    async fn approval_with_subject(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<ApprovalWithSubject>, StoreError> {
        // One lock: the request and its subject's state from one snapshot.
        let state = self.lock();
        let Some(request) = state
            .approvals
            .iter()
            .find(|a| a.tenant_id() == tenant && a.id() == id)
            .cloned()
        else {
            return Ok(None);
        };
        let subject = match request.subject() {
            Subject::Model { name, version } => SubjectState::Model(
                state
                    .find_model(tenant, name.as_str(), version.as_str())
                    .cloned()
                    .map(Box::new),
            ),
            Subject::PromptLabel { name, label, .. } => SubjectState::PromptLabel {
                points_at: state
                    .labels
                    .get(&(
                        tenant.clone(),
                        name.as_str().to_owned(),
                        label.as_str().to_owned(),
                    ))
                    .copied(),
            },
        };
        Ok(Some(ApprovalWithSubject { request, subject }))
    }

    async fn model_with_approval(
        &self,
        tenant: &TenantId,
        name: &ModelName,
        version: &ModelVersionTag,
    ) -> Result<Option<ApprovalWithSubject>, StoreError> {
        let state = self.lock();
        let Some(model) = state
            .find_model(tenant, name.as_str(), version.as_str())
            .cloned()
        else {
            return Ok(None);
        };
        let id = model.approval_request_id();
        let Some(request) = state
            .approvals
            .iter()
            .find(|a| a.tenant_id() == tenant && a.id() == id)
            .cloned()
        else {
            return Err(StoreError::Corrupt {
                message: format!("model {name}@{version} names a missing approval {id}"),
            });
        };
        Ok(Some(ApprovalWithSubject {
            request,
            subject: SubjectState::Model(Some(Box::new(model))),
        }))
    }

    async fn approvals(
        &self,
        tenant: &TenantId,
        filter: &ApprovalFilter,
        page: Page,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        Ok(self
            .lock()
            .approvals
            .iter()
            .filter(|a| a.tenant_id() == tenant && filter.matches(a))
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(page.limit.min(1000) as usize)
            .cloned()
            .collect())
    }

    async fn model(
        &self,
        tenant: &TenantId,
        name: &ModelName,
        version: &ModelVersionTag,
    ) -> Result<Option<ModelVersion>, StoreError> {
        Ok(self
            .lock()
            .find_model(tenant, name.as_str(), version.as_str())
            .cloned())
    }

    async fn model_versions(
        &self,
        tenant: &TenantId,
        name: &ModelName,
    ) -> Result<Vec<ModelVersion>, StoreError> {
        Ok(self
            .lock()
            .models
            .iter()
            .filter(|m| m.tenant_id() == tenant && m.model_name() == name)
            .cloned()
            .collect())
    }

    async fn prompt_versions(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<PromptVersion>, StoreError> {
        let name = name.as_str();
        Ok(self
            .lock()
            .prompts
            .range(
                (tenant.clone(), name.to_owned(), 0)..=(tenant.clone(), name.to_owned(), u32::MAX),
            )
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn prompt_labels(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        Ok(self
            .lock()
            .labels
            .iter()
            .filter(|((t, n, _), _)| t == tenant && n == name.as_str())
            .map(|((_, _, l), v)| (l.clone(), *v))
            .collect())
    }

    async fn label_moves(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<LabelMove>, StoreError> {
        Ok(self
            .lock()
            .label_moves
            .iter()
            .filter(|(t, m)| t == tenant && m.name == name.as_str())
            .map(|(_, m)| m.clone())
            .collect())
    }

    async fn unsealed_prompt_versions(
        &self,
        tenant: &TenantId,
        limit: u32,
    ) -> Result<Vec<PromptVersion>, StoreError> {
        Ok(self
            .lock()
            .prompts
            .iter()
            .filter(|((t, _, _), pv)| t == tenant && !pv.is_sealed())
            .map(|(_, pv)| pv.clone())
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect())
    }

    async fn data_keys(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<airisk_core::security::envelope::WrappedDataKey>, StoreError> {
        Ok(self
            .lock()
            .data_keys
            .iter()
            .filter(|d| &d.tenant_id == tenant)
            .cloned()
            .collect())
    }

    async fn claim_delivery(
        &self,
        claim: &airisk_core::ports::DeliveryClaim,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        claim.check()?;
        let mut state = self.lock();
        state
            .deliveries
            .retain(|(t, _, _), until| t != &claim.tenant || *until >= now);
        let key = (
            claim.tenant.clone(),
            claim.source.clone(),
            claim.delivery_id.clone(),
        );
        if state.deliveries.contains_key(&key) {
            return Ok(false);
        }
        state.deliveries.insert(key, claim.until);
        Ok(true)
    }

    async fn settle_delivery(
        &self,
        claim: &airisk_core::ports::DeliveryClaim,
    ) -> Result<(), StoreError> {
        claim.check()?;
        self.lock().deliveries.insert(
            (
                claim.tenant.clone(),
                claim.source.clone(),
                claim.delivery_id.clone(),
            ),
            claim.until,
        );
        Ok(())
    }

    async fn release_delivery(
        &self,
        claim: &airisk_core::ports::DeliveryClaim,
    ) -> Result<(), StoreError> {
        self.lock().deliveries.remove(&(
            claim.tenant.clone(),
            claim.source.clone(),
            claim.delivery_id.clone(),
        ));
        Ok(())
    }
}

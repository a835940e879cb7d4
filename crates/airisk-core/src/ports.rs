//! Ports: the traits through which the core reaches the outside world. Adapters (stores, clocks)
//! implement them in other crates; services receive them as `Arc<dyn …>` values, never globals.

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::governance::approval_workflow::{ApprovalRequest, ApprovalStatus, Subject};
use crate::governance::audit_record::{AuditEvent, AuditReceipt, AuditRecord, Outcome};
use crate::governance::model_registry::{ModelName, ModelVersion, ModelVersionTag};
use crate::governance::prompt_registry::{LabelMove, PromptName, PromptVersion};
use crate::ledger::{Hash, NodeId};
use crate::security::envelope::WrappedDataKey;
use crate::security::tenant_context::ActorId;
use crate::security::tenant_context::TenantId;

/// The source of "now". Always UTC; injected so tests control time (invariant 8).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant, truncated to whole microseconds (the precision records keep).
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// The source of new identifiers.
pub trait IdGenerator: Send + Sync + std::fmt::Debug {
    /// A new unique id. Production ids are UUIDv7 (time-ordered).
    fn new_id(&self) -> Uuid;
}

/// UUIDv7 ids from the system clock and the OS random source.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV7Generator;

impl IdGenerator for UuidV7Generator {
    fn new_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// Prefix of the correlation ids that mark an idempotent write. The HTTP layer derives such an id
/// from a request's `Idempotency-Key` (scoped by tenant, principal, method and path); every
/// audit record of the write carries it, in the same transaction as the write's state change, so
/// the ledger itself records which keys were used, and stores refuse a second write with the same
/// id (see [`AuditRepository`]'s contract). A retry after an unknown outcome (connection lost
/// during `COMMIT`, a failover) therefore either commits the write once or finds it committed.
pub const IDEMPOTENT_CORRELATION_PREFIX: &str = "idem-";

/// The `what` of the [`StoreError::Conflict`] a store answers when a write's idempotent
/// correlation id is already in the tenant's ledger.
pub const IDEMPOTENCY_CONFLICT: &str = "idempotency key already used";

/// The idempotent correlation ids (those starting with [`IDEMPOTENT_CORRELATION_PREFIX`]) of
/// `events`, each once, in first-seen order.
pub fn idempotent_correlations(events: &[AuditEvent]) -> Vec<&str> {
    let mut ids: Vec<&str> = Vec::new();
    for e in events {
        let id = e.correlation_id().as_str();
        if id.starts_with(IDEMPOTENT_CORRELATION_PREFIX) && !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// The refusal of a write whose idempotent correlation id is already used.
pub fn idempotency_conflict() -> StoreError {
    StoreError::Conflict {
        what: IDEMPOTENCY_CONFLICT.to_owned(),
    }
}

/// Why a store could not do what was asked. Stores map their own errors onto these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness rule or an optimistic-concurrency check refused the write; nothing changed.
    #[error("conflict: {what}")]
    Conflict {
        /// What clashed, in words (never row contents).
        what: String,
    },
    /// The store could not be reached or failed to complete the operation; nothing changed,
    /// except when the connection was lost during the commit itself: then the outcome is unknown
    /// (the write may have committed), and only a retry with the same idempotent correlation id
    /// ([`IDEMPOTENT_CORRELATION_PREFIX`]) is safe.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// The underlying failure, without secrets or row contents.
        message: String,
    },
    /// The store refused the write because it would change history (an audit row update or
    /// delete), or a database rule refused it.
    #[error("store refused the operation: {message}")]
    Refused {
        /// The database's reason.
        message: String,
    },
    /// Stored data is not what the store wrote (unreadable row, missing node, broken invariant).
    #[error("store data is corrupt: {message}")]
    Corrupt {
        /// What is wrong.
        message: String,
    },
}

impl StoreError {
    /// Maps a store failure into a service's error, the one way every service does: a
    /// [`StoreError::Conflict`] (another writer got there first) becomes `conflict()`; any other
    /// failure goes through `other`.
    pub fn map_conflict<E>(
        self,
        conflict: impl FnOnce() -> E,
        other: impl FnOnce(StoreError) -> E,
    ) -> E {
        match self {
            StoreError::Conflict { .. } => conflict(),
            failure => other(failure),
        }
    }
}

/// An audit entry exactly as a store holds it: what `verify` and `export` read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The row's position in the tenant's ledger.
    pub seq: u64,
    /// The exact leaf bytes as stored.
    pub leaf: Vec<u8>,
    /// The leaf hash as stored (SHA-256(0x00 || leaf) when intact).
    pub leaf_hash: Hash,
}

/// Consecutive audit entries read in one go, packed: every leaf in one buffer instead of one
/// allocation each. What [`AuditRepository::entry_page`] returns for `verify`, which reads
/// whole ledgers page by page; the entries are the same as [`AuditRepository::entries`] gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryPage {
    seqs: Vec<u64>,
    hashes: Vec<Hash>,
    /// Where each leaf ends in `leaves` (it starts where the one before ends).
    ends: Vec<usize>,
    leaves: Vec<u8>,
}

/// One entry of an [`EntryPage`], borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// The row's position in the tenant's ledger.
    pub seq: u64,
    /// The exact leaf bytes as stored.
    pub leaf: &'a [u8],
    /// The leaf hash as stored.
    pub leaf_hash: &'a Hash,
}

impl EntryPage {
    /// An empty page with room for `entries` entries and `leaf_bytes` bytes of leaves.
    pub fn with_capacity(entries: usize, leaf_bytes: usize) -> Self {
        EntryPage {
            seqs: Vec::with_capacity(entries),
            hashes: Vec::with_capacity(entries),
            ends: Vec::with_capacity(entries),
            leaves: Vec::with_capacity(leaf_bytes),
        }
    }

    /// Adds an entry at the end.
    pub fn push(&mut self, seq: u64, leaf: &[u8], leaf_hash: Hash) {
        self.leaves.extend_from_slice(leaf);
        self.seqs.push(seq);
        self.hashes.push(leaf_hash);
        self.ends.push(self.leaves.len());
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// Entry `index` (counted from the page's first), if there is one.
    pub fn get(&self, index: usize) -> Option<EntryRef<'_>> {
        let start = match index.checked_sub(1) {
            None => 0,
            Some(before) => *self.ends.get(before)?,
        };
        let end = *self.ends.get(index)?;
        Some(EntryRef {
            seq: *self.seqs.get(index)?,
            leaf: self.leaves.get(start..end)?,
            leaf_hash: self.hashes.get(index)?,
        })
    }

    /// The entries in `range` (clamped to the page), in order.
    pub fn range(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = EntryRef<'_>> + '_ {
        let end = range.end.min(self.len());
        (range.start.min(end)..end).filter_map(|i| self.get(i))
    }

    /// Every entry, in order.
    pub fn iter(&self) -> impl Iterator<Item = EntryRef<'_>> + '_ {
        self.range(0..self.len())
    }

    /// The seqs of its entries, in order.
    pub fn seqs(&self) -> &[u64] {
        &self.seqs
    }
}

impl From<Vec<StoredEntry>> for EntryPage {
    fn from(entries: Vec<StoredEntry>) -> Self {
        let bytes = entries.iter().map(|e| e.leaf.len()).sum();
        let mut page = EntryPage::with_capacity(entries.len(), bytes);
        for entry in entries {
            page.push(entry.seq, &entry.leaf, entry.leaf_hash);
        }
        page
    }
}

impl From<EntryRef<'_>> for StoredEntry {
    fn from(entry: EntryRef<'_>) -> Self {
        StoredEntry {
            seq: entry.seq,
            leaf: entry.leaf.to_vec(),
            leaf_hash: *entry.leaf_hash,
        }
    }
}

/// The size and root of a tenant's tree, read together in one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Number of entries.
    pub size: u64,
    /// RFC 6962 root of those entries.
    pub root: Hash,
}

/// A signed checkpoint as stored (append-only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The tree size it commits to.
    pub size: u64,
    /// The root it commits to.
    pub root: Hash,
    /// The complete signed note text (C2SP tlog-checkpoint body plus signature lines).
    pub note: String,
    /// When it was signed (whole microseconds, like every time the clock gives).
    pub signed_at: DateTime<Utc>,
}

/// The audit ledger's storage. Append-only: there is no update and no delete.
///
/// Contract for every implementation:
/// * each tenant's entries have `seq` 0, 1, 2, … with no gaps, in append order, even under
///   concurrent appends from many tasks or processes;
/// * an append either stores every event of the call (entries, their perfect-subtree nodes and the
///   new tree head) or nothing, and returns only once the data is durable;
/// * every read is scoped by tenant;
/// * a write (append or governance commit) carrying an event whose correlation id starts with
///   [`IDEMPOTENT_CORRELATION_PREFIX`] is refused with [`StoreError::Conflict`] (`what` =
///   [`IDEMPOTENCY_CONFLICT`]) when the tenant's ledger already holds an entry with that
///   correlation id, checked inside the write's own transaction, under the tenant's write lock: of
///   any number of writes with one such id, from any process, at most one commits.
#[async_trait::async_trait]
pub trait AuditRepository: Send + Sync + std::fmt::Debug {
    /// Appends `events` atomically, giving each the next `seq` of its tenant's ledger and the
    /// store's current time, and returns one receipt per event, in order. Events may belong to
    /// different tenants.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if nothing could be written (nothing was).
    async fn append(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditReceipt>, StoreError>;

    /// The current size and root of `tenant`'s tree (size 0 and the empty root if it has none).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Corrupt`].
    async fn tree_head(&self, tenant: &TenantId) -> Result<TreeHead, StoreError>;

    /// Up to `limit` entries of `tenant` with `seq >= from_seq`, in `seq` order, as stored.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Corrupt`].
    async fn entries(
        &self,
        tenant: &TenantId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError>;

    /// The same entries as [`AuditRepository::entries`], packed into one [`EntryPage`]. What
    /// `verify` reads. The default converts [`AuditRepository::entries`]' answer; a store that
    /// can fill a page directly (without an allocation per leaf) overrides it.
    ///
    /// # Errors
    /// As [`AuditRepository::entries`].
    async fn entry_page(
        &self,
        tenant: &TenantId,
        from_seq: u64,
        limit: usize,
    ) -> Result<EntryPage, StoreError> {
        Ok(EntryPage::from(
            self.entries(tenant, from_seq, limit).await?,
        ))
    }

    /// The stored hashes of the given perfect-subtree nodes of `tenant`'s tree. Nodes not stored
    /// are absent from the result.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn nodes(
        &self,
        tenant: &TenantId,
        ids: &[NodeId],
    ) -> Result<Vec<(NodeId, Hash)>, StoreError>;

    /// Stores a signed checkpoint.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if `tenant` already has a checkpoint of that size.
    async fn add_checkpoint(
        &self,
        tenant: &TenantId,
        checkpoint: StoredCheckpoint,
    ) -> Result<(), StoreError>;

    /// Every stored checkpoint of `tenant`, in size order.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Corrupt`].
    async fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<StoredCheckpoint>, StoreError>;

    /// The largest stored checkpoint of `tenant`, if any.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Corrupt`].
    async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// `tenant`'s tree head and every stored checkpoint (in size order), read as one consistent
    /// view: the snapshot [`crate::governance::audit_logger::AuditLogger::verify`] checks, so
    /// that appends and checkpoints committed while it reads never look like tampering.
    ///
    /// Contract: no checkpoint returned commits to more entries than the head returned, unless the
    /// ledger really lost entries. Stores that can read in one transaction override this. The
    /// provided implementation reads the checkpoints first and the head second, which keeps the
    /// contract without a transaction: a checkpoint is only ever signed over a head that was
    /// already committed, and heads only grow, so the head read afterwards covers it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Corrupt`].
    async fn head_and_checkpoints(
        &self,
        tenant: &TenantId,
    ) -> Result<(TreeHead, Vec<StoredCheckpoint>), StoreError> {
        let checkpoints = self.checkpoints(tenant).await?;
        let head = self.tree_head(tenant).await?;
        Ok((head, checkpoints))
    }

    /// Every tenant that has at least one entry. The one read that spans tenants: stores keep it
    /// to tenant ids (PostgreSQL: a directory table outside row-level security).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError>;

    /// Up to `limit` entries of `tenant` matching `query`, in `seq` order (descending when
    /// `query.newest_first`), continuing after `query.cursor` (a seq returned earlier).
    ///
    /// The provided implementation scans the ledger page by page and decodes each leaf; stores
    /// with indexed columns override it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Corrupt`] (a leaf that does not decode).
    async fn search(
        &self,
        tenant: &TenantId,
        query: &AuditQuery,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        const PAGE: u64 = 4096;
        let size = self.tree_head(tenant).await?.size;
        let mut found = Vec::new();
        if query.newest_first {
            let mut end = query.cursor.unwrap_or(size).min(size);
            while end > 0 && found.len() < limit {
                let start = end.saturating_sub(PAGE);
                let page = self.entries(tenant, start, (end - start) as usize).await?;
                for e in page.into_iter().rev() {
                    if query.matches_entry(&e)? {
                        found.push(e);
                        if found.len() == limit {
                            break;
                        }
                    }
                }
                end = start;
            }
        } else {
            let mut next = query.cursor.map_or(0, |c| c.saturating_add(1));
            while next < size && found.len() < limit {
                let page = self.entries(tenant, next, PAGE as usize).await?;
                let Some(last) = page.last().map(|e| e.seq) else {
                    break;
                };
                for e in page {
                    if query.matches_entry(&e)? {
                        found.push(e);
                        if found.len() == limit {
                            break;
                        }
                    }
                }
                next = last + 1;
            }
        }
        Ok(found)
    }
}

/// A search over one tenant's audit entries. Every field narrows; the default matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Exact actor.
    pub actor: Option<String>,
    /// Exact action, or a prefix ending in `.` (`model.` matches every model action).
    pub action: Option<String>,
    /// Exact resource type.
    pub resource_type: Option<String>,
    /// Exact resource id.
    pub resource_id: Option<String>,
    /// Exact correlation id.
    pub correlation_id: Option<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
    /// Newest first (descending seq) instead of oldest first.
    pub newest_first: bool,
    /// Continue after this seq (exclusive), in the chosen direction.
    pub cursor: Option<u64>,
}

impl AuditQuery {
    /// Whether a decoded record matches (everything but the cursor).
    pub fn matches(&self, record: &AuditRecord) -> bool {
        let e = record.event();
        let action_ok = self.action.as_deref().is_none_or(|a| {
            if a.ends_with('.') {
                e.action().starts_with(a)
            } else {
                e.action() == a
            }
        });
        action_ok
            && self
                .actor
                .as_deref()
                .is_none_or(|a| e.actor().as_str() == a)
            && self
                .resource_type
                .as_deref()
                .is_none_or(|r| e.resource_type() == r)
            && self
                .resource_id
                .as_deref()
                .is_none_or(|r| e.resource_id() == r)
            && self
                .correlation_id
                .as_deref()
                .is_none_or(|c| e.correlation_id().as_str() == c)
            && self.outcome.is_none_or(|o| e.outcome() == o)
            && self.from.is_none_or(|t| record.recorded_at() >= t)
            && self.to.is_none_or(|t| record.recorded_at() < t)
    }

    /// Decodes a stored entry and matches it.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the leaf does not decode.
    pub fn matches_entry(&self, entry: &StoredEntry) -> Result<bool, StoreError> {
        let record =
            AuditRecord::from_leaf_bytes(&entry.leaf).map_err(|e| StoreError::Corrupt {
                message: format!("entry {}: {e}", entry.seq),
            })?;
        Ok(self.matches(&record))
    }
}

/// One page of a listing: skip `offset` items, return at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Items to skip.
    pub offset: u64,
    /// Most items to return (a store may cap it at 1,000).
    pub limit: u32,
}

impl Page {
    /// The first `limit` items.
    pub const fn first(limit: u32) -> Self {
        Page { offset: 0, limit }
    }
}

/// Which approval requests to list. Every field narrows; the default lists all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalFilter {
    /// Only requests with this stored status.
    pub status: Option<ApprovalStatus>,
    /// Only requests for this subject.
    pub subject: Option<Subject>,
    /// Only requests opened by this actor.
    pub requested_by: Option<ActorId>,
    /// Only requests NOT opened by this actor (an approver's queue: what they may decide).
    pub not_requested_by: Option<ActorId>,
}

impl ApprovalFilter {
    /// Whether `request` passes the filter (the in-memory store uses this; SQL stores translate
    /// the same fields into WHERE clauses).
    pub fn matches(&self, request: &ApprovalRequest) -> bool {
        self.status.is_none_or(|s| request.status() == s)
            && self.subject.as_ref().is_none_or(|s| request.subject() == s)
            && self
                .requested_by
                .as_ref()
                .is_none_or(|a| request.requested_by() == a)
            && self
                .not_requested_by
                .as_ref()
                .is_none_or(|a| request.requested_by() != a)
    }
}

/// An approval request and the stored state of what it names
/// ([`GovernanceStore::approval_with_subject`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalWithSubject {
    /// The request.
    pub request: ApprovalRequest,
    /// Its subject as stored when the request was read.
    pub subject: SubjectState,
}

/// The stored state of an approval request's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectState {
    /// The model version a model request names; `None` if it is not stored.
    Model(Option<Box<ModelVersion>>),
    /// Where the label a prompt-label request names points now; `None` if the label does not
    /// exist yet.
    PromptLabel {
        /// The version the label points to.
        points_at: Option<u32>,
    },
}

/// One state change of a governance command. Applied with its audit records in one transaction.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Mutation {
    /// A new approval request. Conflict if the tenant already has a request with its id.
    InsertApproval(ApprovalRequest),
    /// Replaces an approval request whose stored version is `expected_version` (else Conflict).
    UpdateApproval {
        /// The version the command read.
        expected_version: u64,
        /// The new state (`version == expected_version + 1`).
        request: ApprovalRequest,
    },
    /// A new model version. Conflict if (tenant, name, version) exists.
    InsertModel(ModelVersion),
    /// Replaces a model version whose stored row version is `expected_version` (else Conflict).
    UpdateModel {
        /// The row version the command read.
        expected_version: u64,
        /// The new state.
        model: ModelVersion,
    },
    /// A new prompt version. Conflict if (tenant, name, version) exists; versions never change.
    InsertPromptVersion(PromptVersion),
    /// The one change a stored prompt version allows, a maintenance operation (`airisk keys
    /// seal-existing`): a version stored with a plaintext template (written before sealing
    /// existed) gets its template replaced by the given row's ciphertext and its `sealed` flag
    /// set; nothing else of the row changes (built with [`PromptVersion::sealed_with`]). In the
    /// same transaction the store checks that the stored row is still plaintext (else Conflict)
    /// and that its template's SHA-256 equals its stored `template_sha256` and the given row's
    /// (else Refused); the databases' immutability triggers allow exactly this change and no
    /// other (docs/ENCRYPTION.md, "Sealing existing rows").
    SealPromptVersion(PromptVersion),
    /// Points a label at a version and appends the move to the label history. Conflict unless
    /// the label currently points at `expected_from` (`None`: the label does not exist yet).
    MoveLabel {
        /// Where the command saw the label.
        expected_from: Option<u32>,
        /// The move.
        label_move: LabelMove,
    },
    /// A new wrapped data key of the tenant. Conflict if (tenant, kid) exists.
    InsertDataKey(WrappedDataKey),
    /// Replaces the wrapped text of a live data key (KEK rotation). Conflict if the key is
    /// missing or shredded.
    RewrapDataKey(WrappedDataKey),
    /// Crypto-shredding: erases the wrapped text of every data key of the tenant (and the subject
    /// pseudonym of its subject keys), keeping a tombstone (id, creation time) so values sealed
    /// under it read as erased.
    ShredDataKeys {
        /// The tenant whose keys are destroyed.
        tenant: TenantId,
    },
    /// Crypto-shredding of one data subject: erases the wrapped text and the pseudonym of every
    /// live data key of the tenant whose subject is `subject`, keeping a tombstone (id, creation
    /// time). Matching no key is not an error (the shred is idempotent).
    ShredSubjectKeys {
        /// The tenant.
        tenant: TenantId,
        /// The subject's pseudonym.
        subject: crate::security::data_subject::SubjectPseudonym,
    },
}

/// A governance command's writes: state changes and their audit records, committed together or
/// not at all (invariant 1).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeSet {
    /// The tenant every mutation and event belongs to.
    pub tenant: TenantId,
    /// State changes, applied in order.
    pub mutations: Vec<Mutation>,
    /// Audit events, appended to the tenant's ledger in order.
    pub audit: Vec<AuditEvent>,
}

impl Mutation {
    /// The tenant the mutation writes to.
    pub fn tenant(&self) -> &TenantId {
        match self {
            Mutation::InsertApproval(r) | Mutation::UpdateApproval { request: r, .. } => {
                r.tenant_id()
            }
            Mutation::InsertModel(m) | Mutation::UpdateModel { model: m, .. } => m.tenant_id(),
            Mutation::InsertPromptVersion(p) | Mutation::SealPromptVersion(p) => p.tenant_id(),
            Mutation::MoveLabel { label_move, .. } => &label_move.tenant_id,
            Mutation::InsertDataKey(k) | Mutation::RewrapDataKey(k) => &k.tenant_id,
            Mutation::ShredDataKeys { tenant } | Mutation::ShredSubjectKeys { tenant, .. } => {
                tenant
            }
        }
    }
}

impl ChangeSet {
    /// Checks that every mutation and event belongs to the change set's tenant.
    ///
    /// # Errors
    /// [`StoreError::Refused`] naming the first stranger.
    pub fn check_tenant(&self) -> Result<(), StoreError> {
        let stranger = self
            .mutations
            .iter()
            .map(Mutation::tenant)
            .chain(self.audit.iter().map(AuditEvent::tenant_id))
            .find(|t| *t != &self.tenant);
        match stranger {
            Some(t) => Err(StoreError::Refused {
                message: format!(
                    "a change set of tenant {} holds a write for tenant {t}",
                    self.tenant
                ),
            }),
            None => Ok(()),
        }
    }

    /// Audit records only (denials, deployment decisions).
    pub fn audit_only(tenant: TenantId, audit: Vec<AuditEvent>) -> Self {
        ChangeSet {
            tenant,
            mutations: Vec::new(),
            audit,
        }
    }
}

/// Storage of the governance state, with a unit of work that commits state and audit together.
///
/// Contract for every implementation:
/// * [`GovernanceStore::commit`] applies every mutation and appends every audit event of the change
///   set in ONE transaction; if any mutation conflicts or the audit append fails, nothing of it is
///   stored and the error is returned ([`StoreError::Conflict`] for a uniqueness or version
///   clash);
/// * every mutation and event of a change set belongs to `ChangeSet::tenant` (a store refuses one
///   that does not, with [`StoreError::Refused`]);
/// * every read is scoped by tenant: another tenant's rows are invisible.
#[async_trait::async_trait]
pub trait GovernanceStore: Send + Sync + std::fmt::Debug {
    /// Commits a change set atomically; returns the receipts of its audit events, in order.
    ///
    /// # Errors
    /// [`StoreError::Conflict`], [`StoreError::Refused`], [`StoreError::Unavailable`]; in every
    /// case nothing was written.
    async fn commit(&self, change: ChangeSet) -> Result<Vec<AuditReceipt>, StoreError>;

    /// One approval request.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Corrupt`].
    async fn approval(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<ApprovalRequest>, StoreError>;

    /// One approval request together with the stored state of its subject, read in one go
    /// (PostgreSQL: one statement; SQLite: one read transaction): what deciding the request
    /// needs. `None` when `tenant` has no request `id` (another tenant's request included).
    ///
    /// Contract: for a model request, [`SubjectState::Model`] holds the model version the
    /// request names (`None` if it is not stored); for a prompt-label request,
    /// [`SubjectState::PromptLabel`] holds where that label of that prompt points now. Both
    /// parts come from one snapshot.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Corrupt`].
    async fn approval_with_subject(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<ApprovalWithSubject>, StoreError>;

    /// One model version together with its approval request (the one its
    /// `approval_request_id` names), read in one go like
    /// [`GovernanceStore::approval_with_subject`]: what deciding the model needs. The answer's
    /// subject is [`SubjectState::Model`] holding the model. `None` when `tenant` has no such
    /// model version.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`]; [`StoreError::Corrupt`], also when the model's request is
    /// not stored.
    async fn model_with_approval(
        &self,
        tenant: &TenantId,
        name: &ModelName,
        version: &ModelVersionTag,
    ) -> Result<Option<ApprovalWithSubject>, StoreError>;

    /// Approval requests matching `filter`, oldest first: in the order their inserts committed
    /// (creation timestamps can tie).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Corrupt`].
    async fn approvals(
        &self,
        tenant: &TenantId,
        filter: &ApprovalFilter,
        page: Page,
    ) -> Result<Vec<ApprovalRequest>, StoreError>;

    /// One model version.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Corrupt`].
    async fn model(
        &self,
        tenant: &TenantId,
        name: &ModelName,
        version: &ModelVersionTag,
    ) -> Result<Option<ModelVersion>, StoreError>;

    /// Every version of a model, in registration (commit) order.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Corrupt`].
    async fn model_versions(
        &self,
        tenant: &TenantId,
        name: &ModelName,
    ) -> Result<Vec<ModelVersion>, StoreError>;

    /// Every version of a prompt, in version order.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Corrupt`].
    async fn prompt_versions(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<PromptVersion>, StoreError>;

    /// Where each label of a prompt points, by label name.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn prompt_labels(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<(String, u32)>, StoreError>;

    /// Every label move of a prompt, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Corrupt`].
    async fn label_moves(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<LabelMove>, StoreError>;

    /// Every version of a prompt, in version order, and the tenant's data keys (as
    /// [`GovernanceStore::data_keys`] gives them), read together: what a sealing registry needs
    /// to open the versions. A store that can answers both from one read transaction (one round
    /// trip to its readers instead of two, and one snapshot, so a shred committed meanwhile is
    /// seen by both or neither); the default reads them one after the other. The keys are always
    /// read, even for a prompt with no sealed version: a registry seals a new version under the
    /// newest key of this list, and an empty list would make it create a needless new data key.
    ///
    /// # Errors
    /// As [`GovernanceStore::prompt_versions`] and [`GovernanceStore::data_keys`].
    async fn prompt_versions_and_data_keys(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<(Vec<PromptVersion>, Vec<WrappedDataKey>), StoreError> {
        let versions = self.prompt_versions(tenant, name).await?;
        let keys = self.data_keys(tenant).await?;
        Ok((versions, keys))
    }

    /// Up to `limit` prompt versions of the tenant still stored with a plaintext template
    /// (written before sealing existed), by name then version: what `airisk keys seal-existing`
    /// seals in place.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Corrupt`]; [`StoreError::Refused`] by default.
    async fn unsealed_prompt_versions(
        &self,
        tenant: &TenantId,
        limit: u32,
    ) -> Result<Vec<PromptVersion>, StoreError> {
        let _ = (tenant, limit);
        Err(StoreError::Refused {
            message: "this store cannot list unsealed prompt versions".to_owned(),
        })
    }

    /// Every data key of the tenant, live or shredded, oldest first (see
    /// [`crate::security::envelope`]). A store without a data-key table refuses, so sealing fails
    /// closed.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Corrupt`]; [`StoreError::Refused`] by default.
    async fn data_keys(&self, tenant: &TenantId) -> Result<Vec<WrappedDataKey>, StoreError> {
        let _ = tenant;
        Err(StoreError::Refused {
            message: "this store keeps no data keys".to_owned(),
        })
    }

    /// Claims a signed webhook delivery for processing: the replay memory every instance of the
    /// service shares. First deletes the tenant's claims whose `until` is before `now` (the
    /// memory is bounded by the senders' timestamp window), then stores `claim` unless a claim
    /// for the same `(tenant, source, delivery_id)` is still there. Atomic: of two concurrent
    /// claims of one delivery exactly one returns `true`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`]; [`StoreError::Refused`] by default (a store without the
    /// table), so a receiver fails closed rather than accepting deliveries without replay
    /// protection.
    async fn claim_delivery(
        &self,
        claim: &DeliveryClaim,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let _ = (claim, now);
        Err(StoreError::Refused {
            message: "this store keeps no webhook deliveries".to_owned(),
        })
    }

    /// Sets the `until` of a stored claim (a processed delivery is remembered for the whole
    /// timestamp window). A claim that is not there is stored.
    ///
    /// # Errors
    /// As [`GovernanceStore::claim_delivery`].
    async fn settle_delivery(&self, claim: &DeliveryClaim) -> Result<(), StoreError> {
        let _ = claim;
        Err(StoreError::Refused {
            message: "this store keeps no webhook deliveries".to_owned(),
        })
    }

    /// Deletes a claim (its processing failed, so the sender's retry with the same id must be
    /// processed). Deleting a claim that is not there is not an error.
    ///
    /// # Errors
    /// As [`GovernanceStore::claim_delivery`].
    async fn release_delivery(&self, claim: &DeliveryClaim) -> Result<(), StoreError> {
        let _ = claim;
        Err(StoreError::Refused {
            message: "this store keeps no webhook deliveries".to_owned(),
        })
    }
}

/// Longest webhook source name and delivery id a store keeps ([`DeliveryClaim`]).
pub const DELIVERY_FIELD_MAX_LEN: usize = 128;

/// A claim on one signed webhook delivery in the shared replay memory
/// ([`GovernanceStore::claim_delivery`]). Not an audit record: claims are pruned once their
/// `until` has passed, when the sender's timestamp window refuses the delivery anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryClaim {
    /// The tenant the sender belongs to (claims are tenant-scoped like every row).
    pub tenant: TenantId,
    /// The sender, e.g. `mlflow:risk` (1 to [`DELIVERY_FIELD_MAX_LEN`] bytes).
    pub source: String,
    /// The sender's delivery id (1 to [`DELIVERY_FIELD_MAX_LEN`] bytes).
    pub delivery_id: String,
    /// Until when the claim refuses the same delivery.
    pub until: DateTime<Utc>,
}

impl DeliveryClaim {
    /// Checks the field lengths.
    ///
    /// # Errors
    /// [`StoreError::Refused`] for an empty or overlong source or delivery id.
    pub fn check(&self) -> Result<(), StoreError> {
        for (what, value) in [("source", &self.source), ("delivery id", &self.delivery_id)] {
            if value.is_empty() || value.len() > DELIVERY_FIELD_MAX_LEN {
                return Err(StoreError::Refused {
                    message: format!(
                        "a webhook delivery's {what} must be 1 to {DELIVERY_FIELD_MAX_LEN} bytes"
                    ),
                });
            }
        }
        Ok(())
    }
}

//! Ports: the traits through which the core reaches the outside world. Adapters (stores, clocks)
//! implement them in other crates; services receive them as `Arc<dyn …>` values, never globals.

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::governance::audit_record::{AuditEvent, AuditReceipt};
use crate::ledger::{Hash, NodeId};
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
    /// The store could not be reached or failed to complete the operation; nothing changed.
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
    /// When it was signed.
    pub signed_at: DateTime<Utc>,
}

/// The audit ledger's storage. Append-only: there is no update and no delete.
///
/// Contract for every implementation:
/// * each tenant's entries have `seq` 0, 1, 2, … with no gaps, in append order, even under
///   concurrent appends from many tasks or processes;
/// * an append either stores every event of the call (entries, their perfect-subtree nodes and the
///   new tree head) or nothing, and returns only once the data is durable;
/// * every read is scoped by tenant.
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

    /// Every tenant that has at least one entry.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError>;
}

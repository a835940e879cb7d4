//! # airisk-store-sqlite
//!
//! The embedded default store of the ai-risk-engine: one SQLite file holding every tenant's
//! tamper-evident audit ledger, behind the [`AuditRepository`] port of `airisk-core`, and the
//! governance state behind [`GovernanceStore`], whose change sets commit through the same writer
//! and in the same transaction as their audit records.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use airisk_core::ports::{AuditRepository, SystemClock};
//! use airisk_store_sqlite::SqliteStore;
//!
//! let store = SqliteStore::open("sqlite:///var/lib/airisk/audit.db", Arc::new(SystemClock))?;
//! let repo: Arc<dyn AuditRepository> = Arc::new(store);
//! # let _ = repo;
//! # Ok(()) }
//! ```
//!
//! ## Durability: a receipt means the record is on disk
//!
//! The database runs in WAL mode with `synchronous=FULL`: every commit fsyncs the write-ahead log
//! before it returns, and [`AuditRepository::append`] answers only after its commit returned. A
//! power cut after a receipt cannot lose the record; a power cut before it loses the whole request
//! (appends are atomic), never part of one.
//!
//! ## Group commit: one writer thread, one transaction and one fsync per batch
//!
//! SQLite allows one writer at a time, so the store has exactly one: a dedicated OS thread that
//! owns the only write connection. `append` sends its events to that thread over a channel and
//! waits on a oneshot reply. The thread takes everything that queued while its previous commit
//! was being fsynced (up to [`SqliteOptions::max_batch_events`] events) and applies it in one
//! `BEGIN IMMEDIATE … COMMIT`: a batch of 64 callers costs one fsync, not 64, so durability does
//! not cost throughput. A batch is applied whole; if one of its requests fails, it is rolled
//! back and applied again with each request under its own `SAVEPOINT`, so the failing request is
//! rolled back and answered alone while the others commit (a lone request needs no savepoint:
//! its failure rolls the transaction back); if the `COMMIT` itself fails,
//! every request of the batch gets the error and nothing of it is stored. A caller that stops
//! waiting (a dropped future) does not withdraw its request: once sent, it commits or fails with
//! its batch.
//!
//! Appends per tenant are therefore serialised: the writer gives each event the next `seq` of its
//! tenant (gapless from 0) from a cached tree head (size and frontier), stores the entry, the
//! perfect subtree nodes the entry completes, and the new head, in the same transaction. The time
//! of every record in a batch is one reading of the injected [`Clock`]. If another process
//! commits to the same file, SQLite's `data_version` changes and the writer reloads its heads, so
//! several processes may share a file and still get gapless sequences.
//!
//! ## Reads
//!
//! Reads run on tokio's blocking threads over a small pool of read-only connections, each query
//! inside one read transaction (one snapshot), concurrently with the writer (WAL). Inclusion and
//! consistency proofs never rehash the log: `nodes` looks up the perfect subtree hashes on one
//! snapshot (level 0 from the entries' leaf hashes, levels 1–3 recomputed from the 2 to 8 leaf
//! hashes under them, level 4 and up from `audit_nodes`, which stores only those), a few dozen
//! point lookups and at most three short range scans per proof.
//!
//! ## The trigger wall, and what it does not stop
//!
//! Triggers refuse `UPDATE` and `DELETE` on the entries, nodes and checkpoints tables, refuse an
//! `INSERT` over an existing key (which `INSERT OR REPLACE` would otherwise turn into a silent
//! delete), and let a tree head only grow. A refusal surfaces as [`StoreError::Refused`] with the
//! message `audit ledger is append-only`. The wall stops mistakes, buggy software and SQL
//! injection; it does not stop someone who holds the file, who can drop the triggers. That is why
//! the ledger is an RFC 6962 Merkle tree with signed checkpoints: `AuditLogger::verify` recomputes
//! everything from the rows and names the first entry that was changed, removed or moved.
//!
//! ## Why rusqlite and not sqlx
//!
//! The design first named sqlx. This crate uses rusqlite on purpose: a single writer thread owning
//! one connection is the natural shape for SQLite's single-writer model and for group commit; reads
//! of millions of rows must be fast for `verify` (sqlx's SQLite driver ships every row through a
//! channel to an async task); and there are no compile-time query macros needing offline data.
//!
//! ## Schema
//!
//! Plain SQL migrations in `migrations/`, embedded in the binary, applied in order inside one
//! transaction at [`SqliteStore::open`] and recorded in `schema_migrations`. A file migrated by a
//! newer build is refused with [`OpenError::NewerSchema`]. Every table is keyed by `tenant_id`
//! first. See `docs/AUDIT_STORAGE.md` for the tables, the measured figures and the threat model.
#![deny(missing_docs)]

mod connection;
mod deliveries;
mod error;
mod governance;
mod read;
mod write;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use airisk_core::governance::approval_workflow::ApprovalRequest;
use airisk_core::governance::audit_record::{AuditEvent, AuditReceipt, format_timestamp};
use airisk_core::governance::model_registry::{ModelName, ModelVersion, ModelVersionTag};
use airisk_core::governance::prompt_registry::{LabelMove, PromptName, PromptVersion};
use airisk_core::ledger::{Hash, NodeId};
use airisk_core::ports::{
    ApprovalFilter, ApprovalWithSubject, AuditRepository, ChangeSet, Clock, EntryPage,
    GovernanceStore, Page, StoreError, StoredCheckpoint, StoredEntry, TreeHead,
};
use airisk_core::security::tenant_context::TenantId;
use async_trait::async_trait;
use tokio::sync::oneshot;
use uuid::Uuid;

#[doc(hidden)]
pub use connection::ConnectionSettings;
pub use error::OpenError;

use crate::read::ReadPool;
use crate::write::{Command, Writer};

/// Tuning knobs of a [`SqliteStore`]. The defaults suit a small server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Most events the writer puts in one transaction (one fsync). A single request larger than
    /// this still commits whole, alone. Default 4096.
    pub max_batch_events: usize,
    /// Read-only connections kept open between reads. Default 4.
    pub max_idle_readers: usize,
    /// How long a connection waits for a lock another process holds before the operation fails
    /// with [`StoreError::Unavailable`]. Default 10 s.
    pub busy_timeout: std::time::Duration,
    /// Bytes of the database file a whole-ledger scan (`verify` reading its pages) maps into
    /// memory instead of copying each page in with `pread`; 0 turns it off. The mapping exists
    /// only while a page is read and is released before the connection goes back to the pool,
    /// so other reads and the resident memory between scans are unchanged. SQLite caps it at
    /// 2 GiB; beyond what is mapped, pages are read as usual. With it, an I/O error while a
    /// mapped page is read (a failing disk, or the file truncated under the process by someone
    /// else) stops the process with `SIGBUS` instead of failing the read. Default 1 GiB.
    pub scan_mmap_bytes: u64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_batch_events: 4096,
            max_idle_readers: 4,
            busy_timeout: std::time::Duration::from_secs(10),
            scan_mmap_bytes: 1 << 30,
        }
    }
}

/// The SQLite audit store: a file, its writer thread and a pool of readers.
///
/// Dropping it stops the writer after the batch in flight (callers still waiting are answered)
/// and closes every connection; [`SqliteStore::close`] does the same and reports a writer that
/// died.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    /// Read-locked to send (std's `Sender` is `Sync`), write-locked once, to drop it at shutdown.
    commands: RwLock<Option<Sender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<ReadPool>,
    /// The writer connection's settings, read back from it once configured and migrated.
    writer_settings: connection::ConnectionSettings,
}

impl SqliteStore {
    /// Opens (creating if needed, with its directory) the database at `location` — a plain path,
    /// `sqlite:path` or `sqlite://path` (`sqlite:///abs/path` for an absolute one) — migrates it,
    /// and starts its writer thread. Records are stamped with `clock`.
    ///
    /// This blocks while the file is opened and migrated; call it at start-up (or from
    /// `spawn_blocking`).
    ///
    /// # Errors
    /// [`OpenError::InvalidLocation`] for `:memory:` or an empty path, [`OpenError::CreateDir`],
    /// [`OpenError::NewerSchema`] for a file migrated by a newer build, [`OpenError::Migration`],
    /// or [`OpenError::Store`] if SQLite cannot open or configure the file. Every variant converts
    /// into [`StoreError`] with `?`.
    pub fn open(location: &str, clock: Arc<dyn Clock>) -> Result<Self, OpenError> {
        Self::open_with(location, clock, SqliteOptions::default())
    }

    /// [`SqliteStore::open`] with explicit [`SqliteOptions`].
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub fn open_with(
        location: &str,
        clock: Arc<dyn Clock>,
        options: SqliteOptions,
    ) -> Result<Self, OpenError> {
        let path = connection::parse_location(location)?;
        connection::ensure_parent_dir(&path)?;
        let mut conn = connection::open_writer(&path, options.busy_timeout)?;
        connection::migrate(&mut conn, &format_timestamp(&clock.now()))?;
        let writer_settings = connection::read_settings(&conn, "writer")?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(conn, clock, options.max_batch_events);
        let handle = std::thread::Builder::new()
            .name("airisk-sqlite-writer".to_owned())
            .spawn(move || writer.run(&rx))
            .map_err(|e| {
                OpenError::Store(StoreError::Unavailable {
                    message: format!("cannot start the sqlite writer thread: {e}"),
                })
            })?;
        Ok(SqliteStore {
            readers: Arc::new(ReadPool::new(
                path.clone(),
                options.max_idle_readers,
                options.busy_timeout,
                options.scan_mmap_bytes,
            )),
            path,
            commands: RwLock::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            writer_settings,
        })
    }

    /// The settings read back from the writer connection and, deduplicated, from every reader
    /// connection opened so far (the writer's first). For the durability tests.
    #[doc(hidden)]
    pub fn connection_settings(&self) -> Vec<ConnectionSettings> {
        let mut all = vec![self.writer_settings.clone()];
        all.extend(self.readers.settings_seen());
        all
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rebuilds the database file at `path`, which no store may have open: `VACUUM` with
    /// `secure_delete`, then `wal_checkpoint(TRUNCATE)`, so neither the file's free pages nor old
    /// WAL frames keep bytes of rows changed or deleted before (used after `airisk keys
    /// seal-existing`: the plaintext a sealed template replaced is then gone from both).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the file cannot be opened or is busy (another process has
    /// it open in a transaction).
    pub fn compact_closed_file(path: &Path) -> Result<(), StoreError> {
        let fail = |e: rusqlite::Error| StoreError::Unavailable {
            message: format!("could not compact {}: {e}", path.display()),
        };
        let conn = rusqlite::Connection::open(path).map_err(fail)?;
        conn.execute_batch(
            "PRAGMA busy_timeout = 10000;
             PRAGMA secure_delete = ON;
             PRAGMA wal_checkpoint(TRUNCATE);
             VACUUM;
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .map_err(fail)?;
        conn.close().map_err(|(_, e)| fail(e))
    }

    /// Every schema version this build knows, in order (what a migrated file records).
    #[doc(hidden)]
    pub fn schema_versions() -> Vec<i64> {
        connection::schema_versions()
    }

    /// The newest schema version this build knows (the number of the last migration).
    pub fn schema_version() -> i64 {
        connection::latest_schema_version()
    }

    /// Stops accepting writes, closes the idle readers, and waits for the writer thread to
    /// finish the batch in flight and close its connection. Blocks for at most one batch.
    ///
    /// The writer's connection closes last, so unless another process has the file open, SQLite
    /// checkpoints the WAL into the database file and removes the `-wal` file: after `close` the
    /// database file alone holds every committed record (a read-only reader closing last could
    /// not, and would leave the newest commits in the `-wal` beside it).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the writer thread had died.
    pub fn close(self) -> Result<(), StoreError> {
        self.shutdown()
    }

    fn shutdown(&self) -> Result<(), StoreError> {
        // Readers first, so that the writer's connection is the file's last (see `close`).
        self.readers.close_idle();
        // Dropping the only sender ends the writer's loop once the queue is empty.
        drop(
            self.commands
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match handle {
            Some(handle) => handle.join().map_err(|_| StoreError::Unavailable {
                message: "the sqlite writer thread panicked".to_owned(),
            }),
            None => Ok(()),
        }
    }

    fn send(&self, command: Command) -> Result<(), StoreError> {
        let guard = self.commands.read().unwrap_or_else(PoisonError::into_inner);
        let sender = guard.as_ref().ok_or_else(writer_gone)?;
        sender.send(command).map_err(|_| writer_gone())
    }

    async fn delivery(&self, op: deliveries::DeliveryOp) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Delivery { op, reply })?;
        answer.await.map_err(|_| writer_gone())?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "sqlite store shut down uncleanly");
        }
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable {
        message: "the sqlite writer is not running".to_owned(),
    }
}

#[async_trait]
impl AuditRepository for SqliteStore {
    async fn append(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditReceipt>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.send(Command::Append { events, reply })?;
        answer.await.map_err(|_| writer_gone())?
    }

    async fn tree_head(&self, tenant: &TenantId) -> Result<TreeHead, StoreError> {
        let tenant = tenant.clone();
        self.readers
            .read(move |tx| read::tree_head(tx, &tenant))
            .await
    }

    async fn entries(
        &self,
        tenant: &TenantId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let tenant = tenant.clone();
        self.readers
            .read(move |tx| read::entries(tx, &tenant, from_seq, limit))
            .await
    }

    async fn entry_page(
        &self,
        tenant: &TenantId,
        from_seq: u64,
        limit: usize,
    ) -> Result<EntryPage, StoreError> {
        if limit == 0 {
            return Ok(EntryPage::default());
        }
        let tenant = tenant.clone();
        self.readers
            .scan(move |tx| read::entry_page(tx, &tenant, from_seq, limit))
            .await
    }

    async fn nodes(
        &self,
        tenant: &TenantId,
        ids: &[NodeId],
    ) -> Result<Vec<(NodeId, Hash)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let tenant = tenant.clone();
        let ids = ids.to_vec();
        self.readers
            .read(move |tx| read::nodes(tx, &tenant, &ids))
            .await
    }

    async fn add_checkpoint(
        &self,
        tenant: &TenantId,
        checkpoint: StoredCheckpoint,
    ) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Checkpoint {
            tenant: tenant.clone(),
            checkpoint,
            reply,
        })?;
        answer.await.map_err(|_| writer_gone())?
    }

    async fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let tenant = tenant.clone();
        self.readers
            .read(move |tx| read::checkpoints(tx, &tenant, false))
            .await
    }

    async fn head_and_checkpoints(
        &self,
        tenant: &TenantId,
    ) -> Result<(TreeHead, Vec<StoredCheckpoint>), StoreError> {
        // One read transaction: one WAL snapshot for both.
        let tenant = tenant.clone();
        self.readers
            .read(move |tx| {
                let checkpoints = read::checkpoints(tx, &tenant, false)?;
                Ok((read::tree_head(tx, &tenant)?, checkpoints))
            })
            .await
    }

    async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let tenant = tenant.clone();
        let mut latest = self
            .readers
            .read(move |tx| read::checkpoints(tx, &tenant, true))
            .await?;
        Ok(latest.pop())
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        self.readers.read(read::tenants).await
    }
}

#[async_trait]
impl GovernanceStore for SqliteStore {
    #[tracing::instrument(
        name = "store.commit",
        skip_all,
        fields(tenant_id = %change.tenant, mutations = change.mutations.len(), audit_records = change.audit.len())
    )]
    async fn commit(&self, change: ChangeSet) -> Result<Vec<AuditReceipt>, StoreError> {
        change.check_tenant()?;
        if change.mutations.is_empty() && change.audit.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.send(Command::Commit { change, reply })?;
        answer.await.map_err(|_| writer_gone())?
    }

    async fn approval(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<ApprovalRequest>, StoreError> {
        let tenant = tenant.clone();
        self.readers
            .read(move |tx| governance::approval(tx, &tenant, id))
            .await
    }

    async fn approval_with_subject(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<ApprovalWithSubject>, StoreError> {
        let tenant = tenant.clone();
        self.readers
            .read(move |tx| governance::approval_with_subject(tx, &tenant, id))
            .await
    }

    async fn model_with_approval(
        &self,
        tenant: &TenantId,
        name: &ModelName,
        version: &ModelVersionTag,
    ) -> Result<Option<ApprovalWithSubject>, StoreError> {
        let (tenant, name, version) = (tenant.clone(), name.to_string(), version.to_string());
        self.readers
            .read(move |tx| governance::model_with_approval(tx, &tenant, &name, &version))
            .await
    }

    async fn approvals(
        &self,
        tenant: &TenantId,
        filter: &ApprovalFilter,
        page: Page,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        let tenant = tenant.clone();
        let filter = filter.clone();
        self.readers
            .read(move |tx| governance::approvals(tx, &tenant, &filter, page))
            .await
    }

    async fn model(
        &self,
        tenant: &TenantId,
        name: &ModelName,
        version: &ModelVersionTag,
    ) -> Result<Option<ModelVersion>, StoreError> {
        let (tenant, name, version) = (tenant.clone(), name.to_string(), version.to_string());
        self.readers
            .read(move |tx| governance::model(tx, &tenant, &name, &version))
            .await
    }

    async fn model_versions(
        &self,
        tenant: &TenantId,
        name: &ModelName,
    ) -> Result<Vec<ModelVersion>, StoreError> {
        let (tenant, name) = (tenant.clone(), name.to_string());
        self.readers
            .read(move |tx| governance::model_versions(tx, &tenant, &name))
            .await
    }

    async fn prompt_versions(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<PromptVersion>, StoreError> {
        let (tenant, name) = (tenant.clone(), name.to_string());
        self.readers
            .read(move |tx| governance::prompt_versions(tx, &tenant, &name))
            .await
    }

    async fn prompt_labels(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        let (tenant, name) = (tenant.clone(), name.to_string());
        self.readers
            .read(move |tx| governance::prompt_labels(tx, &tenant, &name))
            .await
    }

    async fn label_moves(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<LabelMove>, StoreError> {
        let (tenant, name) = (tenant.clone(), name.to_string());
        self.readers
            .read(move |tx| governance::label_moves(tx, &tenant, &name))
            .await
    }

    async fn claim_delivery(
        &self,
        claim: &airisk_core::ports::DeliveryClaim,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        claim.check()?;
        self.delivery(deliveries::DeliveryOp::Claim(claim.clone(), now))
            .await
    }

    async fn settle_delivery(
        &self,
        claim: &airisk_core::ports::DeliveryClaim,
    ) -> Result<(), StoreError> {
        claim.check()?;
        self.delivery(deliveries::DeliveryOp::Settle(claim.clone()))
            .await
            .map(|_| ())
    }

    async fn release_delivery(
        &self,
        claim: &airisk_core::ports::DeliveryClaim,
    ) -> Result<(), StoreError> {
        self.delivery(deliveries::DeliveryOp::Release(claim.clone()))
            .await
            .map(|_| ())
    }

    async fn prompt_versions_and_data_keys(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<
        (
            Vec<PromptVersion>,
            Vec<airisk_core::security::envelope::WrappedDataKey>,
        ),
        StoreError,
    > {
        let (tenant, name) = (tenant.clone(), name.to_string());
        // One trip to a reader and one snapshot for both.
        self.readers
            .read(move |tx| {
                Ok((
                    governance::prompt_versions(tx, &tenant, &name)?,
                    governance::data_keys(tx, &tenant)?,
                ))
            })
            .await
    }

    async fn unsealed_prompt_versions(
        &self,
        tenant: &TenantId,
        limit: u32,
    ) -> Result<Vec<PromptVersion>, StoreError> {
        let tenant = tenant.clone();
        self.readers
            .read(move |tx| governance::unsealed_prompt_versions(tx, &tenant, limit))
            .await
    }

    async fn data_keys(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<airisk_core::security::envelope::WrappedDataKey>, StoreError> {
        let tenant = tenant.clone();
        self.readers
            .read(move |tx| governance::data_keys(tx, &tenant))
            .await
    }
}

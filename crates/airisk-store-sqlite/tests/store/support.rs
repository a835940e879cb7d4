//! A temporary database per test, and realistic events.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use airisk_core::governance::audit_record::{AuditEvent, Outcome};
use airisk_core::ledger::{Hash, NodeId};
use airisk_core::ports::{
    AuditRepository, Clock, StoreError, StoredCheckpoint, StoredEntry, SystemClock, TreeHead,
};
use airisk_core::request::CorrelationId;
use airisk_core::security::tenant_context::{ActorId, TenantId};
use airisk_store_sqlite::SqliteStore;
use serde_json::json;
use uuid::Uuid;

/// A directory under the system's temp dir, removed (with its database) when dropped.
#[derive(Debug)]
pub struct TempDb {
    dir: PathBuf,
}

impl TempDb {
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "airisk-store-sqlite-{}-{}-{}",
            std::process::id(),
            Uuid::now_v7().simple(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDb { dir }
    }

    /// The database file (inside a directory that does not exist yet, so `open` must create it).
    pub fn path(&self) -> PathBuf {
        self.dir.join("data").join("audit.db")
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path().display())
    }

    pub fn open(&self) -> SqliteStore {
        self.open_with_clock(Arc::new(SystemClock))
    }

    pub fn open_with_clock(&self, clock: Arc<dyn Clock>) -> SqliteStore {
        SqliteStore::open(&self.url(), clock).unwrap()
    }

    /// A raw connection that bypasses the store, as an operator (or an attacker) with the file.
    pub fn raw(&self) -> rusqlite::Connection {
        raw(&self.path())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn raw(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn
}

pub fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

/// A realistic record (about 400 bytes of leaf) for `tenant`, numbered `n`.
pub fn event(tenant_id: &str, n: u64) -> AuditEvent {
    let metadata = json!({
        "model_version": format!("2.{}.0", n % 7),
        "artifact_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "risk_tier": "high",
    });
    AuditEvent::new(
        Uuid::now_v7(),
        tenant(tenant_id),
        ActorId::parse("alice.approver@bank.example").unwrap(),
        "model.approve",
        Outcome::Success,
        "model",
        &format!("credit-risk-pd-{n}"),
        Some("four-eyes approval after the validation review".to_owned()),
        CorrelationId::generate(),
        metadata.as_object().cloned(),
    )
    .unwrap()
}

/// Appends `count` events to `tenant_id`, one call each, and returns their seqs.
pub async fn append_n(store: &dyn AuditRepository, tenant_id: &str, count: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    for n in 0..count {
        let receipts = store.append(vec![event(tenant_id, n)]).await.unwrap();
        seqs.extend(receipts.iter().map(|r| r.seq));
    }
    seqs
}

/// A store that owns its temporary file, for factories that hand out only the store.
#[derive(Debug)]
pub struct TempStore {
    // Field order matters: the store closes before its directory is removed.
    store: SqliteStore,
    _db: TempDb,
}

impl TempStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let db = TempDb::new();
        TempStore {
            store: db.open_with_clock(clock),
            _db: db,
        }
    }
}

#[async_trait::async_trait]
impl AuditRepository for TempStore {
    async fn append(
        &self,
        events: Vec<AuditEvent>,
    ) -> Result<Vec<airisk_core::governance::audit_record::AuditReceipt>, StoreError> {
        self.store.append(events).await
    }
    async fn tree_head(&self, tenant: &TenantId) -> Result<TreeHead, StoreError> {
        self.store.tree_head(tenant).await
    }
    async fn entries(
        &self,
        tenant: &TenantId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        self.store.entries(tenant, from_seq, limit).await
    }
    async fn nodes(
        &self,
        tenant: &TenantId,
        ids: &[NodeId],
    ) -> Result<Vec<(NodeId, Hash)>, StoreError> {
        self.store.nodes(tenant, ids).await
    }
    async fn add_checkpoint(
        &self,
        tenant: &TenantId,
        checkpoint: StoredCheckpoint,
    ) -> Result<(), StoreError> {
        self.store.add_checkpoint(tenant, checkpoint).await
    }
    async fn head_and_checkpoints(
        &self,
        tenant: &TenantId,
    ) -> Result<(TreeHead, Vec<StoredCheckpoint>), StoreError> {
        self.store.head_and_checkpoints(tenant).await
    }

    async fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.store.checkpoints(tenant).await
    }
    async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.store.latest_checkpoint(tenant).await
    }
    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        self.store.tenants().await
    }
}

#[async_trait::async_trait]
impl airisk_core::ports::GovernanceStore for TempStore {
    async fn commit(
        &self,
        change: airisk_core::ports::ChangeSet,
    ) -> Result<Vec<airisk_core::governance::audit_record::AuditReceipt>, StoreError> {
        airisk_core::ports::GovernanceStore::commit(&self.store, change).await
    }
    async fn approval(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<airisk_core::governance::approval_workflow::ApprovalRequest>, StoreError>
    {
        self.store.approval(tenant, id).await
    }
    async fn approvals(
        &self,
        tenant: &TenantId,
        filter: &airisk_core::ports::ApprovalFilter,
        page: airisk_core::ports::Page,
    ) -> Result<Vec<airisk_core::governance::approval_workflow::ApprovalRequest>, StoreError> {
        self.store.approvals(tenant, filter, page).await
    }
    async fn model(
        &self,
        tenant: &TenantId,
        name: &str,
        version: &str,
    ) -> Result<Option<airisk_core::governance::model_registry::ModelVersion>, StoreError> {
        self.store.model(tenant, name, version).await
    }
    async fn model_versions(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Vec<airisk_core::governance::model_registry::ModelVersion>, StoreError> {
        self.store.model_versions(tenant, name).await
    }
    async fn prompt_versions(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Vec<airisk_core::governance::prompt_registry::PromptVersion>, StoreError> {
        self.store.prompt_versions(tenant, name).await
    }
    async fn prompt_labels(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        self.store.prompt_labels(tenant, name).await
    }
    async fn label_moves(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Vec<airisk_core::governance::prompt_registry::LabelMove>, StoreError> {
        self.store.label_moves(tenant, name).await
    }

    async fn data_keys(
        &self,
        tenant: &airisk_core::security::tenant_context::TenantId,
    ) -> Result<Vec<airisk_core::security::envelope::WrappedDataKey>, airisk_core::ports::StoreError>
    {
        self.store.data_keys(tenant).await
    }
    async fn claim_delivery(
        &self,
        claim: &airisk_core::ports::DeliveryClaim,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, airisk_core::ports::StoreError> {
        self.store.claim_delivery(claim, now).await
    }
    async fn settle_delivery(
        &self,
        claim: &airisk_core::ports::DeliveryClaim,
    ) -> Result<(), airisk_core::ports::StoreError> {
        self.store.settle_delivery(claim).await
    }
    async fn release_delivery(
        &self,
        claim: &airisk_core::ports::DeliveryClaim,
    ) -> Result<(), airisk_core::ports::StoreError> {
        self.store.release_delivery(claim).await
    }
}

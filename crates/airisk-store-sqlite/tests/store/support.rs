//! A temporary database per test, and realistic events.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use airisk_core::governance::audit_record::{AuditEvent, Outcome};
use airisk_core::ports::{AuditRepository, Clock, SystemClock};
use airisk_core::request::CorrelationId;
use airisk_core::security::tenant_context::{ActorId, TenantId};
use airisk_store_sqlite::SqliteStore;
use airisk_testkit::Guarded;
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
pub type TempStore = Guarded<SqliteStore, TempDb>;

/// A fresh [`TempStore`] that stamps records with `clock`.
pub fn temp_store(clock: Arc<dyn Clock>) -> TempStore {
    let db = TempDb::new();
    Guarded::new(db.open_with_clock(clock), db)
}

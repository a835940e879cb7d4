//! Durability that a SIGKILL test cannot see: killing a process keeps whatever is in the page
//! cache, so only a missing fsync loses data, and only on a power cut. Two tests catch a store
//! that stopped syncing:
//!
//! * every connection the store opens (the writer, and each reader) is read back with `PRAGMA`
//!   queries: WAL, `synchronous=FULL` on the writer, foreign keys, the busy timeout, readers
//!   read-only;
//! * a syscall trace (`strace`): between the moment an append is sent and the moment its receipt
//!   arrives, the writer must have called `fsync`/`fdatasync` on the write-ahead log and got 0.
//!   With `synchronous=OFF` (no sync at all) or `NORMAL` (WAL synced only at checkpoints) there
//!   is none, and the test fails.
//!
//! What this does not prove: that the disk honours the flush (a lying write cache), or anything
//! about a filesystem mounted without barriers; see docs/AUDIT_STORAGE.md.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use airisk_core::ports::{AuditRepository, SystemClock};
use airisk_store_sqlite::{SqliteOptions, SqliteStore};

use crate::support::{TempDb, append_n, event, tenant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_connection_the_store_opens_runs_with_the_promised_pragmas() {
    let db = TempDb::new();
    let mut options = SqliteOptions::default();
    options.busy_timeout = Duration::from_millis(1_234);
    let store =
        Arc::new(SqliteStore::open_with(&db.url(), Arc::new(SystemClock), options).unwrap());
    append_n(store.as_ref(), "acme", 3).await;
    // Several reads at once, so that more than one reader connection is opened.
    let reads: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.entries(&tenant("acme"), 0, 10).await.unwrap().len() })
        })
        .collect();
    for r in reads {
        assert_eq!(r.await.unwrap(), 3);
    }
    let settings = store.connection_settings();
    let writer = &settings[0];
    assert_eq!(writer.role, "writer");
    assert_eq!(writer.journal_mode, "wal");
    assert_eq!(
        writer.synchronous, 2,
        "synchronous=FULL on the writer: {writer:?}"
    );
    assert!(writer.foreign_keys, "{writer:?}");
    assert!(!writer.read_only, "{writer:?}");
    assert_eq!(writer.busy_timeout_ms, 1_234, "{writer:?}");
    assert_eq!(writer.cache_size, -8_192, "an 8 MiB page cache: {writer:?}");
    let readers = &settings[1..];
    assert!(!readers.is_empty(), "the reads opened at least one reader");
    for reader in readers {
        assert_eq!(reader.role, "reader");
        assert_eq!(reader.journal_mode, "wal", "{reader:?}");
        assert!(reader.foreign_keys, "{reader:?}");
        assert!(reader.read_only, "{reader:?}");
        assert_eq!(reader.busy_timeout_ms, 1_234, "{reader:?}");
        assert_eq!(
            reader.cache_size, -16_384,
            "a 16 MiB page cache: {reader:?}"
        );
    }
}

const CHILD_DB: &str = "AIRISK_SYNC_CHILD_DB";
const BEFORE: &str = "AIRISK-SYNC-MARK-BEFORE";
const AFTER: &str = "AIRISK-SYNC-MARK-AFTER";
const THIS_TEST: &str = "sync::a_receipt_is_sent_only_after_the_wal_is_fsynced";

/// Marks written straight to fd 2 (not through the test harness's capture), so that they appear
/// in the syscall trace as `write(2, ...)`.
fn mark(text: &str) {
    let mut err = std::io::stderr().lock();
    err.write_all(format!("{text}\n").as_bytes()).unwrap();
    err.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_is_sent_only_after_the_wal_is_fsynced() {
    if let Ok(path) = std::env::var(CHILD_DB) {
        // The traced child: warm up (create, migrate, first append), then one traced append.
        let store = SqliteStore::open(&path, Arc::new(SystemClock)).unwrap();
        append_n(&store, "acme", 2).await;
        mark(BEFORE);
        let receipts = store.append(vec![event("acme", 7)]).await.unwrap();
        mark(&format!("{AFTER} seq={}", receipts[0].seq));
        store.close().unwrap();
        return;
    }
    let strace = which_strace();
    let db = TempDb::new();
    std::fs::create_dir_all(db.path().parent().unwrap()).unwrap();
    let trace = db.path().with_extension("strace");
    let mut command = std::process::Command::new(strace);
    command
        .args(["-f", "-y", "-qq", "-e", "trace=fsync,fdatasync,write", "-o"])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", THIS_TEST, "--nocapture", "--test-threads", "1"])
        .env(CHILD_DB, db.url());
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || command.output()),
    )
    .await
    .expect("the traced child finished within 2 minutes")
    .unwrap()
    .expect("strace starts");
    assert!(
        out.status.success(),
        "traced child failed: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let trace = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = trace.lines().collect();
    let before = lines
        .iter()
        .position(|l| l.contains("write(") && l.contains(BEFORE))
        .unwrap_or_else(|| panic!("no BEFORE mark in the trace:\n{trace}"));
    let after = lines
        .iter()
        .position(|l| l.contains("write(") && l.contains(AFTER))
        .unwrap_or_else(|| panic!("no AFTER mark in the trace:\n{trace}"));
    assert!(before < after);
    // A sync of the WAL that completed with 0, inside the window. Under `-f` a call another
    // thread interrupts is split into `fdatasync(5</x-wal> <unfinished ...>` and
    // `<... fdatasync resumed>) = 0`; both halves fall inside the window here, as the receipt
    // cannot arrive before the sync returned.
    let window = &lines[before + 1..after];
    let synced = window.iter().any(|l| {
        (l.contains("fsync(") || l.contains("fdatasync("))
            && l.contains("-wal>")
            && (l.trim_end().ends_with("= 0") || l.contains("<unfinished ...>"))
    });
    let completed = window
        .iter()
        .any(|l| (l.contains("fsync") || l.contains("fdatasync")) && l.trim_end().ends_with("= 0"));
    assert!(
        synced && completed,
        "no fsync/fdatasync of the WAL between sending the append and its receipt:\n{}",
        window.join("\n")
    );
}

fn which_strace() -> std::path::PathBuf {
    for dir in ["/usr/bin", "/bin", "/usr/local/bin"] {
        let p = std::path::Path::new(dir).join("strace");
        if p.exists() {
            return p;
        }
    }
    panic!(
        "strace is needed for the durability test (Debian package `strace`; scripts/test.sh \
         installs it): without it this test cannot tell a store that syncs from one that does not"
    );
}

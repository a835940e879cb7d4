//! What is committed stays committed: across close and reopen, across two stores on one file,
//! and through a failed batch.

use std::sync::Arc;
use std::time::Duration;

use airisk_core::ports::{AuditRepository, StoreError, StoredCheckpoint, SystemClock};
use airisk_store_sqlite::{OpenError, SqliteOptions, SqliteStore};

use crate::support::{TempDb, append_n, event, tenant};

#[tokio::test]
async fn a_reopened_store_holds_exactly_what_was_appended_and_continues_the_sequence() {
    let db = TempDb::new();
    let store = db.open();
    append_n(&store, "acme", 40).await;
    append_n(&store, "globex", 7).await;
    store
        .append((0..20).map(|n| event("acme", 100 + n)).collect())
        .await
        .unwrap();
    let head = store.tree_head(&tenant("acme")).await.unwrap();
    store
        .add_checkpoint(
            &tenant("acme"),
            StoredCheckpoint {
                size: head.size,
                root: head.root,
                note: "note".to_owned(),
                signed_at: chrono::Utc::now(),
            },
        )
        .await
        .unwrap();
    let before_heads = (
        store.tree_head(&tenant("acme")).await.unwrap(),
        store.tree_head(&tenant("globex")).await.unwrap(),
    );
    let before_entries = store.entries(&tenant("acme"), 0, 1000).await.unwrap();
    let before_checkpoints = store.checkpoints(&tenant("acme")).await.unwrap();
    store.close().unwrap();

    let store = db.open();
    assert_eq!(
        (
            store.tree_head(&tenant("acme")).await.unwrap(),
            store.tree_head(&tenant("globex")).await.unwrap(),
        ),
        before_heads
    );
    assert_eq!(
        store.entries(&tenant("acme"), 0, 1000).await.unwrap(),
        before_entries
    );
    assert_eq!(
        store.checkpoints(&tenant("acme")).await.unwrap(),
        before_checkpoints
    );
    assert_eq!(
        store.tenants().await.unwrap(),
        vec![tenant("acme"), tenant("globex")]
    );
    assert_eq!(append_n(&store, "acme", 1).await, vec![60]);
}

#[tokio::test]
async fn dropping_the_store_without_close_also_keeps_everything() {
    let db = TempDb::new();
    {
        let store = db.open();
        append_n(&store, "acme", 3).await;
    }
    let store = db.open();
    assert_eq!(store.tree_head(&tenant("acme")).await.unwrap().size, 3);
}

#[tokio::test]
async fn two_stores_on_one_file_interleave_without_gaps() {
    // As two processes sharing the file would: each writer notices the other's commits.
    let db = TempDb::new();
    let a = db.open();
    let b = db.open();
    let mut seqs = Vec::new();
    for round in 0..5 {
        seqs.extend(append_n(&a, "acme", 3).await);
        seqs.extend(append_n(&b, "acme", 2 + round % 2).await);
    }
    let expected: Vec<u64> = (0..seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
    let entries = a.entries(&tenant("acme"), 0, 100).await.unwrap();
    assert_eq!(entries.len(), seqs.len());
    assert_eq!(
        a.tree_head(&tenant("acme")).await.unwrap(),
        b.tree_head(&tenant("acme")).await.unwrap()
    );
}

#[tokio::test]
async fn a_batch_that_cannot_start_fails_whole_and_the_store_recovers() {
    let db = TempDb::new();
    let mut options = SqliteOptions::default();
    options.busy_timeout = Duration::from_millis(200);
    let store = SqliteStore::open_with(&db.url(), Arc::new(SystemClock), options).unwrap();
    append_n(&store, "acme", 2).await;

    // Another process holds the write lock for longer than the store waits.
    let raw = db.raw();
    raw.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = store.append(vec![event("acme", 9)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    raw.execute_batch("COMMIT").unwrap();

    // Nothing of the failed call was stored, and the sequence goes on without a gap.
    assert_eq!(append_n(&store, "acme", 1).await, vec![2]);
    assert_eq!(
        store.entries(&tenant("acme"), 0, 10).await.unwrap().len(),
        3
    );
}

#[tokio::test]
async fn a_file_from_a_newer_build_is_refused_with_a_typed_error() {
    let db = TempDb::new();
    db.open().close().unwrap();
    db.raw()
        .execute(
            "INSERT INTO schema_migrations (version, name, applied_at)
             VALUES (99, '0099_future.sql', '2030-01-01T00:00:00.000000Z')",
            [],
        )
        .unwrap();
    let err = SqliteStore::open(&db.url(), Arc::new(SystemClock)).unwrap_err();
    assert_eq!(
        err,
        OpenError::NewerSchema {
            found: 99,
            supported: SqliteStore::schema_version()
        }
    );
    assert!(matches!(StoreError::from(err), StoreError::Refused { .. }));
}

#[tokio::test]
async fn migrations_run_once_and_are_recorded() {
    let db = TempDb::new();
    db.open().close().unwrap();
    db.open().close().unwrap();
    let versions: Vec<i64> = db
        .raw()
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, SqliteStore::schema_versions());
    assert_eq!(versions.first(), Some(&1));
    assert_eq!(versions.last(), Some(&SqliteStore::schema_version()));
}

#[tokio::test]
async fn the_file_is_in_wal_mode_and_every_accepted_location_spelling_opens_it() {
    let db = TempDb::new();
    let plain = db.path().display().to_string();
    for location in [
        db.url(),
        format!("sqlite:{plain}"),
        plain.clone(),
        format!("{}?mode=rwc", db.url()),
    ] {
        let store = SqliteStore::open(&location, Arc::new(SystemClock)).unwrap();
        assert_eq!(store.path(), db.path());
        append_n(&store, "acme", 1).await;
        store.close().unwrap();
    }
    let mode: String = db
        .raw()
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // In-memory and URI databases are refused, each spelling on its own (readers must share the
    // writer's file).
    for location in [
        ":memory:",
        "sqlite::memory:",
        "file:audit.db",
        "sqlite:file:audit.db",
        "audit.db?mode=memory",
        "",
    ] {
        assert!(
            matches!(
                SqliteStore::open(location, Arc::new(SystemClock)),
                Err(OpenError::InvalidLocation { .. })
            ),
            "{location:?}"
        );
    }
}

/// SQLite removes a file's `-wal` when the last connection to the file closes, so a `-wal` left
/// behind means a connection (the writer thread's or a reader's) outlived the store.
fn wal_of(db: &TempDb) -> std::path::PathBuf {
    let mut wal = db.path().into_os_string();
    wal.push("-wal");
    wal.into()
}

/// A store on `db` with three records written and read back (so the writer and a reader each
/// have the file open), and its `-wal` present.
async fn open_with_writer_and_reader(db: &TempDb) -> airisk_store_sqlite::SqliteStore {
    let store = db.open();
    append_n(&store, "acme", 3).await;
    assert_eq!(
        store.entries(&tenant("acme"), 0, 10).await.unwrap().len(),
        3
    );
    assert!(wal_of(db).exists(), "WAL mode keeps a -wal while open");
    store
}

#[tokio::test]
async fn close_returns_only_when_the_writer_and_every_reader_have_closed_the_file() {
    let db = TempDb::new();
    let store = open_with_writer_and_reader(&db).await;
    store.close().unwrap();
    assert!(!wal_of(&db).exists(), "a connection outlived close()");
    // So the database file alone, copied after close (a cold backup), holds every record.
    let copy = TempDb::new();
    std::fs::create_dir_all(copy.path().parent().unwrap()).unwrap();
    std::fs::copy(db.path(), copy.path()).unwrap();
    let store = copy.open();
    assert_eq!(
        store.entries(&tenant("acme"), 0, 10).await.unwrap().len(),
        3
    );
}

#[tokio::test]
async fn dropping_the_store_closes_the_file_as_close_does() {
    let db = TempDb::new();
    let store = open_with_writer_and_reader(&db).await;
    drop(store);
    assert!(!wal_of(&db).exists(), "a connection outlived the store");
}

/// Whether `needle` occurs in the database file or its `-wal`.
fn on_disk(db: &TempDb, needle: &[u8]) -> bool {
    [db.path(), wal_of(db)].iter().any(|path| {
        std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
    })
}

#[tokio::test]
async fn compacting_a_closed_file_leaves_no_bytes_of_deleted_rows() {
    const CANARY: &[u8] = b"CANARY-3f9c-deleted-row-bytes";
    let db = TempDb::new();
    let store = db.open();
    append_n(&store, "acme", 3).await;
    store.close().unwrap();
    {
        let conn = db.raw();
        conn.execute_batch("PRAGMA secure_delete = OFF; CREATE TABLE scratch (x BLOB);")
            .unwrap();
        conn.execute("INSERT INTO scratch VALUES (?1)", [CANARY])
            .unwrap();
        conn.execute_batch("DELETE FROM scratch; DROP TABLE scratch;")
            .unwrap();
    }
    assert!(
        on_disk(&db, CANARY),
        "the deleted row's bytes are still in the file or its WAL (else this test proves nothing)"
    );
    SqliteStore::compact_closed_file(&db.path()).unwrap();
    assert!(!on_disk(&db, CANARY), "compaction left the deleted bytes");
    // The ledger is intact.
    let store = db.open();
    assert_eq!(
        store.entries(&tenant("acme"), 0, 10).await.unwrap().len(),
        3
    );
}

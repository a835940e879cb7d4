//! The database itself refuses to change history, whoever asks.

use airisk_core::ledger::Hash;
use airisk_core::ports::{AuditRepository, StoredCheckpoint};
use rusqlite::types::Value;

use crate::support::{TempDb, append_n, tenant};

fn dump(conn: &rusqlite::Connection, table: &str) -> Vec<Vec<Value>> {
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2, 3"))
        .unwrap();
    let columns = stmt.column_count();
    stmt.query_map([], |row| {
        (0..columns)
            .map(|i| row.get::<_, Value>(i))
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap()
    .collect::<Result<Vec<_>, _>>()
    .unwrap()
}

async fn ledger_with_a_checkpoint(db: &TempDb) -> airisk_store_sqlite::SqliteStore {
    let store = db.open();
    // 20 entries: enough for a stored node (level 4 and up, 16 leaves; lower levels are
    // recomputed from the entries when read, never stored).
    append_n(&store, "acme", 20).await;
    let head = store.tree_head(&tenant("acme")).await.unwrap();
    store
        .add_checkpoint(
            &tenant("acme"),
            StoredCheckpoint {
                size: head.size,
                root: head.root,
                note: "acme ledger checkpoint\n20\n...\n".to_owned(),
                signed_at: chrono::Utc::now(),
            },
        )
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn update_and_delete_on_every_audit_table_are_refused_and_change_nothing() {
    let db = TempDb::new();
    // The store stays open: the refusal does not depend on it.
    let _store = ledger_with_a_checkpoint(&db).await;
    let raw = db.raw();
    let attempts = [
        (
            "audit_entries",
            "UPDATE audit_entries SET leaf = x'7b7d' WHERE seq = 2",
        ),
        ("audit_entries", "UPDATE audit_entries SET seq = seq + 100"),
        ("audit_entries", "DELETE FROM audit_entries WHERE seq = 4"),
        ("audit_entries", "DELETE FROM audit_entries"),
        ("audit_nodes", "UPDATE audit_nodes SET hash = zeroblob(32)"),
        ("audit_nodes", "DELETE FROM audit_nodes"),
        (
            "audit_checkpoints",
            "UPDATE audit_checkpoints SET note = 'forged'",
        ),
        ("audit_checkpoints", "DELETE FROM audit_checkpoints"),
        ("audit_heads", "UPDATE audit_heads SET size = 1"),
        (
            "audit_heads",
            "UPDATE audit_heads SET frontier = zeroblob(8) || frontier",
        ),
        ("audit_heads", "DELETE FROM audit_heads"),
        // REPLACE deletes the clashing row without firing DELETE triggers: refused on insert.
        (
            "audit_entries",
            "INSERT OR REPLACE INTO audit_entries (tenant_id, seq, leaf, leaf_hash)
             VALUES ('acme', 1, x'7b7d', zeroblob(32))",
        ),
        (
            "audit_nodes",
            "REPLACE INTO audit_nodes (tenant_id, last_leaf, level, idx, hash)
             VALUES ('acme', 15, 4, 0, zeroblob(32))",
        ),
        (
            "audit_checkpoints",
            "REPLACE INTO audit_checkpoints (tenant_id, size, root, note, signed_at)
             VALUES ('acme', 20, zeroblob(32), 'forged', '2026-01-01T00:00:00.000000Z')",
        ),
        (
            "audit_heads",
            "REPLACE INTO audit_heads (tenant_id, size, frontier) VALUES ('acme', 0, zeroblob(8))",
        ),
    ];
    for (table, sql) in attempts {
        let before = dump(&raw, table);
        assert!(!before.is_empty(), "{table} has rows to protect");
        let err = raw.execute(sql, []).expect_err(sql);
        assert!(
            err.to_string().contains("audit ledger is append-only"),
            "{sql}: {err}"
        );
        assert_eq!(dump(&raw, table), before, "{sql} changed {table}");
    }
}

#[tokio::test]
async fn a_head_may_grow_but_never_shrink() {
    let db = TempDb::new();
    let store = db.open();
    append_n(&store, "acme", 3).await;
    let raw = db.raw();
    let err = raw
        .execute("UPDATE audit_heads SET size = size - 1", [])
        .unwrap_err();
    assert!(err.to_string().contains("audit ledger is append-only"));
    // The store's own updates (growth) still work.
    append_n(&store, "acme", 2).await;
    assert_eq!(store.tree_head(&tenant("acme")).await.unwrap().size, 5);
}

#[tokio::test]
async fn new_rows_are_still_accepted_next_to_protected_ones() {
    let db = TempDb::new();
    let store = ledger_with_a_checkpoint(&db).await;
    // A second checkpoint of another size is an insert, not a change of history.
    let head = store.tree_head(&tenant("acme")).await.unwrap();
    store
        .add_checkpoint(
            &tenant("acme"),
            StoredCheckpoint {
                size: 0,
                root: Hash::EMPTY_ROOT,
                note: "n".to_owned(),
                signed_at: chrono::Utc::now(),
            },
        )
        .await
        .unwrap();
    assert_eq!(head.size, 20);
    assert_eq!(store.checkpoints(&tenant("acme")).await.unwrap().len(), 2);
}

//! Which Merkle nodes the store keeps, and how it answers for the others: nodes of level 4 and
//! up are stored; lower ones (subtrees of 2 to 8 entries) are recomputed from the entries' leaf
//! hashes when read, and are absent when one of those entries is. The in-memory reference, which
//! keeps every node, and RFC 6962's recursive definition are the oracles.

use std::sync::Arc;

use airisk_core::ledger::{Hash, NodeId, node_hash, root_from_leaf_hashes};
use airisk_core::ports::AuditRepository;
use airisk_testkit::InMemoryStore;
use airisk_testkit::fixtures::ManualClock;

use crate::support::{TempDb, append_n, event, tenant};

fn leaf_hashes(raw: &rusqlite::Connection) -> Vec<Hash> {
    let mut stmt = raw
        .prepare("SELECT leaf_hash FROM audit_entries WHERE tenant_id = 'acme' ORDER BY seq")
        .unwrap();
    stmt.query_map([], |row| row.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|b| Hash::from_slice(&b.unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn only_nodes_of_level_four_and_up_are_stored() {
    let db = TempDb::new();
    let store = db.open();
    append_n(&store, "acme", 100).await;
    let raw = db.raw();
    for level in 0..8u32 {
        let rows: u64 = raw
            .query_row(
                "SELECT count(*) FROM audit_nodes WHERE tenant_id = 'acme' AND level = ?1",
                [level],
                |row| row.get(0),
            )
            .unwrap();
        // Every complete subtree of 2^level entries at the stored levels; none below.
        let expected = if level >= 4 { 100 >> level } else { 0 };
        assert_eq!(rows, expected, "level {level}");
    }
}

#[tokio::test]
async fn every_node_reads_as_the_reference_computes_it() {
    // Same clock, same events: the store must answer for every node, stored or recomputed,
    // exactly as the in-memory store (which stores every node) does, and as RFC 6962 defines it.
    let clock = Arc::new(ManualClock::new());
    let db = TempDb::new();
    let sqlite = db.open_with_clock(clock.clone());
    let memory = InMemoryStore::new(clock);
    for n in 0..70 {
        let batch = vec![event("acme", n)];
        sqlite.append(batch.clone()).await.unwrap();
        memory.append(batch).await.unwrap();
    }
    let ids: Vec<NodeId> = (0..8u8)
        .flat_map(|level| (0..80u64).map(move |index| NodeId::new(level, index)))
        .collect();
    let answered = sqlite.nodes(&tenant("acme"), &ids).await.unwrap();
    assert_eq!(answered, memory.nodes(&tenant("acme"), &ids).await.unwrap());
    let leaves = leaf_hashes(&db.raw());
    for (id, hash) in &answered {
        let range = id.leaf_range().unwrap();
        let span =
            &leaves[usize::try_from(range.start).unwrap()..usize::try_from(range.end).unwrap()];
        assert_eq!(*hash, root_from_leaf_hashes(span), "{id}");
    }
    // 70 entries: every level-1 to level-6 node that fits, and no more.
    assert_eq!(answered.len(), 70 + 35 + 17 + 8 + 4 + 2 + 1);
}

#[tokio::test]
async fn a_recomputed_node_is_absent_when_one_of_its_entries_is_missing() {
    let db = TempDb::new();
    let store = db.open();
    append_n(&store, "acme", 20).await;
    let raw = db.raw();
    let leaves = leaf_hashes(&raw);
    raw.execute_batch(
        "DROP TRIGGER audit_entries_no_delete;
         DELETE FROM audit_entries WHERE tenant_id = 'acme' AND seq = 5;",
    )
    .unwrap();
    let ids = [
        NodeId::new(1, 0), // entries 0-1: intact
        NodeId::new(1, 2), // 4-5
        NodeId::new(2, 1), // 4-7
        NodeId::new(3, 0), // 0-7
        NodeId::new(2, 2), // 8-11: intact
    ];
    let answered = store.nodes(&tenant("acme"), &ids).await.unwrap();
    assert_eq!(
        answered,
        vec![
            (ids[0], node_hash(&leaves[0], &leaves[1])),
            (ids[4], root_from_leaf_hashes(&leaves[8..12])),
        ]
    );
}

#[tokio::test]
async fn low_level_rows_left_by_an_older_file_are_not_read() {
    // Files written when every level was stored still hold level 1-3 rows. They are not read:
    // those nodes come from the entries' leaf hashes, so even a wrong row changes nothing.
    let db = TempDb::new();
    let store = db.open();
    append_n(&store, "acme", 8).await;
    let raw = db.raw();
    let leaves = leaf_hashes(&raw);
    raw.execute(
        "INSERT INTO audit_nodes (tenant_id, last_leaf, level, idx, hash)
         VALUES ('acme', 1, 1, 0, zeroblob(32)), ('acme', 7, 3, 0, zeroblob(32))",
        [],
    )
    .unwrap();
    let ids = [NodeId::new(1, 0), NodeId::new(3, 0)];
    assert_eq!(
        store.nodes(&tenant("acme"), &ids).await.unwrap(),
        vec![
            (ids[0], node_hash(&leaves[0], &leaves[1])),
            (ids[1], root_from_leaf_hashes(&leaves)),
        ]
    );
}

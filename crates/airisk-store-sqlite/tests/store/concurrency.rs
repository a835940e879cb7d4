//! Many callers at once: gapless sequences, the right tree, and one bad request failing alone.

use std::collections::HashMap;
use std::sync::Arc;

use airisk_core::ledger::{Frontier, NodeId, leaf_hash, root_from_leaf_hashes};
use airisk_core::ports::{AuditRepository, StoreError};
use airisk_testkit::InMemoryStore;
use airisk_testkit::fixtures::ManualClock;

use crate::support::{TempDb, event, tenant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_callers_get_gapless_seqs_and_the_reference_tree() {
    const CALLERS: u64 = 64;
    const PER_CALLER: u64 = 40;
    let db = TempDb::new();
    let store = Arc::new(db.open());
    let mut tasks = Vec::new();
    for caller in 0..CALLERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            for n in 0..PER_CALLER {
                receipts.extend(
                    store
                        .append(vec![event("acme", caller * 1000 + n)])
                        .await
                        .unwrap(),
                );
            }
            receipts
        }));
    }
    let mut receipts = Vec::new();
    for task in tasks {
        receipts.extend(task.await.unwrap());
    }
    let total = CALLERS * PER_CALLER;
    let mut seqs: Vec<u64> = receipts.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..total).collect::<Vec<_>>());

    let entries = store.entries(&tenant("acme"), 0, usize::MAX).await.unwrap();
    assert_eq!(entries.len() as u64, total);
    let by_seq: HashMap<u64, &str> = receipts
        .iter()
        .map(|r| (r.seq, r.leaf_hash.as_str()))
        .collect();
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry.seq, i as u64);
        assert_eq!(entry.leaf_hash, leaf_hash(&entry.leaf));
        assert_eq!(by_seq[&entry.seq], entry.leaf_hash.to_hex());
    }
    let hashes: Vec<_> = entries.iter().map(|e| e.leaf_hash).collect();
    let head = store.tree_head(&tenant("acme")).await.unwrap();
    assert_eq!(head.size, total);
    assert_eq!(head.root, root_from_leaf_hashes(&hashes));

    // Every perfect node a proof could ask for is stored, and equals the recomputation.
    let mut frontier = Frontier::new();
    let mut expected: Vec<(NodeId, _)> = Vec::new();
    for hash in &hashes {
        expected.extend(frontier.append(*hash).unwrap());
    }
    for chunk in expected.chunks(500) {
        let ids: Vec<NodeId> = chunk.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            store.nodes(&tenant("acme"), &ids).await.unwrap(),
            chunk.to_vec()
        );
    }
}

#[tokio::test]
async fn the_store_answers_like_the_in_memory_reference() {
    // Same clock, same events, same calls: same leaves, heads, nodes and tenants.
    let clock = Arc::new(ManualClock::new());
    let db = TempDb::new();
    let sqlite = db.open_with_clock(clock.clone());
    let memory = InMemoryStore::new(clock);
    let batches: Vec<Vec<_>> = (0..30u64)
        .map(|i| {
            (0..(i % 4 + 1))
                .map(|j| event(if (i + j) % 3 == 0 { "globex" } else { "acme" }, i * 10 + j))
                .collect()
        })
        .collect();
    for batch in batches {
        let a = sqlite.append(batch.clone()).await.unwrap();
        let b = memory.append(batch).await.unwrap();
        assert_eq!(a, b);
    }
    for t in ["acme", "globex", "nobody"] {
        let t = tenant(t);
        assert_eq!(
            sqlite.tree_head(&t).await.unwrap(),
            memory.tree_head(&t).await.unwrap()
        );
        assert_eq!(
            sqlite.entries(&t, 3, 17).await.unwrap(),
            memory.entries(&t, 3, 17).await.unwrap()
        );
        let ids: Vec<NodeId> = (0..7u8)
            .flat_map(|level| (0..40u64).map(move |index| NodeId::new(level, index)))
            .collect();
        assert_eq!(
            sqlite.nodes(&t, &ids).await.unwrap(),
            memory.nodes(&t, &ids).await.unwrap()
        );
    }
    assert_eq!(
        sqlite.tenants().await.unwrap(),
        memory.tenants().await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_request_fails_alone_and_leaves_no_gap() {
    let db = TempDb::new();
    let store = Arc::new(db.open());
    // A row planted outside the store, beyond the (absent) head of tenant "poisoned": the store's
    // insert of poisoned/0 will clash.
    db.raw()
        .execute(
            "INSERT INTO audit_entries (tenant_id, seq, leaf, leaf_hash)
             VALUES ('poisoned', 0, x'7b7d', zeroblob(32))",
            [],
        )
        .unwrap();

    let mut good = Vec::new();
    for n in 0..32 {
        let store = Arc::clone(&store);
        good.push(tokio::spawn(async move {
            store.append(vec![event("acme", n)]).await
        }));
    }
    // Atomic: its acme event must not be kept when its poisoned event fails.
    let bad = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .append(vec![event("acme", 999), event("poisoned", 0)])
                .await
        })
    };
    let mut seqs = Vec::new();
    for task in good {
        seqs.extend(task.await.unwrap().unwrap().into_iter().map(|r| r.seq));
    }
    let err = bad.await.unwrap().unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");

    seqs.sort_unstable();
    assert_eq!(seqs, (0..32).collect::<Vec<_>>());
    let entries = store.entries(&tenant("acme"), 0, 100).await.unwrap();
    assert_eq!(entries.len(), 32);
    assert!(
        entries
            .iter()
            .all(|e| !String::from_utf8_lossy(&e.leaf).contains("credit-risk-pd-999")),
        "the failed request's first event was kept"
    );
    assert_eq!(store.tree_head(&tenant("poisoned")).await.unwrap().size, 0);
    // And the store goes on.
    assert_eq!(
        store.append(vec![event("acme", 1)]).await.unwrap()[0].seq,
        32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_pipelining_its_calls_gets_each_its_own_receipt_in_call_order() {
    use futures_util::StreamExt;
    use futures_util::stream::FuturesOrdered;

    const CALLS: u64 = 200;
    const IN_FLIGHT: usize = 16;
    let db = TempDb::new();
    let store = db.open();
    let mut outstanding = FuturesOrdered::new();
    let mut receipts = Vec::new();
    for n in 0..CALLS {
        if outstanding.len() == IN_FLIGHT {
            receipts.extend(outstanding.next().await.unwrap());
        }
        let e = event("acme", n);
        let id = e.id();
        let store = &store;
        outstanding.push_back(async move {
            let got = store.append(vec![e]).await.unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].id, id);
            got
        });
    }
    while let Some(got) = outstanding.next().await {
        receipts.extend(got);
    }
    // Each call's receipt, in the order of the calls, with the seqs of that order.
    let seqs: Vec<u64> = receipts.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..CALLS).collect::<Vec<_>>());
    drop(outstanding);
    drop(store);
    // Acknowledged means stored: a reopened store holds all of them.
    let reopened = db.open();
    assert_eq!(
        reopened.tree_head(&tenant("acme")).await.unwrap().size,
        CALLS
    );
}

//! The store conformance suite: every store runs these cases unchanged.
//!
//! A store's test file expands [`audit_repository_conformance!`](crate::audit_repository_conformance)
//! with an async factory that returns a fresh, empty store using the given clock; each case becomes
//! its own `#[tokio::test]`, so a failure names the broken rule.
//!
//! ```text
//! airisk_testkit::audit_repository_conformance!(|clock| async move {
//!     std::sync::Arc::new(MyStore::open_temp(clock).await) as std::sync::Arc<dyn AuditRepository>
//! });
//! ```

#![allow(clippy::panic, clippy::expect_used)] // a conformance failure must fail the calling test loudly

use std::collections::HashMap;
use std::sync::Arc;

use airisk_core::governance::audit_record::{AuditEvent, AuditEventInput, Outcome};
use airisk_core::ledger::{self, Hash, NodeId};
use airisk_core::ports::{
    AuditQuery, AuditRepository, Clock, StoreError, StoredCheckpoint, StoredEntry,
};
use airisk_core::security::tenant_context::TenantId;
use chrono::Duration;
use uuid::Uuid;

use crate::fixtures::{ManualClock, tenant};

/// Expands into one `#[tokio::test]` per conformance case. `$make` is a closure
/// `Fn(Arc<dyn Clock>) -> impl Future<Output = Arc<dyn AuditRepository>>` giving a fresh store.
///
/// An optional leading attribute is put on every generated test, e.g.
/// `#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL"]` for a store that needs a server.
#[macro_export]
macro_rules! audit_repository_conformance {
    (#[$attr:meta] $make:expr) => {
        $crate::audit_repository_conformance!(@cases [#[$attr]] $make;
            appends_are_gapless_from_zero_per_tenant,
            receipts_describe_what_was_stored,
            records_carry_the_injected_clock_time,
            tenants_are_independent,
            tree_head_is_the_root_of_the_entries,
            stored_nodes_prove_inclusion_and_consistency,
            entries_page_in_seq_order,
            a_batch_spanning_tenants_is_appended_whole,
            checkpoints_are_append_only_and_ordered,
            concurrent_appends_stay_gapless,
            tenants_lists_only_tenants_with_entries,
            search_filters_and_pages_in_both_directions,
            search_spans_pages_of_a_long_ledger,
            an_idempotent_correlation_is_used_once_per_tenant,
        );
    };
    ($make:expr) => {
        $crate::audit_repository_conformance!(#[cfg(all())] $make);
    };
    (@cases $attrs:tt $make:expr; $($case:ident),+ $(,)?) => {
        $(
            $crate::audit_repository_conformance!(@case $attrs $make; $case);
        )+
    };
    (@case [$($attr:tt)*] $make:expr; $case:ident) => {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $($attr)*
            async fn $case() {
                let clock: ::std::sync::Arc<$crate::fixtures::ManualClock> =
                    ::std::sync::Arc::new($crate::fixtures::ManualClock::new());
                let store = ($make)(clock.clone() as ::std::sync::Arc<dyn ::airisk_core::ports::Clock>).await;
                $crate::conformance::$case(store, clock).await;
            }
    };
}

/// A valid event for `tenant_id` with a distinguishable resource id.
///
/// # Panics
/// Never for valid literals; the fields used are all valid.
pub fn event(tenant_id: &str, n: u64) -> AuditEvent {
    event_correlated(tenant_id, n, &format!("corr-{n}"))
}

/// [`event`] with correlation id `correlation`.
///
/// # Panics
/// If `correlation` is not a valid correlation id.
#[allow(clippy::expect_used)] // fixture literals are valid; a failure is a bug in the suite
pub fn event_correlated(tenant_id: &str, n: u64, correlation: &str) -> AuditEvent {
    AuditEvent::parse(
        Uuid::now_v7(),
        Outcome::Success,
        AuditEventInput {
            actor: "alice@bank.example".into(),
            tenant_id: tenant_id.into(),
            action: "model.register".into(),
            resource_type: "model".into(),
            resource_id: format!("credit-scoring:{n}"),
            reason: Some("quarterly recalibration".into()),
            correlation_id: correlation.into(),
            metadata: Some(serde_json::json!({ "n": n, "owner": "risk-team" })),
        },
    )
    .expect("suite event is valid")
}

async fn append_n(store: &Arc<dyn AuditRepository>, tenant_id: &str, n: u64) {
    for i in 0..n {
        let receipts = store.append(vec![event(tenant_id, i)]).await;
        assert!(receipts.is_ok(), "append failed: {receipts:?}");
    }
}

async fn all_entries(
    store: &Arc<dyn AuditRepository>,
    t: &TenantId,
) -> Vec<airisk_core::ports::StoredEntry> {
    store
        .entries(t, 0, usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("entries: {e}"))
}

/// Seqs start at 0 and increase by one per entry, per tenant.
pub async fn appends_are_gapless_from_zero_per_tenant(
    store: Arc<dyn AuditRepository>,
    _clock: Arc<ManualClock>,
) {
    let mut seqs = Vec::new();
    for i in 0..5 {
        let r = store
            .append(vec![event("acme", i)])
            .await
            .unwrap_or_default();
        seqs.extend(r.into_iter().map(|r| r.seq));
    }
    let batch = store
        .append(vec![event("acme", 5), event("acme", 6), event("acme", 7)])
        .await
        .unwrap_or_default();
    seqs.extend(batch.into_iter().map(|r| r.seq));
    assert_eq!(seqs, (0..8).collect::<Vec<_>>());
    let stored: Vec<u64> = all_entries(&store, &tenant("acme"))
        .await
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(stored, (0..8).collect::<Vec<_>>());
}

/// A receipt's seq, leaf hash and id match the stored entry; the stored hash is the hash of the
/// stored bytes, and the bytes decode to the event appended.
pub async fn receipts_describe_what_was_stored(
    store: Arc<dyn AuditRepository>,
    _clock: Arc<ManualClock>,
) {
    let e = event("acme", 42);
    let id = e.id();
    let receipt = store
        .append(vec![e])
        .await
        .unwrap_or_default()
        .pop()
        .unwrap_or_else(|| panic!("no receipt"));
    assert_eq!(receipt.id, id);
    assert_eq!(receipt.tenant_id, tenant("acme"));
    let entries = all_entries(&store, &tenant("acme")).await;
    let [entry] = entries.as_slice() else {
        panic!("expected one entry, got {}", entries.len())
    };
    assert_eq!(entry.seq, receipt.seq);
    assert_eq!(entry.leaf_hash, ledger::leaf_hash(&entry.leaf));
    assert_eq!(entry.leaf_hash.to_hex(), receipt.leaf_hash);
    let record = airisk_core::governance::audit_record::AuditRecord::from_leaf_bytes(&entry.leaf)
        .unwrap_or_else(|e| panic!("stored leaf must decode: {e}"));
    assert_eq!(record.event().id(), id);
    assert_eq!(record.event().resource_id(), "credit-scoring:42");
}

/// `recorded_at` comes from the injected clock, in UTC with microsecond precision.
pub async fn records_carry_the_injected_clock_time(
    store: Arc<dyn AuditRepository>,
    clock: Arc<ManualClock>,
) {
    clock.advance(Duration::microseconds(1_234_567));
    let expected = clock.now();
    let receipt = store
        .append(vec![event("acme", 1)])
        .await
        .unwrap_or_default()
        .pop()
        .unwrap_or_else(|| panic!("no receipt"));
    assert_eq!(receipt.recorded_at, expected);
    let entries = all_entries(&store, &tenant("acme")).await;
    let leaf = String::from_utf8(entries.first().map(|e| e.leaf.clone()).unwrap_or_default())
        .unwrap_or_default();
    assert!(
        leaf.contains("\"recorded_at\":\"2026-01-01T00:00:01.234567Z\""),
        "leaf: {leaf}"
    );
}

/// One tenant's appends never touch another's seqs, head, entries, nodes or checkpoints.
pub async fn tenants_are_independent(store: Arc<dyn AuditRepository>, _clock: Arc<ManualClock>) {
    append_n(&store, "acme", 3).await;
    append_n(&store, "globex", 2).await;
    append_n(&store, "acme", 1).await;
    let acme = all_entries(&store, &tenant("acme")).await;
    let globex = all_entries(&store, &tenant("globex")).await;
    assert_eq!(
        acme.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert_eq!(globex.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 1]);
    for e in &globex {
        let leaf = String::from_utf8_lossy(&e.leaf);
        assert!(leaf.contains("\"tenant_id\":\"globex\""), "leaf: {leaf}");
    }
    let head = store
        .tree_head(&tenant("globex"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(head.size, 2);
    let nobody = store
        .tree_head(&tenant("initech"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(nobody.size, 0);
    assert_eq!(nobody.root, ledger::root_from_leaf_hashes(&[]));
    assert!(all_entries(&store, &tenant("initech")).await.is_empty());
    // A node id valid in acme's tree is absent from another tenant's view.
    let leaf0 = NodeId { level: 0, index: 3 };
    let globex_nodes = store
        .nodes(&tenant("globex"), &[leaf0])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(globex_nodes.is_empty());
}

/// The head's root is the RFC 6962 root of the stored leaf hashes, at every size.
pub async fn tree_head_is_the_root_of_the_entries(
    store: Arc<dyn AuditRepository>,
    _clock: Arc<ManualClock>,
) {
    let t = tenant("acme");
    for n in 0..20u64 {
        let head = store.tree_head(&t).await.unwrap_or_else(|e| panic!("{e}"));
        let hashes: Vec<Hash> = all_entries(&store, &t)
            .await
            .iter()
            .map(|e| e.leaf_hash)
            .collect();
        assert_eq!(head.size, n);
        assert_eq!(
            head.root,
            ledger::root_from_leaf_hashes(&hashes),
            "size {n}"
        );
        append_n(&store, "acme", 1).await;
    }
}

/// Proofs assembled from the store's nodes verify against the roots, for every index and size.
pub async fn stored_nodes_prove_inclusion_and_consistency(
    store: Arc<dyn AuditRepository>,
    _clock: Arc<ManualClock>,
) {
    let t = tenant("acme");
    append_n(&store, "acme", 13).await;
    let hashes: Vec<Hash> = all_entries(&store, &t)
        .await
        .iter()
        .map(|e| e.leaf_hash)
        .collect();
    let root_of = |n: usize| ledger::root_from_leaf_hashes(hashes.get(..n).unwrap_or_default());
    for size in 1..=13u64 {
        for index in 0..size {
            let needed = ledger::inclusion_proof_nodes(index, size)
                .unwrap_or_else(|e| panic!("plan {index}/{size}: {e}"));
            let lookup = fetch(&store, &t, needed).await;
            let proof = ledger::inclusion_proof(index, size, |id| lookup.get(&id).copied())
                .unwrap_or_else(|e| panic!("proof {index}/{size}: {e}"));
            let leaf = hashes.get(index as usize).copied().unwrap_or_default();
            ledger::verify_inclusion(index, size, leaf, &proof, root_of(size as usize))
                .unwrap_or_else(|e| panic!("verify {index}/{size}: {e}"));
        }
        for size1 in 1..=size {
            let needed = ledger::consistency_proof_nodes(size1, size)
                .unwrap_or_else(|e| panic!("plan {size1}->{size}: {e}"));
            let lookup = fetch(&store, &t, needed).await;
            let proof = ledger::consistency_proof(size1, size, |id| lookup.get(&id).copied())
                .unwrap_or_else(|e| panic!("proof {size1}->{size}: {e}"));
            ledger::verify_consistency(
                size1,
                size,
                root_of(size1 as usize),
                root_of(size as usize),
                &proof,
            )
            .unwrap_or_else(|e| panic!("verify {size1}->{size}: {e}"));
        }
    }
}

async fn fetch(
    store: &Arc<dyn AuditRepository>,
    t: &TenantId,
    needed: impl IntoIterator<Item = NodeId>,
) -> HashMap<NodeId, Hash> {
    let ids: Vec<NodeId> = needed.into_iter().collect();
    store
        .nodes(t, &ids)
        .await
        .unwrap_or_else(|e| panic!("nodes: {e}"))
        .into_iter()
        .collect()
}

/// `entries(from, limit)` pages through the ledger in order, without gaps or overlaps.
pub async fn entries_page_in_seq_order(store: Arc<dyn AuditRepository>, _clock: Arc<ManualClock>) {
    let t = tenant("acme");
    append_n(&store, "acme", 10).await;
    let mut seen = Vec::new();
    let mut from = 0;
    loop {
        let page = store
            .entries(&t, from, 3)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        // The packed page verification reads holds the same entries, byte for byte.
        let packed = store
            .entry_page(&t, from, 3)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let unpacked: Vec<StoredEntry> = packed.iter().map(StoredEntry::from).collect();
        assert_eq!(unpacked, page);
        for entry in packed.iter() {
            assert_eq!(*entry.leaf_hash, ledger::leaf_hash(entry.leaf));
        }
        from = page.last().map_or(from, |e| e.seq + 1);
        seen.extend(page.into_iter().map(|e| e.seq));
    }
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert!(
        store
            .entries(&t, 10, 5)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
    for (who, from, limit) in [("acme", 10, 5), ("acme", 0, 0), ("globex", 0, 5)] {
        let page = store
            .entry_page(&tenant(who), from, limit)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(page.is_empty(), "{who} {from} {limit}");
    }
}

/// One call with events of two tenants appends all of them, each in its own ledger.
pub async fn a_batch_spanning_tenants_is_appended_whole(
    store: Arc<dyn AuditRepository>,
    _clock: Arc<ManualClock>,
) {
    append_n(&store, "acme", 2).await;
    let receipts = store
        .append(vec![
            event("acme", 10),
            event("globex", 11),
            event("acme", 12),
        ])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<(String, u64)> = receipts
        .iter()
        .map(|r| (r.tenant_id.to_string(), r.seq))
        .collect();
    assert_eq!(
        got,
        vec![("acme".into(), 2), ("globex".into(), 0), ("acme".into(), 3)]
    );
}

/// Checkpoints are stored once per size, listed in size order; a second one of the same size is a
/// conflict and changes nothing.
pub async fn checkpoints_are_append_only_and_ordered(
    store: Arc<dyn AuditRepository>,
    clock: Arc<ManualClock>,
) {
    let t = tenant("acme");
    append_n(&store, "acme", 4).await;
    let cp = |size: u64, note: &str| StoredCheckpoint {
        size,
        root: Hash::from_bytes([size as u8; 32]),
        note: note.to_owned(),
        signed_at: clock.now(),
    };
    assert_eq!(
        store
            .latest_checkpoint(&t)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        None
    );
    for (size, note) in [(2, "two"), (4, "four"), (1, "one")] {
        store
            .add_checkpoint(&t, cp(size, note))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let again = store.add_checkpoint(&t, cp(4, "forged four")).await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "{again:?}"
    );
    let all = store
        .checkpoints(&t)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sizes: Vec<u64> = all.iter().map(|c| c.size).collect();
    assert_eq!(sizes, vec![1, 2, 4]);
    let latest = store
        .latest_checkpoint(&t)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(latest.map(|c| c.note), Some("four".to_owned()));
    assert!(
        store
            .checkpoints(&tenant("globex"))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
}

/// 64 tasks appending to one tenant at once: gapless seqs and one valid tree.
pub async fn concurrent_appends_stay_gapless(
    store: Arc<dyn AuditRepository>,
    _clock: Arc<ManualClock>,
) {
    const TASKS: u64 = 64;
    const EACH: u64 = 20;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                let r = store
                    .append(vec![event("acme", task * 1000 + i)])
                    .await
                    .unwrap_or_else(|e| panic!("append: {e}"));
                seqs.extend(r.into_iter().map(|r| r.seq));
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for h in handles {
        seqs.extend(h.await.unwrap_or_else(|e| panic!("task: {e}")));
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..TASKS * EACH).collect::<Vec<_>>());
    let t = tenant("acme");
    let entries = all_entries(&store, &t).await;
    assert_eq!(entries.len() as u64, TASKS * EACH);
    let hashes: Vec<Hash> = entries.iter().map(|e| e.leaf_hash).collect();
    let head = store.tree_head(&t).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(head.size, TASKS * EACH);
    assert_eq!(head.root, ledger::root_from_leaf_hashes(&hashes));
}

/// `tenants()` names exactly the tenants that have entries.
pub async fn tenants_lists_only_tenants_with_entries(
    store: Arc<dyn AuditRepository>,
    _clock: Arc<ManualClock>,
) {
    assert!(
        store
            .tenants()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
    append_n(&store, "globex", 1).await;
    append_n(&store, "acme", 1).await;
    let mut got = store.tenants().await.unwrap_or_else(|e| panic!("{e}"));
    got.sort();
    assert_eq!(got, vec![tenant("acme"), tenant("globex")]);
}

/// `search` filters on every field and pages with a cursor, oldest or newest first.
pub async fn search_filters_and_pages_in_both_directions(
    store: Arc<dyn AuditRepository>,
    clock: Arc<ManualClock>,
) {
    let t = tenant("acme");
    for i in 0..12u64 {
        clock.advance(Duration::seconds(1));
        let mut input = AuditEventInput {
            actor: if i % 3 == 0 {
                "bob@bank.example"
            } else {
                "alice@bank.example"
            }
            .into(),
            tenant_id: "acme".into(),
            action: if i % 2 == 0 {
                "model.register"
            } else {
                "prompt.update"
            }
            .into(),
            resource_type: "model".into(),
            resource_id: format!("r{}", i % 4),
            reason: None,
            correlation_id: format!("corr-{i}"),
            metadata: None,
        };
        if i == 7 {
            input.action = "model.approve".into();
        }
        if i == 10 {
            input.resource_type = "prompt".into();
        }
        let outcome = if i == 5 {
            Outcome::Denied
        } else {
            Outcome::Success
        };
        let e = AuditEvent::parse(Uuid::now_v7(), outcome, input).expect("valid");
        store
            .append(vec![e])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    append_n(&store, "globex", 3).await;
    let seqs =
        |v: Vec<airisk_core::ports::StoredEntry>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
    let search = |q: AuditQuery, limit: usize| {
        let store = store.clone();
        let t = t.clone();
        async move {
            store
                .search(&t, &q, limit)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    assert_eq!(
        seqs(search(AuditQuery::default(), 100).await),
        (0..12).collect::<Vec<_>>()
    );
    let by_actor = AuditQuery {
        actor: Some("bob@bank.example".into()),
        ..Default::default()
    };
    assert_eq!(seqs(search(by_actor, 100).await), vec![0, 3, 6, 9]);
    let prefix = AuditQuery {
        action: Some("model.".into()),
        ..Default::default()
    };
    assert_eq!(seqs(search(prefix, 100).await), vec![0, 2, 4, 6, 7, 8, 10]);
    let exact = AuditQuery {
        action: Some("model.approve".into()),
        ..Default::default()
    };
    assert_eq!(seqs(search(exact, 100).await), vec![7]);
    let res = AuditQuery {
        resource_id: Some("r1".into()),
        ..Default::default()
    };
    assert_eq!(seqs(search(res, 100).await), vec![1, 5, 9]);
    let prompts = AuditQuery {
        resource_type: Some("prompt".into()),
        ..Default::default()
    };
    assert_eq!(seqs(search(prompts, 100).await), vec![10]);
    let models = AuditQuery {
        resource_type: Some("model".into()),
        resource_id: Some("r2".into()),
        ..Default::default()
    };
    assert_eq!(seqs(search(models, 100).await), vec![2, 6]);
    let corr = AuditQuery {
        correlation_id: Some("corr-11".into()),
        ..Default::default()
    };
    assert_eq!(seqs(search(corr, 100).await), vec![11]);
    let denied = AuditQuery {
        outcome: Some(Outcome::Denied),
        ..Default::default()
    };
    assert_eq!(seqs(search(denied, 100).await), vec![5]);
    let start = clock.now() - Duration::seconds(12);
    let window = AuditQuery {
        from: Some(start + Duration::seconds(3)),
        to: Some(start + Duration::seconds(6)),
        ..Default::default()
    };
    assert_eq!(seqs(search(window, 100).await), vec![2, 3, 4]);
    // Paging oldest first, then newest first, with the cursor.
    let page1 = seqs(
        search(
            AuditQuery {
                ..Default::default()
            },
            5,
        )
        .await,
    );
    assert_eq!(page1, vec![0, 1, 2, 3, 4]);
    let page2 = seqs(
        search(
            AuditQuery {
                cursor: Some(4),
                ..Default::default()
            },
            5,
        )
        .await,
    );
    assert_eq!(page2, vec![5, 6, 7, 8, 9]);
    let newest = seqs(
        search(
            AuditQuery {
                newest_first: true,
                ..Default::default()
            },
            4,
        )
        .await,
    );
    assert_eq!(newest, vec![11, 10, 9, 8]);
    let older = seqs(
        search(
            AuditQuery {
                newest_first: true,
                cursor: Some(8),
                ..Default::default()
            },
            4,
        )
        .await,
    );
    assert_eq!(older, vec![7, 6, 5, 4]);
    let bob_newest = AuditQuery {
        actor: Some("bob@bank.example".into()),
        newest_first: true,
        ..Default::default()
    };
    assert_eq!(seqs(search(bob_newest, 2).await), vec![9, 6]);
    // Scoped by tenant.
    let other = store
        .search(&tenant("globex"), &AuditQuery::default(), 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(other.len(), 3);
}

/// `search` over a ledger longer than a scan's page (4,096 entries, the provided
/// implementation's): the limit stops it in the page where it is reached, a search with fewer
/// matches than its limit ends at the ledger's first entry, and a newest-first cursor deep in the
/// ledger never returns what lies after it. The matches (by actor) sit on both sides of every
/// page boundary; the expected seqs are worked out by hand.
pub async fn search_spans_pages_of_a_long_ledger(
    store: Arc<dyn AuditRepository>,
    _clock: Arc<ManualClock>,
) {
    const SIZE: u64 = 5_000;
    let bob_at = [500, 999, 1999, 2999, 3999, 4999];
    for chunk in 0..SIZE / 500 {
        let events = (chunk * 500..(chunk + 1) * 500)
            .map(|i| {
                let actor = if bob_at.contains(&i) {
                    "bob@bank.example"
                } else {
                    "alice@bank.example"
                };
                AuditEvent::parse(
                    Uuid::now_v7(),
                    Outcome::Success,
                    AuditEventInput {
                        actor: actor.into(),
                        tenant_id: "acme".into(),
                        action: "model.register".into(),
                        resource_type: "model".into(),
                        resource_id: format!("m{i}"),
                        reason: None,
                        correlation_id: format!("corr-{i}"),
                        metadata: None,
                    },
                )
                .expect("valid")
            })
            .collect();
        store.append(events).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let bob = |newest_first: bool, cursor: Option<u64>| AuditQuery {
        actor: Some("bob@bank.example".into()),
        newest_first,
        cursor,
        ..Default::default()
    };
    let seqs = |query: AuditQuery, limit: usize| {
        let store = store.clone();
        async move {
            store
                .search(&tenant("acme"), &query, limit)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        }
    };
    // Oldest first: the limit is reached before the second page, which holds another match.
    assert_eq!(seqs(bob(false, None), 4).await, vec![500, 999, 1999, 2999]);
    assert_eq!(
        seqs(bob(false, None), 100).await,
        vec![500, 999, 1999, 2999, 3999, 4999]
    );
    assert_eq!(seqs(bob(false, Some(3999)), 100).await, vec![4999]);
    // Newest first: the limit is reached in the newest page; the older page holds seq 500.
    assert_eq!(
        seqs(bob(true, None), 5).await,
        vec![4999, 3999, 2999, 1999, 999]
    );
    // Fewer matches than the limit: the scan ends at seq 0.
    assert_eq!(
        seqs(bob(true, None), 100).await,
        vec![4999, 3999, 2999, 1999, 999, 500]
    );
    // A cursor past the first page: nothing at or after it comes back.
    assert_eq!(seqs(bob(true, Some(4500)), 2).await, vec![3999, 2999]);
    assert_eq!(
        seqs(bob(true, Some(4999)), 100).await,
        vec![3999, 2999, 1999, 999, 500]
    );
}

/// The back door a store's test gives [`verification_sees_one_snapshot_under_concurrent_appends`]:
/// change the stored leaf bytes of entry `seq` of `tenant` and leave its stored hash alone, as an
/// attacker with raw database access would (memory: `dangerous_overwrite_leaf`; SQLite and
/// PostgreSQL: raw SQL past the triggers).
pub type Tamper = Arc<
    dyn Fn(TenantId, u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// Verification under load: four writers append to one tenant (and sign checkpoints) while the
/// ledger is verified again and again. Every verification must report the ledger intact (it
/// checks one snapshot: the head and checkpoints it read, and the entries up to that head), and
/// after one leaf is altered mid-run, every verification must name that entry.
///
/// Writers are paced by the verifier (each verification releases 64 more appends), so the ledger
/// stays small on any store; no sleeps, no timing. The case insists that appends really landed
/// during some verifications, or it would prove nothing.
pub async fn verification_sees_one_snapshot_under_concurrent_appends(
    store: Arc<dyn AuditRepository>,
    tamper: Tamper,
) {
    use airisk_core::governance::audit_logger::{AuditLogger, CheckpointPolicy};
    use airisk_core::governance::audit_verification::Problem;
    use airisk_core::ledger::{LedgerName, LedgerSigner};
    use airisk_core::ports::{SystemClock, UuidV7Generator};
    use std::sync::atomic::{AtomicU64, Ordering};

    const WRITERS: u64 = 4;
    const RELEASE: u64 = 64;
    const CLEAN_RUNS: u64 = 30;
    const MIN_OVERLAPS: u64 = 5;
    const MAX_RUNS: u64 = 400;
    const TAMPERED_RUNS: u64 = 10;
    const TAMPERED_SEQ: u64 = 3;

    let name = LedgerName::parse("bank.example/ledger").expect("valid ledger name");
    let signer = Arc::new(LedgerSigner::generate(name.clone()).expect("a signing key"));
    let verifier = signer.verifier();
    let logger = Arc::new(AuditLogger::new(
        Arc::clone(&store),
        Arc::new(UuidV7Generator),
        Arc::new(SystemClock),
        name,
        Some(signer),
        // Checkpoints are signed while the verifier reads, too.
        CheckpointPolicy {
            every_entries: Some(7),
            every_interval: None,
        },
    ));
    let acme = tenant("acme");
    append_n(&store, "acme", TAMPERED_SEQ + 1).await;

    // (appends released so far, stop)
    let (gate, _) = tokio::sync::watch::channel((RELEASE, false));
    let appended = Arc::new(AtomicU64::new(0));
    // Appends completed, for the verifier to wait on (so the ledger keeps growing on every store).
    let (done, _) = tokio::sync::watch::channel(0u64);
    let done = Arc::new(done);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let logger = Arc::clone(&logger);
        let appended = Arc::clone(&appended);
        let done = Arc::clone(&done);
        let mut gate = gate.subscribe();
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                // The borrowed value is read at once: holding it would block the verifier.
                let open = match gate
                    .wait_for(|(released, stop)| {
                        *stop || appended.load(Ordering::SeqCst) < *released
                    })
                    .await
                {
                    Ok(state) => !state.1,
                    Err(_) => false,
                };
                if !open {
                    return n;
                }
                logger
                    .append(vec![event("acme", 1_000_000 * (w + 1) + n)])
                    .await
                    .expect("append under load");
                appended.fetch_add(1, Ordering::SeqCst);
                done.send_modify(|d| *d += 1);
                n += 1;
            }
        }));
    }

    let mut runs = 0u64;
    let mut overlaps = 0u64;
    let mut false_alarms = Vec::new();
    let mut progress = done.subscribe();
    while runs < MAX_RUNS && (runs < CLEAN_RUNS || overlaps < MIN_OVERLAPS) {
        // Note the appends done so far, release more, then wait for one more, so each run has
        // something new. (Noted before releasing: the writers may use the whole release at once,
        // and then nothing would come after a count taken later.)
        let seen = *progress.borrow_and_update();
        gate.send_modify(|(released, _)| *released += RELEASE);
        progress
            .wait_for(|d| *d > seen)
            .await
            .expect("the writers are running");
        let before = store.tree_head(&acme).await.expect("head").size;
        let report = logger
            .verify(&acme, Some(&verifier), None, |_, _| {})
            .await
            .expect("verify reads the store");
        let after = store.tree_head(&acme).await.expect("head").size;
        runs += 1;
        if after > before {
            overlaps += 1;
        }
        if let Some(problem) = report.problem {
            false_alarms.push(format!("{problem}"));
        }
        assert!(
            report.entries >= before,
            "verified fewer entries than the head had"
        );
    }
    assert!(
        false_alarms.is_empty(),
        "{} of {runs} verifications of an untouched ledger under load reported tampering: {:?}",
        false_alarms.len(),
        false_alarms.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        overlaps >= MIN_OVERLAPS,
        "appends landed during only {overlaps} of {runs} verifications: the case proved nothing"
    );

    // A real tampering, while the writers keep going: every verification names it.
    tamper(acme.clone(), TAMPERED_SEQ).await;
    for _ in 0..TAMPERED_RUNS {
        let report = logger
            .verify(&acme, Some(&verifier), None, |_, _| {})
            .await
            .expect("verify reads the store");
        assert_eq!(
            report.problem,
            Some(Problem::LeafHashMismatch { seq: TAMPERED_SEQ }),
            "the altered entry was not named"
        );
        gate.send_modify(|(released, _)| *released += RELEASE);
    }

    gate.send_modify(|(_, stop)| *stop = true);
    let mut written = 0;
    for w in writers {
        written += w.await.expect("writer task");
    }
    assert!(written > 0, "the writers appended nothing");
}

/// An idempotent correlation id (`idem-…`, what the HTTP layer derives from an `Idempotency-Key`)
/// is used by one write per tenant: the events of that write may share it; a later write that
/// carries it again is refused whole with exactly [`idempotency_conflict`], storing nothing, even
/// beside a key never used; another tenant may use the same id.
///
/// [`idempotency_conflict`]: airisk_core::ports::idempotency_conflict
pub async fn an_idempotent_correlation_is_used_once_per_tenant(
    store: Arc<dyn AuditRepository>,
    _clock: Arc<ManualClock>,
) {
    let acme = tenant("acme");
    let first = store
        .append(vec![
            event_correlated("acme", 0, "idem-retry-1"),
            event_correlated("acme", 1, "idem-retry-1"),
        ])
        .await
        .unwrap_or_else(|e| panic!("one write's events share its key: {e}"));
    assert_eq!(first.len(), 2);
    let retried = store
        .append(vec![event_correlated("acme", 2, "idem-retry-1")])
        .await;
    assert_eq!(retried, Err(airisk_core::ports::idempotency_conflict()));
    let mixed = store
        .append(vec![
            event_correlated("acme", 3, "idem-fresh-2"),
            event_correlated("acme", 4, "idem-retry-1"),
        ])
        .await;
    assert_eq!(mixed, Err(airisk_core::ports::idempotency_conflict()));
    assert_eq!(
        all_entries(&store, &acme).await.len(),
        2,
        "the refused writes stored nothing"
    );
    // The fresh key of the refused write is still free.
    store
        .append(vec![event_correlated("acme", 5, "idem-fresh-2")])
        .await
        .unwrap_or_else(|e| panic!("a key of a refused write is unused: {e}"));
    store
        .append(vec![event_correlated("globex", 0, "idem-retry-1")])
        .await
        .unwrap_or_else(|e| panic!("keys are per tenant: {e}"));
    assert_eq!(all_entries(&store, &acme).await.len(), 3);
}

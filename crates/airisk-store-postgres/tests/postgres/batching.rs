//! The round-trip savings of the write and read paths keep their guarantees:
//!
//! * a batch writer that seals against the head its last batch left (no lock) notices when another
//!   store moved the head meanwhile, and its records land after the other's, gapless;
//! * approval and model mutations applied as one statement per batch still fail one by one: a
//!   stale version or an existing key refuses its own change set whole and nothing else;
//! * a read transaction ended without a round trip leaves the pooled connection clean for the
//!   next user (no open transaction, no tenant).

use std::collections::HashSet;
use std::sync::Arc;

use airisk_core::governance::approval_workflow::{ApprovalRequest, ApprovalStatus};
use airisk_core::governance::audit_record::{AuditReceipt, AuditRecord};
use airisk_core::governance::model_registry::{ModelName, ModelVersionTag};
use airisk_core::ledger::root_from_leaf_hashes;
use airisk_core::ports::{
    ApprovalFilter, AuditRepository, ChangeSet, Clock, GovernanceStore, Mutation, Page,
};
use airisk_core::request::CorrelationId;
use airisk_core::security::rbac::Role;
use airisk_store_postgres::{PostgresOptions, PostgresStore};
use airisk_testkit::conformance::event;
use airisk_testkit::fixtures::{ManualClock, human, tenant};
use airisk_testkit::governance_conformance::Services;
use sqlx::Row;

use crate::support::{TestDb, register_model_version};

/// Every entry of `tenant` is at its seq, names that seq in its leaf, and the store's root is the
/// root of the leaf hashes computed independently; returns the leaves' correlation ids in order.
async fn assert_gapless(store: &PostgresStore, t: &str, size: u64) -> Vec<String> {
    let entries = store.entries(&tenant(t), 0, usize::MAX).await.unwrap();
    assert_eq!(entries.len() as u64, size, "ledger size");
    let mut correlations = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as u64);
        let record = AuditRecord::from_leaf_bytes(&e.leaf).unwrap();
        assert_eq!(record.seq(), i as u64, "the leaf names its own seq");
        correlations.push(record.event().correlation_id().as_str().to_owned());
    }
    let hashes: Vec<_> = entries.iter().map(|e| e.leaf_hash).collect();
    let head = store.tree_head(&tenant(t)).await.unwrap();
    assert_eq!(head.size, size);
    assert_eq!(head.root, root_from_leaf_hashes(&hashes));
    correlations
}

fn seq_of(receipts: &[AuditReceipt]) -> u64 {
    assert_eq!(receipts.len(), 1);
    receipts[0].seq
}

/// Two stores (two processes' worth of batch writers) take turns on one tenant. Each remembers
/// the head its own last batch wrote; every turn of the other moves it, so each append here must
/// notice, run again under the lock, and land right after the other's record. Governance inserts
/// take their creation order from the same head, so the approvals list in commit order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn a_head_moved_by_another_store_is_noticed_and_the_ledger_stays_gapless() {
    let db = TestDb::new().await;
    let clock = Arc::new(ManualClock::new());
    let a = db.store(clock.clone()).await;
    let b = db.store(clock.clone()).await;
    let mut expected = Vec::new();
    let mut seq = 0u64;
    // a, a (a now trusts its remembered head), b, a (stale: must lock), a, b, b, a.
    for (turn, writer) in ["a", "a", "b", "a", "a", "b", "b", "a"].iter().enumerate() {
        let store = if *writer == "a" { &a } else { &b };
        let e = event("acme", turn as u64);
        expected.push(e.correlation_id().as_str().to_owned());
        let receipts = store.append(vec![e]).await.unwrap();
        assert_eq!(seq_of(&receipts), seq, "turn {turn} by {writer}");
        seq += 1;
    }
    assert_eq!(assert_gapless(&a, "acme", seq).await, expected);

    // Governance inserts interleaved the same way: creation order is commit order.
    let admin = human("ada@acme.example", "acme", Role::Admin);
    let mut ids = Vec::new();
    for (turn, writer) in ["a", "b", "a", "a", "b"].iter().enumerate() {
        let store = if *writer == "a" { &a } else { &b };
        let request = ApprovalRequest::open(
            uuid::Uuid::now_v7(),
            &admin,
            airisk_core::governance::approval_workflow::NewApprovalRequest {
                subject:
                    airisk_core::governance::approval_workflow::RequestedSubject::PromptLabel {
                        name: "p".into(),
                        version: 1,
                        label: format!("l{turn}"),
                    },
                justification: "ship it".into(),
                required_approvals: 1,
                expires_in: None,
            },
            clock.now(),
        )
        .unwrap();
        ids.push(request.id());
        let e = event("acme", 100 + turn as u64);
        expected.push(e.correlation_id().as_str().to_owned());
        let receipts = store
            .commit(ChangeSet {
                tenant: tenant("acme"),
                mutations: vec![Mutation::InsertApproval(request)],
                audit: vec![e],
            })
            .await
            .unwrap();
        assert_eq!(seq_of(&receipts), seq, "governance turn {turn} by {writer}");
        seq += 1;
    }
    let listed: Vec<_> = b
        .approvals(
            &tenant("acme"),
            &ApprovalFilter::default(),
            Page::first(100),
        )
        .await
        .unwrap()
        .iter()
        .map(ApprovalRequest::id)
        .collect();
    assert_eq!(listed, ids, "approvals list in commit order");
    assert_eq!(assert_gapless(&b, "acme", seq).await, expected);
}

/// Concurrent decisions and registrations on one store, batched together: a third are valid
/// approvals, a third are stale (an expected version the request no longer has), a third insert
/// a model version that exists (with a fresh approval request beside it). Each stale or clashing
/// change set is refused whole with a conflict; every valid one commits; the ledger holds exactly
/// the valid ones' records, gapless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn batched_approval_and_model_writes_that_clash_fail_alone() {
    const N: usize = 30;
    let db = TestDb::new().await;
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(db.store(clock.clone()).await);
    let s = Arc::new(Services::new(
        store.clone() as Arc<dyn GovernanceStore>,
        store.clone() as Arc<dyn AuditRepository>,
        clock.clone(),
    ));
    let t = tenant("acme");
    let admin = human("ada@acme.example", "acme", Role::Admin);
    let bob = human("bob@acme.example", "acme", Role::Approver);
    let mut models = Vec::new();
    for n in 0..N {
        let version = format!("1.{n}.0");
        register_model_version(&s, &version).await;
        models.push(
            store
                .model(
                    &t,
                    &ModelName::parse("credit-risk-pd").unwrap(),
                    &ModelVersionTag::parse(&version).unwrap(),
                )
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let before = store.tree_head(&t).await.unwrap().size;
    let mut tasks = Vec::new();
    for (n, model) in models.iter().enumerate() {
        let current = store
            .approval(&t, model.approval_request_id())
            .await
            .unwrap()
            .unwrap();
        let correlation = CorrelationId::generate();
        let kind = ["valid", "stale", "clash"][n % 3];
        let (store, services) = (store.clone(), s.clone());
        let (bob, admin, version) = (
            bob.clone(),
            admin.clone(),
            model.version().as_str().to_owned(),
        );
        let (model, clock) = (model.clone(), clock.clone());
        tasks.push(tokio::spawn(async move {
            let mut fresh_id = None;
            let got = match kind {
                // Through the registry: reads, then one change set (approval and model updates).
                "valid" => services
                    .models
                    .approve_model(&bob, &correlation, "credit-risk-pd", &version, "validated")
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}")),
                // A decision at a version the request no longer has.
                "stale" => {
                    let next = current.approve(&bob, "validated", clock.now()).unwrap();
                    store
                        .commit(ChangeSet {
                            tenant: tenant("acme"),
                            mutations: vec![Mutation::UpdateApproval {
                                expected_version: current.version() + 7,
                                request: next,
                            }],
                            audit: vec![event("acme", n as u64)],
                        })
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("{e:?}"))
                }
                // A fresh approval request beside a model version that exists.
                _ => {
                    let fresh = ApprovalRequest::open(
                        uuid::Uuid::now_v7(),
                        &admin,
                        airisk_core::governance::approval_workflow::NewApprovalRequest {
                            subject: airisk_core::governance::approval_workflow::RequestedSubject::Model {
                                name: "credit-risk-pd".into(),
                                version,
                            },
                            justification: "again".into(),
                            required_approvals: 1,
                            expires_in: None,
                        },
                        clock.now(),
                    )
                    .unwrap();
                    fresh_id = Some(fresh.id());
                    store
                        .commit(ChangeSet {
                            tenant: tenant("acme"),
                            mutations: vec![
                                Mutation::InsertApproval(fresh),
                                Mutation::InsertModel(model),
                            ],
                            audit: vec![event("acme", n as u64)],
                        })
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("{e:?}"))
                }
            };
            (n, kind, current, fresh_id, correlation, got)
        }));
    }
    let mut committed = HashSet::new();
    for task in tasks {
        let (n, kind, current, fresh_id, correlation, got) = task.await.unwrap();
        let stored = store.approval(&t, current.id()).await.unwrap().unwrap();
        let model = store
            .model(
                &t,
                &ModelName::parse("credit-risk-pd").unwrap(),
                models[n].version(),
            )
            .await
            .unwrap()
            .unwrap();
        if kind == "valid" {
            got.unwrap();
            assert_eq!(stored.version(), current.version() + 1, "{n}");
            assert_eq!(stored.status(), ApprovalStatus::Approved, "{n}");
            assert!(model.approved(), "{n}: the model follows its approval");
            committed.insert(correlation.as_str().to_owned());
        } else {
            let e = got.unwrap_err();
            assert!(e.starts_with("Conflict"), "{n} {kind}: {e}");
            assert_eq!(stored, current, "{n} {kind}: unchanged");
            assert_eq!(model, models[n], "{n} {kind}: unchanged");
            if let Some(id) = fresh_id {
                assert!(
                    store.approval(&t, id).await.unwrap().is_none(),
                    "{n}: the clashing change set is rolled back whole"
                );
            }
        }
    }
    assert_eq!(committed.len(), N / 3);
    // Each approval through the registry records the decision and the model's approval.
    let correlations = assert_gapless(&store, "acme", before + 2 * (N / 3) as u64).await;
    let new: HashSet<_> = correlations.into_iter().skip(before as usize).collect();
    assert_eq!(new, committed, "exactly the valid decisions' records");
}

/// Read transactions end without waiting for the server (the pool sends their ROLLBACK when the
/// connection comes back). With one pooled connection shared by every call, each read must still
/// see its own tenant only, and the connection must come back with no transaction open and no
/// tenant set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn reads_leave_their_pooled_connection_clean() {
    let db = TestDb::new().await;
    let mut options = PostgresOptions::default();
    options.max_connections = 1;
    let store = db.store_with(Arc::new(ManualClock::new()), options).await;
    for round in 0..10u64 {
        for (i, t) in ["acme", "globex"].iter().enumerate() {
            store
                .append(vec![event(t, round * 2 + i as u64)])
                .await
                .unwrap();
            assert_eq!(store.tree_head(&tenant(t)).await.unwrap().size, round + 1);
            let entries = store.entries(&tenant(t), 0, usize::MAX).await.unwrap();
            assert_eq!(
                entries.len() as u64,
                round + 1,
                "{t} sees its own entries only"
            );
            for e in &entries {
                let record = AuditRecord::from_leaf_bytes(&e.leaf).unwrap();
                assert_eq!(record.event().tenant_id().as_str(), *t);
            }
            assert!(store.checkpoints(&tenant(t)).await.unwrap().is_empty());
        }
    }
    let mut conn = store.pool().acquire().await.unwrap();
    // The simple protocol: a statement outside a transaction starts its own, whose start time is
    // the statement's; inside a transaction left open, the transaction started earlier.
    let row = sqlx::raw_sql(
        "SELECT coalesce(current_setting('airisk.tenant_id', true), ''), \
                now() = statement_timestamp()",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    let tenant_left: String = row.get(0);
    let fresh_transaction: bool = row.get(1);
    assert_eq!(tenant_left, "", "no tenant carried over");
    assert!(
        fresh_transaction,
        "the statement ran in its own transaction, not in a read left open"
    );
}

/// A read whose caller gives up while its `BEGIN READ ONLY` is in flight (an HTTP client that
/// hangs up) must not leave that transaction open on the pooled connection: sqlx queues no
/// rollback for a cancelled `begin`, so the next user of the connection, a write, would run
/// inside a read-only transaction and fail. With one connection, every cancelled read is followed
/// by an append that must succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn a_read_cancelled_mid_begin_leaves_no_transaction_for_the_next_write() {
    let db = TestDb::new().await;
    let mut options = PostgresOptions::default();
    options.max_connections = 1;
    let store = db.store_with(Arc::new(ManualClock::new()), options).await;
    let mut cancelled = 0;
    for n in 0..40u64 {
        // A zero timeout polls the read once (acquire, send BEGIN) and drops it.
        if tokio::time::timeout(std::time::Duration::ZERO, store.tree_head(&tenant("acme")))
            .await
            .is_err()
        {
            cancelled += 1;
        }
        let receipts = store.append(vec![event("acme", n)]).await.unwrap();
        assert_eq!(seq_of(&receipts), n);
    }
    assert!(
        cancelled > 0,
        "no read was cancelled: the test did not test"
    );
    assert_gapless(&store, "acme", 40).await;
}

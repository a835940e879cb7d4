//! Several processes appending to one tenant: gapless seqs and one valid tree, because every
//! append locks the tenant's head row.
//!
//! The workers are this test binary itself, running the same test (`--exact <test> --ignored`)
//! with `AIRISK_PG_WORKER_URL` in the environment: then the test is a worker and appends instead
//! of starting workers. There is no separate worker test that could pass by doing nothing.

use std::sync::Arc;
use std::time::Duration;

use airisk_core::governance::audit_logger::{AuditLogger, CheckpointPolicy};
use airisk_core::governance::prompt_registry::PromptName;
use airisk_core::ledger::{LedgerName, root_from_leaf_hashes};
use airisk_core::ports::{AuditRepository, GovernanceStore, SystemClock, UuidV7Generator};
use airisk_core::security::rbac::Role;
use airisk_store_postgres::{PostgresOptions, PostgresStore};
use airisk_testkit::conformance::event;
use airisk_testkit::fixtures::{ManualClock, human, tenant};
use airisk_testkit::governance_conformance::Services;

use crate::support::TestDb;

const PROCESSES: u64 = 4;
const TASKS: u64 = 16;
const APPENDS_PER_TASK: u64 = 25;
const WORKER: &str = "concurrency::four_processes_of_sixteen_tasks_append_to_one_tenant_gaplessly";
const WORKER_URL: &str = "AIRISK_PG_WORKER_URL";
const WORKER_ID: &str = "AIRISK_PG_WORKER_ID";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn four_processes_of_sixteen_tasks_append_to_one_tenant_gaplessly() {
    if let Ok(url) = std::env::var(WORKER_URL) {
        return worker_appends_to_acme(&url).await;
    }
    let db = TestDb::new().await;
    let exe = std::env::current_exe().unwrap();
    let mut children = Vec::new();
    for id in 0..PROCESSES {
        children.push(
            tokio::process::Command::new(&exe)
                .args([
                    "--exact",
                    WORKER,
                    "--nocapture",
                    "--ignored",
                    "--test-threads",
                    "1",
                ])
                .env(WORKER_URL, &db.app_url)
                .env(WORKER_ID, id.to_string())
                .kill_on_drop(true)
                .output(),
        );
    }
    for (id, child) in children.into_iter().enumerate() {
        let out = tokio::time::timeout(Duration::from_secs(300), child)
            .await
            .expect("worker finished within 5 minutes")
            .expect("worker started");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "worker {id} failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let store = Arc::new(db.store(Arc::new(SystemClock)).await);
    let t = tenant("acme");
    let total = PROCESSES * TASKS * APPENDS_PER_TASK;
    let entries = store.entries(&t, 0, usize::MAX).await.unwrap();
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (0..total).collect::<Vec<_>>(), "gapless from 0");
    let hashes: Vec<_> = entries.iter().map(|e| e.leaf_hash).collect();
    let head = store.tree_head(&t).await.unwrap();
    assert_eq!(head.size, total);
    assert_eq!(head.root, root_from_leaf_hashes(&hashes));
    // Every worker's records are there, once.
    let mut ids: Vec<_> = entries
        .iter()
        .map(|e| {
            airisk_core::governance::audit_record::AuditRecord::from_leaf_bytes(&e.leaf)
                .unwrap()
                .event()
                .id()
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, total);

    let logger = AuditLogger::new(
        store.clone() as Arc<dyn AuditRepository>,
        Arc::new(UuidV7Generator),
        Arc::new(SystemClock),
        LedgerName::parse("airisk.test/ledger").unwrap(),
        None,
        CheckpointPolicy::default(),
    );
    let report = logger.verify(&t, None, None, |_, _| {}).await.unwrap();
    assert!(report.is_intact(), "{:?}", report.to_json());
    assert_eq!(report.entries, total);
}

/// The worker: 16 tasks appending to tenant acme through one store (one process's pool and batch
/// writer), as fast as they can.
async fn worker_appends_to_acme(url: &str) {
    let id: u64 = std::env::var(WORKER_ID).unwrap().parse().unwrap();
    let store = Arc::new(
        PostgresStore::connect(url, Arc::new(SystemClock), PostgresOptions::default())
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..APPENDS_PER_TASK {
                let at = (id * TASKS + task) * 1000 + n;
                store.append(vec![event("acme", at)]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    store.close().await;
}

/// Two stores (two pools, two batch writers: two processes as far as the database can tell) race
/// to decide the same approval request: exactly one wins, and the loser wrote nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn of_two_stores_deciding_one_request_exactly_one_commits() {
    let db = TestDb::new().await;
    let clock = Arc::new(ManualClock::new());
    let a = Arc::new(db.store(clock.clone()).await);
    let b = Arc::new(db.store(clock.clone()).await);
    let sa = Services::new(
        a.clone() as Arc<dyn GovernanceStore>,
        a.clone() as Arc<dyn AuditRepository>,
        clock.clone(),
    );
    let sb = Services::new(
        b.clone() as Arc<dyn GovernanceStore>,
        b.clone() as Arc<dyn AuditRepository>,
        clock.clone(),
    );
    let admin = human("ada@acme.example", "acme", Role::Admin);
    let corr = airisk_core::request::CorrelationId::generate;
    sa.prompts
        .register_prompt(&admin, &corr(), "p", "a", "first")
        .await
        .unwrap();
    for round in 0..10u32 {
        let request = sa
            .workflow
            .request_approval(
                &admin,
                &corr(),
                airisk_core::governance::approval_workflow::NewApprovalRequest {
                    subject:
                        airisk_core::governance::approval_workflow::RequestedSubject::PromptLabel {
                            name: "p".into(),
                            version: 1,
                            label: format!("l{round}"),
                        },
                    justification: "ship it".into(),
                    required_approvals: 1,
                    expires_in: None,
                },
            )
            .await
            .unwrap()
            .request;
        let before = a.tree_head(&tenant("acme")).await.unwrap().size;
        let approve = {
            let wf = sa.workflow.clone();
            let id = request.id();
            tokio::spawn(async move {
                wf.approve(
                    &human("bob@acme.example", "acme", Role::Approver),
                    &corr(),
                    id,
                    "ok",
                )
                .await
            })
        };
        let reject = {
            let wf = sb.workflow.clone();
            let id = request.id();
            tokio::spawn(async move {
                wf.reject(
                    &human("carol@acme.example", "acme", Role::Approver),
                    &corr(),
                    id,
                    "no",
                )
                .await
            })
        };
        let (x, y) = (approve.await.unwrap(), reject.await.unwrap());
        let winners = u32::from(x.is_ok()) + u32::from(y.is_ok());
        assert_eq!(winners, 1, "round {round}: {x:?} {y:?}");
        let stored = a
            .approval(&tenant("acme"), request.id())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.version(), request.version() + 1, "round {round}");
        // The winner's decision record, plus whatever the loser recorded as a refusal (a
        // workflow audits denials), never a second decision.
        let after = a.tree_head(&tenant("acme")).await.unwrap().size;
        let new_records: Vec<_> = a
            .entries(&tenant("acme"), before, usize::MAX)
            .await
            .unwrap()
            .iter()
            .map(|e| {
                airisk_core::governance::audit_record::AuditRecord::from_leaf_bytes(&e.leaf)
                    .unwrap()
            })
            .collect();
        assert_eq!(new_records.len() as u64, after - before, "round {round}");
        let decisions: Vec<_> = new_records
            .iter()
            .filter(|r| {
                let e = r.event();
                matches!(e.action(), "approval.approve" | "approval.reject")
                    && e.outcome() == airisk_core::governance::audit_record::Outcome::Success
            })
            .map(|r| r.event().action().to_owned())
            .collect();
        assert_eq!(
            decisions.len(),
            1,
            "round {round}: exactly one decision, {decisions:?}"
        );
        let winner = if x.is_ok() {
            "approval.approve"
        } else {
            "approval.reject"
        };
        assert_eq!(
            decisions[0], winner,
            "round {round}: the recorded decision is the winner's"
        );
    }
}

/// Requests batched together keep their own outcomes: concurrent change sets of which half clash
/// (their second mutation re-inserts an existing prompt version) — the clashing ones are refused
/// whole, the others commit, and the ledger stays gapless with only the winners' records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn a_conflicting_change_set_in_a_batch_fails_alone() {
    use airisk_core::governance::approval_workflow::{
        ApprovalRequest, NewApprovalRequest, RequestedSubject,
    };
    use airisk_core::ports::{ApprovalFilter, ChangeSet, Mutation, Page, StoreError};

    let db = TestDb::new().await;
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(db.store(clock.clone()).await);
    let s = Services::new(
        store.clone() as Arc<dyn GovernanceStore>,
        store.clone() as Arc<dyn AuditRepository>,
        clock.clone(),
    );
    let admin = human("ada@acme.example", "acme", Role::Admin);
    s.prompts
        .register_prompt(
            &admin,
            &airisk_core::request::CorrelationId::generate(),
            "p",
            "a",
            "first",
        )
        .await
        .unwrap();
    let t = tenant("acme");
    let existing = store
        .prompt_versions(&t, &PromptName::parse("p").unwrap())
        .await
        .unwrap()
        .remove(0);
    let before = store.tree_head(&t).await.unwrap().size;
    let request = |n: u32| {
        ApprovalRequest::open(
            uuid::Uuid::now_v7(),
            &admin,
            NewApprovalRequest {
                subject: RequestedSubject::PromptLabel {
                    name: "p".into(),
                    version: 1,
                    label: format!("l{n}"),
                },
                justification: "ship it".into(),
                required_approvals: 1,
                expires_in: None,
            },
            airisk_core::ports::Clock::now(clock.as_ref()),
        )
        .unwrap()
    };
    let mut tasks = Vec::new();
    for n in 0..24u32 {
        let store = store.clone();
        let fresh = request(n);
        let clashes = n % 2 == 1;
        let mut mutations = vec![Mutation::InsertApproval(fresh.clone())];
        if clashes {
            mutations.push(Mutation::InsertPromptVersion(existing.clone()));
        }
        tasks.push(tokio::spawn(async move {
            let got = store
                .commit(ChangeSet {
                    tenant: tenant("acme"),
                    mutations,
                    audit: vec![event("acme", u64::from(n))],
                })
                .await;
            (clashes, fresh.id(), got)
        }));
    }
    let mut committed = Vec::new();
    for task in tasks {
        let (clashes, id, got) = task.await.unwrap();
        if clashes {
            assert!(matches!(got, Err(StoreError::Conflict { .. })), "{got:?}");
            assert!(
                store.approval(&t, id).await.unwrap().is_none(),
                "rolled back whole"
            );
        } else {
            assert_eq!(got.unwrap().len(), 1);
            committed.push(id);
        }
    }
    assert_eq!(committed.len(), 12);
    let listed = store
        .approvals(&t, &ApprovalFilter::default(), Page::first(100))
        .await
        .unwrap();
    assert_eq!(listed.len(), 12);
    let entries = store.entries(&t, 0, usize::MAX).await.unwrap();
    assert_eq!(entries.len() as u64, before + 12);
    assert!(entries.iter().enumerate().all(|(i, e)| e.seq == i as u64));
    let hashes: Vec<_> = entries.iter().map(|e| e.leaf_hash).collect();
    assert_eq!(
        store.tree_head(&t).await.unwrap().root,
        root_from_leaf_hashes(&hashes)
    );
}

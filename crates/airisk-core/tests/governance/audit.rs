//! The audit logger: record completeness, validation, deny-by-default, checkpoints, proofs and
//! tamper detection.

use std::sync::Arc;

use airisk_core::governance::audit_logger::{AuditError, AuditLogger, CheckpointPolicy};
use airisk_core::governance::audit_record::{
    AuditEventInput, AuditRecord, AuditValidationError, METADATA_MAX_BYTES, Outcome,
};
use airisk_core::governance::audit_verification::{Problem, VerifyOptions};
use airisk_core::ledger::{self, LedgerName, LedgerSigner, verify_checkpoint};
use airisk_core::ports::{AuditRepository, StoreError, UuidV7Generator};
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::{Principal, TenantId};
use airisk_testkit::InMemoryStore;
use airisk_testkit::fixtures::{ManualClock, human, tenant};

use crate::support::finishes;

struct Fixture {
    store: InMemoryStore,
    logger: AuditLogger,
    signer: Arc<LedgerSigner>,
    clock: Arc<ManualClock>,
}

fn ledger_name() -> LedgerName {
    LedgerName::parse("airisk.test/ledger").unwrap()
}

fn fixture(policy: CheckpointPolicy) -> Fixture {
    let clock = Arc::new(ManualClock::new());
    let store = InMemoryStore::new(clock.clone());
    let signer = Arc::new(LedgerSigner::generate(ledger_name()).unwrap());
    let logger = AuditLogger::new(
        Arc::new(store.clone()),
        Arc::new(UuidV7Generator),
        clock.clone(),
        ledger_name(),
        Some(signer.clone()),
        policy,
    );
    Fixture {
        store,
        logger,
        signer,
        clock,
    }
}

fn no_auto_checkpoints() -> CheckpointPolicy {
    CheckpointPolicy {
        every_entries: None,
        every_interval: None,
    }
}

fn input(tenant_id: &str, n: u32) -> AuditEventInput {
    AuditEventInput {
        actor: "alice@bank.example".into(),
        tenant_id: tenant_id.into(),
        action: "scoring.register".into(),
        resource_type: "model".into(),
        resource_id: format!("credit-scoring:{n}"),
        reason: Some("new challenger model".into()),
        correlation_id: format!("req-{n}"),
        metadata: Some(serde_json::json!({"framework": "xgboost", "n": n})),
    }
}

fn analyst() -> Principal {
    human("alice@bank.example", "acme", Role::Analyst)
}

async fn append(f: &Fixture, n: u32) {
    for i in 0..n {
        f.logger
            .log_action(&analyst(), input("acme", i))
            .await
            .unwrap();
    }
}

async fn records(store: &InMemoryStore, t: &TenantId) -> Vec<AuditRecord> {
    store
        .entries(t, 0, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| AuditRecord::from_leaf_bytes(&e.leaf).unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn audit_fields_completeness_who_what_when_why_and_correlation() {
    let f = fixture(no_auto_checkpoints());
    f.clock.advance(chrono::Duration::microseconds(5));
    let receipt = f
        .logger
        .log_action(&analyst(), input("acme", 7))
        .await
        .unwrap();
    assert_eq!(receipt.seq, 0);
    assert_eq!(receipt.tenant_id, tenant("acme"));
    assert_eq!(
        receipt.recorded_at,
        airisk_core::ports::Clock::now(&*f.clock)
    );

    let [record] = records(&f.store, &tenant("acme")).await.try_into().unwrap();
    let e = record.event();
    assert_eq!(e.actor().as_str(), "alice@bank.example"); // who
    assert_eq!(e.action(), "scoring.register"); // what
    assert_eq!(
        (e.resource_type(), e.resource_id()),
        ("model", "credit-scoring:7")
    );
    assert_eq!(e.reason(), Some("new challenger model")); // why
    assert_eq!(e.correlation_id().as_str(), "req-7");
    assert_eq!(e.outcome(), Outcome::Success);
    assert_eq!(e.id(), receipt.id);
    assert_eq!(e.id().get_version_num(), 7, "ids are UUIDv7");
    let leaf = String::from_utf8(record.leaf_bytes().to_vec()).unwrap();
    // When: UTC, RFC 3339, microseconds, Z.
    assert!(
        leaf.contains(r#""recorded_at":"2026-01-01T00:00:00.000005Z""#),
        "{leaf}"
    );
    assert_eq!(
        ledger::leaf_hash(record.leaf_bytes()).to_hex(),
        receipt.leaf_hash
    );
}

#[tokio::test(start_paused = true)]
async fn leaf_bytes_are_canonical_json_with_sorted_keys_and_no_nulls() {
    let f = fixture(no_auto_checkpoints());
    let mut without_reason = input("acme", 1);
    without_reason.reason = None;
    without_reason.metadata = None;
    f.logger
        .log_action(&analyst(), without_reason)
        .await
        .unwrap();
    let [record] = records(&f.store, &tenant("acme")).await.try_into().unwrap();
    let leaf = String::from_utf8(record.leaf_bytes().to_vec()).unwrap();
    assert!(leaf.starts_with(r#"{"action":"scoring.register","actor":"alice@bank.example","correlation_id":"req-1","id":""#), "{leaf}");
    assert!(!leaf.contains("null") && !leaf.contains("reason") && !leaf.contains("metadata"));
    assert!(!leaf.contains(' ') && !leaf.contains('\n'));
}

#[tokio::test(start_paused = true)]
async fn invalid_fields_are_typed_errors_and_append_nothing() {
    let f = fixture(no_auto_checkpoints());
    type Case = (&'static str, fn(&mut AuditEventInput));
    let cases: Vec<Case> = vec![
        ("empty actor", |i| i.actor.clear()),
        ("empty tenant", |i| i.tenant_id.clear()),
        ("empty action", |i| i.action.clear()),
        ("empty resource type", |i| i.resource_type.clear()),
        ("empty resource id", |i| i.resource_id.clear()),
        ("upper-case action", |i| {
            i.action = "Scoring.Register".into()
        }),
        ("oversize action", |i| i.action = "a".repeat(129)),
        ("oversize resource id", |i| i.resource_id = "r".repeat(257)),
        ("oversize reason", |i| i.reason = Some("y".repeat(4097))),
        ("control char in resource", |i| {
            i.resource_id = "a\u{7}b".into()
        }),
        ("metadata array", |i| {
            i.metadata = Some(serde_json::json!([1, 2]))
        }),
        ("metadata string", |i| {
            i.metadata = Some(serde_json::json!("x"))
        }),
        ("metadata too large", |i| {
            i.metadata = Some(serde_json::json!({"blob": "x".repeat(METADATA_MAX_BYTES)}))
        }),
        ("metadata unsafe integer", |i| {
            i.metadata = Some(serde_json::json!({"n": 9_007_199_254_740_993u64}))
        }),
        ("invalid correlation id", |i| {
            i.correlation_id = "has space".into()
        }),
        ("empty correlation id", |i| i.correlation_id.clear()),
    ];
    for (what, mutate) in cases {
        let mut bad = input("acme", 1);
        mutate(&mut bad);
        let got = f.logger.log_action(&analyst(), bad).await;
        assert!(
            matches!(got, Err(AuditError::Invalid(_))),
            "{what}: {got:?}"
        );
    }
    assert_eq!(f.logger.tree_head(&tenant("acme")).await.unwrap().size, 0);
}

#[tokio::test(start_paused = true)]
async fn validation_errors_name_the_field() {
    let f = fixture(no_auto_checkpoints());
    let mut bad = input("acme", 1);
    bad.resource_type.clear();
    let Err(AuditError::Invalid(e)) = f.logger.log_action(&analyst(), bad).await else {
        panic!("expected a validation error")
    };
    assert_eq!(
        e,
        AuditValidationError::Empty {
            field: "resource_type"
        }
    );
    assert_eq!(e.to_string(), "audit field resource_type must not be empty");
}

#[tokio::test(start_paused = true)]
async fn a_viewer_cannot_append_and_the_denial_is_recorded() {
    let f = fixture(no_auto_checkpoints());
    let viewer = human("victor@bank.example", "acme", Role::Viewer);
    let got = f.logger.log_action(&viewer, input("acme", 1)).await;
    assert!(matches!(got, Err(AuditError::Forbidden(_))), "{got:?}");
    let [denial] = records(&f.store, &tenant("acme")).await.try_into().unwrap();
    assert_eq!(denial.event().outcome(), Outcome::Denied);
    assert_eq!(denial.event().actor().as_str(), "victor@bank.example");
    assert_eq!(denial.event().action(), "audit.append");
    assert!(denial.event().reason().unwrap().contains("viewer"));
}

#[tokio::test(start_paused = true)]
async fn appending_to_another_tenants_ledger_is_refused_and_recorded_in_ones_own() {
    let f = fixture(no_auto_checkpoints());
    let got = f.logger.log_action(&analyst(), input("globex", 1)).await;
    assert!(
        matches!(got, Err(AuditError::TenantIsolation(_))),
        "{got:?}"
    );
    assert_eq!(f.logger.tree_head(&tenant("globex")).await.unwrap().size, 0);
    let [denial] = records(&f.store, &tenant("acme")).await.try_into().unwrap();
    assert_eq!(denial.event().outcome(), Outcome::Denied);
    assert_eq!(denial.event().tenant_id(), &tenant("acme"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_store_append_is_an_error_and_changes_nothing() {
    let f = fixture(no_auto_checkpoints());
    append(&f, 2).await;
    f.store.dangerous_fail_next_appends(1);
    let got = f.logger.log_action(&analyst(), input("acme", 9)).await;
    assert!(
        matches!(got, Err(AuditError::Store(StoreError::Unavailable { .. }))),
        "{got:?}"
    );
    assert_eq!(f.logger.tree_head(&tenant("acme")).await.unwrap().size, 2);
    let next = f
        .logger
        .log_action(&analyst(), input("acme", 10))
        .await
        .unwrap();
    assert_eq!(next.seq, 2, "no seq was consumed by the failed append");
}

#[tokio::test(start_paused = true)]
async fn checkpoints_are_signed_every_n_entries_and_verify_offline() {
    let f = fixture(CheckpointPolicy {
        every_entries: Some(3),
        every_interval: None,
    });
    append(&f, 7).await;
    let cps = f.store.checkpoints(&tenant("acme")).await.unwrap();
    assert_eq!(cps.iter().map(|c| c.size).collect::<Vec<_>>(), vec![3, 6]);
    let verifier = f.signer.verifier();
    for cp in &cps {
        let checked = verify_checkpoint(&cp.note, &verifier).unwrap();
        assert_eq!(checked.size, cp.size);
        assert_eq!(checked.root, cp.root);
        assert_eq!(checked.origin.as_str(), "airisk.test/ledger/acme");
        assert_eq!(
            f.logger.root_at(&tenant("acme"), cp.size).await.unwrap(),
            cp.root
        );
    }
    // On demand: the head (7) gets one; asking again returns the same.
    let on_demand = f.logger.checkpoint(&tenant("acme")).await.unwrap();
    assert_eq!(on_demand.size, 7);
    assert_eq!(
        f.logger.checkpoint(&tenant("acme")).await.unwrap(),
        on_demand
    );
}

#[tokio::test(start_paused = true)]
async fn checkpoints_are_signed_when_the_interval_passed() {
    let f = fixture(CheckpointPolicy {
        every_entries: None,
        every_interval: Some(std::time::Duration::from_secs(10)),
    });
    append(&f, 2).await;
    assert!(
        f.store
            .checkpoints(&tenant("acme"))
            .await
            .unwrap()
            .is_empty()
    );
    f.clock.advance(chrono::Duration::seconds(11));
    f.logger.checkpoint_if_stale(&tenant("acme")).await.unwrap();
    let cps = f.store.checkpoints(&tenant("acme")).await.unwrap();
    assert_eq!(cps.iter().map(|c| c.size).collect::<Vec<_>>(), vec![2]);
}

#[tokio::test(start_paused = true)]
async fn proofs_from_the_logger_verify_against_a_signed_checkpoint() {
    let f = fixture(no_auto_checkpoints());
    append(&f, 11).await;
    let cp = f.logger.checkpoint(&tenant("acme")).await.unwrap();
    let checkpoint = verify_checkpoint(&cp.note, &f.signer.verifier()).unwrap();
    let entries = f.store.entries(&tenant("acme"), 0, 100).await.unwrap();
    for e in &entries {
        let proof = f
            .logger
            .inclusion_proof(&tenant("acme"), e.seq, checkpoint.size)
            .await
            .unwrap();
        ledger::verify_inclusion(
            e.seq,
            checkpoint.size,
            ledger::leaf_hash(&e.leaf),
            &proof,
            checkpoint.root,
        )
        .unwrap();
    }
    let old_root = f.logger.root_at(&tenant("acme"), 4).await.unwrap();
    let proof = f
        .logger
        .consistency_proof(&tenant("acme"), 4, 11)
        .await
        .unwrap();
    ledger::verify_consistency(4, 11, old_root, checkpoint.root, &proof).unwrap();
    let beyond = f.logger.inclusion_proof(&tenant("acme"), 0, 12).await;
    assert!(
        matches!(
            beyond,
            Err(AuditError::BeyondTree {
                requested: 12,
                size: 11
            })
        ),
        "{beyond:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_intact_ledger_verifies_with_every_checkpoint() {
    let f = fixture(CheckpointPolicy {
        every_entries: Some(4),
        every_interval: None,
    });
    append(&f, 10).await;
    let kept = f.logger.checkpoint(&tenant("acme")).await.unwrap();
    let report = finishes(f.logger.verify(
        &tenant("acme"),
        Some(&f.signer.verifier()),
        Some(&kept.note),
        |_, _| {},
    ))
    .await
    .unwrap();
    assert!(report.is_intact(), "{:?}", report.problem);
    assert_eq!(report.entries, 10);
    assert_eq!(report.checkpoints_verified, 3); // sizes 4, 8, 10
    assert!(report.kept_checkpoint_verified);
    assert_eq!(report.root, Some(kept.root));
}

async fn verify(f: &Fixture, kept: Option<&str>) -> Option<Problem> {
    finishes(
        f.logger
            .verify(&tenant("acme"), Some(&f.signer.verifier()), kept, |_, _| {}),
    )
    .await
    .unwrap()
    .problem
}

#[tokio::test(start_paused = true)]
async fn one_byte_changed_in_a_stored_record_is_caught_at_its_seq() {
    let f = fixture(no_auto_checkpoints());
    append(&f, 6).await;
    let mut leaf = f.store.entries(&tenant("acme"), 3, 1).await.unwrap()[0]
        .leaf
        .clone();
    let at = leaf.iter().position(|b| *b == b'3').unwrap(); // the "credit-scoring:3" id
    leaf[at] = b'4';
    f.store.dangerous_overwrite_leaf(&tenant("acme"), 3, leaf);
    let problem = verify(&f, None).await.unwrap();
    assert_eq!(problem, Problem::LeafHashMismatch { seq: 3 });
    assert_eq!(problem.seq(), Some(3));
}

#[tokio::test(start_paused = true)]
async fn a_record_rewritten_with_its_hash_is_caught_by_the_signed_root() {
    let f = fixture(CheckpointPolicy {
        every_entries: Some(5),
        every_interval: None,
    });
    append(&f, 8).await;
    // The attacker re-signs nothing, but rewrites entry 2 and its stored hash consistently.
    let entries = f.store.entries(&tenant("acme"), 2, 1).await.unwrap();
    let forged = String::from_utf8(entries[0].leaf.clone())
        .unwrap()
        .replace("credit-scoring:2", "credit-scoring:X");
    f.store
        .dangerous_rewrite_entry(&tenant("acme"), 2, forged.into_bytes());
    let problem = verify(&f, None).await.unwrap();
    assert!(
        matches!(&problem, Problem::RootMismatch { size: 5, .. }),
        "{problem:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deleted_record_is_caught_at_its_seq() {
    let f = fixture(no_auto_checkpoints());
    append(&f, 6).await;
    f.store.dangerous_delete_entry(&tenant("acme"), 2);
    assert_eq!(
        verify(&f, None).await,
        Some(Problem::Gap {
            expected_seq: 2,
            found_seq: 3
        })
    );
}

#[tokio::test(start_paused = true)]
async fn two_swapped_records_are_caught_at_the_first() {
    let f = fixture(no_auto_checkpoints());
    append(&f, 6).await;
    f.store.dangerous_swap_entries(&tenant("acme"), 1, 4);
    let problem = verify(&f, None).await.unwrap();
    assert!(
        matches!(problem, Problem::MisplacedLeaf { seq: 1, .. }),
        "{problem:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_truncated_tail_is_caught_against_a_kept_checkpoint() {
    let f = fixture(no_auto_checkpoints());
    append(&f, 9).await;
    let kept = f.logger.checkpoint(&tenant("acme")).await.unwrap();
    // An operator restores an older, self-consistent state: only the kept checkpoint knows.
    f.store.dangerous_truncate(&tenant("acme"), 6);
    assert_eq!(
        verify(&f, None).await,
        None,
        "the store alone looks consistent"
    );
    assert_eq!(
        verify(&f, Some(&kept.note)).await,
        Some(Problem::Truncated {
            kept_size: 9,
            ledger_size: 6
        })
    );
}

#[tokio::test(start_paused = true)]
async fn a_rolled_back_and_rewritten_tail_is_caught_against_a_kept_checkpoint() {
    let f = fixture(no_auto_checkpoints());
    append(&f, 6).await;
    let kept = f.logger.checkpoint(&tenant("acme")).await.unwrap();
    f.store.dangerous_truncate(&tenant("acme"), 4);
    append(&f, 2).await; // same size again, different history
    let problem = verify(&f, Some(&kept.note)).await.unwrap();
    assert!(
        matches!(&problem, Problem::RootMismatch { size: 6, what } if what == "kept checkpoint"),
        "{problem:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_checkpoint_forged_with_another_key_is_caught() {
    let f = fixture(no_auto_checkpoints());
    append(&f, 3).await;
    let genuine = f.logger.checkpoint(&tenant("acme")).await.unwrap();
    let impostor = LedgerSigner::generate(ledger_name()).unwrap();
    let forged = airisk_core::ledger::Checkpoint::new(
        ledger_name().origin_for(&tenant("acme")),
        genuine.size,
        genuine.root,
    )
    .sign(&impostor)
    .unwrap()
    .into_note_text();
    f.store
        .dangerous_replace_checkpoint_note(&tenant("acme"), genuine.size, forged.clone());
    let problem = verify(&f, None).await.unwrap();
    assert!(
        matches!(problem, Problem::BadCheckpoint { size: 3, .. }),
        "{problem:?}"
    );
    // The same forged note handed in as a "kept" checkpoint is rejected too.
    let f2 = fixture(no_auto_checkpoints());
    append(&f2, 3).await;
    let problem = verify(&f2, Some(&forged)).await.unwrap();
    assert!(
        matches!(problem, Problem::BadKeptCheckpoint { .. }),
        "{problem:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_checkpoint_of_another_tenant_is_not_accepted_for_this_one() {
    let f = fixture(no_auto_checkpoints());
    append(&f, 2).await;
    let globex = human("gina@globex.example", "globex", Role::Analyst);
    f.logger
        .log_action(&globex, input("globex", 1))
        .await
        .unwrap();
    let other = f.logger.checkpoint(&tenant("globex")).await.unwrap();
    let problem = verify(&f, Some(&other.note)).await.unwrap();
    assert!(
        matches!(problem, Problem::BadKeptCheckpoint { .. }),
        "{problem:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn tenants_ledgers_are_independent_trees() {
    let f = fixture(no_auto_checkpoints());
    append(&f, 3).await;
    let globex = human("gina@globex.example", "globex", Role::Analyst);
    let r = f
        .logger
        .log_action(&globex, input("globex", 1))
        .await
        .unwrap();
    assert_eq!(r.seq, 0);
    let acme = f.logger.tree_head(&tenant("acme")).await.unwrap();
    let gl = f.logger.tree_head(&tenant("globex")).await.unwrap();
    assert_eq!((acme.size, gl.size), (3, 1));
    assert_ne!(acme.root, gl.root);
    // Breaking globex's ledger does not affect acme's verification.
    f.store.dangerous_delete_entry(&tenant("globex"), 0);
    assert_eq!(verify(&f, None).await, None);
}

#[test]
fn each_appended_record_is_one_json_log_line_without_metadata_values() {
    let captured = airisk_testkit::CapturedLogs::new();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(captured.writer())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let f = fixture(no_auto_checkpoints());
            let mut i = input("acme", 1);
            i.metadata = Some(serde_json::json!({"customer_ssn": "123-45-6789"}));
            f.logger.log_action(&analyst(), i).await.unwrap();
        });
    });
    let out = captured.text();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["target"] == "audit")
        .collect();
    let [line] = lines.as_slice() else {
        panic!("expected one audit line, got: {out}")
    };
    let fields = &line["fields"];
    assert_eq!(fields["seq"], 0);
    assert_eq!(fields["actor"], "alice@bank.example");
    assert_eq!(fields["correlation_id"], "req-1");
    assert_eq!(fields["metadata_keys"], 1);
    assert!(
        !out.contains("123-45-6789"),
        "metadata values must not be logged: {out}"
    );
}

#[test]
fn principals_of_a_service_kind_still_need_the_permission() {
    let svc = Principal::service(
        airisk_core::security::tenant_context::ActorId::parse("svc:ci").unwrap(),
        tenant("acme"),
        Role::Viewer,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let f = fixture(no_auto_checkpoints());
        let got = f.logger.log_action(&svc, input("acme", 1)).await;
        assert!(matches!(got, Err(AuditError::Forbidden(_))));
    });
}

#[tokio::test(start_paused = true)]
async fn a_non_canonical_leaf_is_named_by_a_deep_verify() {
    let f = fixture(no_auto_checkpoints());
    append(&f, 4).await;
    // Same record, one space added, hash recomputed: only the roots (or a deep check) notice.
    let loose = leaf_text(&f, 2).await.replacen(",", ", ", 1);
    f.store
        .dangerous_rewrite_entry(&tenant("acme"), 2, loose.into_bytes());
    let shallow = verify(&f, None).await.unwrap();
    assert!(
        matches!(shallow, Problem::HeadMismatch { .. }),
        "{shallow:?}"
    );
    let deep = deep_problem(&f).await.unwrap();
    assert!(
        matches!(deep, Problem::MalformedLeaf { seq: 2, .. }),
        "{deep:?}"
    );
}

#[test]
fn idempotent_correlation_ids_are_listed_once_each_in_first_seen_order() {
    use airisk_core::governance::audit_record::AuditEvent;
    use airisk_core::ports::idempotent_correlations;
    use airisk_core::request::CorrelationId;
    use airisk_core::security::tenant_context::ActorId;

    let event = |correlation: &str| {
        AuditEvent::new(
            uuid::Uuid::nil(),
            tenant("acme"),
            ActorId::parse("alice@bank.example").unwrap(),
            "audit.append",
            Outcome::Success,
            "model",
            "m",
            None,
            CorrelationId::parse(correlation).unwrap(),
            None,
        )
        .unwrap()
    };
    let events: Vec<_> = ["idem-b", "req-1", "idem-a", "idem-b", "IDEM-c", "xidem-d"]
        .into_iter()
        .map(event)
        .collect();
    assert_eq!(idempotent_correlations(&events), vec!["idem-b", "idem-a"]);
    assert!(idempotent_correlations(&events[1..2]).is_empty());
}

/// The verifier key the logger hands out (printed by `airisk serve`, shown in its Debug) is the
/// one its checkpoints verify under; a logger without a signer has none.
#[tokio::test(start_paused = true)]
async fn the_verifier_key_the_logger_reports_verifies_its_checkpoints() {
    let f = fixture(no_auto_checkpoints());
    append(&f, 3).await;
    let checkpoint = f.logger.checkpoint(&tenant("acme")).await.unwrap();
    let key = f.logger.verifier_key().expect("a signer is configured");
    assert!(key.starts_with("airisk.test/ledger+"), "{key}");
    let verifier = ledger::LedgerVerifier::parse(&key).unwrap();
    assert_eq!(
        verify_checkpoint(&checkpoint.note, &verifier).unwrap().size,
        3
    );
    assert!(format!("{:?}", f.logger).contains(&key));
    let unsigned = AuditLogger::new(
        Arc::new(f.store.clone()),
        Arc::new(UuidV7Generator),
        f.clock.clone(),
        ledger_name(),
        None,
        no_auto_checkpoints(),
    );
    assert_eq!(unsigned.verifier_key(), None);
    assert!(matches!(
        unsigned.checkpoint(&tenant("acme")).await,
        Err(AuditError::NoSigningKey)
    ));
}

/// Which text fields may hold which control characters: a reason may span lines (`\n`, `\t`),
/// nothing else may hold any, and the error names the field and the byte. Metadata that is not
/// an object is refused with the JSON type it was.
#[tokio::test(start_paused = true)]
async fn only_a_reason_may_hold_line_breaks_and_tabs_and_errors_say_what_was_wrong() {
    let f = fixture(no_auto_checkpoints());
    let mut multi_line = input("acme", 1);
    multi_line.reason = Some("first line\n\tsecond line".into());
    f.logger
        .log_action(&analyst(), multi_line)
        .await
        .expect("a reason may span lines");

    let refused = |mutate: fn(&mut AuditEventInput)| {
        let mut bad = input("acme", 2);
        mutate(&mut bad);
        let logger = &f.logger;
        async move {
            match logger.log_action(&analyst(), bad).await {
                Err(AuditError::Invalid(e)) => e,
                other => panic!("expected a validation error, got {other:?}"),
            }
        }
    };
    assert_eq!(
        refused(|i| i.reason = Some("ok\u{1b}[31m".into())).await,
        AuditValidationError::InvalidCharacter {
            field: "reason",
            position: 2
        }
    );
    assert_eq!(
        refused(|i| i.resource_id = "credit\nscoring".into()).await,
        AuditValidationError::InvalidCharacter {
            field: "resource_id",
            position: 6
        }
    );
    assert_eq!(
        refused(|i| i.resource_type = "mo\tdel".into()).await,
        AuditValidationError::InvalidCharacter {
            field: "resource_type",
            position: 2
        }
    );
    for (metadata, found) in [
        (serde_json::json!([1]), "array"),
        (serde_json::json!("x"), "string"),
        (serde_json::json!(7), "number"),
        (serde_json::json!(true), "boolean"),
    ] {
        let mut bad = input("acme", 3);
        bad.metadata = Some(metadata);
        let Err(AuditError::Invalid(e)) = f.logger.log_action(&analyst(), bad).await else {
            panic!("expected a validation error for {found}")
        };
        assert_eq!(e, AuditValidationError::MetadataNotObject { found });
        assert_eq!(
            e.to_string(),
            format!("audit metadata must be a JSON object, not {found}")
        );
    }
    assert_eq!(f.logger.tree_head(&tenant("acme")).await.unwrap().size, 1);
}

/// A stored checkpoint whose note is genuinely signed, but for another root or another size than
/// the row says, is named as a mismatch. Accepting the row's own size and root instead would let
/// a rewritten tree pass against a note that never committed to it.
#[tokio::test(start_paused = true)]
async fn a_signed_note_that_disagrees_with_its_stored_row_is_a_mismatch() {
    for (what, note_size, other_root) in [
        ("same size, another root", 3, true),
        ("another size, same root", 2, false),
    ] {
        let f = fixture(no_auto_checkpoints());
        append(&f, 3).await;
        let genuine = f.logger.checkpoint(&tenant("acme")).await.unwrap();
        let root = if other_root {
            f.logger.root_at(&tenant("acme"), 2).await.unwrap()
        } else {
            genuine.root
        };
        let note = airisk_core::ledger::Checkpoint::new(
            ledger_name().origin_for(&tenant("acme")),
            note_size,
            root,
        )
        .sign(&f.signer)
        .unwrap()
        .into_note_text();
        assert!(
            verify_checkpoint(&note, &f.signer.verifier()).is_ok(),
            "{what}: the note itself is genuine"
        );
        f.store
            .dangerous_replace_checkpoint_note(&tenant("acme"), genuine.size, note);
        let problem = verify(&f, None).await;
        assert!(
            matches!(problem, Some(Problem::CheckpointMismatch { size: 3, .. })),
            "{what}: {problem:?}"
        );
    }
}

/// A key whose custodian cannot sign now makes the logger unready, with the custodian's reason.
#[tokio::test(start_paused = true)]
async fn the_logger_is_unready_while_its_external_signer_is() {
    struct Unreachable([u8; 32]);
    impl airisk_core::ledger::CheckpointSigning for Unreachable {
        fn public_key(&self) -> [u8; 32] {
            self.0
        }
        fn sign(&self, _: &[u8]) -> Result<[u8; 64], airisk_core::ledger::CheckpointError> {
            Err(airisk_core::ledger::CheckpointError::SigningUnavailable {
                reason: "token not present".into(),
            })
        }
        fn readiness(&self) -> Result<(), String> {
            Err("token not present".into())
        }
    }
    let f = fixture(no_auto_checkpoints());
    assert_eq!(f.logger.signer_readiness(), Ok(()));
    let public_key = *f.signer.verifier().public_key();
    let external = LedgerSigner::external(ledger_name(), Box::new(Unreachable(public_key)));
    let logger = AuditLogger::new(
        Arc::new(f.store.clone()),
        Arc::new(UuidV7Generator),
        f.clock.clone(),
        ledger_name(),
        Some(Arc::new(external)),
        no_auto_checkpoints(),
    );
    assert_eq!(logger.signer_readiness(), Err("token not present".into()));
    let unsigned = AuditLogger::new(
        Arc::new(f.store.clone()),
        Arc::new(UuidV7Generator),
        f.clock.clone(),
        ledger_name(),
        None,
        no_auto_checkpoints(),
    );
    assert_eq!(unsigned.signer_readiness(), Ok(()));
}

/// A record as JSON holds the same members as its leaf.
#[tokio::test(start_paused = true)]
async fn a_record_as_json_is_its_leaf() {
    let f = fixture(no_auto_checkpoints());
    append(&f, 2).await;
    let entries = f.store.entries(&tenant("acme"), 0, 10).await.unwrap();
    for entry in entries {
        let record = AuditRecord::from_leaf_bytes(&entry.leaf).unwrap();
        let leaf: serde_json::Value = serde_json::from_slice(&entry.leaf).unwrap();
        assert_eq!(record.to_json(), leaf);
        assert_eq!(record.to_json()["seq"], entry.seq);
    }
}

/// The interval alone never signs: a ledger with nothing new since its last checkpoint (or with
/// nothing at all) gets no new checkpoint however much time passes, and a logger without a key
/// is not asked to sign one.
#[tokio::test(start_paused = true)]
async fn an_idle_ledger_gets_no_checkpoint_when_the_interval_passes() {
    let f = fixture(CheckpointPolicy {
        every_entries: None,
        every_interval: Some(std::time::Duration::from_secs(10)),
    });
    // The first look starts the interval (no checkpoint yet); the second is past it.
    f.logger.checkpoint_if_stale(&tenant("acme")).await.unwrap();
    f.clock.advance(chrono::Duration::seconds(11));
    f.logger.checkpoint_if_stale(&tenant("acme")).await.unwrap();
    assert!(
        f.store
            .checkpoints(&tenant("acme"))
            .await
            .unwrap()
            .is_empty(),
        "an empty ledger was checkpointed"
    );
    let unsigned = AuditLogger::new(
        Arc::new(f.store.clone()),
        Arc::new(UuidV7Generator),
        f.clock.clone(),
        ledger_name(),
        None,
        CheckpointPolicy {
            every_entries: None,
            every_interval: Some(std::time::Duration::from_secs(10)),
        },
    );
    unsigned.checkpoint_if_stale(&tenant("acme")).await.unwrap();
    f.clock.advance(chrono::Duration::seconds(11));
    unsigned
        .checkpoint_if_stale(&tenant("acme"))
        .await
        .expect("nothing is due on an empty ledger, so no key is needed");
}

/// Entry `seq`'s leaf as text, for building tampered variants of it.
async fn leaf_text(f: &Fixture, seq: u64) -> String {
    let leaf = f.store.entries(&tenant("acme"), seq, 1).await.unwrap()[0]
        .leaf
        .clone();
    String::from_utf8(leaf).unwrap()
}

async fn deep_problem(f: &Fixture) -> Option<Problem> {
    finishes(f.logger.verify_with(
        &tenant("acme"),
        &VerifyOptions {
            verifier: Some(&f.signer.verifier()),
            kept_checkpoint: None,
            deep: true,
        },
        |_, _| {},
    ))
    .await
    .unwrap()
    .problem
}

/// A leaf rewritten with its hash and not in canonical form at its end is placed by parsing it:
/// its version, seq and tenant are still checked, and one that places right is left for the
/// roots to catch. A canonical-looking end with no version digits is not taken for version 0.
#[tokio::test(start_paused = true)]
async fn a_rewritten_leaf_is_placed_by_parsing_when_its_end_is_not_canonical() {
    let genuine_tail = r#","seq":2,"tenant_id":"acme","v":1}"#;
    type Case = (&'static str, &'static str, fn(&Problem) -> bool);
    let cases: [Case; 5] = [
        (
            "placed right",
            r#","seq":2,"tenant_id":"acme","v":1 }"#,
            |p| matches!(p, Problem::HeadMismatch { .. }),
        ),
        (
            "another version",
            r#","seq":2,"tenant_id":"acme","v":2 }"#,
            |p| {
                *p == Problem::MalformedLeaf {
                    seq: 2,
                    detail: "unsupported leaf version 2".into(),
                }
            },
        ),
        (
            "another seq",
            r#","seq":3,"tenant_id":"acme","v":1 }"#,
            |p| {
                *p == Problem::MisplacedLeaf {
                    seq: 2,
                    detail: "the leaf says seq 3".into(),
                }
            },
        ),
        (
            "another tenant",
            r#","seq":2,"tenant_id":"globex","v":1 }"#,
            |p| {
                *p == Problem::MisplacedLeaf {
                    seq: 2,
                    detail: "the leaf belongs to tenant globex".into(),
                }
            },
        ),
        (
            "no version digits",
            r#","seq":2,"tenant_id":"acme","v":}"#,
            |p| {
                matches!(p, Problem::MalformedLeaf { seq: 2, detail }
                if detail.starts_with("leaf bytes are not an audit record"))
            },
        ),
    ];
    for (what, tail, expected) in cases {
        let f = fixture(no_auto_checkpoints());
        append(&f, 4).await;
        let leaf = leaf_text(&f, 2).await;
        assert!(leaf.ends_with(genuine_tail), "{leaf}");
        let tampered = format!("{}{tail}", leaf.strip_suffix(genuine_tail).unwrap());
        f.store
            .dangerous_rewrite_entry(&tenant("acme"), 2, tampered.into_bytes());
        let problem = verify(&f, None).await.expect("tampering goes unnoticed");
        assert!(expected(&problem), "{what}: {problem:?}");
    }
}

/// A deep verify names a genuine record found at another seq, or in another tenant's ledger.
#[tokio::test(start_paused = true)]
async fn a_deep_verify_names_a_record_out_of_place() {
    let f = fixture(no_auto_checkpoints());
    append(&f, 4).await;
    f.store.dangerous_swap_entries(&tenant("acme"), 1, 2);
    assert_eq!(
        deep_problem(&f).await,
        Some(Problem::MisplacedLeaf {
            seq: 1,
            detail: "the leaf says seq 2".into()
        })
    );

    let f = fixture(no_auto_checkpoints());
    append(&f, 4).await;
    let globex = human("gina@globex.example", "globex", Role::Analyst);
    for n in 0..3 {
        f.logger
            .log_action(&globex, input("globex", n))
            .await
            .unwrap();
    }
    let theirs = f.store.entries(&tenant("globex"), 2, 1).await.unwrap()[0]
        .leaf
        .clone();
    f.store.dangerous_rewrite_entry(&tenant("acme"), 2, theirs);
    assert_eq!(
        deep_problem(&f).await,
        Some(Problem::MisplacedLeaf {
            seq: 2,
            detail: "the leaf belongs to tenant globex".into()
        })
    );
}

/// Each problem names its first bad entry where there is one, and a report prints as the JSON
/// the CLI's `--json` shows (members and values written out here, not taken from the code).
#[test]
fn problems_name_their_first_bad_entry_and_reports_print_as_json() {
    use airisk_core::governance::audit_verification::VerifyReport;
    let text = |s: &str| s.to_owned();
    let cases = [
        (Problem::LeafHashMismatch { seq: 4 }, Some(4)),
        (
            Problem::MalformedLeaf {
                seq: 5,
                detail: text("x"),
            },
            Some(5),
        ),
        (
            Problem::MisplacedLeaf {
                seq: 6,
                detail: text("x"),
            },
            Some(6),
        ),
        (
            Problem::Gap {
                expected_seq: 7,
                found_seq: 9,
            },
            Some(7),
        ),
        (
            Problem::Truncated {
                kept_size: 10,
                ledger_size: 8,
            },
            Some(8),
        ),
        (
            Problem::RootMismatch {
                size: 3,
                what: text("x"),
            },
            None,
        ),
        (
            Problem::BadCheckpoint {
                size: 3,
                detail: text("x"),
            },
            None,
        ),
        (
            Problem::CheckpointMismatch {
                size: 3,
                detail: text("x"),
            },
            None,
        ),
        (Problem::BadKeptCheckpoint { detail: text("x") }, None),
        (Problem::HeadMismatch { detail: text("x") }, None),
    ];
    for (problem, seq) in &cases {
        assert_eq!(problem.seq(), *seq, "{problem:?}");
    }

    let intact = VerifyReport {
        tenant: tenant("acme"),
        entries: 3,
        root: Some(ledger::empty_root()),
        checkpoints_verified: 1,
        kept_checkpoint_verified: true,
        problem: None,
    };
    assert!(intact.is_intact());
    assert_eq!(
        intact.to_json(),
        serde_json::json!({
            "tenant": "acme",
            "intact": true,
            "entries": 3,
            "root": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "checkpoints_verified": 1,
            "kept_checkpoint_verified": true,
            "first_bad_seq": null,
            "problem": null,
        })
    );
    let broken = VerifyReport {
        root: None,
        kept_checkpoint_verified: false,
        problem: Some(Problem::Gap {
            expected_seq: 7,
            found_seq: 9,
        }),
        ..intact
    };
    assert!(!broken.is_intact());
    assert_eq!(
        broken.to_json(),
        serde_json::json!({
            "tenant": "acme",
            "intact": false,
            "entries": 3,
            "root": null,
            "checkpoints_verified": 1,
            "kept_checkpoint_verified": false,
            "first_bad_seq": 7,
            "problem": "entry 7: missing (next stored entry is 9); a record was deleted",
        })
    );
}

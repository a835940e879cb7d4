//! The kernel against hostile input (issue 11): one canonical identity for four eyes and quorum,
//! kernel namespaces closed to the append API, application records marked in the leaf, and every
//! refusal recorded whatever the input held.

use std::sync::Arc;

use airisk_core::governance::approval_workflow::{
    ApprovalError, ApprovalRequest, ApprovalStatus, EXPIRE_ACTION, NewApprovalRequest,
    RequestedSubject,
};
use airisk_core::governance::audit_logger::{AuditError, AuditLogger, CheckpointPolicy};
use airisk_core::governance::audit_record::{
    AuditEvent, AuditEventInput, AuditRecord, KERNEL_NAMESPACES, Outcome, RecordOrigin,
    TRUNCATION_MARKER, is_kernel_action, recordable_text,
};
use airisk_core::ledger::LedgerName;
use airisk_core::ports::{AuditRepository, UuidV7Generator};
use airisk_core::security::rbac::{Action, Role};
use airisk_core::security::tenant_context::{ActorId, Principal};
use airisk_testkit::InMemoryStore;
use airisk_testkit::fixtures::{ManualClock, tenant};

use crate::support::*;

/// A principal as the authentication layer builds it from a token's `sub`.
fn from_sub(sub: &str, role: Role) -> Principal {
    Principal::human(ActorId::canonical(sub).unwrap(), tenant("acme"), role)
}

/// Spellings of `alice@acme.example` (the analyst who opens requests).
const ALICE_VARIANTS: &[&str] = &[
    "ALICE@ACME.EXAMPLE",
    "Alice@Acme.Example",
    // Full-width letters and full-width commercial at.
    "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}\u{ff20}acme.example",
    // Compatibility forms: ℯ (SCRIPT SMALL E) and a full-width full stop.
    "alic\u{212f}@acme\u{ff0e}example",
];

#[test]
fn canonical_ids_fold_case_full_width_and_compatibility_forms_into_one() {
    for (spelling, canonical) in [
        ("ADMIN1", "admin1"),
        ("\u{ff41}\u{ff44}\u{ff4d}\u{ff49}\u{ff4e}\u{ff11}", "admin1"),
        ("admin\u{00b9}", "admin1"),
        ("\u{fb01}ona", "fiona"), // ligature ﬁ
        ("\u{212a}ate", "kate"),  // KELVIN SIGN
        ("\u{017f}am", "sam"),    // long s
        ("Svc:Pipeline", "svc:pipeline"),
    ] {
        assert_eq!(
            ActorId::canonical(spelling).unwrap().as_str(),
            canonical,
            "{spelling:?}"
        );
    }
    for variant in ALICE_VARIANTS {
        assert_eq!(
            ActorId::canonical(variant).unwrap().as_str(),
            "alice@acme.example"
        );
    }
    // What does not fold into ASCII is refused, never a second identity.
    for refused in [
        "stra\u{00df}e",
        "\u{0130}lker",
        "a\u{200b}b",
        "\u{0430}dmin",
        "",
    ] {
        assert!(ActorId::canonical(refused).is_err(), "{refused:?}");
    }
    assert!(ActorId::canonical(&"\u{ff41}".repeat(400)).is_err());
    // Every principal holds the canonical id, however it was built.
    let p = Principal::human(
        ActorId::parse("Ada@Acme.Example").unwrap(),
        tenant("acme"),
        Role::Admin,
    );
    assert_eq!(p.actor().as_str(), "ada@acme.example");
    assert!(
        ActorId::parse("BOB")
            .unwrap()
            .same_identity(&ActorId::parse("bob").unwrap())
    );
}

async fn open_label_request(w: &World, quorum: u32) -> ApprovalRequest {
    w.prompts
        .register_prompt(&analyst(), &corr(), "p", "Hello {name}", "first")
        .await
        .unwrap();
    w.workflow
        .request_approval(
            &analyst(),
            &corr(),
            NewApprovalRequest {
                subject: RequestedSubject::PromptLabel {
                    name: "p".into(),
                    version: 1,
                    label: "production".into(),
                },
                justification: "ship v1".into(),
                required_approvals: quorum,
                expires_in: None,
            },
        )
        .await
        .unwrap()
        .request
}

#[tokio::test]
async fn a_variant_of_the_requester_can_neither_approve_nor_reject() {
    let w = World::new();
    let r = open_label_request(&w, 1).await;
    for variant in ALICE_VARIANTS {
        // The requester holding an approver token under another spelling.
        let me = from_sub(variant, Role::Admin);
        for got in [
            w.workflow.approve(&me, &corr(), r.id(), "fine").await,
            w.workflow.reject(&me, &corr(), r.id(), "no").await,
        ] {
            assert!(
                matches!(got, Err(ApprovalError::SelfApproval)),
                "{variant:?}: {got:?}"
            );
        }
    }
    let now = w.workflow.get(&viewer(), r.id()).await.unwrap();
    assert_eq!(now.status(), ApprovalStatus::Pending);
    // Each attempt is a denial in the ledger, under the canonical id.
    let denials: Vec<_> = w
        .audit("acme")
        .await
        .into_iter()
        .filter(|r| r.event().outcome() == Outcome::Denied)
        .collect();
    assert_eq!(denials.len(), ALICE_VARIANTS.len() * 2);
    assert!(
        denials
            .iter()
            .all(|d| d.event().actor().as_str() == "alice@acme.example")
    );
}

#[tokio::test]
async fn a_variant_of_an_approver_never_counts_twice_towards_a_quorum() {
    let w = World::new();
    let r = open_label_request(&w, 2).await;
    w.workflow
        .approve(
            &from_sub("bob@acme.example", Role::Approver),
            &corr(),
            r.id(),
            "ok",
        )
        .await
        .unwrap();
    for variant in [
        "BOB@ACME.EXAMPLE",
        "\u{ff42}\u{ff4f}\u{ff42}@acme.example",
        "\u{ff22}ob@acme\u{ff0e}example",
    ] {
        let got = w
            .workflow
            .approve(&from_sub(variant, Role::Approver), &corr(), r.id(), "ok")
            .await;
        assert!(
            matches!(got, Err(ApprovalError::AlreadyApproved { .. })),
            "{variant:?}: {got:?}"
        );
    }
    let now = w.workflow.get(&viewer(), r.id()).await.unwrap();
    assert_eq!(now.status(), ApprovalStatus::Pending);
    assert_eq!(now.approvals().len(), 1);
    let done = w
        .workflow
        .approve(&approver2(), &corr(), r.id(), "ok")
        .await
        .unwrap();
    assert_eq!(done.request.status(), ApprovalStatus::Approved);
}

/// Ids stored before canonical identities existed may be mixed case: the rules still compare
/// them canonically (the pure transitions, on a request as a store could hand it back).
#[test]
fn ids_stored_in_another_case_are_still_the_same_person() {
    let now = chrono::Utc::now();
    let opened = ApprovalRequest::open(
        uuid::Uuid::now_v7(),
        &analyst(),
        NewApprovalRequest {
            subject: RequestedSubject::PromptLabel {
                name: "p".into(),
                version: 1,
                label: "production".into(),
            },
            justification: "x".into(),
            required_approvals: 2,
            expires_in: None,
        },
        now,
    )
    .unwrap();
    let mut stored = serde_json::to_value(&opened).unwrap();
    stored["requested_by"] = "Alice@ACME.example".into();
    let legacy: ApprovalRequest = serde_json::from_value(stored).unwrap();
    assert!(matches!(
        legacy.approve(&analyst(), "x", now),
        Err(ApprovalError::SelfApproval)
    ));
    assert!(matches!(
        legacy.reject(&analyst(), "x", now),
        Err(ApprovalError::SelfApproval)
    ));
    assert!(legacy.cancel(&analyst(), "x", now).is_ok());
    let once = legacy.approve(&approver(), "x", now).unwrap();
    let mut stored = serde_json::to_value(&once).unwrap();
    stored["approvals"][0]["approver"] = "BOB@acme.example".into();
    let legacy: ApprovalRequest = serde_json::from_value(stored).unwrap();
    assert!(matches!(
        legacy.approve(&approver(), "x", now),
        Err(ApprovalError::AlreadyApproved { .. })
    ));
}

#[test]
fn every_action_the_kernel_records_is_in_a_kernel_namespace() {
    for action in Action::ALL {
        assert!(is_kernel_action(action.as_str()), "{}", action.as_str());
    }
    assert!(is_kernel_action(EXPIRE_ACTION));
    for ns in KERNEL_NAMESPACES {
        assert!(is_kernel_action(ns));
        assert!(is_kernel_action(&format!("{ns}.anything")));
        assert!(is_kernel_action(&format!("{}.x", ns.to_uppercase())));
        // A namespace is a whole dotted segment: `modeling.x` is not `model.`.
        assert!(!is_kernel_action(&format!("{ns}ing.x")));
    }
    assert!(is_kernel_action("\u{ff41}pproval.approve"));
    assert!(!is_kernel_action("loan.decision"));
}

fn logger() -> (Arc<InMemoryStore>, AuditLogger) {
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(InMemoryStore::new(clock.clone()));
    let logger = AuditLogger::new(
        store.clone(),
        Arc::new(UuidV7Generator),
        clock,
        LedgerName::parse("airisk.test/ledger").unwrap(),
        None,
        CheckpointPolicy {
            every_entries: None,
            every_interval: None,
        },
    );
    (store, logger)
}

fn app_input(action: &str, resource_id: &str) -> AuditEventInput {
    AuditEventInput {
        actor: "alice@acme.example".into(),
        tenant_id: "acme".into(),
        action: action.into(),
        resource_type: "loan".into(),
        resource_id: resource_id.into(),
        reason: None,
        correlation_id: "req-1".into(),
        metadata: None,
    }
}

async fn leaves(store: &InMemoryStore) -> Vec<Vec<u8>> {
    store
        .entries(&tenant("acme"), 0, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.leaf)
        .collect()
}

#[tokio::test]
async fn the_append_api_refuses_kernel_namespaces_and_marks_what_it_writes() {
    let (store, logger) = logger();
    for action in ["approval.approve", "model.register", "keys.rotate", "audit"] {
        let got = logger.log_action(&analyst(), app_input(action, "r")).await;
        assert!(
            matches!(got, Err(AuditError::KernelNamespace { .. })),
            "{action}: {got:?}"
        );
    }
    let denials = leaves(&store).await;
    assert_eq!(denials.len(), 4);
    for leaf in &denials {
        let r = AuditRecord::from_leaf_bytes(leaf).unwrap();
        assert_eq!(r.event().outcome(), Outcome::Denied);
        assert_eq!(r.event().origin(), RecordOrigin::Kernel);
    }
    logger
        .log_action(&analyst(), app_input("loan.decision", "L-1"))
        .await
        .unwrap();
    let all = leaves(&store).await;
    let leaf = all.last().unwrap();
    let text = std::str::from_utf8(leaf).unwrap();
    assert!(
        text.contains(r#","origin":"application","outcome":"success","#),
        "{text}"
    );
    // The marker sorts before `seq`: the leaf still ends with seq, tenant_id, v.
    assert!(
        text.ends_with(r#","seq":4,"tenant_id":"acme","v":1}"#),
        "{text}"
    );
    let r = AuditRecord::from_leaf_bytes(leaf).unwrap();
    assert_eq!(r.event().origin(), RecordOrigin::Application);
    assert_eq!(r.leaf_bytes(), &leaf[..]);
}

#[test]
fn leaves_without_the_marker_still_decode_as_kernel_records_and_no_other_marker_is_canonical() {
    let event = AuditEvent::parse(
        uuid::Uuid::now_v7(),
        Outcome::Success,
        app_input("model.register", "m@1"),
    )
    .unwrap();
    let kernel = event.clone().seal(0, chrono::Utc::now()).unwrap();
    let text = String::from_utf8(kernel.leaf_bytes().to_vec()).unwrap();
    assert!(!text.contains("origin"));
    let back = AuditRecord::from_leaf_bytes(kernel.leaf_bytes()).unwrap();
    assert_eq!(back.event().origin(), RecordOrigin::Kernel);
    // Writing "kernel" explicitly, or anything else, is not a valid leaf.
    for marker in ["kernel", "Application", ""] {
        let forged = text.replacen(
            r#","outcome":"#,
            &format!(r#","origin":"{marker}","outcome":"#),
            1,
        );
        assert!(
            AuditRecord::from_leaf_bytes(forged.as_bytes()).is_err(),
            "{marker:?}"
        );
    }
}

#[test]
fn recordable_text_keeps_clean_input_and_escapes_the_rest_with_a_digest() {
    let kept = recordable_text("credit@1.0", 256);
    assert_eq!(kept.text, "credit@1.0");
    assert!(kept.original.is_none());
    let escaped = recordable_text("a\u{1}b\\c\u{7f}\u{85}", 256);
    assert_eq!(escaped.text, r"a\u0001b\\c\u007f\u0085");
    let (sha, len) = escaped.original.unwrap();
    assert_eq!(len, "a\u{1}b\\c\u{7f}\u{85}".len());
    assert_eq!(sha.len(), 64);
    assert_eq!(recordable_text("", 256).text, "-");
    let long = recordable_text(&"é".repeat(200), 256);
    assert!(long.text.len() <= 256);
    assert!(long.text.ends_with(TRUNCATION_MARKER));
    assert!(long.text.starts_with("éé"));
    // Escaping an over-long run of control characters stays bounded too.
    let controls = recordable_text(&"\u{1}".repeat(10_000), 256);
    assert!(controls.text.len() <= 256 && controls.text.ends_with(TRUNCATION_MARKER));
}

#[tokio::test]
async fn a_refusal_naming_a_control_character_is_recorded_escaped() {
    let w = World::new();
    for name in ["credit\u{1}", "cr\u{0}edit", &"x".repeat(400)] {
        let before = w.audit("acme").await.len();
        let got = w
            .models
            .approve_model(&viewer(), &corr(), name, "1.0", "ok")
            .await;
        assert!(got.is_err());
        let after = w.audit("acme").await;
        assert_eq!(
            after.len(),
            before + 1,
            "{name:?}: the refusal was not recorded"
        );
        let denial = after.last().unwrap().event();
        assert_eq!(denial.outcome(), Outcome::Denied);
        assert!(!denial.resource_id().chars().any(char::is_control));
        let escaped = &denial.metadata().unwrap()["escaped"]["resource_id"];
        assert_eq!(escaped["bytes"], format!("{name}@1.0").len());
    }
}

#[test]
fn recordable_text_truncates_only_past_its_limit_and_never_past_it() {
    // Escaped to exactly the limit (4 + 6 bytes): kept whole, no marker.
    assert_eq!(recordable_text("abcd\u{1}", 10).text, r"abcd\u0001");
    // One byte more: truncated, with the marker.
    assert!(
        recordable_text("abcde\u{1}", 10)
            .text
            .ends_with(TRUNCATION_MARKER)
    );
    // A cut that falls inside a two-byte character moves back to the character's start: an odd
    // limit leaves room for an odd number of bytes before the marker.
    let odd = recordable_text(&"é".repeat(200), 257);
    assert!(odd.text.len() <= 257, "{}", odd.text.len());
    assert_eq!(odd.text.len(), 242 + TRUNCATION_MARKER.len());
    assert!(odd.text.ends_with(TRUNCATION_MARKER));
}

#[test]
fn metadata_may_be_64_kib_as_canonical_json_and_no_more() {
    use airisk_core::governance::audit_record::AuditValidationError;
    // {"k":"xxx…"} is the value's length plus 8 bytes.
    let event = |n: usize| approval_event(1, serde_json::json!({ "k": "x".repeat(n) }));
    assert!(event(65_536 - 8).is_ok());
    assert!(matches!(
        event(65_536 - 7),
        Err(AuditValidationError::MetadataTooLarge { .. })
    ));
}

#[test]
fn sensitive_metadata_from_a_json_object_holds_every_value() {
    use airisk_core::governance::audit_record::SensitiveMetadata;
    let serde_json::Value::Object(map) = serde_json::json!({"iban": "DE02…", "score": 712})
    else {
        unreachable!()
    };
    let sensitive = SensitiveMetadata::from_map(map.clone());
    assert!(!sensitive.is_empty());
    assert_eq!(sensitive.expose(), &map);
    assert!(sensitive.subject().is_none());
    assert!(SensitiveMetadata::from_map(serde_json::Map::new()).is_empty());
}

#[test]
fn sealed_metadata_may_be_64_kib_as_canonical_json_and_no_more() {
    use airisk_core::governance::audit_record::AuditValidationError;
    // {"s":"v1.k1.AAA…"} is the payload's length plus 14 bytes; the store sees only its form.
    let sealed = |n: usize| {
        let serde_json::Value::Object(map) =
            serde_json::json!({ "s": format!("v1.k1.{}", "A".repeat(n)) })
        else {
            unreachable!()
        };
        approval_event(1, serde_json::json!({ "k": 1 }))
            .unwrap()
            .with_sealed_metadata(map)
    };
    let at_limit = sealed(65_536 - 14).expect("exactly 64 KiB is allowed");
    assert_eq!(at_limit.sealed_metadata().unwrap().len(), 1);
    assert!(matches!(
        sealed(65_536 - 13),
        Err(AuditValidationError::MetadataTooLarge {
            len: 65_537,
            max: 65_536
        })
    ));
    assert!(sealed(10).is_ok());
}

#[test]
fn sensitive_metadata_debug_names_its_keys_and_never_a_value() {
    use airisk_core::governance::audit_record::SensitiveMetadata;
    let serde_json::Value::Object(map) =
        serde_json::json!({"iban": "DE02120300000000202051", "score": 712})
    else {
        unreachable!()
    };
    let shown = format!("{:?}", SensitiveMetadata::from_map(map));
    assert!(shown.starts_with("SensitiveMetadata"), "{shown}");
    assert!(
        shown.contains("\"iban\"") && shown.contains("\"score\""),
        "{shown}"
    );
    assert!(shown.contains("has_subject: false"), "{shown}");
    assert!(
        !shown.contains("DE02") && !shown.contains("712"),
        "a value leaked: {shown}"
    );
}

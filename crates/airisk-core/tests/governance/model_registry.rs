//! The model registry and the approval workflow rules it relies on.

use airisk_core::governance::approval_workflow::{ApprovalError, ApprovalStatus};
use airisk_core::governance::audit_record::Outcome;
use airisk_core::governance::model_registry::{
    Deployment, DeploymentDenial, ModelName, ModelRegistryError, ModelStatus, ModelVersionTag,
    RegisterModel,
};
use airisk_core::ports::{AuditRepository, GovernanceStore};
use airisk_testkit::fixtures::tenant;

use crate::support::*;

#[tokio::test]
async fn registering_creates_a_pending_model_with_its_approval_request_and_audit_records() {
    let w = World::new();
    let r = w.register(&admin(), "credit-scoring", "1.0.0").await;
    assert_eq!(r.model.status(), ModelStatus::Pending);
    assert!(!r.model.approved());
    assert_eq!(
        r.model.approved_by(),
        &[] as &[airisk_core::security::tenant_context::ActorId]
    );
    assert_eq!(r.model.approved_at(), None);
    assert_eq!(r.model.checksum().to_hex(), CHECKSUM);
    assert_eq!(r.model.model_name().as_str(), "credit-scoring");
    assert_eq!(r.model.version().as_str(), "1.0.0");
    assert_eq!(r.request.status(), ApprovalStatus::Pending);
    assert_eq!(r.request.approvals().len(), 0, "cannot auto-approve");
    assert_eq!(
        w.audit_trail("acme").await,
        vec![
            ("model.register".into(), Outcome::Success),
            ("approval.request".into(), Outcome::Success)
        ]
    );
    assert_eq!(r.receipts.len(), 2);
}

#[tokio::test]
async fn only_admins_may_register_models_and_refusals_are_audited() {
    let w = World::new();
    for who in [analyst(), approver(), viewer()] {
        let got = w
            .models
            .register_model(&who, &corr(), register_input("m", "1"))
            .await;
        assert!(
            matches!(got, Err(ModelRegistryError::Forbidden(_))),
            "{got:?}"
        );
    }
    assert!(
        w.store
            .model(
                &tenant("acme"),
                &ModelName::parse("m").unwrap(),
                &ModelVersionTag::parse("1").unwrap(),
            )
            .await
            .unwrap()
            .is_none()
    );
    let trail = w.audit_trail("acme").await;
    assert_eq!(trail.len(), 3);
    assert!(
        trail
            .iter()
            .all(|(a, o)| a == "model.register" && *o == Outcome::Denied)
    );
}

#[tokio::test]
async fn invalid_registrations_are_typed_errors_and_write_nothing() {
    let w = World::new();
    type Case = (&'static str, fn(&mut RegisterModel));
    let cases: Vec<Case> = vec![
        ("bad checksum", |i| i.checksum = "abc".into()),
        ("non-hex checksum", |i| i.checksum = "z".repeat(64)),
        ("empty name", |i| i.name.clear()),
        ("name with space", |i| i.name = "credit scoring".into()),
        ("empty version", |i| i.version.clear()),
        ("relative uri", |i| i.artifact_uri = "models/x.onnx".into()),
        ("metadata array", |i| {
            i.metadata = Some(serde_json::json!([1]))
        }),
        ("empty justification", |i| i.justification = "  ".into()),
        ("zero quorum", |i| i.required_approvals = Some(0)),
        ("huge quorum", |i| i.required_approvals = Some(11)),
        ("negative expiry", |i| i.expires_in_seconds = Some(-5)),
    ];
    for (what, mutate) in cases {
        let mut input = register_input("m", "1");
        mutate(&mut input);
        let got = w.models.register_model(&admin(), &corr(), input).await;
        assert!(
            matches!(
                got,
                Err(ModelRegistryError::Invalid(_)
                    | ModelRegistryError::Approval(ApprovalError::Invalid(_)))
            ),
            "{what}: {got:?}"
        );
    }
    assert!(w.audit("acme").await.is_empty());
}

#[tokio::test]
async fn a_duplicate_name_and_version_is_a_conflict() {
    let w = World::new();
    w.register(&admin(), "m", "1").await;
    let got = w
        .models
        .register_model(&admin(), &corr(), register_input("m", "1"))
        .await;
    assert!(
        matches!(got, Err(ModelRegistryError::AlreadyRegistered { .. })),
        "{got:?}"
    );
    // Another tenant may use the same name and version.
    w.models
        .register_model(&globex_admin(), &corr(), register_input("m", "1"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_approver_approves_and_the_model_records_who_and_when() {
    let w = World::new();
    w.register(&admin(), "m", "1").await;
    w.clock.advance(chrono::Duration::minutes(5));
    let request = w
        .models
        .approve_model(&approver(), &corr(), "m", "1", "validation report reviewed")
        .await
        .unwrap();
    assert_eq!(request.status(), ApprovalStatus::Approved);
    let model = w.models.get_model(&viewer(), "m", "1").await.unwrap();
    assert_eq!(model.status(), ModelStatus::Approved);
    assert!(model.approved());
    assert_eq!(model.approved_by()[0].as_str(), "bob@acme.example");
    assert_eq!(
        model.approved_at(),
        Some(airisk_core::ports::Clock::now(&*w.clock))
    );
    let trail = w.audit_trail("acme").await;
    assert_eq!(
        trail[2..],
        [
            ("approval.approve".into(), Outcome::Success),
            ("model.approve".into(), Outcome::Success)
        ]
    );
}

#[tokio::test]
async fn a_model_cannot_be_approved_twice() {
    let w = World::new();
    w.register(&admin(), "m", "1").await;
    w.models
        .approve_model(&approver(), &corr(), "m", "1", "ok")
        .await
        .unwrap();
    for who in [approver(), approver2()] {
        let again = w
            .models
            .approve_model(&who, &corr(), "m", "1", "again")
            .await;
        assert!(
            matches!(
                again,
                Err(ModelRegistryError::Approval(ApprovalError::NotPending {
                    status: ApprovalStatus::Approved
                }))
            ),
            "{again:?}"
        );
    }
}

#[tokio::test]
async fn the_registrant_cannot_approve_their_own_model() {
    let w = World::new();
    w.register(&admin(), "m", "1").await;
    let got = w
        .models
        .approve_model(&admin(), &corr(), "m", "1", "lgtm")
        .await;
    assert!(
        matches!(
            got,
            Err(ModelRegistryError::Approval(ApprovalError::SelfApproval))
        ),
        "{got:?}"
    );
    let model = w.models.get_model(&viewer(), "m", "1").await.unwrap();
    assert_eq!(model.status(), ModelStatus::Pending);
    let (action, outcome) = w.audit_trail("acme").await.pop().unwrap();
    assert_eq!(
        (action.as_str(), outcome),
        ("approval.approve", Outcome::Denied)
    );
}

#[tokio::test]
async fn analysts_and_viewers_cannot_approve_or_reject() {
    let w = World::new();
    w.register(&admin(), "m", "1").await;
    for who in [analyst(), viewer()] {
        let a = w.models.approve_model(&who, &corr(), "m", "1", "x").await;
        assert!(matches!(a, Err(ModelRegistryError::Forbidden(_))), "{a:?}");
        let r = w.models.reject_model(&who, &corr(), "m", "1", "x").await;
        assert!(matches!(r, Err(ModelRegistryError::Forbidden(_))), "{r:?}");
    }
    assert_eq!(
        w.models
            .get_model(&viewer(), "m", "1")
            .await
            .unwrap()
            .status(),
        ModelStatus::Pending
    );
}

#[tokio::test]
async fn a_service_principal_never_approves() {
    let w = World::new();
    w.register(&admin(), "m", "1").await;
    let svc = airisk_core::security::tenant_context::Principal::service(
        airisk_core::security::tenant_context::ActorId::parse("svc:pipeline").unwrap(),
        tenant("acme"),
        airisk_core::security::rbac::Role::Approver,
    );
    let got = w
        .models
        .approve_model(&svc, &corr(), "m", "1", "auto")
        .await;
    assert!(
        matches!(
            got,
            Err(ModelRegistryError::Approval(ApprovalError::NotHuman))
        ),
        "{got:?}"
    );
}

#[tokio::test]
async fn cannot_deploy_an_unapproved_model() {
    let w = World::new();
    w.register(&admin(), "m", "1").await;
    let got = w
        .models
        .authorize_deployment(&analyst(), &corr(), "m", "1", CHECKSUM)
        .await
        .unwrap();
    assert_eq!(
        got,
        Deployment::Denied {
            reason: DeploymentDenial::NotApproved(ModelStatus::Pending)
        }
    );
    let last = w.audit("acme").await.pop().unwrap();
    assert_eq!(last.event().action(), "model.authorize_deployment");
    assert_eq!(last.event().outcome(), Outcome::Denied);
    assert!(last.event().reason().unwrap().contains("PENDING"));
}

#[tokio::test]
async fn cannot_deploy_a_rejected_model() {
    let w = World::new();
    w.register(&admin(), "m", "1").await;
    w.models
        .reject_model(&approver(), &corr(), "m", "1", "bias findings open")
        .await
        .unwrap();
    let model = w.models.get_model(&viewer(), "m", "1").await.unwrap();
    assert_eq!(model.status(), ModelStatus::Rejected);
    assert_eq!(model.rejected_by().unwrap().as_str(), "bob@acme.example");
    let got = w
        .models
        .authorize_deployment(&analyst(), &corr(), "m", "1", CHECKSUM)
        .await
        .unwrap();
    assert_eq!(
        got,
        Deployment::Denied {
            reason: DeploymentDenial::NotApproved(ModelStatus::Rejected)
        }
    );
}

#[tokio::test]
async fn an_approved_model_deploys_only_with_the_registered_checksum() {
    let w = World::new();
    w.register(&admin(), "m", "1").await;
    w.models
        .approve_model(&approver(), &corr(), "m", "1", "ok")
        .await
        .unwrap();
    let wrong = w
        .models
        .authorize_deployment(&analyst(), &corr(), "m", "1", OTHER_CHECKSUM)
        .await
        .unwrap();
    assert_eq!(
        wrong,
        Deployment::Denied {
            reason: DeploymentDenial::ChecksumMismatch
        }
    );
    let upper = CHECKSUM.to_uppercase();
    let right = w
        .models
        .authorize_deployment(&analyst(), &corr(), "m", "1", &format!("sha256:{upper}"))
        .await
        .unwrap();
    assert!(matches!(right, Deployment::Authorized { .. }), "{right:?}");
    let trail = w.audit_trail("acme").await;
    assert_eq!(
        trail[trail.len() - 2..],
        [
            ("model.authorize_deployment".into(), Outcome::Denied),
            ("model.authorize_deployment".into(), Outcome::Success)
        ]
    );
    let malformed = w
        .models
        .authorize_deployment(&analyst(), &corr(), "m", "1", "not-a-digest")
        .await;
    assert!(
        matches!(malformed, Err(ModelRegistryError::Invalid(_))),
        "{malformed:?}"
    );
}

#[tokio::test]
async fn viewers_cannot_ask_for_a_deployment() {
    let w = World::new();
    w.register(&admin(), "m", "1").await;
    let got = w
        .models
        .authorize_deployment(&viewer(), &corr(), "m", "1", CHECKSUM)
        .await;
    assert!(
        matches!(got, Err(ModelRegistryError::Forbidden(_))),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_quorum_of_distinct_approvers_is_needed() {
    let w = World::new();
    let mut input = register_input("m", "1");
    input.required_approvals = Some(2);
    w.models
        .register_model(&admin(), &corr(), input)
        .await
        .unwrap();
    let first = w
        .models
        .approve_model(&approver(), &corr(), "m", "1", "ok")
        .await
        .unwrap();
    assert_eq!(first.status(), ApprovalStatus::Pending);
    assert_eq!(
        w.models
            .get_model(&viewer(), "m", "1")
            .await
            .unwrap()
            .status(),
        ModelStatus::Pending
    );
    let twice = w
        .models
        .approve_model(&approver(), &corr(), "m", "1", "ok again")
        .await;
    assert!(
        matches!(
            twice,
            Err(ModelRegistryError::Approval(
                ApprovalError::AlreadyApproved { .. }
            ))
        ),
        "{twice:?}"
    );
    let second = w
        .models
        .approve_model(&approver2(), &corr(), "m", "1", "ok")
        .await
        .unwrap();
    assert_eq!(second.status(), ApprovalStatus::Approved);
    let model = w.models.get_model(&viewer(), "m", "1").await.unwrap();
    let approvers: Vec<&str> = model.approved_by().iter().map(|a| a.as_str()).collect();
    assert_eq!(approvers, ["bob@acme.example", "carol@acme.example"]);
}

#[tokio::test]
async fn an_expired_request_cannot_be_approved_and_becomes_expired() {
    let w = World::new();
    let mut input = register_input("m", "1");
    input.expires_in_seconds = Some(3600);
    let r = w
        .models
        .register_model(&admin(), &corr(), input)
        .await
        .unwrap();
    w.clock.advance(chrono::Duration::seconds(3600));
    let got = w
        .models
        .approve_model(&approver(), &corr(), "m", "1", "late")
        .await;
    assert!(
        matches!(
            got,
            Err(ModelRegistryError::Approval(ApprovalError::Expired { .. }))
        ),
        "{got:?}"
    );
    let request = w.workflow.get(&viewer(), r.request.id()).await.unwrap();
    assert_eq!(request.status(), ApprovalStatus::Expired);
    assert!(
        w.audit_trail("acme")
            .await
            .contains(&("approval.expire".to_owned(), Outcome::Success)),
        "the expiry is on the record"
    );
    let again = w
        .models
        .approve_model(&approver2(), &corr(), "m", "1", "late")
        .await;
    assert!(
        matches!(
            again,
            Err(ModelRegistryError::Approval(ApprovalError::NotPending {
                status: ApprovalStatus::Expired
            }))
        ),
        "{again:?}"
    );
    assert_eq!(
        w.models
            .get_model(&viewer(), "m", "1")
            .await
            .unwrap()
            .status(),
        ModelStatus::Pending,
        "an expired request never approves the model"
    );
}

#[tokio::test]
async fn an_audit_failure_rolls_the_whole_command_back() {
    let w = World::new();
    w.store.dangerous_fail_next_appends(1);
    let got = w
        .models
        .register_model(&admin(), &corr(), register_input("m", "1"))
        .await;
    assert!(matches!(got, Err(ModelRegistryError::Store(_))), "{got:?}");
    assert!(
        w.store
            .model(
                &tenant("acme"),
                &ModelName::parse("m").unwrap(),
                &ModelVersionTag::parse("1").unwrap(),
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        w.store
            .approvals(
                &tenant("acme"),
                &Default::default(),
                airisk_core::ports::Page::first(10)
            )
            .await
            .unwrap()
            .is_empty()
    );
    assert!(w.audit("acme").await.is_empty());

    // And for an approval: the request and the model stay as they were.
    let r = w.register(&admin(), "m", "1").await;
    w.store.dangerous_fail_next_appends(1);
    let got = w
        .models
        .approve_model(&approver(), &corr(), "m", "1", "ok")
        .await;
    assert!(
        matches!(
            got,
            Err(ModelRegistryError::Approval(ApprovalError::Store(_)))
        ),
        "{got:?}"
    );
    let request = w.workflow.get(&viewer(), r.request.id()).await.unwrap();
    assert_eq!(
        (request.status(), request.version()),
        (ApprovalStatus::Pending, 1)
    );
    assert_eq!(
        w.models
            .get_model(&viewer(), "m", "1")
            .await
            .unwrap()
            .status(),
        ModelStatus::Pending
    );
    assert_eq!(w.store.tree_head(&tenant("acme")).await.unwrap().size, 2);
}

#[tokio::test]
async fn another_tenants_model_is_not_found_on_every_method() {
    let w = World::new();
    w.register(&admin(), "m", "1").await;
    let g = globex_approver();
    assert!(matches!(
        w.models.get_model(&g, "m", "1").await,
        Err(ModelRegistryError::NotFound)
    ));
    assert!(w.models.list_versions(&g, "m").await.unwrap().is_empty());
    assert!(matches!(
        w.models.approve_model(&g, &corr(), "m", "1", "x").await,
        Err(ModelRegistryError::NotFound)
    ));
    assert!(matches!(
        w.models.reject_model(&g, &corr(), "m", "1", "x").await,
        Err(ModelRegistryError::NotFound)
    ));
    let ga = globex_admin();
    assert!(matches!(
        w.models
            .authorize_deployment(&ga, &corr(), "m", "1", CHECKSUM)
            .await,
        Err(ModelRegistryError::NotFound)
    ));
    // The acme model is untouched, and the attempts are recorded in globex's own ledger only.
    assert_eq!(
        w.models
            .get_model(&viewer(), "m", "1")
            .await
            .unwrap()
            .status(),
        ModelStatus::Pending
    );
    assert_eq!(w.audit("acme").await.len(), 2);
    let globex = w.audit_trail("globex").await;
    assert_eq!(globex.len(), 3);
    assert!(globex.iter().all(|(_, o)| *o == Outcome::Denied));
}

#[tokio::test]
async fn versions_are_listed_in_registration_order() {
    let w = World::new();
    for v in ["1.0.0", "1.1.0", "2.0.0"] {
        w.register(&admin(), "m", v).await;
    }
    let versions: Vec<String> = w
        .models
        .list_versions(&viewer(), "m")
        .await
        .unwrap()
        .iter()
        .map(|m| m.version().to_string())
        .collect();
    assert_eq!(versions, ["1.0.0", "1.1.0", "2.0.0"]);
}

/// What a registration's validation says about `input` with `sensitive` values, on a registry
/// without a data-key envelope: `Ok(field)` names the refused field; `Err(())` means every check
/// passed and only sealing was left (which needs the envelope this registry lacks).
async fn refused_field(
    w: &World,
    input: RegisterModel,
    sensitive: &airisk_core::governance::audit_record::SensitiveMetadata,
) -> Result<&'static str, ()> {
    match w
        .models
        .register_model_sensitive(&admin(), &corr(), input, sensitive)
        .await
    {
        Err(ModelRegistryError::Invalid(e)) => Ok(e.field()),
        Err(ModelRegistryError::Sealing(_)) if !sensitive.is_empty() => Err(()),
        Ok(_) if sensitive.is_empty() => Err(()),
        other => panic!("unexpected outcome: {other:?}"),
    }
}

/// The limits a registration is held to are inclusive, at the values the API documents (written
/// out here): metadata and sensitive metadata 16,384 bytes of canonical JSON, a sensitive key 128
/// characters (not bytes), an artifact URI 2,048 bytes. A URI needs a scheme that starts with a
/// letter and holds only letters, digits, `+`, `-` and `.`, something after `://`, and no space.
#[tokio::test]
async fn registration_limits_are_inclusive_and_uris_are_checked_part_by_part() {
    use airisk_core::governance::audit_record::SensitiveMetadata;
    let w = World::new();
    let none = SensitiveMetadata::new();
    let mut n = 0;
    let mut input = |mutate: &dyn Fn(&mut RegisterModel)| {
        n += 1;
        let mut i = register_input("limits", &format!("{n}.0"));
        mutate(&mut i);
        i
    };
    // {"k":"xxx…"} is the string's length plus 8 bytes.
    let blob = |len: usize| serde_json::json!({ "k": "x".repeat(len - 8) });
    for (len, verdict) in [(16_384, Err(())), (16_385, Ok("metadata"))] {
        let i = input(&|i| i.metadata = Some(blob(len)));
        assert_eq!(refused_field(&w, i, &none).await, verdict, "metadata {len}");
    }

    let sensitive = |key: String, value: serde_json::Value| {
        let mut s = SensitiveMetadata::new();
        s.insert(&key, value);
        s
    };
    for (len, verdict) in [(16_384, Err(())), (16_385, Ok("sensitive_metadata"))] {
        let s = sensitive("k".into(), serde_json::json!("x".repeat(len - 8)));
        assert_eq!(
            refused_field(&w, input(&|_| {}), &s).await,
            verdict,
            "sensitive metadata {len}"
        );
    }
    for (chars, verdict) in [(128, Err(())), (129, Ok("sensitive_metadata"))] {
        let s = sensitive("é".repeat(chars), serde_json::json!(1));
        assert_eq!(
            refused_field(&w, input(&|_| {}), &s).await,
            verdict,
            "sensitive key of {chars} characters"
        );
    }

    let long_uri = |len: usize| format!("s3://bucket/{}", "k".repeat(len - 12));
    for (len, verdict) in [(2_048, Err(())), (2_049, Ok("artifact_uri"))] {
        let uri = long_uri(len);
        assert_eq!(uri.len(), len);
        let i = input(&|i| i.artifact_uri = uri.clone());
        assert_eq!(refused_field(&w, i, &none).await, verdict, "uri of {len}");
    }
    for (uri, verdict) in [
        ("s3://bucket/key", Err(())),
        ("git+ssh://host/repo.git", Err(())),
        ("x-y.z://a", Err(())),
        ("s_3://bucket/key", Ok("artifact_uri")),
        ("3s://bucket/key", Ok("artifact_uri")),
        ("s3://", Ok("artifact_uri")),
        ("s3://bucket/my key", Ok("artifact_uri")),
    ] {
        let i = input(&|i| i.artifact_uri = uri.into());
        assert_eq!(refused_field(&w, i, &none).await, verdict, "{uri}");
    }
}

/// The audit record of a registration lists the sensitive keys only when there are some.
#[tokio::test]
async fn a_plain_registration_records_no_sensitive_key_list() {
    let w = World::new();
    w.register(&admin(), "credit-scoring", "1.0.0").await;
    let register = w
        .audit("acme")
        .await
        .into_iter()
        .find(|r| r.event().action() == "model.register")
        .unwrap();
    let mut keys: Vec<&str> = register
        .event()
        .metadata()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["approval_request_id", "artifact_uri", "checksum"]);
}

/// A presented checksum matches only when every byte does: differences in several bytes never
/// cancel out (two bytes off by the same bits would under an XOR-accumulating comparison). A
/// digest prints as its 64 hex digits.
#[test]
fn a_checksum_matches_only_byte_for_byte_and_prints_as_hex() {
    use airisk_core::governance::model_version::Sha256Digest;
    let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let genuine = Sha256Digest::parse(hex).unwrap();
    assert_eq!(genuine, Sha256Digest::of(b"test"), "SHA-256 of \"test\"");
    assert_eq!(genuine.to_string(), hex);
    assert_eq!(format!("{genuine}"), genuine.to_hex());
    assert!(genuine.matches(&Sha256Digest::parse(hex).unwrap()));
    // One byte off; two bytes off by the same bit; all 32 bytes off by the same bit.
    let flip = |positions: &[usize]| {
        let mut bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        for &p in positions {
            bytes[p] ^= 0x01;
        }
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Sha256Digest::parse(&text).unwrap()
    };
    for positions in [vec![31], vec![0, 1], (0..32).collect::<Vec<_>>()] {
        let other = flip(&positions);
        assert!(!genuine.matches(&other), "bytes {positions:?} differ");
        assert!(!other.matches(&genuine), "bytes {positions:?} differ");
    }
}

/// A registered model keeps the artifact URI it was registered with.
#[tokio::test]
async fn a_registered_model_keeps_its_artifact_uri() {
    let w = World::new();
    let r = w.register(&admin(), "credit-scoring", "1.0.0").await;
    assert_eq!(
        r.model.artifact_uri(),
        "s3://models/credit-scoring/1.0.0/model.onnx"
    );
    let stored = w
        .models
        .get_model(&admin(), "credit-scoring", "1.0.0")
        .await
        .unwrap();
    assert_eq!(
        stored.artifact_uri(),
        "s3://models/credit-scoring/1.0.0/model.onnx"
    );
}

/// A model row starts at version 1 and a decision moves it to 2: the optimistic-concurrency
/// counter a store compares before writing the decided row.
#[tokio::test]
async fn a_decision_moves_the_model_row_from_version_1_to_2() {
    let w = World::new();
    let r = w.register(&admin(), "m", "1").await;
    assert_eq!(r.model.row_version(), 1);
    w.models
        .approve_model(&approver(), &corr(), "m", "1", "validation report reviewed")
        .await
        .unwrap();
    let model = w.models.get_model(&viewer(), "m", "1").await.unwrap();
    assert_eq!(model.row_version(), 2);
}

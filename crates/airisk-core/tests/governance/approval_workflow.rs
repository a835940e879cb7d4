//! The approval workflow: RBAC, four eyes, transitions, races, and a model-based property test
//! of the state machine.

use std::sync::Arc;

use airisk_core::governance::approval_workflow::{
    ApprovalError, ApprovalRequest, ApprovalStatus, ApprovalWorkflow, NewApprovalRequest,
    RequestedSubject,
};
use airisk_core::governance::audit_record::Outcome;
use airisk_core::ports::{ApprovalFilter, Page, UuidV7Generator};
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::Principal;
use airisk_testkit::InMemoryStore;
use airisk_testkit::fixtures::{ManualClock, human};
use proptest::prelude::*;

use crate::support::*;

/// A pending request for a label move of prompt `p` v1 (the generic way to open a request).
async fn open_request(w: &World, quorum: u32, expires: Option<i64>) -> ApprovalRequest {
    if w.prompts
        .get_prompt(
            &viewer(),
            "p",
            &airisk_core::governance::prompt_registry::PromptSelector::Latest,
        )
        .await
        .is_err()
    {
        w.prompts
            .register_prompt(&analyst(), &corr(), "p", "Hello {name}", "first")
            .await
            .unwrap();
    }
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
                expires_in: expires.map(chrono::Duration::seconds),
            },
        )
        .await
        .unwrap()
        .request
}

#[tokio::test]
async fn every_request_starts_pending_with_no_approvals() {
    let w = World::new();
    let r = open_request(&w, 1, None).await;
    assert_eq!(r.status(), ApprovalStatus::Pending);
    assert!(r.approvals().is_empty());
    assert_eq!(r.version(), 1);
    assert_eq!(r.requested_by().as_str(), "alice@acme.example");
}

#[tokio::test]
async fn the_workflow_enforces_rbac_on_every_command() {
    let w = World::new();
    let r = open_request(&w, 1, None).await;
    // Only roles with `create` open requests.
    for who in [approver(), viewer()] {
        let got = w
            .workflow
            .request_approval(
                &who,
                &corr(),
                NewApprovalRequest {
                    subject: r.subject().clone().into(),
                    justification: "x".into(),
                    required_approvals: 1,
                    expires_in: None,
                },
            )
            .await;
        assert!(matches!(got, Err(ApprovalError::Forbidden(_))), "{got:?}");
    }
    // Only roles with `approve` decide.
    for who in [analyst(), viewer()] {
        let a = w.workflow.approve(&who, &corr(), r.id(), "x").await;
        assert!(matches!(a, Err(ApprovalError::Forbidden(_))), "{a:?}");
        let j = w.workflow.reject(&who, &corr(), r.id(), "x").await;
        assert!(matches!(j, Err(ApprovalError::Forbidden(_))), "{j:?}");
    }
    // Viewers read.
    assert_eq!(
        w.workflow.get(&viewer(), r.id()).await.unwrap().id(),
        r.id()
    );
    let denied = w
        .audit_trail("acme")
        .await
        .into_iter()
        .filter(|(_, o)| *o == Outcome::Denied)
        .count();
    assert_eq!(denied, 6, "every refusal is audited");
}

#[tokio::test]
async fn self_approval_and_self_rejection_are_refused() {
    let w = World::new();
    // An admin holds both create and approve: the four-eyes rule still stops them.
    let r = w
        .workflow
        .request_approval(
            &admin(),
            &corr(),
            NewApprovalRequest {
                subject: RequestedSubject::PromptLabel {
                    name: "p".into(),
                    version: 1,
                    label: "production".into(),
                },
                justification: "x".into(),
                required_approvals: 1,
                expires_in: None,
            },
        )
        .await;
    // No prompt yet: not found.
    assert!(matches!(r, Err(ApprovalError::NotFound)), "{r:?}");
    w.prompts
        .register_prompt(&admin(), &corr(), "p", "t", "first")
        .await
        .unwrap();
    let r = w
        .workflow
        .request_approval(
            &admin(),
            &corr(),
            NewApprovalRequest {
                subject: RequestedSubject::PromptLabel {
                    name: "p".into(),
                    version: 1,
                    label: "production".into(),
                },
                justification: "x".into(),
                required_approvals: 1,
                expires_in: None,
            },
        )
        .await
        .unwrap()
        .request;
    let a = w.workflow.approve(&admin(), &corr(), r.id(), "mine").await;
    assert!(matches!(a, Err(ApprovalError::SelfApproval)), "{a:?}");
    let j = w.workflow.reject(&admin(), &corr(), r.id(), "mine").await;
    assert!(matches!(j, Err(ApprovalError::SelfApproval)), "{j:?}");
    assert_eq!(
        w.workflow.get(&viewer(), r.id()).await.unwrap().status(),
        ApprovalStatus::Pending
    );
}

#[tokio::test]
async fn status_transitions_happen_only_from_pending_and_terminal_states_are_final() {
    let w = World::new();
    // APPROVED is final.
    let r = open_request(&w, 1, None).await;
    w.workflow
        .approve(&approver(), &corr(), r.id(), "ok")
        .await
        .unwrap();
    for result in [
        w.workflow.approve(&approver2(), &corr(), r.id(), "x").await,
        w.workflow.reject(&approver2(), &corr(), r.id(), "x").await,
        w.workflow.cancel(&analyst(), &corr(), r.id(), "x").await,
    ] {
        assert!(
            matches!(
                result,
                Err(ApprovalError::NotPending {
                    status: ApprovalStatus::Approved
                })
            ),
            "{result:?}"
        );
    }
    // REJECTED is final.
    let r = open_request(&w, 2, None).await;
    w.workflow
        .approve(&approver(), &corr(), r.id(), "ok")
        .await
        .unwrap();
    w.workflow
        .reject(&approver2(), &corr(), r.id(), "no")
        .await
        .unwrap();
    let after = w
        .workflow
        .approve(&approver2(), &corr(), r.id(), "changed my mind")
        .await;
    assert!(
        matches!(
            after,
            Err(ApprovalError::NotPending {
                status: ApprovalStatus::Rejected
            })
        ),
        "{after:?}"
    );
    // CANCELLED is final, and only the requester cancels.
    let r = open_request(&w, 1, None).await;
    let not_mine = w.workflow.cancel(&admin(), &corr(), r.id(), "x").await;
    assert!(
        matches!(not_mine, Err(ApprovalError::NotRequester)),
        "{not_mine:?}"
    );
    w.workflow
        .cancel(&analyst(), &corr(), r.id(), "not needed")
        .await
        .unwrap();
    let after = w.workflow.approve(&approver(), &corr(), r.id(), "x").await;
    assert!(
        matches!(
            after,
            Err(ApprovalError::NotPending {
                status: ApprovalStatus::Cancelled
            })
        ),
        "{after:?}"
    );
}

#[tokio::test]
async fn decisions_need_a_reason() {
    let w = World::new();
    let r = open_request(&w, 1, None).await;
    let got = w
        .workflow
        .approve(&approver(), &corr(), r.id(), "   ")
        .await;
    assert!(matches!(got, Err(ApprovalError::Invalid(_))), "{got:?}");
    let got = w.workflow.reject(&approver(), &corr(), r.id(), "").await;
    assert!(matches!(got, Err(ApprovalError::Invalid(_))), "{got:?}");
}

#[tokio::test]
async fn a_pending_request_reads_as_expired_after_its_deadline() {
    let w = World::new();
    let r = open_request(&w, 1, Some(60)).await;
    let now = airisk_core::ports::Clock::now(&*w.clock);
    assert_eq!(r.status_at(now), ApprovalStatus::Pending);
    w.clock.advance(chrono::Duration::seconds(61));
    let later = airisk_core::ports::Clock::now(&*w.clock);
    assert_eq!(r.status_at(later), ApprovalStatus::Expired);
    let cancel = w.workflow.cancel(&analyst(), &corr(), r.id(), "x").await;
    assert!(
        matches!(cancel, Err(ApprovalError::Expired { .. })),
        "{cancel:?}"
    );
}

#[tokio::test]
async fn the_approver_queue_lists_pending_requests_of_others_oldest_first() {
    let w = World::new();
    let a = open_request(&w, 1, None).await;
    let b = open_request(&w, 1, None).await;
    w.workflow
        .approve(&approver(), &corr(), a.id(), "ok")
        .await
        .unwrap();
    let queue = w
        .workflow
        .list(
            &approver(),
            &ApprovalFilter {
                status: Some(ApprovalStatus::Pending),
                not_requested_by: Some(approver().actor().clone()),
                ..ApprovalFilter::default()
            },
            Page::first(50),
        )
        .await
        .unwrap();
    assert_eq!(
        queue.iter().map(ApprovalRequest::id).collect::<Vec<_>>(),
        vec![b.id()]
    );
    let mine = w
        .workflow
        .list(
            &analyst(),
            &ApprovalFilter {
                requested_by: Some(analyst().actor().clone()),
                ..ApprovalFilter::default()
            },
            Page::first(50),
        )
        .await
        .unwrap();
    assert_eq!(mine.len(), 2);
    let paged = w
        .workflow
        .list(
            &viewer(),
            &ApprovalFilter::default(),
            Page {
                offset: 1,
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        paged.iter().map(ApprovalRequest::id).collect::<Vec<_>>(),
        vec![b.id()]
    );
}

#[tokio::test]
async fn another_tenants_request_is_not_found_on_every_method() {
    let w = World::new();
    let r = open_request(&w, 1, None).await;
    let g = globex_approver();
    assert!(matches!(
        w.workflow.get(&g, r.id()).await,
        Err(ApprovalError::NotFound)
    ));
    assert!(matches!(
        w.workflow.approve(&g, &corr(), r.id(), "x").await,
        Err(ApprovalError::NotFound)
    ));
    assert!(matches!(
        w.workflow.reject(&g, &corr(), r.id(), "x").await,
        Err(ApprovalError::NotFound)
    ));
    let ga = globex_admin();
    assert!(matches!(
        w.workflow.cancel(&ga, &corr(), r.id(), "x").await,
        Err(ApprovalError::NotFound)
    ));
    assert!(
        w.workflow
            .list(&g, &ApprovalFilter::default(), Page::first(10))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        w.workflow.get(&viewer(), r.id()).await.unwrap().status(),
        ApprovalStatus::Pending
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_concurrent_approvals_exactly_one_wins_in_100_trials() {
    for trial in 0..100 {
        let w = Arc::new(World::new());
        let r = open_request(&w, 1, None).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut tasks = Vec::new();
        for who in [approver(), approver2()] {
            let (w, barrier, id) = (w.clone(), barrier.clone(), r.id());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                w.workflow.approve(&who, &corr(), id, "race").await
            }));
        }
        let mut wins = 0;
        let mut conflicts = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(d) => {
                    assert_eq!(d.request.status(), ApprovalStatus::Approved);
                    wins += 1;
                }
                Err(ApprovalError::Conflict | ApprovalError::NotPending { .. }) => conflicts += 1,
                Err(other) => panic!("trial {trial}: unexpected {other:?}"),
            }
        }
        assert_eq!((wins, conflicts), (1, 1), "trial {trial}");
        let stored = w.workflow.get(&viewer(), r.id()).await.unwrap();
        assert_eq!(stored.approvals().len(), 1, "trial {trial}");
        assert_eq!(stored.version(), 2, "trial {trial}");
        let approvals = w
            .audit_trail("acme")
            .await
            .into_iter()
            .filter(|(a, o)| a == "approval.approve" && *o == Outcome::Success)
            .count();
        assert_eq!(approvals, 1, "trial {trial}: one approval recorded");
    }
}

// ---------------------------------------------------------------------------------------------
// Model-based test: random command sequences against the real workflow and a tiny reference.

#[derive(Debug, Clone, Copy)]
enum Who {
    Requester,
    ApproverA,
    ApproverB,
    AdminC,
    Analyst2,
    Viewer,
    Service,
}

impl Who {
    fn principal(self) -> Principal {
        match self {
            Who::Requester => human("alice@acme.example", "acme", Role::Analyst),
            Who::ApproverA => human("bob@acme.example", "acme", Role::Approver),
            Who::ApproverB => human("carol@acme.example", "acme", Role::Approver),
            Who::AdminC => human("ada@acme.example", "acme", Role::Admin),
            Who::Analyst2 => human("dan@acme.example", "acme", Role::Analyst),
            Who::Viewer => human("victor@acme.example", "acme", Role::Viewer),
            Who::Service => Principal::service(
                airisk_core::security::tenant_context::ActorId::parse("svc:bot").unwrap(),
                airisk_testkit::fixtures::tenant("acme"),
                Role::Approver,
            ),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Cmd {
    Approve(Who),
    Reject(Who),
    Cancel(Who),
    Wait(i64),
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        Just(Who::Requester),
        Just(Who::ApproverA),
        Just(Who::ApproverB),
        Just(Who::AdminC),
        Just(Who::Analyst2),
        Just(Who::Viewer),
        Just(Who::Service),
    ]
}

fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        4 => who().prop_map(Cmd::Approve),
        2 => who().prop_map(Cmd::Reject),
        1 => who().prop_map(Cmd::Cancel),
        1 => (1i64..120).prop_map(Cmd::Wait),
    ]
}

/// The reference: what the rules say, written as plainly as possible.
#[derive(Debug)]
struct Reference {
    status: ApprovalStatus,
    approvers: Vec<&'static str>,
    quorum: usize,
    deadline: Option<i64>,
    now: i64,
}

impl Reference {
    fn may_decide(w: Who) -> bool {
        matches!(w, Who::ApproverA | Who::ApproverB | Who::AdminC)
    }
    fn name(w: Who) -> &'static str {
        match w {
            Who::Requester => "alice",
            Who::ApproverA => "bob",
            Who::ApproverB => "carol",
            Who::AdminC => "ada",
            Who::Analyst2 => "dan",
            Who::Viewer => "victor",
            Who::Service => "svc",
        }
    }
    /// Applies a command; true if it should succeed.
    fn apply(&mut self, c: Cmd) -> bool {
        let expired = |s: &Self| {
            s.status == ApprovalStatus::Pending && s.deadline.is_some_and(|d| s.now >= d)
        };
        match c {
            Cmd::Wait(s) => {
                self.now += s;
                true
            }
            Cmd::Approve(w) | Cmd::Reject(w) => {
                let has_role = Self::may_decide(w) || matches!(w, Who::Service);
                if !has_role {
                    return false; // RBAC first: nothing else changes
                }
                if expired(self) {
                    self.status = ApprovalStatus::Expired;
                    return false;
                }
                if matches!(w, Who::Service) || self.status != ApprovalStatus::Pending {
                    return false;
                }
                if let Cmd::Approve(_) = c {
                    if self.approvers.contains(&Self::name(w)) {
                        return false;
                    }
                    self.approvers.push(Self::name(w));
                    if self.approvers.len() >= self.quorum {
                        self.status = ApprovalStatus::Approved;
                    }
                } else {
                    self.status = ApprovalStatus::Rejected;
                }
                true
            }
            Cmd::Cancel(w) => {
                // cancel needs `create` (requester analyst, analyst2, admin)
                if !matches!(w, Who::Requester | Who::Analyst2 | Who::AdminC) {
                    return false;
                }
                if expired(self) {
                    self.status = ApprovalStatus::Expired;
                    return false;
                }
                if !matches!(w, Who::Requester) || self.status != ApprovalStatus::Pending {
                    return false;
                }
                self.status = ApprovalStatus::Cancelled;
                true
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_workflow_agrees_with_the_reference_state_machine(
        quorum in 1u32..=3,
        deadline in proptest::option::of(30i64..300),
        cmds in proptest::collection::vec(cmd(), 1..24),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let clock = Arc::new(ManualClock::new());
            let store = Arc::new(InMemoryStore::new(clock.clone()));
            let workflow = ApprovalWorkflow::new(store.clone(), clock.clone(), Arc::new(UuidV7Generator));
            let prompts = airisk_core::governance::prompt_registry::PromptRegistry::new(
                store.clone(), clock.clone(), Arc::new(UuidV7Generator));
            prompts.register_prompt(&Who::Requester.principal(), &corr(), "p", "t", "first").await.unwrap();
            let id = workflow
                .request_approval(&Who::Requester.principal(), &corr(), NewApprovalRequest {
                    subject: RequestedSubject::PromptLabel { name: "p".into(), version: 1, label: "production".into() },
                    justification: "x".into(),
                    required_approvals: quorum,
                    expires_in: deadline.map(chrono::Duration::seconds),
                })
                .await
                .unwrap()
                .request
                .id();
            let mut reference = Reference {
                status: ApprovalStatus::Pending,
                approvers: Vec::new(),
                quorum: quorum as usize,
                deadline,
                now: 0,
            };
            for c in cmds {
                let expected_ok = reference.apply(c);
                let got = match c {
                    Cmd::Wait(s) => {
                        clock.advance(chrono::Duration::seconds(s));
                        Ok(())
                    }
                    Cmd::Approve(w) => workflow.approve(&w.principal(), &corr(), id, "r").await.map(|_| ()),
                    Cmd::Reject(w) => workflow.reject(&w.principal(), &corr(), id, "r").await.map(|_| ()),
                    Cmd::Cancel(w) => workflow.cancel(&w.principal(), &corr(), id, "r").await.map(|_| ()),
                };
                prop_assert_eq!(got.is_ok(), expected_ok, "{:?} -> {:?}; reference {:?}", c, got, reference);
                let stored = workflow.get(&Who::Viewer.principal(), id).await.unwrap();
                prop_assert_eq!(stored.status(), reference.status, "after {:?}", c);
                prop_assert_eq!(stored.approvals().len(), reference.approvers.len());
                prop_assert!(stored.approvals().iter().all(|a| a.approver.as_str() != "alice@acme.example"));
            }
            Ok(())
        })?;
    }
}

#[test]
fn a_subject_keeps_its_json_form_and_refuses_names_no_subject_can_have() {
    use airisk_core::governance::approval_workflow::Subject;
    let model = RequestedSubject::Model {
        name: "credit-scoring".into(),
        version: "1.4.0".into(),
    }
    .parse()
    .unwrap();
    let label = RequestedSubject::PromptLabel {
        name: "risk/summary".into(),
        version: 2,
        label: "production".into(),
    }
    .parse()
    .unwrap();
    // The form the stores' subject columns, the request bodies and the API hold, byte for byte.
    assert_eq!(
        serde_json::to_string(&model).unwrap(),
        r#"{"kind":"model","name":"credit-scoring","version":"1.4.0"}"#
    );
    assert_eq!(
        serde_json::to_string(&label).unwrap(),
        r#"{"kind":"prompt_label","name":"risk/summary","version":2,"label":"production"}"#
    );
    assert_eq!(model.resource_id(), "credit-scoring@1.4.0");
    assert_eq!(label.resource_id(), "risk/summary@2#production");
    for s in [&model, &label] {
        let text = serde_json::to_string(s).unwrap();
        assert_eq!(&serde_json::from_str::<Subject>(&text).unwrap(), s);
    }
    // A stored subject is validated again when it is read.
    for bad in [
        r#"{"kind":"model","name":"-credit","version":"1"}"#,
        r#"{"kind":"model","name":"credit","version":""}"#,
        r#"{"kind":"model","name":"risk/credit","version":"1"}"#,
        r#"{"kind":"prompt_label","name":"p","version":1,"label":"prod label"}"#,
        r#"{"kind":"prompt_label","name":"/p","version":1,"label":"production"}"#,
    ] {
        assert!(serde_json::from_str::<Subject>(bad).is_err(), "{bad}");
    }
    // A name as sent is refused naming its field.
    for (sent, field) in [
        (
            RequestedSubject::Model {
                name: "credit".into(),
                version: "1 0".into(),
            },
            "model version",
        ),
        (
            RequestedSubject::PromptLabel {
                name: "p".repeat(129),
                version: 1,
                label: "production".into(),
            },
            "prompt name",
        ),
        (
            RequestedSubject::PromptLabel {
                name: "p".into(),
                version: 1,
                label: "l".repeat(65),
            },
            "label",
        ),
    ] {
        assert_eq!(sent.parse().unwrap_err().field(), field, "{sent:?}");
    }
}

/// What the auditor reads: every record of a request's life names its subject (as
/// `name@version#label`), and each decision the status and tally it led to. Expected values are
/// written out here, not taken from the code under test.
#[tokio::test]
async fn every_approval_record_names_the_subject_status_and_tally() {
    let w = World::new();
    let r = open_request(&w, 2, None).await;
    w.workflow
        .approve(&approver(), &corr(), r.id(), "looks right")
        .await
        .unwrap();
    w.workflow
        .approve(&approver2(), &corr(), r.id(), "agreed")
        .await
        .unwrap();
    let records = w.audit("acme").await;
    let of_request: Vec<_> = records
        .iter()
        .filter(|rec| rec.event().resource_id() == r.id().to_string())
        .collect();
    let seen: Vec<(
        &str,
        &str,
        serde_json::Value,
        serde_json::Value,
        serde_json::Value,
    )> = of_request
        .iter()
        .map(|rec| {
            let meta = rec.event().metadata().unwrap();
            (
                rec.event().action(),
                rec.event().resource_type(),
                meta["subject"].clone(),
                meta.get("status").cloned().unwrap_or_default(),
                meta.get("approvals").cloned().unwrap_or_default(),
            )
        })
        .collect();
    let subject = serde_json::json!("p@1#production");
    assert_eq!(
        seen,
        vec![
            (
                "approval.request",
                "approval_request",
                subject.clone(),
                serde_json::Value::Null,
                serde_json::Value::Null
            ),
            (
                "approval.approve",
                "approval_request",
                subject.clone(),
                serde_json::json!("PENDING"),
                serde_json::json!(1)
            ),
            (
                "approval.approve",
                "approval_request",
                subject,
                serde_json::json!("APPROVED"),
                serde_json::json!(2)
            ),
        ]
    );
    for rec in &of_request {
        assert_eq!(rec.event().metadata().unwrap()["required_approvals"], 2);
    }
}

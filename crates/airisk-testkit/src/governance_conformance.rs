//! The governance store conformance suite: the unit of work, optimistic versions and tenant
//! scoping, run unchanged against every [`GovernanceStore`].
//!
//! A store's test file expands
//! [`governance_store_conformance!`](crate::governance_store_conformance) with an async factory
//! that returns a fresh, empty store as `(Arc<dyn GovernanceStore>, Arc<dyn AuditRepository>)`
//! (the same store behind both ports).

#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing
)] // a conformance failure must fail the calling test loudly

use std::sync::Arc;

use airisk_core::governance::approval_workflow::{
    ApprovalRequest, ApprovalStatus, ApprovalWorkflow, NewApprovalRequest, RequestedSubject,
    Subject,
};
use airisk_core::governance::audit_record::AuditRecord;
use airisk_core::governance::model_registry::{ModelName, ModelRegistry, ModelVersionTag};
use airisk_core::governance::prompt_registry::{
    LabelName, PromptName, PromptRegistry, PromptSelector,
};
use airisk_core::ports::{
    ApprovalFilter, ApprovalWithSubject, AuditRepository, ChangeSet, DeliveryClaim,
    GovernanceStore, Mutation, Page, StoreError, SubjectState, UuidV7Generator,
};
use airisk_core::request::CorrelationId;
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::Principal;

use crate::conformance::event;
use crate::fixtures::{ManualClock, human, tenant};

/// Expands into one `#[tokio::test]` per governance conformance case. `$make` is a closure
/// `Fn(Arc<dyn Clock>) -> impl Future<Output = (Arc<dyn GovernanceStore>, Arc<dyn AuditRepository>)>`.
///
/// An optional leading attribute is put on every generated test, e.g.
/// `#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL"]` for a store that needs a server.
#[macro_export]
macro_rules! governance_store_conformance {
    (#[$attr:meta] $make:expr) => {
        $crate::governance_store_conformance!(@cases [#[$attr]] $make;
            a_commit_applies_state_and_audit_together,
            a_conflicting_mutation_rolls_back_the_whole_change_set,
            a_stale_version_is_a_conflict_and_changes_nothing,
            a_change_set_naming_another_tenant_is_refused,
            every_read_is_scoped_by_tenant,
            approvals_filter_and_page_oldest_first,
            prompt_versions_are_immutable_and_ordered,
            a_label_move_from_a_stale_position_conflicts,
            of_concurrent_updates_of_one_version_exactly_one_commits,
            stored_values_read_back_exactly,
            prompt_versions_keep_their_author_and_change_reason,
            a_mutation_of_another_tenant_is_refused_and_stores_nothing,
            a_webhook_delivery_is_claimed_once_until_its_claim_expires,
            of_concurrent_claims_of_one_delivery_exactly_one_wins,
            a_request_is_read_with_the_state_of_its_subject,
        );
    };
    ($make:expr) => {
        $crate::governance_store_conformance!(#[cfg(all())] $make);
    };
    (@cases $attrs:tt $make:expr; $($case:ident),+ $(,)?) => {
        $(
            $crate::governance_store_conformance!(@case $attrs $make; $case);
        )+
    };
    (@case [$($attr:tt)*] $make:expr; $case:ident) => {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $($attr)*
            async fn $case() {
                let clock: ::std::sync::Arc<$crate::fixtures::ManualClock> =
                    ::std::sync::Arc::new($crate::fixtures::ManualClock::new());
                let (gov, audit) = ($make)(clock.clone() as ::std::sync::Arc<dyn ::airisk_core::ports::Clock>).await;
                $crate::governance_conformance::$case($crate::governance_conformance::Services::new(gov, audit, clock)).await;
            }
    };
}

/// The services over the store under test.
#[derive(Debug)]
pub struct Services {
    /// The store as a governance store.
    pub gov: Arc<dyn GovernanceStore>,
    /// The same store as an audit repository.
    pub audit: Arc<dyn AuditRepository>,
    /// The clock the store stamps with.
    pub clock: Arc<ManualClock>,
    /// Workflow over the store.
    pub workflow: ApprovalWorkflow,
    /// Model registry over the store.
    pub models: ModelRegistry,
    /// Prompt registry over the store.
    pub prompts: PromptRegistry,
}

impl Services {
    /// Builds the services.
    pub fn new(
        gov: Arc<dyn GovernanceStore>,
        audit: Arc<dyn AuditRepository>,
        clock: Arc<ManualClock>,
    ) -> Self {
        let ids = Arc::new(UuidV7Generator);
        Services {
            workflow: ApprovalWorkflow::new(gov.clone(), clock.clone(), ids.clone()),
            models: ModelRegistry::new(gov.clone(), clock.clone(), ids.clone()),
            prompts: PromptRegistry::new(gov.clone(), clock.clone(), ids),
            gov,
            audit,
            clock,
        }
    }

    async fn audit_len(&self, tenant_id: &str) -> u64 {
        self.audit.tree_head(&tenant(tenant_id)).await.unwrap().size
    }

    async fn register(&self, who: &Principal, name: &str, version: &str) {
        self.models
            .register_model(who, &corr(), model_input(name, version))
            .await
            .unwrap();
    }

    async fn prompt_request(&self, who: &Principal, version: u32) -> ApprovalRequest {
        self.workflow
            .request_approval(
                who,
                &corr(),
                NewApprovalRequest {
                    subject: RequestedSubject::PromptLabel {
                        name: "p".into(),
                        version,
                        label: "production".into(),
                    },
                    justification: "ship it".into(),
                    required_approvals: 1,
                    expires_in: None,
                },
            )
            .await
            .unwrap()
            .request
    }
}

fn mname(s: &str) -> ModelName {
    ModelName::parse(s).unwrap()
}

fn mtag(s: &str) -> ModelVersionTag {
    ModelVersionTag::parse(s).unwrap()
}

fn pname(s: &str) -> PromptName {
    PromptName::parse(s).unwrap()
}

fn corr() -> CorrelationId {
    CorrelationId::generate()
}

fn admin(t: &str) -> Principal {
    human(&format!("ada@{t}.example"), t, Role::Admin)
}

fn approver(t: &str) -> Principal {
    human(&format!("bob@{t}.example"), t, Role::Approver)
}

fn approver2(t: &str) -> Principal {
    human(&format!("carol@{t}.example"), t, Role::Approver)
}

fn model_input(
    name: &str,
    version: &str,
) -> airisk_core::governance::model_registry::RegisterModel {
    airisk_core::governance::model_registry::RegisterModel {
        name: name.into(),
        version: version.into(),
        checksum: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        artifact_uri: format!("s3://models/{name}/{version}"),
        metadata: Some(serde_json::json!({"framework": "onnx", "auc": 0.91})),
        justification: "backtest passed".into(),
        required_approvals: None,
        expires_in_seconds: Some(86_400),
    }
}

/// Registering a model writes the model, its request and two audit records; approving it
/// updates both and appends two more.
pub async fn a_commit_applies_state_and_audit_together(s: Services) {
    s.register(&admin("acme"), "m", "1").await;
    assert_eq!(s.audit_len("acme").await, 2);
    let model = s
        .gov
        .model(&tenant("acme"), &mname("m"), &mtag("1"))
        .await
        .unwrap()
        .unwrap();
    let request = s
        .gov
        .approval(&tenant("acme"), model.approval_request_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(request.status(), ApprovalStatus::Pending);
    s.models
        .approve_model(&approver("acme"), &corr(), "m", "1", "ok")
        .await
        .unwrap();
    let model = s
        .gov
        .model(&tenant("acme"), &mname("m"), &mtag("1"))
        .await
        .unwrap()
        .unwrap();
    assert!(model.approved());
    assert_eq!(s.audit_len("acme").await, 4);
}

/// A change set whose second mutation conflicts stores nothing: not its first mutation, not its
/// audit records.
pub async fn a_conflicting_mutation_rolls_back_the_whole_change_set(s: Services) {
    s.register(&admin("acme"), "m", "1").await;
    let existing = s
        .gov
        .model(&tenant("acme"), &mname("m"), &mtag("1"))
        .await
        .unwrap()
        .unwrap();
    let before = s.audit_len("acme").await;
    s.prompts
        .register_prompt(&admin("acme"), &corr(), "p", "t", "first")
        .await
        .unwrap();
    let fresh = s.prompt_request(&admin("acme"), 1).await;
    let fresh_request = ApprovalRequest::open(
        uuid::Uuid::now_v7(),
        &admin("acme"),
        NewApprovalRequest {
            subject: fresh.subject().clone().into(),
            justification: "again".into(),
            required_approvals: 1,
            expires_in: None,
        },
        s.clock.now_utc(),
    )
    .unwrap();
    let got = s
        .gov
        .commit(ChangeSet {
            tenant: tenant("acme"),
            mutations: vec![
                Mutation::InsertApproval(fresh_request.clone()),
                Mutation::InsertModel(existing),
            ],
            audit: vec![event("acme", 1)],
        })
        .await;
    assert!(matches!(got, Err(StoreError::Conflict { .. })), "{got:?}");
    assert!(
        s.gov
            .approval(&tenant("acme"), fresh_request.id())
            .await
            .unwrap()
            .is_none(),
        "the first mutation was rolled back"
    );
    assert_eq!(
        s.audit_len("acme").await,
        before + 2,
        "only the prompt's and request's records"
    );
}

/// An update carrying a version that is no longer current is a conflict and changes nothing.
pub async fn a_stale_version_is_a_conflict_and_changes_nothing(s: Services) {
    s.prompts
        .register_prompt(&admin("acme"), &corr(), "p", "t", "first")
        .await
        .unwrap();
    let r = s.prompt_request(&admin("acme"), 1).await;
    let approved = r
        .approve(&approver("acme"), "ok", s.clock.now_utc())
        .unwrap();
    s.gov
        .commit(ChangeSet {
            tenant: tenant("acme"),
            mutations: vec![Mutation::UpdateApproval {
                expected_version: r.version(),
                request: approved,
            }],
            audit: vec![],
        })
        .await
        .unwrap();
    let before = s.audit_len("acme").await;
    let stale = r
        .reject(&approver2("acme"), "no", s.clock.now_utc())
        .unwrap();
    let got = s
        .gov
        .commit(ChangeSet {
            tenant: tenant("acme"),
            mutations: vec![Mutation::UpdateApproval {
                expected_version: r.version(),
                request: stale,
            }],
            audit: vec![event("acme", 2)],
        })
        .await;
    assert!(matches!(got, Err(StoreError::Conflict { .. })), "{got:?}");
    let stored = s
        .gov
        .approval(&tenant("acme"), r.id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status(), ApprovalStatus::Approved);
    assert_eq!(s.audit_len("acme").await, before);
}

/// A change set whose mutation or event belongs to another tenant is refused whole.
pub async fn a_change_set_naming_another_tenant_is_refused(s: Services) {
    let got = s
        .gov
        .commit(ChangeSet::audit_only(
            tenant("acme"),
            vec![event("globex", 1)],
        ))
        .await;
    assert!(matches!(got, Err(StoreError::Refused { .. })), "{got:?}");
    assert_eq!(s.audit_len("acme").await, 0);
    assert_eq!(s.audit_len("globex").await, 0);
}

/// Every read sees only its tenant's rows.
pub async fn every_read_is_scoped_by_tenant(s: Services) {
    s.register(&admin("acme"), "m", "1").await;
    s.prompts
        .register_prompt(&admin("acme"), &corr(), "p", "t", "first")
        .await
        .unwrap();
    let r = s.prompt_request(&admin("acme"), 1).await;
    s.workflow
        .approve(&approver("acme"), &corr(), r.id(), "ok")
        .await
        .unwrap();
    s.prompts
        .move_label(&admin("acme"), &corr(), "p", "production", 1)
        .await
        .unwrap();
    let g = tenant("globex");
    assert!(
        s.gov
            .model(&g, &mname("m"), &mtag("1"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.gov
            .model_versions(&g, &mname("m"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.gov.approval(&g, r.id()).await.unwrap().is_none());
    assert!(
        s.gov
            .approvals(&g, &ApprovalFilter::default(), Page::first(100))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.gov
            .prompt_versions(&g, &pname("p"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.gov
            .prompt_labels(&g, &pname("p"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.gov.label_moves(&g, &pname("p")).await.unwrap().is_empty());
    let a = tenant("acme");
    assert_eq!(
        s.gov.prompt_labels(&a, &pname("p")).await.unwrap(),
        vec![("production".to_owned(), 1)]
    );
    assert_eq!(s.gov.label_moves(&a, &pname("p")).await.unwrap().len(), 1);
}

/// Listing honours every filter field and pages in creation order.
pub async fn approvals_filter_and_page_oldest_first(s: Services) {
    s.prompts
        .register_prompt(&admin("acme"), &corr(), "p", "t", "first")
        .await
        .unwrap();
    s.prompts
        .update_prompt(&admin("acme"), &corr(), "p", "t2", "second")
        .await
        .unwrap();
    let analyst = human("alice@acme.example", "acme", Role::Analyst);
    let mut ids = Vec::new();
    for (who, version) in [(&analyst, 1), (&admin("acme"), 2), (&analyst, 2)] {
        s.clock.advance(chrono::Duration::seconds(1));
        ids.push(s.prompt_request(who, version).await.id());
    }
    s.workflow
        .reject(&approver("acme"), &corr(), ids[1], "no")
        .await
        .unwrap();
    let t = tenant("acme");
    let list = |f: ApprovalFilter, page: Page| {
        let gov = s.gov.clone();
        let t = t.clone();
        async move {
            gov.approvals(&t, &f, page)
                .await
                .unwrap()
                .iter()
                .map(ApprovalRequest::id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(ApprovalFilter::default(), Page::first(10)).await, ids);
    assert_eq!(
        list(
            ApprovalFilter {
                status: Some(ApprovalStatus::Pending),
                ..Default::default()
            },
            Page::first(10)
        )
        .await,
        vec![ids[0], ids[2]]
    );
    assert_eq!(
        list(
            ApprovalFilter {
                requested_by: Some(analyst.actor().clone()),
                ..Default::default()
            },
            Page::first(10)
        )
        .await,
        vec![ids[0], ids[2]]
    );
    assert_eq!(
        list(
            ApprovalFilter {
                not_requested_by: Some(analyst.actor().clone()),
                ..Default::default()
            },
            Page::first(10)
        )
        .await,
        vec![ids[1]]
    );
    let subject = Subject::PromptLabel {
        name: pname("p"),
        version: 2,
        label: LabelName::parse("production").unwrap(),
    };
    assert_eq!(
        list(
            ApprovalFilter {
                subject: Some(subject),
                ..Default::default()
            },
            Page::first(10)
        )
        .await,
        vec![ids[1], ids[2]]
    );
    assert_eq!(
        list(
            ApprovalFilter::default(),
            Page {
                offset: 1,
                limit: 1
            }
        )
        .await,
        vec![ids[1]]
    );
    assert!(
        list(
            ApprovalFilter::default(),
            Page {
                offset: 3,
                limit: 5
            }
        )
        .await
        .is_empty()
    );
}

/// Prompt versions come back in order; inserting an existing version conflicts.
pub async fn prompt_versions_are_immutable_and_ordered(s: Services) {
    for (i, text) in ["a", "b", "c"].iter().enumerate() {
        if i == 0 {
            s.prompts
                .register_prompt(&admin("acme"), &corr(), "p", text, "r")
                .await
                .unwrap();
        } else {
            s.prompts
                .update_prompt(&admin("acme"), &corr(), "p", text, "r")
                .await
                .unwrap();
        }
    }
    let versions = s
        .gov
        .prompt_versions(&tenant("acme"), &pname("p"))
        .await
        .unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version()).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let v2 = versions.get(1).cloned().unwrap();
    let got = s
        .gov
        .commit(ChangeSet {
            tenant: tenant("acme"),
            mutations: vec![Mutation::InsertPromptVersion(v2)],
            audit: vec![],
        })
        .await;
    assert!(matches!(got, Err(StoreError::Conflict { .. })), "{got:?}");
    let latest = s
        .prompts
        .get_prompt(&admin("acme"), "p", &PromptSelector::Latest)
        .await
        .unwrap();
    assert_eq!(latest.template(), "c");
}

/// A label move computed against an old position conflicts.
pub async fn a_label_move_from_a_stale_position_conflicts(s: Services) {
    s.prompts
        .register_prompt(&admin("acme"), &corr(), "p", "a", "r")
        .await
        .unwrap();
    s.prompts
        .update_prompt(&admin("acme"), &corr(), "p", "b", "r")
        .await
        .unwrap();
    let r = s.prompt_request(&admin("acme"), 1).await;
    s.workflow
        .approve(&approver("acme"), &corr(), r.id(), "ok")
        .await
        .unwrap();
    let first = s
        .prompts
        .move_label(&admin("acme"), &corr(), "p", "production", 1)
        .await
        .unwrap();
    // Replaying the same move (it expects the label to be unset) must conflict.
    let mut replay = first.clone();
    replay.id = uuid::Uuid::now_v7();
    replay.to_version = 2;
    let got = s
        .gov
        .commit(ChangeSet {
            tenant: tenant("acme"),
            mutations: vec![Mutation::MoveLabel {
                expected_from: None,
                label_move: replay,
            }],
            audit: vec![],
        })
        .await;
    assert!(matches!(got, Err(StoreError::Conflict { .. })), "{got:?}");
    assert_eq!(
        s.gov
            .prompt_labels(&tenant("acme"), &pname("p"))
            .await
            .unwrap(),
        vec![("production".to_owned(), 1)]
    );
}

/// Many tasks commit an update of the same version: exactly one succeeds.
pub async fn of_concurrent_updates_of_one_version_exactly_one_commits(s: Services) {
    s.prompts
        .register_prompt(&admin("acme"), &corr(), "p", "a", "r")
        .await
        .unwrap();
    let r = s.prompt_request(&admin("acme"), 1).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let gov = s.gov.clone();
        let next = r
            .approve(
                &human(&format!("a{i}@acme.example"), "acme", Role::Approver),
                "ok",
                s.clock.now_utc(),
            )
            .unwrap();
        let expected = r.version();
        tasks.push(tokio::spawn(async move {
            gov.commit(ChangeSet {
                tenant: tenant("acme"),
                mutations: vec![Mutation::UpdateApproval {
                    expected_version: expected,
                    request: next,
                }],
                audit: vec![event("acme", i)],
            })
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok, 1);
    let stored = s
        .gov
        .approval(&tenant("acme"), r.id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.version(), r.version() + 1);
    // The audit records of the losers were not written either: the prompt and request records,
    // plus the winner's.
    assert_eq!(s.audit_len("acme").await, 3);
    let entries = s.audit.entries(&tenant("acme"), 0, 10).await.unwrap();
    for e in entries {
        AuditRecord::from_leaf_bytes(&e.leaf).unwrap();
    }
}

/// What goes in comes out equal, field for field.
pub async fn stored_values_read_back_exactly(s: Services) {
    let registered = s
        .models
        .register_model(&admin("acme"), &corr(), model_input("m", "2.1.0"))
        .await
        .unwrap();
    let model = s
        .gov
        .model(&tenant("acme"), &mname("m"), &mtag("2.1.0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(model, registered.model);
    let request = s
        .gov
        .approval(&tenant("acme"), registered.request.id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(request, registered.request);
    let change = s
        .prompts
        .register_prompt(
            &admin("acme"),
            &corr(),
            "p",
            "Grüße {name} 🦀\nline 2",
            "unicode",
        )
        .await
        .unwrap();
    let versions = s
        .gov
        .prompt_versions(&tenant("acme"), &pname("p"))
        .await
        .unwrap();
    assert_eq!(versions, vec![change.version]);
}

/// Every prompt version keeps who wrote it and why, exactly as given (the seed requires both): the
/// expected values are the literals passed in, not anything the registry computed.
pub async fn prompt_versions_keep_their_author_and_change_reason(s: Services) {
    let ada = human("ada@acme.example", "acme", Role::Admin);
    let eve = human("eve@acme.example", "acme", Role::Admin);
    s.prompts
        .register_prompt(&ada, &corr(), "p", "Hello {name}", "first release for KYC")
        .await
        .unwrap();
    s.prompts
        .update_prompt(
            &eve,
            &corr(),
            "p",
            "Hi {name}",
            "shorter greeting, ticket RISK-42",
        )
        .await
        .unwrap();
    let stored: Vec<(u32, String, String, String)> = s
        .gov
        .prompt_versions(&tenant("acme"), &pname("p"))
        .await
        .unwrap()
        .iter()
        .map(|v| {
            (
                v.version(),
                v.author().as_str().to_owned(),
                v.change_reason().to_owned(),
                v.template().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        stored,
        vec![
            (
                1,
                "ada@acme.example".to_owned(),
                "first release for KYC".to_owned(),
                "Hello {name}".to_owned()
            ),
            (
                2,
                "eve@acme.example".to_owned(),
                "shorter greeting, ticket RISK-42".to_owned(),
                "Hi {name}".to_owned()
            ),
        ]
    );
    // The model registry's author as well.
    s.register(&ada, "m", "1").await;
    let model = s
        .gov
        .model(&tenant("acme"), &mname("m"), &mtag("1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(model.registered_by().as_str(), "ada@acme.example");
}

/// A change set of tenant acme holding a MUTATION (not an audit event) of tenant globex is refused
/// whole: neither tenant gains a row or a record. (The event-only case is
/// [`a_change_set_naming_another_tenant_is_refused`].)
pub async fn a_mutation_of_another_tenant_is_refused_and_stores_nothing(s: Services) {
    let foreign = ApprovalRequest::open(
        uuid::Uuid::now_v7(),
        &admin("globex"),
        NewApprovalRequest {
            subject: RequestedSubject::PromptLabel {
                name: "p".into(),
                version: 1,
                label: "production".into(),
            },
            justification: "smuggled".into(),
            required_approvals: 1,
            expires_in: None,
        },
        s.clock.now_utc(),
    )
    .unwrap();
    let got = s
        .gov
        .commit(ChangeSet {
            tenant: tenant("acme"),
            mutations: vec![Mutation::InsertApproval(foreign.clone())],
            audit: vec![event("acme", 1)],
        })
        .await;
    assert!(matches!(got, Err(StoreError::Refused { .. })), "{got:?}");
    for t in ["acme", "globex"] {
        assert!(
            s.gov
                .approval(&tenant(t), foreign.id())
                .await
                .unwrap()
                .is_none(),
            "no approval stored under {t}"
        );
        assert!(
            s.gov
                .approvals(&tenant(t), &ApprovalFilter::default(), Page::first(10))
                .await
                .unwrap()
                .is_empty(),
            "no approval listed under {t}"
        );
        assert_eq!(s.audit_len(t).await, 0, "no record under {t}");
    }
}

fn delivery(
    t: &str,
    source: &str,
    id: &str,
    until: chrono::DateTime<chrono::Utc>,
) -> DeliveryClaim {
    DeliveryClaim {
        tenant: tenant(t),
        source: source.into(),
        delivery_id: id.into(),
        until,
    }
}

/// The shared replay memory: a delivery id is claimed once per (tenant, source) until its claim
/// expires; a released claim and an expired one (pruned) can be claimed again; a settled claim
/// lasts until its new `until`; tenants and sources do not share ids; bad ids are refused.
pub async fn a_webhook_delivery_is_claimed_once_until_its_claim_expires(s: Services) {
    let now = s.clock.now_utc();
    let soon = now + chrono::Duration::seconds(60);
    let d = delivery("acme", "mlflow:risk", "d-1", soon);
    assert!(s.gov.claim_delivery(&d, now).await.unwrap(), "first claim");
    assert!(!s.gov.claim_delivery(&d, now).await.unwrap(), "replayed");
    // Same id from another source or tenant is another delivery.
    assert!(
        s.gov
            .claim_delivery(&delivery("acme", "mlflow:other", "d-1", soon), now)
            .await
            .unwrap()
    );
    assert!(
        s.gov
            .claim_delivery(&delivery("globex", "mlflow:risk", "d-1", soon), now)
            .await
            .unwrap()
    );
    // Released (processing failed): the sender's retry is processed.
    s.gov.release_delivery(&d).await.unwrap();
    assert!(
        s.gov.claim_delivery(&d, now).await.unwrap(),
        "claim after release"
    );
    // Settled for longer: still refused after the first `until`, accepted after the second.
    let later = now + chrono::Duration::seconds(360);
    s.gov
        .settle_delivery(&delivery("acme", "mlflow:risk", "d-1", later))
        .await
        .unwrap();
    let past_soon = soon + chrono::Duration::seconds(1);
    assert!(
        !s.gov.claim_delivery(&d, past_soon).await.unwrap(),
        "settled claim holds"
    );
    let past_later = later + chrono::Duration::seconds(1);
    assert!(
        s.gov
            .claim_delivery(
                &delivery("acme", "mlflow:risk", "d-1", past_later),
                past_later
            )
            .await
            .unwrap(),
        "an expired claim is pruned"
    );
    // Releasing what is not there is fine; empty or overlong ids are refused.
    s.gov
        .release_delivery(&delivery("acme", "mlflow:risk", "never", soon))
        .await
        .unwrap();
    for bad in [String::new(), "x".repeat(129)] {
        let got = s
            .gov
            .claim_delivery(&delivery("acme", "mlflow:risk", &bad, soon), now)
            .await;
        assert!(matches!(got, Err(StoreError::Refused { .. })), "{got:?}");
    }
    // Claims are not audit records.
    assert_eq!(s.audit_len("acme").await, 0);
}

/// Of eight concurrent claims of one delivery, exactly one wins (two `airisk serve` instances
/// receiving the same replayed delivery).
pub async fn of_concurrent_claims_of_one_delivery_exactly_one_wins(s: Services) {
    let now = s.clock.now_utc();
    let until = now + chrono::Duration::seconds(360);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let gov = s.gov.clone();
        let d = delivery("acme", "mlflow:risk", "raced", until);
        tasks.push(tokio::spawn(
            async move { gov.claim_delivery(&d, now).await },
        ));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one claim wins");
}

/// The clock's current instant (a convenience for building values in the suite).
trait NowUtc {
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc>;
}

impl NowUtc for ManualClock {
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc> {
        airisk_core::ports::Clock::now(self)
    }
}

/// `approval_with_subject` answers the request as `approval` reads it, with the state of what it
/// names: the model version as `model` reads it (before and after its approval), where the label
/// points (nowhere yet, then the version an approved move put it at), nothing for a model that is
/// not stored; and `None` for a missing id and for another tenant's request. `model_with_approval`
/// answers the model with its request, and `None` for a model of another tenant or none at all.
pub async fn a_request_is_read_with_the_state_of_its_subject(s: Services) {
    let acme = tenant("acme");
    // A model request, before and after the decision.
    s.register(&admin("acme"), "m", "1").await;
    let model = s
        .gov
        .model(&acme, &mname("m"), &mtag("1"))
        .await
        .unwrap()
        .unwrap();
    let id = model.approval_request_id();
    let got = s
        .gov
        .approval_with_subject(&acme, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.request,
        s.gov.approval(&acme, id).await.unwrap().unwrap()
    );
    assert_eq!(
        got.request.subject(),
        &Subject::Model {
            name: mname("m"),
            version: mtag("1")
        }
    );
    assert_eq!(got.subject, SubjectState::Model(Some(Box::new(model))));
    s.models
        .approve_model(&approver("acme"), &corr(), "m", "1", "ok")
        .await
        .unwrap();
    let got = s
        .gov
        .approval_with_subject(&acme, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.request.status(), ApprovalStatus::Approved);
    let SubjectState::Model(Some(decided)) = &got.subject else {
        panic!("expected the model, got {:?}", got.subject);
    };
    assert!(decided.approved(), "the state read is the decided model");
    assert_eq!(
        decided.as_ref(),
        &s.gov
            .model(&acme, &mname("m"), &mtag("1"))
            .await
            .unwrap()
            .unwrap()
    );

    // Read by the model instead: the model with the request its approval_request_id names.
    let by_model = s
        .gov
        .model_with_approval(&acme, &mname("m"), &mtag("1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        by_model.request,
        s.gov.approval(&acme, id).await.unwrap().unwrap()
    );
    assert_eq!(by_model.request.status(), ApprovalStatus::Approved);
    assert_eq!(by_model.subject, got.subject);
    for (t, name, version) in [("acme", "m", "2"), ("acme", "n", "1"), ("globex", "m", "1")] {
        assert!(
            s.gov
                .model_with_approval(&tenant(t), &mname(name), &mtag(version))
                .await
                .unwrap()
                .is_none(),
            "{t}: {name}@{version} is not stored"
        );
    }

    // A prompt-label request: the label points nowhere, then where the approved move put it.
    s.prompts
        .register_prompt(&admin("acme"), &corr(), "p", "one", "first")
        .await
        .unwrap();
    s.prompts
        .update_prompt(&admin("acme"), &corr(), "p", "two", "second")
        .await
        .unwrap();
    // Labels beside it that a read must not pick: another label of the same prompt, and the
    // same label of another prompt, both at version 2 (stored first, named to sort first).
    s.prompts
        .register_prompt(&admin("acme"), &corr(), "alt", "one", "first")
        .await
        .unwrap();
    s.prompts
        .update_prompt(&admin("acme"), &corr(), "alt", "two", "second")
        .await
        .unwrap();
    for (name, label) in [("p", "canary"), ("alt", "production")] {
        let r = s
            .workflow
            .request_approval(
                &admin("acme"),
                &corr(),
                NewApprovalRequest {
                    subject: RequestedSubject::PromptLabel {
                        name: name.into(),
                        version: 2,
                        label: label.into(),
                    },
                    justification: "beside".into(),
                    required_approvals: 1,
                    expires_in: None,
                },
            )
            .await
            .unwrap()
            .request;
        s.workflow
            .approve(&approver("acme"), &corr(), r.id(), "ok")
            .await
            .unwrap();
        s.prompts
            .move_label(&admin("acme"), &corr(), name, label, 2)
            .await
            .unwrap();
    }
    let first = s.prompt_request(&admin("acme"), 1).await;
    let ApprovalWithSubject { request, subject } = s
        .gov
        .approval_with_subject(&acme, first.id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(request, first);
    assert_eq!(subject, SubjectState::PromptLabel { points_at: None });
    s.workflow
        .approve(&approver("acme"), &corr(), first.id(), "ok")
        .await
        .unwrap();
    s.prompts
        .move_label(&admin("acme"), &corr(), "p", "production", 1)
        .await
        .unwrap();
    let second = s.prompt_request(&admin("acme"), 2).await;
    let got = s
        .gov
        .approval_with_subject(&acme, second.id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.request, second);
    assert_eq!(
        got.subject,
        SubjectState::PromptLabel { points_at: Some(1) }
    );

    // A model request whose model is not stored reads as such, not as an error.
    let orphan = ApprovalRequest::open(
        uuid::Uuid::now_v7(),
        &admin("acme"),
        NewApprovalRequest {
            subject: RequestedSubject::Model {
                name: "ghost".into(),
                version: "9".into(),
            },
            justification: "no model behind it".into(),
            required_approvals: 1,
            expires_in: None,
        },
        s.clock.now_utc(),
    )
    .unwrap();
    s.gov
        .commit(ChangeSet {
            tenant: acme.clone(),
            mutations: vec![Mutation::InsertApproval(orphan.clone())],
            audit: vec![event("acme", 1)],
        })
        .await
        .unwrap();
    let got = s
        .gov
        .approval_with_subject(&acme, orphan.id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.request, orphan);
    assert_eq!(got.subject, SubjectState::Model(None));

    // A missing id, and another tenant's ids, are not found.
    assert!(
        s.gov
            .approval_with_subject(&acme, uuid::Uuid::now_v7())
            .await
            .unwrap()
            .is_none()
    );
    for other in [id, first.id(), orphan.id()] {
        assert!(
            s.gov
                .approval_with_subject(&tenant("globex"), other)
                .await
                .unwrap()
                .is_none(),
            "another tenant read request {other}"
        );
    }
}

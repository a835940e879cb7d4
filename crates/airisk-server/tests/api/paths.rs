//! The approval and proof paths that were only reached below HTTP, now over HTTP on every store:
//! an expired request (409), a version changed underneath a decision (409), a cancel by someone
//! other than the requester (403), a proof beyond the tree (422), and two approvers racing for
//! one request (exactly one wins) — each in memory, on SQLite and on PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use airisk_core::governance::approval_workflow::ApprovalRequest;
use airisk_core::governance::audit_record::AuditReceipt;
use airisk_core::governance::model_registry::{ModelName, ModelVersion, ModelVersionTag};
use airisk_core::governance::prompt_registry::{LabelMove, PromptName, PromptVersion};
use airisk_core::ports::{
    ApprovalFilter, ApprovalWithSubject, ChangeSet, GovernanceStore, Mutation, Page, StoreError,
};
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::TenantId;
use airisk_server::ServerConfig;
use airisk_testkit::fixtures::{ManualClock, human};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Backend, TestApp, problem};

/// A prompt `p` (version 1) registered by `analyst`, and a pending label request on it opened by
/// `analyst`; returns the request's id.
async fn open_request(app: &TestApp, analyst: &str, label: &str, expires: Option<i64>) -> String {
    let r = app
        .post(
            "/v1/prompts",
            analyst,
            &json!({"name": format!("p-{label}"), "template": "t", "change_reason": "r"}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let mut body = json!({
        "subject": {"kind": "prompt_label", "name": format!("p-{label}"), "version": 1, "label": label},
        "justification": "ship it",
    });
    if let Some(s) = expires {
        body["expires_in_seconds"] = json!(s);
    }
    let r = app.post("/v1/approvals", analyst, &body).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn status_of(app: &TestApp, id: &str) -> Value {
    let viewer = app.token("vic", "acme", Role::Viewer);
    app.get(&format!("/v1/approvals/{id}"), &viewer)
        .await
        .json()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Expiry: a decision after `expires_at` is a 409 and changes nothing.

on_backends!(an_expired_request_is_a_409: [memory, sqlite, postgres]
    (flavor = "multi_thread", worker_threads = 2));

async fn an_expired_request_is_a_409(backend: Backend) {
    // The service's clock is the test's: no waiting for the request to expire.
    let clock = Arc::new(ManualClock::at(chrono::Utc::now()));
    let app = TestApp::spawn_custom(backend, ServerConfig::default(), clock.clone(), |g| g).await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    let approver = app.token("bob", "acme", Role::Approver);
    let id = open_request(&app, &analyst, "expiring", Some(60)).await;
    clock.advance(chrono::Duration::seconds(61));
    let r = app
        .post(
            &format!("/v1/approvals/{id}/approve"),
            &approver,
            &json!({"reason": "too late"}),
        )
        .await;
    let p = problem(r, 409).await;
    assert!(p["detail"].as_str().unwrap().contains("expired at"), "{p}");
    // The refusal recorded the expiry: any later decision is a 409 on an EXPIRED request.
    let r = app
        .post(
            &format!("/v1/approvals/{id}/reject"),
            &approver,
            &json!({"reason": "too late"}),
        )
        .await;
    let p = problem(r, 409).await;
    assert!(p["detail"].as_str().unwrap().contains("EXPIRED"), "{p}");
    assert_eq!(status_of(&app, &id).await["status"], "EXPIRED");
    // Not approved; and the label cannot move on it.
    assert_ne!(status_of(&app, &id).await["status"], "APPROVED");
    let r = app
        .put(
            "/v1/prompts/p-expiring/labels/expiring",
            &analyst,
            &json!({"version": 1}),
        )
        .await;
    assert_eq!(r.status(), 409);
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// A version changed between the workflow's read and its write: 409, and the other change stands.

/// A governance store that, once armed, lets another approver reject the request just before
/// the next approval update is written: the update then carries a stale version.
#[derive(Debug)]
struct ChangedUnderneath {
    inner: Arc<dyn GovernanceStore>,
    armed: AtomicBool,
}

#[async_trait::async_trait]
impl GovernanceStore for ChangedUnderneath {
    async fn commit(&self, change: ChangeSet) -> Result<Vec<AuditReceipt>, StoreError> {
        let updated = change.mutations.iter().find_map(|m| match m {
            Mutation::UpdateApproval { request, .. } => Some(request.id()),
            _ => None,
        });
        if let Some(id) = updated
            && self.armed.swap(false, Ordering::SeqCst)
        {
            let current = self
                .inner
                .approval(&change.tenant, id)
                .await?
                .expect("the request exists");
            let rejected = current
                .reject(
                    &human("zed", change.tenant.as_str(), Role::Approver),
                    "got there first",
                    chrono::Utc::now(),
                )
                .expect("the competing rejection is valid");
            self.inner
                .commit(ChangeSet {
                    tenant: change.tenant.clone(),
                    mutations: vec![Mutation::UpdateApproval {
                        expected_version: current.version(),
                        request: rejected,
                    }],
                    audit: vec![],
                })
                .await?;
        }
        self.inner.commit(change).await
    }
    async fn approval(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<ApprovalRequest>, StoreError> {
        self.inner.approval(tenant, id).await
    }
    async fn approval_with_subject(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<ApprovalWithSubject>, StoreError> {
        self.inner.approval_with_subject(tenant, id).await
    }
    async fn model_with_approval(
        &self,
        tenant: &TenantId,
        name: &ModelName,
        version: &ModelVersionTag,
    ) -> Result<Option<ApprovalWithSubject>, StoreError> {
        self.inner.model_with_approval(tenant, name, version).await
    }
    async fn approvals(
        &self,
        tenant: &TenantId,
        filter: &ApprovalFilter,
        page: Page,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        self.inner.approvals(tenant, filter, page).await
    }
    async fn model(
        &self,
        tenant: &TenantId,
        name: &ModelName,
        version: &ModelVersionTag,
    ) -> Result<Option<ModelVersion>, StoreError> {
        self.inner.model(tenant, name, version).await
    }
    async fn model_versions(
        &self,
        tenant: &TenantId,
        name: &ModelName,
    ) -> Result<Vec<ModelVersion>, StoreError> {
        self.inner.model_versions(tenant, name).await
    }
    async fn prompt_versions(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<PromptVersion>, StoreError> {
        self.inner.prompt_versions(tenant, name).await
    }
    async fn prompt_labels(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        self.inner.prompt_labels(tenant, name).await
    }
    async fn label_moves(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<LabelMove>, StoreError> {
        self.inner.label_moves(tenant, name).await
    }
}

on_backends!(a_decision_on_a_changed_version_is_a_409: [memory, sqlite, postgres]
    (flavor = "multi_thread", worker_threads = 2));

async fn a_decision_on_a_changed_version_is_a_409(backend: Backend) {
    let raced: Arc<std::sync::Mutex<Option<Arc<ChangedUnderneath>>>> = Arc::default();
    let keep = raced.clone();
    let app = TestApp::spawn_custom(
        backend,
        ServerConfig::default(),
        Arc::new(airisk_core::ports::SystemClock),
        move |inner| {
            let store = Arc::new(ChangedUnderneath {
                inner,
                armed: AtomicBool::new(false),
            });
            *keep.lock().unwrap() = Some(store.clone());
            store
        },
    )
    .await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    let approver = app.token("bob", "acme", Role::Approver);
    let id = open_request(&app, &analyst, "raced", None).await;
    let store = raced.lock().unwrap().clone().unwrap();
    store.armed.store(true, Ordering::SeqCst);
    let r = app
        .post(
            &format!("/v1/approvals/{id}/approve"),
            &approver,
            &json!({"reason": "ok"}),
        )
        .await;
    let p = problem(r, 409).await;
    assert_eq!(p["type"], "urn:airisk:problem:conflict", "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("changed concurrently"),
        "{p}"
    );
    assert!(
        !store.armed.load(Ordering::SeqCst),
        "the fault was injected"
    );
    // The competing change stands; the stale approval was not written.
    let v = status_of(&app, &id).await;
    assert_eq!(v["status"], "REJECTED", "{v}");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Cancel: only the requester may withdraw a request.

on_backends!(only_the_requester_may_cancel: [memory, sqlite, postgres]
    (flavor = "multi_thread", worker_threads = 2));

async fn only_the_requester_may_cancel(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let ann = app.token("ann", "acme", Role::Analyst);
    let id = open_request(&app, &ann, "mine", None).await;
    // Another analyst, and an admin (who holds every permission): neither is the requester.
    for other in [
        app.token("al", "acme", Role::Analyst),
        app.token("ada", "acme", Role::Admin),
    ] {
        let r = app
            .post(
                &format!("/v1/approvals/{id}/cancel"),
                &other,
                &json!({"reason": "not yours"}),
            )
            .await;
        let p = problem(r, 403).await;
        assert!(
            p["detail"].as_str().unwrap().contains("only the requester"),
            "{p}"
        );
        assert_eq!(status_of(&app, &id).await["status"], "PENDING");
    }
    let r = app
        .post(
            &format!("/v1/approvals/{id}/cancel"),
            &ann,
            &json!({"reason": "withdrawn"}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(status_of(&app, &id).await["status"], "CANCELLED");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Proofs: asking beyond the tree is a 404 (that tree does not exist; the OpenAPI document says
// so), not a 500, a 422 for a schema-valid request, or an empty proof.

on_backends!(a_proof_beyond_the_tree_is_a_404: [memory, sqlite, postgres]
    (flavor = "multi_thread", worker_threads = 2));

async fn a_proof_beyond_the_tree_is_a_404(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    for n in 0..3 {
        let r = app
            .post(
                "/v1/audit/events",
                &analyst,
                &json!({"action": "app.event", "resource_type": "t", "resource_id": format!("{n}")}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    // In range: fine (so the refusals below are about the range).
    let ok = app
        .get("/v1/audit/proofs/inclusion?seq=2&tree_size=3", &analyst)
        .await;
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());
    let ok = app
        .get("/v1/audit/proofs/consistency?from=1&to=3", &analyst)
        .await;
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());
    for path in [
        "/v1/audit/proofs/inclusion?seq=1&tree_size=4",
        // Entry 2 exists, but not in a tree of 2. (An entry that does not exist at all is a 404,
        // see errors.rs.)
        "/v1/audit/proofs/inclusion?seq=2&tree_size=2",
        "/v1/audit/proofs/consistency?from=1&to=4",
        "/v1/audit/proofs/consistency?from=3&to=2",
    ] {
        let r = app.get(path, &analyst).await;
        assert_eq!(r.status(), 404, "{path}: {}", r.text().await.unwrap());
        let p: Value = app.get(path, &analyst).await.json().await.unwrap();
        assert_eq!(p["type"], "urn:airisk:problem:not-found", "{path}: {p}");
    }
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Two approvers race for one request: exactly one wins, the other gets a 409, and exactly one
// approval is recorded — on every store, many times.

const TRIALS: usize = 25;

on_backends!(two_approvers_racing_exactly_one_wins: [memory, sqlite, postgres]
    (flavor = "multi_thread", worker_threads = 2));

async fn two_approvers_racing_exactly_one_wins(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    let tokens = [
        app.token("bob", "acme", Role::Approver),
        app.token("carol", "acme", Role::Approver),
    ];
    for trial in 0..TRIALS {
        let id = open_request(&app, &analyst, &format!("l{trial}"), None).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut racers = Vec::new();
        for token in &tokens {
            // Each racer on its own connection pool, released together.
            let client = reqwest::Client::new();
            let url = app.url(&format!("/v1/approvals/{id}/approve"));
            let (token, barrier) = (token.clone(), barrier.clone());
            racers.push(tokio::spawn(async move {
                barrier.wait().await;
                let r = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"reason": "race"}))
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }));
        }
        let mut statuses = Vec::new();
        for r in racers {
            statuses.push(r.await.unwrap());
        }
        let mut codes: Vec<u16> = statuses.iter().map(|(s, _)| *s).collect();
        codes.sort_unstable();
        assert_eq!(codes, vec![200, 409], "trial {trial}: {statuses:?}");
        let v = status_of(&app, &id).await;
        assert_eq!(v["status"], "APPROVED", "trial {trial}");
        assert_eq!(
            v["approvals"].as_array().map(Vec::len),
            Some(1),
            "trial {trial}: {v}"
        );
    }
    // The ledger holds exactly one successful approval per trial.
    let viewer = app.token("vic", "acme", Role::Viewer);
    let entries: Value = app
        .get(
            "/v1/audit/events?action=approval.approve&outcome=success&limit=1000",
            &viewer,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        entries["entries"].as_array().unwrap().len(),
        TRIALS,
        "{entries}"
    );
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Found by fuzzing (see crates/airisk-core/tests/ledger/parsers.rs): metadata holding a double
// that canonical JSON prints as an integer beyond 2^53 was stored, and then could not be read
// back — verification reported the intact entry as malformed. It is now a 422 and nothing is
// stored.

on_backends!(a_number_that_would_not_read_back_is_refused: [memory, sqlite, postgres]
    (flavor = "multi_thread", worker_threads = 2));

async fn a_number_that_would_not_read_back_is_refused(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    let body = r#"{"action":"app.event","resource_type":"t","resource_id":"1","metadata":{"x":3.2049508818234835e17}}"#;
    let r = app
        .request(reqwest::Method::POST, "/v1/audit/events", &analyst)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let p = problem(r, 422).await;
    assert!(p["detail"].as_str().unwrap().contains("2^53"), "{p}");
    let r = app
        .post(
            "/v1/audit/events",
            &analyst,
            &json!({"action": "app.event", "resource_type": "t", "resource_id": "2", "metadata": {"x": 0.5}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let report: Value = app
        .get("/v1/audit/verify", &analyst)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["entries"], 1, "{report}");
    assert_eq!(report["intact"], true, "{report}");
    app.shutdown().await;
}

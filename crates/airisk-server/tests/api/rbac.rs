//! The RBAC matrix over HTTP: every role against a representative route of every action the API
//! exposes. The expected answers come from a table written out below from the role matrix
//! (admin: everything; analyst: create + view; approver: approve + view; viewer: view; only admin
//! registers models), never from `Role::grants` — a wrong entry in the code's matrix fails this
//! test. A refusal is a 403 naming the action.

use std::collections::BTreeSet;

use airisk_core::security::rbac::{Action, Role};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Backend, DIGEST, TestApp, model_body};

const TENANT: &str = "rbac";

/// The roles, in the column order of [`SEED_HTTP_MATRIX`].
const ROLES: [&str; 4] = ["admin", "analyst", "approver", "viewer"];

/// Every action the API exposes, and whether [admin, analyst, approver, viewer] may perform it,
/// written out by hand from the role matrix (columns create / approve / view / register_model)
/// and the action-to-column mapping documented on `Action::required_permission`.
const SEED_HTTP_MATRIX: [(&str, [bool; 4]); 22] = [
    ("model.register", [true, false, false, false]),
    ("model.approve", [true, false, true, false]),
    ("model.reject", [true, false, true, false]),
    ("model.authorize_deployment", [true, true, false, false]),
    ("model.view", [true, true, true, true]),
    ("prompt.register", [true, true, false, false]),
    ("prompt.update", [true, true, false, false]),
    ("prompt.move_label", [true, true, false, false]),
    ("prompt.view", [true, true, true, true]),
    ("approval.request", [true, true, false, false]),
    ("approval.approve", [true, false, true, false]),
    ("approval.reject", [true, false, true, false]),
    ("approval.cancel", [true, true, false, false]),
    ("approval.view", [true, true, true, true]),
    ("audit.append", [true, true, false, false]),
    ("audit.read", [true, true, true, true]),
    ("audit.export", [true, true, true, true]),
    ("audit.verify", [true, true, true, true]),
    ("audit.checkpoint", [true, true, false, false]),
    // Not in the seed: crypto-shredding is irreversible, so admin only, on its own permission.
    ("tenant.shred", [true, false, false, false]),
    ("tenant.shred_subject", [true, false, false, false]),
    // Rotating a tenant's data key is key administration: the admin-only column.
    ("keys.rotate_data_key", [true, false, false, false]),
];

/// The table's answer for `role` x `action`.
fn seed_allows(role: Role, action: Action) -> bool {
    let column = ROLES
        .iter()
        .position(|r| *r == role.as_str())
        .unwrap_or_else(|| panic!("{role} is not in the table"));
    let (_, row) = SEED_HTTP_MATRIX
        .iter()
        .find(|(a, _)| *a == action.as_str())
        .unwrap_or_else(|| panic!("{action} is not in the table"));
    row[column]
}

struct Setup<'a> {
    app: &'a TestApp,
    admin: String,
    approver: String,
    analyst: String,
}

impl Setup<'_> {
    async fn pending_model(&self, name: &str) {
        let r = self
            .app
            .post("/v1/models", &self.admin, &model_body(name, "1"))
            .await;
        assert_eq!(r.status(), 201);
    }

    async fn approved_model(&self, name: &str) {
        self.pending_model(name).await;
        let r = self
            .app
            .post(
                &format!("/v1/models/{name}/versions/1/approve"),
                &self.approver,
                &json!({"reason": "ok"}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }

    async fn prompt(&self, name: &str) {
        let r = self
            .app
            .post(
                "/v1/prompts",
                &self.analyst,
                &json!({"name": name, "template": "t", "change_reason": "r"}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }

    /// A pending label request opened by `token`'s actor.
    async fn label_request(&self, token: &str, prompt: &str, label: &str) -> String {
        let r = self
            .app
            .post(
                "/v1/approvals",
                token,
                &json!({"subject": {"kind": "prompt_label", "name": prompt, "version": 1, "label": label}, "justification": "j"}),
            )
            .await;
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn approved_label_request(&self, prompt: &str, label: &str) {
        let id = self.label_request(&self.analyst, prompt, label).await;
        let r = self
            .app
            .post(
                &format!("/v1/approvals/{id}/approve"),
                &self.approver,
                &json!({"reason": "ok"}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
}

on_backends!(every_role_is_allowed_exactly_what_the_matrix_grants: [memory, sqlite, postgres]);

async fn every_role_is_allowed_exactly_what_the_matrix_grants(backend: Backend) {
    // Sealing, as `airisk serve` runs: key custody routes need the key-encryption key.
    let app = TestApp::spawn_sealed(backend).await;
    let setup = Setup {
        app: &app,
        admin: app.token("setup.admin", TENANT, Role::Admin),
        approver: app.token("setup.approver", TENANT, Role::Approver),
        analyst: app.token("setup.analyst", TENANT, Role::Analyst),
    };
    let mut covered = BTreeSet::new();
    for role in Role::ALL {
        let r = role.as_str();
        let me = app.token(&format!("{r}.user"), TENANT, role);
        // Fresh resources for this role, so an allowed call fails for no other reason.
        setup.pending_model(&format!("approve-{r}")).await;
        setup.pending_model(&format!("reject-{r}")).await;
        setup.approved_model(&format!("deploy-{r}")).await;
        setup.prompt(&format!("p-{r}")).await;
        setup
            .approved_label_request(&format!("p-{r}"), "prod")
            .await;
        let to_approve = setup
            .label_request(&setup.analyst, &format!("p-{r}"), "a")
            .await;
        let to_reject = setup
            .label_request(&setup.analyst, &format!("p-{r}"), "b")
            .await;
        let to_cancel = if seed_allows(role, Action::ApprovalCancel) {
            setup.label_request(&me, &format!("p-{r}"), "c").await
        } else {
            setup
                .label_request(&setup.analyst, &format!("p-{r}"), "c")
                .await
        };
        let reason = json!({"reason": "because"});
        let cases: Vec<(Action, Method, String, Option<Value>)> = vec![
            (
                Action::ModelRegister,
                Method::POST,
                "/v1/models".into(),
                Some(model_body(&format!("new-{r}"), "1")),
            ),
            (
                Action::ModelApprove,
                Method::POST,
                format!("/v1/models/approve-{r}/versions/1/approve"),
                Some(reason.clone()),
            ),
            (
                Action::ModelReject,
                Method::POST,
                format!("/v1/models/reject-{r}/versions/1/reject"),
                Some(reason.clone()),
            ),
            (
                Action::ModelAuthorizeDeployment,
                Method::POST,
                format!("/v1/models/deploy-{r}/versions/1/deployments"),
                Some(json!({"sha256": DIGEST})),
            ),
            (
                Action::ModelView,
                Method::GET,
                format!("/v1/models/deploy-{r}/versions/1"),
                None,
            ),
            (
                Action::PromptRegister,
                Method::POST,
                "/v1/prompts".into(),
                Some(json!({"name": format!("new-{r}"), "template": "t", "change_reason": "r"})),
            ),
            (
                Action::PromptUpdate,
                Method::POST,
                format!("/v1/prompts/p-{r}/versions"),
                Some(json!({"template": "t2", "change_reason": "r"})),
            ),
            (
                Action::PromptMoveLabel,
                Method::PUT,
                format!("/v1/prompts/p-{r}/labels/prod"),
                Some(json!({"version": 1})),
            ),
            (
                Action::PromptView,
                Method::GET,
                format!("/v1/prompts/p-{r}"),
                None,
            ),
            (
                Action::ApprovalRequest,
                Method::POST,
                "/v1/approvals".into(),
                Some(
                    json!({"subject": {"kind": "prompt_label", "name": format!("p-{r}"), "version": 1, "label": "d"}, "justification": "j"}),
                ),
            ),
            (
                Action::ApprovalApprove,
                Method::POST,
                format!("/v1/approvals/{to_approve}/approve"),
                Some(reason.clone()),
            ),
            (
                Action::ApprovalReject,
                Method::POST,
                format!("/v1/approvals/{to_reject}/reject"),
                Some(reason.clone()),
            ),
            (
                Action::ApprovalCancel,
                Method::POST,
                format!("/v1/approvals/{to_cancel}/cancel"),
                Some(reason.clone()),
            ),
            (
                Action::ApprovalView,
                Method::GET,
                "/v1/approvals".into(),
                None,
            ),
            (
                Action::AuditAppend,
                Method::POST,
                "/v1/audit/events".into(),
                Some(json!({"action": "app.event", "resource_type": "t", "resource_id": "1"})),
            ),
            (
                Action::AuditRead,
                Method::GET,
                "/v1/audit/events".into(),
                None,
            ),
            (
                Action::AuditExport,
                Method::GET,
                "/v1/audit/export".into(),
                None,
            ),
            (
                Action::AuditVerify,
                Method::GET,
                "/v1/audit/verify".into(),
                None,
            ),
            (
                Action::AuditCheckpoint,
                Method::POST,
                "/v1/audit/checkpoint".into(),
                None,
            ),
            (
                Action::TenantShred,
                Method::POST,
                "/v1/tenant/shred".into(),
                Some(json!({"reason": "rbac matrix"})),
            ),
            (
                Action::TenantShredSubject,
                Method::POST,
                "/v1/tenant/shred".into(),
                Some(json!({"reason": "rbac matrix", "subject": "C-1"})),
            ),
            (
                Action::KeysRotateDataKey,
                Method::POST,
                "/v1/tenant/rotate-data-key".into(),
                None,
            ),
        ];
        for (action, method, path, body) in cases {
            covered.insert(action);
            let mut req = app.request(method.clone(), &path, &me);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            let allowed = seed_allows(role, action);
            if allowed {
                assert!(
                    (200..300).contains(&status),
                    "{r} should be allowed {action} ({method} {path}): {status} {text}"
                );
            } else {
                assert_eq!(
                    status, 403,
                    "{r} must be refused {action} ({method} {path}): {text}"
                );
                assert!(
                    text.contains(&format!("may not perform {action}")),
                    "{r} {action}: {text}"
                );
            }
        }
    }
    let all: BTreeSet<Action> = Action::ALL
        .into_iter()
        .filter(|a| *a != Action::KeyRotate) // keys are rotated with `airisk crypto`, not over HTTP
        .collect();
    assert_eq!(
        covered, all,
        "every action the API exposes is in the matrix test"
    );
    app.shutdown().await;
}

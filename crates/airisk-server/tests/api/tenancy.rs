//! Tenants never see each other: on every route, another tenant's resource answers exactly what a
//! missing one does (same status, same body given the same correlation id), and listings and the
//! ledger of one tenant never show the other's.

use airisk_core::security::rbac::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Backend, DIGEST, TestApp};

/// Sends `method path body` as `token` with a fixed correlation id; returns status and raw body.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, String) {
    let mut req = app
        .request(method, path, token)
        .header("x-correlation-id", "tenancy-probe");
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

on_backends!(another_tenants_resources_look_exactly_like_missing_ones_on_every_route:
    [memory, sqlite, postgres]);

async fn another_tenants_resources_look_exactly_like_missing_ones_on_every_route(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    // acme owns: an approved model, a prompt with a pending label request, audit entries.
    let acme_admin = app.token("ada", "acme", Role::Admin);
    let acme_approver = app.token("bob", "acme", Role::Approver);
    app.register_model("acme", "credit", "1").await;
    assert_eq!(
        app.post(
            "/v1/models/credit/versions/1/approve",
            &acme_approver,
            &json!({"reason": "ok"})
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        app.post(
            "/v1/prompts",
            &acme_admin,
            &json!({"name": "p", "template": "t", "change_reason": "r"})
        )
        .await
        .status(),
        201
    );
    let r = app
        .post(
            "/v1/approvals",
            &acme_admin,
            &json!({"subject": {"kind": "prompt_label", "name": "p", "version": 1, "label": "prod"}, "justification": "j"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let acme_request = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let missing_request = "0190f5d2-7a4e-7cc0-8a4e-000000000000";

    // globex, with every role that could act, tries acme's resources and truly missing ones.
    let globex = app.token("gus", "globex", Role::Admin);
    let globex_approver = app.token("gina", "globex", Role::Approver);
    let reason = json!({"reason": "r"});
    let cases: Vec<(Method, String, String, &str, Option<Value>)> = vec![
        (
            Method::GET,
            "/v1/models/credit/versions/1".into(),
            "/v1/models/zzz/versions/1".into(),
            &globex,
            None,
        ),
        (
            Method::POST,
            "/v1/models/credit/versions/1/approve".into(),
            "/v1/models/zzz/versions/1/approve".into(),
            &globex_approver,
            Some(reason.clone()),
        ),
        (
            Method::POST,
            "/v1/models/credit/versions/1/reject".into(),
            "/v1/models/zzz/versions/1/reject".into(),
            &globex_approver,
            Some(reason.clone()),
        ),
        (
            Method::POST,
            "/v1/models/credit/versions/1/deployments".into(),
            "/v1/models/zzz/versions/1/deployments".into(),
            &globex,
            Some(json!({"sha256": DIGEST})),
        ),
        (
            Method::GET,
            "/v1/prompts/p".into(),
            "/v1/prompts/zzz".into(),
            &globex,
            None,
        ),
        (
            Method::GET,
            "/v1/prompts/p?version=1".into(),
            "/v1/prompts/zzz?version=1".into(),
            &globex,
            None,
        ),
        (
            Method::GET,
            "/v1/prompts/p/history".into(),
            "/v1/prompts/zzz/history".into(),
            &globex,
            None,
        ),
        (
            Method::GET,
            "/v1/prompts/p/diff?from=1&to=1".into(),
            "/v1/prompts/zzz/diff?from=1&to=1".into(),
            &globex,
            None,
        ),
        (
            Method::POST,
            "/v1/prompts/p/versions".into(),
            "/v1/prompts/zzz/versions".into(),
            &globex,
            Some(json!({"template": "u", "change_reason": "r"})),
        ),
        (
            Method::PUT,
            "/v1/prompts/p/labels/prod".into(),
            "/v1/prompts/zzz/labels/prod".into(),
            &globex,
            Some(json!({"version": 1})),
        ),
        (
            Method::GET,
            format!("/v1/approvals/{acme_request}"),
            format!("/v1/approvals/{missing_request}"),
            &globex,
            None,
        ),
        (
            Method::POST,
            format!("/v1/approvals/{acme_request}/approve"),
            format!("/v1/approvals/{missing_request}/approve"),
            &globex_approver,
            Some(reason.clone()),
        ),
        (
            Method::POST,
            format!("/v1/approvals/{acme_request}/reject"),
            format!("/v1/approvals/{missing_request}/reject"),
            &globex_approver,
            Some(reason.clone()),
        ),
        (
            Method::POST,
            format!("/v1/approvals/{acme_request}/cancel"),
            format!("/v1/approvals/{missing_request}/cancel"),
            &globex,
            Some(reason.clone()),
        ),
    ];
    for (method, theirs, missing, token, body) in cases {
        let a = call(&app, method.clone(), &theirs, token, body.as_ref()).await;
        let b = call(&app, method.clone(), &missing, token, body.as_ref()).await;
        assert_eq!(a.0, 404, "{method} {theirs}: {}", a.1);
        assert_eq!(a, b, "{method} {theirs} differs from {missing}");
    }

    // Ledger positions are per tenant: whatever globex reads by seq is its own (here, the denials
    // its attempts above recorded), never acme's entry of the same number.
    for seq in 0..3 {
        let e: Value = app
            .get(&format!("/v1/audit/events/{seq}"), &globex)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(e["record"]["tenant_id"], "globex", "{e}");
        assert_eq!(e["record"]["outcome"], "denied", "{e}");
    }

    // Creating under the same names in globex works: names are per tenant.
    assert_eq!(
        app.post(
            "/v1/models",
            &globex,
            &crate::support::model_body("credit", "1")
        )
        .await
        .status(),
        201
    );

    // Listings and the ledger show globex only its own.
    let gv = app.token("gwen", "globex", Role::Viewer);
    let versions: Value = app
        .get("/v1/models/credit/versions", &gv)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 1);
    assert_eq!(versions[0]["registered_by"], "gus");
    let approvals: Value = app.get("/v1/approvals", &gv).await.json().await.unwrap();
    let requests = approvals["requests"].as_array().unwrap();
    // Not vacuous: globex's own registration request is listed.
    assert!(!requests.is_empty(), "{approvals}");
    assert!(
        requests.iter().all(|r| r["requested_by"] == "gus"),
        "{approvals}"
    );
    let entries: Value = app
        .get("/v1/audit/events?limit=1000", &gv)
        .await
        .json()
        .await
        .unwrap();
    let entries = entries["entries"].as_array().unwrap();
    assert!(!entries.is_empty(), "globex's own records are listed");
    assert!(
        entries.iter().all(|e| e["record"]["tenant_id"] == "globex"),
        "{entries:?}"
    );
    // A viewer exports under the latest signed checkpoint (it may not sign one): globex's admin
    // signs one first.
    let globex_admin = app.token("gina", "globex", Role::Admin);
    let signed = app
        .post("/v1/audit/checkpoint", &globex_admin, &json!({}))
        .await;
    assert!(signed.status().is_success(), "{}", signed.status());
    let export = app.get("/v1/audit/export", &gv).await.text().await.unwrap();
    assert!(
        export.contains("globex"),
        "the export is globex's, not empty"
    );
    assert!(!export.contains("acme"));
    let report: Value = app.get("/v1/audit/verify", &gv).await.json().await.unwrap();
    assert_eq!(report["tenant"], "globex");
    // Every record of globex's ledger was listed (and nothing else).
    assert_eq!(
        report["entries"].as_u64(),
        Some(entries.len() as u64),
        "{report}"
    );

    // acme's model is untouched by globex's attempts.
    let m: Value = app
        .get(
            "/v1/models/credit/versions/1",
            &app.token("vic", "acme", Role::Viewer),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["status"], "APPROVED");
    assert_eq!(m["registered_by"], "ada.admin");
    app.shutdown().await;
}

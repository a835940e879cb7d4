//! Every error path: 400, 401 (each way a token can be wrong), 403, 404, 405, 409, 413, 415, 422,
//! 503 (timeout). Every error is problem+json with the correlation id, and never internals.

use std::time::Duration;

use airisk_core::security::rbac::Role;
use airisk_server::ServerConfig;
use airisk_server::auth::{Claims, TokenSigner, now_secs};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::support::{Backend, TestApp, model_body, problem};

async fn unauthorized(app: &TestApp, token: Option<&str>) -> Value {
    let mut req = app.client.get(app.url("/v1/approvals"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    assert_eq!(
        r.headers()["www-authenticate"].to_str().unwrap(),
        "Bearer realm=\"airisk\""
    );
    problem(r, 401).await
}

#[tokio::test]
async fn every_kind_of_bad_token_is_a_401() {
    let app = TestApp::spawn().await;
    let fresh = || Claims::new("ann", "acme", Role::Admin, 600);

    let p = unauthorized(&app, None).await;
    assert_eq!(p["type"], "urn:airisk:problem:unauthorized");
    unauthorized(&app, Some("not-a-jwt")).await;

    let mut expired = fresh();
    expired.exp = now_secs() - 3600;
    expired.nbf = Some(now_secs() - 7200);
    let p = unauthorized(&app, Some(&app.eddsa.sign(&expired).unwrap())).await;
    assert!(p["detail"].as_str().unwrap().contains("expired"));

    let mut early = fresh();
    early.nbf = Some(now_secs() + 3600);
    let p = unauthorized(&app, Some(&app.eddsa.sign(&early).unwrap())).await;
    assert!(p["detail"].as_str().unwrap().contains("not valid yet"));

    let mut audience = fresh();
    audience.aud = "another-service".into();
    let p = unauthorized(&app, Some(&app.eddsa.sign(&audience).unwrap())).await;
    assert!(p["detail"].as_str().unwrap().contains("audience"));

    let mut issuer = fresh();
    issuer.iss = "someone-else".into();
    let p = unauthorized(&app, Some(&app.eddsa.sign(&issuer).unwrap())).await;
    assert!(p["detail"].as_str().unwrap().contains("issuer"));

    // A viewer's token with the payload swapped for an admin's: the signature no longer holds.
    let viewer = app.token("vic", "acme", Role::Viewer);
    let admin = app.token("vic", "acme", Role::Admin);
    let v: Vec<&str> = viewer.split('.').collect();
    let a: Vec<&str> = admin.split('.').collect();
    let forged = format!("{}.{}.{}", v[0], a[1], v[2]);
    let p = unauthorized(&app, Some(&forged)).await;
    assert!(p["detail"].as_str().unwrap().contains("signature"));

    // HS256 with the wrong secret.
    let wrong = TokenSigner::Hs256(Zeroizing::new(vec![1u8; 32]));
    let p = unauthorized(&app, Some(&wrong.sign(&fresh()).unwrap())).await;
    assert!(p["detail"].as_str().unwrap().contains("signature"));

    // alg: none, unsigned.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&fresh()).unwrap());
    unauthorized(&app, Some(&format!("{header}.{payload}."))).await;

    // Claims that are not a principal: unknown role, bad tenant, missing claims.
    let mut role = fresh();
    role.role = "superuser".into();
    unauthorized(&app, Some(&app.eddsa.sign(&role).unwrap())).await;
    let mut tenant = fresh();
    tenant.tenant = "Acme Corp".into();
    unauthorized(&app, Some(&app.eddsa.sign(&tenant).unwrap())).await;
    let bare = app
        .hs256
        .sign(&json!({"sub": "ann", "iss": "airisk", "aud": "airisk-api", "exp": now_secs() + 60}))
        .unwrap();
    unauthorized(&app, Some(&bare)).await;

    // The HS256 dev secret does work (this app opted in), so the refusals above are real.
    let ok = app.hs256.sign(&fresh()).unwrap();
    assert_eq!(app.get("/v1/approvals", &ok).await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn a_role_without_the_permission_gets_a_403() {
    let app = TestApp::spawn().await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    let p = problem(
        app.post("/v1/models", &analyst, &model_body("m", "1"))
            .await,
        403,
    )
    .await;
    assert_eq!(p["type"], "urn:airisk:problem:forbidden");
    assert!(p["detail"].as_str().unwrap().contains("register_model"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_service_principal_cannot_approve() {
    let app = TestApp::spawn().await;
    app.register_model("acme", "m", "1").await;
    let bot = app.service_token("svc:pipeline", "acme", Role::Approver);
    let r = app
        .post(
            "/v1/models/m/versions/1/approve",
            &bot,
            &json!({"reason": "automated"}),
        )
        .await;
    let p = problem(r, 403).await;
    assert!(p["detail"].as_str().unwrap().contains("human"));
    app.shutdown().await;
}

#[tokio::test]
async fn missing_resources_are_404s() {
    let app = TestApp::spawn().await;
    let admin = app.token("ada", "acme", Role::Admin);
    for path in [
        "/v1/models/nope/versions/1",
        "/v1/prompts/nope",
        "/v1/prompts/nope/history",
        "/v1/approvals/0190f5d2-7a4e-7cc0-8a4e-000000000000",
        "/v1/approvals/not-a-uuid",
        "/v1/audit/events/42",
        "/v1/audit/checkpoint",
        "/v1/audit/proofs/inclusion?seq=42",
    ] {
        let p = problem(app.get(path, &admin).await, 404).await;
        assert_eq!(p["type"], "urn:airisk:problem:not-found", "{path}");
    }
    let p = problem(app.get("/v1/nothing-here", &admin).await, 404).await;
    assert_eq!(p["type"], "urn:airisk:problem:no-route");
    let r = app
        .request(Method::DELETE, "/v1/models", &admin)
        .send()
        .await
        .unwrap();
    problem(r, 405).await;
    app.shutdown().await;
}

on_backends!(conflicts_are_409s: [memory, sqlite, postgres]);

async fn conflicts_are_409s(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let admin = app.token("ada", "acme", Role::Admin);
    let approver = app.token("bob", "acme", Role::Approver);
    let other = app.token("carol", "acme", Role::Approver);
    app.register_model("acme", "m", "1").await;
    // The same version again.
    let p = problem(
        app.post("/v1/models", &admin, &model_body("m", "1")).await,
        409,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("already registered"));
    // Approving twice.
    let reason = json!({"reason": "ok"});
    let r = app
        .post("/v1/models/m/versions/1/approve", &approver, &reason)
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post("/v1/models/m/versions/1/approve", &other, &reason)
        .await;
    let p = problem(r, 409).await;
    assert!(p["detail"].as_str().unwrap().contains("APPROVED"), "{p}");
    // A prompt update that changes nothing.
    let analyst = app.token("ann", "acme", Role::Analyst);
    let body = json!({"name": "p", "template": "t", "change_reason": "r"});
    assert_eq!(app.post("/v1/prompts", &analyst, &body).await.status(), 201);
    problem(app.post("/v1/prompts", &analyst, &body).await, 409).await;
    let r = app
        .post(
            "/v1/prompts/p/versions",
            &analyst,
            &json!({"template": "t", "change_reason": "same"}),
        )
        .await;
    problem(r, 409).await;
    app.shutdown().await;
}

on_backends!(invalid_input_is_a_422_and_malformed_input_a_400_or_415: [memory, sqlite, postgres]);

async fn invalid_input_is_a_422_and_malformed_input_a_400_or_415(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let admin = app.token("ada", "acme", Role::Admin);
    let mut body = model_body("m", "1");
    body["checksum"] = json!("not-a-digest");
    let p = problem(app.post("/v1/models", &admin, &body).await, 422).await;
    assert!(p["detail"].as_str().unwrap().contains("SHA-256"));
    // A tenant in the body is refused, not silently ignored.
    let mut body = model_body("m", "1");
    body["tenant_id"] = json!("globex");
    let p = problem(app.post("/v1/models", &admin, &body).await, 422).await;
    assert!(p["detail"].as_str().unwrap().contains("tenant_id"));
    // Missing field.
    let p = problem(
        app.post("/v1/models", &admin, &json!({"name": "m"})).await,
        422,
    )
    .await;
    assert_eq!(p["type"], "urn:airisk:problem:validation");
    // Bad query values.
    problem(app.get("/v1/audit/events?limit=0", &admin).await, 422).await;
    problem(app.get("/v1/audit/events?limit=ten", &admin).await, 422).await;
    // Not JSON at all, and not declared as JSON.
    let r = app
        .request(Method::POST, "/v1/models", &admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(r, 400).await;
    let r = app
        .request(Method::POST, "/v1/models", &admin)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    problem(r, 415).await;
    app.shutdown().await;
}

on_backends!(an_oversize_body_is_a_413: [memory, sqlite, postgres]);

async fn an_oversize_body_is_a_413(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    let big = "x".repeat(2 * 1024 * 1024);
    let body = json!({"name": "p", "template": big, "change_reason": "huge"});
    let p = problem(app.post("/v1/prompts", &analyst, &body).await, 413).await;
    assert_eq!(p["type"], "urn:airisk:problem:payload-too-large");
    // Also when the length is not declared up front (chunked).
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b' '; 64 * 1024])).collect();
    let r = app
        .request(Method::POST, "/v1/prompts", &analyst)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    problem(r, 413).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_request_over_the_timeout_is_a_503() {
    let app = TestApp::spawn_with(ServerConfig {
        request_timeout: Duration::from_millis(50),
        ..ServerConfig::default()
    })
    .await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    // A body that never finishes keeps the handler waiting past the timeout (no timer in the
    // test: the server's own 50 ms timeout is what ends it).
    let slow = futures_util::StreamExt::chain(
        futures_util::stream::once(async { Ok::<_, std::io::Error>(vec![b' '; 8]) }),
        futures_util::stream::pending(),
    );
    let r = app
        .request(Method::POST, "/v1/prompts", &analyst)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(slow))
        .send()
        .await
        .unwrap();
    let p = problem(r, 503).await;
    assert_eq!(p["type"], "urn:airisk:problem:timeout");
    app.shutdown().await;
}

#[tokio::test]
async fn an_internal_failure_says_nothing_of_its_cause() {
    let app = TestApp::spawn().await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    app.memory.as_ref().unwrap().dangerous_fail_next_appends(1);
    let r = app
        .post(
            "/v1/audit/events",
            &analyst,
            &json!({"action": "a.b", "resource_type": "t", "resource_id": "1"}),
        )
        .await;
    let status = r.status().as_u16();
    assert!(status == 500 || status == 503, "{status}");
    let p = problem(r, status).await;
    let detail = p["detail"].as_str().unwrap();
    assert!(
        !detail.contains("inject") && !detail.contains("memory"),
        "{detail}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_subject_naming_what_no_prompt_or_label_can_be_is_a_422_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    let r = app
        .post(
            "/v1/prompts",
            &analyst,
            &json!({"name": "p", "template": "t", "change_reason": "first"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let acme = airisk_core::security::tenant_context::TenantId::parse("acme").unwrap();
    let before = app.audit.tree_head(&acme).await.unwrap().size;
    for (name, label, field) in [
        ("p", "prod label", "label"),
        ("p", "-prod", "label"),
        ("p", "", "label"),
        ("/p", "production", "prompt name"),
        ("p\u{1}", "production", "prompt name"),
    ] {
        let body = json!({
            "subject": {"kind": "prompt_label", "name": name, "version": 1, "label": label},
            "justification": "go live",
        });
        let p = problem(app.post("/v1/approvals", &analyst, &body).await, 422).await;
        assert!(
            p["detail"].as_str().unwrap().contains(field),
            "{name:?} {label:?}: {p}"
        );
    }
    assert_eq!(
        app.audit.tree_head(&acme).await.unwrap().size,
        before,
        "a refused subject wrote a record"
    );
    let listed = app.get("/v1/approvals", &analyst).await;
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed["requests"].as_array().unwrap().len(), 0, "{listed}");
    app.shutdown().await;
}

/// Sensitive model metadata is refused, whole, where it cannot be sealed: a service without
/// encryption keys answers 500 without detail and writes neither the model nor its request nor
/// a record; a non-object is a 422; a key also in `metadata` is a 422. Nothing is stored either
/// way, and the value appears in no answer.
#[tokio::test]
async fn sensitive_model_metadata_is_refused_whole_where_it_cannot_be_sealed() {
    let app = TestApp::spawn().await;
    let admin = app.token("ann", "acme", Role::Admin);
    let mut body = model_body("m", "1.0");
    body["sensitive_metadata"] = json!({"data_owner": "CANARY-4e1 Jane Roe"});
    let r = app.post("/v1/models", &admin, &body).await;
    let p = problem(r, 500).await;
    assert!(!p.to_string().contains("CANARY"), "{p}");
    body["sensitive_metadata"] = json!("CANARY-4e1 not an object");
    let p = problem(app.post("/v1/models", &admin, &body).await, 422).await;
    assert!(!p.to_string().contains("CANARY"), "{p}");
    body["metadata"] = json!({"data_owner": "x"});
    body["sensitive_metadata"] = json!({"data_owner": "CANARY-4e1"});
    problem(app.post("/v1/models", &admin, &body).await, 422).await;
    // A key is part of the sealed value's row identity: at most 128 characters.
    body["metadata"] = json!({});
    body["sensitive_metadata"] = json!({ "é".repeat(129): "CANARY-4e1" });
    let p = problem(app.post("/v1/models", &admin, &body).await, 422).await;
    assert!(p["detail"].as_str().unwrap().contains("128"), "{p}");
    let r = app
        .get(
            "/v1/models/m/versions/1.0",
            &app.token("vic", "acme", Role::Viewer),
        )
        .await;
    assert_eq!(r.status(), 404, "nothing was registered");
    let tenant = airisk_core::security::tenant_context::TenantId::parse("acme").unwrap();
    assert_eq!(
        app.audit.tree_head(&tenant).await.unwrap().size,
        0,
        "no record"
    );
}

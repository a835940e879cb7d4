//! `Idempotency-Key`: a write retried with the same key is applied once, and the retry answers
//! with the original write's receipts; on every store.

use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::TenantId;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, model_body, problem};

macro_rules! on_every_store {
    ($name:ident) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn in_memory() {
                super::$name(Backend::Memory).await;
            }

            #[tokio::test]
            async fn on_sqlite() {
                super::$name(Backend::Sqlite).await;
            }

            #[tokio::test]
            #[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
            async fn on_postgres() {
                super::$name(Backend::Postgres).await;
            }
        }
    };
}

async fn size(app: &TestApp, tenant: &str) -> u64 {
    app.audit
        .tree_head(&TenantId::parse(tenant).unwrap())
        .await
        .unwrap()
        .size
}

async fn append(app: &TestApp, token: &str, key: Option<&str>, marker: &str) -> reqwest::Response {
    let mut r = app
        .request(Method::POST, "/v1/audit/events", token)
        .json(&json!({"action": "app.event", "resource_type": "doc", "resource_id": marker}));
    if let Some(k) = key {
        r = r.header("Idempotency-Key", k);
    }
    r.send().await.unwrap()
}

on_every_store!(a_retried_append_is_recorded_once_and_answers_the_original_receipt);
async fn a_retried_append_is_recorded_once_and_answers_the_original_receipt(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    let first = append(&app, &analyst, Some("order-42"), "doc-1").await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotency-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    for _ in 0..2 {
        let retry = append(&app, &analyst, Some("order-42"), "doc-1").await;
        assert_eq!(retry.status(), 201);
        assert_eq!(retry.headers()["idempotency-replayed"], "true");
        let retry: Value = retry.json().await.unwrap();
        assert_eq!(retry, first, "the retry answers with the original receipt");
    }
    assert_eq!(size(&app, "acme").await, 1, "recorded once");
    // Another key is another write.
    let other = append(&app, &analyst, Some("order-43"), "doc-1").await;
    assert_eq!(other.status(), 201);
    let other: Value = other.json().await.unwrap();
    assert_eq!(other["seq"], 1);
    assert_eq!(size(&app, "acme").await, 2);
}

on_every_store!(concurrent_attempts_with_one_key_commit_once);
async fn concurrent_attempts_with_one_key_commit_once(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let request = app
                .request(Method::POST, "/v1/audit/events", &analyst)
                .header("Idempotency-Key", "same-key")
                .json(&json!({"action": "app.event", "resource_type": "doc", "resource_id": "d"}));
            tokio::spawn(async move {
                let r = request.send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut receipts = Vec::new();
    for task in tasks {
        let (status, receipt) = task.await.unwrap();
        assert_eq!(status, 201, "{receipt}");
        receipts.push(receipt);
    }
    assert!(receipts.iter().all(|r| *r == receipts[0]), "{receipts:?}");
    assert_eq!(receipts[0]["seq"], 0);
    assert_eq!(size(&app, "acme").await, 1);
}

on_every_store!(a_retried_registration_and_approval_answer_their_receipts_not_a_conflict);
async fn a_retried_registration_and_approval_answer_their_receipts_not_a_conflict(
    backend: Backend,
) {
    let app = TestApp::spawn_backend(backend).await;
    let admin = app.token("ada", "acme", Role::Admin);
    let approver = app.token("bob", "acme", Role::Approver);
    let register = || {
        app.request(Method::POST, "/v1/models", &admin)
            .header("Idempotency-Key", "register-m-1")
            .json(&model_body("m", "1"))
            .send()
    };
    let first = register().await.unwrap();
    assert_eq!(first.status(), 201);
    let after_register = size(&app, "acme").await;
    let retry = register().await.unwrap();
    assert_eq!(retry.status(), 200, "a replay, not 409");
    assert_eq!(retry.headers()["idempotency-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["replayed"], true);
    let receipts = retry["receipts"].as_array().unwrap();
    assert_eq!(receipts.len() as u64, after_register);
    assert_eq!(receipts[0]["seq"], 0);
    assert_eq!(size(&app, "acme").await, after_register);

    let approve = || {
        app.request(Method::POST, "/v1/models/m/versions/1/approve", &approver)
            .header("Idempotency-Key", "approve-m-1")
            .json(&json!({"reason": "fine"}))
            .send()
    };
    let first = approve().await.unwrap();
    assert_eq!(first.status(), 200);
    let after_approve = size(&app, "acme").await;
    let retry = approve().await.unwrap();
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotency-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    let receipts = retry["receipts"].as_array().unwrap();
    assert!(!receipts.is_empty());
    assert!(
        receipts
            .iter()
            .all(|r| r["seq"].as_u64().unwrap() >= after_register)
    );
    assert_eq!(size(&app, "acme").await, after_approve);
    // Without a key, the same approval again is the plain conflict it always was.
    let r = app
        .post(
            "/v1/models/m/versions/1/approve",
            &approver,
            &json!({"reason": "again"}),
        )
        .await;
    problem(r, 409).await;
}

on_every_store!(keys_are_scoped_to_the_caller);
async fn keys_are_scoped_to_the_caller(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let ann = app.token("ann", "acme", Role::Analyst);
    let bea = app.token("bea", "acme", Role::Analyst);
    let other_tenant = app.token("ann", "globex", Role::Analyst);
    for token in [&ann, &bea, &other_tenant] {
        let r = append(&app, token, Some("k"), "doc").await;
        assert_eq!(r.status(), 201);
        assert!(r.headers().get("idempotency-replayed").is_none());
    }
    assert_eq!(size(&app, "acme").await, 2);
    assert_eq!(size(&app, "globex").await, 1);
}

on_every_store!(bad_keys_and_reserved_correlation_ids_are_refused_and_change_nothing);
async fn bad_keys_and_reserved_correlation_ids_are_refused_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    for key in ["has space", &"k".repeat(256)] {
        let r = append(&app, &analyst, Some(key), "doc").await;
        problem(r, 400).await;
    }
    let r = app
        .request(Method::POST, "/v1/audit/events", &analyst)
        .header("x-correlation-id", "idem-0123456789abcdef")
        .json(&json!({"action": "app.event", "resource_type": "doc", "resource_id": "d"}))
        .send()
        .await
        .unwrap();
    problem(r, 400).await;
    assert_eq!(size(&app, "acme").await, 0);
}

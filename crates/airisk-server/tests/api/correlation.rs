//! Correlation ids: accepted when valid, generated otherwise, returned on every response
//! (errors included), and stored in the audit records the request wrote.

use airisk_core::request::CorrelationId;
use airisk_core::security::rbac::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, model_body};

on_backends!(a_valid_correlation_id_round_trips_into_the_audit_record: [memory, sqlite, postgres]);

async fn a_valid_correlation_id_round_trips_into_the_audit_record(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let admin = app.token("ada", "acme", Role::Admin);
    let r = app
        .request(Method::POST, "/v1/models", &admin)
        .header("x-correlation-id", "trace-7f3a:step-1")
        .json(&model_body("m", "1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-correlation-id"], "trace-7f3a:step-1");
    let page: Value = app
        .get("/v1/audit/events?correlation_id=trace-7f3a:step-1", &admin)
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["record"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["model.register", "approval.request"]);
    app.shutdown().await;
}

#[tokio::test]
async fn an_invalid_or_missing_correlation_id_is_replaced_by_a_generated_one() {
    let app = TestApp::spawn().await;
    let admin = app.token("ada", "acme", Role::Admin);
    for sent in [
        None,
        Some("has spaces and ünïcode"),
        Some(&*"x".repeat(200)),
    ] {
        let mut req = app.request(Method::GET, "/v1/approvals", &admin);
        if let Some(s) = sent {
            req = req.header("x-correlation-id", s);
        }
        let r = req.send().await.unwrap();
        let got = r.headers()["x-correlation-id"].to_str().unwrap().to_owned();
        assert!(CorrelationId::parse(&got).is_ok());
        assert!(
            uuid::Uuid::parse_str(&got).is_ok(),
            "generated ids are UUIDs: {got}"
        );
        assert_ne!(Some(got.as_str()), sent);
    }
    app.shutdown().await;
}

#[tokio::test]
async fn errors_and_unauthenticated_responses_carry_it_too() {
    let app = TestApp::spawn().await;
    for (path, status) in [("/v1/approvals", 401), ("/nowhere", 404), ("/healthz", 200)] {
        let r = app
            .client
            .get(app.url(path))
            .header("x-correlation-id", "probe-1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
        assert_eq!(r.headers()["x-correlation-id"], "probe-1");
        if status != 200 {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["correlation_id"], "probe-1");
        }
    }
    // A denial is audited with the caller's correlation id.
    let analyst = app.token("ann", "acme", Role::Analyst);
    let r = app
        .request(Method::POST, "/v1/models", &analyst)
        .header("x-correlation-id", "denied-42")
        .json(&json!({"name": "m", "version": "1", "checksum": "00", "artifact_uri": "s3://x", "justification": "j"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let page: Value = app
        .get("/v1/audit/events?correlation_id=denied-42", &analyst)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["entries"][0]["record"]["outcome"], "denied");
    assert_eq!(page["entries"][0]["record"]["actor"], "ann");
    app.shutdown().await;
}

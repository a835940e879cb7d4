//! One structured JSON log line per request (method, route, status, latency, tenant, actor,
//! correlation id), and never the bearer token. A test binary of its own, because it installs the
//! process's global subscriber.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

#[path = "api/pg.rs"]
mod pg;
#[path = "api/support.rs"]
mod support;

use airisk_core::security::rbac::Role;
use airisk_testkit::CapturedLogs;
use reqwest::Method;
use serde_json::Value;

use crate::support::TestApp;

#[tokio::test]
async fn each_request_writes_one_json_log_line_without_the_token() {
    let captured = CapturedLogs::new();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(captured.writer())
        .finish();
    // Global, in a binary of its own: a thread-scoped subscriber races with the callsite cache of
    // tests running in parallel.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let app = TestApp::spawn().await;
    let admin = app.token("ada", "acme", Role::Admin);
    let r = app
        .request(Method::GET, "/v1/models/credit/versions/1", &admin)
        .header("x-correlation-id", "log-line-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.shutdown().await;
    let text = captured.text();
    assert!(!text.contains(&admin), "the token must never be logged");
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "http")
        .collect();
    assert_eq!(lines.len(), 1, "captured: {text}");
    let line = &lines[0];
    assert_eq!(line["method"], "GET");
    assert_eq!(line["route"], "/v1/models/{name}/versions/{version}");
    assert_eq!(line["status"], 404);
    assert_eq!(line["tenant"], "acme");
    assert_eq!(line["actor"], "ada");
    assert_eq!(line["correlation_id"], "log-line-1");
    assert!(line["latency_ms"].as_f64().unwrap() >= 0.0);
}

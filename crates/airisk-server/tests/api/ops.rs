//! Operability: the OpenAPI document lists exactly the routes the router serves, health and
//! readiness, Prometheus metrics, and one structured log line per request without secrets.

use std::collections::BTreeSet;

use airisk_core::security::rbac::Role;
use reqwest::Method;
use serde_json::Value;

use crate::support::TestApp;

/// The API, as a reader of the code would list it. The document must say exactly this, and the
/// router must serve each of these (and nothing else: everything else hits the fallback).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/readyz"),
    ("GET", "/v1/approvals"),
    ("POST", "/v1/approvals"),
    ("GET", "/v1/approvals/{id}"),
    ("POST", "/v1/approvals/{id}/approve"),
    ("POST", "/v1/approvals/{id}/cancel"),
    ("POST", "/v1/approvals/{id}/reject"),
    ("GET", "/v1/audit/checkpoint"),
    ("POST", "/v1/audit/checkpoint"),
    ("GET", "/v1/audit/events"),
    ("POST", "/v1/audit/events"),
    ("GET", "/v1/audit/events/{seq}"),
    ("GET", "/v1/audit/export"),
    ("GET", "/v1/audit/proofs/consistency"),
    ("GET", "/v1/audit/proofs/inclusion"),
    ("GET", "/v1/audit/verify"),
    ("POST", "/v1/audit/verify"),
    ("POST", "/v1/models"),
    ("GET", "/v1/models/{name}/versions"),
    ("GET", "/v1/models/{name}/versions/{version}"),
    ("POST", "/v1/models/{name}/versions/{version}/approve"),
    ("POST", "/v1/models/{name}/versions/{version}/deployments"),
    ("POST", "/v1/models/{name}/versions/{version}/reject"),
    ("POST", "/v1/prompts"),
    ("GET", "/v1/prompts/{name}"),
    ("GET", "/v1/prompts/{name}/diff"),
    ("GET", "/v1/prompts/{name}/history"),
    ("PUT", "/v1/prompts/{name}/labels/{label}"),
    ("POST", "/v1/prompts/{name}/versions"),
    ("POST", "/v1/integrations/mlflow/webhook"),
    ("GET", "/v1/integrations/mlflow/status"),
    ("POST", "/v1/integrations/mlflow/reconcile"),
    ("POST", "/v1/tenant/shred"),
    ("POST", "/v1/tenant/rotate-data-key"),
];

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_the_router_serves() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            if path.starts_with("/v1/") {
                assert!(
                    op["security"].is_array(),
                    "{method} {path} must document its bearer auth"
                );
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path} must document 401"
                );
            }
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, expected);

    // The router serves each documented (method, path), and answers 405 to the other methods of
    // a served path: a route that is served but undocumented would have to sit at a path the
    // table lacks, which the fallback probe below rules out for the API's prefixes.
    let token = app.token("ada", "acme", Role::Admin);
    let paths: BTreeSet<&str> = ROUTES.iter().map(|(_, p)| *p).collect();
    for path in paths {
        let concrete = path
            .replace("{id}", "0190f5d2-7a4e-7cc0-8a4e-000000000000")
            .replace("{seq}", "0")
            .replace("{name}", "n")
            .replace("{version}", "1")
            .replace("{label}", "l");
        for method in METHODS {
            let r = app
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    &concrete,
                    &token,
                )
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            let is_documented = expected.contains(&(method.to_owned(), path.to_owned()));
            assert!(
                !body.contains("urn:airisk:problem:no-route"),
                "{method} {concrete} fell through to the fallback"
            );
            if is_documented {
                assert_ne!(status, 405, "{method} {path} is documented but not served");
            } else {
                assert_eq!(status, 405, "{method} {path} is served but not documented");
            }
        }
    }
    for unknown in [
        "/",
        "/v1",
        "/v1/",
        "/v1/admin",
        "/v1/models/n",
        "/v1/audit",
        "/v2/models",
    ] {
        let r = app
            .request(Method::GET, unknown, &token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{unknown}");
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("urn:airisk:problem:no-route")
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn health_readiness_and_metrics_answer_without_a_token() {
    let app = TestApp::spawn().await;
    let admin = app.token("ada", "acme", Role::Admin);
    assert_eq!(
        app.get("/v1/models/x/versions/1", &admin).await.status(),
        404
    );
    for path in ["/healthz", "/readyz"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");
    }
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    assert!(text.contains(
        "airisk_http_requests_total{method=\"GET\",route=\"/v1/models/{name}/versions/{version}\",status=\"404\"} 1"
    ), "{text}");
    assert!(text.contains("# TYPE airisk_http_request_duration_seconds histogram"));
    assert!(text.contains("airisk_http_requests_in_flight"));
    assert!(text.contains("process_resident_memory_bytes"));
    app.shutdown().await;
}

#[tokio::test]
async fn the_in_flight_limit_queues_api_requests_but_not_the_probes() {
    let app = TestApp::spawn_with(airisk_server::ServerConfig {
        max_in_flight: 1,
        ..airisk_server::ServerConfig::default()
    })
    .await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    // The holder's body is released by this test, not by a timer: until then it holds the only
    // slot.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let first = futures_util::stream::once(async {
        Ok::<_, std::io::Error>(b"{\"action\":\"held.first\",\"resource_type\":\"t\",".to_vec())
    });
    let rest = futures_util::stream::once(async move {
        let _ = released.await;
        Ok::<_, std::io::Error>(b"\"resource_id\":\"1\"}".to_vec())
    });
    let body = futures_util::StreamExt::chain(first, rest);
    let holder = tokio::spawn(
        app.request(Method::POST, "/v1/audit/events", &analyst)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    );
    // Wait (polling /metrics, which is not limited, with a deadline) until the holder is in flight
    // (the gauge counts the /metrics request itself too).
    wait_for_in_flight(&app, 2, || false).await;
    // A second API request queues behind it...
    let queued = {
        let request = app
            .request(Method::POST, "/v1/audit/events", &analyst)
            .json(&serde_json::json!({"action": "queued.second", "resource_type": "t", "resource_id": "2"}))
            .send();
        tokio::spawn(request)
    };
    wait_for_in_flight(&app, 3, || queued.is_finished()).await;
    // ...while a probe is answered at once.
    let probe = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(probe.status(), 200);
    assert!(
        !queued.is_finished(),
        "the queued API request was answered while the only slot was held"
    );
    release.send(()).unwrap();
    let held = holder.await.unwrap().unwrap();
    assert_eq!(held.status(), 201);
    let queued = queued.await.unwrap().unwrap();
    assert_eq!(queued.status(), 201);
    // Served in order: the held request took seq 0, the queued one seq 1 (had the limit not
    // queued it, its complete body would have been appended first).
    let held: Value = held.json().await.unwrap();
    let queued: Value = queued.json().await.unwrap();
    assert_eq!(
        (held["seq"].as_u64(), queued["seq"].as_u64()),
        (Some(0), Some(1))
    );
    app.shutdown().await;
}

/// Polls `/metrics` until `airisk_http_requests_in_flight` is at least `n`; fails at once if
/// `answered()` (the queued request came back: it was not queued), and after a generous deadline
/// (a bound on a hang, not a timing assertion).
async fn wait_for_in_flight(app: &TestApp, n: i64, answered: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let now: i64 = text
            .lines()
            .find_map(|l| l.strip_prefix("airisk_http_requests_in_flight "))
            .and_then(|v| v.trim().parse().ok())
            .expect("the in-flight gauge is exported");
        if now >= n {
            return;
        }
        assert!(
            !answered(),
            "the queued API request was answered while the only slot was held"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "in-flight never reached {n} (now {now})"
        );
        tokio::task::yield_now().await;
    }
}

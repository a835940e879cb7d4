//! The API contract: the server answers what `/openapi.json` says. Each test pins one rule that
//! Schemathesis (`scripts/schemathesis.sh`) found broken: parameters that do not parse are 422s,
//! combinations the document allows have a defined answer, the document carries the links and the
//! hidden-character rule, and an audit append that could never be read back is refused.
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
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, problem};

#[tokio::test]
async fn query_and_path_parameters_that_do_not_parse_are_documented_422s() {
    let app = TestApp::spawn().await;
    let admin = app.token("admin1", "acme", Role::Admin);
    for path in [
        "/v1/audit/events/-1",
        "/v1/audit/proofs/inclusion?seq=-1",
        "/v1/audit/proofs/consistency?from=-1",
        "/v1/prompts/p?version=-1",
        "/v1/prompts/p/diff?from=1",
        "/v1/approvals?limit=ten",
        "/v1/approvals?status=LOST",
        "/v1/approvals?offset=9223372036854775808",
        "/v1/audit/events?cursor=9223372036854775808",
        "/v1/models/null%2Cnull/versions",
    ] {
        let p = problem(app.get(path, &admin).await, 422).await;
        assert_eq!(p["type"], "urn:airisk:problem:validation", "{path}");
    }
    // A proof the ledger cannot give yet is a missing resource, not an invalid request.
    let r = app
        .get("/v1/audit/proofs/consistency?from=5&to=9", &admin)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn version_and_label_together_read_the_labelled_version_only_if_it_is_that_one() {
    let app = TestApp::spawn().await;
    let analyst = app.token("analyst1", "acme", Role::Analyst);
    let approver = app.token("approver1", "acme", Role::Approver);
    let r = app
        .post(
            "/v1/prompts",
            &analyst,
            &json!({"name": "p", "template": "one", "change_reason": "first"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let req: Value = app
        .post(
            "/v1/approvals",
            &analyst,
            &json!({"subject": {"kind": "prompt_label", "name": "p", "version": 1.0, "label": "production"},
                    "justification": "golden set passed", "required_approvals": 1.0}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = req["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/v1/approvals/{id}/approve"),
            &approver,
            &json!({"reason": "ok"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .put(
            "/v1/prompts/p/labels/production",
            &analyst,
            &json!({"version": 1.0}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "1.0 is the whole number 1");
    let v: Value = app
        .get("/v1/prompts/p?version=1&label=production", &analyst)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["version"], 1);
    let r = app
        .get("/v1/prompts/p?version=2&label=production", &analyst)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_filters_narrow_and_only_prompt_label_requests_are_opened_directly() {
    let app = TestApp::spawn().await;
    let analyst = app.token("analyst1", "acme", Role::Analyst);
    let page: Value = app
        .get(
            "/v1/approvals?pending_for_me=true&status=APPROVED",
            &analyst,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["requests"], json!([]));
    let r = app
        .post(
            "/v1/approvals",
            &analyst,
            &json!({"subject": {"kind": "model", "name": "m", "version": "1"}, "justification": "x"}),
        )
        .await;
    problem(r, 422).await;
    let r = app
        .post(
            "/v1/approvals",
            &analyst,
            &json!({"subject": {"kind": "prompt_label", "name": "p", "version": 1, "label": "-bad"},
                    "justification": "x"}),
        )
        .await;
    problem(r, 422).await;
    let r = app
        .post(
            "/v1/approvals",
            &analyst,
            &json!({"subject": {"kind": "prompt_label", "name": "p", "version": 1, "label": "production"},
                    "justification": "x", "expires_in_seconds": 315_576_001}),
        )
        .await;
    problem(r, 422).await;
}

#[tokio::test]
async fn an_audit_append_that_could_not_be_read_back_is_refused_and_search_keeps_working() {
    let app = TestApp::spawn().await;
    let analyst = app.token("analyst1", "acme", Role::Analyst);
    // 2^60 as a double: canonical JSON writes it as plain digits, which read back as an integer
    // beyond ±(2^53 - 1).
    let r = app
        .request(reqwest::Method::POST, "/v1/audit/events", &analyst)
        .header("content-type", "application/json")
        .body(r#"{"action":"report.generate","resource_type":"report","resource_id":"r1","metadata":{"n":1.152921504606847e18}}"#)
        .send()
        .await
        .unwrap();
    problem(r, 422).await;
    let r = app.get("/v1/audit/events?resource_id=r1", &analyst).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_document_carries_links_and_the_hidden_character_rule() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, links) in [
        (
            "/v1/models",
            &["GetModelVersion", "ApproveModel", "GetApprovalRequest"][..],
        ),
        (
            "/v1/prompts",
            &["GetPrompt", "UpdatePrompt", "PromptDiff"][..],
        ),
        (
            "/v1/approvals",
            &["GetApprovalRequest", "ApproveRequest", "MovePromptLabel"][..],
        ),
    ] {
        let found = &doc["paths"][path]["post"]["responses"]["201"]["links"];
        for link in links {
            let op = found[link]["operationId"].as_str().unwrap_or_else(|| {
                panic!("{path} has no link {link}: {found}");
            });
            let exists = doc["paths"].as_object().unwrap().values().any(|item| {
                item.as_object()
                    .unwrap()
                    .values()
                    .any(|o| o["operationId"] == op)
            });
            assert!(exists, "{path}: link {link} names no operation {op}");
        }
    }
    let template = &doc["components"]["schemas"]["RegisterPromptBody"]["properties"]["template"];
    let pattern = template["pattern"].as_str().unwrap();
    // Zero-width characters and marks, line separators and bidi controls, soft hyphen, BOM, and
    // the tag block (merged with the noncharacter U+DFFFF before it).
    for refused in [
        "\\u200B-\\u200F",
        "\\u2028-\\u202E",
        "\\u00AD",
        "\\uFEFF",
        "-\u{E007F}",
    ] {
        assert!(
            pattern.contains(refused),
            "the pattern does not name {refused}"
        );
    }
    let problem_schema = doc["components"]["schemas"]["Problem"].to_string();
    assert!(
        problem_schema.contains("HiddenCharacterView"),
        "{problem_schema}"
    );
}

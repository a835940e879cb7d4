//! What an approver approves is what they could see, over HTTP: text holding characters a reader
//! would not see (tag characters, bidi controls, zero-width characters, …) is a 422
//! `hidden-character` problem naming the code point and its position, and nothing is stored;
//! ordinary text of every script is stored unchanged; and text stored before the check existed
//! renders in the console with every such character escaped and highlighted.
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

use airisk_core::ports::{ChangeSet, Mutation};
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::TenantId;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::support::{TestApp, model_body, problem};

const HIDDEN_TEMPLATE: &str = "Summarise {doc}.\nBe brief.\u{E0049}\u{E0067}\u{E006E}";

fn assert_hidden_problem(p: &Value, field: &str, code_point: &str, pos: (u64, u64, u64)) {
    assert_eq!(p["type"], "urn:airisk:problem:hidden-character", "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains(code_point), "{detail}");
    assert!(detail.contains(field), "{detail}");
    assert!(detail.contains(&format!("character {}", pos.0)), "{detail}");
    let h = &p["hidden_character"];
    assert_eq!(h["field"], field, "{p}");
    assert_eq!(h["code_point"], code_point, "{p}");
    assert_eq!(
        (
            h["position"].as_u64().unwrap(),
            h["line"].as_u64().unwrap(),
            h["column"].as_u64().unwrap()
        ),
        pos,
        "{p}"
    );
}

#[tokio::test]
async fn a_prompt_with_tag_characters_is_a_422_naming_the_code_point_and_nothing_is_stored() {
    let app = TestApp::spawn_with(dev_console()).await;
    let analyst = app.token("analyst1", "acme", Role::Analyst);
    let r = app
        .post(
            "/v1/prompts",
            &analyst,
            &json!({"name": "kyc", "template": HIDDEN_TEMPLATE, "change_reason": "first"}),
        )
        .await;
    let p = problem(r, 422).await;
    // "Summarise {doc}.\n" is 17 characters, "Be brief." 9 more: the tag is the 27th, at 2:10.
    assert_hidden_problem(&p, "template", "U+E0049", (27, 2, 10));
    let r = app.get("/v1/prompts/kyc", &analyst).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The same for a new version, and for a change reason with a right-to-left override.
    let r = app
        .post(
            "/v1/prompts",
            &analyst,
            &json!({"name": "kyc", "template": "Summarise {doc}.", "change_reason": "first"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .post(
            "/v1/prompts/kyc/versions",
            &analyst,
            &json!({"template": "Summarise {doc}.\u{200D}", "change_reason": "tweak"}),
        )
        .await;
    assert_hidden_problem(&problem(r, 422).await, "template", "U+200D", (17, 1, 17));
    let r = app
        .post(
            "/v1/prompts/kyc/versions",
            &analyst,
            &json!({"template": "Summarise {doc} briefly.", "change_reason": "tidy\u{202E}"}),
        )
        .await;
    assert_hidden_problem(&problem(r, 422).await, "change_reason", "U+202E", (5, 1, 5));
    let history: Value = app
        .get("/v1/prompts/kyc/history", &analyst)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["versions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn hidden_characters_in_justifications_reasons_and_model_metadata_are_422s() {
    let app = TestApp::spawn_with(dev_console()).await;
    let admin = app.token("admin1", "acme", Role::Admin);
    let approver = app.token("approver1", "acme", Role::Approver);

    let mut body = model_body("credit", "1.0");
    body["justification"] = json!("beats the champion\u{2066}");
    let r = app.post("/v1/models", &admin, &body).await;
    assert_hidden_problem(
        &problem(r, 422).await,
        "justification",
        "U+2066",
        (19, 1, 19),
    );
    let mut body = model_body("credit", "1.0");
    body["metadata"] = json!({"owner": "risk\u{200B}team"});
    let r = app.post("/v1/models", &admin, &body).await;
    assert_hidden_problem(
        &problem(r, 422).await,
        "metadata.owner",
        "U+200B",
        (5, 1, 5),
    );
    let r = app.get("/v1/models/credit/versions/1.0", &admin).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let r = app
        .post("/v1/models", &admin, &model_body("credit", "1.0"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .post(
            "/v1/models/credit/versions/1.0/approve",
            &approver,
            &json!({"reason": "ok\u{00AD}"}),
        )
        .await;
    assert_hidden_problem(&problem(r, 422).await, "reason", "U+00AD", (3, 1, 3));
    let model: Value = app
        .get("/v1/models/credit/versions/1.0", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(model["status"], "PENDING");
}

#[tokio::test]
async fn ordinary_text_of_every_script_is_accepted_and_served_unchanged() {
    let app = TestApp::spawn_with(dev_console()).await;
    let analyst = app.token("analyst1", "acme", Role::Analyst);
    let text = "Summarise the customer's KYC file in three bullet points.\n\
                Zürich café naïve · 请总结文件 · 日本語 · لخص المستند · סכם את המסמך\n\
                \tEmoji: 😀 👍🏽 🇩🇪 ❤\u{FE0F}";
    let r = app
        .post(
            "/v1/prompts",
            &analyst,
            &json!({"name": "intl", "template": text, "change_reason": "لخص · 请 · ❤\u{FE0F}"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let got: Value = app
        .get("/v1/prompts/intl", &analyst)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        got["template"].as_str().unwrap().as_bytes(),
        text.as_bytes()
    );
}

/// The value of the first `<input name="{name}" value="…">` of a page.
fn field(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} field in {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The console with dev mode's pasted-token sign-in.
fn dev_console() -> airisk_server::ServerConfig {
    airisk_server::ServerConfig {
        console: airisk_server::ConsoleConfig {
            token_sign_in: true,
            ..airisk_server::ConsoleConfig::default()
        },
        ..airisk_server::ServerConfig::default()
    }
}

/// A console session for `token`, signed in through the form; returns the client and cookie.
async fn console_session(app: &TestApp, token: &str) -> (reqwest::Client, String) {
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(app.url("/console/sign-in"))
        .send()
        .await
        .unwrap();
    let pre: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let page = r.text().await.unwrap();
    let r = client
        .post(app.url("/console/sign-in"))
        .header("cookie", pre.join("; "))
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("csrf", field(&page, "csrf").as_str()),
            ("token", token),
            ("next", "/console/queue"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
        .filter(|c| !c.ends_with('='))
        .collect::<Vec<_>>()
        .join("; ");
    (client, cookie)
}

#[tokio::test]
async fn hidden_characters_stored_before_the_check_render_escaped_and_highlighted_in_the_console() {
    let app = TestApp::spawn_with(dev_console()).await;
    let analyst = app.token("analyst1", "acme", Role::Analyst);
    let approver = app.token("approver1", "acme", Role::Approver);
    let r = app
        .post(
            "/v1/prompts",
            &analyst,
            &json!({"name": "kyc", "template": "Summarise {doc}.\nBe brief.", "change_reason": "first"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Version 2 as a store written before the check could hold it: planted directly.
    let planted: airisk_core::governance::prompt_registry::PromptVersion =
        serde_json::from_value(json!({
            "tenant_id": "acme",
            "name": "kyc",
            "version": 2,
            "template": HIDDEN_TEMPLATE,
            "template_sha256": airisk_core::governance::model_registry::Sha256Digest::of(HIDDEN_TEMPLATE.as_bytes()).to_hex(),
            "author": "analyst1",
            "change_reason": "old \u{202E}reason",
            "created_at": "2026-01-01T00:00:00Z",
        }))
        .unwrap();
    app.governance
        .commit(ChangeSet {
            tenant: TenantId::parse("acme").unwrap(),
            mutations: vec![Mutation::InsertPromptVersion(planted)],
            audit: vec![],
        })
        .await
        .unwrap();
    let opened: Value = app
        .post(
            "/v1/approvals",
            &analyst,
            &json!({
                "subject": {"kind": "prompt_label", "name": "kyc", "version": 2, "label": "production"},
                "justification": "evaluated on the golden set",
            }),
        )
        .await
        .json()
        .await
        .unwrap();
    let request_id = opened["id"].as_str().unwrap();

    let (client, cookie) = console_session(&app, &approver).await;
    for path in [
        "/console/prompts/view?name=kyc&from=1&to=2".to_owned(),
        format!("/console/requests/{request_id}"),
    ] {
        let r = client
            .get(app.url(&path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let page = r.text().await.unwrap();
        for cp in ["E0049", "E0067", "E006E", "202E"] {
            assert!(
                page.contains(&format!(
                    "<mark class=\"hidden-char\" title=\"hidden character U+{cp}"
                )) && page.contains(&format!("\u{27E8}U+{cp}\u{27E9}</mark>")),
                "{path}: U+{cp} is not shown escaped and highlighted"
            );
        }
        for c in ['\u{E0049}', '\u{E0067}', '\u{E006E}', '\u{202E}'] {
            assert!(
                !page.contains(c),
                "{path}: the raw U+{:04X} reached the page",
                u32::from(c)
            );
        }
    }
}

//! Hostile callers over HTTP (issue 11, items 3, 4, 7, 8, 9 and the `crit` header of 13): each
//! test drives the real server the way an attacker with a valid token of some role would, and
//! checks the promise held, in the response and in the ledger itself.

use airisk_core::governance::audit_record::{KERNEL_NAMESPACES, TRUNCATION_MARKER};
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::TenantId;
use airisk_server::ServerConfig;
use airisk_server::auth::Claims;
use airisk_server::throttle::DenialThrottleConfig;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::support::{DIGEST, SECRET, TestApp, model_body, problem};

const T: &str = "acme";

/// Every ledger record of `tenant` from `from` on, decoded from its exact leaf bytes.
async fn records_from(app: &TestApp, tenant: &str, from: u64) -> Vec<Value> {
    app.audit
        .entries(&TenantId::parse(tenant).unwrap(), from, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| serde_json::from_slice(&e.leaf).unwrap())
        .collect()
}

async fn ledger_size(app: &TestApp, tenant: &str) -> u64 {
    app.audit
        .tree_head(&TenantId::parse(tenant).unwrap())
        .await
        .unwrap()
        .size
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs the auditor's independent verifier (`tools/verify_export.py`) on an export; its stdout.
fn python_verifies(app: &TestApp, tenant: &str, export: &str) -> String {
    let file = std::env::temp_dir().join(format!("airisk-hostile-{}.jsonl", uuid::Uuid::now_v7()));
    std::fs::write(&file, export).unwrap();
    let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/verify_export.py");
    let out = std::process::Command::new("python3")
        .args([
            tool,
            file.to_str().unwrap(),
            "--verifier-key",
            &app.signer.verifier().to_verifier_key(),
            "--tenant",
            tenant,
        ])
        .output()
        .expect("python3 (with the cryptography package) runs the auditor's verifier");
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn model_status(app: &TestApp, token: &str, name: &str) -> String {
    let r = app
        .get(&format!("/v1/models/{name}/versions/1.0"), token)
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["status"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Item 3: one canonical identity.
// ---------------------------------------------------------------------------------------------

/// Spellings of `admin1` that an identity provider might hand out as a different `sub`.
const VARIANTS_OF_ADMIN1: &[&str] = &[
    "ADMIN1",
    "Admin1",
    "\u{ff41}\u{ff44}\u{ff4d}\u{ff49}\u{ff4e}\u{ff11}", // full-width ａｄｍｉｎ１
    "\u{ff21}\u{ff24}\u{ff2d}\u{ff29}\u{ff2e}1",        // full-width upper case ＡＤＭＩＮ1
    "admin\u{00b9}",                                    // superscript one: admin¹
    "ad\u{217f}in1",                                    // ROMAN NUMERAL ONE THOUSAND (ⅿ) for m
];

#[tokio::test]
async fn a_case_full_width_or_compatibility_variant_of_the_registrant_can_neither_approve_nor_reject()
 {
    let app = TestApp::spawn().await;
    let registrant = app.token("admin1", T, Role::Admin);
    let r = app
        .post("/v1/models", &registrant, &model_body("credit", "1.0"))
        .await;
    assert_eq!(r.status(), 201);
    for variant in VARIANTS_OF_ADMIN1 {
        let me_again = app.token(variant, T, Role::Admin);
        for verb in ["approve", "reject"] {
            let r = app
                .post(
                    &format!("/v1/models/credit/versions/1.0/{verb}"),
                    &me_again,
                    &json!({"reason": "looks fine to me"}),
                )
                .await;
            let p = problem(r, 403).await;
            assert!(
                p["detail"].as_str().unwrap().contains("own request"),
                "{variant:?} {verb}: {p}"
            );
        }
    }
    assert_eq!(model_status(&app, &registrant, "credit").await, "PENDING");
    // Deployment stays refused: nothing was approved.
    let r = app
        .post(
            "/v1/models/credit/versions/1.0/deployments",
            &registrant,
            &json!({"sha256": DIGEST}),
        )
        .await;
    problem(r, 409).await;
    // The ledger names the canonical id on every record the variants caused.
    let records = records_from(&app, T, 0).await;
    assert!(
        records.iter().all(|r| r["actor"] == "admin1"),
        "{records:?}"
    );
    // Someone else can approve.
    let other = app.token("bob", T, Role::Approver);
    let r = app
        .post(
            "/v1/models/credit/versions/1.0/approve",
            &other,
            &json!({"reason": "independent review"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(model_status(&app, &registrant, "credit").await, "APPROVED");
}

#[tokio::test]
async fn a_variant_of_an_approver_does_not_count_twice_towards_a_quorum() {
    let app = TestApp::spawn().await;
    let admin = app.token("ada.admin", T, Role::Admin);
    let mut body = model_body("credit", "1.0");
    body["required_approvals"] = json!(2);
    assert_eq!(app.post("/v1/models", &admin, &body).await.status(), 201);
    async fn approve(app: &TestApp, sub: &str) -> reqwest::Response {
        let token = app.token(sub, T, Role::Approver);
        app.post(
            "/v1/models/credit/versions/1.0/approve",
            &token,
            &json!({"reason": "ok"}),
        )
        .await
    }
    assert_eq!(approve(&app, "bob").await.status(), 200);
    for variant in [
        "BOB",
        "Bob",
        "\u{ff42}\u{ff4f}\u{ff42}",
        "\u{ff22}\u{ff2f}\u{ff22}",
    ] {
        let p = problem(approve(&app, variant).await, 409).await;
        assert!(
            p["detail"].as_str().unwrap().contains("already approved"),
            "{variant:?}: {p}"
        );
        assert_eq!(model_status(&app, &admin, "credit").await, "PENDING");
    }
    assert_eq!(approve(&app, "carol").await.status(), 200);
    assert_eq!(model_status(&app, &admin, "credit").await, "APPROVED");
}

#[tokio::test]
async fn a_sub_that_does_not_fold_into_an_actor_id_is_refused() {
    let app = TestApp::spawn().await;
    // ß lower-cases to itself (not ASCII); a zero-width space survives NFKC: both refused, never
    // kept as a second identity.
    for sub in ["stra\u{00df}e", "admin\u{200b}1", "\u{0130}lker"] {
        let token = app.token(sub, T, Role::Viewer);
        problem(app.get("/v1/approvals", &token).await, 401).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Item 7: a person only when the token says so.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_token_without_kind_is_a_service_principal_and_never_approves_or_rejects() {
    let app = TestApp::spawn().await;
    app.register_model(T, "credit", "1.0").await;
    let mut claims = Claims::new("bob", T, Role::Approver, 600);
    claims.kind = None;
    let silent = app.eddsa.sign(&claims).unwrap();
    for verb in ["approve", "reject"] {
        let r = app
            .post(
                &format!("/v1/models/credit/versions/1.0/{verb}"),
                &silent,
                &json!({"reason": "ok"}),
            )
            .await;
        let p = problem(r, 403).await;
        assert!(p["detail"].as_str().unwrap().contains("human"), "{p}");
    }
    let admin = app.token("ada.admin", T, Role::Admin);
    assert_eq!(model_status(&app, &admin, "credit").await, "PENDING");
    // The same person, saying so, may.
    let human = app.token("bob", T, Role::Approver);
    let r = app
        .post(
            "/v1/models/credit/versions/1.0/approve",
            &human,
            &json!({"reason": "ok"}),
        )
        .await;
    assert_eq!(r.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// Item 13: `crit`.
// ---------------------------------------------------------------------------------------------

/// An HS256 token with the given header, signed with the test secret.
fn hs256_with_header(header: &Value, claims: &Claims) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(serde_json::to_string(claims).unwrap());
    let input = format!("{h}.{c}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET);
    let sig = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

#[tokio::test]
async fn a_token_whose_header_carries_crit_is_refused() {
    let app = TestApp::spawn().await;
    let claims = Claims::new("bob", T, Role::Viewer, 600);
    let plain = hs256_with_header(&json!({"alg": "HS256", "typ": "JWT"}), &claims);
    assert_eq!(app.get("/v1/approvals", &plain).await.status(), 200);
    for crit in [json!(["exp"]), json!(["b64"]), json!([]), json!("x")] {
        let token = hs256_with_header(
            &json!({"alg": "HS256", "typ": "JWT", "crit": crit}),
            &claims,
        );
        let p = problem(app.get("/v1/approvals", &token).await, 401).await;
        assert!(p["detail"].as_str().unwrap().contains("crit"), "{p}");
    }
}

// ---------------------------------------------------------------------------------------------
// Item 4: no forged kernel records.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn no_role_can_append_a_record_in_a_kernel_namespace_in_any_spelling() {
    // Hundreds of refusals per principal here: the denial throttle is not under test.
    let app = TestApp::spawn_with(ServerConfig {
        denial_throttle: DenialThrottleConfig {
            per_minute: 0,
            ..DenialThrottleConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let mut actions: Vec<String> = Vec::new();
    for ns in KERNEL_NAMESPACES {
        actions.push(format!("{ns}.approve"));
        actions.push((*ns).to_owned());
        let mut upper = ns.to_uppercase();
        upper.push_str(".approve");
        actions.push(upper);
        let mut capital: String = ns.to_string();
        capital.replace_range(..1, &ns[..1].to_uppercase());
        actions.push(format!("{capital}.approve"));
        // Full-width first letter: folds (NFKC) into the namespace.
        let first = ns.chars().next().unwrap();
        let wide = char::from_u32(first as u32 - 'a' as u32 + 0xff41).unwrap();
        actions.push(format!("{wide}{}.approve", &ns[1..]));
    }
    // The five named in the issue are in the list.
    for named in ["model", "prompt", "approval", "audit", "keys"] {
        assert!(KERNEL_NAMESPACES.contains(&named));
    }
    for role in Role::ALL {
        let token = app.token(&format!("mallory.{}", role.as_str()), T, role);
        for action in &actions {
            let before = ledger_size(&app, T).await;
            let r = app
                .post(
                    "/v1/audit/events",
                    &token,
                    &json!({
                        "action": action,
                        "resource_type": "approval_request",
                        "resource_id": "0193a3c4-0000-7000-8000-000000000000",
                        "reason": "forged"
                    }),
                )
                .await;
            assert_eq!(r.status(), 403, "{role:?} {action:?}");
            // Nothing but (at most) a denial record was written.
            for rec in records_from(&app, T, before).await {
                assert_eq!(rec["outcome"], "denied", "{role:?} {action:?}: {rec}");
                assert_eq!(rec["action"], "audit.append");
                assert!(rec.get("origin").is_none());
            }
        }
    }
    // Exactly-lower-case kernel names are refused as kernel names (403), recorded as denials.
    let analyst = app.token("mallory.analyst", T, Role::Analyst);
    let before = ledger_size(&app, T).await;
    let r = app
        .post(
            "/v1/audit/events",
            &analyst,
            &json!({"action": "approval.approve", "resource_type": "approval_request", "resource_id": "x"}),
        )
        .await;
    let p = problem(r, 403).await;
    assert!(p["detail"].as_str().unwrap().contains("reserved"), "{p}");
    let denied = records_from(&app, T, before).await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["outcome"], "denied");
    // No success record with a kernel action was written by anyone but the kernel.
    assert!(
        records_from(&app, T, 0)
            .await
            .iter()
            .all(|r| r["outcome"] == "denied")
    );
}

#[tokio::test]
async fn an_application_record_is_marked_in_its_leaf_whatever_correlation_id_it_borrows() {
    let app = TestApp::spawn().await;
    // A genuine decision, with its correlation id.
    app.register_model(T, "credit", "1.0").await;
    let approver = app.token("bob", T, Role::Approver);
    let r = app
        .request(
            reqwest::Method::POST,
            "/v1/models/credit/versions/1.0/approve",
            &approver,
        )
        .header("x-correlation-id", "decision-42")
        .json(&json!({"reason": "ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let kernel_size = ledger_size(&app, T).await;
    // An analyst's application record, sent with the decision's correlation id.
    let analyst = app.token("mallory", T, Role::Analyst);
    let r = app
        .request(reqwest::Method::POST, "/v1/audit/events", &analyst)
        .header("x-correlation-id", "decision-42")
        .json(&json!({"action": "loan.decision", "resource_type": "loan", "resource_id": "L-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let receipt: Value = r.json().await.unwrap();
    let seq = receipt["seq"].as_u64().unwrap();
    assert_eq!(seq, kernel_size);
    // In the leaf, in search and in the export: marked.
    let leaf = &app
        .audit
        .entries(&TenantId::parse(T).unwrap(), seq, 1)
        .await
        .unwrap()[0]
        .leaf;
    let text = String::from_utf8(leaf.clone()).unwrap();
    assert!(text.contains(r#""origin":"application""#), "{text}");
    let viewer = app.token("vic", T, Role::Viewer);
    let page: Value = app
        .get("/v1/audit/events?correlation_id=decision-42", &viewer)
        .await
        .json()
        .await
        .unwrap();
    let entries = page["entries"].as_array().unwrap();
    assert!(entries.len() >= 2, "{page}");
    for e in entries {
        let is_app = e["record"]["action"] == "loan.decision";
        assert_eq!(
            e["record"].get("origin").and_then(Value::as_str),
            is_app.then_some("application"),
            "{e}"
        );
    }
    let export = app
        .get("/v1/audit/export", &analyst)
        .await
        .text()
        .await
        .unwrap();
    let line = export
        .lines()
        .find(|l| l.contains(&format!("\"seq\":{seq},")))
        .unwrap();
    let entry: Value = serde_json::from_str(line).unwrap();
    let bytes = STANDARD.decode(entry["leaf"].as_str().unwrap()).unwrap();
    assert_eq!(&bytes, leaf);
    // A correlation id that breaks the rules is not taken at all.
    for bad in ["has space", &"x".repeat(129), "a\"b"] {
        let r = app
            .request(reqwest::Method::POST, "/v1/audit/events", &analyst)
            .header("x-correlation-id", bad)
            .json(
                &json!({"action": "loan.decision", "resource_type": "loan", "resource_id": "L-2"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let seq = r.json::<Value>().await.unwrap()["seq"].as_u64().unwrap();
        let rec = &records_from(&app, T, seq).await[0];
        assert_ne!(rec["correlation_id"], bad);
        assert_eq!(rec["origin"], "application");
    }
}

// ---------------------------------------------------------------------------------------------
// Item 8: the lowest role neither signs checkpoints nor grows the ledger without bound.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_viewers_export_uses_the_latest_signed_checkpoint_and_signs_nothing() {
    // No timer-signed checkpoints during the test: only the calls below sign.
    let app = TestApp::spawn_with(ServerConfig {
        checkpoint_tick: std::time::Duration::from_secs(3600),
        ..ServerConfig::default()
    })
    .await;
    let tenant = TenantId::parse(T).unwrap();
    let viewer = app.token("vic", T, Role::Viewer);
    // No checkpoint yet: nothing to export for a viewer.
    app.register_model(T, "credit", "1.0").await;
    problem(app.get("/v1/audit/export", &viewer).await, 404).await;
    let admin = app.token("ada.admin", T, Role::Admin);
    let r = app.post("/v1/audit/checkpoint", &admin, &json!({})).await;
    assert_eq!(r.status(), 200);
    let signed: Value = r.json().await.unwrap();
    let covered = signed["size"].as_u64().unwrap();
    app.register_model(T, "credit", "2.0").await;
    let size = ledger_size(&app, T).await;
    assert!(size > covered);
    let checkpoints_before = app.audit.checkpoints(&tenant).await.unwrap().len();

    let r = app.get("/v1/audit/export", &viewer).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-airisk-checkpoint"], "latest-stored");
    let text = r.text().await.unwrap();
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["checkpoint_signed_for_export"], false);
    assert_eq!(header["checkpoint"], signed["note"]);
    assert_eq!(lines.count() as u64, covered);
    // The auditor's verifier accepts it: exactly what the stored signature covers.
    let out = python_verifies(&app, T, &text);
    assert!(out.contains(&format!("{covered} entries")), "{out}");
    assert_eq!(
        app.audit.checkpoints(&tenant).await.unwrap().len(),
        checkpoints_before,
        "a viewer's export signed a checkpoint"
    );
    // A role that may sign gets the whole ledger under a fresh signature.
    let analyst = app.token("ann", T, Role::Analyst);
    let r = app.get("/v1/audit/export", &analyst).await;
    assert_eq!(r.headers()["x-airisk-checkpoint"], "signed-for-export");
    let text = r.text().await.unwrap();
    let header: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["checkpoint_signed_for_export"], true);
    assert_eq!(text.lines().count() as u64 - 1, size);
}

#[tokio::test]
async fn a_principal_that_keeps_being_refused_is_throttled_before_it_grows_the_ledger() {
    const BURST: u32 = 5;
    let app = TestApp::spawn_with(ServerConfig {
        denial_throttle: DenialThrottleConfig {
            per_minute: 1,
            burst: BURST,
            ..DenialThrottleConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let viewer = app.token("vic", T, Role::Viewer);
    let start = ledger_size(&app, T).await;
    for i in 0..BURST {
        let r = app
            .post("/v1/models", &viewer, &model_body(&format!("m{i}"), "1.0"))
            .await;
        problem(r, 403).await;
    }
    assert_eq!(ledger_size(&app, T).await, start + u64::from(BURST));
    for i in 0..50 {
        let r = app
            .post("/v1/models", &viewer, &model_body(&format!("n{i}"), "1.0"))
            .await;
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
        let p = problem(r, 429).await;
        assert_eq!(p["type"], "urn:airisk:problem:too-many-refusals");
    }
    // The refusals before the throttle are recorded; the throttled ones wrote nothing.
    let records = records_from(&app, T, start).await;
    assert_eq!(records.len(), BURST as usize);
    assert!(
        records
            .iter()
            .all(|r| r["outcome"] == "denied" && r["actor"] == "vic")
    );
    // Counted in the metrics.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("airisk_denials_throttled_total 50\n"),
        "{metrics}"
    );
    // Another principal, even of the same tenant and role, is not affected; nor is a case variant
    // of the throttled one a way out.
    let other = app.token("val", T, Role::Viewer);
    problem(
        app.post("/v1/models", &other, &model_body("o", "1.0"))
            .await,
        403,
    )
    .await;
    let variant = app.token("VIC", T, Role::Viewer);
    problem(
        app.post("/v1/models", &variant, &model_body("o", "1.0"))
            .await,
        429,
    )
    .await;
    // Successful requests of others go on as before.
    let admin = app.token("ada.admin", T, Role::Admin);
    assert_eq!(
        app.post("/v1/models", &admin, &model_body("ok", "1.0"))
            .await
            .status(),
        201
    );
}

// ---------------------------------------------------------------------------------------------
// Item 9: every refusal is recorded, whatever the input held.
// ---------------------------------------------------------------------------------------------

/// One hostile id, as sent in a path (percent-encoded) and as it reaches the service.
struct Hostile {
    what: &'static str,
    in_path: String,
    decoded: String,
    /// What the recorded `resource_id` must contain.
    recorded: String,
}

fn hostile_ids() -> Vec<Hostile> {
    let long = "c".repeat(300);
    vec![
        Hostile {
            what: "control character",
            in_path: "credit%01".into(),
            decoded: "credit\u{1}".into(),
            recorded: "credit\\u0001".into(),
        },
        Hostile {
            what: "escape and bell",
            in_path: "cr%5Cedit%07".into(),
            decoded: "cr\\edit\u{7}".into(),
            recorded: "cr\\\\edit\\u0007".into(),
        },
        Hostile {
            what: "invalid UTF-8",
            in_path: "credit%FF%FE".into(),
            decoded: "credit%FF%FE".into(),
            recorded: "credit%FF%FE".into(),
        },
        Hostile {
            what: "truncated UTF-8 sequence",
            in_path: "cr%C3edit".into(),
            decoded: "cr%C3edit".into(),
            recorded: "cr%C3edit".into(),
        },
        Hostile {
            what: "over-long id",
            in_path: long.clone(),
            decoded: long.clone(),
            recorded: TRUNCATION_MARKER.into(),
        },
    ]
}

/// A route that refuses a viewer, with the hostile id placed in its path or body; returns the
/// method, path, body and the resource id the service sees.
fn routes(h: &Hostile) -> Vec<(reqwest::Method, String, Value, String)> {
    use reqwest::Method;
    let p = &h.in_path;
    let d = &h.decoded;
    let mut v = vec![
        (
            Method::POST,
            format!("/v1/models/{p}/versions/1.0/approve"),
            json!({"reason": "x"}),
            format!("{d}@1.0"),
        ),
        (
            Method::POST,
            format!("/v1/models/{p}/versions/1.0/reject"),
            json!({"reason": "x"}),
            format!("{d}@1.0"),
        ),
        (
            Method::POST,
            format!("/v1/models/{p}/versions/1.0/deployments"),
            json!({"sha256": DIGEST}),
            format!("{d}@1.0"),
        ),
        (
            Method::POST,
            format!("/v1/models/credit/versions/{p}/approve"),
            json!({"reason": "x"}),
            format!("credit@{d}"),
        ),
        (
            Method::POST,
            format!("/v1/prompts/{p}/versions"),
            json!({"template": "t", "change_reason": "x"}),
            d.clone(),
        ),
        (
            Method::PUT,
            format!("/v1/prompts/{p}/labels/production"),
            json!({"version": 1}),
            format!("{d}@1#production"),
        ),
        (
            Method::PUT,
            format!("/v1/prompts/p/labels/{p}"),
            json!({"version": 1}),
            format!("p@1#{d}"),
        ),
    ];
    // A request id that is not a UUID names no request: refused and recorded under the nil id.
    let nil = "00000000-0000-0000-0000-000000000000".to_owned();
    for verb in ["approve", "reject", "cancel"] {
        v.push((
            Method::POST,
            format!("/v1/approvals/{p}/{verb}"),
            json!({"reason": "x"}),
            nil.clone(),
        ));
    }
    // Bodies carry text, not bytes: only ids that are valid UTF-8 can be sent there.
    if !h.what.contains("UTF-8") {
        v.extend([
            (
                Method::POST,
                "/v1/models".to_owned(),
                model_body(d, "1.0"),
                format!("{d}@1.0"),
            ),
            (
                Method::POST,
                "/v1/prompts".to_owned(),
                json!({"name": d, "template": "t", "change_reason": "x"}),
                d.clone(),
            ),
            (
                Method::POST,
                "/v1/approvals".to_owned(),
                json!({"subject": {"kind": "prompt_label", "name": d, "version": 1, "label": "production"}, "justification": "x"}),
                format!("{d}@1#production"),
            ),
            (
                Method::POST,
                "/v1/audit/events".to_owned(),
                json!({"action": "loan.decision", "resource_type": "loan", "resource_id": d}),
                d.clone(),
            ),
        ]);
    }
    v
}

fn nil_id() -> String {
    uuid::Uuid::nil().to_string()
}

#[tokio::test]
async fn every_refusal_is_recorded_even_for_ids_a_record_cannot_hold_as_they_are() {
    let app = TestApp::spawn().await;
    for (n, h) in hostile_ids().iter().enumerate() {
        // One viewer per kind of id, so the throttle's default burst is never reached.
        let viewer = app.token(&format!("vic{n}"), T, Role::Viewer);
        for (method, path, body, seen) in routes(h) {
            let before = ledger_size(&app, T).await;
            let r = app
                .request(method.clone(), &path, &viewer)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                403,
                "{}: {method} {path}: {}",
                h.what,
                r.text().await.unwrap()
            );
            let new = records_from(&app, T, before).await;
            assert_eq!(new.len(), 1, "{}: {method} {path}: {new:?}", h.what);
            let rec = &new[0];
            assert_eq!(rec["outcome"], "denied");
            assert_eq!(rec["actor"], format!("vic{n}"));
            let rid = rec["resource_id"].as_str().unwrap();
            if seen == nil_id() {
                assert_eq!(rid, seen);
                continue;
            }
            assert!(
                rid.contains(&h.recorded),
                "{}: {method} {path}: recorded {rid:?}",
                h.what
            );
            assert!(rid.len() <= 256);
            let escaped = &rec["metadata"]["escaped"]["resource_id"];
            if rid != seen {
                assert_eq!(escaped["sha256"], sha256_hex(seen.as_bytes()), "{rec}");
                assert_eq!(escaped["bytes"], seen.len());
            } else {
                assert!(escaped.is_null(), "{rec}");
            }
        }
    }
}

#[tokio::test]
async fn refusals_by_an_approver_of_hostile_ids_that_name_nothing_are_recorded_too() {
    let app = TestApp::spawn().await;
    let approver = app.token("bob", T, Role::Approver);
    for h in hostile_ids() {
        for verb in ["approve", "reject"] {
            let before = ledger_size(&app, T).await;
            let r = app
                .post(
                    &format!("/v1/models/{}/versions/1.0/{verb}", h.in_path),
                    &approver,
                    &json!({"reason": "x"}),
                )
                .await;
            assert_eq!(
                r.status(),
                404,
                "{} {verb}: {}",
                h.what,
                r.text().await.unwrap()
            );
            let new = records_from(&app, T, before).await;
            assert_eq!(new.len(), 1, "{} {verb}", h.what);
            assert_eq!(new[0]["outcome"], "denied");
            assert!(
                new[0]["resource_id"]
                    .as_str()
                    .unwrap()
                    .contains(&h.recorded),
                "{} {verb}: {}",
                h.what,
                new[0]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The same on every store: the marker and the escaped refusals are in the stored leaf, and the
// ledger still verifies.
// ---------------------------------------------------------------------------------------------

async fn marked_and_escaped_records_verify(backend: crate::support::Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let analyst = app.token("ann", T, Role::Analyst);
    let r = app
        .post(
            "/v1/audit/events",
            &analyst,
            &json!({"action": "loan.decision", "resource_type": "loan", "resource_id": "L-1"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let viewer = app.token("vic", T, Role::Viewer);
    for path in [
        "/v1/models/credit%01/versions/1.0/approve",
        "/v1/models/credit%FF/versions/1.0/approve",
    ] {
        problem(app.post(path, &viewer, &json!({"reason": "x"})).await, 403).await;
    }
    let forged = app
        .post(
            "/v1/audit/events",
            &analyst,
            &json!({"action": "approval.approve", "resource_type": "approval_request", "resource_id": "x"}),
        )
        .await;
    problem(forged, 403).await;
    let records = records_from(&app, T, 0).await;
    let summary: Vec<(String, String, Option<String>)> = records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["resource_id"].as_str().unwrap().to_owned(),
                r.get("origin").and_then(Value::as_str).map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "loan.decision".into(),
                "L-1".into(),
                Some("application".into())
            ),
            ("model.approve".into(), "credit\\u0001@1.0".into(), None),
            ("model.approve".into(), "credit%FF@1.0".into(), None),
            ("audit.append".into(), "x".into(), None),
        ],
        "{backend:?}"
    );
    let v: Value = app
        .get("/v1/audit/verify", &viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["intact"], true, "{v}");
    // And the auditor's independent verifier accepts the export holding them.
    let export = app
        .get("/v1/audit/export", &analyst)
        .await
        .text()
        .await
        .unwrap();
    let out = python_verifies(&app, T, &export);
    assert!(out.contains("4 entries"), "{out}");
    app.shutdown().await;
}

on_backends!(marked_and_escaped_records_verify: [sqlite, postgres]);

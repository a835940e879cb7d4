//! A rollback is visible through the API: `POST /v1/audit/verify` with a checkpoint kept from
//! earlier proves the ledger still holds what that checkpoint signed, and reports a ledger cut
//! back (an older backup restored) or rewritten to another history, which `GET` alone cannot see.

use airisk_core::ledger::{Checkpoint, LedgerName, LedgerSigner};
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::TenantId;
use serde_json::{Value, json};

use crate::support::{TestApp, problem};

async fn append(app: &TestApp, tenant: &str, n: usize) {
    let analyst = app.token("ana.analyst", tenant, Role::Analyst);
    for i in 0..n {
        let r = app
            .post(
                "/v1/audit/events",
                &analyst,
                &json!({"action": "report.generate", "resource_type": "report",
                        "resource_id": format!("r-{i}")}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
}

/// Signs a checkpoint now and returns its note, as an auditor keeps it.
async fn keep_checkpoint(app: &TestApp, tenant: &str) -> String {
    let analyst = app.token("ana.analyst", tenant, Role::Analyst);
    let r = app
        .request(reqwest::Method::POST, "/v1/audit/checkpoint", &analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["note"].as_str().unwrap().to_owned()
}

async fn verify_against(app: &TestApp, token: &str, note: &str) -> Value {
    let r = app
        .post("/v1/audit/verify", token, &json!({ "checkpoint": note }))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_kept_checkpoint_proves_consistency_and_exposes_a_restored_older_backup() {
    let app = TestApp::spawn().await;
    let viewer = app.token("vic.viewer", "acme", Role::Viewer);
    append(&app, "acme", 9).await;
    let kept = keep_checkpoint(&app, "acme").await;

    // Consistent: the same ledger, and the same ledger grown since.
    let v = verify_against(&app, &viewer, &kept).await;
    assert_eq!(v["intact"], true, "{v}");
    assert_eq!(v["kept_checkpoint_verified"], true, "{v}");
    assert_eq!(v["kept_checkpoint_size"], 9, "{v}");
    append(&app, "acme", 3).await;
    let v = verify_against(&app, &viewer, &kept).await;
    assert_eq!(
        (&v["intact"], &v["kept_checkpoint_verified"], &v["entries"]),
        (&json!(true), &json!(true), &json!(12)),
        "{v}"
    );

    // An older backup is restored: the store alone is self-consistent (GET says intact)…
    app.memory
        .as_ref()
        .unwrap()
        .dangerous_truncate(&TenantId::parse("acme").unwrap(), 6);
    let r = app.get("/v1/audit/verify", &viewer).await;
    let plain: Value = r.json().await.unwrap();
    assert_eq!(
        (&plain["intact"], &plain["entries"]),
        (&json!(true), &json!(6))
    );
    // …but not against the kept checkpoint.
    let v = verify_against(&app, &viewer, &kept).await;
    assert_eq!(v["intact"], false, "{v}");
    assert_eq!(v["kept_checkpoint_verified"], false, "{v}");
    assert_eq!(v["first_bad_seq"], 6, "{v}");
    let problem_text = v["problem"].as_str().unwrap();
    assert!(
        problem_text.contains("truncated or rolled back")
            && problem_text.contains("commits to 9 entries, the ledger holds 6"),
        "{v}"
    );

    // Grown back past the kept size with a different history: the root differs.
    append(&app, "acme", 6).await;
    let v = verify_against(&app, &viewer, &kept).await;
    assert_eq!(v["intact"], false, "{v}");
    assert!(
        v["problem"]
            .as_str()
            .unwrap()
            .contains("differs from the kept checkpoint"),
        "{v}"
    );
}

#[tokio::test]
async fn a_checkpoint_that_is_not_this_tenants_signed_note_is_a_422_not_a_verdict() {
    let app = TestApp::spawn().await;
    let viewer = app.token("vic.viewer", "acme", Role::Viewer);
    append(&app, "acme", 3).await;
    append(&app, "globex", 3).await;
    let globex_note = keep_checkpoint(&app, "globex").await;
    let acme_note = keep_checkpoint(&app, "acme").await;
    // The same ledger name, another key (an impostor's signature).
    let impostor =
        LedgerSigner::generate(LedgerName::parse("airisk.test/ledger").unwrap()).unwrap();
    let forged = Checkpoint::new(
        LedgerName::parse("airisk.test/ledger")
            .unwrap()
            .origin_for(&TenantId::parse("acme").unwrap()),
        3,
        airisk_core::ledger::Hash::EMPTY_ROOT,
    )
    .sign(&impostor)
    .unwrap()
    .into_note_text();
    let altered = acme_note.replacen("\n3\n", "\n2\n", 1);
    assert_ne!(altered, acme_note);
    for (body, why) in [
        (
            json!({"checkpoint": globex_note}),
            "another tenant's ledger",
        ),
        (json!({"checkpoint": forged}), "another key"),
        (json!({"checkpoint": altered}), "an altered note"),
        (json!({"checkpoint": "not a note"}), "garbage"),
        (json!({"checkpoint": ""}), "empty"),
        (json!({"checkpoint": "x".repeat(9000)}), "too long"),
        (json!({}), "missing"),
        (
            json!({"checkpoint": acme_note, "extra": 1}),
            "an unknown field",
        ),
    ] {
        let r = app.post("/v1/audit/verify", &viewer, &body).await;
        let p = problem(r, 422).await;
        assert!(p["detail"].is_string(), "{why}: {p}");
    }
    // And it needs a token like every route.
    let r = app
        .client
        .post(app.url("/v1/audit/verify"))
        .json(&json!({"checkpoint": acme_note}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn the_openapi_document_describes_the_kept_checkpoint_check() {
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
    let post = &doc["paths"]["/v1/audit/verify"]["post"];
    for status in ["200", "400", "401", "403", "413", "415", "422", "503"] {
        assert!(post["responses"][status].is_object(), "no {status}: {post}");
    }
    assert!(post["requestBody"].is_object(), "{post}");
    assert!(doc["paths"]["/v1/audit/verify"]["get"].is_object());
}

//! Key custody over HTTP, on every store: rotating the tenant's data key and erasing one data
//! subject (`POST /v1/tenant/rotate-data-key`, `POST /v1/tenant/shred` with `subject`), checked
//! through the API and, for the values themselves, by opening them with the key-encryption key
//! through a separate envelope (the API returns records as stored, with ciphertext).

use std::sync::Arc;

use airisk_core::governance::audit_record::AuditRecord;
use airisk_core::security::encryption::Encryptor;
use airisk_core::security::envelope::{Envelope, KeyringKeyProvider};
use airisk_core::security::key_custody::{OpenedValue, open_sealed_metadata};
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::TenantId;
use airisk_testkit::sealing_conformance::TEST_KEK_1;
use serde_json::{Value, json};

use crate::support::{Backend, TestApp};

const TENANT: &str = "custody";

/// Appends one record with a sensitive value (about `subject`, if given); returns its seq.
async fn append(app: &TestApp, token: &str, resource: &str, subject: Option<&str>) -> u64 {
    let mut body = json!({
        "action": "loan.decision",
        "resource_type": "application",
        "resource_id": resource,
        "sensitive_metadata": {"customer": format!("value of {resource}")}
    });
    if let Some(s) = subject {
        body["data_subject"] = s.into();
    }
    let r = app.post("/v1/audit/events", token, &body).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["seq"].as_u64().unwrap()
}

/// The record at `seq`, decoded from its stored leaf.
async fn record(app: &TestApp, seq: u64) -> AuditRecord {
    let tenant = TenantId::parse(TENANT).unwrap();
    let e = app.audit.entries(&tenant, seq, 1).await.unwrap();
    AuditRecord::from_leaf_bytes(&e[0].leaf).unwrap()
}

/// The kid the record's sealed value names.
fn kid(r: &AuditRecord) -> String {
    r.event().sealed_metadata().unwrap()["customer"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned()
}

/// The tenant's ledger size.
async fn size(app: &TestApp) -> u64 {
    app.audit
        .tree_head(&TenantId::parse(TENANT).unwrap())
        .await
        .unwrap()
        .size
}

async fn opened(app: &TestApp, env: &Envelope, seq: u64) -> OpenedValue {
    let r = record(app, seq).await;
    open_sealed_metadata(app.governance.as_ref(), env, r.event())
        .await
        .unwrap()
        .remove(0)
        .1
}

on_backends!(rotation_and_a_subjects_shred_over_http: [memory, sqlite, postgres]);

async fn rotation_and_a_subjects_shred_over_http(backend: Backend) {
    let app = TestApp::spawn_sealed(backend).await;
    let admin = app.token("ada.admin", TENANT, Role::Admin);
    let analyst = app.token("carl.analyst", TENANT, Role::Analyst);
    let kek = Arc::new(Encryptor::from_env_value(TEST_KEK_1).unwrap());
    let env = Envelope::new(Arc::new(KeyringKeyProvider::new(kek)), 8);

    let t1 = append(&app, &analyst, "T-1", None).await;
    let a1 = append(&app, &analyst, "A-1", Some("C-100")).await;
    let b1 = append(&app, &analyst, "B-1", Some("C-200")).await;

    // Rotation: admin only, recorded; the next value names the new key, the old one still opens.
    let r = app
        .request(
            reqwest::Method::POST,
            "/v1/tenant/rotate-data-key",
            &analyst,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = app
        .request(reqwest::Method::POST, "/v1/tenant/rotate-data-key", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    let old_kid = kid(&record(&app, t1).await);
    assert_eq!(rotated["previous_kid"], old_kid.as_str());
    assert_ne!(rotated["kid"], old_kid.as_str());
    let t2 = append(&app, &analyst, "T-2", None).await;
    assert_eq!(
        kid(&record(&app, t2).await),
        rotated["kid"].as_str().unwrap()
    );
    let rec = record(&app, rotated["receipt"]["seq"].as_u64().unwrap()).await;
    assert_eq!(rec.event().action(), "keys.rotate_data_key");
    assert_eq!(rec.event().metadata().unwrap()["kid"], rotated["kid"]);

    // A subject with nothing to seal applies to nothing: the record carries no trace of it and
    // no key is made for it.
    let keys_before = app
        .governance
        .data_keys(&TenantId::parse(TENANT).unwrap())
        .await
        .unwrap();
    let r = app
        .post(
            "/v1/audit/events",
            &analyst,
            &json!({"action": "loan.decision", "resource_type": "application",
                    "resource_id": "X", "data_subject": "C-300"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let seq = r.json::<Value>().await.unwrap()["seq"].as_u64().unwrap();
    let rec = record(&app, seq).await;
    assert!(rec.event().sealed_metadata().is_none());
    assert!(!String::from_utf8_lossy(rec.leaf_bytes()).contains("C-300"));
    assert_eq!(
        app.governance
            .data_keys(&TenantId::parse(TENANT).unwrap())
            .await
            .unwrap(),
        keys_before
    );

    // Bad input changes nothing: an invalid subject, to shred or to seal under.
    let before = size(&app).await;
    for body in [
        json!({"reason": "r", "subject": "C 100"}),
        json!({"reason": "r", "subject": ""}),
        json!({"reason": "r", "subject": "x".repeat(129)}),
    ] {
        let r = app.post("/v1/tenant/shred", &admin, &body).await;
        assert_eq!(r.status(), 422, "{body}");
    }
    for subject in ["C 100", "", "Ç-100"] {
        let r = app
            .post(
                "/v1/audit/events",
                &analyst,
                &json!({"action": "loan.decision", "resource_type": "application",
                        "resource_id": "X", "data_subject": subject,
                        "sensitive_metadata": {"customer": "x"}}),
            )
            .await;
        assert_eq!(r.status(), 422, "{subject:?}");
    }
    assert_eq!(size(&app).await, before, "refused input records nothing");

    // An analyst may not erase a subject; the refusal is recorded.
    let r = app
        .post(
            "/v1/tenant/shred",
            &analyst,
            &json!({"reason": "r", "subject": "C-100"}),
        )
        .await;
    assert_eq!(r.status(), 403);
    let last = record(&app, before).await;
    assert_eq!(
        (last.event().action(), last.event().outcome().as_str()),
        ("tenant.shred_subject", "denied")
    );
    assert_eq!(
        opened(&app, &env, a1).await,
        OpenedValue::Value("value of A-1".into())
    );

    // The admin erases C-100: only its values; a replay and an unknown subject destroy nothing.
    let r = app
        .post(
            "/v1/tenant/shred",
            &admin,
            &json!({"reason": "erasure request 50", "subject": "C-100"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let shred: Value = r.json().await.unwrap();
    assert_eq!(shred["keys_destroyed"], 1);
    let pseudonym = shred["subject_pseudonym"].as_str().unwrap().to_owned();
    assert_eq!(pseudonym.len(), 64);
    let rec = record(&app, shred["receipt"]["seq"].as_u64().unwrap()).await;
    assert_eq!(rec.event().action(), "tenant.shred_subject");
    assert_eq!(
        rec.event().metadata().unwrap()["subject_pseudonym"],
        pseudonym.as_str()
    );
    assert!(!String::from_utf8_lossy(rec.leaf_bytes()).contains("C-100"));
    for subject in ["C-100", "C-999", "c-200"] {
        let r = app
            .post(
                "/v1/tenant/shred",
                &admin,
                &json!({"reason": "again", "subject": subject}),
            )
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.json::<Value>().await.unwrap()["keys_destroyed"],
            0,
            "{subject}"
        );
    }
    assert_eq!(opened(&app, &env, a1).await, OpenedValue::Erased);
    assert_eq!(
        opened(&app, &env, b1).await,
        OpenedValue::Value("value of B-1".into()),
        "another subject (and a different case of its id is another subject again)"
    );
    assert_eq!(
        opened(&app, &env, t1).await,
        OpenedValue::Value("value of T-1".into())
    );
    assert_eq!(
        opened(&app, &env, t2).await,
        OpenedValue::Value("value of T-2".into())
    );

    // The ledger is intact.
    let r = app.get("/v1/audit/verify", &admin).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["intact"], true, "{v}");
    app.shutdown().await;
}

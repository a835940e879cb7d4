//! Sealing at rest on PostgreSQL: canary plaintexts written through the Rust API (a sealed prompt
//! template, sensitive audit metadata and sensitive model metadata) appear in no column of any table, read raw as the
//! superuser; and the data-key table is behind row-level security like every tenant table.

use std::sync::Arc;

use airisk_core::governance::audit_logger::{AuditLogger, CheckpointPolicy};
use airisk_core::governance::audit_record::{AuditEventInput, SensitiveMetadata};
use airisk_core::governance::model_registry::{ModelRegistry, RegisterModel};
use airisk_core::governance::prompt_registry::{PromptRegistry, PromptSelector};
use airisk_core::ledger::{LedgerName, LedgerSigner};
use airisk_core::ports::{AuditRepository, GovernanceStore, UuidV7Generator};
use airisk_core::request::CorrelationId;
use airisk_core::security::encryption::Encryptor;
use airisk_core::security::envelope::{Envelope, KeyringKeyProvider};
use airisk_core::security::rbac::Role;
use airisk_testkit::fixtures::{ManualClock, human};
use airisk_testkit::sealing_conformance::{CANARY, TEST_KEK_1};
use sqlx::{Connection, Row};

use crate::support::TestDb;

/// Occurrences of `needle` in every column of every table of the database's schema, read raw
/// (bytea compared as bytes, everything else as its text form), as the superuser.
async fn occurrences(db: &TestDb, needle: &str) -> Vec<(String, String, i64)> {
    let mut admin = db.admin_connection().await;
    let columns = sqlx::query(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text \
         FROM information_schema.columns c JOIN information_schema.tables t \
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
         ORDER BY 1, 2",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(columns.len() > 20, "the schema's columns were found");
    let mut hits = Vec::new();
    for row in columns {
        let (table, column, ty): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let sql = if ty == "bytea" {
            format!("SELECT count(*) FROM {table} WHERE position($1::bytea IN \"{column}\") > 0")
        } else {
            format!("SELECT count(*) FROM {table} WHERE strpos(\"{column}\"::text, $1::text) > 0")
        };
        let q = sqlx::query(&sql);
        let q = if ty == "bytea" {
            q.bind(needle.as_bytes().to_vec())
        } else {
            q.bind(needle.to_owned())
        };
        let n: i64 = q.fetch_one(&mut admin).await.unwrap().get(0);
        if n > 0 {
            hits.push((table, column, n));
        }
    }
    let _ = admin.close().await;
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn canary_plaintexts_are_in_no_table_and_data_keys_are_tenant_isolated() {
    let db = TestDb::new().await;
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(db.store(clock.clone()).await);
    let gov = store.clone() as Arc<dyn GovernanceStore>;
    let audit = store.clone() as Arc<dyn AuditRepository>;
    let kek = Arc::new(Encryptor::from_env_value(TEST_KEK_1).unwrap());
    let env = Arc::new(Envelope::new(Arc::new(KeyringKeyProvider::new(kek)), 8));
    let prompts = PromptRegistry::new(gov.clone(), clock.clone(), Arc::new(UuidV7Generator))
        .with_envelope(env.clone());
    let admin = human("alice", "acme", Role::Admin);
    prompts
        .register_prompt(
            &admin,
            &CorrelationId::generate(),
            "loan/system",
            CANARY,
            "v1",
        )
        .await
        .unwrap();
    let models = ModelRegistry::new(gov.clone(), clock.clone(), Arc::new(UuidV7Generator))
        .with_envelope(env.clone());
    let mut model_secret = SensitiveMetadata::new();
    model_secret.insert("data_owner", serde_json::Value::from(CANARY));
    models
        .register_model_sensitive(
            &admin,
            &CorrelationId::generate(),
            RegisterModel {
                name: "credit-scoring".into(),
                version: "1.0".into(),
                checksum: "ab".repeat(32),
                artifact_uri: "s3://models/credit-scoring".into(),
                metadata: Some(serde_json::json!({"team": "risk-team-5d2"})),
                justification: "quarterly refresh".into(),
                ..RegisterModel::default()
            },
            &model_secret,
        )
        .await
        .unwrap();
    let signer =
        Arc::new(LedgerSigner::generate(LedgerName::parse("airisk.test/ledger").unwrap()).unwrap());
    let logger = AuditLogger::new(
        audit,
        Arc::new(UuidV7Generator),
        clock.clone(),
        signer.name().clone(),
        Some(signer),
        CheckpointPolicy::default(),
    )
    .with_sealing(gov.clone(), env);
    let mut sensitive = SensitiveMetadata::new();
    sensitive.insert("customer", serde_json::Value::from(CANARY));
    logger
        .log_action_sensitive(
            &human("carol", "acme", Role::Analyst),
            AuditEventInput {
                actor: "carol".into(),
                tenant_id: "acme".into(),
                action: "loan.decision".into(),
                resource_type: "application".into(),
                resource_id: "A-1".into(),
                reason: None,
                correlation_id: CorrelationId::generate().to_string(),
                metadata: Some(serde_json::json!({"decision": "declined-7c1"})),
            },
            &sensitive,
        )
        .await
        .unwrap();
    // Both read back through the services.
    let got = prompts
        .get_prompt(&admin, "loan/system", &PromptSelector::Latest)
        .await
        .unwrap();
    assert_eq!(got.template(), CANARY);
    let model = models
        .get_model(&admin, "credit-scoring", "1.0")
        .await
        .unwrap();
    assert_eq!(model.sensitive_metadata(), &model_secret);

    // The search works on both kinds of column: unsealed values are found...
    let control = occurrences(&db, "declined-7c1").await;
    assert!(
        control
            .iter()
            .any(|(t, c, _)| t == "audit_entries" && c == "leaf"),
        "{control:?}"
    );
    let control = occurrences(&db, "loan/system").await;
    assert!(
        control.iter().any(|(t, _, _)| t == "prompt_versions"),
        "{control:?}"
    );
    let control = occurrences(&db, "risk-team-5d2").await;
    assert!(
        control
            .iter()
            .any(|(t, c, _)| t == "model_versions" && c == "body"),
        "{control:?}"
    );
    // ...and the canary nowhere.
    assert_eq!(occurrences(&db, "CANARY").await, vec![]);

    // data_keys is under row-level security for the application role.
    let mut app = db.app_connection().await;
    let n: i64 = sqlx::query("SELECT count(*) FROM data_keys")
        .fetch_one(&mut app)
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "no tenant set: no rows");
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('airisk.tenant_id', 'globex', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let n: i64 = sqlx::query("SELECT count(*) FROM data_keys")
        .fetch_one(&mut *tx)
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "globex sees none of acme's keys");
    let refused = sqlx::query(
        "INSERT INTO data_keys (tenant_id, kid, wrapped, created_at) VALUES ('acme', 'dx', 'v1.x.y', 'now')",
    )
    .execute(&mut *tx)
    .await;
    assert!(refused.is_err(), "globex cannot write an acme key");
    drop(tx);
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('airisk.tenant_id', 'acme', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let n: i64 = sqlx::query("SELECT count(*) FROM data_keys")
        .fetch_one(&mut *tx)
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "acme sees its own key");
    let refused = sqlx::query("DELETE FROM data_keys").execute(&mut *tx).await;
    assert!(
        refused.is_err(),
        "no DELETE grant: keys are shredded, never deleted"
    );
}

/// A data subject's id never reaches any table, before or after its shred; its pseudonym is in
/// `data_keys` while its key lives, and after the shred only in the ledger's shred record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn a_subjects_id_is_in_no_table_and_its_pseudonym_leaves_data_keys_when_shredded() {
    use airisk_core::security::data_subject::DataSubject;
    use airisk_core::security::key_custody::shred_subject;
    use airisk_core::security::tenant_context::{ActorId, TenantId};
    const SUBJECT: &str = "SUBJECT-CANARY-pg-31d9";
    let db = TestDb::new().await;
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(db.store(clock.clone()).await);
    let gov = store.clone() as Arc<dyn GovernanceStore>;
    let audit = store.clone() as Arc<dyn AuditRepository>;
    let kek = Arc::new(Encryptor::from_env_value(TEST_KEK_1).unwrap());
    let env = Arc::new(Envelope::new(Arc::new(KeyringKeyProvider::new(kek)), 8));
    let logger = AuditLogger::new(
        audit,
        Arc::new(UuidV7Generator),
        clock.clone(),
        LedgerName::parse("airisk.test/ledger").unwrap(),
        None,
        CheckpointPolicy::default(),
    )
    .with_sealing(gov.clone(), env.clone());
    let mut sensitive = SensitiveMetadata::new();
    sensitive.insert("customer", serde_json::Value::from(CANARY));
    let sensitive = sensitive.with_subject(DataSubject::parse(SUBJECT).unwrap());
    logger
        .log_action_sensitive(
            &human("carol", "acme", Role::Analyst),
            AuditEventInput {
                actor: "carol".into(),
                tenant_id: "acme".into(),
                action: "loan.decision".into(),
                resource_type: "application".into(),
                resource_id: "A-1".into(),
                reason: None,
                correlation_id: CorrelationId::generate().to_string(),
                metadata: None,
            },
            &sensitive,
        )
        .await
        .unwrap();
    assert_eq!(occurrences(&db, "SUBJECT-CANARY").await, vec![]);
    assert_eq!(occurrences(&db, "CANARY").await, vec![]);
    let tenant = TenantId::parse("acme").unwrap();
    let pseudonym = gov
        .data_keys(&tenant)
        .await
        .unwrap()
        .into_iter()
        .find_map(|k| k.subject)
        .unwrap();
    let hits = occurrences(&db, pseudonym.as_str()).await;
    assert_eq!(
        hits,
        vec![("data_keys".to_owned(), "subject".to_owned(), 1)],
        "the search finds the pseudonym where it is"
    );

    let outcome = shred_subject(
        gov.as_ref(),
        &UuidV7Generator,
        &env,
        &tenant,
        &DataSubject::parse(SUBJECT).unwrap(),
        &ActorId::parse("operator:dpo").unwrap(),
        "erasure request 46",
        &CorrelationId::generate(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.keys_destroyed, 1);
    assert_eq!(occurrences(&db, "SUBJECT-CANARY").await, vec![]);
    let hits = occurrences(&db, pseudonym.as_str()).await;
    assert_eq!(
        hits,
        vec![("audit_entries".to_owned(), "leaf".to_owned(), 1)],
        "after the shred only the shred record names the pseudonym"
    );
    // The database refuses to give the tombstone a subject again, even to its owner.
    let mut admin = db.admin_connection().await;
    let refused = sqlx::query("UPDATE data_keys SET subject = $1 WHERE tenant_id = 'acme'")
        .bind(pseudonym.as_str())
        .execute(&mut admin)
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

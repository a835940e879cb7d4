//! History the database refuses to change: no grant for the application role, and triggers that
//! refuse every role, superusers included, outside the owner's maintenance window.

use std::sync::Arc;

use airisk_core::ports::{AuditRepository, GovernanceStore, StoredCheckpoint};
use airisk_core::security::rbac::Role;
use airisk_testkit::fixtures::{ManualClock, human, tenant};
use airisk_testkit::governance_conformance::Services;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Row};

use crate::support::{TestDb, refusal, sqlstate};

/// History tables: insert-only for the application, guarded by triggers for everyone.
const HISTORY: &[&str] = &[
    "audit_entries",
    "audit_nodes",
    "audit_checkpoints",
    "audit_tenants",
    "prompt_versions",
    "label_moves",
];

/// A ledger with rows in every history table, for tenant acme.
async fn history(db: &TestDb) {
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(db.store(clock.clone()).await);
    let s = Services::new(
        store.clone() as Arc<dyn GovernanceStore>,
        store.clone() as Arc<dyn AuditRepository>,
        clock.clone(),
    );
    let admin = human("ada@acme.example", "acme", Role::Admin);
    let approver = human("bob@acme.example", "acme", Role::Approver);
    let corr = airisk_core::request::CorrelationId::generate;
    s.prompts
        .register_prompt(&admin, &corr(), "p", "a", "first")
        .await
        .unwrap();
    let request = s
        .workflow
        .request_approval(
            &admin,
            &corr(),
            airisk_core::governance::approval_workflow::NewApprovalRequest {
                subject:
                    airisk_core::governance::approval_workflow::RequestedSubject::PromptLabel {
                        name: "p".into(),
                        version: 1,
                        label: "production".into(),
                    },
                justification: "ship it".into(),
                required_approvals: 1,
                expires_in: None,
            },
        )
        .await
        .unwrap()
        .request;
    s.workflow
        .approve(&approver, &corr(), request.id(), "ok")
        .await
        .unwrap();
    s.prompts
        .move_label(&admin, &corr(), "p", "production", 1)
        .await
        .unwrap();
    let head = store.tree_head(&tenant("acme")).await.unwrap();
    assert!(head.size >= 4, "enough entries for level-1 nodes");
    store
        .add_checkpoint(
            &tenant("acme"),
            StoredCheckpoint {
                size: head.size,
                root: head.root,
                note: "note".into(),
                signed_at: chrono::Utc::now(),
            },
        )
        .await
        .unwrap();
    store.close().await;
}

async fn as_tenant(conn: &mut PgConnection) -> sqlx::Transaction<'_, sqlx::Postgres> {
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('airisk.tenant_id', 'acme', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// `UPDATE` of the first column that is the same for every history table.
fn update_sql(table: &str) -> String {
    format!("UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = 'acme'")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn the_app_role_may_not_update_delete_or_truncate_history() {
    let db = TestDb::new().await;
    history(&db).await;
    let mut app = db.app_connection().await;
    for table in HISTORY {
        for sql in [
            update_sql(table),
            format!("DELETE FROM {table} WHERE tenant_id = 'acme'"),
            format!("TRUNCATE {table}"),
        ] {
            let mut tx = as_tenant(&mut app).await;
            // insufficient_privilege: there is no grant to begin with.
            assert_eq!(
                sqlstate(sqlx::query(&sql).execute(&mut *tx).await),
                "42501",
                "{sql}"
            );
            tx.rollback().await.unwrap();
        }
    }
    // The head row is updatable (that is how the tree grows), but only forwards…
    let mut tx = as_tenant(&mut app).await;
    let shrink = sqlx::query(
        "UPDATE audit_heads SET size = 0, frontier = decode('0000000000000000', 'hex') \
         WHERE tenant_id = 'acme'",
    )
    .execute(&mut *tx)
    .await;
    assert!(refusal(shrink).contains("append-only"));
    tx.rollback().await.unwrap();
    // …even if the application claims a maintenance window: only the owner may open one.
    let mut tx = as_tenant(&mut app).await;
    sqlx::query("SET LOCAL airisk.maintenance = 'on'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let shrink = sqlx::query("UPDATE audit_heads SET size = 0 WHERE tenant_id = 'acme'")
        .execute(&mut *tx)
        .await;
    assert!(refusal(shrink).contains("append-only"));
    tx.rollback().await.unwrap();
    // …and cannot be deleted.
    for sql in [
        "DELETE FROM audit_heads WHERE tenant_id = 'acme'",
        "TRUNCATE audit_heads",
        "DELETE FROM approval_requests WHERE tenant_id = 'acme'",
        "DELETE FROM model_versions WHERE tenant_id = 'acme'",
        "DELETE FROM prompt_labels WHERE tenant_id = 'acme'",
    ] {
        let mut tx = as_tenant(&mut app).await;
        assert_eq!(
            sqlstate(sqlx::query(sql).execute(&mut *tx).await),
            "42501",
            "{sql}"
        );
        tx.rollback().await.unwrap();
    }
    // Governance state may change only in the columns the store updates.
    let mut tx = as_tenant(&mut app).await;
    let rekey = sqlx::query("UPDATE approval_requests SET requested_by = 'mallory@acme.example'")
        .execute(&mut *tx)
        .await;
    assert_eq!(sqlstate(rekey), "42501");
    tx.rollback().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn a_superuser_is_refused_by_the_triggers() {
    let db = TestDb::new().await;
    history(&db).await;
    let mut admin = db.admin_connection().await;
    for table in HISTORY {
        for sql in [
            update_sql(table),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table} CASCADE"),
        ] {
            let message = refusal(sqlx::query(&sql).execute(&mut admin).await);
            assert!(message.contains("append-only"), "{sql}: {message}");
        }
    }
    for sql in [
        "UPDATE audit_heads SET size = size - 1",
        "DELETE FROM audit_heads",
        "TRUNCATE audit_heads",
    ] {
        let message = refusal(sqlx::query(sql).execute(&mut admin).await);
        assert!(message.contains("append-only"), "{sql}: {message}");
    }
    // Everything is still there.
    for table in HISTORY {
        let n: i64 = sqlx::query(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut admin)
            .await
            .unwrap()
            .get(0);
        assert!(n > 0, "{table} kept its rows");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn the_owner_may_change_history_only_inside_a_maintenance_window() {
    let db = TestDb::new().await;
    history(&db).await;
    let mut admin = db.admin_connection().await;
    let mut tx = admin.begin().await.unwrap();
    sqlx::query("SET LOCAL airisk.maintenance = 'on'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let deleted = sqlx::query("DELETE FROM audit_entries WHERE seq = 0")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 1);
    tx.rollback().await.unwrap();
    // The window closed with its transaction.
    let message = refusal(
        sqlx::query("DELETE FROM audit_entries WHERE seq = 0")
            .execute(&mut admin)
            .await,
    );
    assert!(message.contains("append-only"), "{message}");
}

/// The one change the prompt-version trigger lets through (migration 0006), for the application
/// role and the superuser alike, is sealing a plaintext template in place: the template replaced
/// by a `v1.` value and `"sealed": true` added, nothing else. Any other field changed with it, a
/// template that is not a ciphertext, and a second seal of a sealed row are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn only_sealing_a_plaintext_template_in_place_gets_past_the_trigger() {
    let db = TestDb::new().await;
    history(&db).await;
    let seal = |extra: &str, template: &str| {
        format!(
            "UPDATE prompt_versions SET body = (body::jsonb || jsonb_build_object('template', \
             '{template}'::text, 'sealed', true{extra}))::json \
             WHERE tenant_id = 'acme' AND name = 'p'"
        )
    };
    let mut app = db.app_connection().await;
    for sql in [
        seal(", 'author', 'mallory'", "v1.dabc.AAAA"),
        seal(", 'template_sha256', '00'", "v1.dabc.AAAA"),
        seal("", "other plain text"),
        "UPDATE prompt_versions SET body = (body::jsonb || '{\"template\": \"v1.dabc.AAAA\"}')::json \
         WHERE tenant_id = 'acme'"
            .to_owned(),
    ] {
        let mut tx = as_tenant(&mut app).await;
        let message = refusal(sqlx::query(&sql).execute(&mut *tx).await);
        assert!(message.contains("append-only"), "{sql}: {message}");
        tx.rollback().await.unwrap();
    }
    let mut tx = as_tenant(&mut app).await;
    let done = sqlx::query(&seal("", "v1.dabc.AAAA"))
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    tx.commit().await.unwrap();
    let mut admin = db.admin_connection().await;
    let message = refusal(
        sqlx::query(&seal("", "v1.dabc.BBBB"))
            .execute(&mut admin)
            .await,
    );
    assert!(
        message.contains("append-only"),
        "a sealed row is final: {message}"
    );
    let body: String = sqlx::query("SELECT body::text FROM prompt_versions WHERE name = 'p'")
        .fetch_one(&mut admin)
        .await
        .unwrap()
        .get(0);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["template"], "v1.dabc.AAAA");
    assert_eq!(body["sealed"], true);
    assert_eq!(body["author"], "ada@acme.example", "nothing else changed");
}

//! Row-level security: the database keeps tenants apart even for raw SQL as the application
//! role, and a pooled connection never carries a tenant into its next use.

use std::sync::Arc;

use airisk_core::ports::{AuditRepository, GovernanceStore, StoreError};
use airisk_core::security::rbac::Role;
use airisk_store_postgres::{ConnectError, PostgresOptions, PostgresStore};
use airisk_testkit::conformance::event;
use airisk_testkit::fixtures::{ManualClock, human, tenant};
use airisk_testkit::governance_conformance::Services;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Row};

use crate::support::{TestDb, sqlstate};

/// Every table with row-level security.
const TENANT_TABLES: &[&str] = &[
    "audit_entries",
    "audit_nodes",
    "audit_heads",
    "audit_checkpoints",
    "approval_requests",
    "model_versions",
    "prompt_versions",
    "prompt_labels",
    "label_moves",
    "audit_tenants",
];

/// Two tenants with rows in every tenant table.
async fn two_tenants(db: &TestDb) -> Arc<PostgresStore> {
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(db.store(clock.clone()).await);
    let s = Services::new(
        store.clone() as Arc<dyn GovernanceStore>,
        store.clone() as Arc<dyn AuditRepository>,
        clock.clone(),
    );
    for t in ["acme", "globex"] {
        let admin = human(&format!("ada@{t}.example"), t, Role::Admin);
        let approver = human(&format!("bob@{t}.example"), t, Role::Approver);
        let corr = airisk_core::request::CorrelationId::generate;
        s.models
            .register_model(
                &admin,
                &corr(),
                airisk_core::governance::model_registry::RegisterModel {
                    name: "m".into(),
                    version: "1".into(),
                    checksum: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                        .into(),
                    artifact_uri: "s3://models/m/1".into(),
                    metadata: None,
                    justification: "backtest passed".into(),
                    required_approvals: None,
                    expires_in_seconds: None,
                },
            )
            .await
            .unwrap();
        s.prompts
            .register_prompt(&admin, &corr(), "p", "hello {name}", "first")
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
        let head = store.tree_head(&tenant(t)).await.unwrap();
        store
            .add_checkpoint(
                &tenant(t),
                airisk_core::ports::StoredCheckpoint {
                    size: head.size,
                    root: head.root,
                    note: "test note".into(),
                    signed_at: airisk_core::ports::Clock::now(clock.as_ref()),
                },
            )
            .await
            .unwrap();
    }
    store
}

async fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn a_raw_query_as_the_app_role_sees_no_rows_of_another_tenant() {
    let db = TestDb::new().await;
    let _store = two_tenants(&db).await;
    let mut admin = db.admin_connection().await;
    let mut app = db.app_connection().await;
    for table in TENANT_TABLES {
        // The rows are there (the superuser bypasses row-level security)…
        let all = count(&mut admin, &format!("SELECT count(*) FROM {table}")).await;
        let acme_rows = count(
            &mut admin,
            &format!("SELECT count(*) FROM {table} WHERE tenant_id = 'acme'"),
        )
        .await;
        assert!(acme_rows > 0, "{table} has acme rows");
        assert!(all > acme_rows, "{table} has globex rows");
        // …but globex's session sees only globex's.
        let mut tx = app.begin().await.unwrap();
        sqlx::query("SELECT set_config('airisk.tenant_id', 'globex', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let acme_seen = count(
            &mut tx,
            &format!("SELECT count(*) FROM {table} WHERE tenant_id = 'acme'"),
        )
        .await;
        let seen = count(&mut tx, &format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(acme_seen, 0, "{table}: globex saw acme rows");
        assert_eq!(seen, all - acme_rows, "{table}: globex sees all of its own");
        tx.rollback().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn a_raw_query_with_no_tenant_set_sees_no_rows() {
    let db = TestDb::new().await;
    let store = two_tenants(&db).await;
    let mut app = db.app_connection().await;
    for table in TENANT_TABLES {
        assert_eq!(
            count(&mut app, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table} outside a transaction"
        );
        let mut tx = app.begin().await.unwrap();
        assert_eq!(
            count(&mut tx, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table} in a transaction"
        );
        tx.rollback().await.unwrap();
    }
    // The tenant directory too; the list of tenants comes from its SECURITY DEFINER function.
    assert_eq!(
        store.tenants().await.unwrap(),
        vec![tenant("acme"), tenant("globex")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn the_app_role_cannot_write_rows_of_another_tenant() {
    let db = TestDb::new().await;
    let _store = two_tenants(&db).await;
    let mut app = db.app_connection().await;
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('airisk.tenant_id', 'globex', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let insert = sqlx::query(
        "INSERT INTO audit_checkpoints (tenant_id, size, root, note, signed_at) \
         VALUES ('acme', 999, decode(repeat('00', 32), 'hex'), 'forged', now())",
    )
    .execute(&mut *tx)
    .await;
    // new row violates row-level security policy
    assert_eq!(sqlstate(insert), "42501");
    tx.rollback().await.unwrap();

    // An UPDATE aimed at another tenant's row matches nothing.
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('airisk.tenant_id', 'globex', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let updated =
        sqlx::query("UPDATE approval_requests SET status = 'APPROVED' WHERE tenant_id = 'acme'")
            .execute(&mut *tx)
            .await
            .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    tx.rollback().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn a_pooled_connection_carries_no_tenant_into_its_next_use() {
    let db = TestDb::new().await;
    let mut options = PostgresOptions::default();
    options.max_connections = 1; // every use below gets the same connection
    let clock = Arc::new(ManualClock::new());
    let store = db.store_with(clock, options).await;
    store.append(vec![event("acme", 1)]).await.unwrap();
    assert_eq!(store.tree_head(&tenant("acme")).await.unwrap().size, 1);
    // A failed write (a checkpoint of a taken size) must not leave a tenant behind either.
    let head = store.tree_head(&tenant("acme")).await.unwrap();
    let cp = airisk_core::ports::StoredCheckpoint {
        size: 1,
        root: head.root,
        note: "n".into(),
        signed_at: chrono::Utc::now(),
    };
    store
        .add_checkpoint(&tenant("acme"), cp.clone())
        .await
        .unwrap();
    let again = store.add_checkpoint(&tenant("acme"), cp).await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "{again:?}"
    );

    let mut conn = store.pool().acquire().await.unwrap();
    let setting: Option<String> = sqlx::query("SELECT current_setting('airisk.tenant_id', true)")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
        .get(0);
    assert!(
        setting.as_deref().is_none_or(str::is_empty),
        "the pooled connection still names tenant {setting:?}"
    );
    for table in TENANT_TABLES {
        assert_eq!(
            count(&mut conn, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table} through the pool"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn the_store_refuses_a_login_that_bypasses_row_level_security() {
    let db = TestDb::new().await;
    let clock = Arc::new(ManualClock::new());
    let got =
        PostgresStore::connect(&db.admin_url, clock.clone(), PostgresOptions::default()).await;
    assert!(
        matches!(
            got,
            Err(ConnectError::PrivilegedRole {
                why: "superuser",
                ..
            })
        ),
        "{got:?}"
    );
    let mut options = PostgresOptions::default();
    options.dangerous_allow_privileged_role = true;
    assert!(
        PostgresStore::connect(&db.admin_url, clock, options)
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn the_application_role_has_no_bypass_and_owns_nothing() {
    let db = TestDb::new().await;
    let mut admin = db.admin_connection().await;
    let row = sqlx::query(
        "SELECT rolsuper, rolbypassrls, rolcanlogin, rolcreaterole, rolcreatedb \
         FROM pg_roles WHERE rolname = 'airisk_app'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    for i in 0..5 {
        assert!(!row.get::<bool, _>(i), "airisk_app attribute {i} is set");
    }
    let owned = count(
        &mut admin,
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner \
         WHERE r.rolname IN ('airisk_app', 'airisk_test_app')",
    )
    .await;
    assert_eq!(owned, 0);
    let forced = count(
        &mut admin,
        "SELECT count(*) FROM pg_class WHERE relrowsecurity AND relforcerowsecurity \
         AND relname = ANY(ARRAY['audit_entries','audit_nodes','audit_heads','audit_checkpoints',\
         'approval_requests','model_versions','prompt_versions','prompt_labels','label_moves',\
         'audit_tenants'])",
    )
    .await;
    assert_eq!(forced, TENANT_TABLES.len() as i64);
    let _ = admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn migrating_again_changes_nothing() {
    let db = TestDb::new().await;
    let report = airisk_store_postgres::migrate(&db.admin_url).await.unwrap();
    assert!(report.applied.is_empty(), "{report:?}");
    assert_eq!(report.version, airisk_store_postgres::schema_version());
}

//! Lookups by key read their own rows only, whatever the planner knows about the tables.
//!
//! A new database has no statistics until autovacuum's first ANALYZE (a minute or more), and a
//! table that grows fast outruns them. Without them PostgreSQL once planned the join of a model to
//! its approval request through an index that matched only the tenant (reading every request of
//! the tenant for each approval), and a model lookup through an index on `(tenant, name, ord)`
//! (reading every version of the model). These tests fill a tenant without ever analysing it and
//! ask PostgreSQL, as the application's role, how it runs each prepared read; the oracle is the
//! plan PostgreSQL reports, not the store's code. A read that fails in the database (a corrupt
//! row) must not leave the pooled connection inside its aborted transaction.

use std::sync::Arc;

use airisk_core::governance::model_registry::{ModelName, ModelVersionTag};
use airisk_core::ports::{AuditRepository, GovernanceStore, SubjectState};
use airisk_store_postgres::{PREPARED_READS, PostgresOptions, PostgresStore};
use airisk_testkit::conformance::event;
use airisk_testkit::fixtures::{ManualClock, tenant};
use airisk_testkit::governance_conformance::Services;
use serde_json::Value;
use sqlx::{Connection, Row};

use crate::support::{TestDb, register_model_version};

/// Enough rows that an index matching only the tenant (estimated, without statistics, at 0.5% of
/// the table) costs visibly more than a primary-key lookup; with the tenant named twice the
/// estimate stayed under one row up to 40,000 rows, which is what went wrong.
const ROWS: usize = 2_000;

/// A store with one connection (so that every read and write goes through the same session),
/// and the services over it.
async fn one_connection_store(db: &TestDb) -> (Arc<PostgresStore>, Services) {
    let clock = Arc::new(ManualClock::new());
    let mut options = PostgresOptions::default();
    options.max_connections = 1;
    let store = Arc::new(db.store_with(clock.clone(), options).await);
    let services = Services::new(
        store.clone() as Arc<dyn GovernanceStore>,
        store.clone() as Arc<dyn AuditRepository>,
        clock,
    );
    (store, services)
}

/// Every scan of a governance table in `plan` (EXPLAIN's JSON), as "node type on relation using
/// index".
fn scans(plan: &Value, out: &mut Vec<String>) {
    let node = plan["Node Type"].as_str().unwrap_or("?");
    if !node.ends_with("Scan") {
        // An Update or Insert node names its table too; what reads it is below.
    } else if let Some(relation) = plan.get("Relation Name").and_then(Value::as_str) {
        out.push(format!(
            "{node} on {relation} using {}",
            plan.get("Index Name")
                .and_then(Value::as_str)
                .unwrap_or("-")
        ));
    } else if let Some(index) = plan.get("Index Name").and_then(Value::as_str) {
        // A bitmap index scan names only its index.
        out.push(format!("{node} using {index}"));
    }
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        for child in children {
            scans(child, out);
        }
    }
}

/// Adds ROWS model versions of one name to tenant `acme`, each with its request, written by the
/// owner in one go (no statistics come of it), with autovacuum kept off both tables so that no
/// ANALYZE can run while the test looks.
async fn grow(db: &TestDb) {
    let mut admin = db.admin_connection().await;
    sqlx::raw_sql(&format!(
        "ALTER TABLE approval_requests SET (autovacuum_enabled = false); \
         ALTER TABLE model_versions SET (autovacuum_enabled = false); \
         SELECT set_config('airisk.tenant_id', 'acme', false); \
         INSERT INTO approval_requests \
           (tenant_id, id, ord, version, status, subject, requested_by, body) \
         SELECT 'acme', gen_random_uuid(), 1000 + 2 * g, 0, 'pending', \
                json_build_object('kind', 'model', 'name', 'credit-risk-pd', \
                                  'version', '9.' || g || '.0')::text, \
                'ada@acme.example', '{{}}' \
         FROM generate_series(1, {ROWS}) g; \
         INSERT INTO model_versions (tenant_id, name, version, ord, row_version, body) \
         SELECT 'acme', 'credit-risk-pd', '9.' || g || '.0', 1001 + 2 * g, 0, '{{}}' \
         FROM generate_series(1, {ROWS}) g;"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn key_lookups_use_primary_keys_before_any_analyze() {
    let db = TestDb::new().await;
    grow(&db).await;
    let mut admin = db.admin_connection().await;
    sqlx::query("SELECT set_config('airisk.tenant_id', 'acme', false)")
        .execute(&mut admin)
        .await
        .unwrap();
    let request: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM approval_requests ORDER BY ord DESC LIMIT 1")
            .fetch_one(&mut admin)
            .await
            .unwrap();
    let version = format!("9.{}.0", ROWS - 3);

    let mut conn = db.app_connection().await;
    let never_analyzed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_user_tables \
         WHERE relname IN ('approval_requests', 'model_versions') \
           AND last_analyze IS NULL AND last_autoanalyze IS NULL",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(never_analyzed, 2, "the tables must have no statistics");
    sqlx::Executor::execute(&mut conn, PREPARED_READS)
        .await
        .unwrap();
    let reads = [
        format!("EXECUTE airisk_model('acme', 'credit-risk-pd', '{version}')"),
        format!("EXECUTE airisk_model_with_approval('acme', 'credit-risk-pd', '{version}')"),
        format!("EXECUTE airisk_approval_with_subject('acme', '{request}')"),
    ];
    // The store plans every execution for its values (`force_custom_plan` on its connections);
    // a generic plan made now, from the grown tables, must hold as well.
    for mode in ["force_custom_plan", "force_generic_plan"] {
        for read in &reads {
            let mut tx = conn.begin().await.unwrap();
            sqlx::query("SELECT set_config('airisk.tenant_id', 'acme', true)")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(&format!("SET LOCAL plan_cache_mode = {mode}"))
                .execute(&mut *tx)
                .await
                .unwrap();
            let row = sqlx::query(&format!("EXPLAIN (FORMAT JSON) {read}"))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            let plan: Value = row.get(0);
            let mut found = Vec::new();
            scans(&plan[0]["Plan"], &mut found);
            let governance: Vec<&String> = found.iter().collect();
            assert!(
                !governance.is_empty(),
                "{mode} {read}: no scan found in {plan}"
            );
            for scan in &governance {
                // A bitmap heap scan is as good as the bitmap index scan under it.
                if scan.starts_with("Bitmap Heap Scan on ") {
                    continue;
                }
                assert!(
                    (scan.starts_with("Index Scan on ") || scan.starts_with("Bitmap Index Scan"))
                        && scan.ends_with("_pkey"),
                    "{mode} {read}: {scan} in {governance:?} (every lookup by key must go \
                     through its primary key)"
                );
            }
            tx.rollback().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn a_read_that_fails_in_the_database_leaves_the_pooled_connection_clean() {
    let db = TestDb::new().await;
    let (store, services) = one_connection_store(&db).await;
    register_model_version(&services, "1.0.0").await;
    register_model_version(&services, "1.1.0").await;
    // The owner corrupts one model's request id: reading it fails in the database (the cast to
    // uuid), after the read's BEGIN and before its closing ROLLBACK.
    let mut admin = db.admin_connection().await;
    sqlx::query("SELECT set_config('airisk.tenant_id', 'acme', false)")
        .execute(&mut admin)
        .await
        .unwrap();
    let changed = sqlx::query(
        "UPDATE model_versions \
         SET body = jsonb_set(body::jsonb, '{approval_request_id}', '\"not-a-uuid\"')::json \
         WHERE version = '1.0.0'",
    )
    .execute(&mut admin)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(changed, 1);
    let name = ModelName::parse("credit-risk-pd").unwrap();
    let (bad, good) = (
        ModelVersionTag::parse("1.0.0").unwrap(),
        ModelVersionTag::parse("1.1.0").unwrap(),
    );
    for n in 0..3 {
        assert!(
            store
                .model_with_approval(&tenant("acme"), &name, &bad)
                .await
                .is_err(),
            "a row the database cannot read is an error"
        );
        // The one connection is usable by the next reader and the next writer.
        let read = store
            .model_with_approval(&tenant("acme"), &name, &good)
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(&read.subject, SubjectState::Model(Some(m)) if m.version().as_str() == "1.1.0"),
            "the good model reads back"
        );
        store.append(vec![event("acme", n)]).await.unwrap();
    }
}

/// The same through the store itself, on its one connection: reads while the tables are empty,
/// then the tables grow (never analysed), then reads by key must touch primary keys only. Measured
/// from PostgreSQL's per-index counters, which the store's backend reports when it exits (ended
/// with `pg_terminate_backend(pid, timeout)`, which waits for the exit). With the
/// old join (`a.tenant_id = m.tenant_id`) the later reads read 24,012 entries of
/// `approval_requests_subject`; with the join as it is, none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn reads_planned_on_empty_tables_find_rows_by_key_after_they_grow() {
    const READS: i64 = 12;
    let db = TestDb::new().await;
    let (store, services) = one_connection_store(&db).await;
    let (t, name, version) = (
        tenant("acme"),
        ModelName::parse("credit-risk-pd").unwrap(),
        ModelVersionTag::parse("1.0.0").unwrap(),
    );
    // While the tables are empty: lookups that find nothing.
    for _ in 0..READS {
        assert!(
            store
                .model_with_approval(&t, &name, &version)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .approval_with_subject(&t, uuid::Uuid::now_v7())
                .await
                .unwrap()
                .is_none()
        );
    }
    register_model_version(&services, "1.0.0").await;
    let read = |store: Arc<PostgresStore>| {
        let (t, name, version) = (t.clone(), name.clone(), version.clone());
        async move {
            let found = store
                .model_with_approval(&t, &name, &version)
                .await
                .unwrap()
                .unwrap();
            let id = found.request.id();
            assert!(store.approval_with_subject(&t, id).await.unwrap().is_some());
        }
    };
    grow(&db).await;
    for _ in 0..READS {
        read(store.clone()).await;
    }
    // The store's backend reports its per-index counters when it exits: end it, and wait (up to
    // 20 s, inside PostgreSQL) until it has.
    let mut admin = db.admin_connection().await;
    let pid: i32 = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'airisk'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 20000)")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(ended, "the store's backend did not exit within 20 s");
    store.close().await;
    drop(services);
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut admin)
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT indexrelname::text, idx_scan, idx_tup_read FROM pg_stat_user_indexes \
         WHERE relname IN ('approval_requests', 'model_versions')",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    let counters: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let pkey_scans = counters
        .iter()
        .find(|c| c.0 == "approval_requests_pkey")
        .map_or(0, |c| c.1);
    assert!(
        pkey_scans >= 2 * READS,
        "the store's reads were not reported: {counters:?}"
    );
    let off_key: i64 = counters
        .iter()
        .filter(|c| !c.0.ends_with("_pkey"))
        .map(|c| c.2)
        .sum();
    assert!(
        off_key < 100,
        "reads went through indexes of the tenant only, {off_key} entries: {counters:?}"
    );
}

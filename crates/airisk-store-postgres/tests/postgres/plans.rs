//! Lookups by key read their own rows only, whatever the planner knows about the tables.
//!
//! A new database has no statistics until autovacuum's first ANALYZE (a minute or more), and a
//! table that grows fast outruns them. Without them PostgreSQL once planned the join of a model to
//! its approval request through an index that matched only the tenant (reading every request of
//! the tenant for each approval), and a model lookup through an index on `(tenant, name, ord)`
//! (reading every version of the model). These tests fill a tenant without ever analysing it and
//! ask PostgreSQL, as the application's role, how it runs each prepared read; the oracle is the
//! plan PostgreSQL reports, not the store's code.

use airisk_store_postgres::PREPARED_READS;
use serde_json::Value;
use sqlx::{Connection, Row};

use crate::support::TestDb;

/// Enough rows that an index matching only the tenant (estimated, without statistics, at 0.5% of
/// the table) costs visibly more than a primary-key lookup; with the tenant named twice the
/// estimate stayed under one row up to 40,000 rows, which is what went wrong.
const ROWS: usize = 2_000;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn key_lookups_use_primary_keys_before_any_analyze() {
    let db = TestDb::new().await;
    // One tenant with ROWS model versions of one name, each with its request, written by the
    // owner in one go (EXPLAIN reads no bodies), and autovacuum kept off these tables so that no
    // ANALYZE can run while the test looks.
    let mut admin = db.admin_connection().await;
    sqlx::raw_sql(&format!(
        "ALTER TABLE approval_requests SET (autovacuum_enabled = false); \
         ALTER TABLE model_versions SET (autovacuum_enabled = false); \
         SELECT set_config('airisk.tenant_id', 'acme', false); \
         INSERT INTO approval_requests \
           (tenant_id, id, ord, version, status, subject, requested_by, body) \
         SELECT 'acme', gen_random_uuid(), 2 * g, 0, 'pending', \
                json_build_object('kind', 'model', 'name', 'credit-risk-pd', \
                                  'version', '1.' || g || '.0')::text, \
                'ada@acme.example', '{{}}' \
         FROM generate_series(1, {ROWS}) g; \
         INSERT INTO model_versions (tenant_id, name, version, ord, row_version, body) \
         SELECT 'acme', 'credit-risk-pd', '1.' || g || '.0', 2 * g + 1, 0, '{{}}' \
         FROM generate_series(1, {ROWS}) g;"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let request: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM approval_requests ORDER BY ord DESC LIMIT 1")
            .fetch_one(&mut admin)
            .await
            .unwrap();
    let version = format!("1.{}.0", ROWS - 3);

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
    // A prepared statement is planned for its values a few times, then maybe once for all:
    // both kinds of plan must hold.
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

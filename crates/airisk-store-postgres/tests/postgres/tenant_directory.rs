//! `audit_tenants`, the directory of tenants with a ledger, is under row-level security: the
//! application role can neither add nor see a tenant row outside that tenant's transaction, and
//! the list of tenants is served only by the owner's SECURITY DEFINER function (ids only).

use std::sync::Arc;

use airisk_core::ports::AuditRepository;
use airisk_testkit::conformance::event;
use airisk_testkit::fixtures::{ManualClock, tenant};
use sqlx::{Connection, PgConnection, Row};

use crate::support::{TestDb, sqlstate};

async fn insert_in(app: &mut PgConnection, tx_tenant: Option<&str>, row: &str) -> Option<String> {
    let mut tx = app.begin().await.unwrap();
    if let Some(t) = tx_tenant {
        sqlx::query("SELECT set_config('airisk.tenant_id', $1, true)")
            .bind(t)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let result = sqlx::query("INSERT INTO audit_tenants (tenant_id) VALUES ($1)")
        .bind(row)
        .execute(&mut *tx)
        .await;
    tx.rollback().await.unwrap();
    result.is_err().then(|| sqlstate(result))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn the_app_role_cannot_add_a_tenant_row_outside_that_tenants_transaction() {
    let db = TestDb::new().await;
    let mut app = db.app_connection().await;
    // Another tenant's id from acme's transaction, and any id with no tenant set: refused by
    // row-level security (42501), not by a constraint.
    assert_eq!(
        insert_in(&mut app, Some("acme"), "globex").await.as_deref(),
        Some("42501")
    );
    assert_eq!(
        insert_in(&mut app, None, "globex").await.as_deref(),
        Some("42501")
    );
    assert_eq!(
        insert_in(&mut app, Some(""), "globex").await.as_deref(),
        Some("42501")
    );
    // Its own id, in its own transaction, is what the store does on a tenant's first entry.
    assert_eq!(insert_in(&mut app, Some("acme"), "acme").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn the_app_role_sees_only_its_tenants_row_and_lists_tenants_through_the_function() {
    let db = TestDb::new().await;
    let store = db.store(Arc::new(ManualClock::new())).await;
    for t in ["acme", "globex", "initech"] {
        store.append(vec![event(t, 0)]).await.unwrap();
    }
    let mut app = db.app_connection().await;
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('airisk.tenant_id', 'globex', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let seen: Vec<String> = sqlx::query("SELECT tenant_id FROM audit_tenants ORDER BY 1")
        .fetch_all(&mut *tx)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seen, vec!["globex".to_owned()]);
    tx.rollback().await.unwrap();
    // The directory listing, ids only, for `verify --all`.
    assert_eq!(
        store.tenants().await.unwrap(),
        vec![tenant("acme"), tenant("globex"), tenant("initech")]
    );
    let listed: Vec<String> = sqlx::query("SELECT t FROM airisk_ledger_tenants() AS t")
        .fetch_all(&mut app)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(listed, vec!["acme", "globex", "initech"]);
}

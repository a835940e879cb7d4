//! The shared conformance suites of `airisk-testkit`, unchanged, against PostgreSQL.
//!
//! Each case gets a fresh database. Without `AIRISK_TEST_DATABASE_URL` the factory prints the
//! SKIPPED line and hands the case the in-memory reference store instead (the macro gives the
//! factory no way to end the test early); `.ci/run` fails on that line, so CI never mistakes this
//! for a PostgreSQL run.

use std::sync::Arc;

use airisk_core::ports::{AuditRepository, Clock};
use airisk_testkit::InMemoryStore;

use crate::support::{Guarded, TestDb};

airisk_testkit::audit_repository_conformance!(|clock: Arc<dyn Clock>| async move {
    match TestDb::new().await {
        Some(db) => Arc::new(Guarded::new(db, clock).await) as Arc<dyn AuditRepository>,
        None => Arc::new(InMemoryStore::new(clock)) as Arc<dyn AuditRepository>,
    }
});

mod governance {
    use std::sync::Arc;

    use airisk_core::ports::{AuditRepository, Clock, GovernanceStore};
    use airisk_testkit::InMemoryStore;

    use crate::support::{Guarded, TestDb};

    airisk_testkit::governance_store_conformance!(|clock: Arc<dyn Clock>| async move {
        match TestDb::new().await {
            Some(db) => {
                let store = Arc::new(Guarded::new(db, clock).await);
                (
                    store.clone() as Arc<dyn GovernanceStore>,
                    store as Arc<dyn AuditRepository>,
                )
            }
            None => {
                let store = Arc::new(InMemoryStore::new(clock));
                (
                    store.clone() as Arc<dyn GovernanceStore>,
                    store as Arc<dyn AuditRepository>,
                )
            }
        }
    });
}

/// Verification under concurrent appends: no false alarm, and a real tampering (the owner's
/// maintenance window, as a database administrator could open) still named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_sees_one_snapshot_under_concurrent_appends() {
    use airisk_core::ports::SystemClock;
    use sqlx::Connection;

    let Some(db) = TestDb::new().await else {
        return;
    };
    let db = Arc::new(db);
    let store = Arc::new(db.store(Arc::new(SystemClock)).await);
    let admin = Arc::clone(&db);
    let tamper: airisk_testkit::conformance::Tamper = Arc::new(move |tenant, seq| {
        let admin = Arc::clone(&admin);
        Box::pin(async move {
            let mut conn = admin.admin_connection().await;
            let mut tx = conn.begin().await.unwrap();
            sqlx::query("SET LOCAL airisk.maintenance = 'on'")
                .execute(&mut *tx)
                .await
                .unwrap();
            let changed = sqlx::query(
                "UPDATE audit_entries SET leaf = leaf || '\\x20'::bytea \
                 WHERE tenant_id = $1 AND seq = $2",
            )
            .bind(tenant.as_str())
            .bind(i64::try_from(seq).unwrap())
            .execute(&mut *tx)
            .await
            .unwrap();
            assert_eq!(changed.rows_affected(), 1);
            tx.commit().await.unwrap();
        })
    });
    airisk_testkit::conformance::verification_sees_one_snapshot_under_concurrent_appends(
        store, tamper,
    )
    .await;
}

/// The sealing suite: envelope encryption, shredding, KEK rotation (docs/ENCRYPTION.md).
mod sealing {
    use std::sync::Arc;

    use airisk_core::ports::{AuditRepository, Clock, GovernanceStore};
    use airisk_testkit::InMemoryStore;

    use crate::support::{Guarded, TestDb};

    airisk_testkit::sealing_conformance!(|clock: Arc<dyn Clock>| async move {
        match TestDb::new().await {
            Some(db) => {
                let store = Arc::new(Guarded::new(db, clock).await);
                (
                    store.clone() as Arc<dyn GovernanceStore>,
                    store as Arc<dyn AuditRepository>,
                )
            }
            None => {
                let store = Arc::new(InMemoryStore::new(clock));
                (
                    store.clone() as Arc<dyn GovernanceStore>,
                    store as Arc<dyn AuditRepository>,
                )
            }
        }
    });
}

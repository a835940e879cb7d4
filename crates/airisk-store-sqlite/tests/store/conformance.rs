//! The one conformance suite every store passes, against a fresh temporary file per case.

use std::sync::Arc;

use airisk_core::ports::{AuditRepository, Clock};

use crate::support::temp_store;

airisk_testkit::audit_repository_conformance!(|clock: Arc<dyn Clock>| async move {
    Arc::new(temp_store(clock)) as Arc<dyn AuditRepository>
});

/// The governance suite: unit of work, optimistic versions, tenant scoping.
mod governance {
    use std::sync::Arc;

    use airisk_core::ports::{AuditRepository, Clock, GovernanceStore};

    use crate::support::temp_store;

    airisk_testkit::governance_store_conformance!(|clock: Arc<dyn Clock>| async move {
        let store = Arc::new(temp_store(clock));
        (
            store.clone() as Arc<dyn GovernanceStore>,
            store as Arc<dyn AuditRepository>,
        )
    });
}

/// Verification under concurrent appends: no false alarm, and a real tampering (raw SQL past the
/// triggers, as someone with the file could) still named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_sees_one_snapshot_under_concurrent_appends() {
    use crate::support::TempDb;

    let db = Arc::new(TempDb::new());
    let store = Arc::new(db.open());
    let path = db.path();
    let tamper: airisk_testkit::conformance::Tamper = Arc::new(move |tenant, seq| {
        let path = path.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let raw = crate::support::raw(&path);
                raw.execute_batch("DROP TRIGGER audit_entries_no_update")
                    .unwrap();
                let changed = raw
                    .execute(
                        "UPDATE audit_entries SET leaf = CAST(leaf || X'20' AS BLOB) \
                         WHERE tenant_id = ?1 AND seq = ?2",
                        rusqlite::params![tenant.as_str(), i64::try_from(seq).unwrap()],
                    )
                    .unwrap();
                assert_eq!(changed, 1);
            })
            .await
            .unwrap();
        })
    });
    airisk_testkit::conformance::verification_sees_one_snapshot_under_concurrent_appends(
        store, tamper,
    )
    .await;
    drop(db);
}

/// The sealing suite: envelope encryption, shredding, KEK rotation (docs/ENCRYPTION.md).
mod sealing {
    use std::sync::Arc;

    use airisk_core::ports::{AuditRepository, Clock, GovernanceStore};

    use crate::support::temp_store;

    airisk_testkit::sealing_conformance!(|clock: Arc<dyn Clock>| async move {
        let store = Arc::new(temp_store(clock));
        (
            store.clone() as Arc<dyn GovernanceStore>,
            store as Arc<dyn AuditRepository>,
        )
    });
}

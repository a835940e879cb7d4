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

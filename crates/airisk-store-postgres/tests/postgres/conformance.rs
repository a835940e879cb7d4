//! The shared conformance suites of `airisk-testkit`, unchanged, against PostgreSQL.
//!
//! Each case gets a fresh database. Every case is `#[ignore]`d with the reason (so a run without
//! PostgreSQL lists them as ignored, never as passed), and without `AIRISK_TEST_DATABASE_URL`
//! the factory panics: no other store ever stands in under a PostgreSQL test's name.

use std::sync::Arc;

use airisk_core::ports::{AuditRepository, Clock};

use crate::support::{Guarded, TestDb};

airisk_testkit::audit_repository_conformance!(
    #[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
    |clock: Arc<dyn Clock>| async move {
        Arc::new(Guarded::new(TestDb::new().await, clock).await) as Arc<dyn AuditRepository>
    }
);

mod governance {
    use std::sync::Arc;

    use airisk_core::ports::{AuditRepository, Clock, GovernanceStore};

    use crate::support::{Guarded, TestDb};

    airisk_testkit::governance_store_conformance!(
        #[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
        |clock: Arc<dyn Clock>| async move {
            let store = Arc::new(Guarded::new(TestDb::new().await, clock).await);
            (
                store.clone() as Arc<dyn GovernanceStore>,
                store as Arc<dyn AuditRepository>,
            )
        }
    );
}

//! The conformance suite against the in-memory store.

use std::sync::Arc;

use airisk_core::ports::{AuditRepository, Clock};
use airisk_testkit::InMemoryStore;

airisk_testkit::audit_repository_conformance!(|clock: Arc<dyn Clock>| async move {
    Arc::new(InMemoryStore::new(clock)) as Arc<dyn AuditRepository>
});

mod governance {
    use std::sync::Arc;

    use airisk_core::ports::{AuditRepository, Clock, GovernanceStore};
    use airisk_testkit::InMemoryStore;

    airisk_testkit::governance_store_conformance!(|clock: Arc<dyn Clock>| async move {
        let store = Arc::new(InMemoryStore::new(clock));
        (
            store.clone() as Arc<dyn GovernanceStore>,
            store as Arc<dyn AuditRepository>,
        )
    });
}

//! The one conformance suite every store passes, against a fresh temporary file per case.

use std::sync::Arc;

use airisk_core::ports::{AuditRepository, Clock};

use crate::support::TempStore;

airisk_testkit::audit_repository_conformance!(|clock: Arc<dyn Clock>| async move {
    Arc::new(TempStore::new(clock)) as Arc<dyn AuditRepository>
});

/// The governance suite: unit of work, optimistic versions, tenant scoping.
mod governance {
    use std::sync::Arc;

    use airisk_core::ports::{AuditRepository, Clock, GovernanceStore};

    use crate::support::TempStore;

    airisk_testkit::governance_store_conformance!(|clock: Arc<dyn Clock>| async move {
        let store = Arc::new(TempStore::new(clock));
        (
            store.clone() as Arc<dyn GovernanceStore>,
            store as Arc<dyn AuditRepository>,
        )
    });
}

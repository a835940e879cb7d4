//! The one conformance suite every store passes, against a fresh temporary file per case.

use std::sync::Arc;

use airisk_core::ports::{AuditRepository, Clock};

use crate::support::TempStore;

airisk_testkit::audit_repository_conformance!(|clock: Arc<dyn Clock>| async move {
    Arc::new(TempStore::new(clock)) as Arc<dyn AuditRepository>
});

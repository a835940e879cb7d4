//! The conformance suite against the in-memory store.

use std::sync::Arc;

use airisk_core::ports::{AuditRepository, Clock};
use airisk_testkit::InMemoryStore;

airisk_testkit::audit_repository_conformance!(|clock: Arc<dyn Clock>| async move {
    Arc::new(InMemoryStore::new(clock)) as Arc<dyn AuditRepository>
});

//! Tenant isolation tests.

//! RBAC matrix tests.

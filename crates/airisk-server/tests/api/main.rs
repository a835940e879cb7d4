//! End-to-end tests of the HTTP API: each test spawns the real router on 127.0.0.1:0 over a fresh
//! in-memory store and drives it with an HTTP client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

#[macro_use]
mod backends;
mod pg;
mod support;
mod test_ca;

mod audit_rollback;
mod audit_snapshot;
mod correlation;
mod edge;
mod errors;
mod hostile;
mod idempotency;
mod input_edges;
mod jwt_parsing;
mod key_custody;
mod mlflow_replay;
mod mlflow_tls;
mod ops;
mod paths;
mod rbac;
mod scenario;
mod shutdown;
mod tenancy;

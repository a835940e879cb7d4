//! The PostgreSQL store against a real server: the shared conformance suites, row-level security,
//! immutability, and several processes appending to one tenant.
//!
//! Needs `AIRISK_TEST_DATABASE_URL` (a superuser URL, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test gets a database of its own. Without
//! it every test prints one SKIPPED line and passes vacuously — `.ci/run` sets the variable and
//! fails on that line.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failure should stop the test loudly

mod commit_outcome;
mod concurrency;
mod conformance;
mod immutability;
mod rls;
mod sealed_at_rest;
mod support;
mod tenant_directory;

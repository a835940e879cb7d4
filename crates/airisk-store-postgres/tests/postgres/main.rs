//! The PostgreSQL store against a real server: the shared conformance suites, row-level security,
//! immutability, and several processes appending to one tenant.
//!
//! Needs `AIRISK_TEST_DATABASE_URL` (a superuser URL, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test gets a database of its own. Every
//! PostgreSQL test is `#[ignore]`d with that reason, so a plain `cargo test` reports it as ignored;
//! `scripts/test.sh` runs them with `--ignored` when a server answers. Run without the variable a
//! PostgreSQL test panics (it never passes on another store); `guard.rs` fails a CI run that lacks
//! the variable, and `.ci/run` checks that every one of them recorded its run in the database.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failure should stop the test loudly

mod batching;
mod commit_outcome;
mod concurrency;
mod conformance;
mod guard;
mod immutability;
mod plans;
mod rls;
mod sealed_at_rest;
mod support;
mod tenant_directory;

//! The SQLite store, tested against a fresh temporary database file per test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed unwrap is a failed test

mod support;
mod sync;

mod concurrency;
mod conformance;
mod durability;
mod file_modes;
mod governance_triggers;
mod nodes;
mod tamper;
mod triggers;

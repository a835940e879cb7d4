//! # airisk-testkit
//!
//! * [`InMemoryStore`]: the in-memory store of `airisk-store-memory`, re-exported with its
//!   `tamper` feature on: the `dangerous_*` switches that tamper with history or inject failures,
//!   for tests. (Production code depends on `airisk-store-memory` without that feature.)
//! * [`fixtures`]: clocks and principals for tests.
//! * [`Guarded`]: a store kept alive with its temporary directory or test database, every port
//!   method passed through (what the store suites' factories hand out), optionally with a fault
//!   injected ahead of each commit ([`guarded::before_commit`]).
//! * [`CapturedLogs`]: a writer for a `tracing` subscriber that keeps the log lines a test reads
//!   back.
//! * [`conformance`] (audit ledger) and [`governance_conformance`] (unit of work, versions,
//!   tenant scoping): the suites every store (in-memory, SQLite, PostgreSQL) runs unchanged.
#![deny(missing_docs)]

pub mod conformance;
pub mod fixtures;
pub mod governance_conformance;
pub mod guarded;
pub mod log_capture;
pub mod sealing_conformance;

pub use airisk_store_memory::InMemoryStore;
pub use guarded::Guarded;
pub use log_capture::CapturedLogs;

//! # airisk-testkit
//!
//! * [`InMemoryStore`]: a complete in-memory implementation of the store ports, with
//!   `dangerous_*` switches that tamper with history or inject failures, for tests.
//! * [`fixtures`]: clocks and principals for tests.
//! * [`conformance`] (audit ledger) and [`governance_conformance`] (unit of work, versions,
//!   tenant scoping): the suites every store (in-memory, SQLite, PostgreSQL) runs unchanged.
#![deny(missing_docs)]

pub mod conformance;
pub mod fixtures;
pub mod governance_conformance;
mod memory;
pub mod sealing_conformance;

pub use memory::InMemoryStore;

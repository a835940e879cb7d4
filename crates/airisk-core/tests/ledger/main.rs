//! Ledger tests: `cargo test -p airisk-core --test ledger`.
//!
//! `vectors` runs every file of the shared RFC 6962 test vectors and fails (never skips) if they
//! are missing; `reference` holds a direct transcription of the RFC 6962 recursive definitions
//! that generated proofs are compared with.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a broken expectation must panic

mod canonical_json;
mod checkpoint;
mod merkle;
mod parsers;
mod proof;
mod reference;
mod vectors;

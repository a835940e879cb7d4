//! Security tests: `cargo test -p airisk-core --test security`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a broken expectation must panic

mod data_subject;
mod encryption;
mod envelope;
mod rbac;
mod tenant_context;

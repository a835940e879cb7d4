//! Governance tests: `cargo test -p airisk-core --test governance`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a broken expectation must panic

mod approval_workflow;
mod audit;
mod hostile;
mod leaf_bytes;
mod minimal_store;
mod model_registry;
mod prompt_registry;
mod spans;
mod support;
mod verify_chunks;
mod visible_text;

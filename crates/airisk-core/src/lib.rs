//! # airisk-core
//!
//! The domain, application services and ports of the ai-risk-engine governance & security kernel.
//! This crate knows nothing of HTTP or SQL: stores and transports live in their own crates and plug
//! in through the traits of [`ports`].
//!
//! * [`security`]: role-based access control, tenant isolation and AES-256-GCM encryption.
//! * [`ledger`]: the RFC 6962 Merkle tree, its proofs and signed checkpoints (pure functions).
//! * [`governance`]: the audit ledger (logger, records, verification), the approval workflow
//!   (four eyes), the model and prompt registries, and the [`governance::service_context`] they
//!   share.
//! * [`input`]: the one error type of a command's invalid input.
//! * [`ports`]: the traits adapters implement (clock, id generator, repositories).
#![deny(missing_docs)]

pub mod governance;
pub mod input;
pub mod ledger;
mod newtype;
pub mod ports;
pub mod request;
pub mod security;

/// The README's Rust examples, compiled and run as doctests so they stay true.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

//! The tamper-evident ledger: RFC 6962 Merkle tree, proofs and signed checkpoints.

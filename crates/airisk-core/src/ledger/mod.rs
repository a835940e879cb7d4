//! The tamper-evident ledger: RFC 6962 Merkle tree, proofs and signed checkpoints.
//!
//! Pure functions and values only; stores persist what these return and feed it back in.
//!
//! # The scheme
//!
//! Each tenant's audit ledger is an append-only RFC 6962 Merkle tree of its own:
//!
//! 1. **Leaf bytes.** An audit record is serialised to RFC 8785 canonical JSON
//!    ([`to_canonical_json`]); those bytes are the leaf, stored and exported verbatim.
//! 2. **Tree.** Leaf hash `SHA-256(0x00 || leaf)` ([`leaf_hash`]), node hash
//!    `SHA-256(0x01 || left || right)` ([`node_hash`]), empty tree `SHA-256("")`. The tree of `n`
//!    leaves splits at the largest power of two below `n` (RFC 6962 §2.1).
//! 3. **Appending.** A [`Frontier`] holds the right edge of the tree (one hash per set bit of the
//!    size). [`Frontier::append`] returns the leaf node and every perfect subtree it completed, as
//!    [`NodeId`]`(level, index)` → [`Hash`](struct@Hash); a store persists them (about two per leaf) and the
//!    frontier of its head ([`Frontier::to_bytes`]).
//! 4. **Proofs.** Inclusion and consistency proofs for any earlier size are assembled from those
//!    stored nodes, `O(log n)` reads planned up front ([`inclusion_proof_nodes`],
//!    [`consistency_proof_nodes`] → [`inclusion_proof`], [`consistency_proof`], [`root_at`]), and
//!    checked by anyone with [`verify_inclusion`] and [`verify_consistency`].
//! 5. **Checkpoints.** A [`Checkpoint`] `(origin, size, root)` with origin
//!    `<ledger name>/<tenant id>` is signed with Ed25519 as a C2SP signed note
//!    ([`Checkpoint::sign`]); auditors holding the verifier key string check it with
//!    [`verify_checkpoint`].
//!
//! `docs/AUDIT_VERIFICATION.md` ("Formats") describes every byte for auditors working in other
//! languages.
//!
//! ```
//! use airisk_core::ledger::{
//!     Checkpoint, Frontier, LedgerName, LedgerSigner, leaf_hash, to_canonical_json,
//!     verify_checkpoint, verify_inclusion,
//! };
//! use airisk_core::security::tenant_context::TenantId;
//! use std::collections::HashMap;
//!
//! let mut frontier = Frontier::new();
//! let mut nodes = HashMap::new(); // the store's node table
//! for n in 0..5 {
//!     let leaf = to_canonical_json(&serde_json::json!({"seq": n, "action": "approve"}))?;
//!     nodes.extend(frontier.append(leaf_hash(leaf.as_bytes()))?);
//! }
//!
//! let name = LedgerName::parse("airisk.example/ledger")?;
//! let signer = LedgerSigner::generate(name.clone())?;
//! let origin = name.origin_for(&TenantId::parse("acme")?);
//! let note = Checkpoint::new(origin, frontier.size(), frontier.root()).sign(&signer)?;
//!
//! // An auditor, holding only the verifier key, the note and a proof:
//! let checkpoint = verify_checkpoint(note.note_text(), &signer.verifier())?;
//! let proof = airisk_core::ledger::inclusion_proof(3, checkpoint.size, |id| nodes.get(&id).copied())?;
//! let leaf = to_canonical_json(&serde_json::json!({"seq": 3, "action": "approve"}))?;
//! verify_inclusion(3, checkpoint.size, leaf_hash(leaf.as_bytes()), &proof, checkpoint.root)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod canonical_json;
mod checkpoint;
mod merkle;
mod proof;

pub use canonical_json::{
    CanonicalJsonError, MAX_SAFE_INTEGER, check_safe_integers, serialize_canonical_json,
    to_canonical_json,
};
pub(crate) use canonical_json::{write_number, write_object, write_string};
pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointSigning, LedgerName, LedgerSigner, LedgerVerifier,
    MAX_NOTE_LEN, MAX_SIGNATURES, NoteKeyId, Origin, SIGNING_KEY_ENV, SignedCheckpoint,
    generate_key_pair, verify_checkpoint,
};
pub use merkle::{
    Frontier, Hash, MerkleError, NodeId, empty_root, leaf_hash, node_hash, root_from_leaf_hashes,
};
pub use proof::{
    ProofError, consistency_proof, consistency_proof_nodes, hash_range, inclusion_proof,
    inclusion_proof_nodes, range_nodes, root_at, verify_consistency, verify_inclusion,
};

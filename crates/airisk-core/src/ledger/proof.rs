//! RFC 6962 inclusion and consistency proofs: planned and built from stored perfect-subtree nodes,
//! and verified the way an auditor does (RFC 9162 §2.1.3.2 and §2.1.4.2).
//!
//! # Generation without rehashing the log
//!
//! Every hash a proof for tree size `n` carries is either a *perfect* subtree (a [`NodeId`] whose
//! leaves all lie below `n`, persisted by the store when [`crate::ledger::Frontier::append`]
//! completed it) or the root of a range `[start, n)` on the right edge of the tree, which is the
//! fold of at most `log2(n)` perfect subtrees ([`range_nodes`], [`hash_range`]). So a proof costs
//! `O(log n)` node reads, all known in advance: [`inclusion_proof_nodes`] and
//! [`consistency_proof_nodes`] list them so a store can fetch them in one query, then
//! [`inclusion_proof`] / [`consistency_proof`] assemble the proof from a lookup function.
//!
//! # Path shape
//!
//! Seen from the leaves, the path of leaf `m` in a tree of `n` leaves visits, at each level below
//! the root, the sibling of the node containing `m`. A sibling to the left is always a perfect
//! subtree; a sibling to the right is perfect, truncated at `n` (the root of `[start, n)`), or
//! entirely beyond `n`, in which case the level contributes nothing.

use std::collections::BTreeSet;

use super::merkle::{Hash, NodeId, fold_right, node_hash};

/// What one proof element is the hash of.
#[derive(Debug, Clone, Copy)]
enum Element {
    /// A perfect subtree, read from the store as is.
    Node(NodeId),
    /// The leaves `[start, end)` at the right edge of the tree, folded from stored subtrees.
    Range { start: u64, end: u64 },
}

/// One element of a proof path, seen from the leaf (or the starting subtree) upwards.
#[derive(Debug, Clone, Copy)]
struct Step {
    element: Element,
    /// Whether the sibling lies to the left of the path (then it is a perfect subtree).
    sibling_on_left: bool,
}

/// The steps of the path from the node `(from_level, leaf >> from_level)` up to the root of the
/// tree of `tree_size` leaves, skipping levels whose sibling lies entirely beyond the tree.
///
/// Requires `leaf < tree_size`.
fn path_steps(from_level: u32, leaf: u64, tree_size: u64) -> impl Iterator<Item = Step> {
    // The root sits at level bitlen(tree_size - 1): the height of the smallest power of two that
    // holds the tree. So every level below it is < 64.
    let root_level = u64::BITS - tree_size.saturating_sub(1).leading_zeros();
    (from_level..root_level).filter_map(move |level| {
        let node_index = leaf >> level;
        let sibling = NodeId::new(level as u8, node_index ^ 1); // level < 64
        let (start, end) = sibling.span();
        // A sibling starting at or beyond the tree size is absent; else `start < tree_size`.
        let start = u64::try_from(start)
            .ok()
            .filter(|&start| start < tree_size)?;
        let element = if end > u128::from(tree_size) {
            Element::Range {
                start,
                end: tree_size,
            }
        } else {
            Element::Node(sibling)
        };
        Some(Step {
            element,
            sibling_on_left: node_index & 1 == 1,
        })
    })
}

/// The proof elements of an inclusion proof, leaf upwards.
fn inclusion_steps(
    leaf_index: u64,
    tree_size: u64,
) -> Result<impl Iterator<Item = Step>, ProofError> {
    if leaf_index >= tree_size {
        return Err(ProofError::IndexOutOfRange {
            index: leaf_index,
            tree_size,
        });
    }
    Ok(path_steps(0, leaf_index, tree_size))
}

/// The shape of a consistency proof between `0 < size1 < size2`.
struct ConsistencyShape {
    /// The perfect subtree the proof starts from: the smallest subtree of the first tree's
    /// frontier, `[size1 - 2^t, size1)` with `t = trailing_zeros(size1)`.
    start: NodeId,
    /// Whether `size1` is a power of two: then the start node is the first root itself and is not
    /// sent in the proof (RFC 6962 §2.1.2, `SUBPROOF(m, D[m], true) = {}`).
    start_is_root1: bool,
    /// The level of the start node, where the path to the second root begins.
    level: u32,
    /// The last leaf of the first tree: the path follows it upwards.
    last_leaf: u64,
}

fn consistency_shape(size1: u64, size2: u64) -> Result<Option<ConsistencyShape>, ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizesOutOfOrder { size1, size2 });
    }
    if size1 == 0 {
        return Err(ProofError::EmptyTreeConsistency);
    }
    if size1 == size2 {
        return Ok(None);
    }
    let level = size1.trailing_zeros();
    let last_leaf = size1 - 1;
    let start = NodeId::new(level as u8, last_leaf >> level); // size1 > 0, so level < 64
    Ok(Some(ConsistencyShape {
        start,
        start_is_root1: size1.is_power_of_two(),
        level,
        last_leaf,
    }))
}

impl ConsistencyShape {
    fn steps(&self, size2: u64) -> impl Iterator<Item = Step> {
        path_steps(self.level, self.last_leaf, size2)
    }
}

/// The perfect subtrees whose concatenation is `[start, end)`, left to right: the compact range of
/// the interval, each node as large as its alignment allows. Empty when `start >= end`.
///
/// For the ranges proofs need — `[start, tree_size)` where `start` is a multiple of the smallest
/// power of two `>= end - start` — the sizes strictly decrease, and folding the hashes from the
/// right ([`hash_range`]) gives the RFC 6962 root of the range.
pub fn range_nodes(start: u64, end: u64) -> Vec<NodeId> {
    let mut nodes = Vec::new();
    let mut cursor = start;
    while cursor < end {
        let remaining = end - cursor;
        // Largest level allowed by the alignment of `cursor` and by the remaining length.
        let align = cursor.trailing_zeros(); // 64 for cursor == 0
        let fit = u64::BITS - 1 - remaining.leading_zeros();
        let level = align.min(fit); // <= fit < 64
        nodes.push(NodeId::new(level as u8, cursor >> level));
        cursor += 1u64 << level;
    }
    nodes
}

/// The RFC 6962 root of the leaves `[start, end)`, folded from stored perfect subtrees.
///
/// The range must be a subtree of some RFC 6962 tree: non-empty, with `start` a multiple of the
/// smallest power of two `>= end - start` (true of `[0, n)` and of every range a proof needs).
///
/// # Errors
/// [`ProofError::InvalidRange`] for an empty or misaligned range, [`ProofError::MissingNode`] if
/// `lookup` returns `None` for a needed node.
pub fn hash_range(
    start: u64,
    end: u64,
    lookup: impl Fn(NodeId) -> Option<Hash>,
) -> Result<Hash, ProofError> {
    if start >= end {
        return Err(ProofError::InvalidRange { start, end });
    }
    let width = u128::from(end - start).next_power_of_two();
    if u128::from(start) % width != 0 {
        return Err(ProofError::InvalidRange { start, end });
    }
    let hashes = range_nodes(start, end)
        .into_iter()
        .map(|node| lookup(node).ok_or(ProofError::MissingNode { node }))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(fold_right(&hashes))
}

/// The root of the tree of the first `tree_size` leaves, from stored perfect subtrees
/// ([`range_nodes`]`(0, tree_size)` lists them); [`Hash::EMPTY_ROOT`] for size 0.
///
/// # Errors
/// [`ProofError::MissingNode`] if `lookup` returns `None` for a needed node.
pub fn root_at(
    tree_size: u64,
    lookup: impl Fn(NodeId) -> Option<Hash>,
) -> Result<Hash, ProofError> {
    if tree_size == 0 {
        return Ok(Hash::EMPTY_ROOT);
    }
    hash_range(0, tree_size, lookup)
}

fn add_step_nodes(nodes: &mut BTreeSet<NodeId>, step: Step) {
    match step.element {
        Element::Node(node) => {
            nodes.insert(node);
        }
        Element::Range { start, end } => nodes.extend(range_nodes(start, end)),
    }
}

fn step_hash(step: Step, lookup: &impl Fn(NodeId) -> Option<Hash>) -> Result<Hash, ProofError> {
    match step.element {
        Element::Node(node) => lookup(node).ok_or(ProofError::MissingNode { node }),
        Element::Range { start, end } => hash_range(start, end, lookup),
    }
}

/// The stored nodes [`inclusion_proof`] reads for leaf `leaf_index` in the tree of `tree_size`
/// leaves, so a store can fetch them in one query.
///
/// # Errors
/// [`ProofError::IndexOutOfRange`] if `leaf_index >= tree_size`.
pub fn inclusion_proof_nodes(
    leaf_index: u64,
    tree_size: u64,
) -> Result<BTreeSet<NodeId>, ProofError> {
    let mut nodes = BTreeSet::new();
    for step in inclusion_steps(leaf_index, tree_size)? {
        add_step_nodes(&mut nodes, step);
    }
    Ok(nodes)
}

/// The RFC 6962 inclusion proof (audit path) of leaf `leaf_index` in the tree of `tree_size`
/// leaves, leaf upwards, built from stored nodes.
///
/// # Errors
/// [`ProofError::IndexOutOfRange`] if `leaf_index >= tree_size`, [`ProofError::MissingNode`] if
/// `lookup` returns `None` for a node listed by [`inclusion_proof_nodes`].
pub fn inclusion_proof(
    leaf_index: u64,
    tree_size: u64,
    lookup: impl Fn(NodeId) -> Option<Hash>,
) -> Result<Vec<Hash>, ProofError> {
    inclusion_steps(leaf_index, tree_size)?
        .map(|step| step_hash(step, &lookup))
        .collect()
}

/// The stored nodes [`consistency_proof`] reads to prove that the tree of `size2` leaves extends
/// the tree of `size1` leaves. Empty when the sizes are equal.
///
/// # Errors
/// [`ProofError::SizesOutOfOrder`] if `size1 > size2`, [`ProofError::EmptyTreeConsistency`] if
/// `size1 == 0`.
pub fn consistency_proof_nodes(size1: u64, size2: u64) -> Result<BTreeSet<NodeId>, ProofError> {
    let mut nodes = BTreeSet::new();
    if let Some(shape) = consistency_shape(size1, size2)? {
        if !shape.start_is_root1 {
            nodes.insert(shape.start);
        }
        for step in shape.steps(size2) {
            add_step_nodes(&mut nodes, step);
        }
    }
    Ok(nodes)
}

/// The RFC 6962 consistency proof between the trees of `size1` and `size2` leaves, built from
/// stored nodes. Empty when the sizes are equal.
///
/// # Errors
/// [`ProofError::SizesOutOfOrder`] if `size1 > size2`, [`ProofError::EmptyTreeConsistency`] if
/// `size1 == 0` (every tree extends the empty tree; there is nothing to prove), and
/// [`ProofError::MissingNode`] if `lookup` returns `None` for a node listed by
/// [`consistency_proof_nodes`].
pub fn consistency_proof(
    size1: u64,
    size2: u64,
    lookup: impl Fn(NodeId) -> Option<Hash>,
) -> Result<Vec<Hash>, ProofError> {
    let Some(shape) = consistency_shape(size1, size2)? else {
        return Ok(Vec::new());
    };
    let mut proof = Vec::new();
    if !shape.start_is_root1 {
        proof.push(lookup(shape.start).ok_or(ProofError::MissingNode { node: shape.start })?);
    }
    for step in shape.steps(size2) {
        proof.push(step_hash(step, &lookup)?);
    }
    Ok(proof)
}

fn to_hash(bytes: &[u8], what: &'static str) -> Result<Hash, ProofError> {
    Hash::from_slice(bytes).map_err(|_| ProofError::HashLength {
        what,
        len: bytes.len(),
    })
}

/// Checks that `leaf_hash` is the leaf at `leaf_index` of the tree of `tree_size` leaves whose
/// root is `root` (RFC 9162 §2.1.3.2).
///
/// Hashes are taken as byte slices so that an auditor can pass whatever it decoded (a [`Hash`](struct@Hash),
/// a `Vec<u8>`, `[u8; 32]`); every hash that enters a computation must be 32 bytes.
///
/// The tree size only decides the *shape* of the path (which levels have a sibling, and on which
/// side). A proof checked against the right root but a wrong size of the same shape passes: the
/// size is bound to the root by the signed checkpoint, so take both from a verified
/// [`crate::ledger::Checkpoint`].
///
/// # Errors
/// * [`ProofError::IndexOutOfRange`] if `leaf_index >= tree_size`;
/// * [`ProofError::HashLength`] if the leaf hash or a proof element is not 32 bytes;
/// * [`ProofError::ProofLength`] if the proof does not have one element per path level;
/// * [`ProofError::RootMismatch`] if the path does not lead to `root`.
pub fn verify_inclusion<P: AsRef<[u8]>>(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: impl AsRef<[u8]>,
    proof: &[P],
    root: impl AsRef<[u8]>,
) -> Result<(), ProofError> {
    let steps = inclusion_steps(leaf_index, tree_size)?;
    let leaf = to_hash(leaf_hash.as_ref(), "leaf hash")?;
    let steps: Vec<Step> = steps.collect();
    if proof.len() != steps.len() {
        return Err(ProofError::ProofLength {
            expected: steps.len(),
            actual: proof.len(),
        });
    }
    let mut computed = leaf;
    for (step, element) in steps.iter().zip(proof) {
        let element = to_hash(element.as_ref(), "proof element")?;
        computed = if step.sibling_on_left {
            node_hash(&element, &computed)
        } else {
            node_hash(&computed, &element)
        };
    }
    if computed.as_ref() != root.as_ref() {
        return Err(ProofError::RootMismatch { tree_size });
    }
    Ok(())
}

/// Checks that the tree of `size2` leaves with root `root2` extends (is an append-only
/// continuation of) the tree of `size1` leaves with root `root1` (RFC 9162 §2.1.4.2).
///
/// For equal sizes the proof must be empty and the roots equal. A proof from the empty tree is
/// rejected as meaningless: every tree extends it, and a caller that holds no earlier checkpoint
/// has nothing to check.
///
/// # Errors
/// * [`ProofError::SizesOutOfOrder`] if `size1 > size2`;
/// * [`ProofError::EmptyTreeConsistency`] if `size1 == 0`;
/// * [`ProofError::HashLength`] if a proof element, or `root1` when it seeds the computation,
///   is not 32 bytes;
/// * [`ProofError::ProofLength`] if the proof has the wrong number of elements;
/// * [`ProofError::RootMismatch`] naming the tree whose root the proof does not reproduce.
pub fn verify_consistency<P: AsRef<[u8]>>(
    size1: u64,
    size2: u64,
    root1: impl AsRef<[u8]>,
    root2: impl AsRef<[u8]>,
    proof: &[P],
) -> Result<(), ProofError> {
    let (root1, root2) = (root1.as_ref(), root2.as_ref());
    let Some(shape) = consistency_shape(size1, size2)? else {
        if !proof.is_empty() {
            return Err(ProofError::ProofLength {
                expected: 0,
                actual: proof.len(),
            });
        }
        if root1 != root2 {
            return Err(ProofError::RootMismatch { tree_size: size2 });
        }
        return Ok(());
    };
    let steps: Vec<Step> = shape.steps(size2).collect();
    let seeded_from_proof = usize::from(!shape.start_is_root1);
    let expected = seeded_from_proof + steps.len();
    if proof.len() != expected {
        return Err(ProofError::ProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let (seed, elements) = match proof.split_first() {
        Some((first, rest)) if !shape.start_is_root1 => {
            (to_hash(first.as_ref(), "proof element")?, rest)
        }
        _ => (to_hash(root1, "first root")?, proof),
    };
    // `first` follows the path inside the first tree, `second` inside the second: they share
    // every left sibling, and only the second tree has the right siblings.
    let (mut first, mut second) = (seed, seed);
    for (step, element) in steps.iter().zip(elements) {
        let element = to_hash(element.as_ref(), "proof element")?;
        if step.sibling_on_left {
            first = node_hash(&element, &first);
            second = node_hash(&element, &second);
        } else {
            second = node_hash(&second, &element);
        }
    }
    if first.as_ref() != root1 {
        return Err(ProofError::RootMismatch { tree_size: size1 });
    }
    if second.as_ref() != root2 {
        return Err(ProofError::RootMismatch { tree_size: size2 });
    }
    Ok(())
}

/// Why a proof could not be built or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not in a tree of size {tree_size}")]
    IndexOutOfRange {
        /// The leaf index asked for.
        index: u64,
        /// The tree size.
        tree_size: u64,
    },
    /// The first tree of a consistency proof is larger than the second.
    #[error("tree size {size1} cannot precede tree size {size2}")]
    SizesOutOfOrder {
        /// The earlier size.
        size1: u64,
        /// The later size.
        size2: u64,
    },
    /// A consistency proof from the empty tree was asked for or offered.
    #[error("a consistency proof from the empty tree is meaningless")]
    EmptyTreeConsistency,
    /// A range is empty or is not a subtree of an RFC 6962 tree.
    #[error("leaf range [{start}, {end}) is not a subtree range")]
    InvalidRange {
        /// First leaf.
        start: u64,
        /// One past the last leaf.
        end: u64,
    },
    /// A hash that enters the computation is not 32 bytes long.
    #[error("the {what} must be 32 bytes, got {len}")]
    HashLength {
        /// Which hash: `"leaf hash"`, `"proof element"` or `"first root"`.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The proof has the wrong number of elements for the sizes and index.
    #[error("the proof has {actual} elements, expected {expected}")]
    ProofLength {
        /// Elements the shape of the tree requires.
        expected: usize,
        /// Elements given.
        actual: usize,
    },
    /// The proof does not lead to the given root.
    #[error("the proof does not match the root of the tree of size {tree_size}")]
    RootMismatch {
        /// The size of the tree whose root did not match.
        tree_size: u64,
    },
    /// A node the proof needs is not in the store.
    #[error("node {node} is missing from the store")]
    MissingNode {
        /// The missing node (level, index).
        node: NodeId,
    },
}

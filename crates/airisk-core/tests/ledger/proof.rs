//! Proof planning, generation from stored nodes, and verification, including property tests
//! against the literal RFC 6962 definitions in `reference`.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use airisk_core::ledger::{
    Frontier, Hash, NodeId, ProofError, consistency_proof, consistency_proof_nodes, hash_range,
    inclusion_proof, inclusion_proof_nodes, range_nodes, root_at, verify_consistency,
    verify_inclusion,
};
use proptest::prelude::*;

use crate::reference::{self, consistency_shape, path_shape};

fn store(leaf_hashes: &[Hash]) -> HashMap<NodeId, Hash> {
    let mut frontier = Frontier::new();
    let mut nodes = HashMap::new();
    for leaf in leaf_hashes {
        nodes.extend(frontier.append(*leaf).unwrap());
    }
    nodes
}

fn n(level: u8, index: u64) -> NodeId {
    NodeId::new(level, index)
}

#[test]
fn range_nodes_is_the_compact_range_of_the_interval() {
    assert_eq!(range_nodes(0, 13), vec![n(3, 0), n(2, 2), n(0, 12)]);
    assert_eq!(range_nodes(8, 13), vec![n(2, 2), n(0, 12)]);
    assert_eq!(
        range_nodes(3, 13),
        vec![n(0, 3), n(2, 1), n(2, 2), n(0, 12)]
    );
    assert_eq!(range_nodes(0, 1 << 40), vec![n(40, 0)]);
    assert_eq!(range_nodes(0, u64::MAX).len(), 64);
    assert!(range_nodes(5, 5).is_empty());
    assert!(range_nodes(6, 5).is_empty());
}

#[test]
fn hash_range_accepts_only_subtree_ranges() {
    let leaves = reference::leaves(13);
    let nodes = store(&leaves);
    let lookup = |id: NodeId| nodes.get(&id).copied();
    assert_eq!(
        hash_range(8, 13, lookup).unwrap(),
        reference::mth(&leaves[8..13])
    );
    assert_eq!(hash_range(12, 13, lookup).unwrap(), leaves[12]);
    assert_eq!(hash_range(0, 13, lookup).unwrap(), reference::mth(&leaves));
    for (start, end) in [(3, 13), (4, 9), (5, 5), (6, 5)] {
        assert_eq!(
            hash_range(start, end, lookup),
            Err(ProofError::InvalidRange { start, end })
        );
    }
}

#[test]
fn a_missing_node_is_a_typed_error() {
    let nodes = store(&reference::leaves(8));
    let gone = n(1, 1);
    let lookup = |id: NodeId| (id != gone).then(|| nodes.get(&id).copied()).flatten();
    assert_eq!(
        inclusion_proof(0, 8, lookup),
        Err(ProofError::MissingNode { node: gone })
    );
    assert_eq!(
        root_at(7, lookup),
        Ok(root_at(7, |id| nodes.get(&id).copied()).unwrap())
    );
    assert_eq!(
        root_at(8, |_| None),
        Err(ProofError::MissingNode { node: n(3, 0) })
    );
}

#[test]
fn root_at_zero_is_the_empty_root() {
    assert_eq!(root_at(0, |_| None), Ok(Hash::EMPTY_ROOT));
}

#[test]
fn invalid_parameters_are_rejected_when_planning() {
    assert_eq!(
        inclusion_proof_nodes(5, 5),
        Err(ProofError::IndexOutOfRange {
            index: 5,
            tree_size: 5
        })
    );
    assert_eq!(
        inclusion_proof_nodes(0, 0).unwrap_err(),
        ProofError::IndexOutOfRange {
            index: 0,
            tree_size: 0
        }
    );
    assert_eq!(
        consistency_proof_nodes(6, 5),
        Err(ProofError::SizesOutOfOrder { size1: 6, size2: 5 })
    );
    assert_eq!(
        consistency_proof_nodes(0, 5),
        Err(ProofError::EmptyTreeConsistency)
    );
    assert_eq!(consistency_proof_nodes(5, 5), Ok(BTreeSet::new()));
    assert_eq!(consistency_proof(5, 5, |_| None), Ok(Vec::new()));
}

#[test]
fn planning_works_near_the_top_of_the_u64_range() {
    let size = u64::MAX;
    let nodes = inclusion_proof_nodes(size - 1, size).unwrap();
    assert!(
        nodes
            .iter()
            .all(|id| id.leaf_range().is_some_and(|r| r.end <= size))
    );
    let nodes = consistency_proof_nodes(1 << 63, size).unwrap();
    assert!(
        nodes
            .iter()
            .all(|id| id.leaf_range().is_some_and(|r| r.end <= size))
    );
}

#[test]
fn verifying_rejects_hashes_of_the_wrong_length() {
    let leaves = reference::leaves(2);
    let root = reference::mth(&leaves);
    let short = vec![0u8; 31];
    assert!(matches!(
        verify_inclusion(0, 2, &short, &[leaves[1]], root),
        Err(ProofError::HashLength {
            what: "leaf hash",
            len: 31
        })
    ));
    assert!(matches!(
        verify_inclusion(0, 2, leaves[0], std::slice::from_ref(&short), root),
        Err(ProofError::HashLength {
            what: "proof element",
            len: 31
        })
    ));
    assert_eq!(
        verify_inclusion(0, 2, leaves[0], &[leaves[1]], root),
        Ok(())
    );
}

/// RFC 9162 checks bind the tree size only through the path shape; the signed checkpoint binds
/// the rest. This documents the (expected) consequence.
#[test]
fn a_wrong_size_with_the_same_path_shape_is_not_detected_by_the_proof_alone() {
    let leaves = reference::leaves(6);
    let nodes = store(&leaves);
    let lookup = |id: NodeId| nodes.get(&id).copied();
    let root5 = root_at(5, lookup).unwrap();
    let proof = inclusion_proof(0, 5, lookup).unwrap();
    assert_eq!(path_shape(0, 5), path_shape(0, 6));
    assert_eq!(verify_inclusion(0, 6, leaves[0], &proof, root5), Ok(()));
    assert_ne!(path_shape(0, 5), path_shape(0, 4));
    assert!(verify_inclusion(0, 4, leaves[0], &proof, root5).is_err());
}

/// The set a store fetches in one query is exactly what generation then reads, and every node
/// lies inside the requested tree size (a store of a bigger tree holds it).
fn assert_plan_is_exact(
    planned: &BTreeSet<NodeId>,
    tree_size: u64,
    nodes: &HashMap<NodeId, Hash>,
    generate: impl FnOnce(&dyn Fn(NodeId) -> Option<Hash>) -> Vec<Hash>,
) -> Vec<Hash> {
    let read = RefCell::new(BTreeSet::new());
    let lookup = |id: NodeId| {
        read.borrow_mut().insert(id);
        nodes.get(&id).copied()
    };
    let proof = generate(&lookup);
    assert_eq!(&*read.borrow(), planned);
    for id in planned {
        let range = id.leaf_range().unwrap();
        assert!(
            range.end <= tree_size,
            "node {id} reaches beyond tree size {tree_size}"
        );
    }
    proof
}

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut bytes = hash.to_bytes();
    bytes[bit / 8 % 32] ^= 1 << (bit % 8);
    Hash::from_bytes(bytes)
}

/// Candidate wrong values for a size or an index.
fn mutations(value: u64, other: u64) -> Vec<u64> {
    let mut out = vec![
        value.wrapping_add(1),
        value.wrapping_sub(1),
        value ^ 2,
        value.wrapping_mul(2),
        value / 2,
        other,
    ];
    out.retain(|&v| v != value);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn generated_inclusion_proofs_verify_and_every_mutation_fails(
        tree_size in 1u64..3000,
        index_seed in any::<u64>(),
        extra in 0u64..64,
        other in 0u64..4000,
        bit in 0usize..256,
    ) {
        let index = index_seed % tree_size;
        let leaves = reference::leaves((tree_size + extra) as usize);
        let nodes = store(&leaves);
        let lookup = |id: NodeId| nodes.get(&id).copied();
        let root = root_at(tree_size, lookup).unwrap();
        prop_assert_eq!(root, reference::mth(&leaves[..tree_size as usize]));

        let planned = inclusion_proof_nodes(index, tree_size).unwrap();
        let proof = assert_plan_is_exact(&planned, tree_size, &nodes, |lookup| {
            inclusion_proof(index, tree_size, lookup).unwrap()
        });
        prop_assert_eq!(&proof, &reference::path(index as usize, &leaves[..tree_size as usize]));
        let leaf = leaves[index as usize];
        prop_assert_eq!(verify_inclusion(index, tree_size, leaf, &proof, root), Ok(()));

        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i] = flip(&bad[i], bit);
            prop_assert!(verify_inclusion(index, tree_size, leaf, &bad, root).is_err(), "element {}", i);
        }
        prop_assert!(verify_inclusion(index, tree_size, flip(&leaf, bit), &proof, root).is_err());
        prop_assert!(verify_inclusion(index, tree_size, leaf, &proof, flip(&root, bit)).is_err());
        let mut longer = proof.clone();
        longer.push(root);
        prop_assert!(verify_inclusion(index, tree_size, leaf, &longer, root).is_err());
        if !proof.is_empty() {
            prop_assert!(verify_inclusion(index, tree_size, leaf, &proof[1..], root).is_err());
        }

        let shape = path_shape(index, tree_size);
        for wrong in mutations(index, other) {
            let accepted = verify_inclusion(wrong, tree_size, leaf, &proof, root).is_ok();
            let same_shape = wrong < tree_size && path_shape(wrong, tree_size) == shape;
            prop_assert_eq!(accepted, same_shape, "index {} -> {}", index, wrong);
            prop_assert!(!accepted, "a wrong index was accepted");
        }
        for wrong in mutations(tree_size, other) {
            let accepted = verify_inclusion(index, wrong, leaf, &proof, root).is_ok();
            // Accepted exactly when the wrong size has the same path shape (see the test above).
            let same_shape = index < wrong && path_shape(index, wrong) == shape;
            prop_assert_eq!(accepted, same_shape, "size {} -> {}", tree_size, wrong);
        }
    }

    #[test]
    fn generated_consistency_proofs_verify_and_every_mutation_fails(
        size2 in 1u64..3000,
        size1_seed in any::<u64>(),
        extra in 0u64..64,
        other in 0u64..4000,
        bit in 0usize..256,
    ) {
        let size1 = 1 + size1_seed % size2;
        let leaves = reference::leaves((size2 + extra) as usize);
        let nodes = store(&leaves);
        let lookup = |id: NodeId| nodes.get(&id).copied();
        let root1 = root_at(size1, lookup).unwrap();
        let root2 = root_at(size2, lookup).unwrap();

        let planned = consistency_proof_nodes(size1, size2).unwrap();
        let proof = assert_plan_is_exact(&planned, size2, &nodes, |lookup| {
            consistency_proof(size1, size2, lookup).unwrap()
        });
        prop_assert_eq!(&proof, &reference::consistency(size1 as usize, &leaves[..size2 as usize]));
        prop_assert_eq!(verify_consistency(size1, size2, root1, root2, &proof), Ok(()));

        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i] = flip(&bad[i], bit);
            prop_assert!(verify_consistency(size1, size2, root1, root2, &bad).is_err(), "element {}", i);
        }
        prop_assert!(verify_consistency(size1, size2, flip(&root1, bit), root2, &proof).is_err());
        prop_assert!(verify_consistency(size1, size2, root1, flip(&root2, bit), &proof).is_err());
        let mut longer = proof.clone();
        longer.push(root2);
        prop_assert!(verify_consistency(size1, size2, root1, root2, &longer).is_err());
        if !proof.is_empty() {
            prop_assert!(verify_consistency(size1, size2, root1, root2, &proof[1..]).is_err());
        }

        let shape = consistency_shape(size1, size2);
        let valid = |s1: u64, s2: u64| 0 < s1 && s1 <= s2;
        for wrong in mutations(size1, other) {
            let accepted = verify_consistency(wrong, size2, root1, root2, &proof).is_ok();
            let same_shape = valid(wrong, size2) && consistency_shape(wrong, size2) == shape;
            prop_assert_eq!(accepted, same_shape, "size1 {} -> {}", size1, wrong);
        }
        for wrong in mutations(size2, other) {
            let accepted = verify_consistency(size1, wrong, root1, root2, &proof).is_ok();
            let same_shape = valid(size1, wrong) && consistency_shape(size1, wrong) == shape;
            prop_assert_eq!(accepted, same_shape, "size2 {} -> {}", size2, wrong);
        }
    }
}

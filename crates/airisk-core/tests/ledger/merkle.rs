//! Hashing, node ids and the frontier.

use std::collections::BTreeSet;

use airisk_core::ledger::{
    Frontier, Hash, MerkleError, NodeId, empty_root, leaf_hash, node_hash, root_from_leaf_hashes,
};
use ring::digest;

use crate::reference;

#[test]
fn hashes_follow_rfc_6962_domain_separation() {
    let sha =
        |bytes: &[u8]| Hash::from_slice(digest::digest(&digest::SHA256, bytes).as_ref()).unwrap();
    assert_eq!(empty_root(), sha(b""));
    assert_eq!(
        Hash::EMPTY_ROOT.to_hex(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(leaf_hash(b"abc"), sha(b"\x00abc"));
    let (l, r) = (leaf_hash(b"l"), leaf_hash(b"r"));
    let mut joined = vec![1u8];
    joined.extend_from_slice(l.as_bytes());
    joined.extend_from_slice(r.as_bytes());
    assert_eq!(node_hash(&l, &r), sha(&joined));
}

#[test]
fn hash_hex_and_base64_round_trip_and_reject_garbage() {
    let h = leaf_hash(b"x");
    assert_eq!(Hash::from_hex(&h.to_hex()), Ok(h));
    assert_eq!(Hash::from_hex(&h.to_hex().to_uppercase()), Ok(h));
    assert_eq!(h.to_string().parse::<Hash>(), Ok(h));
    assert_eq!(Hash::from_base64(&h.to_base64()), Ok(h));
    assert_eq!(Hash::from_hex("00"), Err(MerkleError::InvalidHex));
    assert_eq!(
        Hash::from_hex(&"g".repeat(64)),
        Err(MerkleError::InvalidHex)
    );
    assert_eq!(
        Hash::from_base64("AAAA"),
        Err(MerkleError::HashLength { len: 3 })
    );
    assert_eq!(
        Hash::from_base64("not base64!"),
        Err(MerkleError::InvalidBase64)
    );
    // Unpadded base64 is not the checkpoint encoding.
    let unpadded = h.to_base64().trim_end_matches('=').to_owned();
    assert_eq!(
        Hash::from_base64(&unpadded),
        Err(MerkleError::InvalidBase64)
    );
    assert_eq!(
        Hash::from_slice(&[0; 33]),
        Err(MerkleError::HashLength { len: 33 })
    );
    assert_eq!(format!("{h:?}"), format!("Hash({})", h.to_hex()));
}

#[test]
fn node_ids_cover_aligned_leaf_ranges() {
    let node = NodeId::new(3, 2);
    assert_eq!(node.leaf_range(), Some(16..24));
    assert_eq!(node.parent(), NodeId::new(4, 1));
    assert_eq!(node.sibling(), NodeId::new(3, 3));
    assert_eq!(
        node.children(),
        Some((NodeId::new(2, 4), NodeId::new(2, 5)))
    );
    assert_eq!(NodeId::leaf(7).children(), None);
    assert_eq!(NodeId::new(63, 0).leaf_range(), Some(0..1 << 63));
    assert_eq!(NodeId::new(63, 1).leaf_range(), None);
    assert_eq!(NodeId::leaf(u64::MAX).leaf_range(), None);
}

#[test]
fn append_hands_out_every_perfect_node_exactly_once() {
    let leaves = reference::leaves(1000);
    let mut frontier = Frontier::new();
    let mut seen = BTreeSet::new();
    for (i, leaf) in leaves.iter().enumerate() {
        let completed = frontier.append(*leaf).unwrap();
        assert_eq!(completed[0], (NodeId::leaf(i as u64), *leaf));
        assert_eq!(completed.len() as u32, (i as u64).trailing_ones() + 1);
        for (id, hash) in completed {
            let range = id.leaf_range().unwrap();
            assert_eq!(
                hash,
                reference::mth(&leaves[range.start as usize..range.end as usize]),
                "{id}"
            );
            assert!(seen.insert(id), "{id} handed out twice");
        }
    }
    // All perfect subtrees of 1000 leaves: sum over levels of floor(1000 / 2^level).
    let expected: usize = (0..10).map(|level| 1000 >> level).sum();
    assert_eq!(seen.len(), expected);
    assert_eq!(frontier.root(), root_from_leaf_hashes(&leaves));
}

#[test]
fn frontier_nodes_are_the_subtrees_of_the_set_bits_of_the_size() {
    let leaves = reference::leaves(13);
    let mut frontier = Frontier::new();
    for leaf in &leaves {
        frontier.append(*leaf).unwrap();
    }
    let ids: Vec<NodeId> = frontier.nodes().map(|(id, _)| id).collect();
    assert_eq!(
        ids,
        vec![NodeId::new(3, 0), NodeId::new(2, 2), NodeId::new(0, 12)]
    );
    for (id, hash) in frontier.nodes() {
        let range = id.leaf_range().unwrap();
        assert_eq!(
            hash,
            reference::mth(&leaves[range.start as usize..range.end as usize])
        );
    }
}

#[test]
fn frontier_survives_serialisation_and_keeps_appending() {
    let leaves = reference::leaves(77);
    let mut frontier = Frontier::new();
    for leaf in &leaves[..50] {
        frontier.append(*leaf).unwrap();
    }
    let bytes = frontier.to_bytes();
    assert_eq!(bytes.len(), 8 + 32 * 50u64.count_ones() as usize);
    let mut restored = Frontier::from_bytes(&bytes).unwrap();
    assert_eq!(restored, frontier);
    let mut rebuilt = Frontier::from_parts(frontier.size(), frontier.hashes().to_vec()).unwrap();
    for leaf in &leaves[50..] {
        restored.append(*leaf).unwrap();
        rebuilt.append(*leaf).unwrap();
    }
    assert_eq!(restored.root(), root_from_leaf_hashes(&leaves));
    assert_eq!(rebuilt, restored);
    assert_eq!(
        Frontier::from_bytes(&Frontier::new().to_bytes()),
        Ok(Frontier::new())
    );
}

#[test]
fn malformed_frontiers_are_rejected() {
    assert_eq!(
        Frontier::from_parts(3, vec![Hash::EMPTY_ROOT]),
        Err(MerkleError::FrontierLength {
            size: 3,
            expected: 2,
            actual: 1
        })
    );
    assert_eq!(
        Frontier::from_bytes(&[0; 7]),
        Err(MerkleError::FrontierEncoding { len: 7 })
    );
    assert_eq!(
        Frontier::from_bytes(&[0; 8 + 31]),
        Err(MerkleError::FrontierEncoding { len: 39 })
    );
    let mut one = 1u64.to_be_bytes().to_vec();
    assert_eq!(
        Frontier::from_bytes(&one),
        Err(MerkleError::FrontierLength {
            size: 1,
            expected: 1,
            actual: 0
        })
    );
    one.extend_from_slice(&[0; 32]);
    assert_eq!(Frontier::from_bytes(&one).map(|f| f.size()), Ok(1));
}

#[test]
fn a_full_tree_refuses_more_leaves() {
    let full = Frontier::from_parts(u64::MAX, vec![Hash::EMPTY_ROOT; 64]).unwrap();
    let mut full = full;
    assert_eq!(full.append(Hash::EMPTY_ROOT), Err(MerkleError::TreeFull));
}

#[test]
fn a_hash_converts_to_and_from_its_32_bytes_every_way() {
    let bytes: [u8; 32] = std::array::from_fn(|i| u8::try_from(i * 7 + 1).unwrap());
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hash = Hash::from(bytes);
    assert_eq!(hash.to_bytes(), bytes);
    assert_eq!(<[u8; 32]>::from(hash), bytes);
    assert_eq!(Hash::try_from(&bytes[..]).unwrap(), hash);
    assert_eq!(hash.to_hex(), hex);
    assert_eq!(Hash::from_hex(&hex.to_uppercase()).unwrap(), hash);
    for short_or_long in [&bytes[..31], &[bytes.as_slice(), &[0]].concat()[..]] {
        assert!(Hash::try_from(short_or_long).is_err());
    }
}

#[test]
fn a_node_knows_its_sibling_from_either_side_and_prints_as_level_and_index() {
    for (node, sibling) in [
        ((0, 4), (0, 5)),
        ((0, 5), (0, 4)),
        ((3, 0), (3, 1)),
        ((3, 7), (3, 6)),
    ] {
        assert_eq!(
            NodeId::new(node.0, node.1).sibling(),
            NodeId::new(sibling.0, sibling.1)
        );
    }
    assert_eq!(NodeId::new(2, 9).to_string(), "(2, 9)");
    assert_eq!(NodeId::leaf(0).to_string(), "(0, 0)");
}

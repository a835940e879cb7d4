//! RFC 6962 Merkle tree hashing, node coordinates and the append-only [`Frontier`].
//!
//! * A leaf hash is `SHA-256(0x00 || leaf bytes)`, an interior node `SHA-256(0x01 || left || right)`,
//!   and the root of the empty tree `SHA-256("")` (RFC 6962 §2.1, RFC 9162 §2.1.1).
//! * A [`NodeId`] names a *perfect* subtree: `2^level` consecutive leaves starting at a multiple of
//!   `2^level`. Every interior node of an RFC 6962 tree that is not on its right edge is such a
//!   subtree, and so is every node a store needs to answer proofs for any earlier tree size.
//! * A [`Frontier`] is the right edge of the tree (a "compact range" over `[0, size)`): one hash per
//!   set bit of the size, so `O(log n)` hashes. Appending a leaf returns the nodes it completed, so a
//!   store can persist every perfect node (two per leaf, amortised) and keep only the frontier of
//!   its head.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::digest;

/// Domain-separation prefix of a leaf hash (RFC 6962 §2.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 6962 §2.1).
const NODE_PREFIX: u8 = 0x01;

/// A SHA-256 output: a leaf hash, a node hash or a tree root.
///
/// Displays (and parses with [`FromStr`]) as 64 lower-case hex digits; the checkpoint text uses
/// [`Hash::to_base64`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash([u8; 32]);

impl Hash {
    /// Length of a hash in bytes.
    pub const LEN: usize = 32;

    /// The root of the empty tree, `SHA-256("")`
    /// (`e3b0c442…b855`).
    pub const EMPTY_ROOT: Hash = Hash([
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9,
        0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52,
        0xb8, 0x55,
    ]);

    /// Wraps 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Hash(bytes)
    }

    /// Copies a slice that must be exactly 32 bytes long.
    ///
    /// # Errors
    /// [`MerkleError::HashLength`] if `bytes` is not 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, MerkleError> {
        <[u8; 32]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| MerkleError::HashLength { len: bytes.len() })
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 32 bytes, by value.
    pub const fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            push_hex_byte(&mut out, byte);
        }
        out
    }

    /// Parses 64 hex digits (either case).
    ///
    /// # Errors
    /// [`MerkleError::InvalidHex`] if `text` is not 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, MerkleError> {
        let digits = text.as_bytes();
        if digits.len() != 64 {
            return Err(MerkleError::InvalidHex);
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let (Some(&hi), Some(&lo)) = (pair.first(), pair.get(1)) else {
                return Err(MerkleError::InvalidHex);
            };
            *byte = (hex_value(hi)? << 4) | hex_value(lo)?;
        }
        Ok(Hash(bytes))
    }

    /// Standard, padded base64 (RFC 4648 §4), as in checkpoints and the RFC 6962 test vectors.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Parses standard, padded, canonical base64 of exactly 32 bytes.
    ///
    /// # Errors
    /// [`MerkleError::InvalidBase64`] if `text` is not canonical padded base64, or
    /// [`MerkleError::HashLength`] if it decodes to anything but 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, MerkleError> {
        let bytes = BASE64
            .decode(text)
            .map_err(|_| MerkleError::InvalidBase64)?;
        Hash::from_slice(&bytes)
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<[u8; 32]> for Hash {
    fn from(bytes: [u8; 32]) -> Self {
        Hash(bytes)
    }
}

impl From<Hash> for [u8; 32] {
    fn from(hash: Hash) -> Self {
        hash.0
    }
}

impl TryFrom<&[u8]> for Hash {
    type Error = MerkleError;
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Hash::from_slice(bytes)
    }
}

impl FromStr for Hash {
    type Err = MerkleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hash::from_hex(s)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

fn push_hex_byte(out: &mut String, byte: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for nibble in [byte >> 4, byte & 0x0f] {
        if let Some(&digit) = DIGITS.get(usize::from(nibble)) {
            out.push(char::from(digit));
        }
    }
}

fn hex_value(digit: u8) -> Result<u8, MerkleError> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(MerkleError::InvalidHex),
    }
}

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    let out = ctx.finish();
    // SHA-256 output is always exactly 32 bytes.
    let mut bytes = [0u8; 32];
    for (byte, out_byte) in bytes.iter_mut().zip(out.as_ref()) {
        *byte = *out_byte;
    }
    Hash(bytes)
}

/// The RFC 6962 leaf hash: `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    sha256(&[&[LEAF_PREFIX], leaf])
}

/// The RFC 6962 interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One buffer, hashed in one update: half of a verification's hashes are these 65 bytes.
    let mut input = [NODE_PREFIX; 65];
    let (l, r) = input[1..].split_at_mut(32);
    l.copy_from_slice(&left.0);
    r.copy_from_slice(&right.0);
    sha256(&[&input])
}

/// The RFC 6962 root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Hash::EMPTY_ROOT
}

/// The root of the tree over `leaf_hashes`, computed from scratch by the recursive definition of
/// RFC 6962 §2.1 (`MTH`). A reference for tests and auditors; stores use [`Frontier`].
pub fn root_from_leaf_hashes(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes {
        [] => Hash::EMPTY_ROOT,
        [single] => *single,
        _ => {
            // k = the largest power of two strictly smaller than n (n >= 2 here).
            let n = leaf_hashes.len();
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            let (left, right) = leaf_hashes.split_at(k);
            node_hash(&root_from_leaf_hashes(left), &root_from_leaf_hashes(right))
        }
    }
}

/// A perfect subtree: the `2^level` leaves `[index << level, (index + 1) << level)`.
///
/// Level 0 nodes are leaves (`index` is the leaf index); the node `(level, index)` has the children
/// `(level - 1, 2 * index)` and `(level - 1, 2 * index + 1)`. A store keys its node table by this pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves: the subtree holds `2^level` leaves.
    pub level: u8,
    /// Position among the nodes of this level, counting from 0 at the left.
    pub index: u64,
}

impl NodeId {
    /// The node `(level, index)`.
    pub const fn new(level: u8, index: u64) -> Self {
        NodeId { level, index }
    }

    /// The leaf node with the given leaf index.
    pub const fn leaf(index: u64) -> Self {
        NodeId { level: 0, index }
    }

    /// The parent node, one level up.
    pub const fn parent(self) -> Self {
        NodeId {
            level: self.level.saturating_add(1),
            index: self.index >> 1,
        }
    }

    /// The other child of this node's parent.
    pub const fn sibling(self) -> Self {
        NodeId {
            level: self.level,
            index: self.index ^ 1,
        }
    }

    /// The left and right children, or `None` for a leaf.
    pub fn children(self) -> Option<(NodeId, NodeId)> {
        let level = self.level.checked_sub(1)?;
        let left = self.index.checked_mul(2)?;
        Some((NodeId::new(level, left), NodeId::new(level, left | 1)))
    }

    /// The leaves this node covers, `[index << level, (index + 1) << level)`, or `None` if that
    /// range does not fit in `u64` (then no tree of a `u64` size contains the node).
    pub fn leaf_range(self) -> Option<std::ops::Range<u64>> {
        let (start, end) = self.span();
        Some(u64::try_from(start).ok()?..u64::try_from(end).ok()?)
    }

    /// `[start, end)` in `u128`, exact for every level below 64. A node of level 64 or more
    /// would hold at least `2^64` leaves, more than any tree of a `u64` size: it is placed
    /// beyond every leaf.
    pub(crate) fn span(self) -> (u128, u128) {
        if self.level >= 64 {
            return (u128::MAX, u128::MAX);
        }
        let shift = u32::from(self.level);
        let start = u128::from(self.index) << shift;
        let end = (u128::from(self.index) + 1) << shift;
        (start, end)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.level, self.index)
    }
}

/// The right edge of an append-only RFC 6962 tree: the roots of the perfect subtrees whose
/// concatenation is `[0, size)`, largest (leftmost) first — one per set bit of `size`.
///
/// ```
/// use airisk_core::ledger::{Frontier, leaf_hash, root_from_leaf_hashes};
///
/// let leaves: Vec<_> = (0u8..5).map(|i| leaf_hash(&[i])).collect();
/// let mut frontier = Frontier::new();
/// for leaf in &leaves {
///     frontier.append(*leaf)?;
/// }
/// assert_eq!(frontier.size(), 5);
/// assert_eq!(frontier.root(), root_from_leaf_hashes(&leaves));
/// # Ok::<(), airisk_core::ledger::MerkleError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    /// Subtree roots, largest first; `hashes.len() == size.count_ones()`.
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub const fn new() -> Self {
        Frontier {
            size: 0,
            hashes: Vec::new(),
        }
    }

    /// Rebuilds a frontier from a tree size and its subtree roots, largest first (as returned by
    /// [`Frontier::hashes`]).
    ///
    /// # Errors
    /// [`MerkleError::FrontierLength`] if there is not exactly one hash per set bit of `size`.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, MerkleError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(MerkleError::FrontierLength {
                size,
                expected,
                actual: hashes.len(),
            });
        }
        Ok(Frontier { size, hashes })
    }

    /// Number of leaves in the tree.
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// The subtree roots, largest (leftmost) first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The subtree roots with their node ids, largest (leftmost) first.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, Hash)> + '_ {
        frontier_node_ids(self.size).zip(self.hashes.iter().copied())
    }

    /// Appends a leaf hash and returns the nodes this completed: the leaf node itself, then every
    /// perfect subtree it closed, lowest first. A store that persists all of them holds every
    /// perfect node of the tree, which is all [`crate::ledger::inclusion_proof`],
    /// [`crate::ledger::consistency_proof`] and [`crate::ledger::root_at`] read.
    ///
    /// # Errors
    /// [`MerkleError::TreeFull`] if the tree already holds `u64::MAX` leaves.
    pub fn append(&mut self, leaf_hash: Hash) -> Result<Vec<(NodeId, Hash)>, MerkleError> {
        let old_size = self.size;
        let new_size = old_size.checked_add(1).ok_or(MerkleError::TreeFull)?;
        let merges = old_size.trailing_ones();
        let mut completed = Vec::with_capacity(merges as usize + 1);
        let mut node = NodeId::leaf(old_size);
        let mut hash = leaf_hash;
        completed.push((node, hash));
        for _ in 0..merges {
            // Invariant: a set low bit of `old_size` means a same-sized subtree to the left.
            let Some(left) = self.hashes.pop() else {
                return Err(MerkleError::FrontierLength {
                    size: old_size,
                    expected: old_size.count_ones() as usize,
                    actual: self.hashes.len(),
                });
            };
            hash = node_hash(&left, &hash);
            node = node.parent();
            completed.push((node, hash));
        }
        self.hashes.push(hash);
        self.size = new_size;
        Ok(completed)
    }

    /// The RFC 6962 root of the tree: the subtree roots folded from the right,
    /// `H(h0, H(h1, … H(hk-1, hk)))`; [`Hash::EMPTY_ROOT`] when empty.
    pub fn root(&self) -> Hash {
        fold_right(&self.hashes)
    }

    /// Serialises as `size` (8 bytes, big-endian) followed by the subtree roots, largest first.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + Hash::LEN * self.hashes.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        for hash in &self.hashes {
            out.extend_from_slice(&hash.0);
        }
        out
    }

    /// Parses the output of [`Frontier::to_bytes`].
    ///
    /// # Errors
    /// [`MerkleError::FrontierEncoding`] if the length is not `8 + 32 * k`, or
    /// [`MerkleError::FrontierLength`] if `k` is not the number of set bits of the size.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MerkleError> {
        let (size_bytes, rest) = bytes
            .split_first_chunk::<8>()
            .ok_or(MerkleError::FrontierEncoding { len: bytes.len() })?;
        let (hashes, remainder) = rest.as_chunks::<32>();
        if !remainder.is_empty() {
            return Err(MerkleError::FrontierEncoding { len: bytes.len() });
        }
        let hashes = hashes.iter().copied().map(Hash).collect();
        Frontier::from_parts(u64::from_be_bytes(*size_bytes), hashes)
    }
}

/// The ids of the frontier nodes of a tree of `size` leaves, largest first.
pub(crate) fn frontier_node_ids(size: u64) -> impl Iterator<Item = NodeId> {
    (0..u64::BITS).rev().filter_map(move |bit| {
        if size & (1u64 << bit) == 0 {
            return None;
        }
        // The subtree for this bit starts where the higher bits end.
        let level = u8::try_from(bit).ok()?;
        Some(NodeId::new(level, (size >> bit) - 1))
    })
}

/// Folds subtree roots (left to right, strictly decreasing sizes) into the root of their
/// concatenation.
pub(crate) fn fold_right(hashes: &[Hash]) -> Hash {
    let Some((last, rest)) = hashes.split_last() else {
        return Hash::EMPTY_ROOT;
    };
    rest.iter()
        .rev()
        .fold(*last, |right, left| node_hash(left, &right))
}

/// Why a hash or a frontier could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// A hash was given with a length other than 32 bytes.
    #[error("a hash must be 32 bytes, got {len}")]
    HashLength {
        /// The length given.
        len: usize,
    },
    /// A hex hash was not 64 hex digits.
    #[error("a hex hash must be 64 hex digits")]
    InvalidHex,
    /// A base64 hash was not canonical, padded, standard base64.
    #[error("a base64 hash must be canonical padded standard base64")]
    InvalidBase64,
    /// A frontier had the wrong number of hashes for its size.
    #[error("a frontier of size {size} has {expected} hashes, got {actual}")]
    FrontierLength {
        /// The tree size.
        size: u64,
        /// One hash per set bit of the size.
        expected: usize,
        /// The number of hashes given.
        actual: usize,
    },
    /// Serialised frontier bytes were not `8 + 32 * k` long.
    #[error("a serialised frontier is 8 + 32*k bytes, got {len}")]
    FrontierEncoding {
        /// The length given.
        len: usize,
    },
    /// The tree already holds `u64::MAX` leaves.
    #[error("the tree is full")]
    TreeFull,
}

//! RFC 6962 §2.1 transcribed literally (recursive `MTH`, `PATH`, `PROOF`/`SUBPROOF`) over a list
//! of leaf hashes: slow, obviously right, and independent of the node-based code under test.

use airisk_core::ledger::{Hash, leaf_hash, node_hash};

/// The largest power of two strictly smaller than `n` (`n >= 2`).
pub fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// `MTH(D[n])`.
pub fn mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => Hash::EMPTY_ROOT,
        1 => d[0],
        n => {
            let k = split_point(n);
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

/// `PATH(m, D[n])`, leaf upwards.
pub fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
    let n = d.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split_point(n);
    let (mut p, sibling) = if m < k {
        (path(m, &d[..k]), mth(&d[k..]))
    } else {
        (path(m - k, &d[k..]), mth(&d[..k]))
    };
    p.push(sibling);
    p
}

/// `PROOF(m, D[n])`.
pub fn consistency(m: usize, d: &[Hash]) -> Vec<Hash> {
    subproof(m, d, true)
}

fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { Vec::new() } else { vec![mth(d)] };
    }
    let k = split_point(n);
    let (mut p, sibling) = if m <= k {
        (subproof(m, &d[..k], b), mth(&d[k..]))
    } else {
        (subproof(m - k, &d[k..], false), mth(&d[..k]))
    };
    p.push(sibling);
    p
}

/// Which side a proof element is hashed on, seen from the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

/// The shape of `PATH(m, D[n])`: the side of each element, leaf upwards. A verifier's
/// computation depends on `(m, n)` only through this, so two parameter sets with the same shape
/// accept the same proofs.
pub fn path_shape(m: u64, n: u64) -> Vec<Side> {
    if n <= 1 {
        return Vec::new();
    }
    let k = split_point(n as usize) as u64;
    let mut shape = if m < k {
        path_shape(m, k)
    } else {
        path_shape(m - k, n - k)
    };
    shape.push(if m < k { Side::Right } else { Side::Left });
    shape
}

/// The shape of `PROOF(m, D[n])`: whether the proof starts with the subtree hash (`MTH(D[m])`
/// of the last recursion), then the side of each further element.
pub fn consistency_shape(m: u64, n: u64) -> (bool, Vec<Side>) {
    subproof_shape(m, n, true)
}

fn subproof_shape(m: u64, n: u64, b: bool) -> (bool, Vec<Side>) {
    if m == n {
        return (!b, Vec::new());
    }
    let k = split_point(n as usize) as u64;
    let ((seeded, mut shape), side) = if m <= k {
        (subproof_shape(m, k, b), Side::Right)
    } else {
        (subproof_shape(m - k, n - k, false), Side::Left)
    };
    shape.push(side);
    (seeded, shape)
}

/// Distinct leaf hashes for tests.
pub fn leaves(n: usize) -> Vec<Hash> {
    (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

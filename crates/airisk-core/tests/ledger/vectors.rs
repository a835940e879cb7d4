//! Every file of the shared RFC 6962 test vectors (`shared/testvectors/rfc6962`, see its README):
//! roots of the first n leaves, and the transparency-dev/merkle inclusion and consistency probes —
//! happy paths verify, every `wantErr: true` probe is rejected. Then proofs generated from stored
//! nodes are checked against the same data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use airisk_core::ledger::{
    Frontier, Hash, NodeId, consistency_proof, inclusion_proof, leaf_hash, root_at,
    root_from_leaf_hashes, verify_consistency, verify_inclusion,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use crate::reference;

/// Probe files present when this suite was written; fewer means a broken copy, and the suite
/// must not pass on less.
const MIN_INCLUSION_FILES: usize = 98;
const MIN_CONSISTENCY_FILES: usize = 98;
const MIN_HAPPY_PER_KIND: usize = 6;
const MIN_WANT_ERR_PER_KIND: usize = 92;

fn vector_dir() -> PathBuf {
    let dir = std::env::var_os("AIRISK_TESTVECTORS").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/testvectors/rfc6962"
            ))
        },
        |root| {
            // Accept either the rfc6962 folder itself or the testvectors folder above it.
            let root = PathBuf::from(root);
            if root.join("roots.json").is_file() {
                root
            } else {
                root.join("rfc6962")
            }
        },
    );
    assert!(
        dir.join("roots.json").is_file(),
        "RFC 6962 test vectors not found at {} (set AIRISK_TESTVECTORS); refusing to pass without them",
        dir.display()
    );
    dir
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A base64 field; `""` and `null` are empty.
fn bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::Null => Vec::new(),
        Value::String(s) => BASE64.decode(s).unwrap(),
        other => panic!("not base64: {other}"),
    }
}

fn proof_of(value: &Value) -> Vec<Vec<u8>> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().map(bytes).collect(),
        other => panic!("not a proof: {other}"),
    }
}

fn hex_list(value: &Value) -> Vec<Vec<u8>> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let h = h.as_str().unwrap();
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

struct Roots {
    leaves: Vec<Vec<u8>>,
    leaf_hashes: Vec<Hash>,
    roots: Vec<Hash>,
}

fn roots() -> Roots {
    let roots = read_json(&vector_dir().join("roots.json"));
    let to_hashes = |key: &str| {
        hex_list(&roots[key])
            .iter()
            .map(|b| Hash::from_slice(b).unwrap())
            .collect()
    };
    Roots {
        leaves: hex_list(&roots["leaves_hex"]),
        leaf_hashes: to_hashes("leaf_hashes_hex"),
        roots: to_hashes("roots_hex"),
    }
}

/// Builds the tree of `leaf_hashes` with a `Frontier`, keeping every node it hands out: the
/// store of this suite.
fn store(leaf_hashes: &[Hash]) -> HashMap<NodeId, Hash> {
    let mut frontier = Frontier::new();
    let mut nodes = HashMap::new();
    for leaf in leaf_hashes {
        nodes.extend(frontier.append(*leaf).unwrap());
    }
    nodes
}

#[test]
fn roots_json_every_root_of_the_first_n_leaves() {
    let r = roots();
    assert_eq!(r.leaves.len(), 8);
    assert_eq!(r.roots.len(), 9);
    for (leaf, expected) in r.leaves.iter().zip(&r.leaf_hashes) {
        assert_eq!(leaf_hash(leaf), *expected);
    }
    let mut frontier = Frontier::new();
    assert_eq!(frontier.root(), r.roots[0]);
    let nodes = store(&r.leaf_hashes);
    for n in 0..=8 {
        assert_eq!(
            root_from_leaf_hashes(&r.leaf_hashes[..n]),
            r.roots[n],
            "reference, n = {n}"
        );
        assert_eq!(
            root_at(n as u64, |id| nodes.get(&id).copied()).unwrap(),
            r.roots[n],
            "root_at({n})"
        );
        if n > 0 {
            frontier.append(r.leaf_hashes[n - 1]).unwrap();
            assert_eq!(frontier.root(), r.roots[n], "frontier, n = {n}");
        }
    }
}

struct Tally {
    happy: usize,
    want_err: usize,
}

fn run_probes(kind: &str, min_files: usize, check: impl Fn(&Value) -> Result<(), String>) -> Tally {
    let files = json_files(&vector_dir().join(kind));
    assert!(
        files.len() >= min_files,
        "{kind}: {} probe files, expected at least {min_files}",
        files.len()
    );
    let mut tally = Tally {
        happy: 0,
        want_err: 0,
    };
    let mut failures = Vec::new();
    for file in &files {
        let probe = read_json(file);
        let want_err = probe["wantErr"].as_bool().unwrap();
        let result = check(&probe);
        match (want_err, result) {
            (false, Ok(())) => tally.happy += 1,
            (true, Err(_)) => tally.want_err += 1,
            (false, Err(e)) => {
                failures.push(format!("{}: rejected a valid proof: {e}", file.display()))
            }
            (true, Ok(())) => {
                failures.push(format!("{}: accepted an invalid proof", file.display()))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{kind} probes failed:\n{}",
        failures.join("\n")
    );
    assert!(
        tally.happy >= MIN_HAPPY_PER_KIND,
        "{kind}: only {} happy paths",
        tally.happy
    );
    assert!(
        tally.want_err >= MIN_WANT_ERR_PER_KIND,
        "{kind}: only {} wantErr probes",
        tally.want_err
    );
    tally
}

#[test]
fn every_inclusion_probe_file() {
    let tally = run_probes("inclusion", MIN_INCLUSION_FILES, |p| {
        verify_inclusion(
            p["leafIdx"].as_u64().unwrap(),
            p["treeSize"].as_u64().unwrap(),
            bytes(&p["leafHash"]),
            &proof_of(&p["proof"]),
            bytes(&p["root"]),
        )
        .map_err(|e| e.to_string())
    });
    println!(
        "inclusion: {} happy, {} wantErr",
        tally.happy, tally.want_err
    );
}

#[test]
fn every_consistency_probe_file() {
    let tally = run_probes("consistency", MIN_CONSISTENCY_FILES, |p| {
        verify_consistency(
            p["size1"].as_u64().unwrap(),
            p["size2"].as_u64().unwrap(),
            bytes(&p["root1"]),
            bytes(&p["root2"]),
            &proof_of(&p["proof"]),
        )
        .map_err(|e| e.to_string())
    });
    println!(
        "consistency: {} happy, {} wantErr",
        tally.happy, tally.want_err
    );
}

#[test]
fn generated_proofs_for_every_index_and_size_up_to_8_verify_and_match_the_rfc() {
    let r = roots();
    let nodes = store(&r.leaf_hashes);
    let lookup = |id: NodeId| nodes.get(&id).copied();
    for size in 1..=8u64 {
        let root = r.roots[size as usize];
        let leaves = &r.leaf_hashes[..size as usize];
        for index in 0..size {
            let proof = inclusion_proof(index, size, lookup).unwrap();
            assert_eq!(
                proof,
                reference::path(index as usize, leaves),
                "inclusion ({index}, {size})"
            );
            verify_inclusion(index, size, r.leaf_hashes[index as usize], &proof, root).unwrap();
        }
        for size1 in 1..=size {
            let proof = consistency_proof(size1, size, lookup).unwrap();
            assert_eq!(
                proof,
                reference::consistency(size1 as usize, leaves),
                "consistency ({size1}, {size})"
            );
            verify_consistency(size1, size, r.roots[size1 as usize], root, &proof).unwrap();
        }
    }
}

#[test]
fn generated_proofs_equal_the_happy_path_files() {
    let r = roots();
    let nodes = store(&r.leaf_hashes);
    let lookup = |id: NodeId| nodes.get(&id).copied();
    let dir = vector_dir();
    let mut compared = 0;
    for file in json_files(&dir.join("inclusion")) {
        let p = read_json(&file);
        let size = p["treeSize"].as_u64().unwrap();
        if p["wantErr"].as_bool().unwrap()
            || size > 8
            || bytes(&p["root"]) != r.roots[size as usize].as_ref()
        {
            continue; // the single-entry probes use their own leaf
        }
        let proof = inclusion_proof(p["leafIdx"].as_u64().unwrap(), size, lookup).unwrap();
        let expected: Vec<Hash> = proof_of(&p["proof"])
            .iter()
            .map(|b| Hash::from_slice(b).unwrap())
            .collect();
        assert_eq!(proof, expected, "{}", file.display());
        compared += 1;
    }
    for file in json_files(&dir.join("consistency")) {
        let p = read_json(&file);
        let (size1, size2) = (p["size1"].as_u64().unwrap(), p["size2"].as_u64().unwrap());
        if p["wantErr"].as_bool().unwrap()
            || size2 > 8
            || bytes(&p["root2"]) != r.roots[size2 as usize].as_ref()
        {
            continue; // the "additional" probes use placeholder roots
        }
        let proof = consistency_proof(size1, size2, lookup).unwrap();
        let expected: Vec<Hash> = proof_of(&p["proof"])
            .iter()
            .map(|b| Hash::from_slice(b).unwrap())
            .collect();
        assert_eq!(proof, expected, "{}", file.display());
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} happy-path files compared");
}

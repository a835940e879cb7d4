//! Ledger benchmarks: `cargo bench -p airisk-core --bench ledger`.
//!
//! Leaf hashing of ~400-byte canonical JSON records, frontier appends, and proof generation and
//! verification at 1,000,000 leaves from an in-memory node table.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // benches: setup failures must abort

use std::collections::HashMap;
use std::hint::black_box;

use airisk_core::ledger::{
    Frontier, Hash, NodeId, consistency_proof, inclusion_proof, inclusion_proof_nodes, leaf_hash,
    root_at, to_canonical_json, verify_consistency, verify_inclusion,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const TREE_SIZE: u64 = 1_000_000;

/// A canonical audit-record-like leaf of about 400 bytes.
fn record(seq: u64) -> Vec<u8> {
    let value = serde_json::json!({
        "seq": seq,
        "id": format!("01890a5d-ac96-774b-bcce-{seq:012x}"),
        "tenant_id": "acme-bank",
        "actor": "ana.approver@acme-bank.example",
        "action": "model.approve",
        "resource": {"kind": "model", "id": "credit-risk-pd", "version": "2.3.1"},
        "outcome": "allowed",
        "occurred_at": "2026-11-27T04:33:30.123456Z",
        "correlation_id": "01890a5d-ac96-774b-bcce-5a1f3c2e9d7b",
        "details": {"request_id": "01890a5d-ac96-774b-bcce-5a1f3c2e9d7c", "quorum": 2, "reason": "validated on Q3 holdout set"}
    });
    to_canonical_json(&value).unwrap().into_bytes()
}

fn build(size: u64) -> (Frontier, HashMap<NodeId, Hash>) {
    let mut frontier = Frontier::new();
    let mut nodes = HashMap::with_capacity(2 * size as usize);
    for i in 0..size {
        nodes.extend(frontier.append(leaf_hash(&i.to_be_bytes())).unwrap());
    }
    (frontier, nodes)
}

fn hashing(c: &mut Criterion) {
    let records: Vec<Vec<u8>> = (0..1024).map(record).collect();
    let mean = records.iter().map(Vec::len).sum::<usize>() / records.len();
    let mut group = c.benchmark_group(format!("leaf_hash/{mean}-byte records"));
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("1024 records", |b| {
        b.iter(|| {
            for r in &records {
                black_box(leaf_hash(black_box(r)));
            }
        });
    });
    group.finish();

    let value: serde_json::Value = serde_json::from_slice(&records[0]).unwrap();
    c.bench_function("to_canonical_json/one record", |b| {
        b.iter(|| black_box(to_canonical_json(black_box(&value)).unwrap()));
    });
}

fn appending(c: &mut Criterion) {
    let leaves: Vec<Hash> = (0..1024u64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let mut group = c.benchmark_group("frontier");
    group.throughput(Throughput::Elements(leaves.len() as u64));
    group.bench_function("append 1024 leaves", |b| {
        b.iter_batched(
            || {
                // Start from a large tree so every append carries a realistic frontier.
                Frontier::from_parts(
                    TREE_SIZE,
                    vec![Hash::EMPTY_ROOT; TREE_SIZE.count_ones() as usize],
                )
                .unwrap()
            },
            |mut frontier| {
                for leaf in &leaves {
                    black_box(frontier.append(*leaf).unwrap());
                }
                frontier
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn proofs(c: &mut Criterion) {
    let (frontier, nodes) = build(TREE_SIZE);
    let lookup = |id: NodeId| nodes.get(&id).copied();
    let root = frontier.root();
    let index = 123_457;
    let mut group = c.benchmark_group(format!("proofs at {TREE_SIZE} leaves"));
    group.bench_function("inclusion_proof_nodes (plan)", |b| {
        b.iter(|| black_box(inclusion_proof_nodes(black_box(index), TREE_SIZE).unwrap()));
    });
    group.bench_function("inclusion_proof (generate)", |b| {
        b.iter(|| black_box(inclusion_proof(black_box(index), TREE_SIZE, lookup).unwrap()));
    });
    let proof = inclusion_proof(index, TREE_SIZE, lookup).unwrap();
    let leaf = leaf_hash(&index.to_be_bytes());
    group.bench_function("verify_inclusion", |b| {
        b.iter(|| verify_inclusion(black_box(index), TREE_SIZE, leaf, &proof, root).unwrap());
    });
    let size1 = 765_431;
    let root1 = root_at(size1, lookup).unwrap();
    group.bench_function("consistency_proof (generate)", |b| {
        b.iter(|| black_box(consistency_proof(black_box(size1), TREE_SIZE, lookup).unwrap()));
    });
    let proof = consistency_proof(size1, TREE_SIZE, lookup).unwrap();
    group.bench_function("verify_consistency", |b| {
        b.iter(|| verify_consistency(black_box(size1), TREE_SIZE, root1, root, &proof).unwrap());
    });
    group.bench_function("root_at (earlier size)", |b| {
        b.iter(|| black_box(root_at(black_box(size1), lookup).unwrap()));
    });
    group.finish();
}

criterion_group!(benches, hashing, appending, proofs);
criterion_main!(benches);

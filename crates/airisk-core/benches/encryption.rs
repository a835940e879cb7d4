//! AES-256-GCM sealing and opening of strings, the way callers use it (text in, `v1.` text out).
//!
//! `cargo bench -p airisk-core --bench encryption`; `bench/encryption.sh` compares the figures with
//! Python's `cryptography` and `openssl speed`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark with a broken setup should stop

use std::hint::black_box;

use airisk_core::security::encryption::{EncryptionContext, Encryptor, Purpose};
use airisk_core::security::tenant_context::TenantId;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

/// A fixed, public benchmark key (never use it for anything else).
const BENCH_KEYRING: &str = "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn plaintext(len: usize) -> String {
    "abcdefghijklmnopqrstuvwxyz0123456789"
        .chars()
        .cycle()
        .take(len)
        .collect()
}

fn encryption(c: &mut Criterion) {
    let encryptor = Encryptor::from_env_value(BENCH_KEYRING).unwrap();
    let ctx = EncryptionContext::new(
        TenantId::parse("acme").unwrap(),
        Purpose::parse("model.api-key").unwrap(),
    );
    for (label, len) in [("256B", 256), ("16KiB", 16 * 1024)] {
        let text = plaintext(len);
        let sealed = encryptor.encrypt(&text).unwrap();
        let sealed_ctx = encryptor.encrypt_with_context(&text, &ctx).unwrap();

        let mut group = c.benchmark_group(format!("encryption/{label}"));
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function("encrypt", |b| {
            b.iter(|| encryptor.encrypt(black_box(&text)).unwrap())
        });
        group.bench_function("decrypt", |b| {
            b.iter(|| encryptor.decrypt(black_box(&sealed)).unwrap())
        });
        group.bench_function("encrypt_with_context", |b| {
            b.iter(|| {
                encryptor
                    .encrypt_with_context(black_box(&text), &ctx)
                    .unwrap()
            })
        });
        group.bench_function("decrypt_with_context", |b| {
            b.iter(|| {
                encryptor
                    .decrypt_with_context(black_box(&sealed_ctx), &ctx)
                    .unwrap()
            })
        });
        // The ceiling: ring's AES-256-GCM alone, in place, no allocation, no base64. (A fixed
        // nonce is fine here: the output is thrown away.)
        let raw_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
        let mut buffer = text.as_bytes().to_vec();
        group.bench_function("ring_seal_in_place", |b| {
            b.iter(|| {
                raw_key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key([0; 12]),
                        Aad::empty(),
                        black_box(&mut buffer),
                    )
                    .unwrap()
            })
        });
        group.finish();
    }

    // What expanding ring's key on every call (instead of once per keyring) would add to each
    // operation; see "What is zeroized" in the module documentation.
    let raw = [7u8; 32];
    c.bench_function("encryption/ring_key_setup", |b| {
        b.iter(|| LessSafeKey::new(UnboundKey::new(&AES_256_GCM, black_box(&raw)).unwrap()))
    });
}

criterion_group!(benches, encryption);
criterion_main!(benches);

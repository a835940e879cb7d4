//! What a round trip to the token costs: wrapping and unwrapping a data key with `CKM_AES_GCM`
//! and signing a checkpoint with `CKM_EDDSA` in SoftHSM2, beside the same operations in software
//! (the keyring provider, a ring Ed25519 key). A network HSM adds its own latency on top.
//!
//! ```text
//! eval "$(bash scripts/setup-softhsm.sh)"
//! cargo bench -p airisk-keys-pkcs11 --bench softhsm
//! ```
//!
//! Without `AIRISK_TEST_PKCS11_MODULE` only the software baselines run (and say so).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark with a broken setup should stop

use std::hint::black_box;
use std::sync::Arc;

use airisk_core::ledger::{Checkpoint, Hash, LedgerName, LedgerSigner};
use airisk_core::security::encryption::{EncryptionKeyId, Encryptor};
use airisk_core::security::envelope::{KeyProvider, KeyringKeyProvider};
use airisk_core::security::tenant_context::TenantId;
use airisk_keys_pkcs11::{AuthPin, Pkcs11KeyProvider, Pkcs11LedgerKey, Token, TokenConfig};
use criterion::{Criterion, criterion_group, criterion_main};

/// A fixed, public benchmark key (never use it for anything else).
const BENCH_KEYRING: &str = "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn bench(c: &mut Criterion) {
    let tenant = TenantId::parse("acme").unwrap();
    let kid = EncryptionKeyId::parse("d0123456789abcdef").unwrap();
    let dek = [42u8; 32];
    let name = LedgerName::parse("airisk.bench/ledger").unwrap();
    let checkpoint = Checkpoint::new(name.origin_for(&tenant), 1_000_000, Hash::from([7u8; 32]));

    let keyring =
        KeyringKeyProvider::new(Arc::new(Encryptor::from_env_value(BENCH_KEYRING).unwrap()));
    let software = LedgerSigner::generate(name.clone()).unwrap();
    let mut group = c.benchmark_group("kek");
    let wrapped = keyring.wrap(&tenant, &kid, &dek).unwrap();
    group.bench_function("keyring/wrap", |b| {
        b.iter(|| keyring.wrap(black_box(&tenant), &kid, &dek).unwrap())
    });
    group.bench_function("keyring/unwrap", |b| {
        b.iter(|| keyring.unwrap(&tenant, &kid, black_box(&wrapped)).unwrap())
    });
    group.bench_function("ring/sign_checkpoint", |b| {
        b.iter(|| black_box(&checkpoint).sign(&software).unwrap())
    });

    let Ok(module) = std::env::var("AIRISK_TEST_PKCS11_MODULE") else {
        eprintln!("AIRISK_TEST_PKCS11_MODULE is not set: the SoftHSM2 figures are NOT measured");
        group.finish();
        return;
    };
    let token = Token::open(TokenConfig::new(
        module,
        std::env::var("AIRISK_TEST_PKCS11_TOKEN").unwrap(),
        AuthPin::from(std::env::var("AIRISK_TEST_PKCS11_PIN").unwrap().as_str()),
    ))
    .unwrap();
    let suffix = std::process::id();
    let kek = format!("bench-kek-{suffix}");
    let ledger = format!("bench-ledger-{suffix}");
    token.generate_kek(&kek).unwrap();
    token.generate_ledger_key(&ledger).unwrap();
    let p11 = Pkcs11KeyProvider::new(token.clone(), &kek).unwrap();
    let hsm = Pkcs11LedgerKey::new(token, &ledger)
        .unwrap()
        .into_signer(name);
    let wrapped = p11.wrap(&tenant, &kid, &dek).unwrap();
    group.bench_function("softhsm/wrap", |b| {
        b.iter(|| p11.wrap(black_box(&tenant), &kid, &dek).unwrap())
    });
    group.bench_function("softhsm/unwrap", |b| {
        b.iter(|| p11.unwrap(&tenant, &kid, black_box(&wrapped)).unwrap())
    });
    group.bench_function("softhsm/sign_checkpoint", |b| {
        b.iter(|| black_box(&checkpoint).sign(&hsm).unwrap())
    });
    group.bench_function("softhsm/readiness", |b| b.iter(|| p11.readiness().unwrap()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

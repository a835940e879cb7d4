//! The cost of sealing on SQLite, per operation, one caller, through the real services: write a
//! prompt version (register), read it back (get_prompt), and append an audit record with one
//! metadata value, each with sealing (envelope: data key cached, value sealed / opened, the
//! tenant's key list read from the store) and without (the same value stored in plaintext).
//!
//! ```text
//! cargo bench -p airisk-store-sqlite --bench sealing -- --ops 1000
//! ```
//!
//! Plain `main` timed with `Instant`; sealed and plain runs alternate in rounds so machine load
//! hits both alike. Output is `key=value` pairs (mean microseconds per operation).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // bench: a failure should stop the run loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use airisk_core::governance::audit_logger::{AuditLogger, CheckpointPolicy};
use airisk_core::governance::audit_record::{AuditEventInput, SensitiveMetadata};
use airisk_core::governance::prompt_registry::{PromptRegistry, PromptSelector};
use airisk_core::ledger::LedgerName;
use airisk_core::ports::{SystemClock, UuidV7Generator};
use airisk_core::request::CorrelationId;
use airisk_core::security::encryption::Encryptor;
use airisk_core::security::envelope::{DEFAULT_DEK_CACHE, Envelope, KeyringKeyProvider};
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::{ActorId, Principal, TenantId};
use airisk_store_sqlite::SqliteStore;

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect(name))
}

const TEMPLATE: &str = "You are a credit-risk assistant. Summarise the applicant's file in five \
bullet points, flag any missing document, and never state a decision. Applicant: {{name}}, \
income {{income}}, requested {{amount}}.";

#[derive(Default)]
struct Totals {
    write: Duration,
    read: Duration,
    append: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ops = arg(&args, "--ops", 1000);
    let rounds = 4;
    let dir = std::env::var_os("AIRISK_BENCH_DIR").map_or_else(
        || std::env::temp_dir().join("airisk-bench"),
        std::path::PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("sealing-{}.db", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sealed, plain) = runtime.block_on(async {
        let store =
            Arc::new(SqliteStore::open(path.to_str().unwrap(), Arc::new(SystemClock)).unwrap());
        let kek = Arc::new(
            Encryptor::from_env_value("kek1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap(),
        );
        let envelope = Arc::new(Envelope::new(
            Arc::new(KeyringKeyProvider::new(kek)),
            DEFAULT_DEK_CACHE,
        ));
        let ids = Arc::new(UuidV7Generator);
        let clock = Arc::new(SystemClock);
        let plain_prompts = PromptRegistry::new(store.clone(), clock.clone(), ids.clone());
        let sealed_prompts = PromptRegistry::new(store.clone(), clock.clone(), ids.clone())
            .with_envelope(envelope.clone());
        let name = LedgerName::parse("airisk.bench/ledger").unwrap();
        let plain_log = AuditLogger::new(
            store.clone(),
            ids.clone(),
            clock.clone(),
            name.clone(),
            None,
            CheckpointPolicy::default(),
        );
        let sealed_log = AuditLogger::new(
            store.clone(),
            ids.clone(),
            clock.clone(),
            name,
            None,
            CheckpointPolicy::default(),
        )
        .with_sealing(store.clone(), envelope);
        let mut sealed = Totals::default();
        let mut plain = Totals::default();
        for round in 0..rounds {
            for (is_sealed, totals) in [(true, &mut sealed), (false, &mut plain)] {
                // Each side its own tenant, so their ledgers grow alike.
                let tenant = if is_sealed { "sealed" } else { "plain" };
                let admin = Principal::human(
                    ActorId::parse("ada").unwrap(),
                    TenantId::parse(tenant).unwrap(),
                    Role::Admin,
                );
                let prompts = if is_sealed {
                    &sealed_prompts
                } else {
                    &plain_prompts
                };
                let log = if is_sealed { &sealed_log } else { &plain_log };
                let t = Instant::now();
                for i in 0..ops {
                    prompts
                        .register_prompt(
                            &admin,
                            &CorrelationId::generate(),
                            &format!("p{round}-{i}"),
                            TEMPLATE,
                            "bench",
                        )
                        .await
                        .unwrap();
                }
                totals.write += t.elapsed();
                let t = Instant::now();
                for i in 0..ops {
                    let v = prompts
                        .get_prompt(&admin, &format!("p{round}-{i}"), &PromptSelector::Latest)
                        .await
                        .unwrap();
                    assert_eq!(v.template(), TEMPLATE);
                }
                totals.read += t.elapsed();
                let t = Instant::now();
                for i in 0..ops {
                    let value =
                        serde_json::json!({"name": "Jane Roe", "iban": "DE89370400440532013000"});
                    let mut meta = serde_json::Map::new();
                    let mut sensitive = SensitiveMetadata::new();
                    if is_sealed {
                        sensitive.insert("customer", value);
                    } else {
                        meta.insert("customer".into(), value);
                    }
                    meta.insert("decision".into(), "declined".into());
                    log.log_action_sensitive(
                        &admin,
                        AuditEventInput {
                            actor: "ada".into(),
                            tenant_id: tenant.into(),
                            action: "loan.decision".into(),
                            resource_type: "application".into(),
                            resource_id: format!("A-{round}-{i}"),
                            reason: None,
                            correlation_id: CorrelationId::generate().to_string(),
                            metadata: Some(serde_json::Value::Object(meta)),
                        },
                        &sensitive,
                    )
                    .await
                    .unwrap();
                }
                totals.append += t.elapsed();
            }
        }
        (sealed, plain)
    });
    let n = (ops * rounds) as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n;
    for (what, s, p) in [
        ("prompt_write", sealed.write, plain.write),
        ("prompt_read", sealed.read, plain.read),
        ("audit_append", sealed.append, plain.append),
    ] {
        println!(
            "op={what} sealed_us={:.1} plain_us={:.1} overhead_us={:.1} overhead_pct={:.1}",
            us(s),
            us(p),
            us(s) - us(p),
            (us(s) / us(p) - 1.0) * 100.0
        );
    }
    let _ = std::fs::remove_file(&path);
}

//! Governance throughput on SQLite: register+approve pairs per second through the real services
//! (`ModelRegistry::register_model` as an admin, then `approve_model` as an approver: two change
//! sets, four audit records, each committed durably), with N concurrent callers.
//!
//! ```text
//! cargo bench -p airisk-store-sqlite --bench governance -- --callers 8 --seconds 10
//! cargo bench -p airisk-store-sqlite --bench governance -- --callers 64 --seconds 10
//! ```
//!
//! Plain `main` timed with `Instant` (a fixed-duration, many-caller load is not criterion's model).
//! Output is `key=value` pairs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // bench: a failure should stop the run loudly

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use airisk_core::governance::model_registry::{ModelRegistry, RegisterModel};
use airisk_core::ports::{SystemClock, UuidV7Generator};
use airisk_core::request::CorrelationId;
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::{ActorId, Principal, TenantId};
use airisk_store_sqlite::SqliteStore;

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect(name))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let callers = arg(&args, "--callers", 8);
    let seconds = arg(&args, "--seconds", 10);
    let dir = std::env::var_os("AIRISK_BENCH_DIR").map_or_else(
        || std::env::temp_dir().join("airisk-bench"),
        std::path::PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("governance-{}.db", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pairs = runtime.block_on(async {
        let store = Arc::new(SqliteStore::open(path.to_str().unwrap(), Arc::new(SystemClock)).unwrap());
        let registry = Arc::new(ModelRegistry::new(
            store.clone(),
            Arc::new(SystemClock),
            Arc::new(UuidV7Generator),
        ));
        let tenant = TenantId::parse("bank").unwrap();
        let admin = Principal::human(ActorId::parse("ada@bank.example").unwrap(), tenant.clone(), Role::Admin);
        let approver =
            Principal::human(ActorId::parse("bob@bank.example").unwrap(), tenant.clone(), Role::Approver);
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for caller in 0..callers {
            let (registry, admin, approver, stop, done) =
                (registry.clone(), admin.clone(), approver.clone(), stop.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("model-{caller}");
                    let version = format!("1.0.{i}");
                    registry
                        .register_model(
                            &admin,
                            &CorrelationId::generate(),
                            RegisterModel {
                                name: name.clone(),
                                version: version.clone(),
                                checksum: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
                                artifact_uri: format!("s3://models/{name}/{version}/model.onnx"),
                                metadata: Some(serde_json::json!({"framework": "onnx", "auc": 0.91})),
                                justification: "challenger beats champion on the Q3 backtest".into(),
                                required_approvals: None,
                                expires_in_seconds: Some(86_400),
                            },
                        )
                        .await
                        .unwrap();
                    registry
                        .approve_model(&approver, &CorrelationId::generate(), &name, &version, "validation report reviewed")
                        .await
                        .unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            }));
        }
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = start.elapsed().as_secs_f64();
        done.load(Ordering::Relaxed) as f64 / elapsed
    });
    println!(
        "bench=governance store=sqlite callers={callers} seconds={seconds} pairs_per_sec={pairs:.0}"
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

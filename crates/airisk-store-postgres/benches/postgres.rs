//! PostgreSQL store benchmarks against a live server: durable append throughput and
//! register+approve pairs through `ModelRegistry`.
//!
//! ```text
//! AIRISK_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench -p airisk-store-postgres --bench postgres -- append --callers 64 --seconds 10
//! … -- append --callers 64 --seconds 10 --max-batch 1     # group commit off, for comparison
//! … -- append --callers 64 --seconds 10 --tenants 4       # callers spread over 4 tenants
//! … -- govern --callers 8 --seconds 10
//! … -- govern --callers 64 --seconds 10
//! ```
//!
//! Plain `main` timed with `Instant`, the same harness shape as the SQLite store's
//! (`crates/airisk-store-sqlite/benches/audit.rs`): "N callers for T seconds" is not criterion's
//! sample-and-iterate model. Each run creates a database `airisk_bench_<uuid>` through the given
//! superuser URL, migrates it, connects the store as the LOGIN `airisk_bench_app` (a member of
//! `airisk_app`, created if missing), and drops the database at the end. Output lines are
//! `key=value` pairs. Appends are durable: the server's `synchronous_commit` is `on` (the store
//! overrides `off`), so each batch waits for its WAL flush.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // bench: a failure should stop the run loudly

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use airisk_core::governance::audit_record::{AuditEvent, Outcome};
use airisk_core::governance::model_registry::{ModelRegistry, RegisterModel};
use airisk_core::ports::{AuditRepository, GovernanceStore, SystemClock, UuidV7Generator};
use airisk_core::request::CorrelationId;
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::{ActorId, Principal, TenantId};
use airisk_store_postgres::{PostgresOptions, PostgresStore};
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

struct Args(Vec<String>);

impl Args {
    fn get(&self, name: &str, default: u64) -> u64 {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .map_or(default, |v| v.replace('_', "").parse().expect(name))
    }
}

/// `url` with its user (if given) and database replaced.
fn rewrite(url: &str, user: Option<&str>, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("the URL has a scheme");
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    let authority = match user {
        Some(u) => {
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{u}@{host}")
        }
        None => authority.to_owned(),
    };
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{db}{query}")
}

/// A fresh migrated database; returns (app URL, cleanup).
struct BenchDb {
    server: String,
    name: String,
    app_url: String,
}

impl BenchDb {
    async fn new() -> Self {
        let server = std::env::var("AIRISK_BENCH_DATABASE_URL")
            .expect("set AIRISK_BENCH_DATABASE_URL to a superuser URL of the server to measure");
        let name = format!("airisk_bench_{}", Uuid::now_v7().simple());
        let mut admin = PgConnectOptions::from_str(&server)
            .unwrap()
            .connect()
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        airisk_store_postgres::migrate(&rewrite(&server, None, &name))
            .await
            .unwrap();
        sqlx::query(
            "DO $$ BEGIN CREATE ROLE airisk_bench_app LOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        )
        .execute(&mut admin)
        .await
        .unwrap();
        sqlx::query("GRANT airisk_app TO airisk_bench_app")
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        BenchDb {
            app_url: rewrite(&server, Some("airisk_bench_app"), &name),
            server,
            name,
        }
    }

    async fn store(&self, max_batch: u64) -> Arc<PostgresStore> {
        let mut options = PostgresOptions::default();
        options.max_batch_events = usize::try_from(max_batch).unwrap();
        options.max_connections = 16;
        Arc::new(
            PostgresStore::connect(&self.app_url, Arc::new(SystemClock), options)
                .await
                .unwrap(),
        )
    }

    async fn drop_db(self) {
        let mut admin = PgConnectOptions::from_str(&self.server)
            .unwrap()
            .connect()
            .await
            .unwrap();
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .unwrap();
    }
}

/// The SQLite bench's record: about 400 bytes of canonical JSON.
fn event(tenant: &TenantId, n: u64) -> AuditEvent {
    let metadata = json!({
        "model_version": format!("2.{}.0", n % 7),
        "artifact_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "risk_tier": "high",
    });
    AuditEvent::new(
        Uuid::now_v7(),
        tenant.clone(),
        ActorId::parse("alice.approver@bank.example").unwrap(),
        "model.approve",
        Outcome::Success,
        "model",
        &format!("credit-risk-pd-{n}"),
        Some("four-eyes approval after the validation review".to_owned()),
        CorrelationId::generate(),
        metadata.as_object().cloned(),
    )
    .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(
    bench: &str,
    extra: &str,
    done: u64,
    unit: &str,
    elapsed: f64,
    mut latencies: Vec<Duration>,
) {
    latencies.sort_unstable();
    println!(
        "bench={bench} {extra} {unit}={done} seconds={elapsed:.2} {unit}_per_sec={:.0} \
         latency_p50_ms={:.2} latency_p99_ms={:.2}",
        done as f64 / elapsed,
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
}

async fn append(args: &Args) {
    let callers = args.get("--callers", 64);
    let seconds = args.get("--seconds", 10);
    let batch = args.get("--batch", 1);
    let max_batch = args.get("--max-batch", 4096);
    // Each tenant's batches are serialised on its head row, which a batch holds until its COMMIT
    // returns (after the synchronous standby's flush, when there is one); tenants commit in
    // parallel. Callers are dealt round-robin.
    let tenants: Vec<TenantId> = match args.get("--tenants", 1) {
        1 => vec![TenantId::parse("acme").unwrap()],
        n => (0..n)
            .map(|i| TenantId::parse(&format!("acme-{i}")).unwrap())
            .collect(),
    };
    let db = BenchDb::new().await;
    let store = db.store(max_batch).await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let tenant = tenants[usize::try_from(caller).unwrap() % tenants.len()].clone();
        let (store, stop, done) = (store.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = caller << 32;
            while !stop.load(Ordering::Relaxed) {
                let events: Vec<_> = (0..batch).map(|i| event(&tenant, n + i)).collect();
                n += batch;
                let t = Instant::now();
                store.append(events).await.unwrap();
                latencies.push(t.elapsed());
                done.fetch_add(batch, Ordering::Relaxed);
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let records = done.load(Ordering::Relaxed);
    let mut stored = 0;
    for tenant in &tenants {
        stored += store.tree_head(tenant).await.unwrap().size;
    }
    assert_eq!(stored, records, "every acknowledged append is stored");
    report(
        "append",
        &format!(
            "callers={callers} tenants={} events_per_call={batch} max_batch={max_batch}",
            tenants.len()
        ),
        records,
        "appends",
        elapsed,
        latencies,
    );
    store.close().await;
    db.drop_db().await;
}

async fn govern(args: &Args) {
    let callers = args.get("--callers", 8);
    let seconds = args.get("--seconds", 10);
    let max_batch = args.get("--max-batch", 4096);
    let db = BenchDb::new().await;
    let store = db.store(max_batch).await;
    let registry = Arc::new(ModelRegistry::new(
        store.clone() as Arc<dyn GovernanceStore>,
        Arc::new(SystemClock),
        Arc::new(UuidV7Generator),
    ));
    let tenant = TenantId::parse("acme").unwrap();
    let admin = Principal::human(
        ActorId::parse("ada@acme.example").unwrap(),
        tenant.clone(),
        Role::Admin,
    );
    let approver = Principal::human(
        ActorId::parse("bob@acme.example").unwrap(),
        tenant.clone(),
        Role::Approver,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let (registry, stop, done) = (registry.clone(), stop.clone(), done.clone());
        let (admin, approver) = (admin.clone(), approver.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let version = format!("{caller}.{n}.0");
                n += 1;
                let t = Instant::now();
                registry
                    .register_model(
                        &admin,
                        &CorrelationId::generate(),
                        RegisterModel {
                            name: "credit-risk-pd".into(),
                            version: version.clone(),
                            checksum:
                                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                                    .into(),
                            artifact_uri: format!("s3://models/credit-risk-pd/{version}"),
                            metadata: Some(json!({"framework": "onnx", "auc": 0.91})),
                            justification: "backtest passed".into(),
                            required_approvals: None,
                            expires_in_seconds: Some(86_400),
                        },
                    )
                    .await
                    .unwrap();
                registry
                    .approve_model(
                        &approver,
                        &CorrelationId::generate(),
                        "credit-risk-pd",
                        &version,
                        "validated",
                    )
                    .await
                    .unwrap();
                latencies.push(t.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let pairs = done.load(Ordering::Relaxed);
    // Each pair is 4 audit records (register: model + request; approve: request + model).
    let size = store.tree_head(&tenant).await.unwrap().size;
    assert_eq!(size, pairs * 4, "every pair left its four records");
    report(
        "register_approve",
        &format!("callers={callers} max_batch={max_batch}"),
        pairs,
        "pairs",
        elapsed,
        latencies,
    );
    store.close().await;
    db.drop_db().await;
}

fn main() {
    // `cargo bench` passes `--bench`; the first other word is the mode.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mode = args.first().cloned().unwrap_or_else(|| "all".to_owned());
    let args = Args(args);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        match mode.as_str() {
            "append" => append(&args).await,
            "govern" => govern(&args).await,
            "all" => {
                for callers in ["1", "64"] {
                    append(&Args(vec!["--callers".into(), callers.into()])).await;
                }
                for callers in ["8", "64"] {
                    govern(&Args(vec!["--callers".into(), callers.into()])).await;
                }
            }
            other => panic!("unknown mode {other}: append | govern | all"),
        }
    });
}

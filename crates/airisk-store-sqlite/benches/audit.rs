//! Audit store benchmarks: durable append throughput, verify throughput, inclusion-proof latency
//! and memory while appending.
//!
//! ```text
//! cargo bench -p airisk-store-sqlite --bench audit -- append --callers 64 --seconds 10
//! cargo bench -p airisk-store-sqlite --bench audit -- append --callers 1 --in-flight 16
//! cargo bench -p airisk-store-sqlite --bench audit -- verify --entries 1000000
//! cargo bench -p airisk-store-sqlite --bench audit -- proof --entries 1000000 --samples 2000
//! cargo bench -p airisk-store-sqlite --bench audit -- rss --records 10000000
//! cargo bench -p airisk-store-sqlite --bench audit -- wakeup --trips 20000
//! ```
//!
//! Plain `main` timed with `Instant` rather than criterion: "64 callers appending concurrently for
//! ten seconds" and "RSS every million records" are not criterion's sample-and-iterate model.
//! Databases go to `$AIRISK_BENCH_DIR` (default: the system temp dir); the 1M-entry ledger used by
//! `verify` and `proof` is built once and reused. Every line of output is `key=value` pairs so
//! `bench/audit.sh` can read it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // bench: a failure should stop the run loudly

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;

use airisk_core::governance::audit_logger::{AuditLogger, CheckpointPolicy};
use airisk_core::governance::audit_record::{AuditEvent, Outcome};
use airisk_core::ledger::{
    self, Frontier, Hash, LedgerName, NodeId, inclusion_proof, inclusion_proof_nodes, leaf_hash,
};
use airisk_core::ports::{AuditRepository, SystemClock, UuidV7Generator};
use airisk_core::request::CorrelationId;
use airisk_core::security::tenant_context::{ActorId, TenantId};
use airisk_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;
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

fn bench_dir() -> PathBuf {
    let dir = std::env::var_os("AIRISK_BENCH_DIR")
        .map_or_else(|| std::env::temp_dir().join("airisk-bench"), PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fresh_db(name: &str) -> PathBuf {
    let path = bench_dir().join(format!("{name}-{}.db", std::process::id()));
    remove_db(&path);
    path
}

fn remove_db(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

fn open(path: &std::path::Path) -> SqliteStore {
    SqliteStore::open(&path.display().to_string(), Arc::new(SystemClock)).unwrap()
}

/// A realistic record: about 420 bytes of canonical JSON.
fn event(tenant: &TenantId, n: u64) -> AuditEvent {
    let metadata = json!({
        "model_version": format!("2.{}.0", n % 7),
        "risk_tier": "high",
        "ticket": "RISK-4711",
    });
    AuditEvent::new(
        Uuid::now_v7(),
        tenant.clone(),
        ActorId::parse("alice@bank.example").unwrap(),
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

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU time the threads of this process have run, from `/proc/self/task/*/schedstat`
/// (nanoseconds, exact: not sampled at the clock tick).
fn process_cpu() -> Duration {
    threads_cpu(|_| true)
}

/// The same, for the threads whose name (`comm`, at most 15 bytes) `pick` accepts.
fn threads_cpu(pick: impl Fn(&str) -> bool) -> Duration {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        // A thread may end between the listing and the reads: it has nothing more to count.
        let Ok(comm) = std::fs::read_to_string(task.join("comm")) else {
            continue;
        };
        if !pick(comm.trim_end()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(task.join("schedstat")) else {
            continue;
        };
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap();
    }
    Duration::from_nanos(ns)
}

/// The machine's cost of waking a thread that waits: two threads hand a number back and forth
/// over channels, each blocked in `recv` until the other sends, as a caller and the writer do
/// around every batch. Run as is (the threads land on different cores when they can) and under
/// `taskset -c 0` (one core: a wake-up is a switch on that core); on a virtual machine whose
/// idle cores halt, the first includes waking a halted virtual CPU.
fn wakeup(args: &Args) {
    let trips = args.get("--trips", 20_000);
    let (to_echo, echo_in) = std::sync::mpsc::channel::<u64>();
    let (echo_out, from_echo) = std::sync::mpsc::channel::<u64>();
    let echo = std::thread::spawn(move || {
        for n in echo_in {
            if echo_out.send(n).is_err() {
                break;
            }
        }
    });
    let round_trip = |n: u64| {
        to_echo.send(n).unwrap();
        assert_eq!(from_echo.recv().unwrap(), n);
    };
    (0..1_000).for_each(round_trip);
    let cpu = process_cpu();
    let started = Instant::now();
    (0..trips).for_each(round_trip);
    let wall = started.elapsed();
    let cpu = process_cpu() - cpu;
    drop(to_echo);
    echo.join().unwrap();
    let per_trip = |d: Duration| d.as_secs_f64() * 1e6 / trips as f64;
    println!(
        "bench=wakeup trips={trips} cpus={} us_per_round_trip={:.1} cpu_us_per_round_trip={:.1}",
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        per_trip(wall),
        per_trip(cpu)
    );
}

/// The store's writer thread (named `airisk-sqlite-writer`, cut to 15 bytes by the kernel).
fn is_writer(comm: &str) -> bool {
    comm.starts_with("airisk-sqlite-w")
}

/// The shape of an append load.
#[derive(Clone, Copy)]
struct Load {
    /// Concurrent callers (tasks).
    callers: u64,
    /// Events per `append` call.
    batch: u64,
    /// Calls each caller keeps outstanding: 1 waits for each receipt before the next call; more
    /// pipelines one caller's calls (each still gets its own durable receipt, in call order).
    in_flight: u64,
    /// Stop at the first call past this many records.
    limit: u64,
}

/// `load.callers` tasks each appending `load.batch` events per call, with up to `load.in_flight`
/// calls outstanding per caller, until `stop` (or `load.limit` records). Returns each call's
/// latency if `timed` (the rss mode keeps none, so that only the store's memory is measured).
async fn run_appenders(
    store: Arc<SqliteStore>,
    load: Load,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    timed: bool,
) -> Vec<Duration> {
    let tenant = TenantId::parse("acme").unwrap();
    let mut tasks = Vec::new();
    for caller in 0..load.callers {
        let store = Arc::clone(&store);
        let stop = Arc::clone(&stop);
        let done = Arc::clone(&done);
        let tenant = tenant.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = caller << 32;
            let mut outstanding = FuturesOrdered::new();
            // Pipelined calls from one caller land in call order: the bench stops if not.
            let mut last_seq = None;
            loop {
                let more =
                    !stop.load(Ordering::Relaxed) && done.load(Ordering::Relaxed) < load.limit;
                if more && (outstanding.len() as u64) < load.in_flight.max(1) {
                    let events: Vec<_> = (0..load.batch).map(|i| event(&tenant, n + i)).collect();
                    n += load.batch;
                    let store = &store;
                    outstanding.push_back(async move {
                        let started = Instant::now();
                        let receipts = store.append(events).await.unwrap();
                        (receipts, started.elapsed())
                    });
                    continue;
                }
                let Some((receipts, latency)) = outstanding.next().await else {
                    break;
                };
                if timed {
                    latencies.push(latency);
                }
                let first = receipts.first().map(|r| r.seq);
                assert!(last_seq < first, "a pipelined call overtook an earlier one");
                last_seq = receipts.last().map(|r| r.seq);
                done.fetch_add(receipts.len() as u64, Ordering::Relaxed);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn append(args: &Args) {
    let load = Load {
        callers: args.get("--callers", 64),
        batch: args.get("--batch", 1),
        in_flight: args.get("--in-flight", 1),
        limit: u64::MAX,
    };
    let seconds = args.get("--seconds", 10);
    let path = fresh_db("append");
    let store = Arc::new(open(&path));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let cpu = process_cpu();
    let writer_cpu = threads_cpu(is_writer);
    let started = Instant::now();
    let runner = tokio::spawn(run_appenders(
        Arc::clone(&store),
        load,
        Arc::clone(&stop),
        Arc::clone(&done),
        true,
    ));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = runner.await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let records = done.load(Ordering::Relaxed);
    // CPU per append of the whole process and of the writer thread alone: the writer's bounds
    // the rate one store can reach (1 s / its CPU per append), whatever the machine's load.
    let per_append = |d: Duration| d.as_secs_f64() * 1e6 / records.max(1) as f64;
    let cpu = per_append(process_cpu() - cpu);
    let writer_cpu = per_append(threads_cpu(is_writer) - writer_cpu);
    latencies.sort_unstable();
    println!(
        "bench=append callers={} events_per_call={} in_flight={} records={records} seconds={elapsed:.2} \
         appends_per_sec={:.0} latency_p50_ms={:.2} latency_p99_ms={:.2} \
         cpu_us_per_append={cpu:.1} writer_cpu_us_per_append={writer_cpu:.1}",
        load.callers,
        load.batch,
        load.in_flight,
        records as f64 / elapsed,
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
    drop(store);
    remove_db(&path);
}

/// The shared ledger of `entries` records (built once, then reused).
async fn ledger(entries: u64) -> PathBuf {
    let path = bench_dir().join(format!("ledger-{entries}.db"));
    if path.exists() {
        let store = open(&path);
        let size = store
            .tree_head(&TenantId::parse("acme").unwrap())
            .await
            .unwrap()
            .size;
        // Appenders stop at the first batch past `entries`, so a built ledger is a little larger.
        if size >= entries {
            return path;
        }
        drop(store);
        remove_db(&path);
    }
    eprintln!("building a {entries}-entry ledger at {} …", path.display());
    let started = Instant::now();
    let store = Arc::new(open(&path));
    let load = Load {
        callers: 8,
        batch: 512,
        in_flight: 1,
        limit: entries,
    };
    run_appenders(
        Arc::clone(&store),
        load,
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        false,
    )
    .await;
    let size = store
        .tree_head(&TenantId::parse("acme").unwrap())
        .await
        .unwrap()
        .size;
    eprintln!(
        "built {size} entries in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(size >= entries, "built {size}, wanted {entries}");
    path
}

/// Reads every entry through the store port (the packed pages `verify` reads), rehashes every
/// leaf and recomputes the root on one thread: the store's share of `verify`. Run twice: reading
/// and hashing in turn, then with the next page read while the current one is hashed. Then the
/// whole `AuditLogger::verify`. `--scan-mmap BYTES` sets `SqliteOptions::scan_mmap_bytes`
/// (default: the store's default; 0 reads with `pread` only).
async fn verify(args: &Args) {
    let entries = args.get("--entries", 1_000_000);
    let path = ledger(entries).await;
    let mut options = SqliteOptions::default();
    options.scan_mmap_bytes = args.get("--scan-mmap", options.scan_mmap_bytes);
    let scan_mmap = options.scan_mmap_bytes;
    let store = Arc::new(
        SqliteStore::open_with(&path.display().to_string(), Arc::new(SystemClock), options)
            .unwrap(),
    );
    let tenant = TenantId::parse("acme").unwrap();
    let head = store.tree_head(&tenant).await.unwrap();
    for prefetch in [false, true] {
        let started = Instant::now();
        let mut frontier = Frontier::new();
        let mut next = 0u64;
        let fetch = |from: u64| {
            let store = Arc::clone(&store);
            let tenant = tenant.clone();
            tokio::spawn(async move { store.entry_page(&tenant, from, PAGE).await.unwrap() })
        };
        let mut pending = fetch(0);
        loop {
            let page = pending.await.unwrap();
            let Some(&last) = page.seqs().last() else {
                break;
            };
            pending = fetch(last + 1);
            if !prefetch {
                // Wait for the next page before hashing this one: no overlap.
                let next_page = pending.await.unwrap();
                pending = tokio::spawn(async move { next_page });
            }
            for entry in page.iter() {
                assert_eq!(entry.seq, next);
                assert_eq!(leaf_hash(entry.leaf), *entry.leaf_hash);
                frontier.append(*entry.leaf_hash).unwrap();
                next += 1;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(frontier.root(), head.root);
        println!(
            "bench=verify_raw prefetch={prefetch} scan_mmap_bytes={scan_mmap} entries={next} seconds={elapsed:.2} records_per_sec={:.0}",
            next as f64 / elapsed
        );
    }
    // The whole check as an operator runs it: AuditLogger::verify (every leaf's hash and place,
    // seq and tenant, the root, the stored head), hashing on every core.
    let repo: Arc<dyn AuditRepository> = store;
    let logger = AuditLogger::new(
        repo,
        Arc::new(UuidV7Generator),
        Arc::new(SystemClock),
        LedgerName::parse("bench.example/audit").unwrap(),
        None,
        CheckpointPolicy::default(),
    );
    let started = Instant::now();
    let report = logger.verify(&tenant, None, None, |_, _| {}).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(report.is_intact(), "{report:?}");
    println!(
        "bench=verify_logger scan_mmap_bytes={scan_mmap} entries={} seconds={elapsed:.2} records_per_sec={:.0}",
        report.entries,
        report.entries as f64 / elapsed
    );
}

/// Entries per read in the verify bench (AuditLogger::verify reads 16,384).
const PAGE: usize = 16_384;

async fn proof(args: &Args) {
    let entries = args.get("--entries", 1_000_000);
    let samples = args.get("--samples", 2_000);
    let path = ledger(entries).await;
    let store = open(&path);
    let tenant = TenantId::parse("acme").unwrap();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut latencies = Vec::new();
    let mut node_counts = 0usize;
    for i in 0..samples + 100 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let started = Instant::now();
        let head = store.tree_head(&tenant).await.unwrap();
        let seq = rng % head.size;
        let ids: Vec<NodeId> = inclusion_proof_nodes(seq, head.size)
            .unwrap()
            .into_iter()
            .collect();
        let nodes: std::collections::HashMap<NodeId, Hash> = store
            .nodes(&tenant, &ids)
            .await
            .unwrap()
            .into_iter()
            .collect();
        let proof = inclusion_proof(seq, head.size, |id| nodes.get(&id).copied()).unwrap();
        let elapsed = started.elapsed();
        if i >= 100 {
            // The first hundred warm the page cache and the connection pool.
            latencies.push(elapsed);
            node_counts += ids.len();
        }
        if i % 500 == 0 {
            let leaf = store.entries(&tenant, seq, 1).await.unwrap()[0].leaf_hash;
            ledger::verify_inclusion(seq, head.size, leaf, &proof, head.root).unwrap();
        }
    }
    latencies.sort_unstable();
    let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;
    println!(
        "bench=inclusion_proof entries={entries} samples={samples} nodes_per_proof={:.1} \
         mean_ms={:.3} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}",
        node_counts as f64 / samples as f64,
        mean.as_secs_f64() * 1e3,
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        percentile(&latencies, 1.0).as_secs_f64() * 1e3,
    );
}

async fn rss(args: &Args) {
    let records = args.get("--records", 10_000_000);
    let load = Load {
        callers: args.get("--callers", 64),
        batch: args.get("--batch", 16),
        in_flight: 1,
        limit: records,
    };
    let every = args.get("--every", 1_000_000);
    let path = fresh_db("rss");
    let store = Arc::new(open(&path));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    println!("bench=rss records=0 rss_kib={}", rss_kib());
    let runner = tokio::spawn(run_appenders(
        Arc::clone(&store),
        load,
        Arc::new(AtomicBool::new(false)),
        Arc::clone(&done),
        false,
    ));
    let mut next_report = every;
    while !runner.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = done.load(Ordering::Relaxed);
        if n >= next_report {
            println!(
                "bench=rss records={n} rss_kib={} seconds={:.1} appends_per_sec={:.0}",
                rss_kib(),
                started.elapsed().as_secs_f64(),
                n as f64 / started.elapsed().as_secs_f64()
            );
            next_report += every;
        }
    }
    runner.await.unwrap();
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "bench=rss records={} rss_kib={} file_mib={}",
        done.load(Ordering::Relaxed),
        rss_kib(),
        size >> 20
    );
    drop(store);
    remove_db(&path);
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
            "verify" => verify(&args).await,
            "proof" => proof(&args).await,
            "rss" => rss(&args).await,
            "wakeup" => wakeup(&args),
            "all" => {
                append(&Args(vec!["--callers".into(), "1".into()])).await;
                append(&Args(vec!["--callers".into(), "64".into()])).await;
                verify(&args).await;
                proof(&args).await;
            }
            other => panic!("unknown mode {other}: append | verify | proof | rss | wakeup | all"),
        }
    });
}

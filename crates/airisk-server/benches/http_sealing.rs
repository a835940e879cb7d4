//! The cost of sealing on the HTTP path, on SQLite, side by side in one run: two routers of this
//! crate on 127.0.0.1 over ONE SQLite store, each driven by one keep-alive HTTP client, one
//! request at a time:
//!
//! * **sealed**: `AppState::new_sealed` with an envelope, as `airisk serve` runs: prompt
//!   templates sealed, `sensitive_metadata` of audit records and models sealed, the tenant's key
//!   list read from the store on every sealed read and write (data key cached);
//! * **plain** (the baseline): `AppState::new`, no envelope: the same requests with the same
//!   bytes, templates stored as given and the would-be sensitive value sent as ordinary
//!   `metadata`. `airisk serve` itself always seals; this baseline exists only here.
//!
//! Operations: `prompt_write` (POST /v1/prompts), `prompt_read` (GET /v1/prompts/{name}),
//! `audit_append` (POST /v1/audit/events, one 60-byte object marked sensitive vs plain),
//! `model_register` (POST /v1/models, the same object as sensitive vs plain model metadata).
//! Every sealed request is timed next to its plain twin (the order alternating), so load bursts
//! on a shared machine hit both sides alike; each side has its own tenant so their ledgers grow
//! alike. `--ops N --rounds R` times N×R pairs per operation. Output: `key=value` pairs, median
//! and mean microseconds per request.
//!
//! ```text
//! cargo bench -p airisk-server --bench http_sealing -- --ops 500 --rounds 4
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // bench: a failure should stop the run loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use airisk_core::governance::audit_logger::CheckpointPolicy;
use airisk_core::ledger::{LedgerName, LedgerSigner};
use airisk_core::ports::{SystemClock, UuidV7Generator};
use airisk_core::security::encryption::Encryptor;
use airisk_core::security::envelope::{DEFAULT_DEK_CACHE, Envelope, KeyringKeyProvider};
use airisk_core::security::rbac::Role;
use airisk_server::auth::{Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER, JwtVerifier, TokenSigner};
use airisk_server::{AppState, LedgerConfig, ServerConfig, Stores};
use airisk_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use zeroize::Zeroizing;

/// Untimed requests per operation before the timed ones.
const WARM_UP: u64 = 20;
const SECRET: &[u8; 32] = b"bench-secret-bench-secret-bench!";
const TEMPLATE: &str = "You are a credit-risk assistant. Summarise the applicant's file in five \
bullet points, flag any missing document, and never state a decision. Applicant: {{name}}, \
income {{income}}, requested {{amount}}.";

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect(name))
}

struct Side {
    base: String,
    token: String,
    sealed: bool,
    stop: Option<oneshot::Sender<()>>,
}

async fn spawn(stores: Stores, envelope: Option<Arc<Envelope>>, tenant: &str) -> Side {
    let sealed = envelope.is_some();
    let auth = JwtVerifier::new(DEFAULT_ISSUER, DEFAULT_AUDIENCE)
        .dangerous_with_hs256_secret(SECRET)
        .unwrap();
    let signer = Arc::new(
        LedgerSigner::generate(LedgerName::parse("airisk.bench/ledger").unwrap()).unwrap(),
    );
    let state = AppState::new_sealed(
        stores,
        Arc::new(SystemClock),
        Arc::new(UuidV7Generator),
        LedgerConfig {
            signer,
            policy: CheckpointPolicy::default(),
        },
        auth,
        ServerConfig::default(),
        envelope,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(airisk_server::serve(listener, state, async move {
        let _ = rx.await;
    }));
    let token = TokenSigner::Hs256(Zeroizing::new(SECRET.to_vec()))
        .sign(&Claims::new("ada", tenant, Role::Admin, 3600))
        .unwrap();
    Side {
        base,
        token,
        sealed,
        stop: Some(tx),
    }
}

async fn send(client: &reqwest::Client, side: &Side, post: Option<(&str, Value)>, get: &str) {
    let r = match post {
        Some((path, body)) => client
            .post(format!("{}{path}", side.base))
            .bearer_auth(&side.token)
            .json(&body),
        None => client
            .get(format!("{}{get}", side.base))
            .bearer_auth(&side.token),
    }
    .send()
    .await
    .unwrap();
    let status = r.status();
    let bytes = r.bytes().await.unwrap();
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&bytes)
    );
}

/// The request of operation `op` number `i` for `side`: (POST path and body) or GET path.
fn request(op: &str, side: &Side, i: u64) -> (Option<(&'static str, Value)>, String) {
    let secret = json!({"name": "Jane Roe", "iban": "DE89370400440532013000"});
    match op {
        "prompt_write" => (
            Some((
                "/v1/prompts",
                json!({"name": format!("p{i}"), "template": TEMPLATE, "change_reason": "bench"}),
            )),
            String::new(),
        ),
        "prompt_read" => (None, format!("/v1/prompts/p{i}")),
        "audit_append" => {
            let mut body = json!({
                "action": "loan.decision", "resource_type": "application",
                "resource_id": format!("A-{i}"), "metadata": {"decision": "declined"}
            });
            if side.sealed {
                body["sensitive_metadata"] = json!({ "customer": secret });
            } else {
                body["metadata"]["customer"] = secret;
            }
            (Some(("/v1/audit/events", body)), String::new())
        }
        _ => {
            let mut body = json!({
                "name": format!("m{i}"), "version": "1.0", "checksum": "ab".repeat(32),
                "artifact_uri": "s3://models/bench", "metadata": {"team": "risk"},
                "justification": "bench"
            });
            if side.sealed {
                body["sensitive_metadata"] = json!({ "customer": secret });
            } else {
                body["metadata"]["customer"] = secret;
            }
            (Some(("/v1/models", body)), String::new())
        }
    }
}

/// Median and mean of `samples`, in microseconds.
fn stats(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let median = samples.get(samples.len() / 2).copied().map_or(0.0, us);
    let mean = samples.iter().copied().map(us).sum::<f64>() / samples.len().max(1) as f64;
    (median, mean)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ops = arg(&args, "--ops", 500);
    let rounds = arg(&args, "--rounds", 4);
    let dir = std::env::var_os("AIRISK_BENCH_DIR").map_or_else(
        || std::env::temp_dir().join("airisk-bench"),
        std::path::PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("http-sealing-{}.db", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    const OPS: [&str; 4] = [
        "prompt_write",
        "prompt_read",
        "audit_append",
        "model_register",
    ];
    let results = runtime.block_on(async {
        let store =
            Arc::new(SqliteStore::open(path.to_str().unwrap(), Arc::new(SystemClock)).unwrap());
        let stores = Stores {
            audit: store.clone(),
            governance: store.clone(),
        };
        let kek = Arc::new(
            Encryptor::from_env_value("kek1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap(),
        );
        let envelope = Arc::new(Envelope::new(
            Arc::new(KeyringKeyProvider::new(kek)),
            DEFAULT_DEK_CACHE,
        ));
        let mut sealed_side = spawn(stores.clone(), Some(envelope), "sealed").await;
        let mut plain_side = spawn(stores, None, "plain").await;
        let client = reqwest::Client::new();
        let mut results = Vec::new();
        for op in OPS {
            let (mut sealed, mut plain) = (Vec::new(), Vec::new());
            // Warm-up ids (connections, statement caches, the sealed tenant's first data key)
            // are not timed; then each sealed request is paired with its plain twin, the order
            // alternating, so load bursts on a shared machine hit both sides alike.
            for i in 0..(ops * rounds + WARM_UP) {
                let order = if i % 2 == 0 {
                    [(&sealed_side, true), (&plain_side, false)]
                } else {
                    [(&plain_side, false), (&sealed_side, true)]
                };
                for (side, is_sealed) in order {
                    let (post, get) = request(op, side, i);
                    let start = Instant::now();
                    send(&client, side, post, &get).await;
                    let took = start.elapsed();
                    if i >= WARM_UP {
                        if is_sealed {
                            sealed.push(took)
                        } else {
                            plain.push(took)
                        }
                    }
                }
            }
            results.push((op, stats(&mut sealed), stats(&mut plain)));
        }
        for side in [&mut sealed_side, &mut plain_side] {
            if let Some(stop) = side.stop.take() {
                let _ = stop.send(());
            }
        }
        results
    });
    drop(runtime);
    for (op, (s_med, s_mean), (p_med, p_mean)) in results {
        println!(
            "op={op} sealed_median_us={s_med:.1} plain_median_us={p_med:.1} \
             overhead_median_us={:.1} overhead_median_pct={:.1} sealed_mean_us={s_mean:.1} \
             plain_mean_us={p_mean:.1} overhead_mean_pct={:.1}",
            s_med - p_med,
            (s_med / p_med - 1.0) * 100.0,
            (s_mean / p_mean - 1.0) * 100.0
        );
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

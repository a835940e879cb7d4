//! Failover of the highly available PostgreSQL cluster under load, end to end: two `airisk serve`
//! processes on the cluster of `scripts/ha-cluster.sh` (Patroni primary + synchronous standby,
//! HAProxy routing to the primary), concurrent clients of several tenants appending audit records
//! and registering and approving models; mid-run the primary's node is killed (its Patroni and its
//! postmaster, SIGKILL), Patroni promotes the synchronous standby, and the old node, restarted,
//! rejoins as the synchronous standby.
//!
//! Runs when `AIRISK_HA_DATABASE_URL` names the cluster's HAProxy primary port as a superuser
//! (`scripts/ha-cluster.sh start` prints it; `scripts/test.sh` starts the cluster, exports it and
//! stops the cluster afterwards). It is `#[ignore]`d, so a plain `cargo test` lists it as ignored,
//! never as passed; `scripts/test.sh` runs it with `--ignored` once the cluster is up, and run
//! without the variable it fails. It needs the cluster to itself
//! (it kills its primary), so it is the only test in this file.
//!
//! The oracles are independent of the service: the client's own log of what was acknowledged,
//! the ledger as exported and checked by `tools/verify_export.py`, and `airisk audit verify`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

mod support;
use support::{ProdKeys, Server, airisk, fresh_dir, psql, run_ok};

const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const TENANTS: [&str; 3] = ["ha-alpha", "ha-beta", "ha-gamma"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ha(args: &[&str]) -> Result<String, String> {
    let out = Command::new("bash")
        .arg(repo().join("scripts/ha-cluster.sh"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics naming `what` after `limit`.
async fn wait_until<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What one client saw of one HTTP write.
#[derive(Debug, Clone)]
struct Seen {
    started: Instant,
    ended: Instant,
    status: u16,
}

/// Everything the clients saw, shared by the workers.
#[derive(Default)]
struct Log {
    requests: Vec<Seen>,
    /// Violations of the contract: a 500, a 503 without Retry-After, a transport error, an
    /// unexpected status.
    violations: Vec<String>,
    /// Acknowledged appends: marker -> (seq, leaf_hash, id).
    appended: BTreeMap<String, (String, u64, String, String)>,
    /// Appends sent once without a key whose outcome the client does not know (a 503): tenant,
    /// marker.
    unknown: Vec<(String, String)>,
    /// Approved models: (tenant, name, approval request id).
    approved: Vec<(String, String, String)>,
    /// Writes that succeeded only on a retry with the same Idempotency-Key.
    retried_ok: usize,
    /// Of those, retries answered from the ledger (`Idempotency-Replayed`): the first attempt had
    /// committed although its client saw a 503.
    replayed: usize,
}

struct Ctx {
    client: reqwest::Client,
    bases: Vec<String>,
    tokens: HashMap<(String, &'static str), String>,
    log: Mutex<Log>,
    stop: AtomicBool,
    acked: AtomicUsize,
}

impl Ctx {
    /// One POST; records it; `Ok(Some(body))` on 2xx, `Ok(None)` on 503 with Retry-After, and a
    /// recorded violation (as `Err`) on anything else.
    async fn post(
        &self,
        server: usize,
        path: &str,
        token: &str,
        body: &Value,
        key: Option<&str>,
    ) -> Result<Option<(u16, Value)>, ()> {
        let started = Instant::now();
        let mut req = self
            .client
            .post(format!("{}{path}", self.bases[server % self.bases.len()]))
            .bearer_auth(token)
            .json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let result = match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = r.headers().contains_key("retry-after");
                let replayed = r.headers().contains_key("idempotency-replayed");
                let value: Value = r.json().await.unwrap_or(Value::Null);
                Ok((status, retry_after, replayed, value))
            }
            Err(e) => Err(e),
        };
        let ended = Instant::now();
        let mut log = self.log.lock().unwrap();
        match result {
            Err(e) => {
                log.violations
                    .push(format!("POST {path}: transport error {e}"));
                Err(())
            }
            Ok((status, retry_after, replayed, value)) => {
                log.replayed += usize::from(replayed);
                log.requests.push(Seen {
                    started,
                    ended,
                    status,
                });
                match status {
                    200 | 201 => Ok(Some((status, value))),
                    503 if retry_after => Ok(None),
                    _ => {
                        log.violations
                            .push(format!("POST {path}: status {status} body {value}"));
                        Err(())
                    }
                }
            }
        }
    }

    /// Retries `body` with the same Idempotency-Key until a 2xx (bounded): the write happens at
    /// most once whatever the client saw.
    async fn post_until_done(
        &self,
        server: usize,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Option<(u16, Value)> {
        let key = uuid::Uuid::now_v7().to_string();
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut attempt = 0usize;
        while Instant::now() < deadline {
            // Retries go to the other instance half the time, as a load balancer would.
            match self
                .post(server + attempt, path, token, body, Some(&key))
                .await
            {
                Ok(Some(answer)) => {
                    if attempt > 0 {
                        self.log.lock().unwrap().retried_ok += 1;
                    }
                    return Some(answer);
                }
                Ok(None) => {
                    attempt += 1;
                    // The client's back-off, as Retry-After asks (not synchronisation).
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(()) => return None,
            }
        }
        self.log
            .lock()
            .unwrap()
            .violations
            .push(format!("POST {path}: no success within 90 s of retries"));
        None
    }
}

/// Appends: even workers send each record once without a key (a 503 leaves its outcome unknown
/// to them), odd workers retry with an Idempotency-Key until acknowledged.
async fn append_worker(ctx: Arc<Ctx>, tenant: &'static str, worker: usize) {
    let token = ctx.tokens[&(tenant.to_owned(), "analyst")].clone();
    let mut n = 0usize;
    while !ctx.stop.load(Ordering::Relaxed) {
        let marker = format!("{tenant}.w{worker}.{n}");
        let body = json!({"action": "ha.probe", "resource_type": "probe", "resource_id": marker});
        let answer = if worker.is_multiple_of(2) {
            match ctx
                .post(n + worker, "/v1/audit/events", &token, &body, None)
                .await
            {
                Ok(Some(a)) => Some(a),
                Ok(None) => {
                    ctx.log
                        .lock()
                        .unwrap()
                        .unknown
                        .push((tenant.to_owned(), marker.clone()));
                    // The client's back-off, as Retry-After asks (not synchronisation).
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    None
                }
                Err(()) => None,
            }
        } else {
            ctx.post_until_done(n + worker, "/v1/audit/events", &token, &body)
                .await
        };
        if let Some((status, v)) = answer {
            if status != 201 || v["seq"].as_u64().is_none() || v["leaf_hash"].as_str().is_none() {
                ctx.log.lock().unwrap().violations.push(format!(
                    "append acknowledged without a receipt: {status} {v}"
                ));
            } else {
                ctx.log.lock().unwrap().appended.insert(
                    marker,
                    (
                        tenant.to_owned(),
                        v["seq"].as_u64().unwrap(),
                        v["leaf_hash"].as_str().unwrap().to_owned(),
                        v["id"].as_str().unwrap_or_default().to_owned(),
                    ),
                );
                ctx.acked.fetch_add(1, Ordering::Relaxed);
            }
        }
        n += 1;
    }
}

/// Governance: register a model version, then approve it (four eyes: another person), both with
/// Idempotency-Keys and retries.
async fn governance_worker(ctx: Arc<Ctx>, tenant: &'static str, worker: usize) {
    let admin = ctx.tokens[&(tenant.to_owned(), "admin")].clone();
    let approver = ctx.tokens[&(tenant.to_owned(), "approver")].clone();
    let mut n = 0usize;
    while !ctx.stop.load(Ordering::Relaxed) {
        let name = format!("m-w{worker}-{n}");
        n += 1;
        let body = json!({"name": name, "version": "1", "checksum": DIGEST,
            "artifact_uri": format!("s3://models/{name}"), "justification": "ha test"});
        let Some((_, registered)) = ctx.post_until_done(n, "/v1/models", &admin, &body).await
        else {
            continue;
        };
        ctx.acked.fetch_add(1, Ordering::Relaxed);
        let path = format!("/v1/models/{name}/versions/1/approve");
        let Some((_, decided)) = ctx
            .post_until_done(n + 1, &path, &approver, &json!({"reason": "ok"}))
            .await
        else {
            continue;
        };
        ctx.acked.fetch_add(1, Ordering::Relaxed);
        let request_id = registered["approval_request"]["id"]
            .as_str()
            .or_else(|| decided["id"].as_str())
            .unwrap_or_default()
            .to_owned();
        ctx.log
            .lock()
            .unwrap()
            .approved
            .push((tenant.to_owned(), name, request_id));
    }
}

/// `/readyz` of every instance, every 50 ms: (instant, instance, status).
async fn readiness_poller(ctx: Arc<Ctx>, samples: Arc<Mutex<Vec<(Instant, usize, u16)>>>) {
    while !ctx.stop.load(Ordering::Relaxed) {
        for (i, base) in ctx.bases.iter().enumerate() {
            let status = match ctx
                .client
                .get(format!("{base}/readyz"))
                .timeout(Duration::from_secs(5))
                .send()
                .await
            {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            samples.lock().unwrap().push((Instant::now(), i, status));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the HA cluster: scripts/ha-cluster.sh start, AIRISK_HA_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn a_primary_killed_mid_run_loses_no_acknowledged_write_and_the_services_recover() {
    let admin_url = std::env::var("AIRISK_HA_DATABASE_URL").expect(
        "AIRISK_HA_DATABASE_URL is not set: start the cluster with scripts/ha-cluster.sh start",
    );
    let status = ha(&["status"]).expect("the HA cluster is not healthy");
    assert!(
        status.contains("synchronous standby"),
        "the cluster has no synchronous standby:\n{status}"
    );

    // A fresh database and the service's login (a member of airisk_app, nothing more).
    let db = format!("airisk_ha_{}", uuid::Uuid::now_v7().simple());
    let (server_part, _) = admin_url.rsplit_once('/').unwrap();
    psql(&admin_url, &format!("CREATE DATABASE {db}"));
    let owner_url = format!("{server_part}/{db}");
    run_ok(airisk().args(["migrate", "--database-url", &owner_url]));
    psql(
        &owner_url,
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'airisk_ha_svc') THEN \
         CREATE ROLE airisk_ha_svc LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE airisk_app; END IF; END $$",
    );
    let host_part = server_part.split_once('@').unwrap().1;
    let svc_url = format!("postgres://airisk_ha_svc@{host_part}/{db}");

    // Production keys: EdDSA tokens from a JWKS, encryption and ledger keys from the environment.
    let dir = fresh_dir("airisk-ha");
    let keys = ProdKeys::generate(&dir);
    let key = &keys.jwt_private_key;
    let signing_key = keys.signing_key();
    let config = keys.write_config(&dir, &svc_url, "request_timeout_ms = 5000\n");
    let start = || {
        let mut cmd = keys.serve(&config);
        cmd.env("AIRISK_LOG", "warn");
        Server::spawn(cmd)
    };
    let servers = [start(), start()];

    let mut tokens = HashMap::new();
    for tenant in TENANTS {
        for role in ["analyst", "admin", "approver"] {
            let token = run_ok(
                airisk()
                    .args([
                        "token",
                        "issue",
                        "--sub",
                        &format!("{role}-{tenant}"),
                        "--tenant",
                        tenant,
                        "--role",
                        role,
                    ])
                    .env("AIRISK_JWT_PRIVATE_KEY_FILE", key),
            );
            tokens.insert((tenant.to_owned(), role), token.trim().to_owned());
        }
    }
    let ctx = Arc::new(Ctx {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        bases: servers.iter().map(|s| s.url("")).collect(),
        tokens,
        log: Mutex::new(Log::default()),
        stop: AtomicBool::new(false),
        acked: AtomicUsize::new(0),
    });
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for tenant in TENANTS {
        for worker in 0..2 {
            tasks.push(tokio::spawn(append_worker(ctx.clone(), tenant, worker)));
        }
        tasks.push(tokio::spawn(governance_worker(ctx.clone(), tenant, 2)));
    }
    tasks.push(tokio::spawn(readiness_poller(ctx.clone(), samples.clone())));

    // Load before the fault.
    wait_until("writes before the fault", Duration::from_secs(60), || {
        (ctx.acked.load(Ordering::Relaxed) >= 150).then_some(())
    })
    .await;
    let old_primary = ha(&["primary"]).unwrap().trim().to_owned();
    let killed_at = Instant::now();
    let acked_before = ctx.acked.load(Ordering::Relaxed);
    // The primary's host dies: its Patroni and its postmaster, both SIGKILL. (With its Patroni
    // alive, Patroni 3.0.2 often drops the synchronous standby from its list while it notices
    // the crash, and then restarts the primary in place instead of failing over: patroni#2841.)
    let killed = ha(&["kill-node", &old_primary]).expect("kill the primary");
    eprintln!("{}", killed.trim());

    // Patroni promotes the synchronous standby; the services carry on without a restart.
    let new_primary = wait_until("a new primary", Duration::from_secs(90), || {
        ha(&["primary"])
            .ok()
            .map(|p| p.trim().to_owned())
            .filter(|p| *p != old_primary)
    })
    .await;
    let promoted_at = Instant::now();
    wait_until(
        "writes acknowledged after the failover",
        Duration::from_secs(60),
        || (ctx.acked.load(Ordering::Relaxed) >= acked_before + 60).then_some(()),
    )
    .await;
    // The old primary's node comes back (as a supervisor would restart it) and rejoins as the
    // synchronous standby; writes go on with it attached.
    let restarted = ha(&["start-node", &old_primary]).expect("restart the old primary's node");
    eprintln!("{}", restarted.trim());
    wait_until(
        "the old primary to rejoin as synchronous standby",
        Duration::from_secs(180),
        || {
            ha(&["status"]).ok().filter(|s| {
                s.lines()
                    .any(|l| l.starts_with(&old_primary) && l.ends_with("synchronous standby"))
            })
        },
    )
    .await;
    let rejoined_at = Instant::now();
    let acked_rejoined = ctx.acked.load(Ordering::Relaxed);
    wait_until(
        "writes acknowledged after the rejoin",
        Duration::from_secs(60),
        || (ctx.acked.load(Ordering::Relaxed) >= acked_rejoined + 60).then_some(()),
    )
    .await;
    ctx.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("a client did not stop")
            .unwrap();
    }

    // What the clients saw.
    let log = std::mem::take(&mut *ctx.log.lock().unwrap());
    assert!(
        log.violations.is_empty(),
        "contract violations (500s, 503 without Retry-After, transport errors):\n{}",
        log.violations.join("\n")
    );
    let failed: Vec<&Seen> = log.requests.iter().filter(|s| s.status == 503).collect();
    let first_failure = failed.iter().map(|s| s.started).min();
    let last_failure = failed.iter().map(|s| s.ended).max();
    let first_success_after = log
        .requests
        .iter()
        .filter(|s| s.status < 300 && s.started > killed_at)
        .filter(|s| last_failure.is_none_or(|l| s.ended >= l))
        .map(|s| s.ended)
        .min();
    let samples = samples.lock().unwrap().clone();
    let unready_after_kill = samples
        .iter()
        .filter(|(t, _, s)| *t > killed_at && *s == 503)
        .count();
    eprintln!(
        "HA failover: {} writes sent, {} acknowledged appends, {} models approved, {} answered 503 \
         (Retry-After), {} succeeded on an idempotent retry ({} of them replayed from the ledger); {} \
         appends of unknown outcome",
        log.requests.len(),
        log.appended.len(),
        log.approved.len(),
        failed.len(),
        log.retried_ok,
        log.replayed,
        log.unknown.len()
    );
    let secs = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64();
    eprintln!(
        "HA failover: primary {old_primary} killed; {new_primary} primary after {:.2} s; old primary \
         restarted and rejoined as synchronous standby {:.2} s after the kill",
        secs(killed_at, promoted_at),
        secs(killed_at, rejoined_at)
    );
    if let (Some(first), Some(last)) = (first_failure, last_failure) {
        eprintln!(
            "HA failover: client-seen outage window {:.2} s (first 503 sent {:.2} s after the kill, \
             last 503 answered {:.2} s after it); first write acknowledged after the outage: {:.2} s \
             after the kill; /readyz answered 503 {} times after the kill",
            secs(first, last),
            secs(killed_at, first),
            secs(killed_at, last),
            first_success_after.map_or(f64::NAN, |t| secs(killed_at, t)),
            unready_after_kill
        );
    }
    assert!(unready_after_kill > 0, "/readyz never reported the outage");
    for (i, _) in servers.iter().enumerate() {
        let last = samples.iter().rev().find(|(_, s, _)| *s == i).unwrap();
        assert_eq!(last.2, 200, "instance {i} is not ready at the end");
    }

    // Every approval a client saw acknowledged is in force, read through either instance.
    for (i, (tenant, name, _)) in log.approved.iter().enumerate() {
        let token = &ctx.tokens[&(tenant.clone(), "approver")];
        let r = ctx
            .client
            .get(format!("{}/v1/models/{name}/versions/1", ctx.bases[i % 2]))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["approved"], true, "{tenant}/{name}: {v}");
    }

    // The services stop cleanly (and sign a checkpoint over everything on the way out).
    for server in servers {
        let (status, stderr) = server.terminate(Duration::from_secs(30));
        assert!(status.success(), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    // The ledger, independently: every tenant verifies, by the CLI and by the Python verifier.
    let verify = airisk()
        .args(["audit", "verify", "--database-url", &svc_url])
        .env("AIRISK_LEDGER_SIGNING_KEY", &signing_key)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "airisk audit verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let verifier_key = run_ok(
        airisk()
            .args([
                "audit",
                "export",
                "--tenant",
                TENANTS[0],
                "--database-url",
                &svc_url,
            ])
            .env("AIRISK_LEDGER_SIGNING_KEY", &signing_key),
    )
    .lines()
    .next()
    .map(|header| serde_json::from_str::<Value>(header).unwrap()["verifier_key"].clone())
    .and_then(|k| k.as_str().map(str::to_owned))
    .unwrap();
    let mut ledger_markers: HashMap<String, Vec<(String, u64, String)>> = HashMap::new();
    let mut registrations: HashMap<(String, String), usize> = HashMap::new();
    for tenant in TENANTS {
        let file = dir.join(format!("{tenant}.jsonl"));
        run_ok(
            airisk()
                .args([
                    "audit",
                    "export",
                    "--tenant",
                    tenant,
                    "--database-url",
                    &svc_url,
                    "--output",
                    file.to_str().unwrap(),
                ])
                .env("AIRISK_LEDGER_SIGNING_KEY", &signing_key),
        );
        run_ok(Command::new("python3").args([
            repo().join("tools/verify_export.py").to_str().unwrap(),
            file.to_str().unwrap(),
            "--verifier-key",
            &verifier_key,
            "--tenant",
            tenant,
        ]));
        let text = std::fs::read_to_string(&file).unwrap();
        for (expected_seq, line) in text.lines().skip(1).enumerate() {
            let entry: Value = serde_json::from_str(line).unwrap();
            let seq = entry["seq"].as_u64().unwrap();
            assert_eq!(seq, expected_seq as u64, "gap in the ledger of {tenant}");
            let leaf = base64::engine::general_purpose::STANDARD
                .decode(entry["leaf"].as_str().unwrap())
                .unwrap();
            let record: Value = serde_json::from_slice(&leaf).unwrap();
            let resource = record["resource_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let action = record["action"].as_str().unwrap_or_default();
            if action == "ha.probe" {
                ledger_markers.entry(resource).or_default().push((
                    tenant.to_owned(),
                    seq,
                    entry["leaf_hash"].as_str().unwrap().to_owned(),
                ));
            } else if action == "model.register" && record["outcome"] == "success" {
                *registrations
                    .entry((tenant.to_owned(), resource))
                    .or_default() += 1;
            }
        }
    }
    // Every acknowledged append is in the ledger exactly once, where its receipt says.
    for (marker, (tenant, seq, leaf_hash, _)) in &log.appended {
        let found = ledger_markers.get(marker).cloned().unwrap_or_default();
        assert_eq!(
            found,
            vec![(tenant.clone(), *seq, leaf_hash.clone())],
            "acknowledged append {marker} is not in the ledger exactly once at its receipt"
        );
    }
    // A record whose outcome the client did not learn is there at most once.
    for (_, marker) in &log.unknown {
        let n = ledger_markers.get(marker).map_or(0, Vec::len);
        assert!(n <= 1, "append {marker} is in the ledger {n} times");
    }
    // No record the clients did not send.
    for marker in ledger_markers.keys() {
        assert!(
            log.appended.contains_key(marker) || log.unknown.iter().any(|(_, m)| m == marker),
            "the ledger holds {marker}, which no client sent"
        );
    }
    // Every approved model was registered exactly once.
    assert!(!log.approved.is_empty());
    for (tenant, name, _) in &log.approved {
        let n = registrations
            .get(&(tenant.clone(), format!("{name}@1")))
            .copied()
            .unwrap_or(0);
        assert_eq!(n, 1, "{tenant}/{name} has {n} registration records");
    }
    psql(&admin_url, &format!("DROP DATABASE {db} WITH (FORCE)"));
    let _ = std::fs::remove_dir_all(&dir);
}

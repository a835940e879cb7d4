//! The MLflow integration against a real MLflow tracking server (PyPI `mlflow`, SQLite backend,
//! artifacts served, on 127.0.0.1), started by the test and stopped by it.
//!
//! MLflow comes from the virtualenv `scripts/setup-mlflow.sh` makes (`target/mlflow-venv`, or
//! `AIRISK_MLFLOW_VENV`). Without it the test says so and passes, unless
//! `AIRISK_REQUIRE_MLFLOW=1` (set by scripts/test.sh and CI), where a missing MLflow fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly
#![allow(clippy::indexing_slicing)] // tests index JSON they just checked

use std::net::TcpListener as StdListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airisk_core::governance::audit_logger::CheckpointPolicy;
use airisk_core::ledger::{LedgerName, LedgerSigner};
use airisk_core::ports::{SystemClock, UuidV7Generator};
use airisk_core::security::rbac::Role;
use airisk_server::auth::{Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER, JwtVerifier, TokenSigner};
use airisk_server::https::HttpsClient;
use airisk_server::integrations::mlflow::client::MlflowClient;
use airisk_server::integrations::mlflow::signature::sign;
use airisk_server::integrations::mlflow::{
    BaselineAlias, Instance, MlflowIntegration, SyncSettings,
};
use airisk_server::{AppState, LedgerConfig, ServerConfig, Stores};
use airisk_testkit::InMemoryStore;
use serde_json::{Value, json};
use zeroize::Zeroizing;

const SECRET: &[u8; 32] = b"test-secret-test-secret-test-sec";
const WEBHOOK_SECRET: &str = "webhook-secret-of-the-risk-instance";
const TENANT: &str = "acme";
const INSTANCE: &str = "risk";
/// Longest any single wait in this test may take.
const DEADLINE: Duration = Duration::from_secs(120);
/// Longest MLflow may take to start (3.17 migrates a fresh database for a while; longer on a
/// loaded machine).
const START_DEADLINE: Duration = Duration::from_secs(300);

fn venv() -> Option<PathBuf> {
    let dir = std::env::var_os("AIRISK_MLFLOW_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/mlflow-venv"));
    dir.join("bin/python").exists().then_some(dir)
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `mlflow server`, in its own process group (it forks uvicorn workers), killed with
/// the group on drop.
struct MlflowServer {
    child: Option<Child>,
    venv: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl MlflowServer {
    fn start(venv: &Path, dir: &Path, port: u16) -> MlflowServer {
        std::fs::create_dir_all(dir).unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        // `python -m mlflow`, not `bin/mlflow`: a copied venv's console scripts name the
        // venv they were installed in.
        let child = Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                &format!("sqlite:///{}", dir.join("mlflow.db").display()),
                "--artifacts-destination",
                &dir.join("artifacts").display().to_string(),
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--workers",
                "1",
            ])
            // airisk listens on plain HTTP on loopback in this test.
            .env("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http")
            // MLflow 3.5+ refuses webhooks to private addresses (SSRF guard); airisk is on
            // loopback here.
            .env("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
            // MLflow caches its webhook list for 60 s by default.
            .env("MLFLOW_WEBHOOK_CACHE_TTL", "0")
            .env("MLFLOW_WEBHOOK_REQUEST_TIMEOUT", "60")
            // Without a fixed key MLflow encrypts webhook secrets under a key it makes per
            // process, and after a restart can no longer deliver any webhook.
            .env(
                "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY",
                "ZmRzYWZkc2FmZHNhZmRzYWZkc2FmZHNhZmRzYWZkc2E=",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start mlflow server");
        MlflowServer {
            child: Some(child),
            venv: venv.to_owned(),
            dir: dir.to_owned(),
            port,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{}/health", self.url())).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                started.elapsed() < START_DEADLINE,
                "mlflow did not start; see {}",
                self.dir.join("server.log").display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            // The uvicorn worker is in the same group; give the port back before returning.
            let started = Instant::now();
            while StdListener::bind(("127.0.0.1", self.port)).is_err()
                && started.elapsed() < DEADLINE
            {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn restart(&mut self) {
        self.stop();
        let venv = self.venv.clone();
        let dir = self.dir.clone();
        *self = MlflowServer::start(&venv, &dir, self.port);
    }

    /// Logs a version with the MLflow client; returns (version, oracle digest).
    async fn log_version(&self, name: &str, marker: &str) -> (String, String) {
        self.log_version_as(name, marker, "mlflow-test-runner")
            .await
    }

    /// Logs a version as operating-system user `user` (what MLflow's client records as the
    /// run's user, `getpass.getuser()`); returns (version, oracle digest).
    async fn log_version_as(&self, name: &str, marker: &str, user: &str) -> (String, String) {
        let v = self
            .script(
                "log_version.py",
                [name, marker],
                [("LOGNAME", user), ("USER", user)],
            )
            .await;
        (
            v["version"].as_str().unwrap().to_owned(),
            v["digest"].as_str().unwrap().to_owned(),
        )
    }

    /// Registers a prompt version with MLflow's client; returns (version, oracle SHA-256 of the
    /// template).
    async fn register_prompt(&self, name: &str, template: &str) -> (String, String) {
        let v = self
            .script("register_prompt.py", [name, template], [])
            .await;
        (
            v["version"].as_str().unwrap().to_owned(),
            v["sha256"].as_str().unwrap().to_owned(),
        )
    }

    /// Runs `tests/mlflow/<script>` with the venv's Python against this server (its URL first,
    /// then `args`; `env` added), checks it succeeded, and returns the JSON of its last line.
    async fn script<const A: usize, const E: usize>(
        &self,
        script: &str,
        args: [&str; A],
        env: [(&str, &str); E],
    ) -> Value {
        let python = self.venv.join("bin/python");
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/mlflow")
            .join(script);
        let args: Vec<String> = std::iter::once(self.url())
            .chain(args.iter().map(|a| (*a).to_owned()))
            .collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(python)
                .arg(path)
                .args(args)
                .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
                .envs(env)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{script} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(line.lines().last().unwrap()).unwrap()
    }

    /// When MLflow says it created version `version` of `name` (its `creation_timestamp`, ms).
    async fn created_ms(&self, name: &str, version: &str) -> i64 {
        reqwest::Client::new()
            .get(format!(
                "{}/api/2.0/mlflow/model-versions/get?name={name}&version={version}",
                self.url()
            ))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["model_version"]["creation_timestamp"]
            .as_i64()
            .unwrap()
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Airisk {
    url: String,
    http: reqwest::Client,
    tokens: TokenSigner,
}

impl Airisk {
    fn token(&self, sub: &str, role: Role, service: bool) -> String {
        let mut claims = Claims::new(sub, TENANT, role, 600);
        if service {
            claims.kind = Some("service".into());
        }
        self.tokens.sign(&claims).unwrap()
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn webhook(
        &self,
        instance: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (u16, Value) {
        let mut r = self
            .http
            .post(format!(
                "{}/v1/integrations/mlflow/webhook?instance={instance}",
                self.url
            ))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until airisk knows version `version` of model `credit`; returns it as `viewer`
    /// reads it.
    async fn registered(&self, version: &str, viewer: &str, what: &str) -> Value {
        eventually(what, || async {
            let (s, m) = self
                .get(&format!("/v1/models/credit/versions/{version}"), viewer)
                .await;
            (s == 200).then_some(m)
        })
        .await
    }

    /// `verb` (`approve` or `reject`) version `version` of model `credit` as `token`, with
    /// `reason`; (status, body).
    async fn decide(&self, version: &str, verb: &str, token: &str, reason: &str) -> (u16, Value) {
        self.post(
            &format!("/v1/models/credit/versions/{version}/{verb}"),
            token,
            &json!({"reason": reason}),
        )
        .await
    }

    /// Audit entries of `action` with `outcome`.
    async fn audit(&self, action: &str, outcome: &str) -> Vec<Value> {
        let token = self.token("aud", Role::Admin, false);
        let (status, page) = self
            .get(
                &format!("/v1/audit/events?action={action}&outcome={outcome}&limit=1000"),
                &token,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        page["entries"].as_array().unwrap().clone()
    }
}

/// Polls `check` until it returns `Some`, within the deadline.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn alias_of(mlflow: &MlflowClient, name: &str) -> Option<String> {
    mlflow.alias_target(name, "production").await.ok().flatten()
}

/// Waits until MLflow's `production` alias of `name` points at `version`.
async fn production_at(mlflow: &MlflowClient, name: &str, version: &str, what: &str) {
    eventually(what, || async {
        (alias_of(mlflow, name).await.as_deref() == Some(version)).then_some(())
    })
    .await
}

/// Waits until version `version` of `name` carries the tag `airisk.approval_status` = `status`
/// in MLflow; returns its tags.
async fn tagged(
    mlflow: &MlflowClient,
    name: &str,
    version: &str,
    status: &str,
    what: &str,
) -> std::collections::BTreeMap<String, String> {
    eventually(what, || async {
        let mv = mlflow.model_version(name, version).await.ok()?;
        let tags = airisk_server::integrations::mlflow::client::tag_map(&mv.tags);
        (tags.get("airisk.approval_status").map(String::as_str) == Some(status)).then_some(tags)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mlflow_version_needs_an_airisk_approval_before_production_points_at_it() {
    let Some(venv) = venv() else {
        assert!(
            std::env::var("AIRISK_REQUIRE_MLFLOW").as_deref() != Ok("1"),
            "AIRISK_REQUIRE_MLFLOW=1 but no MLflow virtualenv: run scripts/setup-mlflow.sh"
        );
        eprintln!(
            "note: no MLflow virtualenv (scripts/setup-mlflow.sh); the MLflow test did not run"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("airisk-mlflow-test-{}", uuid::Uuid::now_v7()));
    let mut server = MlflowServer::start(&venv, &dir, free_port());

    // airisk, with the instance connected.
    let store = Arc::new(InMemoryStore::new(Arc::new(SystemClock)));
    let auth = JwtVerifier::new(DEFAULT_ISSUER, DEFAULT_AUDIENCE)
        .dangerous_with_hs256_secret(SECRET)
        .unwrap();
    let state = AppState::new(
        Stores {
            audit: store.clone(),
            governance: store,
        },
        Arc::new(SystemClock),
        Arc::new(UuidV7Generator),
        LedgerConfig {
            signer: Arc::new(
                LedgerSigner::generate(LedgerName::parse("airisk.test/ledger").unwrap()).unwrap(),
            ),
            policy: CheckpointPolicy::default(),
        },
        auth,
        ServerConfig::default(),
    );
    let http = reqwest::Client::new();
    let https = HttpsClient::new(None).unwrap();
    // A model already in production before airisk is connected: its alias is the baseline.
    server.wait_ready().await;
    let (legacy, _) = server.log_version("legacy", "old").await;
    MlflowClient::new(https.clone(), &server.url(), None)
        .set_alias("legacy", "production", &legacy)
        .await
        .unwrap();
    let instance = Instance::new(
        INSTANCE,
        &server.url(),
        TENANT,
        Zeroizing::new(WEBHOOK_SECRET.as_bytes().to_vec()),
        None,
        vec!["production".into()],
        https.clone(),
    )
    .unwrap()
    .with_baseline(vec![BaselineAlias {
        model: "legacy".into(),
        alias: "production".into(),
        version: legacy.clone(),
    }])
    // The MLflow user `jdoe` is John Doe in airisk; everyone else is their own canonical name.
    .with_authors(&[("jdoe".to_owned(), "John.Doe@bank.example".to_owned())].into())
    .unwrap();
    let integration = Arc::new(
        MlflowIntegration::new(
            vec![instance],
            SyncSettings {
                tick: Duration::from_millis(200),
                reconcile_every: Duration::from_secs(3600),
                max_backoff: Duration::from_secs(1),
            },
        )
        .unwrap(),
    );
    assert!(state.connect_mlflow(integration.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(airisk_server::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    let sync = tokio::spawn(integration.clone().run(state.clone()));
    let airisk = Airisk {
        url: format!("http://{addr}"),
        http: http.clone(),
        tokens: TokenSigner::Hs256(Zeroizing::new(SECRET.to_vec())),
    };
    let mlflow = MlflowClient::new(https.clone(), &server.url(), None);

    server.wait_ready().await;
    // What `airisk integrations mlflow connect` does: MLflow's webhook to airisk.
    let webhook_id = mlflow
        .create_webhook(
            "airisk",
            &format!(
                "{}/v1/integrations/mlflow/webhook?instance={INSTANCE}",
                airisk.url
            ),
            WEBHOOK_SECRET,
        )
        .await
        .unwrap();

    let viewer = airisk.token("vic", Role::Viewer, false);
    let approver = airisk.token("alice", Role::Approver, false);

    // 1. A version logged with the MLflow client becomes a PENDING request with the digest
    //    airisk computed from the artifacts; the oracle hashed the local files.
    let (v1, digest1) = server.log_version("credit", "one").await;
    let model = airisk
        .registered(&v1, &viewer, "version 1 registered in airisk")
        .await;
    assert_eq!(model["checksum"], digest1);
    assert_eq!(model["status"], "PENDING", "{model}");
    assert_eq!(model["metadata"]["mlflow"]["instance"], INSTANCE);
    assert_eq!(model["metadata"]["mlflow"]["tags"]["team"], "credit-risk");
    assert_eq!(model["metadata"]["mlflow"]["description"], "gbm one");
    let registered_ms = chrono::DateTime::parse_from_rfc3339(model["created_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    let mlflow_created_ms = server.created_ms("credit", &v1).await;
    eprintln!(
        "latency: MLflow version created -> airisk request registered: {} ms",
        registered_ms - mlflow_created_ms
    );
    assert_eq!(
        alias_of(&mlflow, "credit").await,
        None,
        "nothing moved production yet"
    );

    // 2. The registrant (the instance's service principal) cannot approve.
    let registrant = airisk.token(&format!("mlflow:{INSTANCE}"), Role::Admin, true);
    let (s, _) = airisk.decide(&v1, "approve", &registrant, "self").await;
    assert_eq!(s, 403);

    // 3. An approver approves: the alias moves in MLflow and the version is tagged.
    let approved_at = Instant::now();
    let (s, body) = airisk.decide(&v1, "approve", &approver, "validated").await;
    assert_eq!(s, 200, "{body}");
    production_at(&mlflow, "credit", &v1, "production -> version 1").await;
    eprintln!(
        "latency: approval in airisk -> alias moved in MLflow: {} ms",
        approved_at.elapsed().as_millis()
    );
    let tags = tagged(
        &mlflow,
        "credit",
        &v1,
        "approved",
        "approval tags on version 1",
    )
    .await;
    assert_eq!(tags["airisk.approval_id"], body["id"].as_str().unwrap());
    assert!(!airisk.audit("mlflow.alias.set", "success").await.is_empty());

    // 3b. Four eyes against the MLflow author: the user MLflow recorded for the version's run
    //     opens its request in airisk, so that person cannot approve it (any case variant of
    //     their canonical identity), nor can the airisk identity an MLflow user is mapped to.
    for (marker, mlflow_user, airisk_identity, approver_spelling) in [
        ("by-alice", "Alice.Maker", "alice.maker", "ALICE.maker"),
        (
            "by-jdoe",
            "jdoe",
            "john.doe@bank.example",
            "John.Doe@Bank.Example",
        ),
    ] {
        let (v, _) = server.log_version_as("credit", marker, mlflow_user).await;
        let m = airisk
            .registered(&v, &viewer, "the authored version registered")
            .await;
        let author = &m["metadata"]["mlflow"]["author"];
        assert_eq!(author["mlflow_user"], mlflow_user, "{m}");
        assert_eq!(author["source"], "run", "{m}");
        assert_eq!(author["airisk_identity"], airisk_identity, "{m}");
        assert_eq!(m["registered_by"], airisk_identity, "{m}");
        let own = airisk.token(approver_spelling, Role::Approver, false);
        let (s, problem) = airisk.decide(&v, "approve", &own, "my own work").await;
        assert_eq!(s, 403, "the author approved their own version: {problem}");
        // Someone else may decide it (rejected here, so production stays where it is).
        let (s, body) = airisk.decide(&v, "reject", &approver, "not this one").await;
        assert_eq!(s, 200, "{body}");
    }

    // 4. Someone points production at an unapproved version directly in MLflow: airisk records
    //    the bypass and moves the alias back.
    let (v2, digest2) = server.log_version("credit", "two").await;
    let m2 = airisk
        .registered(&v2, &viewer, "version 2 registered")
        .await;
    assert_eq!(m2["checksum"], digest2.as_str(), "{m2}");
    mlflow.set_alias("credit", "production", &v2).await.unwrap();
    let bypass = eventually("bypass recorded", || async {
        let e: Vec<Value> = airisk
            .audit("mlflow.alias.bypass", "denied")
            .await
            .into_iter()
            .filter(|e| e["record"]["resource_id"] == "credit#production")
            .collect();
        (!e.is_empty()).then_some(e)
    })
    .await;
    let record = &bypass[0]["record"];
    assert_eq!(record["metadata"]["found_version"], v2.as_str());
    assert_eq!(record["metadata"]["restored_version"], v1.as_str());
    production_at(&mlflow, "credit", &v1, "production back on version 1").await;

    // 5. MLflow is down while version 2 is approved: the approval stands, the sync is visible as
    //    pending, and completes when MLflow is back.
    server.stop();
    let (s, body) = airisk.decide(&v2, "approve", &approver, "ok").await;
    assert_eq!(s, 200, "{body}");
    let admin = airisk.token("root", Role::Admin, false);
    eventually("pending sync visible", || async {
        let (_, st) = airisk.get("/v1/integrations/mlflow/status", &viewer).await;
        let pending = st["instances"][0]["pending_sync"].as_array()?.clone();
        pending
            .iter()
            .any(|p| p["version"] == v2.as_str() && p["decision"] == "APPROVED")
            .then_some(())
    })
    .await;
    let (_, m2) = airisk
        .get(&format!("/v1/models/credit/versions/{v2}"), &viewer)
        .await;
    assert_eq!(m2["status"], "APPROVED");
    let failed = airisk.audit("mlflow.sync", "denied").await;
    assert!(!failed.is_empty(), "failed MLflow calls are recorded");
    server.restart();
    server.wait_ready().await;
    let back = Instant::now();
    production_at(
        &mlflow,
        "credit",
        &v2,
        "production -> version 2 after MLflow returns",
    )
    .await;
    eprintln!(
        "latency: MLflow back -> pending sync applied: {} ms",
        back.elapsed().as_millis()
    );
    eventually("nothing pending", || async {
        let (_, st) = airisk.get("/v1/integrations/mlflow/status", &viewer).await;
        st["instances"][0]["pending_sync"]
            .as_array()?
            .is_empty()
            .then_some(())
    })
    .await;

    // 5b. A rejected version is tagged rejected in MLflow; production does not move.
    let (v3, _) = server.log_version("credit", "three").await;
    airisk
        .registered(&v3, &viewer, "version 3 registered")
        .await;
    let (s, body) = airisk
        .decide(&v3, "reject", &approver, "drift in validation")
        .await;
    assert_eq!(s, 200, "{body}");
    tagged(
        &mlflow,
        "credit",
        &v3,
        "rejected",
        "version 3 tagged rejected",
    )
    .await;
    assert_eq!(
        alias_of(&mlflow, "credit").await.as_deref(),
        Some(v2.as_str())
    );

    // 5c. Prompts: a version registered in MLflow's Prompt Registry becomes a version of airisk
    //     prompt mlflow/risk/<name> (the template read from MLflow, hashed by airisk) with a
    //     PENDING request for the protected alias; approval moves airisk's label and the alias in
    //     MLflow; a direct move of the alias in MLflow is recorded and undone.
    let template1 = "Hello {{name}}, here is the decision on your loan.";
    let (p1, sha1) = server.register_prompt("greeting", template1).await;
    let pending_prompt = |version: &str| {
        let version: u64 = version.parse().unwrap();
        let airisk = &airisk;
        let viewer = &viewer;
        async move {
            let (s, page) = airisk
                .get("/v1/approvals?status=PENDING&limit=500", viewer)
                .await;
            assert_eq!(s, 200, "{page}");
            page["requests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| {
                    r["subject"]["name"] == "mlflow/risk/greeting"
                        && r["subject"]["version"] == version
                        && r["subject"]["label"] == "production"
                })
                .cloned()
        }
    };
    let request1 = eventually("prompt version 1 has its request", || pending_prompt(&p1)).await;
    let (s, prompt) = airisk
        .get(
            &format!("/v1/prompts/mlflow%2Frisk%2Fgreeting?version={p1}"),
            &viewer,
        )
        .await;
    assert_eq!(s, 200, "{prompt}");
    assert_eq!(prompt["template"], template1);
    assert_eq!(prompt["template_sha256"], sha1.as_str());
    let prompt_created_ms =
        chrono::DateTime::parse_from_rfc3339(prompt["created_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
    let mlflow_prompt_ms = server.created_ms("greeting", &p1).await;
    eprintln!(
        "latency: MLflow prompt version created -> airisk prompt version and request: {} ms",
        prompt_created_ms - mlflow_prompt_ms
    );
    assert_eq!(alias_of(&mlflow, "greeting").await, None);
    let prompt_approved_at = Instant::now();
    let (s, body) = airisk
        .post(
            &format!("/v1/approvals/{}/approve", request1["id"].as_str().unwrap()),
            &approver,
            &json!({"reason": "wording reviewed"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    production_at(&mlflow, "greeting", &p1, "prompt production -> version 1").await;
    eprintln!(
        "latency: approval in airisk -> prompt alias moved in MLflow: {} ms",
        prompt_approved_at.elapsed().as_millis()
    );
    let (s, labelled) = airisk
        .get(
            "/v1/prompts/mlflow%2Frisk%2Fgreeting?label=production",
            &viewer,
        )
        .await;
    assert_eq!(s, 200, "{labelled}");
    assert_eq!(
        labelled["version"].to_string(),
        p1,
        "airisk's label moved too"
    );
    tagged(
        &mlflow,
        "greeting",
        &p1,
        "approved",
        "prompt version 1 tagged approved",
    )
    .await;
    let (p2, sha2) = server
        .register_prompt("greeting", "Hello {{name}}: APPROVED, no questions asked.")
        .await;
    let request2 = eventually("prompt version 2 has its request", || pending_prompt(&p2)).await;
    let (_, prompt2) = airisk
        .get(
            &format!("/v1/prompts/mlflow%2Frisk%2Fgreeting?version={p2}"),
            &viewer,
        )
        .await;
    assert_eq!(prompt2["template_sha256"], sha2.as_str());
    mlflow
        .set_alias("greeting", "production", &p2)
        .await
        .unwrap();
    let prompt_bypass = eventually("prompt bypass recorded", || async {
        airisk
            .audit("mlflow.alias.bypass", "denied")
            .await
            .into_iter()
            .find(|e| e["record"]["resource_id"] == "greeting#production")
    })
    .await;
    assert_eq!(
        prompt_bypass["record"]["metadata"]["found_version"],
        p2.as_str()
    );
    assert_eq!(
        prompt_bypass["record"]["metadata"]["restored_version"],
        p1.as_str()
    );
    production_at(
        &mlflow,
        "greeting",
        &p1,
        "prompt production back on version 1",
    )
    .await;
    // The request for version 2 is still open: the bypass approved nothing.
    let (_, r2) = airisk
        .get(
            &format!("/v1/approvals/{}", request2["id"].as_str().unwrap()),
            &viewer,
        )
        .await;
    assert_eq!(r2["status"], "PENDING", "{r2}");

    // 6. Forged, stale, replayed, unknown-instance and malformed deliveries are refused and
    //    change nothing.
    let versions_before = airisk.get("/v1/models/credit/versions", &viewer).await.1;
    let body = br#"{"entity":"model_version","action":"created","timestamp":"x","data":{"name":"credit","version":"99"}}"#;
    let now = chrono::Utc::now().timestamp();
    let headers = |id: &str, ts: i64, sig: String| {
        vec![
            ("x-mlflow-delivery-id", id.to_owned()),
            ("x-mlflow-timestamp", ts.to_string()),
            ("x-mlflow-signature", sig),
        ]
    };
    let forged = sign(b"not-the-secret-not-the-secret", "d-1", now, body);
    assert_eq!(
        airisk
            .webhook(INSTANCE, &headers("d-1", now, forged), body)
            .await
            .0,
        401
    );
    let stale = sign(WEBHOOK_SECRET.as_bytes(), "d-2", now - 3600, body);
    assert_eq!(
        airisk
            .webhook(INSTANCE, &headers("d-2", now - 3600, stale), body)
            .await
            .0,
        401
    );
    let good = sign(WEBHOOK_SECRET.as_bytes(), "d-3", now, body);
    assert_eq!(
        airisk
            .webhook("other", &headers("d-3", now, good.clone()), body)
            .await
            .0,
        404
    );
    let garbage = b"not json";
    let signed_garbage = sign(WEBHOOK_SECRET.as_bytes(), "d-4", now, garbage);
    let (s, problem) = airisk
        .webhook(INSTANCE, &headers("d-4", now, signed_garbage), garbage)
        .await;
    assert_eq!(s, 400, "{problem}");
    // A genuine delivery for an event airisk ignores, then the same delivery again.
    let ignored = br#"{"entity":"model_version_tag","action":"set","timestamp":"x","data":{"name":"credit","version":"1","key":"k","value":"v"}}"#;
    let sig = sign(WEBHOOK_SECRET.as_bytes(), "d-5", now, ignored);
    assert_eq!(
        airisk
            .webhook(INSTANCE, &headers("d-5", now, sig.clone()), ignored)
            .await
            .0,
        200
    );
    let (s, problem) = airisk
        .webhook(INSTANCE, &headers("d-5", now, sig), ignored)
        .await;
    assert_eq!(s, 409, "{problem}");
    assert_eq!(problem["type"], "urn:airisk:problem:replayed-delivery");
    assert_eq!(
        airisk.get("/v1/models/credit/versions", &viewer).await.1,
        versions_before
    );
    let refusals = airisk.audit("mlflow.webhook.receive", "denied").await;
    assert!(
        refusals.len() >= 4,
        "forged, stale, malformed and replayed are recorded: {}",
        refusals.len()
    );

    // 6b. A version whose artifacts MLflow does not serve cannot be hashed: not registered,
    //     recorded, so it can never be approved.
    let created: Value = http
        .post(format!(
            "{}/api/2.0/mlflow/model-versions/create",
            server.url()
        ))
        .json(&json!({"name": "credit", "source": "s3://bucket/credit/model"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let unserved = created["model_version"]["version"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(
        "the unhashable version is recorded as not registered",
        || async {
            let refused = airisk.audit("mlflow.version.register", "denied").await;
            refused
                .iter()
                .any(|e| e["record"]["resource_id"] == format!("credit@{unserved}").as_str())
                .then_some(())
        },
    )
    .await;
    let (s, _) = airisk
        .get(&format!("/v1/models/credit/versions/{unserved}"), &viewer)
        .await;
    assert_eq!(s, 404);

    // 7. A version whose webhook never arrived (the webhook is gone) is found and registered by
    //    the reconcile, which has no alias to repair now.
    mlflow.delete_webhook(&webhook_id).await.unwrap();
    let (v4, digest4) = server.log_version("credit", "four").await;
    let (s, _) = airisk
        .get(&format!("/v1/models/credit/versions/{v4}"), &viewer)
        .await;
    assert_eq!(
        s, 404,
        "no webhook, so airisk does not know version {v4} yet"
    );
    let (s, report) = airisk
        .post("/v1/integrations/mlflow/reconcile", &admin, &json!({}))
        .await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["instances"][0]["registered"], 1, "{report}");
    assert_eq!(report["instances"][0]["repaired"], 0, "{report}");
    // The baseline alias was left where it was (its version is PENDING, not approved), and its
    // keeping is on the record.
    assert_eq!(
        alias_of(&mlflow, "legacy").await.as_deref(),
        Some(legacy.as_str())
    );
    assert!(
        airisk
            .audit("mlflow.alias.bypass", "denied")
            .await
            .iter()
            .all(|e| e["record"]["resource_id"] != "legacy#production")
    );
    assert_eq!(airisk.audit("mlflow.baseline", "success").await.len(), 1);
    let (s, m4) = airisk
        .get(&format!("/v1/models/credit/versions/{v4}"), &viewer)
        .await;
    assert_eq!(s, 200);
    assert_eq!(m4["checksum"], digest4.as_str());
    assert_eq!(m4["status"], "PENDING");
    let (s, verify) = airisk.get("/v1/audit/verify", &admin).await;
    assert_eq!(s, 200);
    assert_eq!(verify["intact"], true, "{verify}");

    sync.abort();
    let _ = stop.send(());
    let _ = serving.await;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

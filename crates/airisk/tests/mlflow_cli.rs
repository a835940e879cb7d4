//! `airisk integrations mlflow connect|list|disconnect` against a real MLflow tracking server
//! (from `scripts/setup-mlflow.sh`; skipped with a note when it is not installed, unless
//! `AIRISK_REQUIRE_MLFLOW=1`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly
#![allow(clippy::indexing_slicing)] // tests index JSON they just checked

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

const SECRET: &str = "cli-test-webhook-secret-0123456789";

struct Mlflow(Child);

impl Drop for Mlflow {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

fn venv() -> Option<PathBuf> {
    let dir = std::env::var_os("AIRISK_MLFLOW_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/mlflow-venv"));
    dir.join("bin/python").exists().then_some(dir)
}

fn airisk(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airisk"));
    c.args(args).env_remove("AIRISK_MLFLOW_WEBHOOK_SECRET");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn webhooks(port: u16) -> Vec<Value> {
    let body = http_get(&format!("http://127.0.0.1:{port}/api/2.0/mlflow/webhooks"));
    let v: Value = serde_json::from_str(&body).unwrap();
    v["webhooks"].as_array().cloned().unwrap_or_default()
}

/// A JSON POST on a throwaway runtime.
fn http_post(url: &str, body: Value) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let r = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_success(),
                "{url}: {}",
                r.text().await.unwrap()
            );
        });
}

/// A GET on a throwaway runtime (the binary's tests have no async harness).
fn http_get(url: &str) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}

#[test]
fn connect_creates_the_webhook_in_mlflow_and_disconnect_removes_it() {
    let Some(venv) = venv() else {
        assert!(
            std::env::var("AIRISK_REQUIRE_MLFLOW").as_deref() != Ok("1"),
            "AIRISK_REQUIRE_MLFLOW=1 but no MLflow virtualenv: run scripts/setup-mlflow.sh"
        );
        eprintln!("note: no MLflow virtualenv (scripts/setup-mlflow.sh); this test did not run");
        return;
    };
    let dir = support::fresh_dir("airisk-mlflow-cli");
    let port = support::free_port();
    // `python -m mlflow`, not `bin/mlflow`: a copied venv's console scripts name the venv
    // they were installed in.
    let child = Command::new(venv.join("bin/python"))
        .args([
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            &format!("sqlite:///{}", dir.join("mlflow.db").display()),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--workers",
            "1",
        ])
        .env("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http")
        // MLflow 3.5+ refuses webhooks to private addresses (SSRF guard); airisk is on loopback.
        .env("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let _mlflow = Mlflow(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            // MLflow 3.17 migrates a fresh database for a while; longer on a loaded machine.
            started.elapsed() < Duration::from_secs(300),
            "mlflow did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A model already in production before airisk is connected.
    let api = format!("http://127.0.0.1:{port}/api/2.0/mlflow");
    http_post(
        &format!("{api}/registered-models/create"),
        serde_json::json!({"name": "credit"}),
    );
    http_post(
        &format!("{api}/model-versions/create"),
        serde_json::json!({"name": "credit", "source": "s3://bucket/credit"}),
    );
    http_post(
        &format!("{api}/registered-models/alias"),
        serde_json::json!({"name": "credit", "alias": "production", "version": "1"}),
    );
    let file = dir.join("mlflow.toml");
    let file_arg = file.to_str().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let connect = [
        "integrations",
        "mlflow",
        "connect",
        "--file",
        file_arg,
        "--id",
        "risk",
        "--url",
        &url,
        "--tenant",
        "acme",
        "--protected-alias",
        "production",
        "--protected-alias",
        "champion",
        "--airisk-url",
        "http://127.0.0.1:8080",
    ];

    // Without the secret in the environment: refused, nothing created.
    let out = airisk(&connect, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AIRISK_MLFLOW_WEBHOOK_SECRET"));
    assert!(webhooks(port).is_empty());
    assert!(!file.exists());

    let out = airisk(&connect, &[("AIRISK_MLFLOW_WEBHOOK_SECRET", SECRET)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hooks = webhooks(port);
    assert_eq!(hooks.len(), 1);
    assert_eq!(
        hooks[0]["url"],
        "http://127.0.0.1:8080/v1/integrations/mlflow/webhook?instance=risk"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(SECRET), "the file never holds the secret");
    assert!(text.contains("webhook_secret_env = \"AIRISK_MLFLOW_WEBHOOK_SECRET\""));
    assert!(text.contains(hooks[0]["webhook_id"].as_str().unwrap()));
    // The live production alias is kept as the baseline; champion is not set anywhere.
    let parsed: toml::Value = toml::from_str(&text).unwrap();
    let baseline = parsed["instances"][0]["baseline"].as_array().unwrap();
    assert_eq!(baseline.len(), 1, "{text}");
    assert_eq!(baseline[0]["model"].as_str(), Some("credit"));
    assert_eq!(baseline[0]["alias"].as_str(), Some("production"));
    assert_eq!(baseline[0]["version"].as_str(), Some("1"));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Connecting the same id twice is refused.
    let out = airisk(&connect, &[("AIRISK_MLFLOW_WEBHOOK_SECRET", SECRET)]);
    assert!(!out.status.success());
    assert_eq!(webhooks(port).len(), 1);

    let out = airisk(&["integrations", "mlflow", "list", "--file", file_arg], &[]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("risk") && listed.contains("production,champion"),
        "{listed}"
    );

    let out = airisk(
        &[
            "integrations",
            "mlflow",
            "disconnect",
            "--file",
            file_arg,
            "--id",
            "risk",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(webhooks(port).is_empty());
    assert!(!std::fs::read_to_string(&file).unwrap().contains("risk"));

    // The service token of `reconcile` is refused on the command line.
    let out = airisk(
        &[
            "integrations",
            "mlflow",
            "reconcile",
            "--url",
            "http://127.0.0.1:1",
            "--token",
            "x",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

//! The rollback of issue 11, end to end with the real binary: `airisk serve --dev` on a SQLite
//! file, an older copy of the database files restored, and the API asked about it. `GET
//! /v1/audit/verify` cannot see it (the restored ledger is consistent with itself); `POST
//! /v1/audit/verify` with the checkpoint an auditor kept before the restore reports it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running `airisk serve --dev`, killed on drop if the test did not stop it.
struct Server {
    child: Child,
    exports: HashMap<String, String>,
    base: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(database_url: &str) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_airisk"));
        for var in [
            "AIRISK_ENCRYPTION_KEYS",
            "AIRISK_LEDGER_SIGNING_KEY",
            "AIRISK_JWT_SECRET",
            "AIRISK_JWKS_FILE",
            "AIRISK_DATABASE_URL",
            "AIRISK_BIND",
            "AIRISK_CONFIG",
        ] {
            cmd.env_remove(var);
        }
        let mut child = cmd
            .args(["serve", "--dev", "--database-url", database_url])
            .args(["--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut exports = HashMap::new();
        let base = loop {
            let line = lines
                .next()
                .expect("airisk serve exited before listening")
                .unwrap();
            if let Some((k, v)) = line
                .strip_prefix("export ")
                .and_then(|kv| kv.split_once('='))
            {
                exports.insert(k.to_owned(), v.to_owned());
            }
            if let Some(url) = line
                .strip_prefix("# airisk listening on ")
                .or_else(|| line.strip_prefix("airisk listening on "))
            {
                break url.to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            exports,
            base,
            stderr: Some(stderr),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, and wait (bounded) for a clean exit: the database is closed after this.
    fn stop(mut self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let exit = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "airisk serve did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr.take().unwrap().join().unwrap();
        assert!(exit.success(), "{stderr}");
    }

    async fn append(&self, client: &reqwest::Client, n: usize) {
        let analyst = &self.exports["ANALYST_TOKEN"];
        for i in 0..n {
            let r = client
                .post(self.url("/v1/audit/events"))
                .bearer_auth(analyst)
                .json(
                    &json!({"action": "report.generate", "resource_type": "report",
                              "resource_id": format!("r-{i}")}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    }
}

/// The database file and its WAL companions, live and in `backup`.
fn files(live: &Path, backup: &Path) -> Vec<(PathBuf, PathBuf)> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|s| {
            (
                PathBuf::from(format!("{}{s}", live.display())),
                backup.join(format!("dev.db{s}")),
            )
        })
        .collect()
}

#[tokio::test]
async fn restoring_an_older_copy_of_the_database_is_reported_against_a_kept_checkpoint() {
    let dir = std::env::temp_dir().join(format!("airisk-rollback-{}", uuid::Uuid::now_v7()));
    let db = dir.join("dev.db");
    let url = format!("sqlite://{}", db.display());
    let backup = dir.join("backup");
    let client = reqwest::Client::new();

    let first = Server::start(&url);
    first.append(&client, 6).await;
    first.stop();
    // The operator's backup, taken while no process has the file open.
    std::fs::create_dir_all(&backup).unwrap();
    for (live, copy) in files(&db, &backup) {
        if live.exists() {
            std::fs::copy(&live, &copy).unwrap();
        }
    }

    // Three more records, and the auditor keeps the checkpoint over all nine.
    let second = Server::start(&url);
    second.append(&client, 3).await;
    let r = client
        .post(second.url("/v1/audit/checkpoint"))
        .bearer_auth(&second.exports["ANALYST_TOKEN"])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let kept: Value = r.json().await.unwrap();
    assert_eq!(kept["size"], 9, "{kept}");
    let kept = kept["note"].as_str().unwrap().to_owned();
    second.stop();

    // The older backup is restored.
    for (live, copy) in files(&db, &backup) {
        let _ = std::fs::remove_file(&live);
        if copy.exists() {
            std::fs::copy(&copy, &live).unwrap();
        }
    }
    let third = Server::start(&url);
    let viewer = third.exports["VIEWER_TOKEN"].clone();
    let plain: Value = client
        .get(third.url("/v1/audit/verify"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        plain["intact"], true,
        "the restored ledger is consistent with itself: {plain}"
    );
    assert_eq!(plain["entries"], 6, "{plain}");
    let r = client
        .post(third.url("/v1/audit/verify"))
        .bearer_auth(&viewer)
        .json(&json!({ "checkpoint": kept }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["intact"], false, "{report}");
    assert_eq!(report["kept_checkpoint_verified"], false, "{report}");
    assert_eq!(report["first_bad_seq"], 6, "{report}");
    assert!(
        report["problem"].as_str().unwrap().contains(
            "ledger truncated or rolled back: a checkpoint commits to 9 entries, the ledger holds 6"
        ),
        "{report}"
    );
    third.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

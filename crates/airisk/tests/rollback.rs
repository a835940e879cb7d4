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

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

mod support;
use support::{Server, airisk};

/// A running `airisk serve --dev` on `database_url`, killed on drop if the test did not stop it.
fn start(database_url: &str) -> Server {
    let mut cmd = airisk();
    cmd.args(["serve", "--dev", "--database-url", database_url]);
    Server::spawn(cmd)
}

/// SIGTERM, and wait (bounded) for a clean exit: the database is closed after this.
fn stop(server: Server) {
    let (exit, stderr) = server.terminate(Duration::from_secs(20));
    assert!(exit.success(), "{stderr}");
}

/// Appends `n` audit records through `server` as its dev analyst.
async fn append(server: &Server, client: &reqwest::Client, n: usize) {
    let analyst = &server.exports["ANALYST_TOKEN"];
    for i in 0..n {
        let r = client
            .post(server.url("/v1/audit/events"))
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

    let first = start(&url);
    append(&first, &client, 6).await;
    stop(first);
    // The operator's backup, taken while no process has the file open.
    std::fs::create_dir_all(&backup).unwrap();
    for (live, copy) in files(&db, &backup) {
        if live.exists() {
            std::fs::copy(&live, &copy).unwrap();
        }
    }

    // Three more records, and the auditor keeps the checkpoint over all nine.
    let second = start(&url);
    append(&second, &client, 3).await;
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
    stop(second);

    // The older backup is restored.
    for (live, copy) in files(&db, &backup) {
        let _ = std::fs::remove_file(&live);
        if copy.exists() {
            std::fs::copy(&copy, &live).unwrap();
        }
    }
    let third = start(&url);
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
    stop(third);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Two `airisk serve` processes on one PostgreSQL database, as behind a load balancer: they race
//! to decide the same approval requests (exactly one decision each), append to the same tenant
//! (one gapless ledger, every receipt a distinct seq), and both sign checkpoints (no two
//! conflicting checkpoints; the ledger verifies).
//!
//! Runs when `AIRISK_TEST_DATABASE_URL` names a PostgreSQL server as a superuser (as the store's
//! tests use it). It is `#[ignore]`d like every PostgreSQL test (listed as ignored, never as
//! passed, without a server); `scripts/test.sh` runs it with `--ignored` when one answers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

mod support;
use support::{ProdKeys, Server, airisk, fresh_dir, post, psql, run_ok};

const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn two_instances_on_one_database_decide_each_request_once_and_keep_one_gapless_ledger() {
    let admin_url = std::env::var("AIRISK_TEST_DATABASE_URL")
        .expect("AIRISK_TEST_DATABASE_URL is not set: this PostgreSQL test cannot run");
    let db = format!("airisk_two_{}", uuid::Uuid::now_v7().simple());
    let (server_part, _) = admin_url.rsplit_once('/').unwrap();
    psql(&admin_url, &format!("CREATE DATABASE {db}"));
    let owner_url = format!("{server_part}/{db}");
    run_ok(airisk().args(["migrate", "--database-url", &owner_url]));
    psql(
        &owner_url,
        "DO $$ BEGIN CREATE ROLE airisk_two_svc LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE airisk_app; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    );
    let host_part = server_part.split_once('@').unwrap().1;
    let svc_url = format!("postgres://airisk_two_svc@{host_part}/{db}");

    let dir = fresh_dir("airisk-two");
    let keys = ProdKeys::generate(&dir);
    let key = &keys.jwt_private_key;
    let signing_key = keys.signing_key();
    // Both instances sign checkpoints often, so they race to sign the same sizes.
    let config = keys.write_config(&dir, &svc_url, "checkpoint_every_entries = 8\n");
    let start = || {
        let mut cmd = keys.serve(&config);
        cmd.env("AIRISK_LOG", "warn");
        Server::spawn(cmd)
    };
    let servers = [start(), start()];
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let token = |sub: &str, role: &str| {
        run_ok(
            airisk()
                .args([
                    "token", "issue", "--sub", sub, "--tenant", "bank", "--role", role,
                ])
                .env("AIRISK_JWT_PRIVATE_KEY_FILE", key),
        )
        .trim()
        .to_owned()
    };
    let admin = token("ada", "admin");
    let bob = token("bob", "approver");
    let carol = token("carol", "approver");
    let analyst = token("ann", "analyst");
    let client = reqwest::Client::new();

    // Appends from both instances at once, interleaved with the races below.
    let appenders: Vec<_> = (0..8)
        .map(|w| {
            let (client, base, analyst) = (client.clone(), bases[w % 2].clone(), analyst.clone());
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for n in 0..40 {
                    let (s, v) = post(
                        &client,
                        format!("{base}/v1/audit/events"),
                        &analyst,
                        json!({"action": "app.event", "resource_type": "doc", "resource_id": format!("w{w}-{n}")}),
                    )
                    .await;
                    assert_eq!(s, 201, "{v}");
                    seqs.push(v["seq"].as_u64().unwrap());
                }
                seqs
            })
        })
        .collect();

    // Each request decided at the same time through both instances, by two approvers: one
    // approves, the other rejects. Exactly one decision stands.
    for round in 0..12 {
        let name = format!("m{round}");
        let (s, v) = post(
            &client,
            format!("{}/v1/models", bases[round % 2]),
            &admin,
            json!({"name": name, "version": "1", "checksum": DIGEST,
                   "artifact_uri": "s3://m", "justification": "j"}),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        let approve = post(
            &client,
            format!("{}/v1/models/{name}/versions/1/approve", bases[0]),
            &bob,
            json!({"reason": "ok"}),
        );
        let reject = post(
            &client,
            format!("{}/v1/models/{name}/versions/1/reject", bases[1]),
            &carol,
            json!({"reason": "no"}),
        );
        let ((sa, va), (sr, vr)) = tokio::join!(approve, reject);
        let wins = u32::from(sa == 200) + u32::from(sr == 200);
        assert_eq!(
            wins, 1,
            "round {round}: approve {sa} {va}, reject {sr} {vr}"
        );
        for (s, v) in [(sa, &va), (sr, &vr)] {
            assert!(s == 200 || s == 409, "round {round}: {s} {v}");
        }
        // Both instances read the one outcome.
        for base in &bases {
            let r = client
                .get(format!("{base}/v1/models/{name}/versions/1"))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["approved"], sa == 200, "round {round}: {v}");
            assert_eq!(v["status"] == "REJECTED", sr == 200, "round {round}: {v}");
        }
    }
    let mut seqs = HashSet::new();
    for a in appenders {
        for seq in a.await.unwrap() {
            assert!(seqs.insert(seq), "seq {seq} acknowledged twice");
        }
    }

    for server in servers {
        let (status, stderr) = server.terminate(Duration::from_secs(30));
        assert!(status.success(), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // One gapless ledger holding every acknowledged seq, and its checkpoints all verify.
    let verify = run_ok(
        airisk()
            .args([
                "audit",
                "verify",
                "--tenant",
                "bank",
                "--json",
                "--database-url",
                &svc_url,
            ])
            .env("AIRISK_LEDGER_SIGNING_KEY", &signing_key),
    );
    let report: Value = serde_json::from_str(verify.lines().next().unwrap()).unwrap();
    assert_eq!(report["intact"], true, "{report}");
    let size = report["entries"].as_u64().unwrap();
    assert!(seqs.iter().all(|s| *s < size));
    let export = run_ok(
        airisk()
            .args([
                "audit",
                "export",
                "--tenant",
                "bank",
                "--database-url",
                &svc_url,
            ])
            .env("AIRISK_LEDGER_SIGNING_KEY", &signing_key),
    );
    let entries: Vec<u64> = export
        .lines()
        .skip(1)
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(entries, (0..size).collect::<Vec<_>>(), "gapless");
    // Checkpoints signed by both instances: every stored one verifies against the one ledger.
    let stored: u64 = psql(&owner_url, "SELECT count(*) FROM audit_checkpoints")
        .trim()
        .parse()
        .unwrap();
    assert!(stored >= 2, "{stored} checkpoints");
    assert_eq!(report["checkpoints_verified"], stored, "{report}");
    psql(&admin_url, &format!("DROP DATABASE {db} WITH (FORCE)"));
    let _ = std::fs::remove_dir_all(&dir);
}

//! `airisk serve` and `airisk token` as a user runs them: the real binary, spawned, driven over
//! HTTP, stopped with SIGTERM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

use std::path::Path;
use std::time::Duration;

use airisk_core::ledger::{Hash, LedgerVerifier, leaf_hash, verify_checkpoint, verify_inclusion};
use base64::Engine as _;
use serde_json::{Value, json};

mod support;
use support::{ProdKeys, Server, airisk, fresh_dir, get, post};

const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[tokio::test]
async fn serve_dev_prints_tokens_that_drive_the_whole_scenario_and_stops_on_sigterm() {
    let mut cmd = airisk();
    cmd.args(["serve", "--dev"]);
    let server = Server::spawn(cmd);
    let exports = server.exports.clone();
    let t = |role: &str| exports[&format!("{role}_TOKEN")].clone();
    assert_eq!(server.exports["AIRISK_URL"], server.base);
    let client = reqwest::Client::new();

    let (s, _) = post(
        &client,
        server.url("/v1/models"),
        &t("ADMIN"),
        json!({"name": "credit-scoring", "version": "1.0.0", "checksum": DIGEST,
               "artifact_uri": "s3://models/credit-scoring/1.0.0.onnx", "justification": "quarterly refresh"}),
    )
    .await;
    assert_eq!(s, 201);
    let (s, v) = post(
        &client,
        server.url("/v1/models/credit-scoring/versions/1.0.0/approve"),
        &t("APPROVER"),
        json!({"reason": "validation report reviewed"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "APPROVED");
    let (s, v) = post(
        &client,
        server.url("/v1/models/credit-scoring/versions/1.0.0/deployments"),
        &t("ANALYST"),
        json!({"sha256": DIGEST}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let seq = v["receipt"]["seq"].as_u64().unwrap();
    let (s, v) = post(
        &client,
        server.url("/v1/audit/events"),
        &t("ANALYST"),
        json!({"action": "report.generate", "resource_type": "report", "resource_id": "q3",
               "reason": "quarterly report", "metadata": {"pages": 12, "format": "pdf"}}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let report_record = v.clone();
    let (s, _) = post(
        &client,
        server.url("/v1/audit/checkpoint"),
        &t("ANALYST"),
        json!({}),
    )
    .await;
    assert_eq!(s, 200);
    let (_, report) = get(&client, server.url("/v1/audit/verify"), &t("VIEWER")).await;
    assert_eq!(report["intact"], true, "{report}");
    let (_, proof) = get(
        &client,
        server.url(&format!("/v1/audit/proofs/inclusion?seq={seq}")),
        &t("VIEWER"),
    )
    .await;
    // Offline, with the verifier key the banner printed.
    let verifier = LedgerVerifier::parse(&server.exports["AIRISK_LEDGER_VERIFIER_KEY"]).unwrap();
    let cp = verify_checkpoint(proof["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(proof["leaf"].as_str().unwrap())
        .unwrap();
    let path: Vec<Hash> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_hex(h.as_str().unwrap()).unwrap())
        .collect();
    verify_inclusion(seq, cp.size, leaf_hash(&leaf), &path, cp.root).unwrap();

    // More tokens can be minted with the printed dev secret.
    let out = airisk()
        .args([
            "token", "issue", "--sub", "zoe", "--tenant", "demo", "--role", "viewer",
        ])
        .env("AIRISK_JWT_SECRET", &server.exports["AIRISK_JWT_SECRET"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let zoe = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(get(&client, server.url("/v1/approvals"), &zoe).await.0, 200);

    let (status, stderr) = server.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(stderr.contains("AIRISK DEV MODE"), "{stderr}");
    assert!(
        stderr.contains("\"route\":\"/v1/models\""),
        "request log lines: {stderr}"
    );
    assert!(!stderr.contains(&t("ADMIN")), "tokens must not be logged");
    // One flat JSON object per event: the audit line carries its own fields, and no line
    // repeats them in a span list.
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let appended = lines
        .iter()
        .find(|l| l["message"] == "audit record appended")
        .unwrap_or_else(|| panic!("no audit line in {stderr}"));
    assert_eq!(appended["tenant_id"], "demo", "{appended}");
    assert!(appended["correlation_id"].is_string(), "{appended}");
    // The report's line names what the request recorded, field by field, and not its metadata.
    let report = lines
        .iter()
        .find(|l| l["message"] == "audit record appended" && l["action"] == "report.generate")
        .unwrap_or_else(|| panic!("no audit line for the report in {stderr}"));
    assert_eq!(report["target"], "audit", "{report}");
    assert_eq!(report["outcome"], "success", "{report}");
    assert_eq!(report["resource_type"], "report", "{report}");
    assert_eq!(report["resource_id"], "q3", "{report}");
    assert_eq!(report["reason"], "quarterly report", "{report}");
    assert_eq!(report["metadata_keys"], 2, "{report}");
    assert!(
        !report.to_string().contains("pdf"),
        "a metadata value was logged: {report}"
    );
    assert_eq!(report["tenant_id"], "demo", "{report}");
    assert!(
        report_record
            .to_string()
            .contains(report["id"].as_str().unwrap()),
        "{report_record} {report}"
    );
    for line in &lines {
        assert!(
            line.get("spans").is_none() && line.get("span").is_none(),
            "span context in a log line: {line}"
        );
    }
}

#[test]
fn serve_refuses_to_start_without_its_keys_and_says_how_to_make_each() {
    let out = airisk()
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            "memory:",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("airisk keys generate`"), "{stderr}");
    assert!(stderr.contains("airisk keys generate --ledger"), "{stderr}");
    assert!(stderr.contains("airisk token keygen"), "{stderr}");
}

#[test]
fn secrets_are_refused_on_the_command_line() {
    for args in [
        &["serve", "--dev", "--jwt-secret", "x"][..],
        &[
            "token",
            "issue",
            "--sub",
            "a",
            "--tenant",
            "t",
            "--role",
            "admin",
            "--jwt-secret",
            "x",
        ][..],
    ] {
        let out = airisk().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("AIRISK_JWT_SECRET"));
    }
}

#[tokio::test]
async fn a_production_like_start_on_sqlite_verifies_eddsa_tokens_refuses_hs256_and_survives_a_restart()
 {
    let dir = fresh_dir("airisk-serve");
    let keys = ProdKeys::generate(&dir);
    let key = &keys.jwt_private_key;
    let config = keys.write_config(
        &dir,
        &format!("sqlite://{}/airisk.db", dir.display()),
        "request_timeout_ms = 5000\n",
    );

    let start = || {
        let mut cmd = keys.serve(&config);
        // Set, but not allowed outside dev mode: HS256 tokens must be refused.
        cmd.env("AIRISK_JWT_SECRET", "0123456789abcdef0123456789abcdef");
        Server::spawn(cmd)
    };
    let server = start();
    assert!(server.exports.is_empty(), "no dev tokens outside dev mode");
    let client = reqwest::Client::new();

    let issue = |role: &str, extra: &[(&str, &str)]| {
        let mut c = airisk();
        c.args([
            "token", "issue", "--sub", role, "--tenant", "bank", "--role", role,
        ]);
        for (k, v) in extra {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let key_env = [("AIRISK_JWT_PRIVATE_KEY_FILE", key.to_str().unwrap())];
    let admin = issue("admin", &key_env);
    let approver = issue("approver", &key_env);
    let hs256 = issue(
        "admin",
        &[("AIRISK_JWT_SECRET", "0123456789abcdef0123456789abcdef")],
    );
    assert_eq!(
        get(&client, server.url("/v1/approvals"), &admin).await.0,
        200
    );
    assert_eq!(
        get(&client, server.url("/v1/approvals"), &hs256).await.0,
        401
    );
    let (s, v) = post(
        &client,
        server.url("/v1/models"),
        &admin,
        json!({"name": "m", "version": "1", "checksum": DIGEST, "artifact_uri": "s3://b/m", "justification": "j"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (status, stderr) = server.terminate(Duration::from_secs(20));
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("DEV MODE"));
    assert!(
        stderr.contains("ledger committed by a checkpoint"),
        "{stderr}"
    );

    // Restarted on the same file with the same keys: the registration survived, the ledger
    // (with the checkpoint signed at shutdown) verifies, and work continues.
    let server = start();
    let (s, v) = post(
        &client,
        server.url("/v1/models/m/versions/1/approve"),
        &approver,
        json!({"reason": "after the restart"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, report) = get(&client, server.url("/v1/audit/verify"), &approver).await;
    assert_eq!(report["intact"], true, "{report}");
    assert!(
        report["checkpoints_verified"].as_u64().unwrap() >= 1,
        "{report}"
    );
    let (status, stderr) = server.terminate(Duration::from_secs(20));
    assert!(status.success(), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!Path::new(&dir).exists());
}

#[tokio::test]
async fn serve_dev_on_a_sqlite_file_keeps_its_keys_so_a_restart_still_verifies() {
    let dir = std::env::temp_dir().join(format!("airisk-dev-{}", uuid::Uuid::now_v7()));
    let url = format!("sqlite://{}/dev.db", dir.display());
    let start = || {
        let mut cmd = airisk();
        cmd.args(["serve", "--dev", "--database-url", &url]);
        Server::spawn(cmd)
    };
    let client = reqwest::Client::new();
    let first = start();
    let analyst = first.exports["ANALYST_TOKEN"].clone();
    let (s, _) = post(
        &client,
        first.url("/v1/audit/events"),
        &analyst,
        json!({"action": "dev.event", "resource_type": "t", "resource_id": "1"}),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = post(
        &client,
        first.url("/v1/audit/checkpoint"),
        &analyst,
        json!({}),
    )
    .await;
    assert_eq!(s, 200);
    let verifier_key = first.exports["AIRISK_LEDGER_VERIFIER_KEY"].clone();
    let (status, stderr) = first.terminate(Duration::from_secs(20));
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("dev.db.dev-keys"), "{stderr}");
    let keys = dir.join("dev.db.dev-keys");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // Same database, same keys: the old checkpoint verifies and the old token still works.
    let second = start();
    assert_eq!(second.exports["AIRISK_LEDGER_VERIFIER_KEY"], verifier_key);
    let (_, report) = get(&client, second.url("/v1/audit/verify"), &analyst).await;
    assert_eq!(report["intact"], true, "{report}");
    assert!(
        report["checkpoints_verified"].as_u64().unwrap() >= 1,
        "{report}"
    );
    let (status, stderr) = second.terminate(Duration::from_secs(20));
    assert!(status.success(), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn issued_tokens_always_say_whether_they_are_a_person_and_a_bad_claim_mapping_stops_the_start() {
    // A token that does not say `kind: human` is a service principal and never approves, so the
    // issuer writes `kind` every time.
    for (extra, kind) in [(&[][..], "human"), (&["--kind", "service"][..], "service")] {
        let mut args = vec![
            "token", "issue", "--sub", "ada", "--tenant", "acme", "--role", "approver",
        ];
        args.extend_from_slice(extra);
        let token = airisk()
            .env("AIRISK_JWT_SECRET", "0123456789abcdef0123456789abcdef")
            .args(&args)
            .output()
            .unwrap();
        assert!(
            token.status.success(),
            "{}",
            String::from_utf8_lossy(&token.stderr)
        );
        let token = String::from_utf8(token.stdout).unwrap();
        let payload = token.trim().split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["kind"], kind);
    }
    for (flag, value) in [("--person-claim", "kind"), ("--identity-claim", " ")] {
        let out = airisk()
            .args(["serve", "--dev", "--bind", "127.0.0.1:0", flag, value])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("claim"), "{stderr}");
    }
}

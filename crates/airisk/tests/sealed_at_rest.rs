//! Sealing at rest, as an operator runs it: the real `airisk serve` on a SQLite file with
//! production keys, a canary prompt template written and read over HTTP, then the raw database
//! file, its WAL and the service's logs (at trace level) searched for the canary; then
//! `airisk tenant shred`, the ledger verified by `airisk audit verify` and by the independent
//! Python verifier, and the template read back as erased by a restarted service.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

mod support;

use support::Server;

/// Public test key material (never use it for anything).
const KEK: &str = "kek1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const JWT_SECRET: &str = "sealed-at-rest-test-secret-0123456789abcdef";
const CANARY: &str = "CANARY-5b1e77-proprietary-instructions: customer Jane Roe, IBAN DE89";

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch() -> Scratch {
    let dir = std::env::temp_dir().join(format!("airisk-sealed-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// `airisk` with a clean environment and the given keys.
fn airisk(db_url: &str, signing_key: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airisk"));
    for var in [
        "AIRISK_JWKS_FILE",
        "AIRISK_BIND",
        "AIRISK_CONFIG",
        "AIRISK_JWT_PRIVATE_KEY_FILE",
        "AIRISK_LEDGER_VERIFIER_KEY",
    ] {
        c.env_remove(var);
    }
    c.env("AIRISK_DATABASE_URL", db_url)
        .env("AIRISK_ENCRYPTION_KEYS", KEK)
        .env("AIRISK_LEDGER_SIGNING_KEY", signing_key)
        .env("AIRISK_JWT_SECRET", JWT_SECRET)
        .env("AIRISK_DANGEROUS_ALLOW_HS256", "true");
    c
}

fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `cmd` as an `airisk serve` command for [`Server::spawn`], logging at `trace`.
fn serve(mut cmd: Command) -> Command {
    cmd.arg("serve").env("AIRISK_LOG", "trace");
    cmd
}

fn token(db_url: &str, signing_key: &str, sub: &str, role: &str) -> String {
    let mut c = airisk(db_url, signing_key);
    c.args([
        "token", "issue", "--sub", sub, "--tenant", "acme", "--role", role,
    ]);
    let out = run(c);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// Every file of the SQLite database (main file, WAL, shared memory), raw.
fn raw_database(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("airisk.db"))
        })
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The canary must not be in any file of the database, nor in the logs.
fn assert_nowhere(dir: &Path, logs: Option<&str>) {
    let files = raw_database(dir);
    assert!(
        files.iter().any(|(n, _)| n.ends_with("airisk.db")),
        "the database file exists"
    );
    for (name, bytes) in &files {
        assert!(
            !contains(bytes, CANARY.as_bytes()) && !contains(bytes, b"Jane Roe"),
            "plaintext found in {name}"
        );
    }
    if let Some(logs) = logs {
        assert!(
            !logs.contains("CANARY") && !logs.contains("Jane Roe"),
            "plaintext in the logs"
        );
    }
}

#[test]
fn prompt_templates_are_sealed_at_rest_and_shredding_erases_them_while_the_ledger_verifies() {
    let dir = scratch();
    let db_url = format!("sqlite://{}/airisk.db", dir.0.display());
    let keys = run({
        let mut c = airisk(&db_url, "unused");
        c.args([
            "keys",
            "generate",
            "--ledger",
            "--name",
            "airisk.test/ledger",
        ]);
        c
    });
    assert!(keys.status.success(), "{}", text(&keys.stderr));
    let keys_text = text(&keys.stdout);
    let mut key_lines = keys_text.lines();
    let signing_key = key_lines.next().unwrap().trim().to_owned();
    let verifier_key = key_lines.next().unwrap().trim().to_owned();
    let admin = token(&db_url, &signing_key, "alice", "admin");
    let analyst = token(&db_url, &signing_key, "carol", "analyst");
    let viewer = token(&db_url, &signing_key, "bob", "viewer");

    let server = Server::spawn(serve(airisk(&db_url, &signing_key)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let (status, body) = rt.block_on(async {
        let r = client
            .post(format!("{}/v1/prompts", server.base))
            .bearer_auth(&admin)
            .json(&json!({"name": "loan/system", "template": CANARY, "change_reason": "first"}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["template"], CANARY);
    let read = |base: &str| {
        rt.block_on(async {
            let r = client
                .get(format!("{base}/v1/prompts/loan%2Fsystem"))
                .bearer_auth(&viewer)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.json::<Value>().await.unwrap()
        })
    };
    let got = read(&server.base);
    assert_eq!(got["template"], CANARY);
    assert!(got.get("erased").is_none());

    // An application record with a value marked sensitive.
    let (status, body) = rt.block_on(async {
        let r = client
            .post(format!("{}/v1/audit/events", server.base))
            .bearer_auth(&analyst)
            .json(&json!({
                "action": "loan.decision",
                "resource_type": "application",
                "resource_id": "A-1",
                "metadata": {"decision": "declined"},
                "sensitive_metadata": {"customer": CANARY}
            }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    assert_eq!(status, 201, "{body}");

    // While the service runs (the WAL holds the latest pages) and after it stopped.
    assert_nowhere(&dir.0, None);
    let logs = server.stop();
    assert!(!logs.is_empty(), "trace logging produced output");
    assert_nowhere(&dir.0, Some(&logs));

    // The auditor with the key-encryption key reads the sensitive value back from an export.
    let decrypted = run({
        let mut c = airisk(&db_url, &signing_key);
        c.args(["audit", "export", "--tenant", "acme", "--decrypt"]);
        c
    });
    assert!(decrypted.status.success(), "{}", text(&decrypted.stderr));
    let line = text(&decrypted.stdout)
        .lines()
        .find(|l| l.contains("\"decrypted\""))
        .expect("an entry with decrypted values")
        .to_owned();
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["decrypted"]["customer"], CANARY);

    // Crypto-shredding, from the operator's command line.
    let shred = run({
        let mut c = airisk(&db_url, &signing_key);
        c.args([
            "tenant",
            "shred",
            "--tenant",
            "acme",
            "--actor",
            "operator:dpo",
            "--reason",
            "erasure request 42",
        ]);
        c
    });
    assert!(shred.status.success(), "{}", text(&shred.stderr));
    assert!(
        text(&shred.stdout).contains("1 data key(s) destroyed"),
        "{}",
        text(&shred.stdout)
    );

    // The wrapped key is gone from the file's table, and the database refuses to bring it back.
    {
        let conn = rusqlite::Connection::open(dir.0.join("airisk.db")).unwrap();
        let live: i64 = conn
            .query_row(
                "SELECT count(*) FROM data_keys WHERE wrapped IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(live, 0);
        let err = conn
            .execute("UPDATE data_keys SET wrapped = 'v1.kek1.AAAA'", [])
            .unwrap_err();
        assert!(err.to_string().contains("cannot be restored"), "{err}");
        let err = conn.execute("DELETE FROM data_keys", []).unwrap_err();
        assert!(err.to_string().contains("never deleted"), "{err}");
    }

    // The ledger still verifies (no encryption key needed), and so does an export, with the
    // independent Python verifier, unchanged.
    let verify = run({
        let mut c = airisk(&db_url, &signing_key);
        c.env_remove("AIRISK_ENCRYPTION_KEYS")
            .args(["audit", "verify", "--tenant", "acme"]);
        c
    });
    assert!(
        verify.status.success(),
        "{}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    let export = run({
        let mut c = airisk(&db_url, &signing_key);
        c.env_remove("AIRISK_ENCRYPTION_KEYS")
            .args(["audit", "export", "--tenant", "acme"]);
        c
    });
    assert!(export.status.success(), "{}", text(&export.stderr));
    let export_text = text(&export.stdout);
    let file = dir.0.join("acme.jsonl");
    std::fs::write(&file, &export.stdout).unwrap();
    let py = Command::new("python3")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/verify_export.py"),
            file.to_str().unwrap(),
            "--verifier-key",
            &verifier_key,
            "--tenant",
            "acme",
        ])
        .output()
        .expect("python3 must be installed to run the auditor's verifier");
    assert!(
        py.status.success(),
        "{}{}",
        text(&py.stdout),
        text(&py.stderr)
    );
    // The shred is in the ledger: the last leaf is the tenant.shred record.
    let last: Value = serde_json::from_str(export_text.lines().last().unwrap()).unwrap();
    let leaf = base64_decode(last["leaf"].as_str().unwrap());
    assert!(
        contains(&leaf, b"\"action\":\"tenant.shred\""),
        "{}",
        text(&leaf)
    );

    // After the shred the auditor's export says erased, and still verifies (same leaves).
    let decrypted = run({
        let mut c = airisk(&db_url, &signing_key);
        c.args(["audit", "export", "--tenant", "acme", "--decrypt"]);
        c
    });
    assert!(decrypted.status.success(), "{}", text(&decrypted.stderr));
    assert!(!text(&decrypted.stdout).contains("CANARY"));
    let line: Value = serde_json::from_str(
        text(&decrypted.stdout)
            .lines()
            .find(|l| l.contains("\"decrypted\""))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["decrypted"]["customer"], json!({"erased": true}));
    let file2 = dir.0.join("acme-decrypted.jsonl");
    std::fs::write(&file2, &decrypted.stdout).unwrap();
    let py = Command::new("python3")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/verify_export.py"),
            file2.to_str().unwrap(),
            "--verifier-key",
            &verifier_key,
            "--tenant",
            "acme",
        ])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}{}",
        text(&py.stdout),
        text(&py.stderr)
    );

    // A restarted service (same keys) reads the template as erased: a state, not an error.
    let server = Server::spawn(serve(airisk(&db_url, &signing_key)));
    let got = read(&server.base);
    assert_eq!(got["erased"], true, "{got}");
    assert_eq!(got["template"], "");
    let logs = server.stop();
    assert_nowhere(&dir.0, Some(&logs));
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// KEK rotation from the command line: after `airisk tenant rewrap-data-keys` with the new key
/// first, a service holding only the new key reads a template sealed before the rotation, and
/// the database file still holds no plaintext.
#[test]
fn a_kek_rotation_rewraps_data_keys_so_the_old_kek_can_be_dropped() {
    const KEK2: &str = "kek2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    let dir = scratch();
    let db_url = format!("sqlite://{}/airisk.db", dir.0.display());
    let keys = run({
        let mut c = airisk(&db_url, "unused");
        c.args([
            "keys",
            "generate",
            "--ledger",
            "--name",
            "airisk.test/ledger",
        ]);
        c
    });
    let signing_key = text(&keys.stdout).lines().next().unwrap().trim().to_owned();
    let admin = token(&db_url, &signing_key, "alice", "admin");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();

    let server = Server::spawn(serve(airisk(&db_url, &signing_key)));
    let status = rt.block_on(async {
        client
            .post(format!("{}/v1/prompts", server.base))
            .bearer_auth(&admin)
            .json(&json!({"name": "p", "template": CANARY, "change_reason": "first"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 201);
    server.stop();

    let rotated = run({
        let mut c = airisk(&db_url, &signing_key);
        c.env("AIRISK_ENCRYPTION_KEYS", format!("{KEK2},{KEK}"))
            .args(["tenant", "rewrap-data-keys", "--actor", "operator:keys"]);
        c
    });
    assert!(rotated.status.success(), "{}", text(&rotated.stderr));
    assert!(
        text(&rotated.stdout).contains("tenant acme: 1 data key(s) rewrapped"),
        "{}",
        text(&rotated.stdout)
    );

    let mut only_new = airisk(&db_url, &signing_key);
    only_new.env("AIRISK_ENCRYPTION_KEYS", KEK2);
    let server = Server::spawn(serve(only_new));
    let got = rt.block_on(async {
        client
            .get(format!("{}/v1/prompts/p", server.base))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    assert_eq!(got["template"], CANARY, "{got}");
    let logs = server.stop();
    assert_nowhere(&dir.0, Some(&logs));

    // And only the new key is now needed: the old one alone no longer opens anything.
    let mut only_old = airisk(&db_url, &signing_key);
    only_old.env("AIRISK_ENCRYPTION_KEYS", KEK);
    let server = Server::spawn(serve(only_old));
    let status = rt.block_on(async {
        client
            .get(format!("{}/v1/prompts/p", server.base))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(
        status, 500,
        "a template whose data key cannot be unwrapped is an error"
    );
    server.stop();
}

/// Shredding over HTTP: its own permission (an analyst is refused, and the refusal recorded),
/// and after an admin's shred the same running service (which had the key cached) reads the
/// template as erased.
#[test]
fn the_shred_route_is_admin_only_audited_and_takes_effect_in_the_running_service() {
    let dir = scratch();
    let db_url = format!("sqlite://{}/airisk.db", dir.0.display());
    let keys = run({
        let mut c = airisk(&db_url, "unused");
        c.args([
            "keys",
            "generate",
            "--ledger",
            "--name",
            "airisk.test/ledger",
        ]);
        c
    });
    let signing_key = text(&keys.stdout).lines().next().unwrap().trim().to_owned();
    let admin = token(&db_url, &signing_key, "alice", "admin");
    let analyst = token(&db_url, &signing_key, "carol", "analyst");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let server = Server::spawn(serve(airisk(&db_url, &signing_key)));
    let call = |method: reqwest::Method, path: &str, who: &str, body: Option<Value>| {
        rt.block_on(async {
            let mut r = client
                .request(method, format!("{}{path}", server.base))
                .bearer_auth(who);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let r = r.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    let (status, _) = call(
        reqwest::Method::POST,
        "/v1/prompts",
        &admin,
        Some(json!({"name": "p", "template": CANARY, "change_reason": "first"})),
    );
    assert_eq!(status, 201);
    let (_, got) = call(reqwest::Method::GET, "/v1/prompts/p", &analyst, None);
    assert_eq!(
        got["template"], CANARY,
        "read once: the data key is now cached"
    );

    let (status, body) = call(
        reqwest::Method::POST,
        "/v1/tenant/shred",
        &analyst,
        Some(json!({"reason": "not mine to do"})),
    );
    assert_eq!(status, 403, "{body}");
    let (_, got) = call(reqwest::Method::GET, "/v1/prompts/p", &analyst, None);
    assert_eq!(got["template"], CANARY, "a refused shred changes nothing");
    let (status, body) = call(
        reqwest::Method::POST,
        "/v1/tenant/shred",
        &admin,
        Some(json!({"reason": ""})),
    );
    assert_eq!(status, 422, "a shred needs a reason: {body}");

    let (status, body) = call(
        reqwest::Method::POST,
        "/v1/tenant/shred",
        &admin,
        Some(json!({"reason": "erasure request 43"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["keys_destroyed"], 1);
    let (_, got) = call(reqwest::Method::GET, "/v1/prompts/p", &analyst, None);
    assert_eq!(got["erased"], true, "{got}");
    assert_eq!(got["template"], "");

    // Both the refusal and the shred are in the ledger.
    let (_, page) = call(
        reqwest::Method::GET,
        "/v1/audit/events?action=tenant.shred",
        &admin,
        None,
    );
    let outcomes: Vec<String> = page["entries"]
        .as_array()
        .or_else(|| page["items"].as_array())
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|e| {
            let r = if e["record"].is_object() {
                &e["record"]
            } else {
                e
            };
            format!(
                "{}:{}",
                r["actor"].as_str().unwrap(),
                r["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        outcomes.contains(&"carol:denied".to_owned()),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&"alice:success".to_owned()),
        "{outcomes:?}"
    );
    let logs = server.stop();
    assert_nowhere(&dir.0, Some(&logs));
}

/// One data subject erased alone, as an operator and an API client do it, on a SQLite file: the
/// subject's id is stored nowhere in plaintext (database file, WAL, ledger, logs), a tenant
/// data-key rotation from the command line seals new values under a new key while old ones still
/// open, `airisk tenant shred --subject` erases that subject's values only (a replay destroys
/// nothing more), the HTTP route does the same for another subject (admin only, the refusal
/// recorded), and the export still verifies with the independent Python verifier.
#[test]
fn a_subject_is_erased_alone_and_its_id_is_stored_nowhere_in_plaintext() {
    const SUBJECT_A: &str = "CUST-SUBJECT-CANARY-8c1d";
    const SUBJECT_B: &str = "CUST-OTHER-CANARY-5e2a";
    let dir = scratch();
    let db_url = format!("sqlite://{}/airisk.db", dir.0.display());
    let keys = run({
        let mut c = airisk(&db_url, "unused");
        c.args([
            "keys",
            "generate",
            "--ledger",
            "--name",
            "airisk.test/ledger",
        ]);
        c
    });
    let keys_text = text(&keys.stdout);
    let mut key_lines = keys_text.lines();
    let signing_key = key_lines.next().unwrap().trim().to_owned();
    let verifier_key = key_lines.next().unwrap().trim().to_owned();
    let admin = token(&db_url, &signing_key, "alice", "admin");
    let analyst = token(&db_url, &signing_key, "carol", "analyst");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let call = |base: &str, path: &str, who: &str, body: Option<Value>| {
        rt.block_on(async {
            let mut r = client.post(format!("{base}{path}")).bearer_auth(who);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let r = r.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    let append = |base: &str, resource: &str, subject: Option<&str>, value: &str| {
        let mut body = json!({
            "action": "loan.decision",
            "resource_type": "application",
            "resource_id": resource,
            "sensitive_metadata": {"customer": value}
        });
        if let Some(s) = subject {
            body["data_subject"] = s.into();
        }
        let (status, body) = call(base, "/v1/audit/events", &analyst, Some(body));
        assert_eq!(status, 201, "{body}");
    };
    let subjects_nowhere = |logs: Option<&str>| {
        for (name, bytes) in raw_database(&dir.0) {
            for s in [SUBJECT_A, SUBJECT_B] {
                assert!(!contains(&bytes, s.as_bytes()), "{s} found in {name}");
            }
        }
        if let Some(logs) = logs {
            assert!(!logs.contains("CUST-"), "a subject id in the logs");
        }
    };

    let server = Server::spawn(serve(airisk(&db_url, &signing_key)));
    append(&server.base, "A-1", Some(SUBJECT_A), CANARY);
    append(&server.base, "B-1", Some(SUBJECT_B), "b-value-open");
    append(&server.base, "T-1", None, "tenant-value-before");
    // A subject without values to seal applies to nothing (and is stored nowhere, checked
    // below); an invalid subject is refused.
    let (status, body) = call(
        &server.base,
        "/v1/audit/events",
        &analyst,
        Some(
            json!({"action": "loan.decision", "resource_type": "application",
                    "resource_id": "X", "data_subject": SUBJECT_A}),
        ),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        &server.base,
        "/v1/audit/events",
        &analyst,
        Some(
            json!({"action": "loan.decision", "resource_type": "application",
                    "resource_id": "X", "data_subject": "C 42",
                    "sensitive_metadata": {"customer": "x"}}),
        ),
    );
    assert_eq!(status, 422, "{body}");
    subjects_nowhere(None);
    let logs = server.stop();
    subjects_nowhere(Some(&logs));
    assert_nowhere(&dir.0, Some(&logs));

    // Rotate the tenant's data key from the command line; then a new value.
    let rotated = run({
        let mut c = airisk(&db_url, &signing_key);
        c.args([
            "keys",
            "rotate-data-key",
            "--tenant",
            "acme",
            "--actor",
            "operator:keys",
        ]);
        c
    });
    assert!(rotated.status.success(), "{}", text(&rotated.stderr));
    let rotated_text = text(&rotated.stdout);
    let new_kid = rotated_text
        .split("new data key ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{rotated_text}"))
        .to_owned();
    assert!(
        rotated_text.contains("keys.rotate_data_key"),
        "{rotated_text}"
    );
    let server = Server::spawn(serve(airisk(&db_url, &signing_key)));
    append(&server.base, "T-2", None, "tenant-value-after");
    server.stop();

    // Erase subject A from the command line; a replay destroys nothing more.
    let shred_a = || {
        run({
            let mut c = airisk(&db_url, &signing_key);
            c.args([
                "tenant",
                "shred",
                "--tenant",
                "acme",
                "--subject",
                SUBJECT_A,
                "--actor",
                "operator:dpo",
                "--reason",
                "erasure request 44",
            ]);
            c
        })
    };
    let shred = shred_a();
    assert!(shred.status.success(), "{}", text(&shred.stderr));
    assert!(
        text(&shred.stdout).contains("1 data key(s) of the subject destroyed"),
        "{}",
        text(&shred.stdout)
    );
    assert!(!text(&shred.stdout).contains(SUBJECT_A));
    let replay = shred_a();
    assert!(replay.status.success(), "{}", text(&replay.stderr));
    assert!(
        text(&replay.stdout).contains("0 data key(s) of the subject destroyed"),
        "{}",
        text(&replay.stdout)
    );
    // An invalid subject is refused with a clear message, and nothing is recorded.
    let bad = run({
        let mut c = airisk(&db_url, &signing_key);
        c.args([
            "tenant",
            "shred",
            "--tenant",
            "acme",
            "--subject",
            "C 42",
            "--actor",
            "operator:dpo",
            "--reason",
            "r",
        ]);
        c
    });
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("--subject"),
        "{}",
        text(&bad.stderr)
    );

    // Over HTTP: an analyst may not erase subject B (the refusal is recorded); an admin may.
    let server = Server::spawn(serve(airisk(&db_url, &signing_key)));
    let (status, body) = call(
        &server.base,
        "/v1/tenant/shred",
        &analyst,
        Some(json!({"reason": "not mine", "subject": SUBJECT_B})),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(&server.base, "/v1/tenant/rotate-data-key", &analyst, None);
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(
        &server.base,
        "/v1/tenant/shred",
        &admin,
        Some(json!({"reason": "erasure request 45", "subject": SUBJECT_B})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["keys_destroyed"], 1);
    assert_eq!(body["subject_pseudonym"].as_str().unwrap().len(), 64);
    let logs = server.stop();
    subjects_nowhere(Some(&logs));
    assert_nowhere(&dir.0, Some(&logs));

    // The auditor's view: A and B erased, the tenant's values (both key generations) open.
    let decrypted = run({
        let mut c = airisk(&db_url, &signing_key);
        c.args(["audit", "export", "--tenant", "acme", "--decrypt"]);
        c
    });
    assert!(decrypted.status.success(), "{}", text(&decrypted.stderr));
    let mut by_resource = std::collections::BTreeMap::new();
    let mut actions = Vec::new();
    for line in text(&decrypted.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let Some(leaf) = v["leaf"].as_str() else {
            continue;
        };
        let record: Value = serde_json::from_slice(&base64_decode(leaf)).unwrap();
        actions.push(format!(
            "{}:{}",
            record["action"].as_str().unwrap(),
            record["outcome"].as_str().unwrap()
        ));
        if record["resource_id"] == "X" {
            assert!(record.get("sealed_metadata").is_none(), "{record}");
        } else if record["action"] == "loan.decision" {
            let kid = record["sealed_metadata"]["customer"]
                .as_str()
                .unwrap()
                .split('.')
                .nth(1)
                .unwrap()
                .to_owned();
            by_resource.insert(
                record["resource_id"].as_str().unwrap().to_owned(),
                (v["decrypted"]["customer"].clone(), kid),
            );
        }
    }
    assert_eq!(by_resource["A-1"].0, json!({"erased": true}));
    assert_eq!(by_resource["B-1"].0, json!({"erased": true}));
    assert_eq!(by_resource["T-1"].0, "tenant-value-before");
    assert_eq!(by_resource["T-2"].0, "tenant-value-after");
    assert_eq!(
        by_resource["T-2"].1, new_kid,
        "sealed under the rotated key"
    );
    assert_ne!(by_resource["T-1"].1, new_kid);
    assert!(by_resource["A-1"].1.starts_with('s'));
    for expected in [
        "keys.rotate_data_key:success",
        "tenant.shred_subject:success",
        "tenant.shred_subject:denied",
        "keys.rotate_data_key:denied",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected}: {actions:?}"
        );
    }
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "tenant.shred_subject:success")
            .count(),
        3,
        "two CLI shreds of A (one a replay) and one HTTP shred of B: {actions:?}"
    );

    // The ledger verifies with no encryption key, by the CLI and by the Python verifier.
    let verify = run({
        let mut c = airisk(&db_url, &signing_key);
        c.env_remove("AIRISK_ENCRYPTION_KEYS")
            .args(["audit", "verify", "--tenant", "acme"]);
        c
    });
    assert!(
        verify.status.success(),
        "{}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    let export = run({
        let mut c = airisk(&db_url, &signing_key);
        c.env_remove("AIRISK_ENCRYPTION_KEYS")
            .args(["audit", "export", "--tenant", "acme"]);
        c
    });
    assert!(export.status.success(), "{}", text(&export.stderr));
    assert!(!contains(&export.stdout, b"CUST-"));
    let file = dir.0.join("acme.jsonl");
    std::fs::write(&file, &export.stdout).unwrap();
    let py = Command::new("python3")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/verify_export.py"),
            file.to_str().unwrap(),
            "--verifier-key",
            &verifier_key,
            "--tenant",
            "acme",
        ])
        .output()
        .expect("python3 must be installed to run the auditor's verifier");
    assert!(
        py.status.success(),
        "{}{}",
        text(&py.stdout),
        text(&py.stderr)
    );
    subjects_nowhere(None);
}

/// Copies the SQLite database files (main file, WAL, shared memory) of `from` into `to`.
fn copy_database(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for (name, bytes) in raw_database(from) {
        let file = Path::new(&name).file_name().unwrap().to_owned();
        std::fs::write(to.join(file), bytes).unwrap();
    }
}

/// The sensitive value of `tenant`'s ledger, through `airisk audit export --decrypt` with the
/// keyring `keys`: `Ok(value)` or `Err(stderr)` when the command fails.
fn decrypted_customer(db_url: &str, signing_key: &str, keys: &str) -> Result<String, String> {
    let out = run({
        let mut c = airisk(db_url, signing_key);
        c.env("AIRISK_ENCRYPTION_KEYS", keys).args([
            "audit",
            "export",
            "--tenant",
            "acme",
            "--decrypt",
        ]);
        c
    });
    let stdout = text(&out.stdout);
    assert!(
        !out.status.success() || stdout.contains("\"decrypted\""),
        "an export that succeeded shows the sealed entry: {stdout}"
    );
    if !out.status.success() {
        assert!(
            !stdout.contains(CANARY),
            "a failed export printed the value"
        );
        return Err(text(&out.stderr));
    }
    let line = stdout
        .lines()
        .find(|l| l.contains("\"decrypted\""))
        .unwrap()
        .to_owned();
    let line: Value = serde_json::from_str(&line).unwrap();
    Ok(line["decrypted"]["customer"].to_string())
}

/// The documented way to make a shred reach backups (docs/ENCRYPTION.md, "Backups"): a database
/// backup taken before the shred still holds the tenant's wrapped data key, so it opens with the
/// KEK of the day; after the shred, a KEK rotation (rewrap every remaining tenant's keys under a
/// new KEK, then drop the old one) leaves that backup with a data key nothing can unwrap, while
/// the other tenants' values in the live database keep opening.
#[test]
fn a_backup_from_before_a_shred_is_unreadable_once_the_kek_is_rotated() {
    const KEK2: &str = "kek2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    let dir = scratch();
    let live = dir.0.join("live");
    let backup = dir.0.join("backup");
    let restored = dir.0.join("restored");
    let db_url = |d: &Path| format!("sqlite://{}/airisk.db", d.display());
    std::fs::create_dir_all(&live).unwrap();
    let keys = run({
        let mut c = airisk(&db_url(&live), "unused");
        c.args([
            "keys",
            "generate",
            "--ledger",
            "--name",
            "airisk.test/ledger",
        ]);
        c
    });
    assert!(keys.status.success(), "{}", text(&keys.stderr));
    let signing_key = text(&keys.stdout).lines().next().unwrap().trim().to_owned();
    let analyst = token(&db_url(&live), &signing_key, "carol", "analyst");
    let globex_admin = {
        let mut c = airisk(&db_url(&live), &signing_key);
        c.args([
            "token", "issue", "--sub", "gina", "--tenant", "globex", "--role", "admin",
        ]);
        let out = run(c);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let post = |base: &str, path: &str, bearer: &str, body: Value| {
        rt.block_on(async {
            client
                .post(format!("{base}{path}"))
                .bearer_auth(bearer)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    let get_prompt = |base: &str, bearer: &str| {
        rt.block_on(async {
            let r = client
                .get(format!("{base}/v1/prompts/p"))
                .bearer_auth(bearer)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };

    // acme's sensitive value and another tenant's sealed template, under KEK 1.
    let server = Server::spawn(serve(airisk(&db_url(&live), &signing_key)));
    let status = post(
        &server.base,
        "/v1/audit/events",
        &analyst,
        json!({
            "action": "loan.decision",
            "resource_type": "application",
            "resource_id": "A-1",
            "sensitive_metadata": {"customer": CANARY}
        }),
    );
    assert_eq!(status, 201);
    let status = post(
        &server.base,
        "/v1/prompts",
        &globex_admin,
        json!({"name": "p", "template": "globex template", "change_reason": "first"}),
    );
    assert_eq!(status, 201);
    server.stop();

    // The nightly backup, then the erasure request: acme is shredded in the live database.
    copy_database(&live, &backup);
    let shred = run({
        let mut c = airisk(&db_url(&live), &signing_key);
        c.args([
            "tenant",
            "shred",
            "--tenant",
            "acme",
            "--actor",
            "operator:dpo",
            "--reason",
            "erasure request 43",
        ]);
        c
    });
    assert!(shred.status.success(), "{}", text(&shred.stderr));

    // The weakness the rotation closes: restored with the KEK of the day, the backup opens.
    copy_database(&backup, &restored);
    assert_eq!(
        decrypted_customer(&db_url(&restored), &signing_key, KEK).as_deref(),
        Ok(format!("{CANARY:?}").as_str()),
        "a pre-shred backup opens while its KEK exists"
    );
    std::fs::remove_dir_all(&restored).unwrap();

    // The rotation: KEK 2 first, every remaining data key rewrapped, then KEK 1 is dropped.
    let rotated = run({
        let mut c = airisk(&db_url(&live), &signing_key);
        c.env("AIRISK_ENCRYPTION_KEYS", format!("{KEK2},{KEK}"))
            .args(["tenant", "rewrap-data-keys", "--actor", "operator:keys"]);
        c
    });
    assert!(rotated.status.success(), "{}", text(&rotated.stderr));
    assert!(
        text(&rotated.stdout).contains("tenant globex: 1 data key(s) rewrapped"),
        "{}",
        text(&rotated.stdout)
    );

    // The backup restored with the only KEK that now exists: acme's value does not open.
    copy_database(&backup, &restored);
    let refused = decrypted_customer(&db_url(&restored), &signing_key, KEK2)
        .expect_err("the backup's data key was wrapped by a KEK that no longer exists");
    assert!(
        refused.contains("kek1"),
        "the missing KEK is named: {refused}"
    );
    assert!(!refused.contains(CANARY));

    // The live database with KEK 2 alone: acme reads erased, globex's template opens.
    assert_eq!(
        decrypted_customer(&db_url(&live), &signing_key, KEK2).as_deref(),
        Ok(r#"{"erased":true}"#)
    );
    let mut only_new = airisk(&db_url(&live), &signing_key);
    only_new.env("AIRISK_ENCRYPTION_KEYS", KEK2);
    let server = Server::spawn(serve(only_new));
    let (status, body) = get_prompt(&server.base, &globex_admin);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("globex template"), "{body}");
    server.stop();
}

/// Sensitive model metadata through the real service on SQLite: registered over HTTP, stored
/// only sealed (the canary is in no byte of the database file, its WAL or shared memory, nor in
/// the trace-level logs, while a plain metadata value written beside it *is* found in the file:
/// the search works), read back opened by the tenant's viewer, and after `airisk tenant shred`
/// read back by a restarted service as erased.
#[test]
fn sensitive_model_metadata_is_sealed_at_rest_and_erased_by_a_shred() {
    const CONTROL: &str = "plain-control-9e41d";
    let dir = scratch();
    let db_url = format!("sqlite://{}/airisk.db", dir.0.display());
    let keys = run({
        let mut c = airisk(&db_url, "unused");
        c.args([
            "keys",
            "generate",
            "--ledger",
            "--name",
            "airisk.test/ledger",
        ]);
        c
    });
    assert!(keys.status.success(), "{}", text(&keys.stderr));
    let signing_key = text(&keys.stdout).lines().next().unwrap().trim().to_owned();
    let admin = token(&db_url, &signing_key, "alice", "admin");
    let viewer = token(&db_url, &signing_key, "bob", "viewer");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let read = |base: &str| {
        rt.block_on(async {
            let r = client
                .get(format!("{base}/v1/models/credit-scoring/versions/1.0"))
                .bearer_auth(&viewer)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.json::<Value>().await.unwrap()
        })
    };

    let server = Server::spawn(serve(airisk(&db_url, &signing_key)));
    let (status, body) = rt.block_on(async {
        let r = client
            .post(format!("{}/v1/models", server.base))
            .bearer_auth(&admin)
            .json(&json!({
                "name": "credit-scoring",
                "version": "1.0",
                "checksum": "ab".repeat(32),
                "artifact_uri": "s3://models/credit-scoring",
                "metadata": {"team": CONTROL},
                "sensitive_metadata": {"data_owner": CANARY, "sample": {"customer": "Jane Roe"}},
                "justification": "quarterly refresh"
            }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["model"]["sensitive_metadata"]["data_owner"], CANARY);
    let got = read(&server.base);
    assert_eq!(got["sensitive_metadata"]["data_owner"], CANARY, "{got}");
    assert_eq!(got["sensitive_metadata"]["sample"]["customer"], "Jane Roe");
    assert_eq!(got["metadata"]["team"], CONTROL);
    assert!(got.get("erased_metadata").is_none());

    // A sensitive key that repeats a plain one is refused.
    let status = rt.block_on(async {
        client
            .post(format!("{}/v1/models", server.base))
            .bearer_auth(&admin)
            .json(&json!({
                "name": "credit-scoring",
                "version": "2.0",
                "checksum": "ab".repeat(32),
                "artifact_uri": "s3://models/credit-scoring",
                "metadata": {"team": "a"},
                "sensitive_metadata": {"team": CANARY},
                "justification": "x"
            }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 422);

    let logs = server.stop();
    assert_nowhere(&dir.0, Some(&logs));
    // The control: the same search finds the plain metadata value in the database files.
    let files = raw_database(&dir.0);
    assert!(
        files
            .iter()
            .any(|(_, bytes)| contains(bytes, CONTROL.as_bytes())),
        "the search finds an unsealed value"
    );
    assert!(
        logs.contains("\"route\":\"/v1/models\""),
        "the searched logs hold the registration's request: {logs}"
    );

    let shred = run({
        let mut c = airisk(&db_url, &signing_key);
        c.args([
            "tenant",
            "shred",
            "--tenant",
            "acme",
            "--actor",
            "operator:dpo",
            "--reason",
            "erasure request 44",
        ]);
        c
    });
    assert!(shred.status.success(), "{}", text(&shred.stderr));

    let server = Server::spawn(serve(airisk(&db_url, &signing_key)));
    let got = read(&server.base);
    assert_eq!(
        got["erased_metadata"],
        json!(["data_owner", "sample"]),
        "{got}"
    );
    assert!(got.get("sensitive_metadata").is_none(), "{got}");
    assert_eq!(got["metadata"]["team"], CONTROL);
    let logs = server.stop();
    assert_nowhere(&dir.0, Some(&logs));
}

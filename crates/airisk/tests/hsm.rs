//! `airisk serve` with both long-lived keys in a PKCS#11 token (SoftHSM2, made by
//! scripts/setup-softhsm.sh), as an operator runs it: the keys created inside the token by
//! `airisk keys hsm-generate`, the service started with no `AIRISK_ENCRYPTION_KEYS` nor
//! `AIRISK_LEDGER_SIGNING_KEY`, a prompt sealed under a data key wrapped in the token, records
//! appended, a checkpoint signed in the token and verified with the software verifier and the
//! independent Python verifier; then the keys removed from the token: `/readyz` 503 with the
//! reason, and writes that need the token fail closed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use airisk_core::ledger::{LedgerVerifier, verify_checkpoint};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use serde_json::{Value, json};

mod support;

use support::Server;

const JWT_SECRET: &str = "hsm-test-secret-0123456789abcdef-0123456789";
const CANARY: &str = "CANARY-hsm-7f3a: proprietary instructions for customer Joan Doe";
const LEDGER_NAME: &str = "airisk.test/ledger";

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/setup-softhsm.sh and export what it prints")
    })
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `airisk` with the token's variables and none of the environment keys.
fn airisk(db_url: &str, kek: &str, ledger: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airisk"));
    for var in [
        "AIRISK_ENCRYPTION_KEYS",
        "AIRISK_LEDGER_SIGNING_KEY",
        "AIRISK_LEDGER_VERIFIER_KEY",
        "AIRISK_JWKS_FILE",
        "AIRISK_BIND",
        "AIRISK_CONFIG",
        "AIRISK_JWT_PRIVATE_KEY_FILE",
    ] {
        c.env_remove(var);
    }
    c.env("AIRISK_DATABASE_URL", db_url)
        .env("AIRISK_PKCS11_MODULE", env("AIRISK_TEST_PKCS11_MODULE"))
        .env("AIRISK_PKCS11_TOKEN", env("AIRISK_TEST_PKCS11_TOKEN"))
        .env("AIRISK_PKCS11_PIN", env("AIRISK_TEST_PKCS11_PIN"))
        .env("AIRISK_PKCS11_KEK_LABEL", kek)
        .env("AIRISK_PKCS11_LEDGER_KEY_LABEL", ledger)
        .env("AIRISK_LEDGER_NAME", LEDGER_NAME)
        .env("AIRISK_JWT_SECRET", JWT_SECRET)
        .env("AIRISK_DANGEROUS_ALLOW_HS256", "true")
        .stdin(Stdio::null());
    c
}

fn ok(mut cmd: Command) -> String {
    let out: Output = cmd.output().unwrap();
    // The arguments only: the command's environment holds the PIN.
    let args: Vec<_> = cmd.get_args().collect();
    assert!(
        out.status.success(),
        "airisk {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `cmd` as an `airisk serve` command for [`Server::spawn`], logging at `debug`.
fn serve(mut cmd: Command) -> Command {
    cmd.arg("serve").env("AIRISK_LOG", "debug");
    cmd
}

/// Destroys the key objects labelled `label` of `class` through a session of this process (the
/// server's SoftHSM2 instance sees the token's files change).
fn destroy(class: ObjectClass, key_type: KeyType, label: &str) {
    let ctx = Pkcs11::new(env("AIRISK_TEST_PKCS11_MODULE")).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let token = env("AIRISK_TEST_PKCS11_TOKEN");
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == token)
        .unwrap();
    let s = ctx.open_rw_session(slot).unwrap();
    s.login(
        UserType::User,
        Some(&AuthPin::from(env("AIRISK_TEST_PKCS11_PIN").as_str())),
    )
    .unwrap();
    let found = s
        .find_objects(&[
            Attribute::Class(class),
            Attribute::KeyType(key_type),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1, "one object labelled {label}");
    s.destroy_object(found[0]).unwrap();
}

#[test]
#[ignore = "SoftHSM2: needs AIRISK_TEST_PKCS11_MODULE; run with --ignored (scripts/test.sh does)"]
fn serve_with_keys_in_softhsm_seals_signs_verifies_and_fails_closed() {
    let dir = Scratch(std::env::temp_dir().join(format!("airisk-hsm-{}", uuid::Uuid::now_v7())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let db_url = format!("sqlite://{}/airisk.db", dir.0.display());
    let suffix = &uuid::Uuid::now_v7().simple().to_string()[20..];
    let kek = format!("kek-e2e-{suffix}");
    let ledger = format!("ledger-e2e-{suffix}");
    let cli = || airisk(&db_url, &kek, &ledger);

    // The keys, made inside the token by the operator's command.
    let made = ok({
        let mut c = cli();
        c.args([
            "keys",
            "hsm-generate",
            "--kek-label",
            &kek,
            "--ledger-label",
            &ledger,
        ]);
        c
    });
    assert!(
        made.contains(&format!("key-encryption key {kek:?} created: extractable=false sensitive=true never_extractable=true")),
        "{made}"
    );
    assert!(made.contains("ledger key pair (private key)"), "{made}");
    let verifier_key = made
        .lines()
        .find_map(|l| l.strip_prefix("verifier key (for auditors): "))
        .expect("a verifier key line")
        .to_owned();
    let verifier = LedgerVerifier::parse(&verifier_key).unwrap();
    assert_eq!(verifier.name().as_str(), LEDGER_NAME);
    let printed = ok({
        let mut c = cli();
        c.args(["keys", "hsm-verifier"]);
        c
    });
    assert_eq!(printed.trim(), verifier_key);
    // The PIN is never printed.
    assert!(!made.contains(&env("AIRISK_TEST_PKCS11_PIN")));

    let token = |tenant: &str, sub: &str, role: &str| {
        ok({
            let mut c = cli();
            c.args([
                "token", "issue", "--sub", sub, "--tenant", tenant, "--role", role,
            ]);
            c
        })
        .trim()
        .to_owned()
    };
    let admin = token("acme", "alice", "admin");
    let analyst = token("acme", "carol", "analyst");
    let globex_admin = token("globex", "gina", "admin");

    let server = Server::spawn(serve(cli()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let call = |method: &str, path: &str, bearer: Option<&str>, body: Option<Value>| {
        rt.block_on(async {
            let url = format!("{}{path}", server.base);
            let mut r = match method {
                "GET" => client.get(url),
                _ => client.post(url),
            };
            if let Some(b) = bearer {
                r = r.bearer_auth(b);
            }
            if let Some(b) = body {
                r = r.json(&b);
            }
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        })
    };

    assert_eq!(call("GET", "/readyz", None, None).0, 200);
    let (status, body) = call(
        "POST",
        "/v1/prompts",
        Some(&admin),
        Some(json!({"name": "loan/system", "template": CANARY, "change_reason": "first"})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, got) = call("GET", "/v1/prompts/loan%2Fsystem", Some(&admin), None);
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["template"], CANARY);
    let (status, body) = call(
        "POST",
        "/v1/audit/events",
        Some(&analyst),
        Some(json!({
            "action": "loan.decision",
            "resource_type": "application",
            "resource_id": "A-1",
            "metadata": {"decision": "declined"},
            "sensitive_metadata": {"customer": CANARY}
        })),
    );
    assert_eq!(status, 201, "{body}");

    // The data key is stored wrapped by the token's KEK, in the documented format.
    {
        let conn = rusqlite::Connection::open(dir.0.join("airisk.db")).unwrap();
        let wrapped: Vec<String> = conn
            .prepare("SELECT wrapped FROM data_keys WHERE tenant_id = 'acme'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(!wrapped.is_empty());
        for w in &wrapped {
            assert!(w.starts_with(&format!("p11.{kek}.")), "{w}");
        }
    }

    // A checkpoint signed in the token verifies with the software verifier; a tampered one not.
    let (status, cp) = call("POST", "/v1/audit/checkpoint", Some(&analyst), None);
    assert_eq!(status, 200, "{cp}");
    assert_eq!(cp["verifier_key"], verifier_key);
    let note = cp["note"].as_str().unwrap();
    let checked = verify_checkpoint(note, &verifier).unwrap();
    assert!(checked.size >= 2, "{checked:?}");
    let tampered = note.replacen(
        &format!("\n{}\n", checked.size),
        &format!("\n{}\n", checked.size + 1),
        1,
    );
    assert!(verify_checkpoint(&tampered, &verifier).is_err());

    // The operator's CLI signs with the token's key too (no AIRISK_LEDGER_SIGNING_KEY).
    let (status, body) = call(
        "POST",
        "/v1/audit/events",
        Some(&analyst),
        Some(json!({"action": "loan.note", "resource_type": "application", "resource_id": "A-1"})),
    );
    assert_eq!(status, 201, "{body}");
    let cli_note = ok({
        let mut c = cli();
        c.args(["audit", "checkpoint", "--tenant", "acme"]);
        c
    });
    let by_cli = verify_checkpoint(&cli_note, &verifier).unwrap();
    assert!(by_cli.size > checked.size, "{by_cli:?} after {checked:?}");

    // The export verifies with the independent Python verifier and the token's verifier key;
    // the auditor with access to the token reads the sensitive value back.
    let export = ok({
        let mut c = cli();
        c.env("AIRISK_LEDGER_VERIFIER_KEY", &verifier_key).args([
            "audit",
            "export",
            "--tenant",
            "acme",
            "--decrypt",
        ]);
        c
    });
    let line: Value = serde_json::from_str(
        export
            .lines()
            .find(|l| l.contains("\"decrypted\""))
            .expect("an entry with decrypted values"),
    )
    .unwrap();
    assert_eq!(line["decrypted"]["customer"], CANARY);
    let file = dir.0.join("acme.jsonl");
    std::fs::write(&file, &export).unwrap();
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
        String::from_utf8_lossy(&py.stdout),
        String::from_utf8_lossy(&py.stderr)
    );

    // KEK rotation inside the token: a new key, then `tenant rewrap-data-keys` under its label.
    let kek2 = format!("kek2-e2e-{suffix}");
    ok({
        let mut c = cli();
        c.args(["keys", "hsm-generate", "--kek-label", &kek2]);
        c
    });
    let rewrapped = ok({
        let mut c = cli();
        c.env("AIRISK_PKCS11_KEK_LABEL", &kek2).args([
            "tenant",
            "rewrap-data-keys",
            "--actor",
            "operator:keys",
        ]);
        c
    });
    assert!(
        rewrapped.contains("tenant acme: 1 data key(s) rewrapped"),
        "{rewrapped}"
    );
    let stored = {
        let conn = rusqlite::Connection::open(dir.0.join("airisk.db")).unwrap();
        conn.query_row(
            "SELECT wrapped FROM data_keys WHERE tenant_id = 'acme'",
            [],
            |r| r.get::<_, String>(0),
        )
        .unwrap()
    };
    assert!(stored.starts_with(&format!("p11.{kek2}.")), "{stored}");

    // The old KEK and the ledger key leave the token.
    destroy(ObjectClass::SECRET_KEY, KeyType::AES, &kek);
    destroy(ObjectClass::PRIVATE_KEY, KeyType::EC_EDWARDS, &ledger);
    // The rewrapped data key opens with the new KEK alone (the service's cache is keyed by the
    // wrapped text, which changed, so this read unwraps in the token again).
    let (status, got) = call("GET", "/v1/prompts/loan%2Fsystem", Some(&admin), None);
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["template"], CANARY);

    // The service's own KEK label and ledger key are gone: readiness says why, and nothing that
    // needs them succeeds.
    let (status, body) = call("GET", "/readyz", None, None);
    assert_eq!(status, 503, "{body}");
    let reason = body["reason"].as_str().unwrap_or_default().to_owned();
    assert!(
        reason.contains("key-encryption key") && reason.contains(&kek),
        "{body}"
    );
    // A tenant's first sealed value needs a data key wrapped in the token: refused, nothing kept.
    let (status, body) = call(
        "POST",
        "/v1/prompts",
        Some(&globex_admin),
        Some(json!({"name": "p", "template": "GLOBEX-SECRET", "change_reason": "first"})),
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["type"], "urn:airisk:problem:keys-unavailable",
        "{body}"
    );
    let (status, _) = call("GET", "/v1/prompts/p", Some(&globex_admin), None);
    assert_eq!(status, 404, "the refused prompt was not stored");
    // A new record is appended, but no checkpoint can be signed for it.
    let (status, body) = call(
        "POST",
        "/v1/audit/events",
        Some(&analyst),
        Some(
            json!({"action": "loan.review", "resource_type": "application", "resource_id": "A-2"}),
        ),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = call("POST", "/v1/audit/checkpoint", Some(&analyst), None);
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["type"], "urn:airisk:problem:keys-unavailable",
        "{body}"
    );
    let (status, latest) = call("GET", "/v1/audit/checkpoint", Some(&analyst), None);
    assert_eq!(status, 200, "{latest}");
    assert_eq!(
        latest["size"], by_cli.size,
        "no checkpoint beyond the last one the token signed"
    );

    // Keys put back under the same labels are other keys: the KEK is usable again for new wraps,
    // but a replaced ledger key would sign notes the published verifier key rejects, so the
    // service stays unready and signs nothing.
    destroy(ObjectClass::PUBLIC_KEY, KeyType::EC_EDWARDS, &ledger);
    ok({
        let mut c = cli();
        c.args([
            "keys",
            "hsm-generate",
            "--kek-label",
            &kek,
            "--ledger-label",
            &ledger,
        ]);
        c
    });
    let (status, body) = call("GET", "/readyz", None, None);
    assert_eq!(status, 503, "{body}");
    let reason = body["reason"].as_str().unwrap_or_default().to_owned();
    assert!(
        reason.contains("ledger signing key")
            && reason.contains("not the key this service started with"),
        "{body}"
    );
    let (status, body) = call("POST", "/v1/audit/checkpoint", Some(&analyst), None);
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["type"], "urn:airisk:problem:keys-unavailable",
        "{body}"
    );
    let (status, body) = call(
        "POST",
        "/v1/prompts",
        Some(&globex_admin),
        Some(json!({"name": "p", "template": "globex template", "change_reason": "first"})),
    );
    assert_eq!(status, 201, "a KEK is back under the label: {body}");
    let logs = server.stop();
    assert!(
        logs.contains("does not verify with its public key"),
        "a replaced key pair is caught before a note is written"
    );
    assert!(
        logs.contains("the ledger signing key cannot sign"),
        "the cause is logged"
    );
    assert!(
        !logs.contains(&env("AIRISK_TEST_PKCS11_PIN")),
        "no PIN in the logs"
    );
    assert!(!logs.contains("CANARY"), "no plaintext in the logs");
}

/// Moving to an HSM: data keys wrapped by the environment keyring are rewrapped into the token by
/// `airisk tenant rewrap-data-keys` run with both configured; afterwards the token alone opens
/// them, and the keyring is no longer needed.
#[test]
#[ignore = "SoftHSM2: needs AIRISK_TEST_PKCS11_MODULE; run with --ignored (scripts/test.sh does)"]
fn rewrap_data_keys_moves_keyring_wrapped_keys_into_the_token() {
    /// Public test key material (never use it for anything).
    const KEYRING: &str = "kek1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let dir = Scratch(std::env::temp_dir().join(format!("airisk-hsm-{}", uuid::Uuid::now_v7())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let db_url = format!("sqlite://{}/airisk.db", dir.0.display());
    let suffix = &uuid::Uuid::now_v7().simple().to_string()[20..];
    let kek = format!("kek-move-{suffix}");
    let ledger_keys = ok({
        let mut c = airisk(&db_url, &kek, "unused");
        c.env_remove("AIRISK_PKCS11_MODULE").args([
            "keys",
            "generate",
            "--ledger",
            "--name",
            LEDGER_NAME,
        ]);
        c
    });
    let signing_key = ledger_keys.lines().next().unwrap().trim().to_owned();
    // The keyring-only deployment the bank runs today.
    let keyring_only = || {
        let mut c = airisk(&db_url, &kek, "unused");
        c.env_remove("AIRISK_PKCS11_MODULE")
            .env("AIRISK_ENCRYPTION_KEYS", KEYRING)
            .env("AIRISK_LEDGER_SIGNING_KEY", &signing_key);
        c
    };
    // The token for the KEK only; the ledger key stays the environment's here.
    let token_only = || {
        let mut c = airisk(&db_url, &kek, "unused");
        c.env_remove("AIRISK_PKCS11_LEDGER_KEY_LABEL")
            .env("AIRISK_LEDGER_SIGNING_KEY", &signing_key);
        c
    };
    let analyst = ok({
        let mut c = keyring_only();
        c.args([
            "token", "issue", "--sub", "carol", "--tenant", "acme", "--role", "analyst",
        ]);
        c
    })
    .trim()
    .to_owned();
    let server = Server::spawn(serve(keyring_only()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/v1/audit/events", server.base))
            .bearer_auth(&analyst)
            .json(&json!({
                "action": "loan.decision",
                "resource_type": "application",
                "resource_id": "A-1",
                "sensitive_metadata": {"customer": CANARY}
            }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 201);
    server.stop();
    let wrapped = || {
        let conn = rusqlite::Connection::open(dir.0.join("airisk.db")).unwrap();
        conn.query_row(
            "SELECT wrapped FROM data_keys WHERE tenant_id = 'acme'",
            [],
            |r| r.get::<_, String>(0),
        )
        .unwrap()
    };
    assert!(wrapped().starts_with("v1.kek1."), "{}", wrapped());

    let export = |mut c: Command| {
        c.args(["audit", "export", "--tenant", "acme", "--decrypt"]);
        c.output().unwrap()
    };
    // The new KEK, made in the token.
    ok({
        let mut c = cli_both(&db_url, &kek, &signing_key, KEYRING);
        c.args(["keys", "hsm-generate", "--kek-label", &kek]);
        c
    });
    // The token alone cannot open a keyring wrap (and says why, not "wrong key").
    let before = export(token_only());
    assert!(!before.status.success());
    assert!(
        String::from_utf8_lossy(&before.stderr).contains("not a key wrapped in the PKCS#11 token"),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );

    let moved = ok({
        let mut c = cli_both(&db_url, &kek, &signing_key, KEYRING);
        c.args(["tenant", "rewrap-data-keys", "--actor", "operator:keys"]);
        c
    });
    assert!(
        moved.contains("tenant acme: 1 data key(s) rewrapped"),
        "{moved}"
    );
    assert!(
        wrapped().starts_with(&format!("p11.{kek}.")),
        "{}",
        wrapped()
    );
    let after = export(token_only());
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    let line: Value = serde_json::from_str(
        String::from_utf8(after.stdout)
            .unwrap()
            .lines()
            .find(|l| l.contains("\"decrypted\""))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["decrypted"]["customer"], CANARY);
    // And the keyring alone no longer opens it.
    let keyring_after = export(keyring_only());
    assert!(!keyring_after.status.success());
}

/// The CLI with the token's KEK and the environment keyring (the move) and the environment's
/// ledger key.
fn cli_both(db_url: &str, kek: &str, signing_key: &str, keyring: &str) -> Command {
    let mut c = airisk(db_url, kek, "unused");
    c.env_remove("AIRISK_PKCS11_LEDGER_KEY_LABEL")
        .env("AIRISK_ENCRYPTION_KEYS", keyring)
        .env("AIRISK_LEDGER_SIGNING_KEY", signing_key);
    c
}

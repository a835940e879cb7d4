//! `airisk audit …` and `airisk keys generate --ledger`, spawned as an operator or auditor runs
//! them, against a real SQLite file. Includes the crash test: a writer killed with SIGKILL
//! mid-stream loses no acknowledged record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a broken expectation must panic

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use airisk_core::governance::audit_record::AuditRecord;
use airisk_core::ledger::{self, Hash, LedgerVerifier, verify_checkpoint};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

mod support;
use support::feed;

/// A scratch folder, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "airisk-cli-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn db_url(&self) -> String {
        format!("sqlite://{}", self.0.join("ledger.db").display())
    }
    fn db_path(&self) -> PathBuf {
        self.0.join("ledger.db")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Ledger {
    scratch: Scratch,
    signing_key: String,
    verifier_key: String,
}

impl Ledger {
    fn new(name: &str) -> Ledger {
        let keys = run(&["keys", "generate", "--ledger"], &[], b"");
        assert!(keys.status.success(), "{}", text(&keys.stderr));
        let out = text(&keys.stdout);
        let lines: Vec<&str> = out.lines().collect();
        let [signing_key, verifier_key] = lines.as_slice() else {
            panic!("expected two lines, got {out:?}")
        };
        assert!(signing_key.starts_with("PRIVATE+KEY+airisk.local/ledger+"));
        LedgerVerifier::parse(verifier_key).unwrap();
        Ledger {
            scratch: Scratch::new(name),
            signing_key: (*signing_key).to_owned(),
            verifier_key: (*verifier_key).to_owned(),
        }
    }

    fn command(&self, args: &[&str], signing: bool) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_airisk"));
        c.arg("audit")
            .args(args)
            .env("AIRISK_DATABASE_URL", self.scratch.db_url())
            .env_remove("AIRISK_LEDGER_SIGNING_KEY")
            .env_remove("AIRISK_LEDGER_VERIFIER_KEY")
            .env("AIRISK_CHECKPOINT_EVERY_ENTRIES", "4")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if signing {
            c.env("AIRISK_LEDGER_SIGNING_KEY", &self.signing_key);
        } else {
            c.env("AIRISK_LEDGER_VERIFIER_KEY", &self.verifier_key);
        }
        c
    }

    /// Runs as the operator (with the signing key).
    fn operator(&self, args: &[&str], stdin: &[u8]) -> Output {
        feed(self.command(args, true), stdin)
    }

    /// Runs as an auditor (verifier key only).
    fn auditor(&self, args: &[&str]) -> Output {
        feed(self.command(args, false), b"")
    }

    fn log(&self, n: usize) {
        for i in 0..n {
            let out = self.operator(
                &[
                    "log",
                    "--actor",
                    "alice@bank.example",
                    "--tenant",
                    "acme",
                    "--action",
                    "model.register",
                    "--resource-type",
                    "model",
                    "--resource-id",
                    &format!("credit-scoring:{i}"),
                    "--reason",
                    "quarterly recalibration",
                ],
                b"",
            );
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
    }
}

fn run(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airisk"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    feed(c, stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn record_line(i: usize) -> String {
    format!(
        r#"{{"actor":"svc:batch","tenant_id":"acme","action":"model.score","resource_type":"model","resource_id":"m-{i}","metadata":{{"i":{i}}}}}"#
    )
}

#[test]
fn keys_generate_ledger_prints_a_signing_key_and_its_verifier_key() {
    let a = Ledger::new("keys-a");
    let b = Ledger::new("keys-b");
    assert_ne!(a.signing_key, b.signing_key);
    let named = run(
        &[
            "keys",
            "generate",
            "--ledger",
            "--name",
            "bank.example/audit",
        ],
        &[],
        b"",
    );
    assert!(
        text(&named.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("bank.example/audit+")
    );
    let bad = run(
        &["keys", "generate", "--ledger", "--name", "has space"],
        &[],
        b"",
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("invalid ledger name"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn the_signing_key_is_refused_on_the_command_line() {
    let l = Ledger::new("secret-flag");
    let out = feed(
        {
            let mut c = l.command(&["verify", "--signing-key", &l.signing_key], false);
            c.env_remove("AIRISK_LEDGER_VERIFIER_KEY");
            c
        },
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("AIRISK_LEDGER_SIGNING_KEY"), "{err}");
    assert!(
        !err.contains(&l.signing_key),
        "the key must not be echoed: {err}"
    );
}

#[test]
fn log_verify_export_and_proofs_work_end_to_end_for_an_auditor() {
    let l = Ledger::new("e2e");
    l.log(6);
    let verify = l.auditor(&["verify", "--tenant", "acme"]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    assert!(
        text(&verify.stdout).starts_with("acme: intact: 6 entries"),
        "{}",
        text(&verify.stdout)
    );

    // Export as the operator (signs a checkpoint at the head), then check it offline: recompute
    // the root from the exported leaf bytes and check the signature with the verifier key.
    let export = l.operator(&["export", "--tenant", "acme"], b"");
    assert!(export.status.success(), "{}", text(&export.stderr));
    let lines: Vec<serde_json::Value> = text(&export.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let (trailer, entries) = lines.split_first().unwrap();
    assert_eq!(entries.len(), 6);
    let mut hashes: Vec<Hash> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["type"], "entry");
        assert_eq!(e["seq"], i as u64);
        let leaf = BASE64.decode(e["leaf"].as_str().unwrap()).unwrap();
        let hash = ledger::leaf_hash(&leaf);
        assert_eq!(hash.to_hex(), e["leaf_hash"]);
        let record = AuditRecord::from_leaf_bytes(&leaf).unwrap();
        assert_eq!(record.seq(), i as u64);
        hashes.push(hash);
    }
    assert_eq!(trailer["type"], "checkpoint");
    assert_eq!(trailer["verifier_key"], l.verifier_key);
    let verifier = LedgerVerifier::parse(trailer["verifier_key"].as_str().unwrap()).unwrap();
    let checkpoint = verify_checkpoint(trailer["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    assert_eq!(checkpoint.size, 6);
    assert_eq!(checkpoint.root, ledger::root_from_leaf_hashes(&hashes));

    let proof = l.auditor(&["proof", "inclusion", "--tenant", "acme", "--seq", "4"]);
    assert!(proof.status.success(), "{}", text(&proof.stderr));
    let p: serde_json::Value = serde_json::from_slice(&proof.stdout).unwrap();
    let path: Vec<Hash> = p["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(p["tree_size"], 6);
    ledger::verify_inclusion(4, 6, hashes[4], &path, checkpoint.root).unwrap();

    let cons = l.auditor(&["proof", "consistency", "--tenant", "acme", "--from", "3"]);
    let c: serde_json::Value = serde_json::from_slice(&cons.stdout).unwrap();
    let path: Vec<Hash> = c["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().parse().unwrap())
        .collect();
    ledger::verify_consistency(
        3,
        6,
        ledger::root_from_leaf_hashes(&hashes[..3]),
        checkpoint.root,
        &path,
    )
    .unwrap();
}

#[test]
fn verify_without_any_key_refuses_to_vouch() {
    let l = Ledger::new("nokey");
    l.log(1);
    let out = feed(
        {
            let mut c = l.command(&["verify"], false);
            c.env_remove("AIRISK_LEDGER_VERIFIER_KEY");
            c
        },
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("verifier key"),
        "{}",
        text(&out.stderr)
    );
}

/// Opens the file as an attacker with write access would, and removes the trigger wall.
fn tamper(path: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS audit_entries_no_update;
         DROP TRIGGER IF EXISTS audit_entries_no_delete;",
    )
    .unwrap();
    conn.execute_batch(sql).unwrap();
}

#[test]
fn verify_names_the_first_bad_seq_and_exits_non_zero_after_tampering() {
    let l = Ledger::new("tamper");
    l.log(5);
    tamper(
        &l.scratch.db_path(),
        "UPDATE audit_entries SET leaf = CAST(replace(CAST(leaf AS TEXT), 'credit-scoring:2', 'credit-scoring:9') AS BLOB) WHERE seq = 2;",
    );
    let out = l.auditor(&["verify", "--tenant", "acme"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("NOT INTACT") && stdout.contains("first bad seq 2"),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("acme"), "{}", text(&out.stderr));

    let json = l.auditor(&["verify", "--tenant", "acme", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["intact"], false);
    assert_eq!(report["first_bad_seq"], 2);
}

#[test]
fn verify_against_a_kept_checkpoint_detects_a_truncated_tail() {
    let l = Ledger::new("truncate");
    l.log(5);
    let cp = l.operator(&["checkpoint", "--tenant", "acme"], b"");
    assert!(cp.status.success(), "{}", text(&cp.stderr));
    let kept = l.scratch.0.join("kept.note");
    std::fs::write(&kept, &cp.stdout).unwrap();
    // Restore an older copy of the database: here, a fresh ledger of 3 entries with the same key.
    std::fs::remove_file(l.scratch.db_path()).unwrap();
    let _ = std::fs::remove_file(l.scratch.0.join("ledger.db-wal"));
    let _ = std::fs::remove_file(l.scratch.0.join("ledger.db-shm"));
    l.log(3);
    let plain = l.auditor(&["verify", "--tenant", "acme"]);
    assert!(plain.status.success(), "the store alone looks consistent");
    let out = l.auditor(&[
        "verify",
        "--tenant",
        "acme",
        "--checkpoint",
        kept.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("truncated or rolled back"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn log_lines_stops_at_the_first_bad_line_and_names_it() {
    let l = Ledger::new("lines");
    let input = format!(
        "{}\n{}\nnot json\n{}\n",
        record_line(0),
        record_line(1),
        record_line(3)
    );
    let out = l.operator(&["log", "--lines"], input.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "two receipts before the bad line"
    );
    assert!(
        text(&out.stderr).starts_with("error: line 3:"),
        "{}",
        text(&out.stderr)
    );
    let verify = l.auditor(&["verify", "--tenant", "acme", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["entries"], 2);
}

#[test]
fn a_writer_killed_with_sigkill_mid_stream_loses_no_acknowledged_record() {
    let l = Ledger::new("crash");
    let mut child = l.command(&["log", "--lines"], true).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for i in 0..1_000_000 {
            if writeln!(stdin, "{}", record_line(i)).is_err() {
                break; // the writer is dead
            }
        }
    });
    let mut receipts = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged: Vec<serde_json::Value> = Vec::new();
    while acknowledged.len() < 150 {
        let line = receipts.next().unwrap().unwrap();
        acknowledged.push(serde_json::from_str(&line).unwrap());
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no flush, no clean shutdown
    child.wait().unwrap();
    // Receipts that were already in the pipe were acknowledged too.
    for line in receipts.map_while(Result::ok) {
        acknowledged.push(serde_json::from_str(&line).unwrap());
    }
    feeder.join().unwrap();

    let export = l.operator(&["export", "--tenant", "acme"], b"");
    assert!(export.status.success(), "{}", text(&export.stderr));
    let stored: Vec<serde_json::Value> = text(&export.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|v: &serde_json::Value| v["type"] == "entry")
        .collect();
    assert!(stored.len() >= acknowledged.len());
    for receipt in &acknowledged {
        let seq = receipt["seq"].as_u64().unwrap() as usize;
        assert_eq!(
            stored[seq]["leaf_hash"], receipt["leaf_hash"],
            "acknowledged seq {seq}"
        );
    }
    let verify = l.auditor(&["verify", "--tenant", "acme"]);
    assert!(
        verify.status.success(),
        "{} {}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
}

/// The auditor's side: `tools/verify_export.py` (Python, `cryptography`) verifies a real export
/// with nothing but the documented formats, and names the entry when one byte was changed.
#[test]
fn an_export_verifies_with_the_independent_python_verifier() {
    let l = Ledger::new("python");
    l.log(9);
    let export = l.operator(&["export", "--tenant", "acme"], b"");
    assert!(export.status.success(), "{}", text(&export.stderr));
    let file = l.scratch.0.join("acme.jsonl");
    std::fs::write(&file, &export.stdout).unwrap();
    let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/verify_export.py");
    let python = |path: &Path, key: &str| {
        Command::new("python3")
            .args([
                tool,
                path.to_str().unwrap(),
                "--verifier-key",
                key,
                "--tenant",
                "acme",
            ])
            .output()
            .expect("python3 must be installed to run the auditor's verifier")
    };
    let ok = python(&file, &l.verifier_key);
    assert!(
        ok.status.success(),
        "{}{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );
    assert!(text(&ok.stdout).starts_with("verified: airisk.local/ledger/acme: 9 entries"));

    // One byte of entry 4's leaf changed (and its base64 re-encoded, as a careful forger would).
    let tampered: Vec<String> = text(&export.stdout)
        .lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["seq"] == 4 {
                let mut leaf = BASE64.decode(v["leaf"].as_str().unwrap()).unwrap();
                let at = leaf.iter().position(|b| *b == b'4').unwrap();
                leaf[at] = b'5';
                v["leaf"] = BASE64.encode(&leaf).into();
            }
            v.to_string()
        })
        .collect();
    let bad = l.scratch.0.join("tampered.jsonl");
    std::fs::write(&bad, tampered.join("\n")).unwrap();
    let out = python(&bad, &l.verifier_key);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("entry 4"),
        "{}",
        text(&out.stderr)
    );

    // The same export against a key the auditor does not trust.
    let other = Ledger::new("python-other");
    let out = python(&file, &other.verifier_key);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("another verifier key"),
        "{}",
        text(&out.stderr)
    );
}

/// Runs `tools/verify_export.py` on `export` with the given extra arguments.
fn python_verifier(export: &Path, key: &str, extra: &[&str]) -> Output {
    let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/verify_export.py");
    Command::new("python3")
        .args([tool, export.to_str().unwrap(), "--verifier-key", key])
        .args(extra)
        .output()
        .expect("python3 must be installed to run the auditor's verifier")
}

/// The Python verifier takes the tenant the auditor expects and refuses an export of another,
/// and checks an export against a checkpoint kept from earlier: consistent after growth, and a
/// restored older copy of the database file (rollback) or a history rewritten after it fails.
#[test]
fn the_python_verifier_checks_the_tenant_and_a_kept_checkpoint_across_a_restored_backup() {
    let l = Ledger::new("python-kept");
    let export = |name: &str| {
        let out = l.operator(&["export", "--tenant", "acme"], b"");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let file = l.scratch.0.join(name);
        std::fs::write(&file, &out.stdout).unwrap();
        let header: serde_json::Value =
            serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
        // Kept as an auditor would: the note, saved with one more newline (as `jq -r` writes).
        let kept = l.scratch.0.join(format!("{name}.note"));
        std::fs::write(
            &kept,
            format!("{}\n", header["checkpoint"].as_str().unwrap()),
        )
        .unwrap();
        (file, kept)
    };
    let key = l.verifier_key.clone();
    let ok = |out: &Output| {
        assert!(
            out.status.success(),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    };
    let refused = |out: &Output, why: &str| {
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(why),
            "{why}: {}",
            text(&out.stderr)
        );
    };

    l.log(6);
    let (_, kept6) = export("six.jsonl");
    // A backup as of 6 entries: the database file with its -wal (no process has it open, so the
    // files together are one consistent state).
    let backup = l.scratch.0.join("backup-6");
    std::fs::create_dir_all(&backup).unwrap();
    let files = |dir: &Path| -> Vec<(PathBuf, PathBuf)> {
        ["", "-wal", "-shm"]
            .iter()
            .map(|suffix| {
                (
                    PathBuf::from(format!("{}{suffix}", l.scratch.db_path().display())),
                    dir.join(format!("ledger.db{suffix}")),
                )
            })
            .collect()
    };
    for (live, copy) in files(&backup) {
        if live.exists() {
            std::fs::copy(&live, &copy).unwrap();
        }
    }
    l.log(3);
    let (nine, kept9) = export("nine.jsonl");

    // The right tenant, consistent with the checkpoint kept at 6.
    let out = python_verifier(
        &nine,
        &key,
        &["--tenant", "acme", "--checkpoint", kept6.to_str().unwrap()],
    );
    ok(&out);
    assert!(
        text(&out.stdout).contains("consistent with your kept checkpoint of size 6"),
        "{}",
        text(&out.stdout)
    );
    // Another tenant than the file names: refused, whatever the file says about itself.
    refused(
        &python_verifier(&nine, &key, &["--tenant", "globex"]),
        "not 'globex'",
    );
    // The tenant is required.
    let out = python_verifier(&nine, &key, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // The operator restores the older backup: its own export verifies on its own…
    for (live, copy) in files(&backup) {
        let _ = std::fs::remove_file(&live);
        if copy.exists() {
            std::fs::copy(&copy, &live).unwrap();
        }
    }
    let (restored, _) = export("restored.jsonl");
    ok(&python_verifier(&restored, &key, &["--tenant", "acme"]));
    // …but not against the checkpoint the auditor kept at 9.
    refused(
        &python_verifier(
            &restored,
            &key,
            &["--tenant", "acme", "--checkpoint", kept9.to_str().unwrap()],
        ),
        "rolled back or truncated",
    );
    // Grown back to 9 with different records: same size, another history.
    l.log(3);
    let (rewritten, _) = export("rewritten.jsonl");
    refused(
        &python_verifier(
            &rewritten,
            &key,
            &["--tenant", "acme", "--checkpoint", kept9.to_str().unwrap()],
        ),
        "history rewritten",
    );
    // A kept checkpoint signed by another key is refused as such.
    let other = Ledger::new("python-kept-other");
    other.log(1);
    let out = other.operator(&["export", "--tenant", "acme"], b"");
    let header: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    let foreign = l.scratch.0.join("foreign.note");
    std::fs::write(&foreign, header["checkpoint"].as_str().unwrap()).unwrap();
    refused(
        &python_verifier(
            &nine,
            &key,
            &[
                "--tenant",
                "acme",
                "--checkpoint",
                foreign.to_str().unwrap(),
            ],
        ),
        "the kept checkpoint",
    );
}

//! `airisk keys seal-existing` as an operator runs it, on a SQLite file written the way a build
//! before sealing wrote it (prompt templates in plaintext, each with its ledger record): a run
//! bounded by `--max-rows`, a run killed (SIGKILL) right after its first committed row, a run that
//! finishes, a run with nothing left; afterwards the canary is in no byte of the file, its WAL or
//! its shared memory, the ledger verifies, and the service reads every template back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use airisk_core::governance::prompt_registry::PromptRegistry;
use airisk_core::ports::{SystemClock, UuidV7Generator};
use airisk_core::request::CorrelationId;
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::{ActorId, Principal, TenantId};

/// Public test key material (never use it for anything).
const KEK: &str = "kek1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const CANARY: &str = "CANARY-0c7d21-legacy-plaintext-prompt";
const PROMPTS: usize = 30;

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn airisk(db_url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airisk"));
    c.env("AIRISK_DATABASE_URL", db_url)
        .env("AIRISK_ENCRYPTION_KEYS", KEK)
        .stdin(Stdio::null());
    c
}

fn seal_existing(db_url: &str, extra: &[&str]) -> Output {
    let mut c = airisk(db_url);
    c.args(["keys", "seal-existing", "--actor", "operator:keys"])
        .args(extra);
    c.output().unwrap()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Which files of the database (main, WAL, shared memory) hold `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("airisk.db"))
        })
        .filter(|p| contains(&std::fs::read(p).unwrap(), needle.as_bytes()))
        .map(|p| p.display().to_string())
        .collect()
}

fn sealed_rows(file: &Path) -> i64 {
    rusqlite::Connection::open(file)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM prompt_versions WHERE json_extract(body, '$.sealed') = 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// Number `n` in "tenant acme: n prompt version(s) sealed".
fn sealed_count(out: &str) -> usize {
    out.lines()
        .find_map(|l| l.strip_prefix("tenant acme: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {out}"))
}

#[test]
fn plaintext_templates_are_sealed_in_place_resumably_and_idempotently() {
    let dir = std::env::temp_dir().join(format!("airisk-seal-existing-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = Scratch(dir);
    let file = dir.0.join("airisk.db");
    let db_url = format!("sqlite://{}", file.display());

    // The old build: a registry without an envelope stores each template as given.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(
            airisk_store_sqlite::SqliteStore::open(&db_url, Arc::new(SystemClock)).unwrap(),
        );
        let old = PromptRegistry::new(
            store.clone(),
            Arc::new(SystemClock),
            Arc::new(UuidV7Generator),
        );
        let admin = Principal::human(
            ActorId::parse("ada").unwrap(),
            TenantId::parse("acme").unwrap(),
            Role::Admin,
        );
        for i in 0..PROMPTS {
            old.register_prompt(
                &admin,
                &CorrelationId::generate(),
                &format!("p{i:02}"),
                &format!("{CANARY} number {i}"),
                "written before sealing existed",
            )
            .await
            .unwrap();
        }
    });
    // The control: the search finds the plaintext the old build wrote.
    assert!(
        !files_holding(&dir.0, CANARY).is_empty(),
        "the search works"
    );
    assert_eq!(sealed_rows(&file), 0);

    // A bounded run seals exactly that many rows.
    let out = seal_existing(&db_url, &["--max-rows", "3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sealed_count(&text(&out.stdout)), 3, "{}", text(&out.stdout));
    assert_eq!(sealed_rows(&file), 3);

    // A run killed right after it reported its first committed row.
    let mut child = airisk(&db_url)
        .args(["keys", "seal-existing", "--actor", "operator:keys"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a progress line").unwrap();
    assert!(first.starts_with("sealed acme prompt "), "{first}");
    child.kill().unwrap();
    child.wait().unwrap();
    let after_kill = sealed_rows(&file);
    assert!(
        after_kill >= 4,
        "the reported row was committed: {after_kill}"
    );

    // The next run finishes exactly the rest.
    let out = seal_existing(&db_url, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        sealed_count(&stdout) as i64,
        PROMPTS as i64 - after_kill,
        "{stdout}"
    );
    assert_eq!(sealed_rows(&file), PROMPTS as i64);
    assert!(stdout.contains("vacuumed"), "{stdout}");

    // Nothing left: the run says so and writes no record.
    let ledger_size = |file: &Path| -> i64 {
        rusqlite::Connection::open(file)
            .unwrap()
            .query_row("SELECT count(*) FROM audit_entries", [], |r| r.get(0))
            .unwrap()
    };
    let size = ledger_size(&file);
    let out = seal_existing(&db_url, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("nothing to seal"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(ledger_size(&file), size);
    // One keys.seal_existing record per row, whichever run sealed it.
    let records: i64 = rusqlite::Connection::open(&file)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM audit_entries WHERE CAST(leaf AS TEXT) LIKE '%\"keys.seal_existing\"%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(records, PROMPTS as i64);

    // The plaintext is gone from the file, its WAL and shared memory.
    assert_eq!(files_holding(&dir.0, CANARY), Vec::<String>::new());

    // The ledger verifies, and a sealing registry reads every template back.
    let keys = airisk(&db_url)
        .args(["keys", "generate", "--ledger"])
        .output()
        .unwrap();
    assert!(keys.status.success(), "{}", text(&keys.stderr));
    let signing_key = text(&keys.stdout).lines().next().unwrap().trim().to_owned();
    let out = airisk(&db_url)
        .env("AIRISK_LEDGER_SIGNING_KEY", signing_key)
        .args(["audit", "verify", "--tenant", "acme"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    rt.block_on(async {
        let store = Arc::new(
            airisk_store_sqlite::SqliteStore::open(&db_url, Arc::new(SystemClock)).unwrap(),
        );
        let kek =
            Arc::new(airisk_core::security::encryption::Encryptor::from_env_value(KEK).unwrap());
        let env = Arc::new(airisk_core::security::envelope::Envelope::new(
            Arc::new(airisk_core::security::envelope::KeyringKeyProvider::new(
                kek,
            )),
            8,
        ));
        let reg = PromptRegistry::new(store, Arc::new(SystemClock), Arc::new(UuidV7Generator))
            .with_envelope(env);
        let viewer = Principal::human(
            ActorId::parse("bob").unwrap(),
            TenantId::parse("acme").unwrap(),
            Role::Viewer,
        );
        for i in 0..PROMPTS {
            let got = reg
                .get_prompt(
                    &viewer,
                    &format!("p{i:02}"),
                    &airisk_core::governance::prompt_registry::PromptSelector::Latest,
                )
                .await
                .unwrap();
            assert_eq!(got.template(), format!("{CANARY} number {i}"));
        }
    });
}

//! Database passwords stay out of the process list and out of everything the binary prints: a
//! database URL carrying a password is refused on every command line that takes one (as a user
//! information password or as a `password=` parameter, in any case), accepted from the
//! environment or a configuration file, and printed redacted wherever it is printed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod support;
use support::{Server, airisk};

/// The password every URL here carries: it must never be printed.
const SECRET: &str = "s3cretPW";

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// URLs that carry [`SECRET`] in each form a password can take.
fn urls_with_a_password() -> Vec<String> {
    vec![
        format!("postgres://app:{SECRET}@127.0.0.1:1/airisk"),
        format!("postgresql://app:{SECRET}@127.0.0.1:1/airisk?sslmode=disable"),
        format!("postgres://app@127.0.0.1:1/airisk?password={SECRET}"),
        format!("postgres://127.0.0.1:1/airisk?sslmode=disable&PassWord={SECRET}"),
        format!("sqlite://airisk-data/x.db?password={SECRET}"),
        format!("host=127.0.0.1 port=1 user=app password={SECRET}"),
    ]
}

#[test]
fn a_database_url_with_a_password_is_refused_on_every_command_line() {
    for url in urls_with_a_password() {
        let eq = format!("--database-url={url}");
        let commands: Vec<Vec<&str>> = vec![
            vec!["serve", "--database-url", &url],
            vec!["serve", "--dev", &eq],
            vec!["migrate", "--database-url", &url],
            vec!["audit", "--database-url", &url, "verify"],
            vec!["audit", "verify", "--database-url", &url],
            vec!["audit", "checkpoint", "--tenant", "acme", &eq],
            vec![
                "audit",
                "export",
                "--tenant",
                "acme",
                "--database-url",
                &url,
            ],
        ];
        for args in commands {
            let out = run(airisk().args(&args));
            let all = text(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{args:?} was not refused:\n{all}"
            );
            assert!(all.contains("holds a password"), "{args:?}:\n{all}");
            assert!(
                !all.contains(SECRET),
                "{args:?} printed the password:\n{all}"
            );
        }
    }
    // The variable to use instead is the command's own.
    let url = format!("postgres://owner:{SECRET}@127.0.0.1:1/airisk");
    let out = run(airisk().args(["migrate", "--database-url", &url]));
    assert!(
        text(&out).contains("AIRISK_ADMIN_DATABASE_URL"),
        "{}",
        text(&out)
    );
    let out = run(airisk().args(["serve", "--database-url", &url]));
    assert!(text(&out).contains("AIRISK_DATABASE_URL"), "{}", text(&out));
}

/// A fresh scratch directory.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("airisk-argv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A ledger verifier key (line 2 of `airisk keys generate --ledger`).
fn verifier_key() -> String {
    let out = run(airisk().args(["keys", "generate", "--ledger"]));
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn a_database_url_without_a_password_is_not_refused() {
    let dir = scratch("plain");
    let url = format!("sqlite://{}/plain.db", dir.display());
    let out = run(airisk()
        .args(["audit", "--database-url", &url, "verify"])
        .env("AIRISK_LEDGER_VERIFIER_KEY", verifier_key()));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn from_the_environment_a_password_is_accepted_and_every_error_redacts_it() {
    // `migrate`'s error names the server, not the password.
    let owner = format!("postgres://owner:{SECRET}@127.0.0.1:1/airisk?connect_timeout=2");
    let out = run(airisk()
        .arg("migrate")
        .env("AIRISK_ADMIN_DATABASE_URL", &owner));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("owner:***@127.0.0.1:1"), "{all}");
    assert!(!all.contains(SECRET), "{all}");
    // An audit command takes the same URL from the environment and works.
    let dir = scratch("env");
    let url = format!("sqlite://{}/env.db?password={SECRET}", dir.display());
    let out = run(airisk()
        .args(["audit", "verify"])
        .env("AIRISK_DATABASE_URL", &url)
        .env("AIRISK_LEDGER_VERIFIER_KEY", verifier_key()));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(SECRET), "{}", text(&out));
    // A store that cannot be opened is named without the password.
    let url = format!(
        "sqlite://{}/missing/dir/x.db?PassWord={SECRET}",
        dir.join("file").display()
    );
    std::fs::write(dir.join("file"), b"not a directory").unwrap();
    let out = run(airisk()
        .args(["audit", "verify"])
        .env("AIRISK_DATABASE_URL", &url)
        .env("AIRISK_LEDGER_VERIFIER_KEY", verifier_key()));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("x.db?PassWord=***"), "{all}");
    assert!(!all.contains(SECRET), "{all}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `airisk serve --dev` with `cmd`'s configuration until it listens, stops it with SIGTERM,
/// and returns everything it printed.
fn serve_dev_and_stop(mut cmd: Command) -> String {
    cmd.args(["serve", "--dev"]).stdin(Stdio::null());
    let server = Server::spawn(cmd);
    let stdout = server.banner.clone();
    assert!(stdout.contains("# airisk listening on "), "{stdout}");
    let (_, stderr) = server.terminate(Duration::from_secs(30));
    format!("{stdout}{stderr}")
}

#[test]
fn the_banner_and_the_start_up_log_redact_a_password_parameter() {
    let dir = scratch("serve");
    // From the environment.
    let url = format!("sqlite://{}/env.db?password={SECRET}", dir.display());
    let mut cmd = airisk();
    cmd.env("AIRISK_DATABASE_URL", &url);
    let all = serve_dev_and_stop(cmd);
    assert!(all.contains("env.db?password=***"), "{all}");
    assert!(
        all.contains("\"database\":\""),
        "the start-up log names the store:\n{all}"
    );
    assert!(!all.contains(SECRET), "{all}");
    // From a configuration file.
    let config = dir.join("airisk.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{}/file.db?PASSWORD={SECRET}\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let mut cmd = airisk();
    cmd.env("AIRISK_CONFIG", &config);
    let all = serve_dev_and_stop(cmd);
    assert!(all.contains("file.db?PASSWORD=***"), "{all}");
    assert!(!all.contains(SECRET), "{all}");
    // Nothing on disk is named after the password either (the dev keys file).
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(!name.to_string_lossy().contains(SECRET), "{name:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

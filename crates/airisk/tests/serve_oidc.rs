//! `airisk serve` with an OpenID provider: a provider that is down at start-up is not a crash but
//! a 503 `/readyz` with the reason, and the service becomes ready, without a restart, when the
//! provider (the real `oidc-provider` of e2e/oidc-provider.mjs) comes up; bad OIDC settings stop
//! the start with a clear message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{KillOnDrop, airisk_bare, free_port};

const CLIENT_SECRET: &str = "airisk-tests-client-secret-0123456789";

/// Reads `child`'s stdout up to the first line starting with `prefix`; returns the rest of it.
fn wait_for_line(child: &mut Child, prefix: &str) -> String {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let found = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}"));
    std::thread::spawn(move || for _ in lines {});
    found
}

#[tokio::test]
async fn a_provider_down_at_start_up_is_a_reason_not_a_crash_and_its_arrival_needs_no_restart() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(
        root.join("e2e/node_modules/oidc-provider").is_dir(),
        "e2e/node_modules/oidc-provider is missing: run `bash scripts/setup-browser-tests.sh`"
    );
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut serve = airisk_bare()
        .args(["serve", "--dev", "--bind", "127.0.0.1:0"])
        .env("AIRISK_OIDC_ISSUER", &issuer)
        .env("AIRISK_OIDC_MIN_REFRESH_GAP_SECS", "1")
        .env("AIRISK_OIDC_REFRESH_SECS", "60")
        .env("AIRISK_OIDC_MAX_STALE_SECS", "3600")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = wait_for_line(&mut serve, "# airisk listening on ");
    let _serve = KillOnDrop(serve);
    let client = reqwest::Client::new();
    let ready = || async {
        let r = client.get(format!("{base}/readyz")).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert!(body["reason"].as_str().unwrap().contains(&issuer), "{body}");
    // The provider comes up on its address.
    let state = std::env::temp_dir().join(format!("airisk-serve-oidc-{}", uuid::Uuid::now_v7()));
    let mut provider = Command::new("node")
        .arg(root.join("e2e/oidc-provider.mjs"))
        .args(["--state", state.to_str().unwrap(), "--keys", "k1:ES256"])
        .args(["--port", &port.to_string()])
        .env("OIDC_TEST_CLIENT_SECRET", CLIENT_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs e2e/oidc-provider.mjs");
    wait_for_line(&mut provider, "listening ");
    let _provider = KillOnDrop(provider);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready().await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "never ready: {}",
            ready().await.1
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And its token is accepted by the running service.
    let token: Value = client
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "airisk-tests"),
            ("client_secret", CLIENT_SECRET),
            ("scope", "api"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = client
        .get(format!("{base}/v1/approvals"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn bad_oidc_settings_stop_the_start_with_the_reason() {
    let dir = support::fresh_dir("airisk-oidc-config");
    let cases: [(&str, &str); 5] = [
        (
            "oidc_issuer = \"http://idp.bank.example/realm\"",
            "https://",
        ),
        ("jwt_leeway_secs = 301", "more than 300"),
        (
            "oidc_issuer = \"https://idp.bank.example\"\njwt_issuer = \"other\"",
            "contradicts",
        ),
        (
            "[[issuers]]\nissuer = \"https://idp.bank.example\"\ntenant = \"a\"\ntenant_claim = \"t\"\nroles = { g = \"approver\" }",
            "exactly one of tenant and tenant_claim",
        ),
        (
            "[[issuers]]\nissuer = \"https://idp.bank.example\"\ntenant = \"a\"\nroles = { g = \"root\" }",
            "role \"root\"",
        ),
    ];
    for (i, (toml, why)) in cases.iter().enumerate() {
        let path = dir.join(format!("c{i}.toml"));
        std::fs::write(&path, toml).unwrap();
        let out = airisk_bare()
            .args(["serve", "--dev", "--bind", "127.0.0.1:0", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{toml}");
        assert!(stderr.contains(why), "{toml}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_console_sign_in_settings_stop_the_start_with_the_reason() {
    let dir = support::fresh_dir("airisk-console-oidc-config");
    let idp = "oidc_issuer = \"https://idp.bank.example\"\nconsole_oidc_client_id = \"airisk\"";
    let https = "public_url = \"https://risk.bank.example\"";
    // (file, dev, environment, what the refusal says)
    type Case<'a> = (String, bool, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 7] = [
        (idp.to_owned(), true, &[], "needs public_url"),
        (
            format!("{idp}\n{https}"),
            true,
            &[],
            "AIRISK_CONSOLE_OIDC_CLIENT_SECRET is not",
        ),
        (
            format!("{idp}\n{https}\nconsole_oidc_issuer = \"https://other.bank.example\""),
            true,
            &[("AIRISK_CONSOLE_OIDC_CLIENT_SECRET", "s")],
            "neither oidc_issuer nor an [[issuers]] table",
        ),
        (
            format!("{https}\nconsole_oidc_issuer = \"https://idp.bank.example\""),
            true,
            &[],
            "without console_oidc_client_id",
        ),
        (
            format!("{idp}\n{https}"),
            false,
            &[("AIRISK_CONSOLE_OIDC_CLIENT_SECRET", "s")],
            "needs AIRISK_CONSOLE_SESSION_SECRET",
        ),
        (
            format!("{idp}\n{https}"),
            false,
            &[
                ("AIRISK_CONSOLE_OIDC_CLIENT_SECRET", "s"),
                ("AIRISK_CONSOLE_SESSION_SECRET", "too-short"),
            ],
            "at least 32 bytes",
        ),
        (
            "console_session_idle_secs = 0".to_owned(),
            true,
            &[],
            "console_session_idle_secs must be more than 0",
        ),
    ];
    for (i, (toml, dev, env, why)) in cases.iter().enumerate() {
        let path = dir.join(format!("c{i}.toml"));
        std::fs::write(&path, toml).unwrap();
        let mut cmd = airisk_bare();
        cmd.arg("serve");
        if *dev {
            cmd.arg("--dev");
        }
        let out = cmd
            .args(["--bind", "127.0.0.1:0", "--config"])
            .arg(&path)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{toml}");
        assert!(stderr.contains(why), "{toml}: {stderr}");
        for (_, secret) in *env {
            if secret.len() > 1 {
                assert!(!stderr.contains(secret), "{toml}: a secret was printed");
            }
        }
    }
    // The client secret has no flag: the process list must never show it.
    let out = airisk_bare()
        .args(["serve", "--dev", "--console-oidc-client-secret", "s3cret"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument"));
    let _ = std::fs::remove_dir_all(&dir);
}

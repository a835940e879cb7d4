//! `airisk serve --public-url`: the console's cookie policy and `Strict-Transport-Security` follow
//! the configured public URL, never the `Host` header a (proxied) request carries; insecure
//! cookies only in dev mode or when knowingly configured, and never under https.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

use std::process::Stdio;

mod support;
use support::{Server, airisk, stderr};

#[test]
fn a_public_url_that_cannot_keep_secure_cookies_is_refused_at_start() {
    // Plain http without insecure cookies: browsers would drop the Secure cookies.
    let out = airisk()
        .args(["serve", "--public-url", "http://risk.bank.example"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("https://"), "{}", stderr(&out));
    // Insecure cookies asked for under https: a contradiction, refused.
    let out = airisk()
        .args([
            "serve",
            "--dev",
            "--public-url",
            "https://risk.bank.example",
        ])
        .args(["--dangerous-insecure-cookies", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("contradicts"), "{}", stderr(&out));
    // Not a URL of the service.
    let out = airisk()
        .args(["serve", "--public-url", "ftp://risk.bank.example"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("public_url"), "{}", stderr(&out));
}

/// `airisk serve --dev <args>` on port 0, killed on drop.
struct Dev(Server);

impl Dev {
    fn spawn(args: &[&str]) -> Dev {
        let mut cmd = airisk();
        cmd.args(["serve", "--dev"]).args(args).stdin(Stdio::null());
        Dev(Server::spawn(cmd))
    }

    async fn get(&self, path: &str, host: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.0.url(path))
            .header("host", host)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn behind_an_https_public_url_cookies_are_secure_even_for_a_loopback_host() {
    let dev = Dev::spawn(&["--public-url", "https://risk.bank.example"]);
    // What a TLS-terminating proxy forwarding `Host: 127.0.0.1` makes the service see.
    let r = dev.get("/console/sign-in", "127.0.0.1").await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-airisk-console-pre="), "{cookie}");
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    let r = dev.get("/v1/approvals", "127.0.0.1").await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn plain_dev_mode_keeps_insecure_cookies_for_its_http_console_and_sends_no_hsts() {
    let dev = Dev::spawn(&[]);
    let r = dev.get("/console/sign-in", "risk.bank.example").await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("airisk-console-pre="), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(r.headers().get("strict-transport-security").is_none());
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

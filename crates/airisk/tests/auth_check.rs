//! `airisk auth check`: the token from standard input or AIRISK_TOKEN (never argv), checked
//! against the configuration `airisk serve` would use, with the reason for a refusal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

use std::process::{Command, Output};

use airisk_core::security::rbac::Role;
use airisk_server::auth::{Claims, TokenSigner};
use zeroize::Zeroizing;

mod support;

const SECRET: &str = "auth-check-test-secret-0123456789abcdef";

fn check(stdin: &str, env: &[(&str, &str)], extra: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airisk"));
    cmd.args(["auth", "check"])
        .args(extra)
        .env_clear()
        .env("AIRISK_JWT_SECRET", SECRET)
        .env("AIRISK_DANGEROUS_ALLOW_HS256", "true")
        .envs(env.iter().copied());
    support::feed(cmd, stdin.as_bytes())
}

fn token(claims: &Claims) -> String {
    TokenSigner::Hs256(Zeroizing::new(SECRET.as_bytes().to_vec()))
        .sign(claims)
        .unwrap()
}

#[test]
fn an_accepted_token_is_explained_from_stdin_or_the_environment() {
    let t = token(&Claims::new("Alice", "acme", Role::Approver, 60));
    for out in [
        check(&t, &[], &[]),
        check("", &[("AIRISK_TOKEN", t.as_str())], &[]),
    ] {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(
            stdout.contains("ACCEPTED   actor alice in tenant acme as approver"),
            "{stdout}"
        );
        // The token itself is never echoed.
        assert!(!stdout.contains(&t), "{stdout}");
    }
}

#[test]
fn a_refused_token_says_which_check_failed() {
    let mut c = Claims::new("alice", "acme", Role::Viewer, 60);
    c.aud = "another-api".into();
    let out = check(&token(&c), &[], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("REFUSED    the token is not for this service (audience)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("claim      aud = \"another-api\""),
        "{stdout}"
    );
    let mut c = Claims::new("alice", "acme", Role::Viewer, 60);
    c.exp = 1000;
    let out = check(&token(&c), &[], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("REFUSED    the token has expired"));
}

#[test]
fn the_token_is_not_accepted_on_the_command_line() {
    let t = token(&Claims::new("alice", "acme", Role::Viewer, 60));
    let out = check("", &[], &[&t]);
    assert_eq!(out.status.code(), Some(2));
    let out = check("", &[], &["--token", &t]);
    assert_eq!(out.status.code(), Some(2));
}

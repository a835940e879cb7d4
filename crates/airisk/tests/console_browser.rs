//! The approver console in a real browser: runs `e2e/console.test.mjs` (headless Debian Chromium
//! driven by playwright-core) against this build's `airisk` binary, which it spawns as
//! `airisk serve --dev`. Screenshots of every page land in `test-output/console/`. And
//! `e2e/console-oidc.test.mjs`: sign-in through the real `oidc-provider` (e2e/oidc-provider.mjs)
//! with its login page, screenshots in `test-output/console-oidc/`.
//!
//! This test never skips: without node, `/usr/bin/chromium` or `e2e/node_modules` it fails and
//! names the one command that installs them, `bash scripts/setup-browser-tests.sh`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

use std::path::{Path, PathBuf};
use std::process::Command;

const SETUP: &str = "bash scripts/setup-browser-tests.sh";
const CHROMIUM: &str = "/usr/bin/chromium";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `name` on the PATH, if anywhere.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Checks the browser tests' prerequisites; the node binary.
fn prerequisites(root: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let node = on_path("node");
    if node.is_none() {
        missing.push("node (Node.js 20 or newer) is not on the PATH".to_owned());
    }
    if !Path::new(CHROMIUM).is_file() {
        missing.push(format!(
            "{CHROMIUM} does not exist (Debian's chromium package)"
        ));
    }
    for module in ["playwright-core", "oidc-provider"] {
        let dir = root.join("e2e/node_modules").join(module);
        if !dir.is_dir() {
            missing.push(format!("{} is missing (npm ci in e2e/)", dir.display()));
        }
    }
    assert!(
        missing.is_empty(),
        "the browser tests cannot run: {}.\nRun `{SETUP}` from the repository root, then test again.",
        missing.join("; ")
    );
    node.unwrap()
}

/// Runs one e2e file with node; asserts it ran tests and none failed.
fn run_e2e(root: &Path, file: &str, screenshots: &Path) {
    let node = prerequisites(root);
    let output = Command::new(node)
        .arg(root.join("e2e").join(file))
        .current_dir(root)
        .env("AIRISK_BIN", env!("CARGO_BIN_EXE_airisk"))
        .env("CHROMIUM", CHROMIUM)
        .env("AIRISK_SCREENSHOTS", screenshots)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "e2e/{file} failed ({}); its report is above, screenshots in {}",
        output.status,
        screenshots.display()
    );
    // The report must show tests that ran and none that failed.
    assert!(stdout.contains("# fail 0"), "no test summary in:\n{stdout}");
    assert!(
        !stdout.contains("# pass 0"),
        "no browser test ran:\n{stdout}"
    );
}

#[test]
fn the_approver_console_works_in_headless_chromium() {
    let root = repo_root();
    let screenshots = root.join("test-output/console");
    run_e2e(&root, "console.test.mjs", &screenshots);
    for page in [
        "01-sign-in",
        "06-queue",
        "07-request-approved",
        "10-prompt-request-diff",
        "13-audit",
        "15-cross-tenant-404",
        "17-viewer-forged-post-403",
    ] {
        assert!(
            screenshots.join(format!("{page}.png")).is_file(),
            "no screenshot {page}.png"
        );
    }
}

#[test]
fn people_sign_in_through_a_real_openid_provider_in_headless_chromium() {
    let root = repo_root();
    let screenshots = root.join("test-output/console-oidc");
    run_e2e(&root, "console-oidc.test.mjs", &screenshots);
    // Each step of the flow was seen in the browser.
    for page in [
        "provider-login-alice",
        "queue-alice",
        "request-approved",
        "provider-sign-out",
        "signed-out",
        "unmapped-refused",
        "tampered-state-refused",
    ] {
        assert!(
            screenshots.join(format!("{page}.png")).is_file(),
            "no screenshot {page}.png"
        );
    }
}

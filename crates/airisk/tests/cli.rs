//! The `airisk` binary, spawned as an operator would run it: `keys generate` and `crypto …`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a broken expectation must panic

use std::process::{Command, Output};

use airisk_core::security::encryption::Keyring;

mod support;

const KEYS_VAR: &str = "AIRISK_ENCRYPTION_KEYS";
/// Public test keys (bytes 0..32 and 32..64). Never use them for anything else.
const OLD_KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const NEW_KEY_B64: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn old_keyring() -> String {
    format!("old:{OLD_KEY_B64}")
}

fn rotated_keyring() -> String {
    format!("new:{NEW_KEY_B64},old:{OLD_KEY_B64}")
}

fn new_keyring() -> String {
    format!("new:{NEW_KEY_B64}")
}

/// Runs `airisk args…` with `keys` as the keyring variable (unset for `None`) and `stdin` as input.
fn airisk(args: &[&str], keys: Option<&str>, stdin: &[u8]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_airisk"));
    command.args(args).env_remove(KEYS_VAR);
    if let Some(keys) = keys {
        command.env(KEYS_VAR, keys);
    }
    support::feed(command, stdin)
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}, stderr: {}",
        output.status.code(),
        stderr(output)
    );
}

fn assert_no_key_material(text: &str) {
    for key in [OLD_KEY_B64, NEW_KEY_B64] {
        assert!(!text.contains(&key[..12]), "key material in {text:?}");
    }
}

#[test]
fn keys_generate_prints_an_entry_that_parses_as_a_keyring() {
    let first = airisk(&["keys", "generate"], None, b"");
    let second = airisk(&["keys", "generate"], None, b"");
    assert_success(&first);
    let entry = stdout(&first);
    let entry = entry.strip_suffix('\n').unwrap();
    let keyring = Keyring::parse(entry).unwrap();
    assert!(keyring.primary_kid().as_str().starts_with('k'));
    assert_eq!(
        keyring.primary_kid().as_str().len(),
        "k20260127-3fa9c1".len()
    );
    assert_ne!(stdout(&first), stdout(&second));

    let named = airisk(&["keys", "generate", "--kid", "ops-2026"], None, b"");
    assert_success(&named);
    assert!(stdout(&named).starts_with("ops-2026:"));
    let keyring = Keyring::parse(stdout(&named).trim_end()).unwrap();
    assert_eq!(keyring.primary_kid().as_str(), "ops-2026");
}

#[test]
fn keys_generate_rejects_an_invalid_kid_as_a_usage_error() {
    let output = airisk(&["keys", "generate", "--kid", "a.b"], None, b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("key id"), "{}", stderr(&output));
}

#[test]
fn encrypt_then_decrypt_gives_back_stdin_byte_for_byte() {
    let keys = old_keyring();
    for plaintext in [
        &b"secret\n"[..],
        b"no newline",
        b"",
        "Grüße 🦀\r\n".as_bytes(),
        &[0xff, 0x00, 0x0a, 0x0a],
    ] {
        let sealed = airisk(&["crypto", "encrypt"], Some(&keys), plaintext);
        assert_success(&sealed);
        let text = stdout(&sealed);
        assert!(
            text.starts_with("v1.old.") && text.ends_with('\n'),
            "{text}"
        );
        assert_eq!(text.matches('\n').count(), 1);

        let opened = airisk(&["crypto", "decrypt"], Some(&keys), text.as_bytes());
        assert_success(&opened);
        assert_eq!(opened.stdout, plaintext);
    }
}

#[test]
fn decrypt_ignores_exactly_one_trailing_newline() {
    let keys = old_keyring();
    let sealed = stdout(&airisk(&["crypto", "encrypt"], Some(&keys), b"x"));
    let bare = sealed.trim_end();
    for input in [bare.to_owned(), format!("{bare}\n"), format!("{bare}\r\n")] {
        let output = airisk(&["crypto", "decrypt"], Some(&keys), input.as_bytes());
        assert_success(&output);
        assert_eq!(output.stdout, b"x");
    }
    let output = airisk(
        &["crypto", "decrypt"],
        Some(&keys),
        format!("{bare}\n\n").as_bytes(),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with("error: malformed ciphertext"));
}

#[test]
fn lines_round_trip_many_values_with_a_context() {
    let keys = old_keyring();
    let values: Vec<String> = (0..5_000)
        .map(|i| match i % 4 {
            0 => String::new(),
            1 => format!("value {i} with spaces"),
            2 => format!("ünïcødé {i} 🦀"),
            _ => "x".repeat(i % 300),
        })
        .collect();
    let input = values.join("\n") + "\n";
    let ctx = ["--tenant", "acme", "--purpose", "model.api-key"];

    let sealed = airisk(
        &[&["crypto", "encrypt", "--lines"][..], &ctx].concat(),
        Some(&keys),
        input.as_bytes(),
    );
    assert_success(&sealed);
    let sealed = stdout(&sealed);
    assert_eq!(sealed.lines().count(), values.len());
    assert!(sealed.lines().all(|line| line.starts_with("v1.old.")));

    let opened = airisk(
        &[&["crypto", "decrypt", "--lines"][..], &ctx].concat(),
        Some(&keys),
        sealed.as_bytes(),
    );
    assert_success(&opened);
    assert_eq!(stdout(&opened), input);
}

#[test]
fn lines_mode_names_the_first_bad_line_and_exits_non_zero() {
    let keys = old_keyring();
    let sealed = stdout(&airisk(
        &["crypto", "encrypt", "--lines"],
        Some(&keys),
        b"one\ntwo\nthree\nfour\n",
    ));
    let mut lines: Vec<String> = sealed.lines().map(str::to_owned).collect();
    // Tamper with line 3: change one payload character.
    let last = lines[2].pop().unwrap();
    lines[2].push(if last == 'A' { 'B' } else { 'A' });
    let input = lines.join("\n") + "\n";

    let output = airisk(
        &["crypto", "decrypt", "--lines"],
        Some(&keys),
        input.as_bytes(),
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.starts_with("error: line 3: "), "{message}");
    assert!(
        message.contains("ciphertext could not be decrypted")
            || message.contains("malformed ciphertext"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
    // The lines before the bad one were printed; none after it.
    assert_eq!(stdout(&output), "one\ntwo\n");

    let output = airisk(
        &["crypto", "decrypt", "--lines"],
        Some(&keys),
        b"not a ciphertext\n",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with("error: line 1: malformed ciphertext"));
}

#[test]
fn a_missing_keyring_is_a_clear_error() {
    let output = airisk(&["crypto", "encrypt"], None, b"secret");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: AIRISK_ENCRYPTION_KEYS is not set or is empty; expected comma-separated \
         `kid:base64key` entries\n"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_malformed_keyring_names_the_entry_but_not_the_key() {
    let short = &OLD_KEY_B64[..24];
    for keys in [
        format!("new:{NEW_KEY_B64},old:{short}"),
        format!("new:{NEW_KEY_B64},{OLD_KEY_B64}"),
        format!("new:{NEW_KEY_B64},new:{OLD_KEY_B64}"),
    ] {
        let output = airisk(&["crypto", "encrypt"], Some(&keys), b"secret");
        assert_eq!(output.status.code(), Some(1));
        let message = stderr(&output);
        assert!(
            message.starts_with("error: AIRISK_ENCRYPTION_KEYS entry 2"),
            "{message}"
        );
        assert_no_key_material(&message);
    }
}

#[test]
fn keys_on_the_command_line_are_refused_and_help_hides_the_value() {
    let output = airisk(
        &["crypto", "encrypt", "--keys", &old_keyring()],
        None,
        b"secret",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("AIRISK_ENCRYPTION_KEYS"));
    assert_no_key_material(&stderr(&output));

    let help = airisk(&["crypto", "encrypt", "--help"], Some(&old_keyring()), b"");
    assert_success(&help);
    assert!(stdout(&help).contains("AIRISK_ENCRYPTION_KEYS"));
    assert_no_key_material(&stdout(&help));
}

#[test]
fn tenant_and_purpose_go_together() {
    let output = airisk(
        &["crypto", "encrypt", "--tenant", "acme"],
        Some(&old_keyring()),
        b"x",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--purpose"));
}

#[test]
fn another_context_does_not_decrypt() {
    let keys = old_keyring();
    let sealed = stdout(&airisk(
        &[
            "crypto",
            "encrypt",
            "--tenant",
            "acme",
            "--purpose",
            "api-key",
        ],
        Some(&keys),
        b"secret",
    ));
    for wrong in [
        &[
            "crypto",
            "decrypt",
            "--tenant",
            "globex",
            "--purpose",
            "api-key",
        ][..],
        &[
            "crypto",
            "decrypt",
            "--tenant",
            "acme",
            "--purpose",
            "other",
        ],
        &["crypto", "decrypt"],
    ] {
        let output = airisk(wrong, Some(&keys), sealed.as_bytes());
        assert_eq!(output.status.code(), Some(1), "{wrong:?}");
        assert_eq!(
            stderr(&output),
            "error: ciphertext could not be decrypted (wrong key, wrong context or tampered)\n"
        );
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn rewrap_after_rotation_moves_values_to_the_new_primary_key() {
    let ctx = ["--tenant", "acme", "--purpose", "api-key"];
    let input = "alpha\nbeta\ngamma\n";
    let sealed = stdout(&airisk(
        &[&["crypto", "encrypt", "--lines"][..], &ctx].concat(),
        Some(&old_keyring()),
        input.as_bytes(),
    ));
    assert!(sealed.lines().all(|l| l.starts_with("v1.old.")));

    let rewrapped = airisk(
        &[&["crypto", "rewrap", "--lines"][..], &ctx].concat(),
        Some(&rotated_keyring()),
        sealed.as_bytes(),
    );
    assert_success(&rewrapped);
    let rewrapped = stdout(&rewrapped);
    assert_eq!(rewrapped.lines().count(), 3);
    assert!(
        rewrapped.lines().all(|l| l.starts_with("v1.new.")),
        "{rewrapped}"
    );
    assert!(!rewrapped.contains("alpha"));

    // The old key can now be dropped.
    let opened = airisk(
        &[&["crypto", "decrypt", "--lines"][..], &ctx].concat(),
        Some(&new_keyring()),
        rewrapped.as_bytes(),
    );
    assert_success(&opened);
    assert_eq!(stdout(&opened), input);

    // A single value, and a second rewrap that leaves it as it is.
    let one = sealed.lines().next().unwrap();
    let once = stdout(&airisk(
        &[&["crypto", "rewrap"][..], &ctx].concat(),
        Some(&rotated_keyring()),
        one.as_bytes(),
    ));
    let twice = stdout(&airisk(
        &[&["crypto", "rewrap"][..], &ctx].concat(),
        Some(&rotated_keyring()),
        once.as_bytes(),
    ));
    assert!(once.starts_with("v1.new."));
    assert_eq!(once, twice);
}

#[test]
fn decrypt_lines_refuses_a_value_with_a_newline() {
    let keys = old_keyring();
    let sealed = stdout(&airisk(&["crypto", "encrypt"], Some(&keys), b"two\nlines"));
    let output = airisk(
        &["crypto", "decrypt", "--lines"],
        Some(&keys),
        sealed.as_bytes(),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with("error: line 1: the decrypted value contains a newline"));
    assert!(output.stdout.is_empty());
}

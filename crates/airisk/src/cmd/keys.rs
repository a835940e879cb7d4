//! `airisk keys`: key generation.

use std::io::Write;

use airisk_core::ports::{Clock, SystemClock};
use airisk_core::security::encryption::{ENV_VAR, KeyId, generate_key_entry};
use anyhow::Context;
use clap::{Args, Subcommand};

/// Arguments of `airisk keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print a fresh AES-256 keyring entry `kid:base64key` for AIRISK_ENCRYPTION_KEYS.
    ///
    /// Put the entry first in the variable to make it the primary (encrypting) key; keep older
    /// entries after it until `airisk crypto rewrap` has moved every value to the new key.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Key id (1–32 of A-Z a-z 0-9 - _, starting with a letter or digit). Default:
    /// `k<YYYYMMDD>-<6 random hex digits>`, dated today (UTC).
    #[arg(long, value_name = "NAME")]
    kid: Option<KeyId>,
    // A `--ledger` flag (Ed25519 checkpoint-signing key) will sit here.
}

/// Runs `airisk keys …`.
///
/// # Errors
/// The OS random generator failing, or stdout being closed.
pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Generate(args) => generate(args),
    }
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let kid = match args.kid {
        Some(kid) => kid,
        None => KeyId::generate(SystemClock.now().date_naive())?,
    };
    let entry = generate_key_entry(&kid)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", entry.as_str())
        .and_then(|()| stdout.flush())
        .with_context(|| format!("could not write the {ENV_VAR} entry to stdout"))
}

//! `airisk keys`: key generation, and sealing existing plaintext rows in place (`seal-existing`).

use std::io::Write;

use airisk_core::ports::{Clock, SystemClock};
use airisk_core::security::encryption::{ENV_VAR, EncryptionKeyId, generate_key_entry};
use anyhow::Context;
use clap::{Args, Subcommand};

mod seal_existing;

/// Arguments of `airisk keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print a fresh AES-256 keyring entry `kid:base64key` for AIRISK_ENCRYPTION_KEYS, or with
    /// `--ledger` a fresh Ed25519 checkpoint-signing key and its verifier key.
    ///
    /// Put the entry first in the variable to make it the primary (encrypting) key; keep older
    /// entries after it until `airisk crypto rewrap` has moved every value to the new key.
    Generate(GenerateArgs),
    /// Seal, in place, prompt templates stored in plaintext by a version before sealing existed
    /// (a maintenance operation, docs/OPERATIONS.md): one transaction and one
    /// `keys.seal_existing` ledger record per row; resumable and idempotent. Keys from
    /// AIRISK_ENCRYPTION_KEYS. On SQLite, stop the service first: the file is vacuumed at the end.
    SealExisting(seal_existing::SealExistingArgs),
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Key id (1–32 of A-Z a-z 0-9 - _, starting with a letter or digit). Default:
    /// `k<YYYYMMDD>-<6 random hex digits>`, dated today (UTC).
    #[arg(long, value_name = "NAME", conflicts_with = "ledger")]
    kid: Option<EncryptionKeyId>,
    /// Generate the ledger's Ed25519 checkpoint-signing key instead: line 1 is the signing key
    /// for AIRISK_LEDGER_SIGNING_KEY, line 2 the verifier key to hand to auditors.
    #[arg(long)]
    ledger: bool,
    /// The ledger's name (first part of every checkpoint origin line and the key name), with
    /// `--ledger`.
    #[arg(long, value_name = "NAME", requires = "ledger", default_value = crate::cmd::audit::DEFAULT_LEDGER_NAME)]
    name: String,
}

/// Runs `airisk keys …`.
///
/// # Errors
/// The OS random generator failing, or stdout being closed.
pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Generate(args) => generate(args),
        KeysCommand::SealExisting(args) => seal_existing::run(args),
    }
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    if args.ledger {
        let name = airisk_core::ledger::LedgerName::parse(&args.name)
            .with_context(|| format!("invalid ledger name {:?}", args.name))?;
        let (signing_key, verifier_key) = airisk_core::ledger::generate_key_pair(&name)?;
        let mut stdout = std::io::stdout().lock();
        return writeln!(stdout, "{}\n{verifier_key}", signing_key.as_str())
            .and_then(|()| stdout.flush())
            .context("could not write the ledger keys to stdout");
    }
    let kid = match args.kid {
        Some(kid) => kid,
        None => EncryptionKeyId::generate(SystemClock.now().date_naive())?,
    };
    let entry = generate_key_entry(&kid)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", entry.as_str())
        .and_then(|()| stdout.flush())
        .with_context(|| format!("could not write the {ENV_VAR} entry to stdout"))
}

//! `airisk keys`: key generation, and rotating a tenant's data key.

use std::io::Write;

use airisk_core::ports::{Clock, SystemClock};
use airisk_core::security::encryption::{ENV_VAR, EncryptionKeyId, generate_key_entry};
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
    /// Print a fresh AES-256 keyring entry `kid:base64key` for AIRISK_ENCRYPTION_KEYS, or with
    /// `--ledger` a fresh Ed25519 checkpoint-signing key and its verifier key.
    ///
    /// Put the entry first in the variable to make it the primary (encrypting) key; keep older
    /// entries after it until `airisk crypto rewrap` has moved every value to the new key.
    Generate(GenerateArgs),
    /// Rotate a tenant's data key: make a new one (wrapped by the primary key of
    /// AIRISK_ENCRYPTION_KEYS) that seals every value from now on, recorded as
    /// `keys.rotate_data_key` in the tenant's ledger in the same transaction. Values sealed
    /// before keep opening under their own key; nothing is rewritten.
    RotateDataKey(RotateDataKeyArgs),
}

#[derive(Debug, Args)]
struct RotateDataKeyArgs {
    /// The tenant whose data key is rotated.
    #[arg(long)]
    tenant: String,
    /// Who rotates, as recorded in the ledger (e.g. operator:keys).
    #[arg(long)]
    actor: String,
    /// The store.
    #[arg(
        long,
        env = "AIRISK_DATABASE_URL",
        hide_env_values = true,
        default_value = crate::cmd::audit::DEFAULT_DATABASE_URL
    )]
    database_url: String,
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
        KeysCommand::RotateDataKey(args) => rotate_data_key(args),
    }
}

fn rotate_data_key(args: RotateDataKeyArgs) -> anyhow::Result<()> {
    use airisk_core::security::envelope::{DEFAULT_DEK_CACHE, Envelope, KeyringKeyProvider};
    use std::sync::Arc;
    let tenant = airisk_core::security::tenant_context::TenantId::parse(&args.tenant)
        .map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    let actor = airisk_core::security::tenant_context::ActorId::parse(&args.actor)
        .map_err(|e| anyhow::anyhow!("--actor: {e}"))?;
    let kek = airisk_core::security::encryption::Encryptor::from_env()
        .context("the key-encryption keyring is needed to wrap the new data key")?;
    let envelope = Envelope::new(
        Arc::new(KeyringKeyProvider::new(Arc::new(kek))),
        DEFAULT_DEK_CACHE,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async move {
        let store = crate::store::open(&args.database_url, Arc::new(SystemClock)).await?;
        let outcome = airisk_core::security::key_custody::rotate_data_key(
            store.governance.as_ref(),
            &airisk_core::ports::UuidV7Generator,
            &envelope,
            SystemClock.now(),
            &tenant,
            &actor,
            &airisk_core::request::CorrelationId::generate(),
        )
        .await
        .context("the rotation failed; nothing was changed")?;
        println!(
            "tenant {tenant}: new data key {} (previous {}); recorded as keys.rotate_data_key at seq {}",
            outcome.kid,
            outcome.previous.as_ref().map_or("none", |k| k.as_str()),
            outcome.receipt.seq
        );
        Ok(())
    })
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

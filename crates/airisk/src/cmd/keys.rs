//! `airisk keys`: key generation, in software (printed for the environment) or inside a PKCS#11
//! token (`hsm-generate`, `hsm-verifier`), rotating a tenant's data key, and sealing existing
//! plaintext rows in place (`seal-existing`).

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
    /// Create the key-encryption key (AES-256) and/or the ledger's Ed25519 key pair inside the
    /// PKCS#11 token named by AIRISK_PKCS11_MODULE, AIRISK_PKCS11_TOKEN and AIRISK_PKCS11_PIN:
    /// persistent, private, sensitive and non-extractable, so they never leave the token. Prints
    /// each key's protection attributes as the token reports them and, for a ledger key, the
    /// verifier key to hand to auditors. Refuses a label already in use.
    ///
    /// For KEK rotation, create a key under a new label, point AIRISK_PKCS11_KEK_LABEL at it,
    /// restart, and run `airisk tenant rewrap-data-keys`; keep the old key in the token until then.
    HsmGenerate(HsmGenerateArgs),
    /// Print the ledger's verifier key, read from the public key object in the PKCS#11 token.
    HsmVerifier(HsmVerifierArgs),
    /// Rotate a tenant's data key: make a new one (wrapped by the key-encryption key: the PKCS#11
    /// token's when configured, else the primary key of AIRISK_ENCRYPTION_KEYS) that seals every
    /// value from now on, recorded as `keys.rotate_data_key` in the tenant's ledger in the same
    /// transaction. Values sealed
    /// before keep opening under their own key; nothing is rewritten.
    RotateDataKey(RotateDataKeyArgs),
    /// Seal, in place, prompt templates stored in plaintext by a version before sealing existed
    /// (a maintenance operation, docs/OPERATIONS.md): one transaction and one
    /// `keys.seal_existing` ledger record per row; resumable and idempotent. The key-encryption
    /// key is the PKCS#11 token's when configured, else AIRISK_ENCRYPTION_KEYS. On SQLite, stop the service first: the file is vacuumed at the end.
    SealExisting(seal_existing::SealExistingArgs),
}

#[derive(Debug, Args)]
struct HsmGenerateArgs {
    /// Label of the new AES-256 key-encryption key (then set AIRISK_PKCS11_KEK_LABEL to it).
    #[arg(long, value_name = "LABEL", required_unless_present = "ledger_label")]
    kek_label: Option<String>,
    /// Label of the new Ed25519 ledger key pair (then set AIRISK_PKCS11_LEDGER_KEY_LABEL to it).
    #[arg(long, value_name = "LABEL")]
    ledger_label: Option<String>,
    /// The ledger's name for the verifier key (AIRISK_LEDGER_NAME for `serve`).
    #[arg(long, value_name = "NAME", env = "AIRISK_LEDGER_NAME", default_value = crate::cmd::audit::DEFAULT_LEDGER_NAME)]
    name: String,
}

#[derive(Debug, Args)]
struct HsmVerifierArgs {
    /// Label of the ledger key pair.
    #[arg(long, value_name = "LABEL", env = "AIRISK_PKCS11_LEDGER_KEY_LABEL")]
    ledger_label: String,
    /// The ledger's name.
    #[arg(long, value_name = "NAME", env = "AIRISK_LEDGER_NAME", default_value = crate::cmd::audit::DEFAULT_LEDGER_NAME)]
    name: String,
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
        KeysCommand::HsmGenerate(args) => hsm_generate(args),
        KeysCommand::HsmVerifier(args) => hsm_verifier(args),
        KeysCommand::RotateDataKey(args) => rotate_data_key(args),
        KeysCommand::SealExisting(args) => seal_existing::run(args),
    }
}

fn ledger_name(name: &str) -> anyhow::Result<airisk_core::ledger::LedgerName> {
    airisk_core::ledger::LedgerName::parse(name)
        .with_context(|| format!("invalid ledger name {name:?}"))
}

fn protection_line(what: &str, label: &str, p: &airisk_keys_pkcs11::KeyProtection) -> String {
    format!(
        "{what} {label:?} created: extractable={} sensitive={} never_extractable={} always_sensitive={} token_object={}",
        p.extractable, p.sensitive, p.never_extractable, p.always_sensitive, p.token_object
    )
}

fn hsm_generate(args: HsmGenerateArgs) -> anyhow::Result<()> {
    use airisk_keys_pkcs11::KeyKind;
    let name = ledger_name(&args.name)?;
    let token = crate::cmd::hsm::open_token()?;
    let mut out = Vec::new();
    if let Some(label) = &args.kek_label {
        let p = token.generate_kek(label)?;
        out.push(protection_line("key-encryption key", label, &p));
        out.push(format!("export AIRISK_PKCS11_KEK_LABEL={label}"));
    }
    if let Some(label) = &args.ledger_label {
        let public = token.generate_ledger_key(label)?;
        let p = token.key_protection(KeyKind::LedgerPrivate, label)?;
        out.push(protection_line("ledger key pair (private key)", label, &p));
        out.push(format!("export AIRISK_PKCS11_LEDGER_KEY_LABEL={label}"));
        let verifier = airisk_core::ledger::LedgerVerifier::from_public_key(name, public);
        out.push(format!("verifier key (for auditors): {verifier}"));
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", out.join("\n"))
        .and_then(|()| stdout.flush())
        .context("could not write to stdout")
}

fn hsm_verifier(args: HsmVerifierArgs) -> anyhow::Result<()> {
    let name = ledger_name(&args.name)?;
    let token = crate::cmd::hsm::open_token()?;
    let public = token.ledger_public_key(&args.ledger_label)?;
    let verifier = airisk_core::ledger::LedgerVerifier::from_public_key(name, public);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{verifier}")
        .and_then(|()| stdout.flush())
        .context("could not write the verifier key to stdout")
}

fn rotate_data_key(args: RotateDataKeyArgs) -> anyhow::Result<()> {
    use std::sync::Arc;
    let tenant = airisk_core::security::tenant_context::TenantId::parse(&args.tenant)
        .map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    let actor = airisk_core::security::tenant_context::ActorId::parse(&args.actor)
        .map_err(|e| anyhow::anyhow!("--actor: {e}"))?;
    let envelope =
        crate::cmd::hsm::envelope("the key-encryption key is needed to wrap the new data key")?;
    let runtime = crate::cmd::store_runtime()?;
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

//! `airisk tenant shred`: crypto-shredding. Destroys every data key of a tenant, so every value
//! sealed under them (prompt templates) reads as erased, everywhere the database goes, while the
//! audit ledger, which commits to ciphertext only, still verifies. The shred is itself a
//! `tenant.shred` record in the tenant's ledger, written in the same transaction.
//!
//! With `--subject`, only that data subject's keys are destroyed (`tenant.shred_subject`, the
//! subject recorded as its keyed pseudonym only).
//!
//! An operator's tool on the database host (like `airisk audit`); a tenant shred needs no
//! encryption key, a subject's needs the key-encryption keyring (the pseudonym is keyed).

use std::sync::Arc;

use airisk_core::ports::{SystemClock, UuidV7Generator};
use airisk_core::request::CorrelationId;
use airisk_core::security::data_subject::DataSubject;
use airisk_core::security::key_custody::{rewrap_tenant_keys, shred_subject, shred_tenant};
use airisk_core::security::tenant_context::{ActorId, TenantId};
use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};

/// Arguments of `airisk tenant`.
#[derive(Debug, Args)]
pub struct TenantArgs {
    #[command(subcommand)]
    command: TenantCommand,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Destroy the tenant's data keys: its sealed values become unreadable for good (recorded as
    /// `tenant.shred` in its ledger). With --subject, only that data subject's keys (recorded as
    /// `tenant.shred_subject`, naming the subject by its pseudonym only; needs
    /// AIRISK_ENCRYPTION_KEYS). Irreversible; take no backup of the data keys table.
    Shred(ShredArgs),
    /// After a key-encryption-key rotation (new key first in AIRISK_ENCRYPTION_KEYS, old after
    /// it; or, with the KEK in a PKCS#11 token, AIRISK_PKCS11_KEK_LABEL naming the new key, the
    /// old one still in the token; or, moving from the keyring into a token, both
    /// AIRISK_ENCRYPTION_KEYS and the AIRISK_PKCS11_… variables): rewrap every live data key
    /// under the new key, per tenant, each tenant in one
    /// transaction with a `keys.rewrap_data_keys` ledger record. Sealed values are not touched.
    /// Idempotent.
    RewrapDataKeys(RewrapArgs),
}

#[derive(Debug, Args)]
struct RewrapArgs {
    /// One tenant; without it, every tenant with a ledger.
    #[arg(long)]
    tenant: Option<String>,

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
struct ShredArgs {
    /// The tenant whose data keys are destroyed.
    #[arg(long)]
    tenant: String,

    /// Who orders the shred, as recorded in the ledger (e.g. operator:dpo).
    #[arg(long)]
    actor: String,

    /// Why (e.g. the erasure request's reference), as recorded in the ledger.
    #[arg(long)]
    reason: String,

    /// Only this data subject (as named in `data_subject` when its values were sealed; compared
    /// exactly, case included). Needs AIRISK_ENCRYPTION_KEYS.
    #[arg(long)]
    subject: Option<String>,

    /// The store.
    #[arg(
        long,
        env = "AIRISK_DATABASE_URL",
        hide_env_values = true,
        default_value = crate::cmd::audit::DEFAULT_DATABASE_URL
    )]
    database_url: String,
}

/// Runs `airisk tenant …`.
///
/// # Errors
/// An invalid tenant or actor, or a store that cannot be opened or written; nothing changed then.
pub fn run(args: TenantArgs) -> anyhow::Result<()> {
    let args = match args.command {
        TenantCommand::Shred(a) => a,
        TenantCommand::RewrapDataKeys(a) => return rewrap(a),
    };
    let tenant = TenantId::parse(&args.tenant).map_err(|e| anyhow!("--tenant: {e}"))?;
    let actor = ActorId::parse(&args.actor).map_err(|e| anyhow!("--actor: {e}"))?;
    if args.reason.trim().is_empty() {
        return Err(anyhow!(
            "--reason: a shred needs a reason (e.g. the erasure request's reference)"
        ));
    }
    if let Some(subject) = &args.subject {
        let subject = DataSubject::parse(subject).map_err(|e| anyhow!("--subject: {e}"))?;
        return shred_one_subject(args, tenant, actor, subject);
    }
    let runtime = crate::cmd::store_runtime()?;
    runtime.block_on(async move {
        let store = crate::store::open(&args.database_url, Arc::new(SystemClock)).await?;
        let outcome = shred_tenant(
            store.governance.as_ref(),
            &UuidV7Generator,
            None,
            &tenant,
            &actor,
            &args.reason,
        )
        .await
        .context("the shred failed; nothing was changed")?;
        println!(
            "tenant {tenant}: {} data key(s) destroyed; recorded as tenant.shred at seq {}",
            outcome.keys_destroyed, outcome.receipt.seq
        );
        Ok(())
    })
}

fn shred_one_subject(
    args: ShredArgs,
    tenant: TenantId,
    actor: ActorId,
    subject: DataSubject,
) -> anyhow::Result<()> {
    let envelope = crate::cmd::hsm::envelope(
        "a subject's shred needs the key-encryption key (its pseudonym is keyed)",
    )?;
    let runtime = crate::cmd::store_runtime()?;
    runtime.block_on(async move {
        let store = crate::store::open(&args.database_url, Arc::new(SystemClock)).await?;
        let outcome = shred_subject(
            store.governance.as_ref(),
            &UuidV7Generator,
            &envelope,
            &tenant,
            &subject,
            &actor,
            &args.reason,
            &CorrelationId::generate(),
        )
        .await
        .context("the shred failed; nothing was changed")?;
        // The subject itself is never printed: the pseudonym is what the ledger holds.
        println!(
            "tenant {tenant}: {} data key(s) of the subject destroyed; recorded as \
             tenant.shred_subject at seq {} (subject pseudonym {})",
            outcome.keys_destroyed,
            outcome.receipt.seq,
            outcome
                .pseudonym
                .as_ref()
                .map_or("none: the tenant has no subject keys", |p| p.as_str())
        );
        Ok(())
    })
}

fn rewrap(args: RewrapArgs) -> anyhow::Result<()> {
    let actor = ActorId::parse(&args.actor).map_err(|e| anyhow!("--actor: {e}"))?;
    let only = args
        .tenant
        .as_deref()
        .map(TenantId::parse)
        .transpose()
        .map_err(|e| anyhow!("--tenant: {e}"))?;
    // The KEK rotated to: the token's current label (AIRISK_PKCS11_KEK_LABEL) when a token is
    // configured, else the keyring's primary key.
    let envelope = crate::cmd::hsm::envelope("the key-encryption keyring is needed")?;
    let runtime = crate::cmd::store_runtime()?;
    runtime.block_on(async move {
        let store = crate::store::open(&args.database_url, Arc::new(SystemClock)).await?;
        let tenants = match only {
            Some(t) => vec![t],
            None => store.audit.tenants().await?,
        };
        let mut total = 0;
        for tenant in &tenants {
            let n = rewrap_tenant_keys(
                store.governance.as_ref(),
                &UuidV7Generator,
                &envelope,
                tenant,
                &actor,
            )
            .await
            .with_context(|| format!("tenant {tenant}: nothing of it was changed"))?;
            total += n;
            println!("tenant {tenant}: {n} data key(s) rewrapped");
        }
        println!(
            "{total} data key(s) rewrapped in {} tenant(s)",
            tenants.len()
        );
        Ok(())
    })
}

//! `airisk keys seal-existing`: seals, in place, the prompt templates a database holds in
//! plaintext because they were written before sealing existed. A maintenance operation
//! (docs/OPERATIONS.md): resumable, idempotent, one transaction and one `keys.seal_existing`
//! ledger record per row; on SQLite it then checkpoints the WAL and vacuums the file so the old
//! plaintext bytes are gone from both.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use airisk_core::ports::{AuditRepository, Clock, GovernanceStore, SystemClock, UuidV7Generator};
use airisk_core::security::seal_existing::SealExisting;
use airisk_core::security::tenant_context::{ActorId, TenantId};
use anyhow::{Context, anyhow};
use clap::Args;

/// Arguments of `airisk keys seal-existing`.
#[derive(Debug, Args)]
pub(super) struct SealExistingArgs {
    /// One tenant; without it, every tenant with a ledger.
    #[arg(long)]
    tenant: Option<String>,

    /// Who runs the maintenance, as recorded in the ledger (e.g. operator:keys).
    #[arg(long)]
    actor: String,

    /// Seal at most this many rows per tenant, then stop (a bounded maintenance window; run the
    /// command again to continue).
    #[arg(long, value_name = "N")]
    max_rows: Option<usize>,

    /// The store.
    #[arg(
        long,
        env = "AIRISK_DATABASE_URL",
        hide_env_values = true,
        default_value = crate::cmd::audit::DEFAULT_DATABASE_URL
    )]
    database_url: String,
}

/// The stores, and the SQLite file when it is one (to compact afterwards).
struct Opened {
    governance: Arc<dyn GovernanceStore>,
    audit: Arc<dyn AuditRepository>,
    sqlite_file: Option<PathBuf>,
}

async fn open(url: &str) -> anyhow::Result<Opened> {
    if url.starts_with("sqlite:") {
        let location = url.to_owned();
        let store = tokio::task::spawn_blocking(move || {
            airisk_store_sqlite::SqliteStore::open(&location, Arc::new(SystemClock))
        })
        .await
        .context("the store opener panicked")?
        .with_context(|| {
            format!(
                "could not open the SQLite store at {}",
                crate::store::redact_url(url)
            )
        })?;
        let file = store.path().to_path_buf();
        let store = Arc::new(store);
        return Ok(Opened {
            governance: store.clone(),
            audit: store,
            sqlite_file: Some(file),
        });
    }
    let stores = crate::store::open(url, Arc::new(SystemClock)).await?;
    Ok(Opened {
        governance: stores.governance,
        audit: stores.audit,
        sqlite_file: None,
    })
}

/// Runs `airisk keys seal-existing`.
pub(super) fn run(args: SealExistingArgs) -> anyhow::Result<()> {
    let actor = ActorId::parse(&args.actor).map_err(|e| anyhow!("--actor: {e}"))?;
    let only = args
        .tenant
        .as_deref()
        .map(TenantId::parse)
        .transpose()
        .map_err(|e| anyhow!("--tenant: {e}"))?;
    let envelope = crate::cmd::hsm::envelope("seal-existing needs the key-encryption key")?;
    let runtime = crate::cmd::store_runtime()?;
    let sqlite_file = runtime.block_on(async move {
        let stores = open(&args.database_url).await?;
        let tenants = match only {
            Some(t) => vec![t],
            None => stores.audit.tenants().await?,
        };
        let mut total = 0;
        let mut remaining = false;
        for tenant in &tenants {
            let mut progress = |id: &str| {
                let mut out = std::io::stdout().lock();
                // Flushed line by line: an operator (or a test) sees each committed row.
                let _ = writeln!(out, "sealed {tenant} prompt {id}").and_then(|()| out.flush());
            };
            let outcome = SealExisting {
                store: stores.governance.as_ref(),
                ids: &UuidV7Generator,
                envelope: &envelope,
                actor: &actor,
                now: SystemClock.now(),
                max_rows: args.max_rows,
            }
            .run(tenant, &mut progress)
            .await
            .with_context(|| {
                format!("tenant {tenant}: stopped; the rows reported as sealed stay sealed, run again to continue")
            })?;
            total += outcome.sealed.len();
            remaining |= outcome.stopped_early;
            println!(
                "tenant {tenant}: {} prompt version(s) sealed{}",
                outcome.sealed.len(),
                if outcome.stopped_early {
                    " (stopped at --max-rows; run again to continue)"
                } else {
                    ""
                }
            );
        }
        if total == 0 && !remaining {
            println!(
                "nothing to seal: every prompt template in {} tenant(s) is sealed already",
                tenants.len()
            );
        } else {
            println!(
                "{total} prompt version(s) sealed in {} tenant(s)",
                tenants.len()
            );
        }
        drop(stores.governance);
        drop(stores.audit);
        anyhow::Ok(stores.sqlite_file)
    })?;
    drop(runtime);
    if let Some(file) = sqlite_file {
        compact(&file)?;
        println!(
            "SQLite: WAL checkpointed and truncated, file vacuumed (no freed page keeps old plaintext)"
        );
    }
    Ok(())
}

/// After the store is closed: see [`airisk_store_sqlite::SqliteStore::compact_closed_file`].
fn compact(file: &std::path::Path) -> anyhow::Result<()> {
    airisk_store_sqlite::SqliteStore::compact_closed_file(file).with_context(|| {
        format!(
            "the rows are sealed, but {} could not be vacuumed (is a service still running on \
             it?); stop it and run the command again",
            file.display()
        )
    })
}

//! The composition root's store opener: one database URL names the store behind every port.
//!
//! * `sqlite://path` (or `sqlite:path`): the embedded default, one file;
//! * `postgres://…` / `postgresql://…`: PostgreSQL as the application's login (a member of
//!   `airisk_app`; run `airisk migrate` as the schema owner first);
//! * `memory:`: the in-memory store, not durable (dev mode and tests).

use std::sync::Arc;

use airisk_core::ports::{AuditRepository, Clock, GovernanceStore};
use anyhow::{Context, bail};

/// The URL of the in-memory store.
pub const MEMORY_URL: &str = "memory:";

/// The stores behind the ports, from one database.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The audit ledger.
    pub audit: Arc<dyn AuditRepository>,
    /// Governance state with its unit of work.
    pub governance: Arc<dyn GovernanceStore>,
}

/// Opens the store `url` names, stamping records with `clock`.
///
/// # Errors
/// An unknown scheme, or a store that cannot be opened (with the reason).
pub async fn open(url: &str, clock: Arc<dyn Clock>) -> anyhow::Result<Opened> {
    if url == MEMORY_URL {
        let store = Arc::new(airisk_testkit::InMemoryStore::new(clock));
        return Ok(Opened {
            audit: store.clone(),
            governance: store,
        });
    }
    if url.starts_with("sqlite:") {
        let location = url.to_owned();
        // Opening migrates the file and starts the writer thread: blocking work.
        let store = tokio::task::spawn_blocking(move || {
            airisk_store_sqlite::SqliteStore::open(&location, clock)
        })
        .await
        .context("the store opener panicked")?
        .with_context(|| format!("could not open the SQLite store at {url}"))?;
        let store = Arc::new(store);
        return Ok(Opened {
            audit: store.clone(),
            governance: store,
        });
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = airisk_store_postgres::PostgresStore::connect(
            url,
            clock,
            airisk_store_postgres::PostgresOptions::default(),
        )
        .await
        .context("could not connect to the PostgreSQL store (as the application's login; run `airisk migrate` as the owner first)")?;
        let store = Arc::new(store);
        return Ok(Opened {
            audit: store.clone(),
            governance: store,
        });
    }
    bail!("unsupported database URL: use sqlite://path, postgres://… or {MEMORY_URL}")
}

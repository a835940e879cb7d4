//! `airisk migrate`: applies the PostgreSQL store's embedded schema migrations.

use anyhow::Context;
use clap::Args;

/// The environment variable that may carry the whole URL (password included).
const URL_ENV: &str = "AIRISK_ADMIN_DATABASE_URL";

/// Arguments of `airisk migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// PostgreSQL URL of the schema owner, e.g. postgres://airisk_owner@db.internal:5432/airisk:
    /// a role that may create tables in the database and, on the first run, the NOLOGIN role
    /// airisk_app (CREATEROLE). Not the application's login. A password belongs in PGPASSWORD,
    /// ~/.pgpass, or a URL passed through AIRISK_ADMIN_DATABASE_URL, never on the command line.
    #[arg(long, env = URL_ENV, hide_env_values = true, value_name = "URL")]
    database_url: String,
}

/// Runs `airisk migrate`.
///
/// # Errors
/// An unreachable server, or a failed migration (rolled back). (A password on the command line
/// is refused before, with every other secret: see `refuse_secrets_on_command_line`.)
pub fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let target = crate::store::redact_url(&args.database_url);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime
        .block_on(airisk_store_postgres::migrate(&args.database_url))
        .with_context(|| format!("migrating the PostgreSQL schema at {target}"))?;
    for (version, description) in &report.applied {
        println!("applied migration {version} ({description})");
    }
    println!(
        "schema of {target} at version {} ({})",
        report.version,
        if report.applied.is_empty() {
            "already current"
        } else {
            "migrated"
        }
    );
    Ok(())
}

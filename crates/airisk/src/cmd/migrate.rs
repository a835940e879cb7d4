//! `airisk migrate`: applies the PostgreSQL store's embedded schema migrations.

use anyhow::{Context, bail};
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

/// Whether `url` carries a password (`scheme://user:password@host…`).
fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// Runs `airisk migrate`.
///
/// # Errors
/// A password on the command line, an unreachable server, or a failed migration (rolled back).
pub fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let from_env = std::env::var(URL_ENV).ok().as_deref() == Some(args.database_url.as_str());
    if has_password(&args.database_url) && !from_env {
        bail!(
            "--database-url holds a password, which other users can read in the process list; \
             set {URL_ENV}, PGPASSWORD or ~/.pgpass instead"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime
        .block_on(airisk_store_postgres::migrate(&args.database_url))
        .context("migrating the PostgreSQL schema")?;
    for (version, description) in &report.applied {
        println!("applied migration {version} ({description})");
    }
    println!(
        "schema at version {} ({})",
        report.version,
        if report.applied.is_empty() {
            "already current"
        } else {
            "migrated"
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::has_password;

    #[test]
    fn a_password_in_the_url_is_noticed() {
        assert!(has_password("postgres://owner:s3cret@db:5432/airisk"));
        assert!(has_password(
            "postgresql://owner:s3cret@db/airisk?sslmode=require"
        ));
        assert!(!has_password("postgres://owner@db:5432/airisk"));
        assert!(!has_password("postgres://db/airisk?options=a:b"));
        assert!(!has_password("postgres:///airisk"));
    }
}

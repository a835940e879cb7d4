//! The embedded migrations and the function that applies them.
//!
//! The SQL files of `migrations/` are compiled into the binary with `include_str!` and handed to
//! sqlx's [`Migrator`] through a [`MigrationSource`] of our own: no `sqlx::migrate!` macro, no
//! database and no files at build time or at run time. sqlx records each applied migration (with
//! a SHA-384 checksum of its text) in `_sqlx_migrations`, takes an advisory lock so concurrent
//! start-ups migrate once, and runs each file in its own transaction.

use std::borrow::Cow;
use std::str::FromStr;

use futures_core_shim::BoxFuture;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};
use sqlx_core::error::BoxDynError;
use sqlx_core::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use crate::error::MigrateError;

/// `(version, description, sql)` of every migration, in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "schema", include_str!("../migrations/0001_schema.sql")),
    (
        2,
        "audit tenants rls",
        include_str!("../migrations/0002_audit_tenants_rls.sql"),
    ),
    (
        3,
        "data keys",
        include_str!("../migrations/0003_data_keys.sql"),
    ),
    (
        4,
        "webhook deliveries",
        include_str!("../migrations/0004_webhook_deliveries.sql"),
    ),
    (
        5,
        "data key subjects",
        include_str!("../migrations/0005_data_key_subjects.sql"),
    ),
    (
        6,
        "seal existing prompts",
        include_str!("../migrations/0006_seal_existing_prompts.sql"),
    ),
    (
        7,
        "drop model versions ord",
        include_str!("../migrations/0007_drop_model_versions_ord.sql"),
    ),
];

/// The newest schema version this build knows.
pub fn schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |(version, _, _)| *version)
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrateReport {
    /// Migrations applied by this call, `(version, description)`, in order. Empty if the
    /// database was already current.
    pub applied: Vec<(i64, String)>,
    /// The schema version the database is at now.
    pub version: i64,
}

#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Applies every embedded migration not yet applied to the database at `admin_url`.
///
/// `admin_url` must name a role that may create tables, functions and policies in the database,
/// and roles in the cluster (`CREATEROLE`, for `airisk_app` on first run): the schema owner, not
/// the application's login. The tables belong to that role. Safe to run at every start-up and
/// from several processes at once (an advisory lock makes the others wait).
///
/// # Errors
/// [`MigrateError::InvalidUrl`], [`MigrateError::Connect`], or [`MigrateError::Migration`] (a
/// failed migration is rolled back; a database migrated by a newer build is refused).
pub async fn migrate(admin_url: &str) -> Result<MigrateReport, MigrateError> {
    let options = PgConnectOptions::from_str(admin_url).map_err(|e| MigrateError::InvalidUrl {
        message: e.to_string(),
    })?;
    let mut conn = options
        .application_name("airisk-migrate")
        .connect()
        .await
        .map_err(|e| MigrateError::Connect {
            message: e.to_string(),
        })?;
    let before = applied_versions(&mut conn).await?;
    let migrator = Migrator::new(Embedded)
        .await
        .map_err(|e| MigrateError::Migration {
            message: e.to_string(),
        })?;
    let run = migrator.run(&mut conn).await;
    let after = applied_versions(&mut conn).await;
    // Closing politely is best effort; the migration's outcome is what matters.
    let _ = conn.close().await;
    run.map_err(|e| MigrateError::Migration {
        message: e.to_string(),
    })?;
    let after = after?;
    let applied = MIGRATIONS
        .iter()
        .filter(|(v, _, _)| after.contains(v) && !before.contains(v))
        .map(|(v, d, _)| (*v, (*d).to_owned()))
        .collect();
    Ok(MigrateReport {
        applied,
        version: after.iter().copied().max().unwrap_or(0),
    })
}

async fn applied_versions(conn: &mut sqlx::PgConnection) -> Result<Vec<i64>, MigrateError> {
    let exists: bool = sqlx::query("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| MigrateError::Connect {
            message: e.to_string(),
        })?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&mut *conn)
        .await
        .and_then(|rows| rows.iter().map(|r| r.try_get::<i64, _>(0)).collect())
        .map_err(|e| MigrateError::Migration {
            message: e.to_string(),
        })
}

/// `futures_core::future::BoxFuture` without a direct dependency on `futures-core`.
mod futures_core_shim {
    use std::future::Future;
    use std::pin::Pin;

    pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
}

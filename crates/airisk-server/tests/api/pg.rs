//! A fresh PostgreSQL database per test, for the `_on_postgres` variants: created and migrated
//! through `AIRISK_TEST_DATABASE_URL` (a superuser or CREATEDB/CREATEROLE role, as in CI), with
//! the store connected as `airisk_test_app`, a LOGIN member of `airisk_app` only (row-level
//! security applies). Dropped when the [`PgDb`] is.
//!
//! Every `_on_postgres` test is `#[ignore = "PostgreSQL: ..."]` (a plain `cargo test` reports it
//! as ignored, never as passed) and panics when run without the variable; `scripts/test.sh` runs
//! them with `--ignored` when a server answers. With `AIRISK_TEST_RUN_ID` set (by `.ci/run`) each
//! records its name in `airisk_test_pg_runs`, which `.ci/run` checks afterwards.
#![allow(dead_code)] // shared by two test binaries; each uses a part

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

pub const URL_VAR: &str = "AIRISK_TEST_DATABASE_URL";
/// The variable naming this run in `airisk_test_pg_runs` (set by `.ci/run`).
pub const RUN_ID_VAR: &str = "AIRISK_TEST_RUN_ID";
/// Why a PostgreSQL variant cannot run here.
pub const MISSING: &str = "AIRISK_TEST_DATABASE_URL is not set: this PostgreSQL variant cannot \
     run (mark it #[ignore = \"PostgreSQL: ...\"] and run it with the variable set, as scripts/test.sh does)";

/// Whether this is a CI run (`CI` set to anything but empty, `0` or `false`).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}
const APP_LOGIN: &str = "airisk_test_app";

#[derive(Debug)]
pub struct PgDb {
    pub name: String,
    pub app_url: String,
    server_url: String,
}

/// `url` with its user (if given) and database replaced.
fn rewrite(url: &str, user: Option<&str>, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    let authority = match user {
        Some(u) => format!(
            "{u}@{}",
            authority.rsplit_once('@').map_or(authority, |(_, h)| h)
        ),
        None => authority.to_owned(),
    };
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{db}{query}")
}

async fn connect(url: &str) -> PgConnection {
    PgConnectOptions::from_str(url)
        .unwrap()
        .application_name("airisk-server-tests")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {URL_VAR}: {e}"))
}

impl PgDb {
    /// A fresh migrated database. Panics without the variable ([`MISSING`]).
    pub async fn new() -> PgDb {
        let Ok(server_url) = std::env::var(URL_VAR) else {
            panic!("{MISSING}");
        };
        let name = format!("airisk_srv_{}", uuid::Uuid::now_v7().simple());
        let mut admin = connect(&server_url).await;
        if let Ok(run) = std::env::var(RUN_ID_VAR) {
            // libtest names each test's thread after the test: proof for `.ci/run` that this
            // test reached PostgreSQL. The table is created by `.ci/run`.
            let test = std::thread::current()
                .name()
                .unwrap_or("<unnamed>")
                .to_owned();
            sqlx::query(
                "INSERT INTO airisk_test_pg_runs (run_id, suite, test) VALUES ($1, $2, $3)",
            )
            .bind(run)
            .bind("airisk-server")
            .bind(test)
            .execute(&mut admin)
            .await
            .expect("record this PostgreSQL test in airisk_test_pg_runs (created by .ci/run)");
        }
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        airisk_store_postgres::migrate(&rewrite(&server_url, None, &name))
            .await
            .unwrap();
        sqlx::query(&format!(
            "DO $$ BEGIN CREATE ROLE {APP_LOGIN} LOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        ))
        .execute(&mut admin)
        .await
        .unwrap();
        for attempt in 0..5 {
            match sqlx::query(&format!("GRANT airisk_app TO {APP_LOGIN}"))
                .execute(&mut admin)
                .await
            {
                Ok(_) => break,
                Err(_) if attempt < 4 => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("GRANT airisk_app TO {APP_LOGIN}: {e}"),
            }
        }
        let _ = admin.close().await;
        PgDb {
            app_url: rewrite(&server_url, Some(APP_LOGIN), &name),
            name,
            server_url,
        }
    }
}

/// The one PostgreSQL test of this binary that is never ignored: under CI a missing
/// `AIRISK_TEST_DATABASE_URL` fails the run (the `_on_postgres` variants would not run).
#[test]
fn under_ci_the_postgresql_variants_cannot_be_skipped() {
    assert!(
        !under_ci() || std::env::var(URL_VAR).is_ok_and(|u| !u.is_empty()),
        "CI is set but {URL_VAR} is not: the PostgreSQL variants would not run"
    );
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // Drop cannot await and may run inside a runtime: a thread with its own.
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = PgConnectOptions::from_str(&server_url)
                    .ok()?
                    .connect()
                    .await
                    .ok()?;
                let done = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
                let _ = admin.close().await;
                done.ok()
            })
        })
        .join();
    }
}

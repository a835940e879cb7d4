//! A fresh PostgreSQL database per test, for the `_on_postgres` variants: created and migrated
//! through `AIRISK_TEST_DATABASE_URL` (a superuser or CREATEDB/CREATEROLE role, as in CI), with
//! the store connected as `airisk_test_app`, a LOGIN member of `airisk_app` only (row-level
//! security applies). Dropped when the [`PgDb`] is. Without the variable the test returns early
//! and says so.
#![allow(dead_code)] // shared by two test binaries; each uses a part

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

pub const URL_VAR: &str = "AIRISK_TEST_DATABASE_URL";
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
    /// A fresh migrated database, or `None` without the variable.
    pub async fn new() -> Option<PgDb> {
        let Ok(server_url) = std::env::var(URL_VAR) else {
            eprintln!("note: {URL_VAR} is not set; this PostgreSQL variant did not run");
            return None;
        };
        let name = format!("airisk_srv_{}", uuid::Uuid::now_v7().simple());
        let mut admin = connect(&server_url).await;
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
        Some(PgDb {
            app_url: rewrite(&server_url, Some(APP_LOGIN), &name),
            name,
            server_url,
        })
    }
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

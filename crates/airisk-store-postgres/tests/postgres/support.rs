//! A fresh database per test, migrated, with a LOGIN member of `airisk_app` for the store.
//!
//! `AIRISK_TEST_DATABASE_URL` names a superuser (or a role with CREATEDB and CREATEROLE) on the
//! server under test, e.g. `postgres://postgres@127.0.0.1:5432/postgres`. Each test creates
//! `airisk_t_<uuid>`, migrates it as that role (the schema owner), and connects the store as
//! `airisk_test_app`, a LOGIN role that is a member of `airisk_app` and nothing else (created once
//! per cluster, kept). The database is dropped when the test's [`TestDb`] is dropped (best
//! effort, `WITH (FORCE)`).
//!
//! Every test that calls [`TestDb::new`] is `#[ignore = "PostgreSQL: ..."]`: a plain `cargo test`
//! lists it as *ignored* (never as passed), and `scripts/test.sh` runs them with `--ignored` when a
//! server answers. Run without the variable, [`TestDb::new`] panics: a PostgreSQL test never passes
//! without PostgreSQL, and never falls back to another store. When `AIRISK_TEST_RUN_ID` is set
//! (`.ci/run` sets it), each test records its name in `airisk_test_pg_runs` on the server, and
//! `.ci/run` checks afterwards that every PostgreSQL test left its row.

use std::str::FromStr;
use std::sync::Arc;

use airisk_core::governance::model_registry::RegisterModel;
use airisk_core::ports::Clock;
use airisk_core::request::CorrelationId;
use airisk_core::security::rbac::Role;
use airisk_store_postgres::{PostgresOptions, PostgresStore};
use airisk_testkit::fixtures::human;
use airisk_testkit::governance_conformance::Services;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

/// The variable naming the admin URL of the server under test.
pub const URL_VAR: &str = "AIRISK_TEST_DATABASE_URL";
/// Why a PostgreSQL test cannot run here.
pub const MISSING: &str = "AIRISK_TEST_DATABASE_URL is not set: this PostgreSQL test cannot run \
     (it is #[ignore]d for that reason; run it with the variable set, as scripts/test.sh does)";
/// The variable naming this run in `airisk_test_pg_runs` (set by `.ci/run`).
pub const RUN_ID_VAR: &str = "AIRISK_TEST_RUN_ID";
/// The application login the tests connect the store as.
pub const APP_LOGIN: &str = "airisk_test_app";

/// One test's database.
#[derive(Debug)]
pub struct TestDb {
    /// The database's name.
    pub name: String,
    /// The admin URL pointing at this database (superuser, owner of the tables).
    pub admin_url: String,
    /// The application login's URL for this database.
    pub app_url: String,
    /// The admin URL as given (its own database), for CREATE/DROP DATABASE.
    server_url: String,
}

/// `url` with its user (if given) and database replaced.
fn rewrite(url: &str, user: Option<&str>, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("the test URL has a scheme");
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    let authority = match user {
        Some(u) => {
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{u}@{host}")
        }
        None => authority.to_owned(),
    };
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{db}{query}")
}

async fn admin_connect(url: &str) -> PgConnection {
    PgConnectOptions::from_str(url)
        .expect("AIRISK_TEST_DATABASE_URL parses")
        .application_name("airisk-tests")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {URL_VAR}: {e}"))
}

impl TestDb {
    /// A fresh, migrated database.
    ///
    /// # Panics
    /// Without `AIRISK_TEST_DATABASE_URL` ([`MISSING`]), or if the server cannot be reached.
    pub async fn new() -> TestDb {
        let Ok(server_url) = std::env::var(URL_VAR) else {
            panic!("{MISSING}");
        };
        let name = format!("airisk_t_{}", Uuid::now_v7().simple());
        let mut admin = admin_connect(&server_url).await;
        record_run(&mut admin, "airisk-store-postgres").await;
        sweep_stale_databases(&mut admin).await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let admin_url = rewrite(&server_url, None, &name);
        let db = TestDb {
            app_url: rewrite(&server_url, Some(APP_LOGIN), &name),
            admin_url,
            name,
            server_url,
        };
        airisk_store_postgres::migrate(&db.admin_url)
            .await
            .expect("migrations apply to a fresh database");
        // Cluster-wide and kept between runs; concurrent tests may race to create it.
        sqlx::query(&format!(
            "DO $$ BEGIN CREATE ROLE {APP_LOGIN} LOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        ))
        .execute(&mut admin)
        .await
        .expect("create the test login");
        // Re-granting is harmless, but concurrent GRANTs of one membership can clash on the
        // catalog row: retry a few times.
        for attempt in 0..5 {
            match sqlx::query(&format!("GRANT airisk_app TO {APP_LOGIN}"))
                .execute(&mut admin)
                .await
            {
                Ok(_) => break,
                Err(e) if attempt < 4 => {
                    eprintln!("GRANT airisk_app retry: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("GRANT airisk_app TO {APP_LOGIN}: {e}"),
            }
        }
        let _ = admin.close().await;
        db
    }

    /// The store, connected as the application login.
    pub async fn store(&self, clock: Arc<dyn Clock>) -> PostgresStore {
        self.store_with(clock, PostgresOptions::default()).await
    }

    /// The store with explicit options.
    pub async fn store_with(
        &self,
        clock: Arc<dyn Clock>,
        options: PostgresOptions,
    ) -> PostgresStore {
        PostgresStore::connect(&self.app_url, clock, options)
            .await
            .expect("the store connects as the application login")
    }

    /// A raw connection as the application login.
    pub async fn app_connection(&self) -> PgConnection {
        admin_connect(&self.app_url).await
    }

    /// A raw connection as the admin (superuser, owner of the tables).
    pub async fn admin_connection(&self) -> PgConnection {
        admin_connect(&self.admin_url).await
    }
}

/// With `AIRISK_TEST_RUN_ID` set, records `(run, suite, this test's name)` in
/// `airisk_test_pg_runs` of the server's own database — proof, for `.ci/run`, that this test
/// reached PostgreSQL. libtest names each test's thread after the test. The table is created by
/// `.ci/run`; a failed insert fails the test.
pub async fn record_run(admin: &mut PgConnection, suite: &str) {
    let Ok(run) = std::env::var(RUN_ID_VAR) else {
        return;
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed>")
        .to_owned();
    sqlx::query("INSERT INTO airisk_test_pg_runs (run_id, suite, test) VALUES ($1, $2, $3)")
        .bind(run)
        .bind(suite)
        .bind(test)
        .execute(&mut *admin)
        .await
        .expect("record this PostgreSQL test in airisk_test_pg_runs (created by .ci/run)");
}

/// Drops test databases left behind by runs that were killed before their `Drop` ran: those whose
/// UUIDv7 name says they were created more than an hour ago (so never a running test's). Once per
/// process, best effort.
async fn sweep_stale_databases(admin: &mut PgConnection) {
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let Ok(rows) =
        sqlx::query("SELECT datname::text FROM pg_database WHERE datname LIKE 'airisk\\_t\\_%'")
            .fetch_all(&mut *admin)
            .await
    else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for row in rows {
        let name: String = sqlx::Row::get(&row, 0);
        let created = name
            .strip_prefix("airisk_t_")
            .and_then(|hex| Uuid::try_parse(hex).ok())
            .and_then(|id| id.get_timestamp())
            .map(|ts| ts.to_unix().0);
        if created.is_some_and(|c| c + 3600 < now) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *admin)
                .await;
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Best effort, on a thread of its own (Drop cannot await, and may run inside a runtime).
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
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
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// A store that keeps its test database alive as long as it lives.
pub type Guarded = airisk_testkit::Guarded<PostgresStore, TestDb>;

/// A store on `db` (a fresh database) that keeps it alive.
pub async fn guarded(db: TestDb, clock: Arc<dyn Clock>) -> Guarded {
    let store = db.store(clock).await;
    airisk_testkit::Guarded::new(store, db)
}

/// The SQLSTATE of a failed raw query.
pub fn sqlstate(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> String {
    match result {
        Ok(done) => panic!("expected a refusal, but the statement succeeded: {done:?}"),
        Err(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()).unwrap_or_default(),
        Err(other) => panic!("expected a database error, got {other}"),
    }
}

/// The message of a failed raw query.
pub fn refusal(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> String {
    match result {
        Ok(done) => panic!("expected a refusal, but the statement succeeded: {done:?}"),
        Err(e) => e.to_string(),
    }
}

/// Registers version `version` of model `credit-risk-pd` in tenant `acme` through the registry, as
/// an admin, with one approval required: a model row and its pending request.
pub async fn register_model_version(services: &Services, version: &str) {
    services
        .models
        .register_model(
            &human("ada@acme.example", "acme", Role::Admin),
            &CorrelationId::generate(),
            RegisterModel {
                name: "credit-risk-pd".into(),
                version: version.to_owned(),
                checksum: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
                artifact_uri: format!("s3://models/credit-risk-pd/{version}"),
                metadata: None,
                justification: "backtest passed".into(),
                required_approvals: Some(1),
                expires_in_seconds: None,
            },
        )
        .await
        .unwrap();
}

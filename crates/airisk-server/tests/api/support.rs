//! `TestApp::spawn()`: the real router on a real socket (127.0.0.1, port 0) over a fresh
//! in-memory store, with a small HTTP client and token helpers.
#![allow(dead_code)] // shared by two test binaries; each uses a part

use std::net::SocketAddr;
use std::sync::Arc;

use airisk_core::governance::audit_logger::CheckpointPolicy;
use airisk_core::ledger::{LedgerName, LedgerSigner};
use airisk_core::ports::{AuditRepository, GovernanceStore, SystemClock, UuidV7Generator};
use airisk_core::security::rbac::Role;
use airisk_server::auth::{
    Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER, JwtVerifier, TokenSigner, generate_ed25519,
};
use airisk_server::{AppState, LedgerConfig, ServerConfig, Stores};
use airisk_testkit::guarded::BeforeCommit;
use airisk_testkit::{Guarded, InMemoryStore};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

/// The HS256 secret every test app accepts.
pub const SECRET: &[u8; 32] = b"test-secret-test-secret-test-sec";

/// A SHA-256 digest used as the artifact checksum in tests.
pub const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// Which store the app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Sqlite,
    /// Only where `AIRISK_TEST_DATABASE_URL` is set (see `pg.rs`).
    Postgres,
}

/// `store` behind both ports; with `before_commit`, inside a [`Guarded`] that runs it ahead of
/// every commit.
fn ports<S>(
    store: S,
    before_commit: Option<BeforeCommit>,
) -> (Arc<dyn AuditRepository>, Arc<dyn GovernanceStore>)
where
    S: AuditRepository + GovernanceStore + 'static,
{
    match before_commit {
        Some(hook) => {
            let guarded = Arc::new(Guarded::new(store, ()).before_commit(hook));
            (guarded.clone(), guarded)
        }
        None => {
            let store = Arc::new(store);
            (store.clone(), store)
        }
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    /// The in-memory store (its `dangerous_*` switches), when the app runs on it.
    pub memory: Option<Arc<InMemoryStore>>,
    pub audit: Arc<dyn AuditRepository>,
    pub governance: Arc<dyn GovernanceStore>,
    dir: Option<std::path::PathBuf>,
    _pg: Option<crate::pg::PgDb>,
    pub signer: Arc<LedgerSigner>,
    pub eddsa: TokenSigner,
    pub hs256: TokenSigner,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(ServerConfig::default()).await
    }

    pub async fn spawn_with(config: ServerConfig) -> TestApp {
        Self::spawn_on(Backend::Memory, config).await
    }

    pub async fn spawn_backend(backend: Backend) -> TestApp {
        Self::spawn_on(backend, ServerConfig::default()).await
    }

    pub async fn spawn_on(backend: Backend, config: ServerConfig) -> TestApp {
        Self::spawn_custom(backend, config, Arc::new(SystemClock), None).await
    }

    /// [`TestApp::spawn_on`] with the service clock given (the stores keep the system clock),
    /// and, when given, `before_commit` run ahead of every commit of the store (to inject
    /// faults; the store is then the test kit's [`Guarded`]).
    pub async fn spawn_custom(
        backend: Backend,
        config: ServerConfig,
        clock: Arc<dyn airisk_core::ports::Clock>,
        before_commit: Option<BeforeCommit>,
    ) -> TestApp {
        Self::spawn_full(backend, config, clock, before_commit, None).await
    }

    /// An app that seals, as `airisk serve` does: data keys wrapped by the public test KEK
    /// (`airisk_testkit::sealing_conformance::TEST_KEK_1`).
    pub async fn spawn_sealed(backend: Backend) -> TestApp {
        let kek = Arc::new(
            airisk_core::security::encryption::Encryptor::from_env_value(
                airisk_testkit::sealing_conformance::TEST_KEK_1,
            )
            .unwrap(),
        );
        let envelope = Arc::new(airisk_core::security::envelope::Envelope::new(
            Arc::new(airisk_core::security::envelope::KeyringKeyProvider::new(
                kek,
            )),
            16,
        ));
        Self::spawn_full(
            backend,
            ServerConfig::default(),
            Arc::new(SystemClock),
            None,
            Some(envelope),
        )
        .await
    }

    /// [`TestApp::spawn_custom`], sealing with `envelope` when given.
    pub async fn spawn_full(
        backend: Backend,
        config: ServerConfig,
        clock: Arc<dyn airisk_core::ports::Clock>,
        before_commit: Option<BeforeCommit>,
        envelope: Option<Arc<airisk_core::security::envelope::Envelope>>,
    ) -> TestApp {
        let mut memory = None;
        let mut dir = None;
        let mut pg = None;
        let (audit, governance): (Arc<dyn AuditRepository>, Arc<dyn GovernanceStore>) =
            match backend {
                Backend::Memory => {
                    // Clones share state: `memory` is the same store.
                    let store = InMemoryStore::new(Arc::new(SystemClock));
                    memory = Some(Arc::new(store.clone()));
                    ports(store, before_commit)
                }
                Backend::Sqlite => {
                    let path = std::env::temp_dir()
                        .join(format!("airisk-server-test-{}", uuid::Uuid::now_v7()));
                    let url = format!("sqlite://{}/airisk.db", path.display());
                    dir = Some(path);
                    let store = airisk_store_sqlite::SqliteStore::open(&url, Arc::new(SystemClock))
                        .unwrap();
                    ports(store, before_commit)
                }
                Backend::Postgres => {
                    let db = crate::pg::PgDb::new().await;
                    let store = airisk_store_postgres::PostgresStore::connect(
                        &db.app_url,
                        Arc::new(SystemClock),
                        airisk_store_postgres::PostgresOptions::default(),
                    )
                    .await
                    .unwrap();
                    pg = Some(db);
                    ports(store, before_commit)
                }
            };
        let stores = Stores {
            audit: audit.clone(),
            governance: governance.clone(),
        };
        let signer = Arc::new(
            LedgerSigner::generate(LedgerName::parse("airisk.test/ledger").unwrap()).unwrap(),
        );
        let (pkcs8, jwks) = generate_ed25519().unwrap();
        let eddsa = TokenSigner::ed25519_from_pkcs8(&pkcs8).unwrap();
        let auth = JwtVerifier::new(DEFAULT_ISSUER, DEFAULT_AUDIENCE)
            .with_leeway(5)
            .with_jwks(&jwks)
            .unwrap()
            .dangerous_with_hs256_secret(SECRET)
            .unwrap();
        let state = AppState::new_sealed(
            stores,
            clock,
            Arc::new(UuidV7Generator),
            LedgerConfig {
                signer: signer.clone(),
                policy: CheckpointPolicy::default(),
            },
            auth,
            config,
            envelope,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(airisk_server::serve(listener, state, async move {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            client: reqwest::Client::new(),
            memory,
            audit,
            governance,
            dir,
            _pg: pg,
            signer,
            eddsa,
            hs256: TokenSigner::Hs256(Zeroizing::new(SECRET.to_vec())),
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Kept for PostgreSQL variants written as `if TestApp::postgres_configured() { .. }`: it
    /// returns `true` or panics — a PostgreSQL test never passes without PostgreSQL. Such a test
    /// must be `#[ignore = "PostgreSQL: ..."]` so that a run without the server lists it as
    /// ignored.
    pub fn postgres_configured() -> bool {
        assert!(
            std::env::var(crate::pg::URL_VAR).is_ok(),
            "{}",
            crate::pg::MISSING
        );
        true
    }

    /// The SQLite database file, when the app runs on SQLite.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        self.dir.as_ref().map(|d| d.join("airisk.db"))
    }

    /// The PostgreSQL database's name, when the app runs on PostgreSQL.
    pub fn pg_database(&self) -> Option<&str> {
        self._pg.as_ref().map(|db| db.name.as_str())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A token for `sub` in `tenant` with `role`, signed with the app's Ed25519 key.
    pub fn token(&self, sub: &str, tenant: &str, role: Role) -> String {
        self.eddsa
            .sign(&Claims::new(sub, tenant, role, 600))
            .unwrap()
    }

    pub fn service_token(&self, sub: &str, tenant: &str, role: Role) -> String {
        let mut claims = Claims::new(sub, tenant, role, 600);
        claims.kind = Some("service".into());
        self.eddsa.sign(&claims).unwrap()
    }

    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, token).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Response {
        self.request(Method::POST, path, token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, token: &str, body: &Value) -> Response {
        self.request(Method::PUT, path, token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Registers `name@version` as `admin` of `tenant`; returns the approval request id.
    pub async fn register_model(&self, tenant: &str, name: &str, version: &str) -> String {
        let admin = self.token("ada.admin", tenant, Role::Admin);
        let r = self
            .post("/v1/models", &admin, &model_body(name, version))
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let v: Value = r.json().await.unwrap();
        v["approval_request"]["id"].as_str().unwrap().to_owned()
    }

    /// Stops accepting, waits for requests in flight and the final checkpoint.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }

    pub fn begin_shutdown(&mut self) -> JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.handle.take().unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub fn model_body(name: &str, version: &str) -> Value {
    serde_json::json!({
        "name": name,
        "version": version,
        "checksum": DIGEST,
        "artifact_uri": format!("s3://models/{name}/{version}.onnx"),
        "justification": "back-tested on 2025 data",
        "metadata": {"framework": "onnx"}
    })
}

/// The body of a problem+json response, after checking the media type and status.
pub async fn problem(r: Response, status: u16) -> Value {
    assert_eq!(r.status(), status, "unexpected status");
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let header_cid = r.headers()["x-correlation-id"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], status);
    assert_eq!(v["correlation_id"], header_cid.as_str());
    assert!(
        v["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:airisk:problem:")
    );
    assert!(v["title"].is_string() && v["detail"].is_string());
    v
}

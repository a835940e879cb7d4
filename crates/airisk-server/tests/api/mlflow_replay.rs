//! The MLflow webhook's replay memory is the governance database's, not a process's: two
//! `airisk serve` instances on one database (SQLite file, PostgreSQL) refuse a delivery either of
//! them received, including when both receive it at once. (No MLflow needed: the deliveries are
//! signed here, for an event airisk acknowledges without calling MLflow.)

use std::sync::Arc;

use airisk_core::governance::audit_logger::CheckpointPolicy;
use airisk_core::ledger::{LedgerName, LedgerSigner};
use airisk_core::ports::{AuditRepository, GovernanceStore, SystemClock, UuidV7Generator};
use airisk_server::auth::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, JwtVerifier};
use airisk_server::https::HttpsClient;
use airisk_server::integrations::mlflow::signature::sign;
use airisk_server::integrations::mlflow::{Instance, MlflowIntegration, SyncSettings};
use airisk_server::{AppState, LedgerConfig, ServerConfig, Stores};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::support::SECRET;

const WEBHOOK_SECRET: &str = "webhook-secret-of-the-risk-instance";

/// One `airisk serve` with MLflow instance `risk` of tenant acme connected; its URL.
async fn serve(
    audit: Arc<dyn AuditRepository>,
    governance: Arc<dyn GovernanceStore>,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let state = AppState::new(
        Stores { audit, governance },
        Arc::new(SystemClock),
        Arc::new(UuidV7Generator),
        LedgerConfig {
            signer: Arc::new(
                LedgerSigner::generate(LedgerName::parse("airisk.test/ledger").unwrap()).unwrap(),
            ),
            policy: CheckpointPolicy::default(),
        },
        JwtVerifier::new(DEFAULT_ISSUER, DEFAULT_AUDIENCE)
            .dangerous_with_hs256_secret(SECRET)
            .unwrap(),
        ServerConfig::default(),
    );
    // MLflow itself is never called for the event these tests send (port 9: discard).
    let instance = Instance::new(
        "risk",
        "http://127.0.0.1:9",
        "acme",
        Zeroizing::new(WEBHOOK_SECRET.as_bytes().to_vec()),
        None,
        Vec::new(),
        HttpsClient::new(None).unwrap(),
    )
    .unwrap();
    let integration =
        Arc::new(MlflowIntegration::new(vec![instance], SyncSettings::default()).unwrap());
    assert!(state.connect_mlflow(integration));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(airisk_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    (url, stop)
}

/// Posts a delivery signed with the instance's secret, stamped now; the status and problem type.
async fn deliver(client: &reqwest::Client, url: &str, id: &str) -> (u16, Value) {
    let body = br#"{"entity":"model_version_tag","action":"set","timestamp":"x","data":{"name":"credit","version":"1","key":"k","value":"v"}}"#;
    let now = chrono::Utc::now().timestamp();
    let r = client
        .post(format!(
            "{url}/v1/integrations/mlflow/webhook?instance=risk"
        ))
        .header("content-type", "application/json")
        .header("x-mlflow-delivery-id", id)
        .header("x-mlflow-timestamp", now.to_string())
        .header(
            "x-mlflow-signature",
            sign(WEBHOOK_SECRET.as_bytes(), id, now, body),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Two instances, one database: a delivery either received is a replay at the other; of one
/// delivery sent to both at once exactly one is processed.
async fn replays_are_refused_across_instances(a: &str, b: &str) {
    let client = reqwest::Client::new();
    let (s, body) = deliver(&client, a, "delivery-1").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "ignored", "{body}");
    let (s, problem) = deliver(&client, b, "delivery-1").await;
    assert_eq!(s, 409, "{problem}");
    assert_eq!(problem["type"], "urn:airisk:problem:replayed-delivery");
    let (s, _) = deliver(&client, a, "delivery-1").await;
    assert_eq!(s, 409, "and at the instance that processed it");
    let (s, _) = deliver(&client, b, "delivery-2").await;
    assert_eq!(s, 200);
    let (s, _) = deliver(&client, a, "delivery-2").await;
    assert_eq!(s, 409);
    for round in 0..5 {
        let id = format!("raced-{round}");
        let (x, y) = tokio::join!(deliver(&client, a, &id), deliver(&client, b, &id));
        let mut statuses = [x.0, y.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}: {x:?} {y:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_sqlite_file_share_the_replay_memory() {
    let dir = std::env::temp_dir().join(format!("airisk-mlflow-replay-{}", uuid::Uuid::now_v7()));
    let url = format!("sqlite://{}/airisk.db", dir.display());
    // Two stores on one file: two processes, as far as the database is concerned.
    let one =
        Arc::new(airisk_store_sqlite::SqliteStore::open(&url, Arc::new(SystemClock)).unwrap());
    let two =
        Arc::new(airisk_store_sqlite::SqliteStore::open(&url, Arc::new(SystemClock)).unwrap());
    let (a, stop_a) = serve(one.clone(), one).await;
    let (b, stop_b) = serve(two.clone(), two).await;
    replays_are_refused_across_instances(&a, &b).await;
    let _ = (stop_a.send(()), stop_b.send(()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn two_instances_on_one_postgresql_database_share_the_replay_memory() {
    let db = crate::pg::PgDb::new().await;
    let connect = || async {
        Arc::new(
            airisk_store_postgres::PostgresStore::connect(
                &db.app_url,
                Arc::new(SystemClock),
                airisk_store_postgres::PostgresOptions::default(),
            )
            .await
            .unwrap(),
        )
    };
    let (one, two) = (connect().await, connect().await);
    let (a, stop_a) = serve(one.clone(), one).await;
    let (b, stop_b) = serve(two.clone(), two).await;
    replays_are_refused_across_instances(&a, &b).await;
    let _ = (stop_a.send(()), stop_b.send(()));
}

//! MLflow over https through the service's one TLS stack (rustls with ring): an MLflow API
//! served on 127.0.0.1 with a certificate from a fresh private CA (made with the openssl command
//! line) is reached with that CA's bundle, and refused without it or with another CA's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use airisk_server::https::HttpsClient;
use airisk_server::integrations::mlflow::client::{MlflowClient, MlflowError};
use airisk_server::integrations::mlflow::{Instance, InstanceConfig};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::test_ca::{TlsListener, make_ca};

/// What the fake MLflow saw of the alias write.
#[derive(Default)]
struct Seen {
    alias_body: Option<Value>,
    authorization: Option<String>,
}

async fn registered_model(
    Query(q): Query<BTreeMap<String, String>>,
) -> (StatusCode, axum::Json<Value>) {
    if q.get("name").map(String::as_str) != Some("credit risk/β") {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(
                json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such model"}),
            ),
        );
    }
    (
        StatusCode::OK,
        axum::Json(
            json!({"registered_model": {"name": "credit risk/β", "aliases": [{"alias": "production", "version": "3"}]}}),
        ),
    )
}

async fn set_alias(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    let mut s = seen.lock().unwrap();
    s.alias_body = Some(body);
    s.authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    axum::Json(json!({}))
}

/// An MLflow API over TLS for `localhost` from a CA made in `dir`; (CA bundle, base URL, seen).
async fn tls_mlflow(dir: &Path) -> (PathBuf, String, Arc<Mutex<Seen>>) {
    let tls = TlsListener::bind(dir).await;
    let url = tls.url();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = Router::new()
        .route(
            "/api/2.0/mlflow/registered-models/get",
            get(registered_model),
        )
        .route("/api/2.0/mlflow/registered-models/alias", post(set_alias))
        .with_state(seen.clone());
    let ca = tls.serve(app);
    (ca, url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlflow_behind_a_private_ca_is_reached_with_the_ca_bundle_only() {
    let dir = std::env::temp_dir().join(format!("airisk-mlflow-tls-{}", uuid::Uuid::now_v7()));
    let (ca, url, seen) = tls_mlflow(&dir).await;
    let token = Some(Zeroizing::new("mlflow-api-token".to_owned()));

    // With the CA bundle: reads and writes go through, the token as a bearer, names encoded.
    let mlflow = MlflowClient::new(HttpsClient::new(Some(&ca)).unwrap(), &url, token.clone());
    assert_eq!(
        mlflow
            .alias_target("credit risk/β", "production")
            .await
            .unwrap(),
        Some("3".to_owned())
    );
    let missing = mlflow
        .alias_target("other", "production")
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    mlflow
        .set_alias("credit risk/β", "production", "4")
        .await
        .unwrap();
    {
        let s = seen.lock().unwrap();
        assert_eq!(
            s.alias_body,
            Some(json!({"name": "credit risk/β", "alias": "production", "version": "4"}))
        );
        assert_eq!(s.authorization.as_deref(), Some("Bearer mlflow-api-token"));
    }

    // The Mozilla roots do not know the bank's CA; nor does another private CA.
    let public = MlflowClient::new(HttpsClient::new(None).unwrap(), &url, token.clone());
    let err = public
        .alias_target("credit risk/β", "production")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MlflowError::Unreachable(m) if m.contains("TLS")),
        "{err}"
    );
    let other_ca = make_ca(&dir, "other");
    let other = MlflowClient::new(
        HttpsClient::new(Some(&other_ca)).unwrap(),
        &url,
        token.clone(),
    );
    let err = other
        .alias_target("credit risk/β", "production")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MlflowError::Unreachable(m) if m.contains("TLS")),
        "{err}"
    );
    // Neither error shows the token.
    assert!(!err.to_string().contains("mlflow-api-token"), "{err}");

    // The instance's file entry names the bundle; a missing or empty bundle is refused when
    // the file is loaded (before anything else is read).
    let entry = |ca_file: Option<PathBuf>| InstanceConfig {
        id: "risk".into(),
        url: url.clone(),
        tenant: "acme".into(),
        protected_aliases: vec!["production".into()],
        webhook_secret_env: "AIRISK_TEST_MLFLOW_TLS_UNSET_SECRET".into(),
        token_env: None,
        ca_file,
        authors: BTreeMap::new(),
        webhook_id: None,
        baseline: Vec::new(),
    };
    let err = Instance::from_config(&entry(Some(dir.join("no-such-ca.pem")))).unwrap_err();
    assert!(err.contains("CA file"), "{err}");
    std::fs::write(dir.join("empty.pem"), "").unwrap();
    let err = Instance::from_config(&entry(Some(dir.join("empty.pem")))).unwrap_err();
    assert!(err.contains("no usable certificate"), "{err}");
    let err = Instance::from_config(&entry(Some(ca.clone()))).unwrap_err();
    assert!(
        err.contains("webhook secret variable"),
        "a good bundle gets past: {err}"
    );
    // An https instance is accepted and reaches MLflow through its bundle.
    let inst = Instance::new(
        "risk",
        &url,
        "acme",
        Zeroizing::new(b"a-long-enough-webhook-secret".to_vec()),
        token,
        Vec::new(),
        HttpsClient::new(Some(&ca)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        inst.client()
            .alias_target("credit risk/β", "production")
            .await
            .unwrap(),
        Some("3".to_owned())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

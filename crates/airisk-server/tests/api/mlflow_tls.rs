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

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command line makes the test CA");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private CA (`<name>.pem`, `<name>.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-subj",
            &format!("/CN=airisk test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    dir.join(format!("{name}.pem"))
}

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
    use rustls::pki_types::pem::PemObject as _;
    std::fs::create_dir_all(dir).unwrap();
    let ca = make_ca(dir, "ca");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    );
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(dir.join("leaf.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let private = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("leaf.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, private)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = Router::new()
        .route(
            "/api/2.0/mlflow/registered-models/get",
            get(registered_model),
        )
        .route("/api/2.0/mlflow/registered-models/alias", post(set_alias))
        .with_state(seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: not an error here.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                }
            });
        }
    });
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

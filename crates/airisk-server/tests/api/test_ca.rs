//! A private CA made with the openssl command line, and an HTTPS server on 127.0.0.1 with a
//! certificate for `localhost` that the CA signed (rustls with ring): the set-up of the tests
//! that reach a service (an OpenID provider, MLflow) behind a bank's own CA.
#![allow(dead_code)] // shared by two test binaries; each uses a part

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use rustls::pki_types::pem::PemObject as _;

/// Runs `openssl` with `args` in `dir`, failing loudly.
pub fn openssl(dir: &Path, args: &[&str]) {
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

/// `openssl req`'s arguments for a new P-256 key, unencrypted.
const NEW_P256_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// A private CA (`<name>.pem`, `<name>.key`) in `dir`; returns the path of its certificate.
pub fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let (key, pem, subject) = (
        format!("{name}.key"),
        format!("{name}.pem"),
        format!("/CN=airisk test {name}"),
    );
    let ca = [
        "-keyout",
        &key,
        "-out",
        &pem,
        "-days",
        "1",
        "-subj",
        &subject,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ];
    openssl(dir, &[&["req", "-x509"][..], &NEW_P256_KEY, &ca].concat());
    dir.join(pem)
}

/// A listener on 127.0.0.1 (a free port) that speaks TLS with a certificate for `localhost`
/// signed by a private CA made for it.
pub struct TlsListener {
    /// The CA's certificate (PEM): the bundle a client must be given to trust the server.
    pub ca: PathBuf,
    /// The port it listens on.
    pub port: u16,
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl TlsListener {
    /// Makes the CA (`ca.pem`) and the server's certificate in `dir` (created if missing), and
    /// binds.
    pub async fn bind(dir: &Path) -> TlsListener {
        std::fs::create_dir_all(dir).unwrap();
        let ca = make_ca(dir, "ca");
        let leaf = [
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ];
        openssl(dir, &[&["req"][..], &NEW_P256_KEY, &leaf].concat());
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
        let private =
            rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("leaf.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        TlsListener {
            ca,
            port,
            listener,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        }
    }

    /// `https://localhost:<port>`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Serves `app` over TLS on a task of its own until the runtime ends; returns the CA's
    /// certificate. A client that refuses the certificate just ends its handshake.
    pub fn serve(self, app: Router) -> PathBuf {
        let TlsListener {
            ca,
            listener,
            acceptor,
            ..
        } = self;
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let service = hyper_util::service::TowerToHyperService::new(app);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                            .await;
                    }
                });
            }
        });
        ca
    }
}

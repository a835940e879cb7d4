//! The service's one outbound HTTP client: HTTP/1.1 (hyper) over TLS (rustls with ring, the
//! tree's one crypto backend), trusting the Mozilla roots (webpki-roots) or, when a CA bundle is
//! configured, only the certificates of that PEM file (a bank's private CA). Used by the OpenID
//! provider client ([`crate::oidc`]) and the MLflow integration's REST client.
//!
//! One connection per request (no pool, no redirects followed, no proxy from the environment):
//! the callers make a few calls a second at most, and a fresh TLS handshake each time means a
//! rotated server certificate or CA bundle is never pinned by a long-lived connection.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject as _;

/// The TLS client configuration: the certificates of the PEM bundle at `ca_file` only, or the
/// Mozilla roots without one.
///
/// # Errors
/// A CA file that cannot be read, does not parse, or holds no usable certificate, in words.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("the CA file {}: {e}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the CA file {}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "the CA file {} holds no usable certificate",
                    path.display()
                ));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(tls))
}

/// An HTTP(S) client over a TLS configuration ([`tls_config`]).
#[derive(Clone)]
pub struct HttpsClient {
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient").finish_non_exhaustive()
    }
}

impl HttpsClient {
    /// A client trusting the PEM bundle at `ca_file`, or the Mozilla roots.
    ///
    /// # Errors
    /// As [`tls_config`].
    pub fn new(ca_file: Option<&Path>) -> Result<Self, String> {
        Ok(HttpsClient {
            tls: tls_config(ca_file)?,
        })
    }

    /// A client over an existing TLS configuration.
    pub fn with_tls(tls: Arc<rustls::ClientConfig>) -> Self {
        HttpsClient { tls }
    }

    /// Sends one request to `url` (`http://` or `https://`) and returns the response with its
    /// body unread. `timeout` covers connecting, the TLS handshake and the response head.
    ///
    /// # Errors
    /// In words, without the URL's query: an unparsable URL, a failed connection or TLS
    /// handshake (the message says `TLS`), a timeout.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, String> {
        let uri: Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
        let what = format!(
            "{method} {}://{}{}",
            uri.scheme_str().unwrap_or("?"),
            uri.authority().map(|a| a.as_str()).unwrap_or(""),
            uri.path()
        );
        tokio::time::timeout(timeout, self.send_inner(method, &uri, headers, body))
            .await
            .map_err(|_| format!("{what}: timed out after {} ms", timeout.as_millis()))?
            .map_err(|e| format!("{what}: {e}"))
    }

    async fn send_inner(
        &self,
        method: Method,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: Option<Bytes>,
    ) -> Result<Response<Incoming>, String> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("only http:// and https:// URLs are supported".to_owned()),
        };
        let host = uri
            .host()
            .ok_or("the URL has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::USER_AGENT, "airisk");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| e.to_string())?;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        if https {
            let name = ServerName::try_from(host).map_err(|e| e.to_string())?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            send(TokioIo::new(tls), request).await
        } else {
            send(TokioIo::new(tcp), request).await
        }
    }
}

async fn send<I>(io: I, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    // The connection task ends by itself when the response body is done or dropped.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())
}

/// Reads a response body whole, refusing one over `limit` bytes.
///
/// # Errors
/// A body over the limit or a broken connection, in words.
pub async fn read_body(response: Response<Incoming>, limit: usize) -> Result<Bytes, String> {
    Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| format!("the body: {e}"))
}

//! The few calls of MLflow's REST API (OSS 3.x) the integration makes.

use std::collections::BTreeMap;
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::manifest::ManifestEntry;
use crate::https::HttpsClient;

/// Timeout of one MLflow API call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout of one artifact file's download (and hashing).
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest JSON answer read from MLflow's API.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;
/// Most files in one model version's artifacts.
pub const MAX_FILES: usize = 10_000;
/// Deepest directory nesting followed.
const MAX_DEPTH: usize = 32;

/// Why a call to MLflow (or the sync around it) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MlflowError {
    /// MLflow could not be reached or did not answer in time.
    #[error("MLflow is unreachable: {0}")]
    Unreachable(String),
    /// MLflow answered with an error status.
    #[error("MLflow answered {status} to {call}: {message}")]
    Status {
        /// The call (method and path).
        call: String,
        /// The HTTP status.
        status: u16,
        /// MLflow's `error_code: message`, shortened.
        message: String,
    },
    /// airisk's own approvals could not be read, so nothing was changed in MLflow.
    #[error("airisk's approvals could not be read: {0}")]
    Airisk(String),
    /// MLflow's answer is not what its API documents, or the artifacts are beyond the limits.
    #[error("unexpected answer from MLflow: {0}")]
    Unexpected(String),
}

impl MlflowError {
    /// Whether MLflow said the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, MlflowError::Status { status: 404, .. })
            || matches!(self, MlflowError::Status { message, .. } if message.starts_with("RESOURCE_DOES_NOT_EXIST"))
    }
}

/// MLflow's tag with a prompt version's template text.
pub const PROMPT_TEXT_TAG: &str = "mlflow.prompt.text";

/// A model version as MLflow reports it (MLflow 3 keeps prompt versions as model versions of a
/// registered model tagged `mlflow.prompt.is_prompt`, the template in the tag
/// [`PROMPT_TEXT_TAG`]).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MlflowModelVersion {
    /// Registered model name.
    pub name: String,
    /// Version number, as text.
    pub version: String,
    /// Where its artifacts came from.
    #[serde(default)]
    pub source: String,
    /// The run that produced it.
    #[serde(default)]
    pub run_id: Option<String>,
    /// Who created it, when the server records it (MLflow OSS leaves it empty).
    #[serde(default)]
    pub user_id: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// `READY`, `PENDING_REGISTRATION`, `FAILED_REGISTRATION`.
    #[serde(default)]
    pub status: Option<String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

/// A tag.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyValue {
    /// Key.
    pub key: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

/// A registered model's alias.
#[derive(Debug, Clone, Deserialize)]
pub struct Alias {
    /// The alias.
    pub alias: String,
    /// The version it points at.
    pub version: String,
}

/// A registered model with its aliases.
#[derive(Debug, Clone, Deserialize)]
pub struct RegisteredModel {
    /// Name.
    pub name: String,
    /// Aliases.
    #[serde(default)]
    pub aliases: Vec<Alias>,
    /// Tags (`mlflow.prompt.is_prompt` marks a prompt).
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

impl RegisteredModel {
    /// Whether MLflow keeps a prompt under this name (MLflow 3 stores prompts as registered
    /// models tagged `mlflow.prompt.is_prompt`).
    pub fn is_prompt(&self) -> bool {
        self.tags
            .iter()
            .any(|t| t.key == "mlflow.prompt.is_prompt" && t.value == "true")
    }
}

/// A client for one MLflow tracking server.
#[derive(Clone)]
pub struct MlflowClient {
    http: HttpsClient,
    base: String,
    token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for MlflowClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlflowClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl MlflowClient {
    /// A client for the server at `base` (e.g. `https://mlflow:5000`), sending `token` as a
    /// bearer token when given, over `http` (which holds the TLS trust: a private CA bundle or the
    /// Mozilla roots).
    pub fn new(http: HttpsClient, base: &str, token: Option<Zeroizing<String>>) -> Self {
        MlflowClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn headers(&self, json_body: bool) -> Result<Vec<(HeaderName, HeaderValue)>, MlflowError> {
        let mut headers = vec![(
            hyper::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        )];
        if json_body {
            headers.push((
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ));
        }
        if let Some(token) = &self.token {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", token.as_str())).map_err(|_| {
                    MlflowError::Unexpected(
                        "the MLflow token is not a valid header value".to_owned(),
                    )
                })?;
            value.set_sensitive(true);
            headers.push((hyper::header::AUTHORIZATION, value));
        }
        Ok(headers)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, MlflowError> {
        let mut url = format!("{}{path}", self.base);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&percent_encode(k));
            url.push('=');
            url.push_str(&percent_encode(v));
        }
        let body = body
            .map(|b| serde_json::to_vec(&b).map(Bytes::from))
            .transpose()
            .map_err(|e| MlflowError::Unexpected(e.to_string()))?;
        let headers = self.headers(body.is_some())?;
        let call = async {
            let response = self
                .http
                .send(method.clone(), &url, &headers, body, CALL_TIMEOUT)
                .await
                .map_err(MlflowError::Unreachable)?;
            let status = response.status();
            let bytes = crate::https::read_body(response, MAX_ANSWER_BYTES)
                .await
                .map_err(MlflowError::Unreachable)?;
            Ok::<_, MlflowError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| {
                MlflowError::Unreachable(format!(
                    "{method} {path}: no answer within {} s",
                    CALL_TIMEOUT.as_secs()
                ))
            })??;
        if !status.is_success() {
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .map(|v| {
                    format!(
                        "{}: {}",
                        v.get("error_code").and_then(Value::as_str).unwrap_or("?"),
                        v.get("message").and_then(Value::as_str).unwrap_or("")
                    )
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
            let message: String = message.chars().take(300).collect();
            return Err(MlflowError::Status {
                call: format!("{method} {path}"),
                status: status.as_u16(),
                message,
            });
        }
        if bytes.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| MlflowError::Unexpected(format!("{method} {path}: {e}")))
    }

    /// `GET /api/2.0/mlflow/model-versions/get`.
    ///
    /// # Errors
    /// [`MlflowError`].
    pub async fn model_version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<MlflowModelVersion, MlflowError> {
        let v = self
            .call(
                Method::GET,
                "/api/2.0/mlflow/model-versions/get",
                &[("name", name), ("version", version)],
                None,
            )
            .await?;
        serde_json::from_value(v.get("model_version").cloned().unwrap_or(Value::Null))
            .map_err(|e| MlflowError::Unexpected(format!("model version: {e}")))
    }

    /// `GET /api/2.0/mlflow/model-versions/get-download-uri`.
    ///
    /// # Errors
    /// [`MlflowError`].
    pub async fn download_uri(&self, name: &str, version: &str) -> Result<String, MlflowError> {
        let v = self
            .call(
                Method::GET,
                "/api/2.0/mlflow/model-versions/get-download-uri",
                &[("name", name), ("version", version)],
                None,
            )
            .await?;
        v.get("artifact_uri")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| MlflowError::Unexpected("no artifact_uri".to_owned()))
    }

    /// The registered model with its aliases (`GET …/registered-models/get`).
    ///
    /// # Errors
    /// [`MlflowError`].
    pub async fn registered_model(&self, name: &str) -> Result<RegisteredModel, MlflowError> {
        let v = self
            .call(
                Method::GET,
                "/api/2.0/mlflow/registered-models/get",
                &[("name", name)],
                None,
            )
            .await?;
        serde_json::from_value(v.get("registered_model").cloned().unwrap_or(Value::Null))
            .map_err(|e| MlflowError::Unexpected(format!("registered model: {e}")))
    }

    /// Every registered model with its aliases (`GET …/registered-models/search`, all pages).
    ///
    /// # Errors
    /// [`MlflowError`].
    pub async fn registered_models(&self) -> Result<Vec<RegisteredModel>, MlflowError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..1000 {
            let mut query = vec![("max_results", "200")];
            if let Some(t) = &token {
                query.push(("page_token", t.as_str()));
            }
            let v = self
                .call(
                    Method::GET,
                    "/api/2.0/mlflow/registered-models/search",
                    &query,
                    None,
                )
                .await?;
            let page: Vec<RegisteredModel> = serde_json::from_value(
                v.get("registered_models")
                    .cloned()
                    .unwrap_or_else(|| json!([])),
            )
            .map_err(|e| MlflowError::Unexpected(format!("registered models: {e}")))?;
            out.extend(page);
            token = v
                .get("next_page_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
        Err(MlflowError::Unexpected(
            "too many pages of registered models".to_owned(),
        ))
    }

    /// Every version of `name` (`GET …/model-versions/search`, all pages).
    ///
    /// # Errors
    /// [`MlflowError`].
    pub async fn model_versions(&self, name: &str) -> Result<Vec<MlflowModelVersion>, MlflowError> {
        let filter = format!("name='{}'", name.replace('\'', "\\'"));
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..1000 {
            let mut query = vec![("filter", filter.as_str()), ("max_results", "200")];
            if let Some(t) = &token {
                query.push(("page_token", t.as_str()));
            }
            let v = self
                .call(
                    Method::GET,
                    "/api/2.0/mlflow/model-versions/search",
                    &query,
                    None,
                )
                .await?;
            let page: Vec<MlflowModelVersion> = serde_json::from_value(
                v.get("model_versions")
                    .cloned()
                    .unwrap_or_else(|| json!([])),
            )
            .map_err(|e| MlflowError::Unexpected(format!("model versions: {e}")))?;
            out.extend(page);
            token = v
                .get("next_page_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
        Err(MlflowError::Unexpected(
            "too many pages of model versions".to_owned(),
        ))
    }

    /// Where `alias` of `name` points, or `None` if it is not set.
    ///
    /// # Errors
    /// [`MlflowError`].
    pub async fn alias_target(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<Option<String>, MlflowError> {
        let model = self.registered_model(name).await?;
        Ok(model
            .aliases
            .into_iter()
            .find(|a| a.alias == alias)
            .map(|a| a.version))
    }

    /// `POST /api/2.0/mlflow/registered-models/alias`.
    ///
    /// # Errors
    /// [`MlflowError`].
    pub async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
    ) -> Result<(), MlflowError> {
        self.call(
            Method::POST,
            "/api/2.0/mlflow/registered-models/alias",
            &[],
            Some(json!({"name": name, "alias": alias, "version": version})),
        )
        .await
        .map(|_| ())
    }

    /// `DELETE /api/2.0/mlflow/registered-models/alias`.
    ///
    /// # Errors
    /// [`MlflowError`].
    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), MlflowError> {
        self.call(
            Method::DELETE,
            "/api/2.0/mlflow/registered-models/alias",
            &[],
            Some(json!({"name": name, "alias": alias})),
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/2.0/mlflow/model-versions/set-tag`.
    ///
    /// # Errors
    /// [`MlflowError`].
    pub async fn set_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
        value: &str,
    ) -> Result<(), MlflowError> {
        self.call(
            Method::POST,
            "/api/2.0/mlflow/model-versions/set-tag",
            &[],
            Some(json!({"name": name, "version": version, "key": key, "value": value})),
        )
        .await
        .map(|_| ())
    }

    /// Who MLflow says created run `run_id` (`GET …/runs/get`, `run.info.user_id`), if anyone.
    ///
    /// # Errors
    /// [`MlflowError`].
    pub async fn run_user(&self, run_id: &str) -> Result<Option<String>, MlflowError> {
        let v = self
            .call(
                Method::GET,
                "/api/2.0/mlflow/runs/get",
                &[("run_id", run_id)],
                None,
            )
            .await?;
        Ok(v.pointer("/run/info/user_id")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned))
    }

    /// `POST /api/2.0/mlflow/webhooks`: a webhook to `url` for the events airisk handles (model
    /// versions and their aliases, prompt versions and their aliases), signed with `secret`.
    /// Returns its id.
    ///
    /// # Errors
    /// [`MlflowError`].
    pub async fn create_webhook(
        &self,
        name: &str,
        url: &str,
        secret: &str,
    ) -> Result<String, MlflowError> {
        let events: Vec<Value> = [
            ("MODEL_VERSION", "CREATED"),
            ("MODEL_VERSION_ALIAS", "CREATED"),
            ("MODEL_VERSION_ALIAS", "DELETED"),
            ("PROMPT_VERSION", "CREATED"),
            ("PROMPT_ALIAS", "CREATED"),
            ("PROMPT_ALIAS", "DELETED"),
        ]
        .iter()
        .map(|(entity, action)| json!({"entity": entity, "action": action}))
        .collect();
        let v = self
            .call(
                Method::POST,
                "/api/2.0/mlflow/webhooks",
                &[],
                Some(json!({"name": name, "url": url, "events": events, "secret": secret})),
            )
            .await?;
        v.pointer("/webhook/webhook_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| MlflowError::Unexpected("no webhook_id".to_owned()))
    }

    /// `DELETE /api/2.0/mlflow/webhooks/{id}`.
    ///
    /// # Errors
    /// [`MlflowError`].
    pub async fn delete_webhook(&self, id: &str) -> Result<(), MlflowError> {
        self.call(
            Method::DELETE,
            &format!("/api/2.0/mlflow/webhooks/{id}"),
            &[],
            None,
        )
        .await
        .map(|_| ())
    }

    /// Lists and hashes every file under an `mlflow-artifacts:` URI through the artifact proxy
    /// (`GET /api/2.0/mlflow-artifacts/artifacts?path=…` to list,
    /// `GET /api/2.0/mlflow-artifacts/artifacts/<path>` to download), streaming each file through
    /// SHA-256.
    ///
    /// # Errors
    /// [`MlflowError::Unexpected`] for another URI scheme or past the limits; others as calls.
    pub async fn manifest(&self, artifact_uri: &str) -> Result<Vec<ManifestEntry>, MlflowError> {
        let root = proxied_path(artifact_uri)?;
        let mut entries = Vec::new();
        let mut dirs: Vec<(String, usize)> = vec![(String::new(), 0)];
        while let Some((rel, depth)) = dirs.pop() {
            if depth > MAX_DEPTH {
                return Err(MlflowError::Unexpected(
                    "artifacts nest too deep".to_owned(),
                ));
            }
            let full = join(&root, &rel);
            let v = self
                .call(
                    Method::GET,
                    "/api/2.0/mlflow-artifacts/artifacts",
                    &[("path", full.as_str())],
                    None,
                )
                .await?;
            let files = v
                .get("files")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for f in files {
                let Some(name) = f.get("path").and_then(Value::as_str) else {
                    return Err(MlflowError::Unexpected(
                        "a listed file has no path".to_owned(),
                    ));
                };
                // The proxy lists paths relative to the listed directory; keep only the last part.
                let base = name.rsplit('/').next().unwrap_or(name);
                if base.is_empty() || base == "." || base == ".." {
                    return Err(MlflowError::Unexpected(format!(
                        "odd artifact name {name:?}"
                    )));
                }
                let child = join(&rel, base);
                if f.get("is_dir").and_then(Value::as_bool).unwrap_or(false) {
                    dirs.push((child, depth + 1));
                } else {
                    if entries.len() >= MAX_FILES {
                        return Err(MlflowError::Unexpected(format!(
                            "more than {MAX_FILES} artifact files"
                        )));
                    }
                    let (sha256, size) = self.hash_file(&join(&root, &child)).await?;
                    entries.push(ManifestEntry {
                        path: child,
                        size,
                        sha256,
                    });
                }
            }
        }
        Ok(entries)
    }

    async fn hash_file(&self, path: &str) -> Result<(String, u64), MlflowError> {
        let encoded: Vec<String> = path.split('/').map(percent_encode).collect();
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}",
            self.base,
            encoded.join("/")
        );
        let headers = self.headers(false)?;
        let download = async {
            let response = self
                .http
                .send(Method::GET, &url, &headers, None, CALL_TIMEOUT)
                .await
                .map_err(MlflowError::Unreachable)?;
            if response.status() != StatusCode::OK {
                return Err(MlflowError::Status {
                    call: format!("GET artifact {path}"),
                    status: response.status().as_u16(),
                    message: String::new(),
                });
            }
            let mut body = response.into_body();
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            let mut size: u64 = 0;
            while let Some(frame) = body.frame().await {
                let frame = frame
                    .map_err(|e| MlflowError::Unreachable(format!("GET artifact {path}: {e}")))?;
                if let Some(chunk) = frame.data_ref() {
                    size += chunk.len() as u64;
                    ctx.update(chunk);
                }
            }
            Ok((ctx, size))
        };
        let (ctx, size) = tokio::time::timeout(DOWNLOAD_TIMEOUT, download)
            .await
            .map_err(|_| {
                MlflowError::Unreachable(format!(
                    "GET artifact {path}: not downloaded within {} s",
                    DOWNLOAD_TIMEOUT.as_secs()
                ))
            })??;
        let digest = ctx.finish();
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Ok((hex, size))
    }
}

/// The artifact-proxy path of an `mlflow-artifacts:` URI (`mlflow-artifacts:/0/abc/artifacts/model`
/// or `mlflow-artifacts://host/0/abc/…` → `0/abc/artifacts/model`).
///
/// # Errors
/// [`MlflowError::Unexpected`] for any other scheme: airisk only hashes what it can fetch through
/// MLflow's own artifact API.
pub fn proxied_path(uri: &str) -> Result<String, MlflowError> {
    let rest = uri.strip_prefix("mlflow-artifacts:").ok_or_else(|| {
        MlflowError::Unexpected(format!(
            "artifact URI {uri:?} is not served by MLflow (mlflow-artifacts:); start MLflow with --serve-artifacts"
        ))
    })?;
    let rest = match rest.strip_prefix("//") {
        Some(with_host) => with_host.split_once('/').map(|(_, p)| p).unwrap_or(""),
        None => rest.trim_start_matches('/'),
    };
    let rest = rest.trim_end_matches('/');
    if rest.split('/').any(|s| s == "..") {
        return Err(MlflowError::Unexpected(format!(
            "artifact URI {uri:?} climbs out"
        )));
    }
    Ok(rest.to_owned())
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

fn percent_encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Tags as a map.
pub fn tag_map(tags: &[KeyValue]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests
mod tests {
    use super::*;

    #[test]
    fn mlflow_artifact_uris_map_to_proxy_paths_and_others_are_refused() {
        assert_eq!(
            proxied_path("mlflow-artifacts:/0/abc/artifacts/model").unwrap(),
            "0/abc/artifacts/model"
        );
        assert_eq!(
            proxied_path("mlflow-artifacts://host:5000/0/abc/").unwrap(),
            "0/abc"
        );
        assert!(proxied_path("s3://bucket/key").is_err());
        assert!(proxied_path("mlflow-artifacts:/0/../etc").is_err());
    }
}

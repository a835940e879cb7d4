//! `/v1/integrations/mlflow/…`: the webhook receiver, the sync status and the reconcile trigger.

use airisk_core::governance::approval_workflow::{NewApprovalRequest, RequestedSubject};
use airisk_core::governance::audit_record::Outcome;
use airisk_core::governance::model_registry::Sha256Digest;
use airisk_core::governance::model_registry::{ModelRegistryError, RegisterModel};
use airisk_core::governance::prompt_registry::{PromptRegistryError, PromptVersion};
use airisk_core::ports::{ApprovalFilter, Page};
use airisk_core::request::CorrelationId;
use airisk_core::security::rbac::{Action, RbacService};
use airisk_core::security::tenant_context::Principal;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::client::tag_map;
use super::manifest::{manifest_digest, manifest_text};
use super::signature::{self, Refusal};
use super::{Instance, MlflowIntegration};
use crate::context;
use crate::error::ApiError;
use crate::error::{ListErrors, WriteErrors};
use crate::extract::{ApiQuery, Caller};
use crate::state::AppState;

/// The query of the webhook URL.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WebhookQuery {
    /// The connected instance's id.
    instance: String,
}

/// MLflow's envelope.
#[derive(Debug, Deserialize)]
struct Envelope {
    entity: String,
    action: String,
    #[serde(default)]
    timestamp: Option<String>,
    data: Value,
}

fn text<'a>(data: &'a Value, key: &str) -> Result<&'a str, ApiError> {
    data.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "the payload's data.{key} is missing or not a short string"
            ))
        })
}

/// Receive a signed MLflow webhook delivery (no bearer token: the HMAC signature of the
/// instance's secret authenticates it). `model_version.created` registers the version PENDING
/// with an approval request; alias events on protected aliases are checked against approvals.
#[utoipa::path(
    post, path = "/v1/integrations/mlflow/webhook", tag = "integrations",
    params(WebhookQuery),
    request_body(content = Object, description = "MLflow's webhook payload, exactly as signed"),
    responses(
        (status = 200, description = "Processed (or ignored: an event airisk does not act on)", body = Object),
        (status = 400, description = "Malformed payload (signature verified)"),
        (status = 401, description = "Missing or bad signature, or a stale timestamp"),
        (status = 404, description = "Unknown instance"),
        (status = 409, description = "Replayed delivery, or a version whose artifacts changed"),
        (status = 422, description = "The `instance` parameter is missing or does not parse"),
        (status = 503, description = "MLflow or the store is unavailable; MLflow retries"),
    ),
    // No bearer token: the HMAC signature authenticates the sender.
    security(())
)]
pub(crate) async fn receive(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<WebhookQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Some(mlflow) = state.mlflow().cloned() else {
        return Err(ApiError::NotFound(
            "no MLflow instance is connected".to_owned(),
        ));
    };
    let Some(inst) = mlflow.instance(&query.instance).cloned() else {
        // No tenant to record it in: logged only (the instance id is not a secret).
        tracing::warn!(instance = %query.instance.chars().take(64).collect::<String>(), "mlflow webhook for an unknown instance refused");
        return Err(ApiError::NotFound("unknown MLflow instance".to_owned()));
    };
    let correlation = context::correlation();
    let now = state.clock().now().timestamp();
    let verified = match signature::verify(&inst.secret, &headers, &body, now) {
        Ok(v) => v,
        Err(refusal) => {
            refuse(
                &mlflow,
                &state,
                &inst,
                &correlation,
                &refusal.to_string(),
                None,
            )
            .await;
            return Err(refusal_error(refusal));
        }
    };
    let replay = inst.replay_memory(&state);
    if let Err(refusal) = replay.begin(&verified, now).await {
        refuse(
            &mlflow,
            &state,
            &inst,
            &correlation,
            &refusal.to_string(),
            Some(&verified.delivery_id),
        )
        .await;
        return Err(refusal_error(refusal));
    }
    let result = handle(
        &mlflow,
        &state,
        &inst,
        &correlation,
        &body,
        &verified.delivery_id,
    )
    .await;
    match &result {
        Ok(_) => {
            replay
                .complete(&verified, state.clock().now().timestamp())
                .await
        }
        // A failure on airisk's or MLflow's side (5xx): forget the delivery, so MLflow's retry
        // (same id) is processed.
        Err(ApiError::Unavailable(_) | ApiError::Internal(_)) => replay.abandon(&verified).await,
        Err(e) => {
            // Refused for what it holds: remembered, a replay of it is a replay.
            replay
                .complete(&verified, state.clock().now().timestamp())
                .await;
            refuse(
                &mlflow,
                &state,
                &inst,
                &correlation,
                &e.to_string(),
                Some(&verified.delivery_id),
            )
            .await;
        }
    }
    result.map(Json)
}

fn refusal_error(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Unsigned(_) | Refusal::BadSignature | Refusal::Stale { .. } => {
            ApiError::Unauthorized(refusal.to_string())
        }
        Refusal::Replayed(_) => ApiError::Conflict {
            kind: "replayed-delivery",
            detail: refusal.to_string(),
        },
        Refusal::MemoryUnavailable(_) => ApiError::Unavailable(refusal.to_string()),
    }
}

/// Records a refused delivery in the instance's tenant's ledger.
async fn refuse(
    mlflow: &MlflowIntegration,
    state: &AppState,
    inst: &Instance,
    correlation: &CorrelationId,
    why: &str,
    delivery: Option<&str>,
) {
    let mut meta = Map::new();
    meta.insert("instance".into(), inst.id.clone().into());
    if let Some(d) = delivery {
        meta.insert("delivery_id".into(), d.into());
    }
    mlflow
        .record(
            state,
            inst,
            correlation,
            "mlflow.webhook.receive",
            Outcome::Denied,
            "webhook",
            Some(why.to_owned()),
            meta,
        )
        .await;
}

async fn handle(
    mlflow: &Arc<MlflowIntegration>,
    state: &AppState,
    inst: &Arc<Instance>,
    correlation: &CorrelationId,
    body: &[u8],
    delivery_id: &str,
) -> Result<Value, ApiError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the payload is not an MLflow webhook envelope: {e}"
        ))
    })?;
    match (envelope.entity.as_str(), envelope.action.as_str()) {
        ("model_version", "created") => {
            // Fetching and hashing the artifacts can take longer than MLflow waits for an
            // answer (30 s) or than the request timeout: acknowledge now, register in the
            // background. A registration that fails is recorded; the periodic reconcile
            // registers every version airisk has no record of, so none is lost.
            let name = text(&envelope.data, "name")?.to_owned();
            let version = text(&envelope.data, "version")?.to_owned();
            let task = (
                mlflow.clone(),
                state.clone(),
                inst.clone(),
                correlation.clone(),
                delivery_id.to_owned(),
            );
            let (n, v) = (name.clone(), version.clone());
            tokio::spawn(async move {
                let (mlflow, state, inst, correlation, delivery) = task;
                let _permit = mlflow.hashing.clone().acquire_owned().await;
                if let Err(e) = register(
                    &state,
                    &inst,
                    &correlation,
                    &n,
                    &v,
                    Some(&delivery),
                    envelope.timestamp.clone(),
                )
                .await
                {
                    let mut meta = Map::new();
                    meta.insert("instance".into(), inst.id.clone().into());
                    meta.insert("delivery_id".into(), delivery.into());
                    mlflow
                        .record(
                            &state,
                            &inst,
                            &correlation,
                            "mlflow.version.register",
                            Outcome::Denied,
                            &format!("{n}@{v}"),
                            Some(format!("not registered (the reconcile retries): {e}")),
                            meta,
                        )
                        .await;
                }
            });
            Ok(json!({"status": "accepted", "model": name, "version": version}))
        }
        ("model_version_alias", "created" | "deleted") => {
            check_alias(mlflow, state, inst, correlation, &envelope, delivery_id).await
        }
        ("prompt_version", "created") => {
            // A template is small: registered now, so a failure is a 5xx MLflow retries.
            let name = text(&envelope.data, "name")?;
            let version = text(&envelope.data, "version")?;
            register_prompt(state, inst, correlation, name, version, Some(delivery_id)).await
        }
        ("prompt_alias", "created" | "deleted") => {
            check_alias(mlflow, state, inst, correlation, &envelope, delivery_id).await
        }
        (entity, action) => Ok(json!({"status": "ignored", "event": format!("{entity}.{action}")})),
    }
}

fn mlflow_error(e: super::client::MlflowError) -> ApiError {
    match e {
        super::client::MlflowError::Unreachable(m) | super::client::MlflowError::Airisk(m) => {
            ApiError::Unavailable(m)
        }
        super::client::MlflowError::Status { status, .. } if status >= 500 => {
            ApiError::Unavailable(e.to_string())
        }
        other => ApiError::Unprocessable(other.to_string()),
    }
}

/// Registers `name` version `version` of MLflow in airisk (PENDING, with its approval request),
/// from what MLflow holds now. Idempotent: the same version with the same digest is
/// `already_registered`.
pub(super) async fn register(
    state: &AppState,
    inst: &Instance,
    correlation: &CorrelationId,
    name: &str,
    version: &str,
    delivery_id: Option<&str>,
    event_timestamp: Option<String>,
) -> Result<Value, ApiError> {
    // What MLflow holds now, not what the payload says: the payload is signed, but the artifacts
    // are what gets deployed, so airisk fetches and hashes them itself.
    let mv = inst
        .client
        .model_version(name, version)
        .await
        .map_err(mlflow_error)?;
    if mv.tags.iter().any(|t| t.key.starts_with("mlflow.prompt.")) {
        return register_prompt(state, inst, correlation, name, version, delivery_id).await;
    }
    // Who created it: the version's user when MLflow records one, else the user of the run that
    // produced it (what MLflow's tracking server records for the run).
    let (author, author_source) = match mv.user_id.as_deref().map(str::trim) {
        Some(u) if !u.is_empty() => (Some(u.to_owned()), "version"),
        _ => match mv.run_id.as_deref().filter(|r| !r.is_empty()) {
            Some(run) => (
                inst.client.run_user(run).await.map_err(mlflow_error)?,
                "run",
            ),
            None => (None, "none"),
        },
    };
    let maker = inst
        .maker(author.as_deref())
        .map_err(ApiError::Unprocessable)?;
    let uri = inst
        .client
        .download_uri(name, version)
        .await
        .map_err(mlflow_error)?;
    let entries = inst.client.manifest(&uri).await.map_err(mlflow_error)?;
    if entries.is_empty() {
        return Err(ApiError::Unprocessable(format!(
            "{name} version {version} has no artifact files to hash"
        )));
    }
    let digest = manifest_digest(&entries);
    let path = super::client::proxied_path(&uri).map_err(mlflow_error)?;
    let mut mlflow_meta = Map::new();
    mlflow_meta.insert("instance".into(), inst.id.clone().into());
    mlflow_meta.insert("source".into(), mv.source.clone().into());
    mlflow_meta.insert("artifact_uri".into(), uri.clone().into());
    mlflow_meta.insert("run_id".into(), mv.run_id.clone().into());
    mlflow_meta.insert(
        "user_id".into(),
        mv.user_id.clone().filter(|u| !u.is_empty()).into(),
    );
    mlflow_meta.insert("description".into(), mv.description.clone().into());
    mlflow_meta.insert(
        "author".into(),
        json!({
            "mlflow_user": author,
            "source": author_source,
            "airisk_identity": author.as_ref().map(|_| maker.actor().as_str()),
        }),
    );
    mlflow_meta.insert("tags".into(), json!(tag_map(&mv.tags)));
    mlflow_meta.insert("delivery_id".into(), delivery_id.into());
    mlflow_meta.insert("event_timestamp".into(), event_timestamp.into());
    mlflow_meta.insert("manifest_files".into(), entries.len().into());
    mlflow_meta.insert(
        "manifest_bytes".into(),
        entries.iter().map(|e| e.size).sum::<u64>().into(),
    );
    let mut metadata = Map::new();
    metadata.insert("mlflow".into(), Value::Object(mlflow_meta));
    let input = RegisterModel {
        name: name.to_owned(),
        version: version.to_owned(),
        checksum: digest.to_hex(),
        artifact_uri: format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{path}",
            inst.client.base()
        ),
        metadata: Some(Value::Object(metadata)),
        justification: format!(
            "version {version} of {name} was registered in MLflow instance {}",
            inst.id
        ),
        required_approvals: None,
        expires_in_seconds: None,
    };
    match state
        .models()
        .register_model(&maker, correlation, input)
        .await
    {
        Ok(r) => Ok(json!({
            "status": "registered",
            "model": name,
            "version": version,
            "checksum": digest.to_hex(),
            "approval_request_id": r.request.id(),
            "manifest": manifest_text(&entries),
        })),
        Err(ModelRegistryError::AlreadyRegistered { .. }) => {
            // MLflow retried, or sent the event again: the same version with the same digest
            // is the same registration. Different artifacts under the same version are not.
            let existing = state
                .models()
                .get_model(&inst.principal, name, version)
                .await?;
            if existing.checksum().matches(&digest) {
                Ok(
                    json!({"status": "already_registered", "model": name, "version": version,
                          "checksum": digest.to_hex(), "approval_request_id": existing.approval_request_id()}),
                )
            } else {
                Err(ApiError::Conflict {
                    kind: "conflict",
                    detail: format!(
                        "{name} version {version} is already registered with another artifact digest"
                    ),
                })
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Registers MLflow prompt `name` up to version `version` in airisk's prompt registry, as
/// `mlflow/<instance>/<name>` with the same version numbers: every version airisk lacks, in
/// order, with the template text read from MLflow (never the payload's) and its SHA-256, each
/// opened by its author, with one approval request per protected alias. Idempotent: a version
/// airisk holds with the same template only gets its missing requests.
pub(super) async fn register_prompt(
    state: &AppState,
    inst: &Instance,
    correlation: &CorrelationId,
    name: &str,
    version: &str,
    delivery_id: Option<&str>,
) -> Result<Value, ApiError> {
    let wanted: u32 = version.parse().ok().filter(|v| *v >= 1).ok_or_else(|| {
        ApiError::BadRequest(format!("prompt version {version:?} is not a number"))
    })?;
    let airisk_name = inst.prompt_name(name);
    let held = match state.prompts().history(&inst.principal, &airisk_name).await {
        Ok(h) => h.versions,
        Err(PromptRegistryError::NotFound) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut registered = 0u32;
    let latest = held.last().map_or(0, PromptVersion::version);
    for n in 1..=wanted {
        let n_text = n.to_string();
        if n <= latest {
            if n == wanted {
                // Held already: the same template, or a conflict.
                let mv = inst
                    .client
                    .model_version(name, &n_text)
                    .await
                    .map_err(mlflow_error)?;
                let template = prompt_text(&mv, name, n)?;
                let Some(ours) = held.iter().find(|v| v.version() == n) else {
                    return Err(ApiError::Internal(
                        "a held prompt version went missing".into(),
                    ));
                };
                if !ours
                    .template_sha256()
                    .matches(&Sha256Digest::of(template.as_bytes()))
                {
                    return Err(ApiError::Conflict {
                        kind: "conflict",
                        detail: format!(
                            "prompt {name} version {n} is already registered with another template"
                        ),
                    });
                }
                let mv_user = mv.user_id.clone();
                let maker = inst
                    .maker(mv_user.as_deref())
                    .map_err(ApiError::Unprocessable)?;
                ensure_prompt_requests(state, inst, correlation, &maker, name, n).await?;
            }
            continue;
        }
        let mv = inst
            .client
            .model_version(name, &n_text)
            .await
            .map_err(mlflow_error)?;
        let template = prompt_text(&mv, name, n)?;
        let author = mv
            .user_id
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        let maker = inst
            .maker(author.as_deref())
            .map_err(ApiError::Unprocessable)?;
        let reason = format!(
            "version {n} of prompt {name} in MLflow instance {}{}",
            inst.id,
            mv.description
                .as_deref()
                .filter(|d| !d.trim().is_empty())
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
        let change = if n == 1 {
            state
                .prompts()
                .register_prompt(&maker, correlation, &airisk_name, &template, &reason)
                .await
        } else {
            state
                .prompts()
                .update_prompt(&maker, correlation, &airisk_name, &template, &reason)
                .await
        };
        let change = match change {
            Ok(c) => c,
            Err(PromptRegistryError::NoChange { latest }) => {
                return Err(ApiError::Unprocessable(format!(
                    "MLflow prompt {name} version {n} has the same template as version {latest}; \
                     airisk numbers prompt versions by change, so it cannot mirror it"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if change.version.version() != n {
            return Err(ApiError::Conflict {
                kind: "conflict",
                detail: format!(
                    "airisk numbered MLflow prompt {name} version {n} as {}",
                    change.version.version()
                ),
            });
        }
        registered += 1;
        let mut meta = Map::new();
        meta.insert("instance".into(), inst.id.clone().into());
        meta.insert("prompt".into(), airisk_name.clone().into());
        meta.insert("version".into(), n.into());
        meta.insert(
            "template_sha256".into(),
            change.version.template_sha256().to_hex().into(),
        );
        meta.insert(
            "author".into(),
            json!({
                "mlflow_user": author,
                "source": if author.is_some() { "version" } else { "none" },
                "airisk_identity": author.as_ref().map(|_| maker.actor().as_str()),
            }),
        );
        meta.insert("description".into(), mv.description.clone().into());
        let mut tags = tag_map(&mv.tags);
        tags.remove(super::client::PROMPT_TEXT_TAG);
        meta.insert("tags".into(), json!(tags));
        meta.insert("delivery_id".into(), delivery_id.into());
        state
            .mlflow()
            .map(Arc::clone)
            .ok_or_else(|| ApiError::Internal("the MLflow integration is not connected".into()))?
            .record(
                state,
                inst,
                correlation,
                "mlflow.prompt.register",
                Outcome::Success,
                &format!("{name}@{n}"),
                None,
                meta,
            )
            .await;
        ensure_prompt_requests(state, inst, correlation, &maker, name, n).await?;
    }
    Ok(json!({
        "status": if registered > 0 { "registered" } else { "already_registered" },
        "prompt": airisk_name,
        "version": wanted,
        "registered": registered,
    }))
}

/// The template text of an MLflow prompt version (its `mlflow.prompt.text` tag).
fn prompt_text(
    mv: &super::client::MlflowModelVersion,
    name: &str,
    n: u32,
) -> Result<String, ApiError> {
    mv.tags
        .iter()
        .find(|t| t.key == super::client::PROMPT_TEXT_TAG)
        .map(|t| t.value.clone())
        .ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "MLflow version {n} of {name} is not a prompt version (no template)"
            ))
        })
}

/// Opens, as `maker`, an approval request for each protected alias of prompt version `n` that
/// has none yet (in any state).
async fn ensure_prompt_requests(
    state: &AppState,
    inst: &Instance,
    correlation: &CorrelationId,
    maker: &Principal,
    name: &str,
    n: u32,
) -> Result<(), ApiError> {
    let airisk_name = inst.prompt_name(name);
    for alias in inst.protected_aliases() {
        let requested = RequestedSubject::PromptLabel {
            name: airisk_name.clone(),
            version: n,
            label: alias.clone(),
        };
        let subject = requested.parse()?;
        let existing = state
            .approvals()
            .list(
                &inst.principal,
                &ApprovalFilter {
                    subject: Some(subject.clone()),
                    ..ApprovalFilter::default()
                },
                Page::first(1),
            )
            .await?;
        if !existing.is_empty() {
            continue;
        }
        state
            .approvals()
            .request_approval(
                maker,
                correlation,
                NewApprovalRequest {
                    subject: requested,
                    justification: format!(
                        "point {alias} of prompt {name} at version {n} (MLflow instance {})",
                        inst.id
                    ),
                    required_approvals: 1,
                    expires_in: None,
                },
            )
            .await?;
    }
    Ok(())
}

async fn check_alias(
    mlflow: &MlflowIntegration,
    state: &AppState,
    inst: &Instance,
    correlation: &CorrelationId,
    envelope: &Envelope,
    delivery_id: &str,
) -> Result<Value, ApiError> {
    let name = text(&envelope.data, "name")?;
    let alias = text(&envelope.data, "alias")?;
    let event_version = envelope.data.get("version").and_then(Value::as_str);
    if !inst.protects(alias) {
        return Ok(json!({"status": "ignored", "reason": "alias is not protected"}));
    }
    let desired = if envelope.entity == "prompt_alias" {
        mlflow
            .prompt_target(state, inst, name, alias)
            .await
            .map_err(mlflow_error)?
    } else {
        let approved = mlflow
            .desired_version(state, inst, name)
            .await
            .map_err(mlflow_error)?;
        inst.target(name, alias, approved.as_ref())
    };
    let current = inst
        .client
        .alias_target(name, alias)
        .await
        .map_err(mlflow_error)?;
    if current == desired {
        return Ok(json!({"status": "consistent", "alias": alias, "version": current}));
    }
    // airisk's own move (its echo arriving after a newer approval): not a bypass, just align.
    let own = envelope.action == "created"
        && event_version.is_some()
        && mlflow.own_set(&inst.id, name, alias).as_deref() == event_version
        && current.as_deref() == event_version;
    if !own {
        mlflow
            .record_bypass(
                state,
                inst,
                correlation,
                name,
                alias,
                current.as_deref(),
                desired.as_deref(),
                json!({
                    "found_by": "webhook",
                    "event": format!("{}.{}", envelope.entity, envelope.action),
                    "event_version": event_version,
                    "event_timestamp": envelope.timestamp,
                    "delivery_id": delivery_id,
                    // MLflow's alias events do not say who moved the alias.
                    "moved_by": Value::Null,
                }),
            )
            .await;
    }
    mlflow
        .move_alias(state, inst, correlation, name, alias, desired.as_deref())
        .await
        .map_err(mlflow_error)?;
    Ok(json!({
        "status": if own { "aligned" } else { "bypass_undone" },
        "alias": alias,
        "found": current,
        "restored": desired,
    }))
}

/// The MLflow instances of the caller's tenant and the decisions pending sync to them
/// (`approval.view`).
#[utoipa::path(
    get, path = "/v1/integrations/mlflow/status", tag = "integrations",
    responses((status = 200, description = "Instances and pending syncs", body = Object), ListErrors),
    security(("bearer" = []))
)]
pub(crate) async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    RbacService::new().check_permission(caller.principal.role(), Action::ApprovalView)?;
    Ok(Json(match state.mlflow() {
        Some(m) => m.status(caller.principal.tenant()),
        None => json!({"instances": []}),
    }))
}

/// Sync decided approvals to the caller's tenant's MLflow instances now, and reconcile every
/// protected alias, repairing drift (`model.register`: admin only).
#[utoipa::path(
    post, path = "/v1/integrations/mlflow/reconcile", tag = "integrations",
    responses((status = 200, description = "What the pass did", body = Object), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn reconcile(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    RbacService::new().check_permission(caller.principal.role(), Action::ModelRegister)?;
    let Some(m) = state.mlflow().cloned() else {
        return Ok(Json(json!({"instances": []})));
    };
    let sync = m.sync_once(&state).await;
    let mut out = Vec::new();
    for inst in m
        .instances()
        .filter(|i| i.tenant() == caller.principal.tenant())
    {
        let r = m.reconcile(&state, inst).await;
        out.push(json!({"instance": inst.id(), "registered": r.registered, "repaired": r.repaired, "errors": r.errors}));
    }
    Ok(Json(json!({"sync": sync, "instances": out})))
}

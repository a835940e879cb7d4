//! Models: every registered version with its status and approvers, the register form (admins),
//! and each model's deployment authorisations as the audit ledger recorded them.

use std::collections::BTreeSet;

use airisk_core::governance::approval_workflow::Subject;
use airisk_core::governance::audit_record::AuditRecord;
use airisk_core::governance::model_registry::{ModelVersion, RegisterModel};
use airisk_core::ports::{AuditQuery, Page};
use airisk_core::security::rbac::Action;
use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::error::ConsoleError;
use super::layout::{self, Column, Nav, Row, csrf_field, data_table, may, pct, status_badge, time};
use super::requests::{ConsoleForm, ConsolePath};
use super::session::{Identity, Signed, see_other};
use crate::extract::Caller;
use crate::routes::audit::require;
use crate::state::AppState;

/// Pages of approval requests read to find the tenant's model names (1,000 each).
const MAX_REQUEST_PAGES: u64 = 20;
/// Deployment records shown per model.
const DEPLOYMENTS_SHOWN: usize = 200;

/// The model names of the caller's tenant. The registry has no "list models" port: every
/// registration opens exactly one approval request naming the model, so the tenant's requests
/// name every model (read through the workflow, with its RBAC check).
async fn model_names(app: &AppState, caller: &Caller) -> Result<BTreeSet<String>, ConsoleError> {
    let mut names = BTreeSet::new();
    for page in 0..MAX_REQUEST_PAGES {
        let found = app
            .approvals()
            .list(
                &caller.principal,
                &Default::default(),
                Page {
                    offset: page * 1000,
                    limit: 1000,
                },
            )
            .await?;
        for r in &found {
            if let Subject::Model { name, .. } = r.subject() {
                names.insert(name.to_string());
            }
        }
        if found.len() < 1000 {
            break;
        }
    }
    Ok(names)
}

fn approvers(m: &ModelVersion) -> Markup {
    html! {
        @if let Some(at) = m.approved_at() {
            @for (i, a) in m.approved_by().iter().enumerate() {
                @if i > 0 { ", " }
                (a.as_str())
            }
            br;
            small { (time(at)) }
        } @else if let Some(by) = m.rejected_by() {
            "rejected by " (by.as_str())
        } @else {
            span class="muted" { "not yet" }
        }
    }
}

/// GET `/console/models`.
pub(crate) async fn index(
    State(app): State<AppState>,
    Signed(id): Signed,
) -> Result<Response, ConsoleError> {
    let caller = id.caller();
    let names = model_names(&app, &caller).await?;
    let mut versions = Vec::new();
    for name in &names {
        versions.extend(app.models().list_versions(&caller.principal, name).await?);
    }
    let content = html! {
        @if versions.is_empty() {
            p class="empty" { "No model is registered in this tenant yet." }
        } @else {
            (data_table(
                "data",
                Some("Registered model versions"),
                &[
                    Column::new("Model"),
                    Column::new("Version"),
                    Column::new("Status"),
                    Column::new("Registered"),
                    Column::new("Approved by"),
                    Column::new("Request"),
                ],
                versions.iter().map(|m| Row::Cells([
                    html! { a href=(format!("/console/models/{}", pct(m.model_name().as_str()))) { (m.model_name().as_str()) } },
                    html! { code { (m.version().as_str()) } },
                    status_badge(m.status().as_str()),
                    html! { (m.registered_by().as_str()) br; small { (time(m.created_at())) } },
                    approvers(m),
                    html! { a href=(format!("/console/requests/{}", m.approval_request_id())) { "approval request" } },
                ])),
            ))
        }
        (register_form(&id))
    };
    Ok(layout::page(&id, Nav::Models, "Models", None, content))
}

fn register_form(id: &Identity) -> Markup {
    html! {
        section aria-labelledby="register" {
            h2 id="register" { "Register a model version" }
            @if may(id, Action::ModelRegister) {
                p class="hint" { "The version starts PENDING with an approval request; someone other than you must approve it before it can be deployed." }
                form method="post" action="/console/models" class="grid-form" {
                    (csrf_field(id))
                    div class="field" {
                        label for="m-name" { "Model name" }
                        input id="m-name" name="name" type="text" required maxlength="128" pattern="[A-Za-z0-9][A-Za-z0-9._\\-]*" autocomplete="off" aria-describedby="m-name-hint";
                        p class="hint" id="m-name-hint" { "Letters, digits, '.', '_' and '-', e.g. credit-scoring." }
                    }
                    div class="field" {
                        label for="m-version" { "Version" }
                        input id="m-version" name="version" type="text" required maxlength="64" autocomplete="off";
                    }
                    div class="field wide" {
                        label for="m-uri" { "Artifact URI" }
                        input id="m-uri" name="artifact_uri" type="text" required maxlength="2048" placeholder="s3://bucket/models/credit-scoring/1.4.0/model.onnx" autocomplete="off";
                    }
                    div class="field wide" {
                        label for="m-checksum" { "Artifact SHA-256 (64 hex digits)" }
                        input id="m-checksum" name="checksum" type="text" required minlength="64" maxlength="71" autocomplete="off" spellcheck="false" class="mono";
                    }
                    div class="field wide" {
                        label for="m-justification" { "Justification (why it should be deployed)" }
                        textarea id="m-justification" name="justification" rows="3" required maxlength="4096" {}
                    }
                    div class="field" {
                        label for="m-quorum" { "Approvals required" }
                        input id="m-quorum" name="required_approvals" type="number" min="1" max="10" value="1" required;
                    }
                    div class="field" {
                        label for="m-expiry" { "Request expires after (hours, empty: never)" }
                        input id="m-expiry" name="expires_in_hours" type="number" min="1" max="8760";
                    }
                    div class="actions wide" {
                        button type="submit" class="primary" { "Register" }
                    }
                }
            } @else {
                p class="notice" { "Only an admin registers models (your role is " (id.principal.role()) ")." }
            }
        }
    }
}

/// The register form.
#[derive(Debug, Deserialize)]
pub(crate) struct RegisterForm {
    name: String,
    version: String,
    artifact_uri: String,
    checksum: String,
    justification: String,
    required_approvals: String,
    #[serde(default)]
    expires_in_hours: String,
}

/// POST `/console/models`: the registry's `register_model`, as the API calls it.
pub(crate) async fn register(
    State(app): State<AppState>,
    Signed(id): Signed,
    ConsoleForm(f): ConsoleForm<RegisterForm>,
) -> Result<Response, ConsoleError> {
    let caller = id.caller();
    let required_approvals = f
        .required_approvals
        .trim()
        .parse::<u32>()
        .map_err(|_| ConsoleError::invalid("approvals required must be a whole number"))?;
    let expires_in_seconds = match f.expires_in_hours.trim() {
        "" => None,
        h => Some(
            h.parse::<i64>()
                .ok()
                .and_then(|h| h.checked_mul(3600))
                .ok_or_else(|| ConsoleError::invalid("expiry must be a whole number of hours"))?,
        ),
    };
    let registered = app
        .models()
        .register_model(
            &caller.principal,
            &caller.correlation,
            RegisterModel {
                name: f.name.trim().to_owned(),
                version: f.version.trim().to_owned(),
                checksum: f.checksum.trim().to_owned(),
                artifact_uri: f.artifact_uri.trim().to_owned(),
                metadata: None,
                justification: f.justification.trim().to_owned(),
                required_approvals: Some(required_approvals),
                expires_in_seconds,
            },
        )
        .await?;
    Ok(see_other(&format!(
        "/console/requests/{}?done=registered",
        registered.request.id()
    )))
}

/// GET `/console/models/{name}`.
pub(crate) async fn detail(
    State(app): State<AppState>,
    Signed(id): Signed,
    ConsolePath(name): ConsolePath<String>,
) -> Result<Response, ConsoleError> {
    let caller = id.caller();
    let versions = app.models().list_versions(&caller.principal, &name).await?;
    if versions.is_empty() {
        return Err(ConsoleError::not_found("model"));
    }
    // Deployment authorisations, granted and denied, as the ledger recorded them (newest first).
    require(&caller, Action::AuditRead)?;
    let entries = app
        .stores()
        .audit
        .search(
            caller.principal.tenant(),
            &AuditQuery {
                action: Some(Action::ModelAuthorizeDeployment.as_str().to_owned()),
                resource_type: Some("model".to_owned()),
                newest_first: true,
                ..AuditQuery::default()
            },
            10_000,
        )
        .await?;
    let prefix = format!("{name}@");
    let deployments: Vec<(u64, AuditRecord)> = entries
        .iter()
        .filter_map(|e| {
            AuditRecord::from_leaf_bytes(&e.leaf)
                .ok()
                .map(|r| (e.seq, r))
        })
        .filter(|(_, r)| r.event().resource_id().starts_with(&prefix))
        .take(DEPLOYMENTS_SHOWN)
        .collect();
    let content = html! {
        section aria-labelledby="versions" {
            h2 id="versions" { "Versions" }
            (data_table(
                "data",
                None,
                &[
                    Column::new("Version"),
                    Column::new("Status"),
                    Column::labelled("Checksum (SHA-256)", "Checksum"),
                    Column::new("Artifact"),
                    Column::new("Registered"),
                    Column::new("Approved by"),
                ],
                versions.iter().map(|m| Row::Cells([
                    html! { a href=(format!("/console/requests/{}", m.approval_request_id())) { code { (m.version().as_str()) } } },
                    status_badge(m.status().as_str()),
                    html! { code class="wrap checksum" { (m.checksum().to_hex()) } },
                    html! { code class="wrap" { (m.artifact_uri()) } },
                    html! { (m.registered_by().as_str()) br; small { (time(m.created_at())) } },
                    approvers(m),
                ])),
            ))
        }
        section aria-labelledby="deployments" {
            h2 id="deployments" { "Deployment authorisations" }
            p class="hint" { "From the audit ledger: every request to deploy a version, authorised or denied, with the checksum presented." }
            @if deployments.is_empty() {
                p class="empty" { "No deployment has been requested for this model." }
            } @else {
                (data_table(
                    "data",
                    None,
                    &[
                        Column::new("When"),
                        Column::new("Version"),
                        Column::new("Outcome"),
                        Column::new("By"),
                        Column::new("Why"),
                        Column::new("Entry"),
                    ],
                    deployments.iter().map(|(seq, r)| {
                        let e = r.event();
                        Row::Cells([
                            time(r.recorded_at()),
                            html! { code { (e.resource_id().strip_prefix(&prefix).unwrap_or(e.resource_id())) } },
                            status_badge(if e.outcome().as_str() == "success" { "authorised" } else { "denied" }),
                            html! { (e.actor().as_str()) },
                            html! { (e.reason().unwrap_or("")) },
                            html! { a href=(format!("/console/audit/{seq}")) { "#" (seq) } },
                        ])
                    }),
                ))
            }
        }
    };
    Ok(layout::page(
        &id,
        Nav::Models,
        &format!("Model {name}"),
        None,
        content,
    ))
}

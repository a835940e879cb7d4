//! Prompts: versions, labels, the label-move history, a side-by-side diff of any two versions,
//! and the form that registers a new prompt (analysts and admins).

use std::collections::BTreeSet;

use airisk_core::governance::audit_record::{AuditRecord, Outcome};
use airisk_core::ports::AuditQuery;
use airisk_core::security::rbac::Action;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::error::ConsoleError;
use super::layout::{self, Column, Nav, Row, csrf_field, data_table, may, pct, time, visible};
use super::requests::{ConsoleForm, side_by_side};
use super::session::{Identity, Signed, see_other};
use crate::routes::audit::require;
use crate::state::AppState;

/// Most prompt registrations read from the ledger to list the tenant's prompts.
const MAX_PROMPTS: usize = 10_000;

/// GET `/console/prompts`.
pub(crate) async fn index(
    State(app): State<AppState>,
    Signed(id): Signed,
) -> Result<Response, ConsoleError> {
    let caller = id.caller();
    // The registry has no "list prompts" port: every prompt's creation is a successful
    // `prompt.register` record in the tenant's ledger, read with the audit's RBAC check.
    require(&caller, Action::AuditRead)?;
    let registered = app
        .stores()
        .audit
        .search(
            caller.principal.tenant(),
            &AuditQuery {
                action: Some(Action::PromptRegister.as_str().to_owned()),
                outcome: Some(Outcome::Success),
                ..AuditQuery::default()
            },
            MAX_PROMPTS,
        )
        .await?;
    let names: BTreeSet<String> = registered
        .iter()
        .filter_map(|e| AuditRecord::from_leaf_bytes(&e.leaf).ok())
        // `name@1`: the version is the last `@` part (a name may hold `@` itself).
        .filter_map(|r| {
            r.event()
                .resource_id()
                .rsplit_once('@')
                .map(|(name, _)| name.to_owned())
        })
        .collect();
    let mut rows = Vec::new();
    for name in &names {
        let h = app.prompts().history(&caller.principal, name).await?;
        rows.push((name, h));
    }
    let content = html! {
        @if rows.is_empty() {
            p class="empty" { "No prompt is registered in this tenant yet." }
        } @else {
            (data_table(
                "data",
                Some("Prompts"),
                &[
                    Column::new("Prompt"),
                    Column::new("Versions"),
                    Column::new("Labels"),
                    Column::new("Latest version"),
                ],
                rows.iter().map(|(name, h)| Row::Cells([
                    html! { a href=(format!("/console/prompts/view?name={}", pct(name))) { (name) } },
                    html! { (h.versions.len()) },
                    html! {
                        @if h.labels.is_empty() { span class="muted" { "none" } }
                        @for (label, v) in &h.labels {
                            span class="badge" { (label) " → v" (v) } " "
                        }
                    },
                    html! {
                        @if let Some(v) = h.versions.last() {
                            "v" (v.version()) " by " (v.author().as_str()) br;
                            small { (time(v.created_at())) }
                        }
                    },
                ])),
            ))
        }
        (register_form(&id))
    };
    Ok(layout::page(&id, Nav::Prompts, "Prompts", None, content))
}

fn register_form(id: &Identity) -> Markup {
    html! {
        section aria-labelledby="register" {
            h2 id="register" { "Register a prompt" }
            @if may(id, Action::PromptRegister) {
                p class="hint" { "It becomes version 1. Moving a label such as production to it needs an approved request. Invisible characters (tag characters, bidirectional controls, zero-width characters) are refused, so that approvers see everything the prompt holds." }
                form method="post" action="/console/prompts" class="grid-form" {
                    (csrf_field(id))
                    div class="field" {
                        label for="p-name" { "Prompt name" }
                        input id="p-name" name="name" type="text" required maxlength="128" pattern="[A-Za-z0-9][A-Za-z0-9._/\\-]*" autocomplete="off" aria-describedby="p-name-hint";
                        p class="hint" id="p-name-hint" { "Letters, digits, '.', '_', '-' and '/', e.g. kyc/summary." }
                    }
                    div class="field wide" {
                        label for="p-template" { "Template" }
                        textarea id="p-template" name="template" rows="8" required class="mono" {}
                    }
                    div class="field wide" {
                        label for="p-reason" { "Change reason" }
                        textarea id="p-reason" name="change_reason" rows="2" required maxlength="4096" {}
                    }
                    div class="actions wide" {
                        button type="submit" class="primary" { "Register prompt" }
                    }
                }
            } @else {
                p class="notice" { "Only analysts and admins register prompts (your role is " (id.principal.role()) ")." }
            }
        }
    }
}

/// The register form.
#[derive(Debug, Deserialize)]
pub(crate) struct RegisterForm {
    name: String,
    template: String,
    change_reason: String,
}

/// A textarea's lines arrive as CR LF (HTML form encoding); the registry takes LF line breaks
/// and refuses every CR, so convert them back here.
fn lf(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// POST `/console/prompts`: the registry's `register_prompt`, as the API calls it. Refusals
/// (hidden characters, an existing name, …) are the API's, shown as an error page.
pub(crate) async fn register(
    State(app): State<AppState>,
    Signed(id): Signed,
    ConsoleForm(f): ConsoleForm<RegisterForm>,
) -> Result<Response, ConsoleError> {
    let caller = id.caller();
    let name = f.name.trim();
    app.prompts()
        .register_prompt(
            &caller.principal,
            &caller.correlation,
            name,
            &lf(&f.template),
            lf(&f.change_reason).trim(),
        )
        .await?;
    Ok(see_other(&format!(
        "/console/prompts/view?name={}",
        pct(name)
    )))
}

/// The prompt page's query.
#[derive(Debug, Deserialize)]
pub(crate) struct PromptQuery {
    name: String,
    from: Option<u32>,
    to: Option<u32>,
}

/// GET `/console/prompts/view?name=…[&from=…&to=…]`.
pub(crate) async fn detail(
    State(app): State<AppState>,
    Signed(id): Signed,
    query: Result<Query<PromptQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ConsoleError> {
    let Ok(Query(q)) = query else {
        return Err(ConsoleError::invalid(
            "name the prompt (and, to compare, two version numbers)",
        ));
    };
    let caller = id.caller();
    let p = &caller.principal;
    let h = app.prompts().history(p, &q.name).await?;
    let latest = h.versions.last().map_or(1, |v| v.version());
    let to = q.to.unwrap_or(latest);
    let from = q.from.unwrap_or_else(|| to.saturating_sub(1).max(1));
    let diff = app.prompts().diff(p, &q.name, from, to).await?;
    let content = html! {
        section aria-labelledby="labels" {
            h2 id="labels" { "Labels" }
            @if h.labels.is_empty() {
                p class="muted" { "No label yet. Moving a label (such as production) needs an approved request." }
            } @else {
                ul class="inline-list" {
                    @for (label, v) in &h.labels {
                        li { code { (label) } " → version " (v) }
                    }
                }
            }
        }
        section aria-labelledby="diff" {
            h2 id="diff" { "Compare two versions" }
            form method="get" action="/console/prompts/view" class="inline-form" {
                input type="hidden" name="name" value=(q.name);
                div class="field" {
                    label for="from" { "From version" }
                    select id="from" name="from" {
                        @for v in &h.versions {
                            option value=(v.version()) selected[v.version() == from] { (v.version()) }
                        }
                    }
                }
                div class="field" {
                    label for="to" { "To version" }
                    select id="to" name="to" {
                        @for v in &h.versions {
                            option value=(v.version()) selected[v.version() == to] { (v.version()) }
                        }
                    }
                }
                div class="actions" { button type="submit" { "Compare" } }
            }
            (side_by_side(&diff, &format!("Version {from}"), &format!("Version {to}")))
        }
        section aria-labelledby="versions" {
            h2 id="versions" { "Versions" }
            (data_table(
                "data",
                None,
                &[
                    Column::new("Version"),
                    Column::new("Author"),
                    Column::new("Reason"),
                    Column::new("Template"),
                ],
                h.versions.iter().rev().map(|v| Row::Cells([
                    html! {
                        "v" (v.version())
                        @for (label, lv) in &h.labels {
                            @if *lv == v.version() { " " span class="badge" { (label) } }
                        }
                        br; small { (time(v.created_at())) }
                    },
                    html! { (v.author().as_str()) },
                    visible(v.change_reason()),
                    html! {
                        details {
                            summary { "Show template" }
                            @if v.is_erased() {
                                p class="small" { "Erased: this tenant's data keys were shredded." }
                            } @else {
                                pre class="template" { (visible(v.template())) }
                            }
                            p class="small" { "SHA-256 " code class="wrap" { (v.template_sha256().to_hex()) } }
                        }
                    },
                ])),
            ))
        }
        section aria-labelledby="moves" {
            h2 id="moves" { "Label-move history" }
            @if h.label_moves.is_empty() {
                p class="muted" { "No label has been moved." }
            } @else {
                (data_table(
                    "data",
                    None,
                    &[
                        Column::new("When"),
                        Column::new("Label"),
                        Column::new("Move"),
                        Column::new("By"),
                        Column::new("Approved by request"),
                    ],
                    h.label_moves.iter().rev().map(|m| Row::Cells([
                        time(m.moved_at),
                        html! { code { (m.label) } },
                        html! {
                            (m.from_version.map_or_else(|| "none".to_owned(), |v| format!("v{v}")))
                            " → v" (m.to_version)
                        },
                        html! { (m.moved_by.as_str()) },
                        html! { a href=(format!("/console/requests/{}", m.approval_request_id)) { "request" } },
                    ])),
                ))
            }
        }
    };
    Ok(layout::page(
        &id,
        Nav::Prompts,
        &format!("Prompt {}", q.name),
        None,
        content,
    ))
}

//! One approval request: what is asked (the model's artifact and checksum, or the prompt version
//! against the version the label points to now), who asked and why, the approvals so far, and
//! the approve and reject forms.

use airisk_core::governance::approval_workflow::{ApprovalRequest, ApprovalStatus, Subject};
use airisk_core::governance::prompt_registry::{DiffLine, PromptSelector, diff_lines};
use airisk_core::security::rbac::Action;
use airisk_core::security::tenant_context::PrincipalKind;
use axum::Form;
use axum::extract::{FromRequest, Query, Request, State};
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::ConsoleError;
use super::layout::{
    self, Column, Flash, Nav, Row, age, csrf_field, data_table, expiry, may, pct, status_badge,
    time, visible,
};
use super::session::{Identity, Signed, see_other};
use crate::routes::approvals::{Verdict, parse_id};
use crate::state::AppState;

/// A URL-encoded form; a malformed one is a 422 page.
#[derive(Debug)]
pub(crate) struct ConsoleForm<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for ConsoleForm<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        Form::<T>::from_request(request, state)
            .await
            .map(|Form(t)| ConsoleForm(t))
            .map_err(|e| {
                ConsoleError::invalid(format!("the form is incomplete: {}", e.body_text()))
            })
    }
}

/// Path parameters; a malformed one is a 404 page (no such page).
#[derive(Debug)]
pub(crate) struct ConsolePath<T>(pub(crate) T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ConsolePath<T> {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| ConsolePath(t))
            .map_err(|_| ConsoleError::not_found("page"))
    }
}

/// What a subject is, in words.
pub(crate) fn subject_label(subject: &Subject) -> Markup {
    match subject {
        Subject::Model { name, version } => html! {
            "Deploy model " strong { (name) } " version " code { (version) }
        },
        Subject::PromptLabel {
            name,
            version,
            label,
        } => html! {
            "Move label " code { (label) } " of prompt " strong { (name) } " to version " (version)
        },
    }
}

/// Why the signed-in person may not decide `r` now; `None`: they may. The services enforce
/// every one of these rules themselves; this only decides whether to offer the forms.
pub(crate) fn why_not(id: &Identity, r: &ApprovalRequest, now: DateTime<Utc>) -> Option<String> {
    let p = &id.principal;
    let status = r.status_at(now);
    if status != ApprovalStatus::Pending {
        return Some(format!(
            "This request is {status}: no further decision is possible."
        ));
    }
    if !may(id, Action::ApprovalApprove) {
        return Some(format!(
            "Your role ({}) cannot approve or reject requests.",
            p.role()
        ));
    }
    if p.kind() != PrincipalKind::Human {
        return Some("A service principal never approves or rejects.".to_owned());
    }
    if r.requested_by().same_identity(p.actor()) {
        return Some("You asked for this: another approver must decide it (four eyes).".to_owned());
    }
    if r.approvals()
        .iter()
        .any(|a| a.approver.same_identity(p.actor()))
    {
        return Some(format!(
            "You have approved this; it needs {} more approval(s) from others.",
            r.required_approvals()
                .saturating_sub(u32::try_from(r.approvals().len()).unwrap_or(u32::MAX))
        ));
    }
    None
}

/// The detail page's query: the outcome of the POST that redirected here.
#[derive(Debug, Deserialize)]
pub(crate) struct DetailQuery {
    done: Option<String>,
}

/// GET `/console/requests/{id}`.
pub(crate) async fn page(
    State(app): State<AppState>,
    Signed(id): Signed,
    ConsolePath(request_id): ConsolePath<String>,
    Query(q): Query<DetailQuery>,
) -> Result<Response, ConsoleError> {
    let caller = id.caller();
    let p = &caller.principal;
    let r = app.approvals().get(p, parse_id(&request_id)).await?;
    let now = app.clock().now();
    let status = r.status_at(now);
    let what = match r.subject() {
        Subject::Model { name, version } => {
            let (name, version) = (name.as_str(), version.as_str());
            let model = app.models().get_model(p, name, version).await?;
            html! {
                section aria-labelledby="what" {
                    h2 id="what" { "What is asked" }
                    dl class="facts" {
                        dt { "Model" } dd { a href=(format!("/console/models/{}", pct(name))) { (name) } }
                        dt { "Version" } dd { code { (version) } }
                        dt { "Artifact URI" } dd { code class="wrap" { (visible(model.artifact_uri())) } }
                        dt { "Registered checksum (SHA-256)" } dd { code class="wrap checksum" { (model.checksum().to_hex()) } }
                        dt { "Model status" } dd { (status_badge(model.status().as_str())) }
                        dt { "Registered" } dd { "by " (model.registered_by().as_str()) ", " (time(model.created_at())) }
                        @if !model.metadata().is_empty() {
                            dt { "Metadata" }
                            dd { pre class="json" { (visible(&serde_json::to_string_pretty(model.metadata()).unwrap_or_default())) } }
                        }
                        @if !model.sensitive_metadata().is_empty() {
                            dt { "Sensitive metadata (sealed at rest)" }
                            dd { pre class="json" { (visible(&serde_json::to_string_pretty(model.sensitive_metadata().expose()).unwrap_or_default())) } }
                        }
                        @if !model.erased_metadata().is_empty() {
                            dt { "Erased metadata" }
                            dd { "Erased (the tenant's keys were shredded): " (visible(&model.erased_metadata().join(", "))) }
                        }
                    }
                    p class="hint" { "A deployment is authorised only for an approved version whose artifact hashes to exactly this checksum." }
                }
            }
        }
        Subject::PromptLabel {
            name,
            version,
            label,
        } => {
            let (name, label) = (name.as_str(), label.as_str());
            let history = app.prompts().history(p, name).await?;
            let current = history
                .labels
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, v)| *v);
            let requested = app
                .prompts()
                .get_prompt(p, name, &PromptSelector::Version(*version))
                .await?;
            let (lines, left_title) = match current {
                Some(c) if c != *version => (
                    app.prompts().diff(p, name, c, *version).await?,
                    format!("Version {c} (where {label} points now)"),
                ),
                Some(c) => (
                    diff_lines(requested.template(), requested.template()),
                    format!("Version {c} (where {label} already points)"),
                ),
                None => (
                    diff_lines("", requested.template()),
                    format!("Nothing ({label} does not exist yet)"),
                ),
            };
            html! {
                section aria-labelledby="what" {
                    h2 id="what" { "What is asked" }
                    dl class="facts" {
                        dt { "Prompt" } dd { a href=(format!("/console/prompts/view?name={}", pct(name))) { (name) } }
                        dt { "Label" } dd { code { (label) } }
                        dt { "Now points to" } dd { (current.map_or_else(|| "nothing yet".to_owned(), |c| format!("version {c}"))) }
                        dt { "Would point to" } dd { "version " (version) ", by " (requested.author().as_str()) ", " (time(requested.created_at())) }
                        dt { "Template SHA-256" } dd { code class="wrap checksum" { (requested.template_sha256().to_hex()) } }
                        dt { "Change reason" } dd { (visible(requested.change_reason())) }
                    }
                    h3 { "Side by side" }
                    (side_by_side(&lines, &left_title, &format!("Version {version} (requested)")))
                }
            }
        }
    };
    let why = why_not(&id, &r, now);
    let href = format!("/console/requests/{}", r.id());
    let flash = q.done.as_deref().and_then(|d| match d {
        "approved" => Some(Flash {
            ok: true,
            text: format!("Your approval was recorded. The request is now {status}."),
        }),
        "rejected" => Some(Flash {
            ok: true,
            text: "Your rejection was recorded.".to_owned(),
        }),
        "registered" => Some(Flash {
            ok: true,
            text: "Registered. The model stays PENDING until someone else approves this request."
                .to_owned(),
        }),
        _ => None,
    });
    let content = html! {
        p class="lede" {
            (subject_label(r.subject())) " " (status_badge(status.as_str()))
        }
        (what)
        section aria-labelledby="who" {
            h2 id="who" { "Who asked, and why" }
            dl class="facts" {
                dt { "Requested by" } dd {
                    (r.requested_by().as_str())
                    @if r.requested_by().same_identity(id.principal.actor()) { " " span class="badge" { "you" } }
                }
                dt { "Opened" } dd { (time(r.created_at())) " (" (age(now, r.created_at())) " ago)" }
                dt { "Expires" } dd { (expiry(now, r.expires_at())) }
                dt { "Justification" } dd class="justification" { (visible(r.justification())) }
                dt { "Request id" } dd { code { (r.id()) } }
            }
        }
        section aria-labelledby="approvals" {
            h2 id="approvals" { "Approvals: " (r.approvals().len()) " of " (r.required_approvals()) " required" }
            @if r.approvals().is_empty() {
                p class="muted" { "No approval yet." }
            } @else {
                (data_table(
                    "data",
                    None,
                    &[Column::new("Approver"), Column::new("When"), Column::new("Reason")],
                    r.approvals().iter().map(|a| Row::Cells([
                        html! { (a.approver.as_str()) },
                        time(a.at),
                        visible(&a.reason),
                    ])),
                ))
            }
            @if let Some(d) = r.rejection() {
                p { (status_badge("REJECTED")) " by " (d.by.as_str()) ", " (time(d.at)) ": " (visible(&d.reason)) }
            }
            @if let Some(d) = r.cancellation() {
                p { (status_badge("CANCELLED")) " by " (d.by.as_str()) ", " (time(d.at)) ": " (visible(&d.reason)) }
            }
            p { a href=(format!("/console/audit?resource_id={}", r.id())) { "This request's audit records" } }
        }
        section aria-labelledby="decide" {
            h2 id="decide" { "Decision" }
            @match &why {
                Some(why) => { p class="notice" id="no-decision" { (why) } }
                None => {
                    div class="decide" {
                        form method="post" action=(format!("{href}/approve")) class="stack" {
                            (csrf_field(&id))
                            div class="field" {
                                label for="approve-reason" { "Reason for approving (required)" }
                                textarea id="approve-reason" name="reason" rows="3" required maxlength="4096" {}
                            }
                            button type="submit" class="primary" { "Approve" }
                        }
                        form method="post" action=(format!("{href}/reject")) class="stack" {
                            (csrf_field(&id))
                            div class="field" {
                                label for="reject-reason" { "Reason for rejecting (required)" }
                                textarea id="reject-reason" name="reason" rows="3" required maxlength="4096" {}
                            }
                            button type="submit" class="danger" { "Reject" }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        &id,
        Nav::Queue,
        "Approval request",
        flash,
        content,
    ))
}

/// A two-column diff: removed lines on the left, added on the right, unchanged on both.
pub(crate) fn side_by_side(lines: &[DiffLine], left_title: &str, right_title: &str) -> Markup {
    type Side<'a> = Option<(usize, &'a str, bool)>;
    struct Pair<'a> {
        left: Side<'a>,
        right: Side<'a>,
    }
    /// Pairs a run of removed lines with the run of added lines that replaced it.
    fn flush<'a>(
        rows: &mut Vec<Pair<'a>>,
        removed: &mut Vec<&'a str>,
        added: &mut Vec<&'a str>,
        ln: &mut usize,
        rn: &mut usize,
    ) {
        for i in 0..removed.len().max(added.len()) {
            let left = removed.get(i).map(|l| {
                *ln += 1;
                (*ln, *l, true)
            });
            let right = added.get(i).map(|l| {
                *rn += 1;
                (*rn, *l, true)
            });
            rows.push(Pair { left, right });
        }
        removed.clear();
        added.clear();
    }
    let mut rows: Vec<Pair<'_>> = Vec::new();
    let (mut ln, mut rn) = (0usize, 0usize);
    let mut removed: Vec<&str> = Vec::new();
    let mut added: Vec<&str> = Vec::new();
    for line in lines {
        match line {
            DiffLine::Removed(l) => {
                if !added.is_empty() {
                    flush(&mut rows, &mut removed, &mut added, &mut ln, &mut rn);
                }
                removed.push(l);
            }
            DiffLine::Added(l) => added.push(l),
            DiffLine::Same(l) => {
                flush(&mut rows, &mut removed, &mut added, &mut ln, &mut rn);
                ln += 1;
                rn += 1;
                rows.push(Pair {
                    left: Some((ln, l, false)),
                    right: Some((rn, l, false)),
                });
            }
        }
    }
    flush(&mut rows, &mut removed, &mut added, &mut ln, &mut rn);
    let changed = lines
        .iter()
        .filter(|l| !matches!(l, DiffLine::Same(_)))
        .count();
    let cell = |side: Side<'_>, kind: &str| match side {
        Some((n, text, true)) => html! {
            td class="ln" { (n) }
            td class=(format!("code {kind}")) {
                span class="visually-hidden" { (if kind == "del" { "removed: " } else { "added: " }) }
                (visible(text))
            }
        },
        Some((n, text, false)) => {
            html! { td class="ln" { (n) } td class="code" { (visible(text)) } }
        }
        None => html! { td class="ln" {} td class="code empty" {} },
    };
    html! {
        p class="muted small" { (changed) " changed line(s). Removed lines are marked on the left, added lines on the right." }
        div class="diff-wrap" {
            (data_table(
                "diff",
                Some(&format!("{left_title} compared with {right_title}")),
                &[
                    Column::group(left_title, &["ln", "code"]),
                    Column::group(right_title, &["ln", "code"]),
                ],
                rows.iter().map(|row| Row::Cells([cell(row.left, "del"), cell(row.right, "ins")])),
            ))
        }
    }
}

/// The approve and reject forms.
#[derive(Debug, Deserialize)]
pub(crate) struct DecisionForm {
    reason: String,
}

/// The body of the console's decision routes: the API's verdict on the request (with the reason
/// as typed, trimmed), then back to its page saying what was done.
async fn decide(
    app: &AppState,
    id: &Identity,
    request_id: &str,
    reason: &str,
    verdict: Verdict,
) -> Result<Response, ConsoleError> {
    let request = verdict
        .apply(app, &id.caller(), request_id, reason.trim())
        .await?;
    let done = match verdict {
        Verdict::Approve => "approved",
        Verdict::Reject => "rejected",
        Verdict::Cancel => "cancelled",
    };
    Ok(see_other(&format!(
        "/console/requests/{}?done={done}",
        request.id()
    )))
}

/// POST `/console/requests/{id}/approve`: the approval workflow's `approve`, as the API calls it.
pub(crate) async fn approve(
    State(app): State<AppState>,
    Signed(id): Signed,
    ConsolePath(request_id): ConsolePath<String>,
    ConsoleForm(f): ConsoleForm<DecisionForm>,
) -> Result<Response, ConsoleError> {
    decide(&app, &id, &request_id, &f.reason, Verdict::Approve).await
}

/// POST `/console/requests/{id}/reject`.
pub(crate) async fn reject(
    State(app): State<AppState>,
    Signed(id): Signed,
    ConsolePath(request_id): ConsolePath<String>,
    ConsoleForm(f): ConsoleForm<DecisionForm>,
) -> Result<Response, ConsoleError> {
    decide(&app, &id, &request_id, &f.reason, Verdict::Reject).await
}

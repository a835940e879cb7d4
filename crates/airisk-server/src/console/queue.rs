//! The approval queue: the tenant's pending requests, oldest first.

use airisk_core::governance::approval_workflow::{ApprovalRequest, ApprovalStatus};
use airisk_core::ports::{ApprovalFilter, Page};
use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::error::ConsoleError;
use super::layout::{self, Column, Flash, Nav, Row, age, csrf_field, data_table, expiry};
use super::requests::{subject_label, why_not};
use super::session::{MaybeSigned, Signed, see_other};
use crate::state::AppState;

/// Most requests the queue reads (the store's page limit).
const QUEUE_LIMIT: u32 = 1000;

/// GET `/console`: the queue, or the sign-in page.
pub(crate) async fn home(MaybeSigned(identity, _): MaybeSigned) -> Response {
    if identity.is_some() {
        see_other("/console/queue")
    } else {
        see_other("/console/sign-in")
    }
}

/// The queue's query: which view.
#[derive(Debug, Deserialize)]
pub(crate) struct QueueQuery {
    /// `mine`: only what the signed-in person may decide.
    show: Option<String>,
}

/// GET `/console/queue`.
pub(crate) async fn page(
    State(app): State<AppState>,
    Signed(id): Signed,
    Query(q): Query<QueueQuery>,
) -> Result<Response, ConsoleError> {
    let caller = id.caller();
    let now = app.clock().now();
    let pending: Vec<ApprovalRequest> = app
        .approvals()
        .list(
            &caller.principal,
            &ApprovalFilter {
                status: Some(ApprovalStatus::Pending),
                ..ApprovalFilter::default()
            },
            Page::first(QUEUE_LIMIT),
        )
        .await?;
    let only_mine = q.show.as_deref() == Some("mine");
    let rows: Vec<(&ApprovalRequest, Option<String>)> = pending
        .iter()
        .map(|r| (r, why_not(&id, r, now)))
        .filter(|(_, why)| !only_mine || why.is_none())
        .collect();
    let decidable = pending
        .iter()
        .filter(|r| why_not(&id, r, now).is_none())
        .count();
    let content = html! {
        p class="lede" {
            (pending.len()) " pending in tenant " strong { (id.principal.tenant().as_str()) } ", oldest first. "
            (decidable) " awaiting your decision."
        }
        nav class="tabs" aria-label="Queue views" {
            a href="/console/queue" aria-current=[(!only_mine).then_some("page")] { "All pending" }
            a href="/console/queue?show=mine" aria-current=[only_mine.then_some("page")] { "Awaiting my decision" }
        }
        @if rows.is_empty() {
            p class="empty" { "Nothing is waiting. New requests appear here when a model is registered or a prompt label move is requested." }
        } @else {
            (data_table(
                "data queue",
                Some("Pending approval requests, oldest first"),
                &[
                    Column::new("Request"),
                    Column::new("Requested by"),
                    Column::new("Age"),
                    Column::new("Expires"),
                    Column::new("Approvals"),
                    Column::new("Decision"),
                ],
                rows.iter().map(|(r, why)| {
                    let href = format!("/console/requests/{}", r.id());
                    Row::Request(r.id(), [
                        html! {
                            a href=(href) class="subject" { (subject_label(r.subject())) }
                            p class="justification" { (r.justification()) }
                        },
                        html! {
                            (r.requested_by().as_str())
                            @if r.requested_by().same_identity(id.principal.actor()) {
                                " " span class="badge" { "you" }
                            }
                        },
                        html! { (age(now, r.created_at())) },
                        expiry(now, r.expires_at()),
                        html! { (r.approvals().len()) " of " (r.required_approvals()) },
                        html! {
                            @match why {
                                None => {
                                    form method="post" action=(format!("{href}/approve")) class="quick-approve" {
                                        (csrf_field(&id))
                                        input type="hidden" name="from" value="queue";
                                        label for=(format!("reason-{}", r.id())) class="visually-hidden" { "Reason for approving " (r.subject().resource_id()) }
                                        input type="text" id=(format!("reason-{}", r.id())) name="reason" required maxlength="4096" placeholder="Reason (required)";
                                        button type="submit" class="primary" { "Approve" }
                                    }
                                    a href=(href) { "Review, or reject…" }
                                }
                                Some(why) => {
                                    p class="muted small" { (why) }
                                    a href=(href) { "View" }
                                }
                            }
                        },
                    ])
                }),
            ))
        }
    };
    Ok(layout::page(
        &id,
        Nav::Queue,
        "Approval queue",
        None::<Flash>,
        content,
    ))
}

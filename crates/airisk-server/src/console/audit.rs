//! The audit ledger: a searchable, paginated view, each entry's JSON and inclusion proof, and the
//! ledger status banner (the tenant's whole ledger recomputed by `AuditLogger::verify`).

use std::sync::Arc;

use airisk_core::governance::audit_record::{AuditRecord, Outcome, RecordOrigin};
use airisk_core::ledger::{verify_checkpoint, verify_inclusion};
use airisk_core::ports::{AuditQuery, StoredEntry};
use airisk_core::security::rbac::Action;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::Console;
use super::error::ConsoleError;
use super::layout::{self, Column, Nav, Row, csrf_field, data_table, pct, status_badge, time};
use super::requests::{ConsoleForm, ConsolePath};
use super::session::Signed;
use crate::extract::Caller;
use crate::routes::audit::{check_kept_checkpoint, require};
use crate::state::AppState;

/// Entries per page of the audit view.
const PAGE_SIZE: usize = 50;

/// What the banner says: the outcome of recomputing the tenant's ledger.
#[derive(Debug, Clone)]
pub(crate) struct LedgerStatus {
    /// Every leaf, root and checkpoint signature checked out.
    intact: bool,
    /// Entries read.
    entries: u64,
    /// The first bad entry, where one can be named.
    first_bad: Option<u64>,
    /// What is wrong.
    problem: Option<String>,
    /// The latest signed checkpoint: its size and when it was signed.
    checkpoint: Option<(u64, DateTime<Utc>)>,
    /// The key checkpoints are verified with: `name+keyid`.
    key: String,
    /// When this was computed.
    checked_at: DateTime<Utc>,
}

/// Verifies the caller's tenant's ledger (`audit.verify`, as the API's `/v1/audit/verify`), or
/// reuses a result a few seconds old.
pub(crate) async fn ledger_status(
    app: &AppState,
    console: &Console,
    caller: &Caller,
) -> Result<Arc<LedgerStatus>, ConsoleError> {
    require(caller, Action::AuditVerify)?;
    let tenant = caller.principal.tenant();
    if let Some(cached) = console.cached_status(tenant) {
        return Ok(cached);
    }
    let verifier = app.ledger_verifier();
    let report = app
        .audit()
        .verify(tenant, Some(verifier), None, |_, _| {})
        .await?;
    let checkpoint = app
        .stores()
        .audit
        .latest_checkpoint(tenant)
        .await?
        .map(|c| (c.size, c.signed_at));
    let status = Arc::new(LedgerStatus {
        intact: report.is_intact(),
        entries: report.entries,
        first_bad: report.problem.as_ref().and_then(|p| p.seq()),
        problem: report.problem.as_ref().map(ToString::to_string),
        checkpoint,
        key: format!("{}+{}", verifier.name(), verifier.key_id()),
        checked_at: app.clock().now(),
    });
    console.cache_status(tenant, status.clone());
    Ok(status)
}

/// The green or red banner.
pub(crate) fn banner(s: &LedgerStatus) -> Markup {
    if s.intact {
        html! {
            div class="banner banner-ok" role="status" id="ledger-status" data-intact="true" {
                p {
                    strong { "✓ Ledger verified. " }
                    @match s.checkpoint {
                        Some((size, signed_at)) => {
                            "Verified up to checkpoint " strong { (size) } ", signed by key "
                            code { (s.key) } " at " (time(signed_at)) ". "
                            @if s.entries > size {
                                (s.entries - size) " newer entries are intact and await the next checkpoint. "
                            }
                        }
                        None => {
                            "All " (s.entries) " entries recompute; no checkpoint has been signed yet (key "
                            code { (s.key) } "). "
                        }
                    }
                }
                p class="small" { "All " (s.entries) " entries were recomputed from storage at " (time(s.checked_at)) "." }
            }
        }
    } else {
        html! {
            div class="banner banner-bad" role="alert" id="ledger-status" data-intact="false" {
                p {
                    strong { "✗ Ledger verification FAILED" }
                    @if let Some(seq) = s.first_bad {
                        " at entry " a href=(format!("/console/audit/{seq}")) { strong { "#" (seq) } }
                    }
                    ". "
                    (s.problem.clone().unwrap_or_default())
                }
                p class="small" {
                    "Checked " (s.entries) " entries at " (time(s.checked_at)) " against key " code { (s.key) }
                    ". Do not rely on records from this point on; alert your operator and auditors."
                }
            }
        }
    }
}

/// The search form's fields (all optional; each narrows).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    resource_id: String,
    #[serde(default)]
    correlation_id: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    order: String,
    cursor: Option<u64>,
}

impl SearchQuery {
    /// The query string of these filters (without the cursor).
    fn filters(&self) -> String {
        [
            ("actor", &self.actor),
            ("action", &self.action),
            ("resource_type", &self.resource_type),
            ("resource_id", &self.resource_id),
            ("correlation_id", &self.correlation_id),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("to", &self.to),
            ("order", &self.order),
        ]
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", pct(v.trim())))
        .collect::<Vec<_>>()
        .join("&")
    }
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// RFC 3339, or the `YYYY-MM-DDTHH:MM[:SS]` of a `datetime-local` field read as UTC.
fn parse_time(field: &str, s: &str) -> Result<Option<DateTime<Utc>>, ConsoleError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(Some(t.and_utc()));
        }
    }
    Err(ConsoleError::invalid(format!(
        "{field}: give a UTC time as 2025-01-31T14:00 or RFC 3339"
    )))
}

fn decode(e: &StoredEntry) -> Option<AuditRecord> {
    AuditRecord::from_leaf_bytes(&e.leaf).ok()
}

/// GET `/console/audit`.
pub(crate) async fn search(
    State(app): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    Signed(id): Signed,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ConsoleError> {
    let q = query.map(|Query(q)| q).map_err(|_| {
        ConsoleError::invalid("the search filters do not parse (the page cursor is a number)")
    })?;
    let caller = id.caller();
    require(&caller, Action::AuditRead)?;
    // As the API: a NUL character no store can take is refused here, the same on every store.
    if [
        &q.actor,
        &q.action,
        &q.resource_type,
        &q.resource_id,
        &q.correlation_id,
        &q.outcome,
        &q.from,
        &q.to,
        &q.order,
    ]
    .iter()
    .any(|f| f.contains('\0'))
    {
        return Err(ConsoleError::invalid(
            "a search filter contains a NUL character (U+0000), which no field accepts",
        ));
    }
    let status = ledger_status(&app, &console, &caller).await?;
    let outcome = match q.outcome.trim() {
        "" => None,
        "success" => Some(Outcome::Success),
        "denied" => Some(Outcome::Denied),
        _ => return Err(ConsoleError::invalid("outcome must be success or denied")),
    };
    let oldest_first = q.order.trim() == "asc";
    let query = AuditQuery {
        actor: opt(&q.actor),
        action: opt(&q.action),
        resource_type: opt(&q.resource_type),
        resource_id: opt(&q.resource_id),
        correlation_id: opt(&q.correlation_id),
        outcome,
        from: parse_time("from", &q.from)?,
        to: parse_time("to", &q.to)?,
        newest_first: !oldest_first,
        cursor: q.cursor,
    };
    // A damaged ledger may not even list: the page still shows the banner that says where.
    let (entries, unreadable) = match app
        .stores()
        .audit
        .search(caller.principal.tenant(), &query, PAGE_SIZE)
        .await
    {
        Ok(entries) => (entries, false),
        Err(e) if !status.intact => {
            tracing::error!(correlation_id = %caller.correlation, error = %e, "console: the damaged ledger cannot be searched");
            (Vec::new(), true)
        }
        Err(e) => return Err(e.into()),
    };
    let next = (entries.len() == PAGE_SIZE)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    let filters = q.filters();
    let with = |extra: &str| {
        let mut parts: Vec<&str> = Vec::new();
        if !filters.is_empty() {
            parts.push(&filters);
        }
        if !extra.is_empty() {
            parts.push(extra);
        }
        format!("/console/audit?{}", parts.join("&"))
    };
    let content = html! {
        (banner(&status))
        form method="get" action="/console/audit" class="filters" role="search" aria-label="Search the ledger" {
            div class="field" { label for="f-actor" { "Actor" } input id="f-actor" name="actor" type="text" value=(q.actor) autocomplete="off"; }
            div class="field" { label for="f-action" { "Action" } input id="f-action" name="action" type="text" value=(q.action) placeholder="model. or model.approve" autocomplete="off"; }
            div class="field" { label for="f-rtype" { "Resource type" } input id="f-rtype" name="resource_type" type="text" value=(q.resource_type) placeholder="model" autocomplete="off"; }
            div class="field" { label for="f-rid" { "Resource id" } input id="f-rid" name="resource_id" type="text" value=(q.resource_id) placeholder="credit-scoring@1.4.0" autocomplete="off"; }
            div class="field" { label for="f-corr" { "Correlation id" } input id="f-corr" name="correlation_id" type="text" value=(q.correlation_id) autocomplete="off"; }
            div class="field" {
                label for="f-outcome" { "Outcome" }
                select id="f-outcome" name="outcome" {
                    option value="" selected[q.outcome.is_empty()] { "any" }
                    option value="success" selected[q.outcome == "success"] { "success" }
                    option value="denied" selected[q.outcome == "denied"] { "denied" }
                }
            }
            div class="field" { label for="f-from" { "From (UTC)" } input id="f-from" name="from" type="datetime-local" value=(q.from); }
            div class="field" { label for="f-to" { "Before (UTC)" } input id="f-to" name="to" type="datetime-local" value=(q.to); }
            div class="field" {
                label for="f-order" { "Order" }
                select id="f-order" name="order" {
                    option value="desc" selected[!oldest_first] { "newest first" }
                    option value="asc" selected[oldest_first] { "oldest first" }
                }
            }
            div class="actions" {
                button type="submit" class="primary" { "Search" }
                " " a href="/console/audit" { "Clear" }
            }
        }
        @if unreadable {
            p class="flash flash-bad" role="alert" {
                "The entries cannot be listed: the ledger is damaged (see above). Correlation id "
                code { (caller.correlation) } "."
            }
        } @else if entries.is_empty() {
            p class="empty" { "No entry matches." }
        } @else {
            (data_table(
                "data audit",
                Some("Audit entries"),
                &[
                    Column::new("#"),
                    Column::new("When"),
                    Column::new("Actor"),
                    Column::new("Action"),
                    Column::new("Outcome"),
                    Column::new("Resource"),
                    Column::new("Reason"),
                ],
                entries.iter().map(|e| match decode(e) {
                    Some(r) => {
                        let ev = r.event();
                        Row::Cells([
                            html! { a href=(format!("/console/audit/{}", e.seq)) { (e.seq) } },
                            time(r.recorded_at()),
                            html! { (ev.actor().as_str()) },
                            html! {
                                code { (ev.action()) }
                                @if ev.origin() == RecordOrigin::Application {
                                    " " span class="badge" title="Written by an application through POST /v1/audit/events, not by the kernel" { "application" }
                                }
                            },
                            status_badge(ev.outcome().as_str()),
                            html! { (ev.resource_type()) ": " span class="wrap" { (ev.resource_id()) } },
                            html! { (ev.reason().unwrap_or("")) },
                        ])
                    }
                    None => Row::Whole(html! {
                        tr { td { (e.seq) } td colspan="6" { "(this entry does not decode: see the banner)" } }
                    }),
                }),
            ))
        }
        nav class="pager" aria-label="Pages" {
            @if q.cursor.is_some() { a href=(with("")) { "← First page" } }
            @if let Some(n) = next { a href=(with(&format!("cursor={n}"))) rel="next" { "Next page →" } }
        }
        (checkpoint_form(&id, ""))
    };
    Ok(layout::page(&id, Nav::Audit, "Audit ledger", None, content))
}

/// GET `/console/audit/{seq}`: one entry, its JSON, and its inclusion proof, checked.
pub(crate) async fn entry(
    State(app): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    Signed(id): Signed,
    ConsolePath(seq): ConsolePath<u64>,
) -> Result<Response, ConsoleError> {
    let caller = id.caller();
    require(&caller, Action::AuditRead)?;
    let status = ledger_status(&app, &console, &caller).await?;
    let tenant = caller.principal.tenant();
    let repo = &app.stores().audit;
    let entry = repo
        .entries(tenant, seq, 1)
        .await?
        .into_iter()
        .find(|e| e.seq == seq)
        .ok_or_else(|| ConsoleError::not_found("audit entry"))?;
    let record: serde_json::Value =
        serde_json::from_slice(&entry.leaf).unwrap_or(serde_json::Value::Null);
    // As `/v1/audit/proofs/inclusion`: against the latest checkpoint when it covers the entry.
    let latest = repo.latest_checkpoint(tenant).await?;
    let tree_size = match &latest {
        Some(cp) if cp.size > seq => cp.size,
        _ => app.audit().tree_head(tenant).await?.size,
    };
    let proof = app.audit().inclusion_proof(tenant, seq, tree_size).await?;
    let root = app.audit().root_at(tenant, tree_size).await?;
    let note = latest.filter(|c| c.size == tree_size).map(|c| c.note);
    let path_ok = verify_inclusion(seq, tree_size, entry.leaf_hash, &proof, root).is_ok();
    let signed_ok = note.as_deref().map(|n| {
        verify_checkpoint(n, app.ledger_verifier())
            .is_ok_and(|cp| cp.size == tree_size && cp.root == root)
    });
    let content = html! {
        (banner(&status))
        section aria-labelledby="record" {
            h2 id="record" { "Record" }
            pre class="json" { (serde_json::to_string_pretty(&record).unwrap_or_default()) }
            dl class="facts" {
                dt { "Leaf hash" } dd { code class="wrap" { (entry.leaf_hash.to_hex()) } }
            }
        }
        section aria-labelledby="proof" {
            h2 id="proof" { "Inclusion proof" }
            p id="proof-result" {
                @if path_ok {
                    (status_badge("verified")) " The audit path leads from this entry's leaf hash to the root of the first "
                    (tree_size) " entries."
                } @else {
                    (status_badge("FAILED")) " The audit path does NOT lead to the root: the ledger is inconsistent."
                }
                @match signed_ok {
                    Some(true) => { " That root is signed in checkpoint " (tree_size) " by key " code { (status.key) } "." }
                    Some(false) => { " " strong { "The checkpoint's signature or root does not match." } }
                    None => { " No signed checkpoint of exactly this size exists yet; the next one will cover it." }
                }
            }
            dl class="facts" {
                dt { "Tree size" } dd { (tree_size) }
                dt { "Root" } dd { code class="wrap" { (root.to_hex()) } }
                dt { "Path (leaf to root)" }
                dd {
                    @if proof.is_empty() { span class="muted" { "empty (a one-entry tree)" } }
                    ol class="hashes" { @for h in &proof { li { code class="wrap" { (h.to_hex()) } } } }
                }
                @if let Some(n) = &note {
                    dt { "Signed checkpoint" } dd { pre class="note" { (n) } }
                }
                dt { "Verifier key" } dd { code class="wrap" { (app.ledger_verifier().to_verifier_key()) } }
            }
            p class="hint" {
                "To check it offline, fetch " code { "/v1/audit/proofs/inclusion?seq=" (seq) } " with your token and verify it with any RFC 6962 implementation and the verifier key."
            }
        }
    };
    Ok(layout::page(
        &id,
        Nav::Audit,
        &format!("Audit entry #{seq}"),
        None,
        content,
    ))
}

/// The form that checks the ledger against a checkpoint kept from earlier (pasted signed note).
fn checkpoint_form(id: &super::session::Identity, pasted: &str) -> Markup {
    html! {
        section aria-labelledby="kept" {
            h2 id="kept" { "Check a kept checkpoint" }
            p class="hint" {
                "The ledger alone cannot show that it was rolled back to an older backup. Paste a checkpoint you kept from earlier (the signed note of "
                code { "GET /v1/audit/checkpoint" } ", or the first line of an export): the ledger must still hold exactly the entries it signed."
            }
            form method="post" action="/console/audit/checkpoint" class="stack" {
                (csrf_field(id))
                label for="kept-note" { "Signed checkpoint note" }
                textarea id="kept-note" name="checkpoint" rows="6" required maxlength="8192" spellcheck="false" { (pasted) }
                div class="actions" { button type="submit" class="primary" { "Check against the ledger" } }
            }
        }
    }
}

/// The kept-checkpoint form's fields (the CSRF token is checked by the console's middleware).
#[derive(Debug, Deserialize)]
pub(crate) struct CheckpointForm {
    checkpoint: String,
}

/// POST `/console/audit/checkpoint`: the ledger recomputed against a pasted kept checkpoint, as
/// `POST /v1/audit/verify` does (`audit.verify`). Changes nothing, so the result is the response
/// itself (no redirect). A note that is not this ledger's is a 422 page, never a red banner.
pub(crate) async fn check_checkpoint(
    State(app): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    Signed(id): Signed,
    ConsoleForm(f): ConsoleForm<CheckpointForm>,
) -> Result<Response, ConsoleError> {
    let caller = id.caller();
    require(&caller, Action::AuditVerify)?;
    let tenant = caller.principal.tenant();
    // A browser sends a textarea's lines with CRLF, and pasting adds blank lines around: back
    // to the note's exact form (LF, one final newline).
    let note = format!("{}\n", f.checkpoint.replace("\r\n", "\n").trim());
    let kept_size = check_kept_checkpoint(&app, tenant, &note).map_err(ConsoleError::invalid)?;
    let status = ledger_status(&app, &console, &caller).await?;
    let report = app
        .audit()
        .verify(tenant, Some(app.ledger_verifier()), Some(&note), |_, _| {})
        .await?;
    let consistent = report.is_intact() && report.kept_checkpoint_verified;
    let content = html! {
        (banner(&status))
        @if consistent {
            div class="banner banner-ok" role="status" id="kept-result" data-consistent="true" {
                p {
                    strong { "✓ Consistent with your checkpoint. " }
                    "The ledger still holds the " strong { (kept_size) } " entries your checkpoint signed, with exactly its root; "
                    (report.entries.saturating_sub(kept_size)) " entries were appended after it. No rollback, no rewrite."
                }
            }
        } @else {
            div class="banner banner-bad" role="alert" id="kept-result" data-consistent="false" {
                p {
                    strong { "✗ NOT consistent with your checkpoint" }
                    @if let Some(seq) = report.problem.as_ref().and_then(|p| p.seq()) {
                        " (from entry " a href=(format!("/console/audit/{seq}")) { strong { "#" (seq) } } ")"
                    }
                    ". " (report.problem.as_ref().map(ToString::to_string).unwrap_or_default())
                }
                p class="small" {
                    "Your checkpoint commits to " (kept_size) " entries; the ledger verified " (report.entries)
                    ". If the ledger was restored from an older backup, entries recorded since are missing. Alert your operator and auditors."
                }
            }
        }
        (checkpoint_form(&id, &f.checkpoint))
    };
    Ok(layout::page(
        &id,
        Nav::Audit,
        "Audit ledger: kept checkpoint",
        None,
        content,
    ))
}

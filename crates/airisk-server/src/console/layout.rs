//! The page shell (header, navigation, sign-out form) and small rendering helpers shared by the
//! pages. Everything is escaped by maud unless wrapped in `PreEscaped`, which this module never
//! does with data.

use airisk_core::governance::audit_record::format_timestamp;
use airisk_core::governance::visible_text::{self, Segment};
use airisk_core::security::rbac::{Action, RbacService};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use uuid::Uuid;

use super::session::{CSRF_FIELD, Identity};

/// The navigation entries; `current` marks one with `aria-current="page"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Queue,
    Models,
    Prompts,
    Audit,
}

const NAV: [(Nav, &str, &str); 4] = [
    (Nav::Queue, "/console/queue", "Approval queue"),
    (Nav::Models, "/console/models", "Models"),
    (Nav::Prompts, "/console/prompts", "Prompts"),
    (Nav::Audit, "/console/audit", "Audit ledger"),
];

/// A flash message shown above a page's content after a redirect.
#[derive(Debug, Clone)]
pub(crate) struct Flash {
    pub(crate) ok: bool,
    pub(crate) text: String,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="no-referrer";
            // No favicon request (the API's 404 would answer it); `img-src data:` admits this.
            link rel="icon" href="data:,";
            title { (title) " · airisk console" }
            link rel="stylesheet" href=(super::assets::CSS_PATH);
            script src=(super::assets::JS_PATH) defer {}
        }
    }
}

/// A complete page for a signed-in person.
pub(crate) fn page(
    identity: &Identity,
    current: Nav,
    title: &str,
    flash: Option<Flash>,
    content: Markup,
) -> Response {
    let p = &identity.principal;
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a class="skip-link" href="#main" { "Skip to content" }
                header class="site-header" {
                    div class="bar" {
                        a class="brand" href="/console/queue" {
                            "airisk" span class="brand-sub" { " approver console" }
                        }
                        nav aria-label="Main" {
                            ul {
                                @for (item, href, label) in NAV {
                                    li {
                                        a href=(href) aria-current=[(item == current).then_some("page")] { (label) }
                                    }
                                }
                            }
                        }
                        div class="who" title=[session_end(identity)] {
                            span class="who-name" { (p.actor().as_str()) }
                            " "
                            span class="badge badge-role" title="Role, from your token" { (p.role().as_str()) }
                            " "
                            span class="who-tenant" title="Tenant, from your token" { "tenant " strong { (p.tenant().as_str()) } }
                            @if let Some(s) = &identity.session {
                                " "
                                span class="who-provider small" id="who-provider" title=(s.issuer) {
                                    @if let Some(n) = &s.name { (n) ", " }
                                    "signed in through " (provider_host(&s.issuer))
                                }
                            }
                            @if let Some(end) = session_end(identity) {
                                " "
                                span class="who-session small" id="session-ends" { (end) }
                            }
                            @if identity.via_proxy {
                                span class="small" { "signed in by your SSO" }
                            } @else {
                                form class="inline" method="post" action="/console/sign-out" {
                                    input type="hidden" name=(CSRF_FIELD) value=(identity.csrf);
                                    button class="link-button" type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    @if let Some(f) = flash {
                        p class=(if f.ok { "flash flash-ok" } else { "flash flash-bad" }) role="status" { (f.text) }
                    }
                    (content)
                }
                (footer())
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// The host of a provider's issuer URL (what a person recognises), or the URL.
fn provider_host(issuer: &str) -> &str {
    issuer
        .split_once("://")
        .map_or(issuer, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or(issuer)
}

/// "Session ends …": the token's expiry, or the session's idle or absolute end (whichever comes
/// first if unused), after which the console asks to sign in again.
fn session_end(identity: &Identity) -> Option<String> {
    let at = DateTime::from_timestamp(i64::try_from(identity.expires_at).ok()?, 0)?;
    Some(format!("Session ends {}", at.format("%Y-%m-%d %H:%M UTC")))
}

fn footer() -> Markup {
    html! {
        footer class="site-footer" {
            p { "Every decision here goes through the same checks as the API and is recorded in the tamper-evident audit ledger." }
        }
    }
}

/// A page for someone not signed in (the sign-in page).
pub(crate) fn public_page(status: StatusCode, title: &str, content: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a class="skip-link" href="#main" { "Skip to content" }
                header class="site-header" {
                    div class="bar" {
                        a class="brand" href="/console/queue" { "airisk" span class="brand-sub" { " approver console" } }
                    }
                }
                main id="main" tabindex="-1" class="narrow" {
                    h1 { (title) }
                    (content)
                }
                (footer())
            }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

/// A page that moves on to `target` (a console path) by itself (`<meta http-equiv="refresh">`,
/// which the Content-Security-Policy admits, and a link). Used where a redirect would not do:
/// arriving from the provider's site, a `SameSite=Strict` cookie just set is not sent on a
/// redirect of that same navigation, but it is on a navigation this page starts; and leaving
/// for the provider's end-session endpoint after a form POST, which `form-action 'self'` would
/// refuse as a redirect.
pub(crate) fn moving_on_page(title: &str, target: &str, text: &str) -> Response {
    let refresh = format!("0;url={target}");
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                meta http-equiv="refresh" content=(refresh);
                link rel="icon" href="data:,";
                title { (title) " · airisk console" }
                link rel="stylesheet" href=(super::assets::CSS_PATH);
            }
            body {
                main id="main" class="narrow" {
                    h1 { (title) }
                    p role="status" { (text) " " a id="continue" href=(target) { "Continue" } }
                }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// The friendly error page.
pub(crate) fn error_page(
    status: StatusCode,
    title: &str,
    detail: &str,
    correlation: &str,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a class="skip-link" href="#main" { "Skip to content" }
                header class="site-header" {
                    div class="bar" {
                        a class="brand" href="/console/queue" { "airisk" span class="brand-sub" { " approver console" } }
                        nav aria-label="Main" {
                            ul {
                                @for (_, href, label) in NAV {
                                    li { a href=(href) { (label) } }
                                }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" class="narrow" {
                    h1 { (title) }
                    p class="error-status" { "Error " (status.as_u16()) }
                    p class="error-detail" { (detail) }
                    p class="muted" {
                        "If you need help, quote this correlation id: "
                        code class="correlation" { (correlation) }
                    }
                    p { a href="/console/queue" { "Back to the approval queue" } }
                }
                (footer())
            }
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for query values and paths).
pub(crate) fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Text a person reads as part of a decision, with every character they would not see (the set
/// `airisk_core::governance::visible_text` refuses on input) shown as a highlighted `⟨U+XXXX⟩`.
/// New input cannot hold such characters; data written before that check may, so every approved
/// text (templates, diffs, reasons, justifications, metadata) renders through this.
pub(crate) fn visible(text: &str) -> Markup {
    html! {
        @for segment in visible_text::segments(text) {
            @match segment {
                Segment::Visible(run) => { (run) }
                Segment::Hidden(c, class) => {
                    mark class="hidden-char" title=(format!("hidden character U+{:04X}: {}", u32::from(c), class.describe())) {
                        (segment.to_string())
                    }
                }
            }
        }
    }
}

/// A timestamp as `<time>`: UTC text, RFC 3339 in `datetime` (the script shows local time on
/// hover).
pub(crate) fn time(t: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(format_timestamp(&t)) { (t.format("%Y-%m-%d %H:%M:%S UTC")) }
    }
}

/// "4 min", "2 h 5 min", "3 d 4 h".
pub(crate) fn duration_words(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// How long ago `t` was.
pub(crate) fn age(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    duration_words((now - t).num_seconds())
}

/// When a request expires, relative to now.
pub(crate) fn expiry(now: DateTime<Utc>, at: Option<DateTime<Utc>>) -> Markup {
    match at {
        None => html! { span class="muted" { "never" } },
        Some(t) if t <= now => html! { span class="badge badge-bad" { "expired" } " " (time(t)) },
        Some(t) => {
            html! { "in " (duration_words((t - now).num_seconds())) br; small { (time(t)) } }
        }
    }
}

/// A status word as a coloured badge (the word is always written out: colour is not the only
/// signal).
pub(crate) fn status_badge(status: &str) -> Markup {
    let class = match status {
        "APPROVED" | "success" | "authorised" | "verified" => "badge badge-ok",
        "REJECTED" | "EXPIRED" | "denied" | "FAILED" => "badge badge-bad",
        "PENDING" => "badge badge-wait",
        _ => "badge",
    };
    html! { span class=(class) { (status) } }
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf_field(identity: &Identity) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(identity.csrf); }
}

/// Whether the signed-in role may perform `action` (to hide what it may not do; the services
/// refuse it anyway).
pub(crate) fn may(identity: &Identity, action: Action) -> bool {
    RbacService::new()
        .check_permission(identity.principal.role(), action)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_unreserved_characters_only() {
        assert_eq!(pct("a/b c?d=é"), "a%2Fb%20c%3Fd%3D%C3%A9");
        assert_eq!(pct("credit-scoring_1.0~x"), "credit-scoring_1.0~x");
    }

    #[test]
    fn a_data_table_labels_each_cell_with_its_column() {
        let t = data_table(
            "data",
            Some("Things"),
            &[
                Column::new("Name"),
                Column::labelled("Checksum (SHA-256)", "Checksum"),
            ],
            [Row::Cells([html! { "a<b" }, html! { "c" }])],
        );
        assert_eq!(
            t.into_string(),
            "<table class=\"data\"><caption class=\"visually-hidden\">Things</caption>\
             <thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Checksum (SHA-256)</th></tr></thead>\
             <tbody><tr><td data-label=\"Name\">a&lt;b</td><td data-label=\"Checksum\">c</td></tr></tbody></table>"
        );
    }

    #[test]
    fn a_request_row_carries_its_id_and_a_whole_row_is_kept_as_written() {
        let id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
        let t = data_table(
            "data queue",
            None,
            &[Column::new("Request")],
            [
                Row::Request(id, [html! { "r" }]),
                Row::Whole(html! { tr { td { "whole" } } }),
            ],
        );
        assert_eq!(
            t.into_string(),
            "<table class=\"data queue\"><thead><tr><th scope=\"col\">Request</th></tr></thead>\
             <tbody><tr data-request-id=\"01900000-0000-7000-8000-000000000001\">\
             <td data-label=\"Request\">r</td></tr><tr><td>whole</td></tr></tbody></table>"
        );
    }

    #[test]
    fn a_grouped_column_spans_its_cols_and_its_cells_write_their_own_tds() {
        let t = data_table(
            "diff",
            Some("A compared with B"),
            &[
                Column::group("A", &["ln", "code"]),
                Column::group("B", &["ln", "code"]),
            ],
            [Row::Cells([
                html! { td class="ln" { "1" } td class="code del" { "x" } },
                html! { td class="ln" {} td class="code empty" {} },
            ])],
        );
        assert_eq!(
            t.into_string(),
            "<table class=\"diff\"><caption class=\"visually-hidden\">A compared with B</caption>\
             <colgroup><col class=\"ln\"><col class=\"code\"><col class=\"ln\"><col class=\"code\"></colgroup>\
             <thead><tr><th scope=\"col\" colspan=\"2\">A</th><th scope=\"col\" colspan=\"2\">B</th></tr></thead>\
             <tbody><tr><td class=\"ln\">1</td><td class=\"code del\">x</td>\
             <td class=\"ln\"></td><td class=\"code empty\"></td></tr></tbody></table>"
        );
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration_words(5), "5 s");
        assert_eq!(duration_words(125), "2 min");
        assert_eq!(duration_words(3_720), "1 h 2 min");
        assert_eq!(duration_words(90_000), "1 d 1 h");
        assert_eq!(duration_words(-3), "0 s");
    }
}

/// A column of a [`data_table`]: its heading, the label a narrow screen shows beside each of its
/// cells (`data-label`; the heading, unless a shorter one reads better), and, for a grouped
/// column, the physical columns its heading spans.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column<'a> {
    heading: &'a str,
    label: &'a str,
    /// Empty for a plain column (one `td` a cell, written by the table). Otherwise the classes of
    /// the `col` elements under one heading (`colspan`), whose `td`s each cell writes itself.
    group: &'a [&'a str],
}

impl<'a> Column<'a> {
    /// A column whose cells are labelled with its heading.
    pub(crate) const fn new(heading: &'a str) -> Self {
        Column {
            heading,
            label: heading,
            group: &[],
        }
    }

    /// A column whose cells carry a label other than its heading.
    pub(crate) const fn labelled(heading: &'a str, label: &'a str) -> Self {
        Column {
            heading,
            label,
            group: &[],
        }
    }

    /// One heading over several physical columns, one `col` of each class in `cols` (the table
    /// then has a `colgroup`). Each of its cells is the markup of that many `td`s, which the cell
    /// writes itself (with its own classes, and no label).
    pub(crate) const fn group(heading: &'a str, cols: &'a [&'a str]) -> Self {
        Column {
            heading,
            label: heading,
            group: cols,
        }
    }
}

/// One row of a [`data_table`] of `N` columns.
#[derive(Debug)]
pub(crate) enum Row<const N: usize> {
    /// One cell per column, in order.
    Cells([Markup; N]),
    /// One cell per column, in a row that shows the approval request `id`: the `tr` carries it
    /// as `data-request-id`, by which scripts and the browser tests find the row.
    Request(Uuid, [Markup; N]),
    /// A row that cannot be shown cell by cell (its own `tr`).
    Whole(Markup),
}

/// The console's one table component: a `table` of class `class` (`data …`, `diff`), with a
/// caption read by screen readers only, a `colgroup` when a column is grouped
/// ([`Column::group`]), a heading per column, and each row's cells labelled with their column
/// (so the stylesheet can stack them on a narrow screen). The column count is checked at compile
/// time: every row has exactly one cell per column.
pub(crate) fn data_table<const N: usize>(
    class: &str,
    caption: Option<&str>,
    columns: &[Column<'_>; N],
    rows: impl IntoIterator<Item = Row<N>>,
) -> Markup {
    let grouped = columns.iter().any(|c| !c.group.is_empty());
    let row = |request: Option<Uuid>, cells: [Markup; N]| {
        html! {
            tr data-request-id=[request] {
                @for (c, cell) in columns.iter().zip(cells) {
                    @if c.group.is_empty() {
                        td data-label=(c.label) { (cell) }
                    } @else {
                        (cell)
                    }
                }
            }
        }
    };
    html! {
        table class=(class) {
            @if let Some(caption) = caption {
                caption class="visually-hidden" { (caption) }
            }
            @if grouped {
                colgroup {
                    @for c in columns {
                        @if c.group.is_empty() {
                            col;
                        } @else {
                            @for k in c.group { col class=(k); }
                        }
                    }
                }
            }
            thead {
                tr {
                    @for c in columns {
                        th scope="col" colspan=[(c.group.len() > 1).then_some(c.group.len())] { (c.heading) }
                    }
                }
            }
            tbody {
                @for r in rows {
                    @match r {
                        Row::Cells(cells) => { (row(None, cells)) }
                        Row::Request(id, cells) => { (row(Some(id), cells)) }
                        Row::Whole(markup) => { (markup) }
                    }
                }
            }
        }
    }
}

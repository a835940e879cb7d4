//! The approver console over HTTP, without a browser: sessions and CSRF, the refusals the server
//! makes whatever a page shows, the tenant wall, the SSO proxy's header, the headers of every
//! response, and the red banner of a tampered ledger. The browser tests (`e2e/`, run by
//! `crates/airisk/tests/console_browser.rs`) drive the same pages in Chromium.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

#[path = "api/pg.rs"]
mod pg;
#[path = "api/support.rs"]
mod support;

use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::TenantId;
use airisk_server::{ConsoleConfig, ServerConfig};
use reqwest::redirect::Policy;
use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::support::TestApp;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console with dev mode's pasted-token sign-in (what these tests sign in with).
fn dev_console() -> ServerConfig {
    ServerConfig {
        console: ConsoleConfig {
            token_sign_in: true,
            ..ConsoleConfig::default()
        },
        ..ServerConfig::default()
    }
}

/// A browser-like client of the console: no redirects followed, one session cookie kept.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Browser {
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: app.url(""),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, r: &Response) {
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !attrs.contains("Max-Age=0") {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
    }

    async fn get(&mut self, path: &str) -> Response {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&r);
        r
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("sec-fetch-site", "same-origin")
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep_cookies(&r);
        r
    }

    /// Signs in through the form, as a person pasting `token` would.
    async fn sign_in(&mut self, token: &str) {
        let page = self.get("/console/sign-in").await.text().await.unwrap();
        let csrf = field(&page, "csrf");
        let r = self
            .post(
                "/console/sign-in",
                &[
                    ("csrf", &csrf),
                    ("token", token),
                    ("next", "/console/queue"),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/console/queue");
    }

    /// The session's CSRF token, read from the sign-out form of the queue page.
    async fn csrf(&mut self) -> String {
        let page = self.get("/console/queue").await.text().await.unwrap();
        field(&page, "csrf")
    }
}

/// The value of the first `<input name="{name}" value="…">` of a page.
fn field(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} field in {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

fn assert_strict_headers(r: &Response) {
    assert_eq!(r.headers()["content-security-policy"], CSP);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
}

#[tokio::test]
async fn pages_need_a_session_and_every_response_carries_the_strict_headers() {
    let app = TestApp::spawn_with(dev_console()).await;
    let mut b = Browser::new(&app);
    let r = b.get("/console/audit?actor=x").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        "/console/sign-in?next=%2Fconsole%2Faudit%3Factor%3Dx"
    );
    assert_strict_headers(&r);
    let r = b.get("/console/sign-in").await;
    assert_eq!(r.status(), 200);
    assert_strict_headers(&r);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let page = r.text().await.unwrap();
    assert!(!page.contains("<script>"), "no inline script");
    assert!(!page.contains("style="), "no inline style");
    let r = b.get("/console/assets/console.css").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/css; charset=utf-8");
    assert_strict_headers(&r);
    let r = b.get("/console/assets/console.js").await;
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let r = b.get("/console/nothing-here").await;
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_strict_headers(&r);
    // The API is untouched: still problem+json at an unknown path.
    let r = app.client.get(app.url("/v1/nothing")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    app.shutdown().await;
}

#[tokio::test]
async fn sign_in_needs_its_own_csrf_token_and_sets_a_strict_httponly_cookie() {
    let app = TestApp::spawn_with(dev_console()).await;
    let token = app.token("apu", "acme", Role::Approver);
    let mut b = Browser::new(&app);
    // Without the pre-session cookie's token: refused (no login CSRF).
    let r = b
        .post("/console/sign-in", &[("csrf", "forged"), ("token", &token)])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(b.cookies.is_empty());
    b.sign_in(&token).await;
    let set: Vec<_> = b.cookies.iter().map(|(k, _)| k.as_str()).collect();
    // Secure and host-prefixed by default (no insecure cookies configured), whatever the host.
    assert_eq!(set, ["__Host-airisk-console"]);
    // A bad token re-renders the form with a 401 and why.
    let mut other = Browser::new(&app);
    let page = other.get("/console/sign-in").await.text().await.unwrap();
    let r = other
        .post(
            "/console/sign-in",
            &[("csrf", &field(&page, "csrf")), ("token", "a.b.c")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("Sign-in refused"));
    // The queue answers; signing out clears the cookie; the queue then asks to sign in.
    assert_eq!(b.get("/console/queue").await.status(), 200);
    let csrf = b.csrf().await;
    let r = b.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(b.cookies.iter().all(|(k, _)| k != "__Host-airisk-console"));
    assert_eq!(
        b.get("/console/queue").await.status(),
        StatusCode::SEE_OTHER
    );
    app.shutdown().await;
}

#[tokio::test]
async fn cookies_are_secure_and_host_prefixed_off_loopback() {
    let app = TestApp::spawn_with(dev_console()).await;
    let r = reqwest::Client::new()
        .get(app.url("/console/sign-in"))
        .header("host", "risk.bank.example")
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-airisk-console-pre="), "{cookie}");
    assert!(cookie.contains("; HttpOnly; SameSite=Strict;"));
    assert!(cookie.ends_with("; Secure"));
    app.shutdown().await;
}

#[tokio::test]
async fn every_post_is_checked_for_its_csrf_token_and_origin() {
    let app = TestApp::spawn_with(dev_console()).await;
    let id = app.register_model("acme", "pd", "1.0.0").await;
    let mut b = Browser::new(&app);
    b.sign_in(&app.token("apu", "acme", Role::Approver)).await;
    let csrf = b.csrf().await;
    let path = format!("/console/requests/{id}/approve");
    for form in [
        vec![("reason", "ok")],
        vec![("csrf", "AAAA"), ("reason", "ok")],
    ] {
        let r = b.post(&path, &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.text().await.unwrap().contains("This form has expired"));
    }
    // Another session's token does not do either.
    let mut other = Browser::new(&app);
    other
        .sign_in(&app.token("bea", "acme", Role::Approver))
        .await;
    let theirs = other.csrf().await;
    assert_ne!(theirs, csrf);
    let r = b.post(&path, &[("csrf", &theirs), ("reason", "ok")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A cross-site POST is refused before the token is looked at.
    let r = b
        .client
        .post(format!("{}{path}", b.base))
        .header("cookie", b.cookie_header())
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str()), ("reason", "ok")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("sent from another site"));
    let admin = app.token("ada", "acme", Role::Admin);
    let v: Value = app
        .get(&format!("/v1/approvals/{id}"), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "PENDING");
    // With its own token, the approval goes through, then redirects (POST-redirect-GET).
    let r = b.post(&path, &[("csrf", &csrf), ("reason", "ok")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        format!("/console/requests/{id}?done=approved").as_str()
    );
    let v: Value = app
        .get("/v1/models/pd/versions/1.0.0", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "APPROVED");
    assert_eq!(v["approved_by"][0], "apu");
    app.shutdown().await;
}

#[tokio::test]
async fn the_server_refuses_what_the_page_does_not_offer_and_audits_it() {
    let app = TestApp::spawn_with(dev_console()).await;
    let id = app.register_model("acme", "pd", "1.0.0").await;
    // A viewer: no approve form on the page, and a 403 page for a forged POST.
    let mut viewer = Browser::new(&app);
    viewer
        .sign_in(&app.token("vic", "acme", Role::Viewer))
        .await;
    let page = viewer
        .get(&format!("/console/requests/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("/approve\""));
    assert!(page.contains("Your role (viewer) cannot approve or reject requests."));
    let csrf = viewer.csrf().await;
    let r = viewer
        .post(
            &format!("/console/requests/{id}/approve"),
            &[("csrf", &csrf), ("reason", "forged")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("role viewer may not perform approval.approve")
    );
    // The registrant: the same, with the four-eyes rule.
    let mut admin = Browser::new(&app);
    admin
        .sign_in(&app.token("ada.admin", "acme", Role::Admin))
        .await;
    let page = admin
        .get(&format!("/console/requests/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("/approve\""));
    let csrf = admin.csrf().await;
    let r = admin
        .post(
            &format!("/console/requests/{id}/approve"),
            &[("csrf", &csrf), ("reason", "mine")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // An empty reason is refused by the service, not only by the browser's `required`.
    let mut approver = Browser::new(&app);
    approver
        .sign_in(&app.token("apu", "acme", Role::Approver))
        .await;
    let csrf = approver.csrf().await;
    let r = approver
        .post(
            &format!("/console/requests/{id}/approve"),
            &[("csrf", &csrf), ("reason", "  ")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Both denials are in the ledger, as the API's would be.
    let auditor = app.token("aud", "acme", Role::Viewer);
    let v: Value = app
        .get("/v1/audit/events?outcome=denied", &auditor)
        .await
        .json()
        .await
        .unwrap();
    let denied: Vec<(&str, &str)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["record"]["actor"].as_str().unwrap(),
                e["record"]["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(denied.contains(&("vic", "approval.approve")), "{denied:?}");
    assert!(
        denied.contains(&("ada.admin", "approval.approve")),
        "{denied:?}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn another_tenants_resources_are_the_same_404_as_missing_ones() {
    let app = TestApp::spawn_with(dev_console()).await;
    let theirs = app.register_model("globex", "secret-model", "1.0.0").await;
    let mut b = Browser::new(&app);
    b.sign_in(&app.token("apu", "acme", Role::Approver)).await;
    let strip = |page: String| {
        // Everything but the correlation id, which differs per request.
        let at = page.find("class=\"correlation\"").unwrap();
        page[..at].to_owned()
    };
    let r = b.get(&format!("/console/requests/{theirs}")).await;
    assert_eq!(r.status(), 404);
    let foreign = strip(r.text().await.unwrap());
    let r = b
        .get("/console/requests/0190f5d2-7a4e-7cc0-8a4e-000000000000")
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(strip(r.text().await.unwrap()), foreign);
    let r = b.get("/console/requests/not-a-uuid").await;
    assert_eq!(strip(r.text().await.unwrap()), foreign);
    assert_eq!(b.get("/console/models/secret-model").await.status(), 404);
    let page = b.get("/console/models").await.text().await.unwrap();
    assert!(!page.contains("secret-model"));
    let csrf = b.csrf().await;
    let r = b
        .post(
            &format!("/console/requests/{theirs}/approve"),
            &[("csrf", &csrf), ("reason", "not mine to decide")],
        )
        .await;
    assert_eq!(r.status(), 404);
    app.shutdown().await;
}

#[tokio::test]
async fn a_trusted_sso_header_signs_people_in_when_configured() {
    let app = TestApp::spawn_with(ServerConfig {
        console: ConsoleConfig::trusting_header("x-sso-jwt").unwrap(),
        ..ServerConfig::default()
    })
    .await;
    let token = app.token("apu", "acme", Role::Approver);
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(app.url("/console/queue"))
        .header("x-sso-jwt", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with(&format!("__Host-airisk-console={token};")));
    assert!(r.text().await.unwrap().contains("signed in by your SSO"));
    // A token the verifier refuses signs nobody in.
    let r = client
        .get(app.url("/console/queue"))
        .header("x-sso-jwt", "a.b.c")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    app.shutdown().await;
    // Off by default: the header means nothing.
    let app = TestApp::spawn_with(dev_console()).await;
    let token = app.token("apu", "acme", Role::Approver);
    let r = client
        .get(app.url("/console/queue"))
        .header("x-sso-jwt", token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(ConsoleConfig::trusting_header("cookie").is_err());
    assert!(ConsoleConfig::trusting_header("sec-fetch-site").is_err());
    assert!(ConsoleConfig::trusting_header("not a header").is_err());
    app.shutdown().await;
}

#[tokio::test]
async fn the_banner_is_green_for_an_intact_ledger_and_red_naming_the_first_bad_entry() {
    // No verification cache: each page load verifies afresh (the default reuses a result for 5 s,
    // which a test would otherwise have to sleep through).
    let app = TestApp::spawn_with(ServerConfig {
        console: ConsoleConfig {
            verify_cache_ttl: Some(std::time::Duration::ZERO),
            token_sign_in: true,
            ..ConsoleConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    app.register_model("acme", "pd", "1.0.0").await;
    let analyst = app.token("ana", "acme", Role::Analyst);
    let r = app
        .post("/v1/audit/checkpoint", &analyst, &Value::Null)
        .await;
    assert_eq!(r.status(), 200);
    let mut b = Browser::new(&app);
    b.sign_in(&app.token("aud", "acme", Role::Viewer)).await;
    let page = b.get("/console/audit").await.text().await.unwrap();
    assert!(page.contains("banner-ok"), "{page}");
    assert!(page.contains("Verified up to checkpoint <strong>2</strong>, signed by key"));
    // An altered record: the next verification names entry 1.
    let memory = app.memory.clone().unwrap();
    memory.dangerous_overwrite_leaf(&TenantId::parse("acme").unwrap(), 1, b"{}".to_vec());
    let page = b.get("/console/audit").await.text().await.unwrap();
    assert!(page.contains("banner-bad"), "{page}");
    assert!(page.contains("Ledger verification FAILED"));
    assert!(page.contains("href=\"/console/audit/1\""));
    app.shutdown().await;
}

#[tokio::test]
async fn a_principal_refused_through_the_console_is_throttled_as_through_the_api() {
    let app = TestApp::spawn_with(ServerConfig {
        denial_throttle: airisk_server::throttle::DenialThrottleConfig {
            per_minute: 1,
            burst: 3,
            ..Default::default()
        },
        ..dev_console()
    })
    .await;
    let id = app.register_model("acme", "pd", "1.0.0").await;
    let tenant = TenantId::parse("acme").unwrap();
    let start = app.audit.tree_head(&tenant).await.unwrap().size;
    let mut viewer = Browser::new(&app);
    viewer
        .sign_in(&app.token("vic", "acme", Role::Viewer))
        .await;
    let csrf = viewer.csrf().await;
    for _ in 0..3 {
        let r = viewer
            .post(
                &format!("/console/requests/{id}/approve"),
                &[("csrf", &csrf), ("reason", "forged")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    for _ in 0..5 {
        let r = viewer
            .post(
                &format!("/console/requests/{id}/approve"),
                &[("csrf", &csrf), ("reason", "forged")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    // Three denials recorded, none for the throttled attempts; the API throttles the same person.
    assert_eq!(app.audit.tree_head(&tenant).await.unwrap().size, start + 3);
    let r = app
        .get("/v1/approvals", &app.token("vic", "acme", Role::Viewer))
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    app.shutdown().await;
}

#[tokio::test]
async fn the_audit_page_marks_application_records() {
    let app = TestApp::spawn_with(dev_console()).await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    let r = app
        .post(
            "/v1/audit/events",
            &analyst,
            &serde_json::json!({"action": "loan.decision", "resource_type": "loan", "resource_id": "L-1"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    app.register_model("acme", "pd", "1.0.0").await;
    let mut viewer = Browser::new(&app);
    viewer
        .sign_in(&app.token("vic", "acme", Role::Viewer))
        .await;
    let page = viewer.get("/console/audit").await.text().await.unwrap();
    // One application record, one badge, on the row of its action.
    assert_eq!(page.matches(">application</span>").count(), 1, "{page}");
    let row = page
        .split("<tr>")
        .find(|r| r.contains("loan.decision"))
        .unwrap();
    assert!(row.contains(">application</span>"), "{row}");
    app.shutdown().await;
}

/// The audit page's kept-checkpoint form: a pasted note (CRLF line endings, as a browser sends a
/// textarea) is checked against the ledger; a rollback to an older state is shown in red; a note
/// that is not this tenant's is a 422 page; the form is a POST with the session's CSRF token.
#[tokio::test]
async fn a_pasted_kept_checkpoint_is_checked_and_a_rollback_shown() {
    let app = TestApp::spawn_with(dev_console()).await;
    let analyst = app.token("ana", "acme", Role::Analyst);
    for i in 0..5 {
        let r = app
            .post(
                "/v1/audit/events",
                &analyst,
                &serde_json::json!({"action": "report.generate", "resource_type": "report",
                                    "resource_id": format!("r-{i}")}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let r = app
        .post("/v1/audit/checkpoint", &analyst, &Value::Null)
        .await;
    let kept: Value = r.json().await.unwrap();
    let kept = kept["note"].as_str().unwrap().to_owned();
    let pasted = format!("\r\n{}\r\n", kept.replace('\n', "\r\n"));

    let mut b = Browser::new(&app);
    b.sign_in(&app.token("aud", "acme", Role::Viewer)).await;
    let page = b.get("/console/audit").await.text().await.unwrap();
    assert!(
        page.contains("action=\"/console/audit/checkpoint\""),
        "{page}"
    );
    let csrf = b.csrf().await;

    let r = b
        .post(
            "/console/audit/checkpoint",
            &[("csrf", &csrf), ("checkpoint", &pasted)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_strict_headers(&r);
    let page = r.text().await.unwrap();
    assert!(page.contains("data-consistent=\"true\""), "{page}");

    // An older backup restored: the ledger alone is consistent, the kept checkpoint says not.
    app.memory
        .clone()
        .unwrap()
        .dangerous_truncate(&TenantId::parse("acme").unwrap(), 3);
    let r = b
        .post(
            "/console/audit/checkpoint",
            &[("csrf", &csrf), ("checkpoint", &pasted)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("data-consistent=\"false\""), "{page}");
    assert!(page.contains("truncated or rolled back"), "{page}");
    assert!(page.contains("href=\"/console/audit/3\""), "{page}");

    // Not a note of this ledger: refused, not a verdict.
    let r = b
        .post(
            "/console/audit/checkpoint",
            &[("csrf", &csrf), ("checkpoint", "not a checkpoint")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A NUL character in a search filter: refused like the API does, on every store.
    let r = b.get("/console/audit?actor=a%00b").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Without the session's CSRF token: refused before anything runs.
    let r = b
        .post("/console/audit/checkpoint", &[("checkpoint", &pasted)])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    app.shutdown().await;
}

#[tokio::test]
async fn the_banner_reuses_a_verification_for_its_configured_time() {
    // An hour's cache: a newer checkpoint is not seen by the next load, which proves the
    // configured time is what the cache uses; with no cache it is seen at once.
    for (ttl, expect_size) in [(3_600, 2), (0, 4)] {
        let app = TestApp::spawn_with(ServerConfig {
            console: ConsoleConfig {
                verify_cache_ttl: Some(std::time::Duration::from_secs(ttl)),
                token_sign_in: true,
                ..ConsoleConfig::default()
            },
            ..ServerConfig::default()
        })
        .await;
        let analyst = app.token("ana", "acme", Role::Analyst);
        app.register_model("acme", "pd", "1.0.0").await;
        let r = app
            .post("/v1/audit/checkpoint", &analyst, &Value::Null)
            .await;
        assert_eq!(r.status(), 200);
        let mut b = Browser::new(&app);
        b.sign_in(&app.token("aud", "acme", Role::Viewer)).await;
        let page = b.get("/console/audit").await.text().await.unwrap();
        assert!(
            page.contains("Verified up to checkpoint <strong>2</strong>"),
            "{page}"
        );
        app.register_model("acme", "pd", "2.0.0").await;
        let r = app
            .post("/v1/audit/checkpoint", &analyst, &Value::Null)
            .await;
        assert_eq!(r.status(), 200);
        let page = b.get("/console/audit").await.text().await.unwrap();
        assert!(
            page.contains(&format!(
                "Verified up to checkpoint <strong>{expect_size}</strong>"
            )),
            "ttl {ttl}s: {page}"
        );
        app.shutdown().await;
    }
}

/// The register form of `/console/models`, filled in validly for `name`.
fn register_form<'a>(csrf: Option<&'a str>, name: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("name", name),
        ("version", "1"),
        ("artifact_uri", "s3://models/console/1"),
        (
            "checksum",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        ),
        ("justification", "from the console"),
        ("required_approvals", "1"),
        ("expires_in_hours", ""),
    ];
    if let Some(c) = csrf {
        form.push(("csrf", c));
    }
    form
}

#[tokio::test]
async fn every_console_post_route_is_checked_for_csrf_origin_and_role() {
    let app = TestApp::spawn_with(dev_console()).await;
    let to_approve = app.register_model("acme", "a", "1").await;
    let to_reject = app.register_model("acme", "r", "1").await;
    let approve = format!("/console/requests/{to_approve}/approve");
    let reject = format!("/console/requests/{to_reject}/reject");
    // Every POST route the console serves (sign-in has its own pre-session token, tested above).
    let routes: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/console/sign-out".to_owned(), vec![]),
        (approve.clone(), vec![("reason", "ok")]),
        (reject.clone(), vec![("reason", "no")]),
        (
            "/console/models".to_owned(),
            register_form(None, "smuggled"),
        ),
    ];
    let mut admin = Browser::new(&app);
    admin.sign_in(&app.token("ada", "acme", Role::Admin)).await;
    let csrf = admin.csrf().await;
    let mut other = Browser::new(&app);
    other.sign_in(&app.token("bea", "acme", Role::Admin)).await;
    let theirs = other.csrf().await;
    for (path, form) in &routes {
        // No token, a made-up one, another session's: 403, "This form has expired".
        for token in [None, Some("AAAA"), Some(theirs.as_str())] {
            let mut f = form.clone();
            if let Some(t) = token {
                f.push(("csrf", t));
            }
            let r = admin.post(path, &f).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} with {token:?}");
            assert!(
                r.text().await.unwrap().contains("This form has expired"),
                "{path} with {token:?}"
            );
        }
        // The right token from another site: refused before the token is looked at.
        let mut f = form.clone();
        f.push(("csrf", csrf.as_str()));
        let r = admin
            .client
            .post(format!("{}{path}", admin.base))
            .header("cookie", admin.cookie_header())
            .header("sec-fetch-site", "cross-site")
            .form(&f)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} cross-site");
        assert!(
            r.text().await.unwrap().contains("sent from another site"),
            "{path} cross-site"
        );
    }
    // Nothing happened: still signed in, both requests pending, no model registered.
    assert_eq!(admin.get("/console/queue").await.status(), StatusCode::OK);
    let api_admin = app.token("ada", "acme", Role::Admin);
    for id in [&to_approve, &to_reject] {
        let v: Value = app
            .get(&format!("/v1/approvals/{id}"), &api_admin)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["status"], "PENDING", "{id}");
    }
    assert_eq!(
        app.get("/v1/models/smuggled/versions/1", &api_admin)
            .await
            .status(),
        404
    );

    // Roles, with a valid token: what the role may not do is a 403 naming the action.
    let role_cases: [(Role, &str, &str); 7] = [
        (Role::Viewer, approve.as_str(), "approval.approve"),
        (Role::Viewer, reject.as_str(), "approval.reject"),
        (Role::Analyst, approve.as_str(), "approval.approve"),
        (Role::Analyst, reject.as_str(), "approval.reject"),
        (Role::Viewer, "/console/models", "model.register"),
        (Role::Analyst, "/console/models", "model.register"),
        (Role::Approver, "/console/models", "model.register"),
    ];
    for (role, path, action) in role_cases {
        let mut b = Browser::new(&app);
        b.sign_in(&app.token(&format!("{}.user", role.as_str()), "acme", role))
            .await;
        let csrf = b.csrf().await;
        let mut form: Vec<(&str, &str)> = if path == "/console/models" {
            register_form(None, "by-role")
        } else {
            vec![("reason", "forged")]
        };
        form.push(("csrf", &csrf));
        let r = b.post(path, &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{role} {path}");
        let text = r.text().await.unwrap();
        assert!(
            text.contains(&format!("role {} may not perform {action}", role.as_str())),
            "{role} {path}: {text}"
        );
    }
    assert_eq!(
        app.get("/v1/models/by-role/versions/1", &api_admin)
            .await
            .status(),
        404
    );

    // And each route works with its token and the right role.
    let mut approver = Browser::new(&app);
    approver
        .sign_in(&app.token("apu", "acme", Role::Approver))
        .await;
    let c = approver.csrf().await;
    let r = approver
        .post(&approve, &[("csrf", &c), ("reason", "ok")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = approver
        .post(&reject, &[("csrf", &c), ("reason", "no")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = admin
        .post("/console/models", &register_form(Some(&csrf), "fine"))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    assert_eq!(
        app.get("/v1/models/fine/versions/1", &api_admin)
            .await
            .status(),
        200
    );
    let r = admin.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        admin.get("/console/queue").await.status(),
        StatusCode::SEE_OTHER,
        "signed out"
    );
    app.shutdown().await;
}

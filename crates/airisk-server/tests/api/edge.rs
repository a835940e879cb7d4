//! The service's edge against hostile or slow clients: bounded metrics labels, header and body
//! read timeouts, admission after authentication with a per-tenant share, the console's cookie
//! policy from configuration (never from `Host`), and the headers of every response.

use std::collections::BTreeSet;
use std::time::Duration;

use airisk_core::security::rbac::Role;
use airisk_server::{PublicUrl, ServerConfig};
use futures_util::StreamExt as _;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestApp;

/// The series of a `/metrics` text (name and labels, values stripped), and the size of the text
/// without its values: what must not grow with what clients send.
fn series(text: &str) -> (BTreeSet<String>, usize) {
    let mut keys = BTreeSet::new();
    let mut size = 0;
    for line in text.lines() {
        let key = if line.starts_with('#') {
            line
        } else {
            line.rsplit_once(' ').map_or(line, |(k, _)| k)
        };
        size += key.len() + 1;
        keys.insert(key.to_owned());
    }
    (keys, size)
}

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The `i`-th junk request: a made-up method or path, four kinds in turn.
async fn junk(app: &TestApp, i: usize) -> u16 {
    let (method, path) = match i % 4 {
        0 => (format!("JUNK{i}"), format!("/nowhere/{i}")),
        1 => (format!("X-{i}-METHOD"), "/v1/models".to_owned()),
        2 => ("GET".to_owned(), format!("/v1/junk/{i}/path")),
        _ => (format!("Z{}", "Q".repeat(i % 97)), format!("/{i}")),
    };
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    app.client
        .request(method, app.url(&path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn junk_methods_and_paths_add_no_metric_series() {
    let app = TestApp::spawn().await;
    // One of each kind, then the baseline (read twice: the first read adds its own series).
    for i in 0..8 {
        junk(&app, i).await;
    }
    // A 64 KiB method too: one label, like any other.
    let huge = Method::from_bytes("H".repeat(64 * 1024).as_bytes()).unwrap();
    let r = app
        .client
        .request(huge, app.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    metrics(&app).await;
    let (before, before_size) = series(&metrics(&app).await);
    // Thousands of requests, each with a method or path never seen before; 64 at a time, so the
    // test measures the label set and not the listen backlog of a loaded two-core machine.
    let statuses: Vec<u16> = futures_util::stream::iter((8..3008).map(|i| junk(&app, i)))
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| matches!(s, 404 | 405)),
        "{statuses:?}"
    );
    let text = metrics(&app).await;
    let (after, after_size) = series(&text);
    let new: Vec<_> = after.difference(&before).take(3).collect();
    assert!(
        new.is_empty(),
        "{} new series, e.g. {new:.200?}",
        after.len() - before.len()
    );
    assert_eq!(before, after);
    assert_eq!(before_size, after_size, "/metrics did not grow");
    assert!(
        text.contains("method=\"OTHER\",route=\"<unmatched>\""),
        "{text}"
    );
    assert!(
        text.contains("method=\"OTHER\",route=\"/v1/models\""),
        "{text}"
    );
    assert!(!text.contains("JUNK") && !text.contains("/nowhere/") && !text.contains("HHHH"));
    app.shutdown().await;
}

/// A raw connection that sent a request's head and part of its body, and holds the rest.
struct Held {
    stream: TcpStream,
    rest: Vec<u8>,
}

const EVENT: &[u8] = br#"{"action":"app.held","resource_type":"t","resource_id":"1"}"#;

/// Sends the head of `POST /v1/audit/events` (with `token`, if any) and the first byte of the
/// body; the rest is withheld.
async fn hold_post(app: &TestApp, token: Option<&str>) -> Held {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let head = format!(
        "POST /v1/audit/events HTTP/1.1\r\nhost: {}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        app.addr,
        EVENT.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&EVENT[..1]).await.unwrap();
    Held {
        stream,
        rest: EVENT[1..].to_vec(),
    }
}

/// Everything the server sends on `stream` until it closes it (bounded: a server that never
/// closes fails the test instead of hanging it).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server never closed the connection");
    String::from_utf8_lossy(&out).into_owned()
}

/// One response's head and body on `stream` (a `content-length` body).
async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let done = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let text = String::from_utf8_lossy(&out).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    return text;
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&out).into_owned(),
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    done.expect("no response within a minute")
}

/// The value of the gauge `name` in a `/metrics` text.
fn gauge(text: &str, name: &str) -> i64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(-1)
}

/// Polls `/metrics` until `admitted` and `waiting` read as given (deadline: a minute).
async fn until_admission(app: &TestApp, admitted: i64, waiting: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = metrics(app).await;
        if gauge(&text, "airisk_http_requests_admitted") == admitted
            && gauge(&text, "airisk_http_requests_waiting") == waiting
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "admission never reached {admitted} admitted, {waiting} waiting:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_tenants_slow_bodies_do_not_stall_another_tenant_or_unauthenticated_callers() {
    let app = TestApp::spawn_with(ServerConfig {
        max_in_flight: 4,
        max_in_flight_per_tenant: 2,
        // Long enough that tenant A's requests are still held when tenant B is done.
        body_read_timeout: Duration::from_secs(120),
        request_timeout: Duration::from_secs(20),
        ..ServerConfig::default()
    })
    .await;
    let a = app.token("ann", "tenant-a", Role::Analyst);
    let b = app.token("bob", "tenant-b", Role::Analyst);
    // Six slow bodies of tenant A: two hold its share, four wait in its own line.
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(hold_post(&app, Some(&a)).await);
    }
    until_admission(&app, 2, 4).await;
    // Callers without a token are answered at once, body or not: they never wait for a slot.
    for _ in 0..3 {
        let mut anon = hold_post(&app, None).await;
        let r = read_response(&mut anon.stream).await;
        assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    }
    // Tenant B's requests complete, reads and a write with a body, while A's are held.
    for _ in 0..3 {
        assert_eq!(app.get("/v1/approvals", &b).await.status(), 200);
    }
    let r = app
        .post(
            "/v1/audit/events",
            &b,
            &json!({"action": "app.quick", "resource_type": "t", "resource_id": "2"}),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    // Ordering: none of A's requests has been answered yet.
    for h in &held {
        let mut buf = [0u8; 1];
        match h.stream.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("tenant A's request was answered or closed early: {other:?}"),
        }
    }
    // A's requests were held, not lost: sent in full, every one completes.
    for h in &mut held {
        h.stream.write_all(&h.rest).await.unwrap();
    }
    for h in &mut held {
        let r = read_response(&mut h.stream).await;
        assert!(r.starts_with("HTTP/1.1 201"), "{r}");
    }
    until_admission(&app, 0, 0).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_body_that_never_arrives_is_a_408_and_frees_the_slot() {
    let app = TestApp::spawn_with(ServerConfig {
        max_in_flight: 1,
        body_read_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    let a = app.token("ann", "acme", Role::Analyst);
    let mut slow = hold_post(&app, Some(&a)).await;
    let r = read_to_close(&mut slow.stream).await;
    assert!(r.starts_with("HTTP/1.1 408"), "{r}");
    assert!(r.to_ascii_lowercase().contains("connection: close"), "{r}");
    let body: Value = serde_json::from_str(r.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["type"], "urn:airisk:problem:request-timeout");
    assert_eq!(body["status"], 408);
    // The only slot is free again.
    assert_eq!(app.get("/v1/approvals", &a).await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = TestApp::spawn_with(ServerConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    let r = read_to_close(&mut stream).await;
    assert!(!r.contains("200 OK"), "{r}");
    // The service still serves everyone else.
    let ok = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    app.shutdown().await;
}

/// The `Set-Cookie` of the sign-in page fetched with `host`.
async fn sign_in_cookie(app: &TestApp, host: &str) -> String {
    let r = app
        .client
        .get(app.url("/console/sign-in"))
        .header("host", host)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["set-cookie"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_https_public_url_makes_cookies_secure_whatever_the_host_header() {
    let mut config = ServerConfig {
        public_url: Some(PublicUrl::parse("https://risk.bank.example").unwrap()),
        ..ServerConfig::default()
    };
    // Even with insecure cookies asked for: an https URL wins.
    config.console.dangerous_insecure_cookies = true;
    let app = TestApp::spawn_with(config).await;
    for host in ["127.0.0.1", "localhost:8080", "[::1]", "risk.bank.example"] {
        let cookie = sign_in_cookie(&app, host).await;
        assert!(cookie.starts_with("__Host-airisk-console-pre="), "{cookie}");
        assert!(cookie.ends_with("; Secure"), "{cookie}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn cookies_are_insecure_only_when_configured_so() {
    // The default: Secure, even for a browser (or proxy) saying `Host: 127.0.0.1`.
    let app = TestApp::spawn().await;
    let cookie = sign_in_cookie(&app, "127.0.0.1").await;
    assert!(cookie.starts_with("__Host-airisk-console-pre="), "{cookie}");
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    app.shutdown().await;
    // Insecure cookies configured (dev mode does this), no https URL: plain names, no Secure,
    // whatever the host.
    let mut config = ServerConfig::default();
    config.console.dangerous_insecure_cookies = true;
    let app = TestApp::spawn_with(config).await;
    let cookie = sign_in_cookie(&app, "risk.bank.example").await;
    assert!(cookie.starts_with("airisk-console-pre="), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    app.shutdown().await;
}

/// Every kind of response: a `/v1` success, a 401, a 404 at an unknown path, a 405, a 404 under
/// `/v1`, the operations routes, a console page.
async fn every_kind_of_response(app: &TestApp) -> Vec<reqwest::Response> {
    let admin = app.token("ada", "acme", Role::Admin);
    let mut out = vec![
        app.get("/v1/approvals", &admin).await,
        app.get("/v1/models/none/versions/1", &admin).await,
        app.client
            .get(app.url("/v1/approvals"))
            .send()
            .await
            .unwrap(),
        app.client
            .get(app.url("/no/such/route"))
            .send()
            .await
            .unwrap(),
        app.client
            .delete(app.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    ];
    for path in [
        "/metrics",
        "/openapi.json",
        "/healthz",
        "/readyz",
        "/console/sign-in",
    ] {
        out.push(app.client.get(app.url(path)).send().await.unwrap());
    }
    let statuses: Vec<u16> = out.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses,
        [200, 404, 401, 404, 405, 200, 200, 200, 200, 200],
        "the responses are of every kind"
    );
    out
}

#[tokio::test]
async fn every_response_carries_nosniff_and_hsts_only_under_an_https_url() {
    let app = TestApp::spawn().await;
    for r in every_kind_of_response(&app).await {
        assert_eq!(
            r.headers()["x-content-type-options"],
            "nosniff",
            "{}",
            r.url()
        );
        assert!(r.headers().get("strict-transport-security").is_none());
    }
    app.shutdown().await;
    let app = TestApp::spawn_with(ServerConfig {
        public_url: Some(PublicUrl::parse("https://risk.bank.example").unwrap()),
        ..ServerConfig::default()
    })
    .await;
    for r in every_kind_of_response(&app).await {
        assert_eq!(
            r.headers()["x-content-type-options"],
            "nosniff",
            "{}",
            r.url()
        );
        assert_eq!(
            r.headers()["strict-transport-security"],
            "max-age=31536000",
            "{}",
            r.url()
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_signed_in_persons_console_pages_take_a_slot_of_their_tenants_share() {
    let app = TestApp::spawn_with(ServerConfig {
        max_in_flight: 2,
        max_in_flight_per_tenant: 1,
        body_read_timeout: Duration::from_secs(120),
        request_timeout: Duration::from_secs(20),
        console: airisk_server::ConsoleConfig::trusting_header("x-sso-jwt").unwrap(),
        ..ServerConfig::default()
    })
    .await;
    let a = app.token("ann", "tenant-a", Role::Analyst);
    let b = app.token("bob", "tenant-b", Role::Approver);
    // Tenant A's one slot is held by a slow body.
    let mut held = hold_post(&app, Some(&a)).await;
    until_admission(&app, 1, 0).await;
    // Tenant A's console page waits in A's line...
    let page = |token: String| {
        let client = app.client.clone();
        let url = app.url("/console/queue");
        async move {
            client
                .get(url)
                .header("x-sso-jwt", token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let a_page = tokio::spawn(page(a.clone()));
    until_admission(&app, 1, 1).await;
    // ...while tenant B's is served.
    assert_eq!(page(b).await, 200);
    assert!(!a_page.is_finished());
    // A's body arrives: its request completes, then its page.
    held.stream.write_all(&held.rest).await.unwrap();
    let r = read_response(&mut held.stream).await;
    assert!(r.starts_with("HTTP/1.1 201"), "{r}");
    assert_eq!(a_page.await.unwrap(), 200);
    until_admission(&app, 0, 0).await;
    app.shutdown().await;
}

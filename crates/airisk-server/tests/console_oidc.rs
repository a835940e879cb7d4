//! The console's sign-in through an OpenID provider, without a browser: a loopback provider
//! served by the test (discovery, JWKS, a token endpoint that checks the client's secret, the
//! PKCE verifier and single use of each code, and hands out the ID token the test chose), the
//! real router, two service instances sharing one store.
//!
//! The callback's refusals (wrong state, replayed answer, provider error, wrong nonce, an ID token
//! for another audience or issuer, an unmapped person), sign-in and sign-out records, sessions
//! shared by two instances and ended everywhere by a sign-out, idle and absolute timeouts on an
//! injected clock, and the session id, code, tokens and client secret never in the logs. The
//! browser test (`e2e/console-oidc.test.mjs`) runs the same flow against the real
//! `oidc-provider` in Chromium.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use airisk_core::governance::audit_logger::CheckpointPolicy;
use airisk_core::governance::audit_record::AuditRecord;
use airisk_core::ledger::{LedgerName, LedgerSigner};
use airisk_core::ports::{AuditQuery, AuditRepository, Clock, UuidV7Generator};
use airisk_core::security::tenant_context::TenantId;
use airisk_server::auth::JwtVerifier;
use airisk_server::mapping::{ClaimMapping, TenantSource};
use airisk_server::oidc::{OidcKeys, OidcOptions};
use airisk_server::throttle::DenialThrottleConfig;
use airisk_server::{
    AppState, ConsoleConfig, ConsoleOidcConfig, LedgerConfig, PublicUrl, ServerConfig,
    SessionConfig, SessionSecret, Stores,
};
use airisk_testkit::{CapturedLogs, InMemoryStore};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::redirect::Policy;
use ring::signature::KeyPair as _;
use serde_json::{Value, json};
use zeroize::Zeroizing;

const CLIENT_ID: &str = "airisk-console";
const CLIENT_SECRET: &str = "console-client-secret-that-must-never-be-logged";
const SESSION_SECRET: &[u8] = b"a-session-secret-of-at-least-thirty-two-bytes!!";
const IDLE: u64 = 600;
const ABSOLUTE: u64 = 1500;

// --- logs ------------------------------------------------------------------------------------

/// Every log line of this test binary (a global subscriber at DEBUG, installed once).
fn logs() -> &'static CapturedLogs {
    static LOGS: OnceLock<CapturedLogs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = CapturedLogs::new();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(captured.writer())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        captured
    })
}

// --- an injectable clock ---------------------------------------------------------------------

#[derive(Debug)]
struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    fn advance(&self, secs: u64) {
        let mut t = self.0.lock().unwrap();
        *t += chrono::Duration::seconds(i64::try_from(secs).unwrap());
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

// --- the provider ----------------------------------------------------------------------------

/// What the provider hands out for one code.
struct Grant {
    claims: Value,
    challenge: String,
}

struct ProviderState {
    base: String,
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
    grants: Mutex<HashMap<String, Grant>>,
    token_requests: AtomicU64,
}

struct Provider {
    state: Arc<ProviderState>,
}

impl Provider {
    async fn start() -> Provider {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(ProviderState {
            base: base.clone(),
            kid: "k1".into(),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": "k1",
                        "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())}),
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            grants: Mutex::new(HashMap::new()),
            token_requests: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Provider { state }
    }

    fn issuer(&self) -> &str {
        &self.state.base
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.state.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.state.encoding).unwrap()
    }

    /// The provider "authenticates" someone: `code` will give an ID token with `claims`, to the
    /// holder of the verifier of `challenge`.
    fn grant(&self, code: &str, claims: Value, challenge: &str) {
        self.state.grants.lock().unwrap().insert(
            code.to_owned(),
            Grant {
                claims,
                challenge: challenge.to_owned(),
            },
        );
    }

    fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// The provider "authenticates" `sub` of `group` for the sign-in `s` started: `code` gives
    /// their ID token, with the flow's nonce, to the holder of its verifier.
    fn grant_person(&self, code: &str, sub: &str, group: &str, s: &Started) {
        self.grant(code, self.person(sub, group, &s.nonce), &s.challenge);
    }

    /// The ID token claims of a person of `group`.
    fn person(&self, sub: &str, group: &str, nonce: &str) -> Value {
        let now = jsonwebtoken::get_current_timestamp();
        json!({
            "iss": self.issuer(), "aud": CLIENT_ID, "sub": sub, "exp": now + 300, "iat": now,
            "nonce": nonce, "groups": [group], "kind": "human", "name": format!("{sub} (display)"),
        })
    }
}

async fn discovery(State(s): State<Arc<ProviderState>>) -> impl IntoResponse {
    axum::Json(json!({
        "issuer": s.base,
        "jwks_uri": format!("{}/jwks", s.base),
        "authorization_endpoint": format!("{}/authorize", s.base),
        "token_endpoint": format!("{}/token", s.base),
        "end_session_endpoint": format!("{}/logout", s.base),
    }))
}

async fn jwks(State(s): State<Arc<ProviderState>>) -> impl IntoResponse {
    axum::Json(json!({"keys": [s.jwk]}))
}

/// The token endpoint: HTTP Basic client authentication, PKCE S256, each code once.
async fn token(
    State(s): State<Arc<ProviderState>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> axum::response::Response {
    s.token_requests.fetch_add(1, Ordering::SeqCst);
    let refuse = |error: &str| {
        (StatusCode::BAD_REQUEST, axum::Json(json!({"error": error}))).into_response()
    };
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return refuse("invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return refuse("unsupported_grant_type");
    }
    let Some(grant) = form
        .get("code")
        .and_then(|c| s.grants.lock().unwrap().remove(c))
    else {
        return refuse("invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    if challenge != grant.challenge {
        return refuse("invalid_grant");
    }
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(s.kid.clone());
    let id_token = jsonwebtoken::encode(&header, &grant.claims, &s.encoding).unwrap();
    axum::Json(json!({"access_token": "opaque", "token_type": "Bearer", "id_token": id_token}))
        .into_response()
}

// --- the service -----------------------------------------------------------------------------

struct Service {
    base: String,
    clock: Arc<ManualClock>,
}

/// An `airisk` service on `store`, signing console users in through `provider` (its `groups`
/// claim mapped: `risk-approvers` → approver in tenant `acme`), with `denial_throttle`.
async fn service_throttled(
    provider: &Provider,
    store: &Arc<InMemoryStore>,
    signer: &Arc<LedgerSigner>,
    denial_throttle: DenialThrottleConfig,
) -> Service {
    let clock = Arc::new(ManualClock(Mutex::new(Utc::now())));
    let roles: BTreeMap<String, String> = [
        ("risk-approvers".to_owned(), "approver".to_owned()),
        ("risk-analysts".to_owned(), "analyst".to_owned()),
    ]
    .into_iter()
    .collect();
    let keys = OidcKeys::new(OidcOptions::new(provider.issuer())).unwrap();
    keys.refresh().await.unwrap();
    let verifier = JwtVerifier::new("airisk", "airisk-api")
        .dangerous_with_hs256_secret(&[7u8; 32])
        .unwrap()
        .with_issuer(
            JwtVerifier::new(provider.issuer(), "airisk-api")
                .with_oidc(keys)
                .with_mapping(
                    ClaimMapping::new(
                        TenantSource::Fixed(TenantId::parse("acme").unwrap()),
                        "groups",
                        &roles,
                        &[],
                    )
                    .unwrap(),
                ),
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let public = PublicUrl::parse(&base).unwrap();
    let console = ConsoleConfig {
        dangerous_insecure_cookies: true,
        oidc: Some(
            ConsoleOidcConfig::new(
                provider.issuer(),
                CLIENT_ID,
                Zeroizing::new(CLIENT_SECRET.to_owned()),
                &public,
                &["openid".to_owned(), "profile".to_owned()],
                Some("Test IdP"),
            )
            .unwrap(),
        ),
        session: SessionConfig {
            secret: Some(SessionSecret::new(SESSION_SECRET).unwrap()),
            idle_timeout: Duration::from_secs(IDLE),
            absolute_timeout: Duration::from_secs(ABSOLUTE),
        },
        ..ConsoleConfig::default()
    };
    let state = AppState::new(
        Stores {
            audit: store.clone(),
            governance: store.clone(),
        },
        clock.clone(),
        Arc::new(UuidV7Generator),
        LedgerConfig {
            signer: signer.clone(),
            policy: CheckpointPolicy::default(),
        },
        verifier,
        ServerConfig {
            public_url: Some(public),
            console,
            denial_throttle,
            ..ServerConfig::default()
        },
    );
    tokio::spawn(airisk_server::serve(
        listener,
        state,
        std::future::pending::<()>(),
    ));
    Service { base, clock }
}

/// A browser: no redirects followed, cookies kept by name.
struct Browser {
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn keep(&mut self, r: &reqwest::Response) {
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let r = self
            .client
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&r);
        r
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let r = self
            .client
            .post(url)
            .header("cookie", self.cookie_header())
            .header("sec-fetch-site", "same-origin")
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&r);
        r
    }
}

/// The sign-in's parameters as the provider received them.
struct Started {
    state: String,
    nonce: String,
    challenge: String,
    location: String,
}

/// `GET /console/oidc/start`: the redirect to the provider, its parameters, the flow cookie.
async fn start(b: &mut Browser, svc: &Service) -> Started {
    let r = b.get(&format!("{}/console/oidc/start", svc.base)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let query: HashMap<String, String> = url_query(&location);
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(
        query["redirect_uri"],
        format!("{}/console/oidc/callback", svc.base)
    );
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["scope"], "openid profile");
    assert!(b.cookies.contains_key("airisk-console-flow"));
    Started {
        state: query["state"].clone(),
        nonce: query["nonce"].clone(),
        challenge: query["code_challenge"].clone(),
        location,
    }
}

fn url_query(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').unwrap().1;
    q.split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

fn pct_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

async fn callback(b: &mut Browser, svc: &Service, code: &str, state: &str) -> reqwest::Response {
    b.get(&format!(
        "{}/console/oidc/callback?code={code}&state={state}",
        svc.base
    ))
    .await
}

/// A whole sign-in of `sub` (group `group`); returns the callback's response.
async fn sign_in(
    b: &mut Browser,
    svc: &Service,
    provider: &Provider,
    sub: &str,
    group: &str,
) -> reqwest::Response {
    let s = start(b, svc).await;
    let code = format!("code-{}", uuid::Uuid::now_v7());
    provider.grant_person(&code, sub, group, &s);
    callback(b, svc, &code, &s.state).await
}

/// The CSRF token of a console page's forms.
fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

/// The records of `tenant`'s ledger with `action`.
async fn records(store: &InMemoryStore, tenant: &str, action: &str) -> Vec<AuditRecord> {
    let found = store
        .search(
            &TenantId::parse(tenant).unwrap(),
            &AuditQuery {
                action: Some(action.to_owned()),
                ..AuditQuery::default()
            },
            1000,
        )
        .await
        .unwrap();
    found
        .iter()
        .map(|e| AuditRecord::from_leaf_bytes(&e.leaf).unwrap())
        .collect()
}

struct World {
    provider: Provider,
    store: Arc<InMemoryStore>,
    signer: Arc<LedgerSigner>,
}

impl World {
    /// A service of this world (its provider, store and ledger key), default throttles.
    async fn service(&self) -> Service {
        self.service_throttled(DenialThrottleConfig::default())
            .await
    }

    /// A service of this world with `denial_throttle`.
    async fn service_throttled(&self, denial_throttle: DenialThrottleConfig) -> Service {
        service_throttled(&self.provider, &self.store, &self.signer, denial_throttle).await
    }

    /// A browser that has signed in to `svc` as `sub` of `risk-approvers` (checked: 200).
    async fn signed_in(&self, svc: &Service, sub: &str) -> Browser {
        let mut b = Browser::new();
        let r = sign_in(&mut b, svc, &self.provider, sub, "risk-approvers").await;
        assert_eq!(r.status(), StatusCode::OK, "{sub} signs in");
        b
    }
}

async fn world() -> World {
    logs();
    World {
        provider: Provider::start().await,
        store: Arc::new(InMemoryStore::new(Arc::new(
            airisk_core::ports::SystemClock,
        ))),
        signer: Arc::new(
            LedgerSigner::generate(LedgerName::parse("airisk.test/ledger").unwrap()).unwrap(),
        ),
    }
}

/// Opens a sealed session cookie the way the documented format says (HKDF-SHA256 of the
/// session secret, salt `airisk-console/v1`, info `session-seal`; AES-256-GCM, nonce first,
/// associated data `airisk-console/session`): an implementation independent of the service's.
fn open_session(cookie: &str) -> Value {
    struct Len(usize);
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"airisk-console/v1")
        .extract(SESSION_SECRET);
    let mut key = [0u8; 32];
    prk.expand(&[b"session-seal".as_slice()], Len(32))
        .unwrap()
        .fill(&mut key)
        .unwrap();
    let key = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &key).unwrap(),
    );
    let mut bytes = URL_SAFE_NO_PAD
        .decode(cookie.strip_prefix("v1.").unwrap())
        .unwrap();
    let (nonce, sealed) = bytes.split_at_mut(12);
    let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).unwrap();
    let plain = key
        .open_in_place(
            nonce,
            ring::aead::Aad::from(b"airisk-console/session".as_slice()),
            sealed,
        )
        .unwrap();
    serde_json::from_slice(plain).unwrap()
}

fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// --- the tests -------------------------------------------------------------------------------

#[tokio::test]
async fn a_person_signs_in_and_the_session_is_on_the_record_as_a_hash_only() {
    let w = world().await;
    let svc = w.service().await;
    let mut b = Browser::new();
    // The sign-in page offers the provider, and no pasted-token form outside dev mode.
    let page = b.get(&format!("{}/console/sign-in", svc.base)).await;
    let page = page.text().await.unwrap();
    assert!(page.contains("Sign in with Test IdP"), "{page}");
    assert!(!page.contains("name=\"token\""), "{page}");
    let r = b
        .post(
            &format!("{}/console/sign-in", svc.base),
            &[("csrf", "x"), ("token", "a.b.c")],
        )
        .await;
    assert_ne!(r.status(), StatusCode::SEE_OTHER);

    let s = start(&mut b, &svc).await;
    assert!(
        s.location
            .starts_with(&format!("{}/authorize?", w.provider.issuer()))
    );
    let code = "code-alice";
    w.provider
        .grant_person(code, "Alice.Approver", "risk-approvers", &s);
    let r = callback(&mut b, &svc, code, &s.state).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("url=/console/queue"));
    assert!(!b.cookies.contains_key("airisk-console-flow"));
    let cookie = b.cookies["airisk-console"].clone();
    // The queue, as the provider's person: canonical actor, mapped role, shown provider.
    let r = b.get(&format!("{}/console/queue", svc.base)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("alice.approver"), "{page}");
    assert!(page.contains(">approver<"), "{page}");
    assert!(page.contains("signed in through 127.0.0.1"), "{page}");
    assert!(page.contains("Session ends"), "{page}");
    // The record: the tenant's ledger holds the session's SHA-256, never the id itself.
    let session = open_session(&cookie);
    let sid = session["sid"].as_str().unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(sid).unwrap().len(), 32, "256 bits");
    let signed_in = records(&w.store, "acme", "auth.sign_in").await;
    assert_eq!(signed_in.len(), 1);
    let e = signed_in[0].event();
    assert_eq!(e.actor().as_str(), "alice.approver");
    assert_eq!(e.resource_id(), sha256_hex(sid));
    let leaves = w
        .store
        .entries(&TenantId::parse("acme").unwrap(), 0, 100)
        .await
        .unwrap();
    assert!(!leaves.is_empty());
    for leaf in &leaves {
        assert!(!String::from_utf8_lossy(&leaf.leaf).contains(sid));
    }
    // A second sign-in draws a new session id (no fixation).
    let mut again = Browser::new();
    let r = sign_in(
        &mut again,
        &svc,
        &w.provider,
        "Alice.Approver",
        "risk-approvers",
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let other = open_session(&again.cookies["airisk-console"]);
    assert_ne!(other["sid"], session["sid"]);
}

#[tokio::test]
async fn a_wrong_or_missing_state_is_refused_before_the_provider_is_asked_and_recorded() {
    let w = world().await;
    let svc = w.service().await;
    let mut b = Browser::new();
    let s = start(&mut b, &svc).await;
    w.provider
        .grant_person("code-1", "mallory", "risk-approvers", &s);
    let mut tampered = s.state.clone();
    tampered.replace_range(0..1, if tampered.starts_with('A') { "B" } else { "A" });
    let r = callback(&mut b, &svc, "code-1", &tampered).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("not this browser"));
    assert!(!b.cookies.contains_key("airisk-console"));
    // The flow is spent: even the right state does not work any more.
    let r = callback(&mut b, &svc, "code-1", &s.state).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // No flow cookie at all (an answer forged into another browser): refused as well.
    let mut stranger = Browser::new();
    let r = callback(&mut stranger, &svc, "code-1", &s.state).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        w.provider.token_requests(),
        0,
        "the provider was never asked"
    );
    // On the system ledger: no tenant is known before the provider answers.
    let refused = records(&w.store, "system", "auth.sign_in_refused").await;
    assert_eq!(refused.len(), 3);
    assert!(
        refused
            .iter()
            .all(|r| r.event().reason().unwrap().starts_with("bad state"))
    );
}

#[tokio::test]
async fn refusals_before_a_tenant_is_known_cannot_grow_the_system_ledger_without_bound() {
    let w = world().await;
    // Three refusals in a burst, then one a minute: the fourth and fifth made-up answers in a
    // row are throttled.
    let throttle = DenialThrottleConfig {
        per_minute: 1,
        burst: 3,
        ..DenialThrottleConfig::default()
    };
    let svc = w.service_throttled(throttle).await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        // A browser that never started a sign-in, with a made-up state: anyone can send this.
        let mut stranger = Browser::new();
        let r = callback(&mut stranger, &svc, "code-x", &format!("made-up-{i}")).await;
        statuses.push(r.status());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = r.headers()[reqwest::header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry), "Retry-After {retry}");
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::BAD_REQUEST,
            StatusCode::BAD_REQUEST,
            StatusCode::BAD_REQUEST,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
        ]
    );
    // Exactly the answered refusals are on the record; the throttled ones wrote nothing.
    assert_eq!(
        records(&w.store, "system", "auth.sign_in_refused")
            .await
            .len(),
        3
    );
    // A person whose answer is right is not held up by the strangers' bucket.
    let mut b = Browser::new();
    let s = start(&mut b, &svc).await;
    w.provider
        .grant_person("code-1", "alice", "risk-approvers", &s);
    let r = callback(&mut b, &svc, "code-1", &s.state).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(records(&w.store, "acme", "auth.sign_in").await.len(), 1);
}

#[tokio::test]
async fn a_replayed_answer_is_refused_and_a_used_code_is_refused_by_the_provider() {
    let w = world().await;
    let svc = w.service().await;
    let mut b = Browser::new();
    let s = start(&mut b, &svc).await;
    let flow = b.cookies["airisk-console-flow"].clone();
    w.provider
        .grant_person("code-r", "rita", "risk-approvers", &s);
    assert_eq!(
        callback(&mut b, &svc, "code-r", &s.state).await.status(),
        200
    );
    assert_eq!(w.provider.token_requests(), 1);
    // The same answer again, with the flow cookie put back (a copied browser): refused here.
    let mut copy = Browser::new();
    copy.cookies.insert("airisk-console-flow".into(), flow);
    let r = callback(&mut copy, &svc, "code-r", &s.state).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("already completed"));
    assert_eq!(w.provider.token_requests(), 1);
    assert!(!copy.cookies.contains_key("airisk-console"));
    // The used code inside a fresh flow: the provider refuses it; so does the service.
    let mut late = Browser::new();
    let s2 = start(&mut late, &svc).await;
    let r = callback(&mut late, &svc, "code-r", &s2.state).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r.text().await.unwrap().contains("invalid_grant"));
    assert!(!late.cookies.contains_key("airisk-console"));
    let refused = records(&w.store, "system", "auth.sign_in_refused").await;
    let reasons: Vec<&str> = refused
        .iter()
        .map(|r| r.event().reason().unwrap())
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].starts_with("bad state: this sign-in was already completed"));
    assert!(reasons[1].starts_with("provider error: the token endpoint refused"));
}

#[tokio::test]
async fn a_provider_error_is_refused_and_recorded() {
    let w = world().await;
    let svc = w.service().await;
    let mut b = Browser::new();
    let s = start(&mut b, &svc).await;
    let r = b
        .get(&format!(
            "{}/console/oidc/callback?error=access_denied&error_description=user%20cancelled&state={}",
            svc.base, s.state
        ))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("access_denied"));
    let refused = records(&w.store, "system", "auth.sign_in_refused").await;
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0]
            .event()
            .reason()
            .unwrap()
            .starts_with("provider error: the identity provider answered access_denied")
    );
}

#[tokio::test]
async fn id_tokens_with_a_wrong_nonce_audience_or_issuer_or_unmapped_are_refused() {
    let w = world().await;
    let svc = w.service().await;
    let now = jsonwebtoken::get_current_timestamp();
    let p = &w.provider;
    type Claims<'a> = Box<dyn Fn(&str) -> Value + 'a>;
    let cases: Vec<(&str, Claims, StatusCode, &str)> = vec![
        (
            "wrong nonce",
            Box::new(move |_| p.person("nina", "risk-approvers", "another-nonce")),
            StatusCode::UNAUTHORIZED,
            "nonce",
        ),
        (
            "an access token for the API (audience)",
            Box::new(move |nonce| {
                let mut c = p.person("nina", "risk-approvers", nonce);
                c["aud"] = json!("airisk-api");
                c
            }),
            StatusCode::UNAUTHORIZED,
            "audience",
        ),
        (
            "another client's token (azp)",
            Box::new(move |nonce| {
                let mut c = p.person("nina", "risk-approvers", nonce);
                c["aud"] = json!([CLIENT_ID, "another-client"]);
                c["azp"] = json!("another-client");
                c
            }),
            StatusCode::UNAUTHORIZED,
            "azp",
        ),
        (
            "another issuer",
            Box::new(move |nonce| {
                let mut c = p.person("nina", "risk-approvers", nonce);
                c["iss"] = json!("https://evil.example");
                c
            }),
            StatusCode::UNAUTHORIZED,
            "issuer",
        ),
        (
            "expired",
            Box::new(move |nonce| {
                let mut c = p.person("nina", "risk-approvers", nonce);
                c["exp"] = json!(now - 3600);
                c
            }),
            StatusCode::UNAUTHORIZED,
            "expired",
        ),
        (
            "unmapped",
            Box::new(move |nonce| p.person("uma", "canteen-staff", nonce)),
            StatusCode::FORBIDDEN,
            "not mapped",
        ),
    ];
    for (what, claims, status, says) in &cases {
        let mut b = Browser::new();
        let s = start(&mut b, &svc).await;
        let code = format!("code-{what}");
        w.provider.grant(&code, claims(&s.nonce), &s.challenge);
        let r = callback(&mut b, &svc, &code, &s.state).await;
        assert_eq!(r.status(), *status, "{what}");
        let page = r.text().await.unwrap();
        assert!(page.contains(says), "{what}: {page}");
        assert!(!b.cookies.contains_key("airisk-console"), "{what}");
    }
    // A nonce or azp refusal comes after the signature and mapping: the tenant's ledger has it.
    let tenant = records(&w.store, "acme", "auth.sign_in_refused").await;
    let reasons: Vec<&str> = tenant.iter().map(|r| r.event().reason().unwrap()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].starts_with("bad nonce"));
    assert!(reasons[1].contains("azp"));
    assert!(tenant.iter().all(|r| r.event().actor().as_str() == "nina"));
    // A refused token proves nothing about who sent it: the system ledger.
    let system = records(&w.store, "system", "auth.sign_in_refused").await;
    assert_eq!(system.len(), 3);
    // The unmapped person: `auth.refused` in the tenant's ledger, like on the API.
    let unmapped = records(&w.store, "acme", "auth.refused").await;
    assert_eq!(unmapped.len(), 1);
    assert_eq!(unmapped[0].event().actor().as_str(), "uma");
    assert!(records(&w.store, "acme", "auth.sign_in").await.is_empty());
}

#[tokio::test]
async fn two_instances_share_a_session_and_a_sign_out_ends_it_on_both() {
    let w = world().await;
    let a = w.service().await;
    let b_svc = w.service().await;
    let mut b = w.signed_in(&a, "olga").await;
    let cookie = b.cookies["airisk-console"].clone();
    // The other instance reads the same session.
    let r = b.get(&format!("{}/console/queue", b_svc.base)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    let csrf = csrf_of(&page);
    // Sign out on B (with B's form: the CSRF key is shared too).
    let r = b
        .post(
            &format!("{}/console/sign-out", b_svc.base),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    // On to the provider's end-session endpoint, with the ID token as hint.
    let end = page
        .split("url=")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert!(
        end.starts_with(&format!("{}/logout?", w.provider.issuer())),
        "{end}"
    );
    let q = url_query(&end);
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(
        q["post_logout_redirect_uri"],
        format!("{}/console/sign-in?signed_out=1", b_svc.base)
    );
    assert!(q["id_token_hint"].split('.').count() == 3);
    assert!(!b.cookies.contains_key("airisk-console"));
    // The old cookie, kept by anyone, works on neither instance.
    for svc in [&a, &b_svc] {
        let mut thief = Browser::new();
        thief
            .cookies
            .insert("airisk-console".into(), cookie.clone());
        let r = thief.get(&format!("{}/console/queue", svc.base)).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", svc.base);
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/console/sign-in")
        );
    }
    let out = records(&w.store, "acme", "auth.sign_out").await;
    assert_eq!(out.len(), 1);
    let sid = open_session(&cookie)["sid"].as_str().unwrap().to_owned();
    assert_eq!(out[0].event().resource_id(), sha256_hex(&sid));
    // Signing out ends the session, not the record of it: no expiry record follows.
    assert!(
        records(&w.store, "acme", "auth.session_expired")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn an_idle_session_expires_and_is_recorded_once() {
    let w = world().await;
    let svc = w.service().await;
    let mut b = w.signed_in(&svc, "ida").await;
    let queue = format!("{}/console/queue", svc.base);
    svc.clock.advance(IDLE - 1);
    assert_eq!(b.get(&queue).await.status(), StatusCode::OK, "used in time");
    let kept = b.cookies["airisk-console"].clone();
    // Unused for the idle timeout since that request (well within the absolute timeout).
    svc.clock.advance(IDLE);
    let r = b.get(&queue).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(!b.cookies.contains_key("airisk-console"));
    let expired = records(&w.store, "acme", "auth.session_expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].event().actor().as_str(), "ida");
    assert!(expired[0].event().reason().unwrap().contains("idle"));
    // An older copy of the cookie is just as over, and not recorded twice.
    let mut copy = Browser::new();
    copy.cookies.insert("airisk-console".into(), kept);
    assert_eq!(copy.get(&queue).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        records(&w.store, "acme", "auth.session_expired")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_busy_session_still_ends_at_the_absolute_timeout() {
    let w = world().await;
    let svc = w.service().await;
    let mut b = w.signed_in(&svc, "abe").await;
    let queue = format!("{}/console/queue", svc.base);
    let mut elapsed = 0;
    while elapsed + (IDLE - 1) < ABSOLUTE {
        svc.clock.advance(IDLE - 1);
        elapsed += IDLE - 1;
        assert_eq!(
            b.get(&queue).await.status(),
            StatusCode::OK,
            "at {elapsed} s"
        );
    }
    svc.clock.advance(ABSOLUTE - elapsed);
    assert_eq!(b.get(&queue).await.status(), StatusCode::SEE_OTHER);
    let expired = records(&w.store, "acme", "auth.session_expired").await;
    assert_eq!(expired.len(), 1);
    assert!(expired[0].event().reason().unwrap().contains("absolute"));
}

#[tokio::test]
async fn a_tampered_or_foreign_session_cookie_signs_nobody_in() {
    let w = world().await;
    let svc = w.service().await;
    let b = w.signed_in(&svc, "tom").await;
    let cookie = b.cookies["airisk-console"].clone();
    let mut bytes = URL_SAFE_NO_PAD
        .decode(cookie.strip_prefix("v1.").unwrap())
        .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let queue = format!("{}/console/queue", svc.base);
    for bad in [
        format!("v1.{}", URL_SAFE_NO_PAD.encode(&bytes)),
        "v1.".to_owned(),
        // An unsealed token-looking value: no pasted tokens outside dev mode.
        "eyJhbGciOiJIUzI1NiJ9.e30.x".to_owned(),
    ] {
        let mut m = Browser::new();
        m.cookies.insert("airisk-console".into(), bad.clone());
        assert_eq!(m.get(&queue).await.status(), StatusCode::SEE_OTHER, "{bad}");
    }
}

#[tokio::test]
async fn the_session_id_code_tokens_and_client_secret_never_reach_the_logs() {
    let w = world().await;
    let svc = w.service().await;
    let mut b = Browser::new();
    let s = start(&mut b, &svc).await;
    let claims = w.provider.person("lou", "risk-approvers", &s.nonce);
    let id_token = w.provider.sign(&claims);
    w.provider.grant("code-secret-lou", claims, &s.challenge);
    assert_eq!(
        callback(&mut b, &svc, "code-secret-lou", &s.state)
            .await
            .status(),
        200
    );
    let cookie = b.cookies["airisk-console"].clone();
    let sid = open_session(&cookie)["sid"].as_str().unwrap().to_owned();
    let r = b.get(&format!("{}/console/queue", svc.base)).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let csrf = csrf_of(&page);
    let r = b
        .post(
            &format!("{}/console/sign-out", svc.base),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), 200);
    let text = logs().text();
    assert!(
        text.contains("signed in through the OpenID provider"),
        "the capture works"
    );
    for (what, secret) in [
        ("session id", sid.as_str()),
        ("session cookie", cookie.as_str()),
        ("code", "code-secret-lou"),
        ("state", s.state.as_str()),
        ("nonce", s.nonce.as_str()),
        ("client secret", CLIENT_SECRET),
        ("ID token signature", id_token.rsplit('.').next().unwrap()),
    ] {
        assert!(!text.contains(secret), "the {what} was logged");
    }
    // Nor in the Debug output of the configuration.
    let config = ConsoleOidcConfig::new(
        w.provider.issuer(),
        CLIENT_ID,
        Zeroizing::new(CLIENT_SECRET.to_owned()),
        &PublicUrl::parse("https://risk.bank.example").unwrap(),
        &[],
        None,
    )
    .unwrap();
    assert!(!format!("{config:?}").contains(CLIENT_SECRET));
    assert_eq!(
        config.redirect_uri,
        "https://risk.bank.example/console/oidc/callback"
    );
}

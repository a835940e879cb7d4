//! The API against an OpenID provider's discovery document and JWKS: a loopback provider served
//! by the test (its key set switchable, its JWKS requests counted), the real router and the real
//! `OidcKeys` client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

#[path = "api/test_ca.rs"]
mod test_ca;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airisk_core::governance::audit_logger::CheckpointPolicy;
use airisk_core::ledger::{LedgerName, LedgerSigner};
use airisk_core::ports::{SystemClock, UuidV7Generator};
use airisk_core::security::rbac::Role;
use airisk_server::auth::{Claims, JwtVerifier};
use airisk_server::oidc::{OidcKeys, OidcOptions};
use airisk_server::{AppState, LedgerConfig, ServerConfig, Stores};
use airisk_testkit::InMemoryStore;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::KeyPair as _;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::test_ca::TlsListener;

const AUDIENCE: &str = "airisk-api";

/// A signing key of the provider: its JWK (public) and how to sign with it.
struct Key {
    kid: String,
    alg: Algorithm,
    jwk: Value,
    encoding: EncodingKey,
}

impl Key {
    fn ed25519(kid: &str) -> Key {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Key {
            kid: kid.to_owned(),
            alg: Algorithm::EdDSA,
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                        "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())}),
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        }
    }

    fn p256(kid: &str) -> Key {
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        // Uncompressed point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        Key {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            jwk: json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                        "y": URL_SAFE_NO_PAD.encode(&point[33..65])}),
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        }
    }

    fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// The loopback provider: discovery and JWKS, switchable, counted.
struct Provider {
    issuer: String,
    jwks: Mutex<Value>,
    up: AtomicBool,
    jwks_hits: AtomicU64,
    discovery_hits: AtomicU64,
}

impl Provider {
    async fn start() -> Arc<Provider> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}/realm", listener.local_addr().unwrap());
        let provider = Arc::new(Provider {
            issuer,
            jwks: Mutex::new(json!({"keys": []})),
            up: AtomicBool::new(true),
            jwks_hits: AtomicU64::new(0),
            discovery_hits: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/realm/.well-known/openid-configuration", get(discovery))
            .route("/realm/keys", get(jwks))
            .with_state(provider.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        provider
    }

    fn publish(&self, keys: &[&Key]) {
        *self.jwks.lock().unwrap() =
            json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    }

    fn hits(&self) -> u64 {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    fn claims(&self, sub: &str, role: Role) -> Claims {
        let mut c = Claims::new(sub, "acme", role, 300);
        c.iss.clone_from(&self.issuer);
        c.aud = AUDIENCE.to_owned();
        c
    }
}

async fn discovery(State(p): State<Arc<Provider>>) -> impl IntoResponse {
    p.discovery_hits.fetch_add(1, Ordering::SeqCst);
    if !p.up.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({}))).into_response();
    }
    axum::Json(json!({"issuer": p.issuer, "jwks_uri": format!("{}/keys", p.issuer)}))
        .into_response()
}

async fn jwks(State(p): State<Arc<Provider>>) -> impl IntoResponse {
    p.jwks_hits.fetch_add(1, Ordering::SeqCst);
    if !p.up.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({}))).into_response();
    }
    axum::Json(p.jwks.lock().unwrap().clone()).into_response()
}

struct App {
    base: String,
    client: reqwest::Client,
    keys: Arc<OidcKeys>,
}

impl App {
    /// The real router over an in-memory store, verifying with `options`' provider only. No
    /// start-up fetch unless `fetch_now`; the refresher runs when `schedule`.
    async fn spawn(options: OidcOptions, fetch_now: bool, schedule: bool) -> App {
        let keys = OidcKeys::new(options).unwrap();
        if fetch_now {
            keys.refresh().await.unwrap();
        }
        if schedule {
            keys.spawn_refresher();
        }
        let auth = JwtVerifier::new(&keys.options().issuer, AUDIENCE)
            .with_leeway(5)
            .with_oidc(keys.clone());
        App::spawn_with(auth, keys).await
    }

    /// The real router verifying with `auth`; `keys` is the provider the test watches.
    async fn spawn_with(auth: JwtVerifier, keys: Arc<OidcKeys>) -> App {
        let store = Arc::new(InMemoryStore::new(Arc::new(SystemClock)));
        let state = AppState::new(
            Stores {
                audit: store.clone(),
                governance: store,
            },
            Arc::new(SystemClock),
            Arc::new(UuidV7Generator),
            LedgerConfig {
                signer: Arc::new(
                    LedgerSigner::generate(LedgerName::parse("airisk.test/ledger").unwrap())
                        .unwrap(),
                ),
                policy: CheckpointPolicy::default(),
            },
            auth,
            ServerConfig::default(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(airisk_server::serve(
            listener,
            state,
            std::future::pending::<()>(),
        ));
        App {
            base,
            client: reqwest::Client::new(),
            keys,
        }
    }

    /// Status and body of an authenticated read.
    async fn call(&self, token: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}/v1/approvals", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn ready(&self) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }
}

fn options(p: &Provider) -> OidcOptions {
    OidcOptions::new(&p.issuer)
}

/// Polls `probe` until it holds, within a generous deadline (no sleep stands for an ordering).
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !probe().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn eddsa_and_es256_tokens_of_the_provider_are_accepted() {
    let p = Provider::start().await;
    let (ed, ec) = (Key::ed25519("ed-1"), Key::p256("ec-1"));
    p.publish(&[&ed, &ec]);
    let app = App::spawn(options(&p), true, false).await;
    for key in [&ed, &ec] {
        let (status, body) = app.call(&key.sign(&p.claims("alice", Role::Viewer))).await;
        assert_eq!(status, 200, "{:?}: {body}", key.alg);
    }
    // A key the provider does not publish signs nothing, whatever kid it claims.
    let forger = Key::ed25519("ed-1");
    assert_eq!(
        app.call(&forger.sign(&p.claims("alice", Role::Viewer)))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn a_rotated_key_is_followed_without_a_restart_and_a_dropped_key_stops_working() {
    let p = Provider::start().await;
    let (old, new) = (Key::ed25519("k-old"), Key::p256("k-new"));
    p.publish(&[&old]);
    let mut o = options(&p);
    o.min_refresh_gap = Duration::from_millis(1);
    o.refresh_every = Duration::from_millis(200);
    let app = App::spawn(o, true, true).await;
    let old_token = old.sign(&p.claims("alice", Role::Viewer));
    let new_token = new.sign(&p.claims("bob", Role::Viewer));
    assert_eq!(app.call(&old_token).await.0, 200);
    // The provider rotates: the new key first, the old one kept as second.
    p.publish(&[&new, &old]);
    // The new key's token names an unknown kid: one fetch, then it verifies.
    let (status, body) = app.call(&new_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.call(&old_token).await.0, 200);
    // The provider drops the old key: the scheduled refresh drops it too.
    p.publish(&[&new]);
    eventually("the old key's token is refused", || async {
        app.call(&old_token).await.0 == 401
    })
    .await;
    assert_eq!(app.call(&new_token).await.0, 200);
}

#[tokio::test]
async fn a_flood_of_made_up_kids_causes_at_most_one_fetch_per_gap() {
    let p = Provider::start().await;
    let real = Key::ed25519("real");
    p.publish(&[&real]);
    let mut o = options(&p);
    o.min_refresh_gap = Duration::from_secs(3600);
    // No start-up fetch: the first unknown kid makes the one fetch of the gap.
    let app = Arc::new(App::spawn(o, false, false).await);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let app = app.clone();
        let claims = p.claims("mallory", Role::Viewer);
        tasks.push(tokio::spawn(async move {
            let forged = Key::ed25519(&format!("made-up-{i}")).sign(&claims);
            app.call(&forged).await.0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    assert_eq!(p.hits(), 1, "JWKS fetches for 64 made-up kids");
    assert_eq!(app.keys.fetches(), 1);
    // The real key, fetched by that one refresh, works; more made-up kids fetch nothing.
    assert_eq!(
        app.call(&real.sign(&p.claims("alice", Role::Viewer)))
            .await
            .0,
        200
    );
    assert_eq!(
        app.call(&Key::ed25519("another").sign(&p.claims("m", Role::Viewer)))
            .await
            .0,
        401
    );
    assert_eq!(p.hits(), 1);
}

#[tokio::test]
async fn a_token_for_another_audience_or_issuer_is_refused() {
    let p = Provider::start().await;
    let key = Key::ed25519("k");
    p.publish(&[&key]);
    let app = App::spawn(options(&p), true, false).await;
    let mut c = p.claims("alice", Role::Viewer);
    c.aud = "another-api".into();
    let (status, body) = app.call(&key.sign(&c)).await;
    assert_eq!(status, 401);
    assert!(
        body["detail"].as_str().unwrap().contains("audience"),
        "{body}"
    );
    let mut c = p.claims("alice", Role::Viewer);
    c.iss = "https://elsewhere.example/realm".into();
    let (status, body) = app.call(&key.sign(&c)).await;
    assert_eq!(status, 401);
    assert!(
        body["detail"].as_str().unwrap().contains("issuer"),
        "{body}"
    );
    // `aud` as a list that includes this service is accepted (RFC 7519 §4.1.3).
    let mut v = serde_json::to_value(p.claims("alice", Role::Viewer)).unwrap();
    v["aud"] = json!(["account", AUDIENCE]);
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k".into());
    let token = jsonwebtoken::encode(&header, &v, &key.encoding).unwrap();
    assert_eq!(app.call(&token).await.0, 200);
}

#[tokio::test]
async fn a_provider_down_at_start_up_means_not_ready_with_the_reason_until_it_answers() {
    let p = Provider::start().await;
    let key = Key::ed25519("k");
    p.publish(&[&key]);
    p.up.store(false, Ordering::SeqCst);
    let mut o = options(&p);
    o.min_refresh_gap = Duration::from_millis(50);
    let keys_fail = OidcKeys::new(o.clone()).unwrap().refresh().await;
    assert!(keys_fail.is_err());
    let app = App::spawn(o, false, true).await;
    let (status, body) = app.ready().await;
    assert_eq!(status, 503, "{body}");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains(&p.issuer), "{reason}");
    let token = key.sign(&p.claims("alice", Role::Viewer));
    assert_eq!(app.call(&token).await.0, 401);
    // The provider comes up: the refresher's retry makes the service ready, no restart.
    p.up.store(true, Ordering::SeqCst);
    eventually("ready", || async { app.ready().await.0 == 200 }).await;
    assert_eq!(app.call(&token).await.0, 200);
}

#[tokio::test]
async fn a_provider_down_later_keeps_the_cached_keys_only_within_the_bound() {
    let p = Provider::start().await;
    let key = Key::ed25519("k");
    p.publish(&[&key]);
    let mut o = options(&p);
    o.refresh_every = Duration::from_millis(50);
    o.max_stale = Duration::from_secs(5);
    let app = App::spawn(o, true, true).await;
    let token = key.sign(&p.claims("alice", Role::Viewer));
    p.up.store(false, Ordering::SeqCst);
    let tried = p.discovery_hits.load(Ordering::SeqCst);
    // The refresher tries and fails (twice, so one failure has completed); the last good keys
    // still verify.
    eventually("a failed refresh", || async {
        p.discovery_hits.load(Ordering::SeqCst) > tried + 1
    })
    .await;
    assert_eq!(app.call(&token).await.0, 200);
    assert_eq!(app.ready().await.0, 200);
    // Past the bound, the keys lapse: tokens refused, not ready, with the reason.
    eventually("the keys lapse", || async {
        app.call(&token).await.0 == 401
    })
    .await;
    let (status, body) = app.ready().await;
    assert_eq!(status, 503);
    assert!(
        body["reason"].as_str().unwrap().contains("older than"),
        "{body}"
    );
}

#[test]
fn issuers_and_ca_files_are_checked_when_configured() {
    for bad in [
        "http://idp.bank.example/realm",
        "ftp://idp.bank.example",
        "idp.bank.example",
    ] {
        assert!(OidcKeys::new(OidcOptions::new(bad)).is_err(), "{bad}");
    }
    assert!(OidcKeys::new(OidcOptions::new("https://idp.bank.example/realm")).is_ok());
    assert!(OidcKeys::new(OidcOptions::new("http://127.0.0.1:9/realm")).is_ok());
    let mut o = OidcOptions::new("https://idp.bank.example/realm");
    o.ca_file = Some(std::env::temp_dir().join("airisk-no-such-ca.pem"));
    assert!(OidcKeys::new(o).is_err());
}

// ---------------------------------------------------------------------------------------------
// Against a real OpenID provider: `oidc-provider` (a certified implementation) run by node from
// e2e/oidc-provider.mjs. Never skipped: without node or e2e/node_modules the test fails and says
// how to install them.

const CLIENT_SECRET: &str = "airisk-tests-client-secret-0123456789";

/// A running `e2e/oidc-provider.mjs`; killed on drop.
struct RealProvider {
    child: std::process::Child,
    issuer: String,
    port: u16,
    state: std::path::PathBuf,
}

impl Drop for RealProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RealProvider {
    /// Starts the provider with `keys` (`KID:ALG,…`, the first signs) on `port` (0: any).
    async fn start(state: &std::path::Path, keys: &str, port: u16) -> RealProvider {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let script = root.join("e2e/oidc-provider.mjs");
        assert!(
            root.join("e2e/node_modules/oidc-provider").is_dir(),
            "e2e/node_modules/oidc-provider is missing: run `bash scripts/setup-browser-tests.sh` \
             (or `npm ci` in e2e/) and test again"
        );
        let mut child = std::process::Command::new("node")
            .arg(&script)
            .args(["--state", state.to_str().unwrap(), "--keys", keys])
            .args(["--port", &port.to_string()])
            .env("OIDC_TEST_CLIENT_SECRET", CLIENT_SECRET)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node (Node.js 20 or newer) runs e2e/oidc-provider.mjs");
        let stdout = child.stdout.take().unwrap();
        // Blocks until the provider prints its issuer (or exits).
        let issuer = tokio::task::spawn_blocking(move || {
            use std::io::BufRead as _;
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|l| l.strip_prefix("listening ").map(str::to_owned))
        })
        .await
        .unwrap()
        .expect("the provider printed `listening <issuer>`");
        let port = issuer.rsplit(':').next().unwrap().parse().unwrap();
        RealProvider {
            child,
            issuer,
            port,
            state: state.to_owned(),
        }
    }

    /// Stops this provider and starts it again on the same port with `keys`.
    async fn restart(self, keys: &str) -> RealProvider {
        let (state, port) = (self.state.clone(), self.port);
        drop(self);
        RealProvider::start(&state, keys, port).await
    }

    /// An access token from the client_credentials grant, for `resource`.
    async fn token(&self, resource: &str) -> String {
        let r: Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "airisk-tests"),
                ("client_secret", CLIENT_SECRET),
                ("scope", "api"),
                ("resource", resource),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token: {r}"))
            .to_owned()
    }

    /// JWKS requests the provider has answered since it started.
    async fn jwks_requests(&self) -> u64 {
        let r: Value = reqwest::get(format!("{}/__stats", self.issuer))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["jwks"].as_u64().unwrap()
    }
}

const API: &str = "https://airisk.test/api";

fn state_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("airisk-oidc-provider-{}", uuid::Uuid::now_v7()))
}

#[tokio::test]
async fn a_real_provider_s_tokens_are_accepted_and_its_key_rotation_followed() {
    let state = state_dir();
    let provider = RealProvider::start(&state, "old:EdDSA", 0).await;
    let mut o = OidcOptions::new(&provider.issuer);
    o.min_refresh_gap = Duration::from_millis(1);
    o.refresh_every = Duration::from_millis(200);
    let app = App::spawn(o, true, true).await;
    let old_token = provider.token(API).await;
    let (status, body) = app.call(&old_token).await;
    assert_eq!(status, 200, "{body}");
    // A token the provider issued for another resource server (audience) is refused.
    let (status, body) = app
        .call(&provider.token("https://other.test/api").await)
        .await;
    assert_eq!(status, 401);
    assert!(
        body["detail"].as_str().unwrap().contains("audience"),
        "{body}"
    );
    // Another issuer holding the very same key: refused for its issuer.
    let other = RealProvider::start(&state, "old:EdDSA", 0).await;
    let (status, body) = app.call(&other.token(API).await).await;
    assert_eq!(status, 401);
    assert!(
        body["detail"].as_str().unwrap().contains("issuer"),
        "{body}"
    );
    drop(other);
    // Rotation: a new key signs, the old one is still published as second. No airisk restart.
    let provider = provider.restart("new:ES256,old:EdDSA").await;
    let new_token = provider.token(API).await;
    assert_ne!(
        jsonwebtoken::decode_header(&new_token).unwrap().kid,
        jsonwebtoken::decode_header(&old_token).unwrap().kid
    );
    let (status, body) = app.call(&new_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.call(&old_token).await.0, 200);
    // The provider drops the old key: its tokens stop working at the next scheduled refresh.
    let provider = provider.restart("new:ES256").await;
    eventually("the dropped key's token is refused", || async {
        app.call(&old_token).await.0 == 401
    })
    .await;
    assert_eq!(app.call(&new_token).await.0, 200);
    drop(provider);
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test]
async fn made_up_kids_against_a_real_provider_cause_one_jwks_fetch() {
    let state = state_dir();
    let provider = RealProvider::start(&state, "k:EdDSA", 0).await;
    let mut o = OidcOptions::new(&provider.issuer);
    o.min_refresh_gap = Duration::from_secs(3600);
    let app = Arc::new(App::spawn(o, false, false).await);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let app = app.clone();
        let mut claims = Claims::new("mallory", "acme", Role::Viewer, 300);
        claims.iss.clone_from(&provider.issuer);
        claims.aud = AUDIENCE.to_owned();
        tasks.push(tokio::spawn(async move {
            let forged = Key::ed25519(&format!("made-up-{i}")).sign(&claims);
            app.call(&forged).await.0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    assert_eq!(provider.jwks_requests().await, 1);
    // That one fetch brought the real key.
    assert_eq!(app.call(&provider.token(API).await).await.0, 200);
    assert_eq!(provider.jwks_requests().await, 1);
    drop(provider);
    let _ = std::fs::remove_dir_all(&state);
}

// ---------------------------------------------------------------------------------------------
// Claim mapping: a second issuer whose tokens carry groups and an immutable object id, no tenant
// or role claim of airisk's own.

#[tokio::test]
async fn a_mapped_issuer_s_groups_give_one_role_and_unmapped_or_ambiguous_tokens_are_refused_on_the_record()
 {
    use airisk_server::mapping::{ClaimMapping, TenantSource};
    let (p1, p2) = (Provider::start().await, Provider::start().await);
    let (k1, k2) = (Key::ed25519("k1"), Key::p256("k2"));
    p1.publish(&[&k1]);
    p2.publish(&[&k2]);
    let keys1 = OidcKeys::new(options(&p1)).unwrap();
    let keys2 = OidcKeys::new(options(&p2)).unwrap();
    keys1.refresh().await.unwrap();
    keys2.refresh().await.unwrap();
    let table = [
        ("model-risk-approvers", "approver"),
        ("risk-readers", "viewer"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    let mapped = JwtVerifier::new(&p2.issuer, AUDIENCE)
        .with_oidc(keys2)
        .with_mapping(
            ClaimMapping::new(
                TenantSource::Fixed(
                    airisk_core::security::tenant_context::TenantId::parse("bank-b").unwrap(),
                ),
                "groups",
                &table,
                &[],
            )
            .unwrap(),
        )
        .with_identity_claim("oid")
        .unwrap();
    let auth = JwtVerifier::new(&p1.issuer, AUDIENCE)
        .with_oidc(keys1.clone())
        .with_issuer(mapped)
        .unwrap();
    let app = App::spawn_with(auth, keys1).await;
    let person = |oid: &str, groups: Value| {
        // What a provider issues: no tenant or role of airisk's, a role claim that must not count.
        let mut c = p2.claims("Alice.Display@bank-b.example", Role::Admin);
        c.tenant.clear();
        c.role = "admin".into();
        c.extra.insert("oid".into(), oid.into());
        c.extra.insert("groups".into(), groups);
        k2.sign(&c)
    };
    // One mapped group: accepted as a viewer of bank-b (the `role: admin` claim counts for nothing).
    let viewer = person("OID-1", json!(["staff", "risk-readers"]));
    assert_eq!(app.call(&viewer).await.0, 200);
    let r = app
        .client
        .post(format!("{}/v1/models", app.base))
        .bearer_auth(&viewer)
        .json(
            &json!({"name": "m", "version": "1", "checksum": format!("sha256:{}", "ab".repeat(32)),
                      "artifact_uri": "s3://models/m/1.onnx", "justification": "test"}),
        )
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(
        !body["detail"].as_str().unwrap().contains("mapped"),
        "{body}"
    );
    // No mapped group, or groups mapping to two roles: 403 with the reason.
    for (oid, groups, why) in [
        ("OID-2", json!(["staff"]), "mapped"),
        (
            "OID-3",
            json!(["model-risk-approvers", "risk-readers"]),
            "several roles",
        ),
    ] {
        let (status, body) = app.call(&person(oid, groups)).await;
        assert_eq!(status, 403, "{body}");
        assert!(body["detail"].as_str().unwrap().contains(why), "{body}");
    }
    // Without the immutable id: refused, never the display name instead.
    let mut c = p2.claims("Alice.Display@bank-b.example", Role::Viewer);
    c.extra.insert("groups".into(), json!(["risk-readers"]));
    assert_eq!(app.call(&k2.sign(&c)).await.0, 401);
    // An issuer neither verifier has: refused for its issuer.
    let mut c = p2.claims("x", Role::Viewer);
    c.iss = "https://elsewhere.example".into();
    let (status, body) = app.call(&k2.sign(&c)).await;
    assert_eq!(status, 401);
    assert!(
        body["detail"].as_str().unwrap().contains("issuer"),
        "{body}"
    );
    // The refusals are on bank-b's ledger, under the subject's stable id.
    let mut auditor = p1.claims("auditor", Role::Viewer);
    auditor.tenant = "bank-b".into();
    let page: Value = app
        .client
        .get(format!("{}/v1/audit/events?action=auth.refused", app.base))
        .bearer_auth(k1.sign(&auditor))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let records: Vec<&Value> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["record"])
        .filter(|r| r["action"] == "auth.refused")
        .collect();
    let actors: Vec<&str> = records
        .iter()
        .map(|r| r["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, ["oid-2", "oid-3"], "{page}");
    assert!(records.iter().all(|r| r["outcome"] == "denied"), "{page}");
}

// ---------------------------------------------------------------------------------------------
// TLS to the provider: a private CA bundle is trusted when configured, and only then.

/// A provider served over TLS with a certificate for `localhost` from a fresh private CA; the
/// CA's PEM path and the issuer.
async fn tls_provider(dir: &std::path::Path, key: &Key) -> (std::path::PathBuf, String) {
    let tls = TlsListener::bind(dir).await;
    let issuer = format!("{}/realm", tls.url());
    let provider = Arc::new(Provider {
        issuer: issuer.clone(),
        jwks: Mutex::new(json!({"keys": [key.jwk.clone()]})),
        up: AtomicBool::new(true),
        jwks_hits: AtomicU64::new(0),
        discovery_hits: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/realm/.well-known/openid-configuration", get(discovery))
        .route("/realm/keys", get(jwks))
        .with_state(provider);
    (tls.serve(app), issuer)
}

#[tokio::test]
async fn a_provider_behind_a_private_ca_is_reached_with_the_ca_bundle_only() {
    let dir = state_dir();
    let key = Key::p256("tls-key");
    let (ca, issuer) = tls_provider(&dir, &key).await;
    // The Mozilla roots do not know the bank's CA: refused, and the reason says TLS.
    let err = OidcKeys::new(OidcOptions::new(&issuer))
        .unwrap()
        .refresh()
        .await
        .unwrap_err();
    assert!(err.contains("TLS"), "{err}");
    // With the CA bundle: keys fetched, and the provider's token accepted over the API.
    let mut o = OidcOptions::new(&issuer);
    o.ca_file = Some(ca);
    let app = App::spawn(o, true, false).await;
    let mut c = Claims::new("alice", "acme", Role::Viewer, 300);
    c.iss.clone_from(&issuer);
    c.aud = AUDIENCE.to_owned();
    assert_eq!(app.call(&key.sign(&c)).await.0, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

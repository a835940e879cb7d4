//! The HTTP API in process (the real router over the in-memory store): an arbitrary method,
//! route, query string and JSON body, with a valid admin token, never gets a 500 and never panics.
//! Input: byte 0 picks the route, byte 1 the method, then `query \0 body`.
#![no_main]
use std::sync::{Arc, OnceLock};

use airisk_core::governance::audit_logger::CheckpointPolicy;
use airisk_core::ledger::{LedgerName, LedgerSigner};
use airisk_core::ports::{SystemClock, UuidV7Generator};
use airisk_core::security::rbac::Role;
use airisk_server::auth::{Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER, JwtVerifier, TokenSigner};
use airisk_server::{AppState, LedgerConfig, ServerConfig, Stores, router};
use airisk_testkit::InMemoryStore;
use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

const SECRET: &[u8; 32] = b"fuzz-secret-fuzz-secret-fuzz-sec";
const ROUTES: &[&str] = &[
    "/v1/models",
    "/v1/models/m/versions",
    "/v1/models/m/versions/1",
    "/v1/models/m/versions/1/approve",
    "/v1/models/m/versions/1/reject",
    "/v1/models/m/versions/1/deployments",
    "/v1/prompts",
    "/v1/prompts/p",
    "/v1/prompts/p/versions",
    "/v1/prompts/p/history",
    "/v1/prompts/p/labels/production",
    "/v1/approvals",
    "/v1/approvals/0190f5d2-7a4e-7cc0-8a4e-000000000000",
    "/v1/approvals/0190f5d2-7a4e-7cc0-8a4e-000000000000/approve",
    "/v1/approvals/0190f5d2-7a4e-7cc0-8a4e-000000000000/cancel",
    "/v1/audit/events",
    "/v1/audit/events/0",
    "/v1/audit/verify",
    "/v1/audit/checkpoint",
    "/v1/audit/proofs/inclusion",
    "/v1/audit/proofs/consistency",
    "/v1/audit/export",
];
const METHODS: &[Method] = &[Method::GET, Method::POST, Method::PUT];

struct World {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    token: String,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let store = Arc::new(InMemoryStore::new(Arc::new(SystemClock)));
        let auth = JwtVerifier::new(DEFAULT_ISSUER, DEFAULT_AUDIENCE)
            .dangerous_with_hs256_secret(SECRET)
            .expect("secret");
        let state = AppState::new(
            Stores { audit: store.clone(), governance: store },
            Arc::new(SystemClock),
            Arc::new(UuidV7Generator),
            LedgerConfig {
                signer: Arc::new(
                    LedgerSigner::generate(LedgerName::parse("fuzz.example/ledger").expect("name"))
                        .expect("key"),
                ),
                policy: CheckpointPolicy::default(),
            },
            auth,
            ServerConfig::default(),
        );
        let token = TokenSigner::Hs256(zeroize::Zeroizing::new(SECRET.to_vec()))
            .sign(&Claims::new("fuzz", "acme", Role::Admin, 3_600 * 24 * 365))
            .expect("token");
        World {
            runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt"),
            router: router(state),
            token,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let [r, m, rest @ ..] = data else { return };
    let w = world();
    let path = ROUTES[usize::from(*r) % ROUTES.len()];
    let method = METHODS[usize::from(*m) % METHODS.len()].clone();
    let (query, body) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&rest[..0], rest),
    };
    let Ok(query) = std::str::from_utf8(query) else { return };
    let uri = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
    let Ok(request) = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {}", w.token))
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let response = w
        .runtime
        .block_on(w.router.clone().oneshot(request))
        .expect("infallible");
    assert!(
        response.status().as_u16() != 500,
        "500 for {path} {:?}",
        String::from_utf8_lossy(body)
    );
});

//! Signing in through the bank's OpenID provider: the authorization-code flow with PKCE (S256),
//! `state` and `nonce` (OpenID Connect Core 1.0 §3.1, RFC 7636), and the provider's sign-out
//! (RP-Initiated Logout 1.0).
//!
//! 1. `GET /console/oidc/start` draws a `state`, a `nonce` and a PKCE verifier (256 random bits
//!    each), seals them in a short-lived flow cookie (see [`super::session_store`]) and sends the
//!    browser to the provider's discovered `authorization_endpoint`.
//! 2. The provider sends the browser back to `GET /console/oidc/callback` with `code` and `state`.
//!    The state must equal the flow cookie's (constant time) and not have been used by this
//!    process; the flow cookie is cleared whatever happens. The code is exchanged at the
//!    `token_endpoint` (HTTP Basic client authentication, the PKCE verifier, the same redirect
//!    URI). The ID token is verified like an access token of that issuer (signature with the
//!    provider's published keys, `iss`, `exp`/`nbf` with the leeway, identity claim, claim mapping,
//!    person claim) but with `aud` = the client id; then its `nonce` must be the flow's, and an
//!    `azp`, when present, the client id. An unmapped person is refused (403) and recorded as on
//!    the API.
//! 3. A new session (a fresh random id) is recorded (`auth.sign_in`) and sealed in the session
//!    cookie. The answer is a page that moves on to the console by itself: a `SameSite=Strict`
//!    cookie set while arriving from the provider's site would not be sent on a redirect of that
//!    same cross-site navigation.
//!
//! Every refusal is a page saying why, and a `auth.sign_in_refused` record (bad state, replay,
//! provider error, refused ID token, bad nonce) in the tenant's ledger, or the system ledger when
//! no tenant is known yet. Refusals of the second kind need no account, so they share one bucket
//! of the denial throttle (per process): past it they are answered `429` with `Retry-After` and
//! write nothing, and an anonymous client cannot grow the system ledger without bound. Neither
//! the code, the tokens, the state nor the session id is logged.

use std::sync::Arc;

use airisk_core::governance::audit_record::Outcome;
use airisk_core::security::tenant_context::{ActorId, Principal, PrincipalKind, TenantId};
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use maud::html;
use serde::Deserialize;

use super::cookies::{CookiePolicy, FLOW_MAX_AGE, MAX_TOKEN_LEN, read_cookie};
use super::layout::{self, pct, public_page};
use super::session::{MaybeSigned, safe_next, see_other};
use super::session_store::{
    self, FLOW_PURPOSE, FlowData, Record, SESSION_PURPOSE, SealKeys, SessionData, hash_hex,
    random_token,
};
use super::{Console, ConsoleOidcConfig};
use crate::auth::AuthError;
use crate::mapping::SYSTEM_TENANT;
use crate::oidc::{OidcKeys, ProviderEndpoints};
use crate::state::AppState;
use crate::throttle::PrincipalKey;

/// `GET /console/oidc/start`'s query.
#[derive(Debug, Deserialize)]
pub(crate) struct StartQuery {
    next: Option<String>,
}

/// The provider's answer on the callback.
#[derive(Debug, Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The provider's keys and endpoints for the configured issuer.
fn provider(
    app: &AppState,
    oidc: &ConsoleOidcConfig,
) -> Option<(Arc<OidcKeys>, ProviderEndpoints)> {
    let keys = app
        .auth()
        .oidc_sources()
        .into_iter()
        .find(|k| k.issuer() == oidc.issuer)?;
    let endpoints = keys.endpoints()?;
    Some((keys, endpoints))
}

/// The provider's configuration and the sealing keys, or why the sign-in cannot run: not found
/// without sign-in through a provider, unavailable without a session secret.
fn configured(console: &Console) -> Result<(&ConsoleOidcConfig, &SealKeys), super::ConsoleError> {
    let oidc = console
        .config
        .oidc
        .as_ref()
        .ok_or_else(|| super::ConsoleError::not_found("sign-in through an OpenID provider"))?;
    let seal = console
        .seal
        .as_ref()
        .ok_or(super::ConsoleError::Unavailable)?;
    Ok((oidc, seal))
}

/// A refusal page (the reason is safe to show: it never holds a token, code or state).
fn refused(status: StatusCode, reason: &str, policy: CookiePolicy) -> Response {
    let content = html! {
        p class="flash flash-bad" role="alert" id="sign-in-error" { "Sign-in refused: " (reason) "." }
        p { "Nothing was signed in. " a href="/console/sign-in" { "Back to the sign-in page" } "." }
        p class="muted small" { "Correlation id " code { (crate::context::correlation_id()) } }
    };
    let mut response = public_page(status, "Sign-in refused", content);
    if let Some(c) = policy.clear_flow() {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// `GET /console/oidc/start`: to the provider's sign-in page.
pub(crate) async fn start(
    State(app): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    MaybeSigned(_, policy): MaybeSigned,
    Query(q): Query<StartQuery>,
) -> Response {
    let (oidc, seal) = match configured(&console) {
        Ok(configured) => configured,
        Err(e) => return e.into_response(),
    };
    let Some((_, endpoints)) = provider(&app, oidc) else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "the identity provider has not answered yet (its discovery document or keys could \
             not be fetched); try again shortly",
            policy,
        );
    };
    let (Some(state), Some(nonce), Some(verifier)) =
        (random_token(), random_token(), random_token())
    else {
        return super::ConsoleError::Unavailable.into_response();
    };
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    let flow = FlowData {
        state: state.clone(),
        nonce: nonce.clone(),
        verifier,
        next: safe_next(q.next.as_deref()),
        created: session_store::now(&app),
    };
    let Some(sealed) = seal.seal(FLOW_PURPOSE, &flow) else {
        return super::ConsoleError::Unavailable.into_response();
    };
    let mut scopes = vec!["openid".to_owned()];
    scopes.extend(oidc.scopes.iter().filter(|s| *s != "openid").cloned());
    let scope = scopes.join(" ");
    let params = [
        ("response_type", "code"),
        ("client_id", oidc.client_id.as_str()),
        ("redirect_uri", oidc.redirect_uri.as_str()),
        ("scope", scope.as_str()),
        ("state", state.as_str()),
        ("nonce", nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let location = with_query(&endpoints.authorization_endpoint, &params);
    let mut response = see_other(&location);
    if let Some(c) = policy.set_flow(&sealed) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// `url` with `params` appended to its query.
fn with_query(url: &str, params: &[(&str, &str)]) -> String {
    let query = params
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&");
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// Records a refused sign-in; a failure to record is logged (the refusal stands either way).
async fn record_refusal(
    app: &AppState,
    tenant: Option<&str>,
    actor: Option<&str>,
    presented_state: Option<&str>,
    reason: &str,
) {
    let resource = presented_state.map_or_else(|| "none".to_owned(), hash_hex);
    let recorded = session_store::record(
        app,
        Record {
            tenant,
            actor,
            action: "auth.sign_in_refused",
            outcome: Outcome::Denied,
            resource_id: &resource,
            reason: Some(reason.to_owned()),
            metadata: None,
        },
    )
    .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, "console: could not record a refused sign-in");
    }
}

/// The one bucket of the denial throttle that every refusal before a tenant is known shares (per
/// process): such a caller has no verified identity to be keyed by.
fn anonymous_key() -> Option<PrincipalKey> {
    Some((
        TenantId::parse(SYSTEM_TENANT).ok()?,
        ActorId::canonical(ANONYMOUS_SIGN_IN).ok()?,
    ))
}

/// The actor of the throttle bucket shared by refusals before a tenant is known.
const ANONYMOUS_SIGN_IN: &str = "console-sign-in";

/// Why a callback is refused: what is recorded, where, and what the browser is shown. Every
/// refusal of [`callback`] is one of these, answered by [`Refusal::answer`].
#[derive(Debug)]
enum Refusal {
    /// Before any tenant is known (the flow, its state, the provider, the ID token): recorded in
    /// the system ledger as `recorded`, answered with `status` and `shown`, within the denial
    /// throttle's one shared bucket for such refusals (see [`Refusal::answer`]).
    Anonymous {
        status: StatusCode,
        recorded: String,
        shown: String,
    },
    /// The ID token is valid but names a person the claim mapping does not admit: recorded as the
    /// API records it, answered 403.
    NotMapped(AuthError),
    /// After the ID token named its tenant and subject (its nonce, its `azp`, its principal):
    /// recorded in that tenant's ledger as `recorded`, answered 401 with `shown`.
    Known {
        tenant: String,
        actor: String,
        recorded: String,
        shown: String,
    },
}

impl Refusal {
    /// The flow cookie, its age, its state or its first use is wrong (400, `bad state: …`).
    fn bad_state(reason: &str) -> Self {
        Refusal::Anonymous {
            status: StatusCode::BAD_REQUEST,
            recorded: format!("bad state: {reason}"),
            shown: reason.to_owned(),
        }
    }

    /// The provider refused, or could not be asked (`provider error: …`).
    fn provider(status: StatusCode, reason: String) -> Self {
        Refusal::Anonymous {
            status,
            recorded: format!("provider error: {reason}"),
            shown: reason,
        }
    }

    /// The ID token failed verification before its tenant could be trusted (401).
    fn id_token(error: &AuthError) -> Self {
        let reason = format!("the ID token was refused: {error}");
        Refusal::Anonymous {
            status: StatusCode::UNAUTHORIZED,
            recorded: reason.clone(),
            shown: reason,
        }
    }

    /// Records the refusal and answers it. An anonymous refusal is written only while the denial
    /// throttle's one shared bucket for refusals before a tenant is known has a token: anyone can
    /// send a callback with a made-up `state`, so without this bound an anonymous client could
    /// grow the system ledger without limit; once the bucket is empty the answer is `429` with
    /// `Retry-After` and nothing is written (as the API's throttle does). The other two kinds are
    /// recorded in a tenant's ledger and not throttled here.
    async fn answer(
        self,
        app: &AppState,
        presented: Option<&str>,
        policy: CookiePolicy,
    ) -> Response {
        match self {
            Refusal::Anonymous {
                status,
                recorded,
                shown,
            } => {
                let key = anonymous_key();
                if let Some(key) = &key
                    && let Err(retry_after) = app.denials().check(key)
                {
                    let mut response = refused(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too many refused sign-ins from unknown browsers; try again shortly",
                        policy,
                    );
                    if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
                    {
                        response.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                    return response;
                }
                record_refusal(app, None, None, presented, &recorded).await;
                if let Some(key) = key {
                    app.denials().charge(key);
                }
                refused(status, &shown, policy)
            }
            Refusal::NotMapped(e) => {
                crate::mapping::record_refusal(app, &e, &crate::context::correlation_id()).await;
                refused(StatusCode::FORBIDDEN, &e.to_string(), policy)
            }
            Refusal::Known {
                tenant,
                actor,
                recorded,
                shown,
            } => {
                record_refusal(app, Some(&tenant), Some(&actor), presented, &recorded).await;
                refused(StatusCode::UNAUTHORIZED, &shown, policy)
            }
        }
    }
}

/// The token endpoint's answer (only what is read of it).
#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

/// The token endpoint's error answer (RFC 6749 §5.2).
#[derive(Deserialize)]
struct TokenError {
    error: String,
}

/// What a callback that passed every check of [`accept`] brings: the flow it ends, the ID token
/// (kept for the provider's sign-out), who signed in, and the name to show.
struct Accepted {
    flow: FlowData,
    id_token: String,
    principal: Principal,
    name: Option<String>,
}

/// `GET /console/oidc/callback`.
pub(crate) async fn callback(
    State(app): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    MaybeSigned(_, policy): MaybeSigned,
    headers: axum::http::HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let (oidc, seal) = match configured(&console) {
        Ok(configured) => configured,
        Err(e) => return e.into_response(),
    };
    let now = session_store::now(&app);
    let flow_cookie = read_cookie(&headers, policy.flow_name());
    let Accepted {
        flow,
        id_token,
        principal,
        name,
    } = match accept(&app, &console, oidc, seal, flow_cookie, &q, now).await {
        Ok(accepted) => accepted,
        Err(refusal) => return refusal.answer(&app, q.state.as_deref(), policy).await,
    };
    // 6. A new session, on the record first.
    let Some(sid) = random_token() else {
        return super::ConsoleError::Unavailable.into_response();
    };
    let since = match session_store::record(
        &app,
        Record {
            tenant: Some(principal.tenant().as_str()),
            actor: Some(principal.actor().as_str()),
            action: "auth.sign_in",
            outcome: Outcome::Success,
            resource_id: &hash_hex(&sid),
            reason: None,
            metadata: Some(serde_json::json!({
                "issuer": oidc.issuer,
                "role": principal.role().as_str(),
                "person": principal.kind() == PrincipalKind::Human,
            })),
        },
    )
    .await
    {
        Ok(seq) => seq,
        Err(e) => {
            tracing::error!(error = %e, "console: could not record a sign-in; refused");
            return super::ConsoleError::Api(crate::ApiError::Unavailable(
                "the sign-in could not be recorded".to_owned(),
            ))
            .into_response();
        }
    };
    let mut session = SessionData {
        sid,
        tenant: principal.tenant().as_str().to_owned(),
        actor: principal.actor().as_str().to_owned(),
        role: principal.role().as_str().to_owned(),
        person: principal.kind() == PrincipalKind::Human,
        issuer: oidc.issuer.clone(),
        name,
        created: now,
        seen: now,
        since,
        id_token: Some(id_token),
    };
    let mut sealed = seal.seal(SESSION_PURPOSE, &session);
    if sealed.as_ref().is_some_and(|s| s.len() > MAX_TOKEN_LEN) {
        // Too large for a cookie with the ID token: sign out at the provider by client id.
        session.id_token = None;
        sealed = seal.seal(SESSION_PURPOSE, &session);
    }
    let Some(sealed) = sealed.filter(|s| s.len() <= MAX_TOKEN_LEN) else {
        return super::ConsoleError::Unavailable.into_response();
    };
    tracing::info!(
        tenant = %principal.tenant(),
        actor = %principal.actor(),
        role = %principal.role(),
        issuer = %oidc.issuer,
        "console: signed in through the OpenID provider"
    );
    let max_age = console.config.session.absolute_timeout.as_secs();
    let mut response = layout::moving_on_page(
        "Signed in",
        &flow.next,
        "You are signed in. Continuing to the console…",
    );
    let h = response.headers_mut();
    for cookie in [
        policy.set_session_for(&sealed, max_age),
        policy.clear_flow(),
        policy.clear_presession(),
    ]
    .into_iter()
    .flatten()
    {
        h.append(header::SET_COOKIE, cookie);
    }
    response
}

/// Steps 1 to 5 of the callback: the flow this browser started and its state, once only; the
/// provider's answer; the code exchanged for an ID token; the ID token, its nonce and `azp`.
///
/// # Errors
/// The [`Refusal`] of the first check that fails.
async fn accept(
    app: &AppState,
    console: &Console,
    oidc: &ConsoleOidcConfig,
    seal: &SealKeys,
    flow_cookie: Option<&str>,
    q: &CallbackQuery,
    now: u64,
) -> Result<Accepted, Refusal> {
    // 1. The flow this browser started, and its state.
    let flow = flow_cookie
        .and_then(|v| seal.open::<FlowData>(FLOW_PURPOSE, v))
        .ok_or_else(|| {
            Refusal::bad_state("no sign-in was started in this browser, or it took too long")
        })?;
    if now.saturating_sub(flow.created) > FLOW_MAX_AGE {
        return Err(Refusal::bad_state("the sign-in took too long"));
    }
    let presented = q.state.as_deref();
    let state_ok =
        presented.is_some_and(|p| session_store::same(p.as_bytes(), flow.state.as_bytes()));
    if !state_ok {
        return Err(Refusal::bad_state(
            "the state the provider sent back is not this browser's",
        ));
    }
    // 2. Once only (a replayed callback, with the flow cookie copied, stops here).
    let first_use = match console.used_states.lock() {
        Ok(mut used) => {
            used.retain(|_, until| *until > now);
            used.insert(hash_hex(&flow.state), now + FLOW_MAX_AGE + 1)
                .is_none()
        }
        Err(_) => false,
    };
    if !first_use {
        return Err(Refusal::bad_state(
            "this sign-in was already completed (a replayed answer)",
        ));
    }
    // 3. The provider's own refusal.
    if let Some(error) = &q.error {
        let description = q
            .error_description
            .as_deref()
            .map(|d| format!(" ({})", d.chars().take(200).collect::<String>()))
            .unwrap_or_default();
        return Err(Refusal::provider(
            StatusCode::UNAUTHORIZED,
            format!(
                "the identity provider answered {}{description}",
                error.chars().take(64).collect::<String>()
            ),
        ));
    }
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(Refusal::provider(
            StatusCode::BAD_REQUEST,
            "the identity provider sent no authorization code".to_owned(),
        ));
    };
    // 4. The code for the tokens.
    let Some((keys, endpoints)) = provider(app, oidc) else {
        return Err(Refusal::provider(
            StatusCode::SERVICE_UNAVAILABLE,
            "the identity provider's endpoints are not known (it has not answered)".to_owned(),
        ));
    };
    let id_token = exchange(&keys, &endpoints, oidc, code, &flow.verifier)
        .await
        .map_err(|reason| Refusal::provider(StatusCode::BAD_GATEWAY, reason))?;
    // 5. The ID token.
    let claims = match app
        .auth()
        .verify_id_token(&id_token, &oidc.issuer, &oidc.client_id)
        .await
    {
        Ok(c) => c,
        Err(e @ AuthError::NotMapped { .. }) => return Err(Refusal::NotMapped(e)),
        Err(e) => return Err(Refusal::id_token(&e)),
    };
    let known = |recorded: String, shown: String| Refusal::Known {
        tenant: claims.tenant.clone(),
        actor: claims.sub.clone(),
        recorded,
        shown,
    };
    let nonce_ok = claims
        .extra
        .get("nonce")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|n| session_store::same(n.as_bytes(), flow.nonce.as_bytes()));
    if !nonce_ok {
        let reason = "the ID token's nonce is not this sign-in's";
        return Err(known(format!("bad nonce: {reason}"), reason.to_owned()));
    }
    if let Some(azp) = claims.extra.get("azp")
        && azp.as_str() != Some(oidc.client_id.as_str())
    {
        let reason = "the ID token was issued to another client (azp)";
        return Err(known(reason.to_owned(), reason.to_owned()));
    }
    let principal = claims.principal().map_err(|e| {
        let reason = format!("the ID token was refused: {e}");
        known(reason.clone(), reason)
    })?;
    let name = ["name", "preferred_username"]
        .iter()
        .find_map(|c| claims.extra.get(*c).and_then(serde_json::Value::as_str))
        .map(|n| n.chars().take(80).collect::<String>());
    Ok(Accepted {
        flow,
        id_token,
        principal,
        name,
    })
}

/// The code for the ID token at the token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.5), the client
/// authenticated with HTTP Basic (RFC 6749 §2.3.1).
async fn exchange(
    keys: &OidcKeys,
    endpoints: &ProviderEndpoints,
    oidc: &ConsoleOidcConfig,
    code: &str,
    verifier: &str,
) -> Result<String, String> {
    let basic = zeroize::Zeroizing::new(format!(
        "Basic {}",
        STANDARD.encode(format!(
            "{}:{}",
            form_encode(&oidc.client_id),
            form_encode(&oidc.client_secret)
        ))
    ));
    let body = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", oidc.redirect_uri.as_str()),
        ("code_verifier", verifier),
    ]
    .iter()
    .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    let (status, bytes) = keys
        .post_form(&endpoints.token_endpoint, &basic, body)
        .await
        .map_err(|e| format!("the token endpoint could not be reached: {e}"))?;
    if !status.is_success() {
        let error = serde_json::from_slice::<TokenError>(&bytes)
            .map(|e| e.error.chars().take(64).collect::<String>())
            .unwrap_or_else(|_| "no error code".to_owned());
        return Err(format!(
            "the token endpoint refused the code (HTTP {}, {error})",
            status.as_u16()
        ));
    }
    serde_json::from_slice::<TokenResponse>(&bytes)
        .ok()
        .and_then(|t| t.id_token)
        .ok_or_else(|| "the token endpoint answered without an ID token".to_owned())
}

/// `application/x-www-form-urlencoded` encoding of one value (also what RFC 6749 §2.3.1 asks
/// for the client id and secret before HTTP Basic).
fn form_encode(value: &str) -> String {
    pct(value)
}

/// Where the browser goes after signing out here: the provider's end-session endpoint, when it
/// has one, with the ID token as hint and the configured return address; else `None`.
pub(crate) fn end_session_url(
    app: &AppState,
    oidc: &ConsoleOidcConfig,
    session: &SessionData,
) -> Option<String> {
    let (_, endpoints) = provider(app, oidc)?;
    let end = endpoints.end_session_endpoint?;
    let mut params: Vec<(&str, &str)> = Vec::new();
    if let Some(t) = session.id_token.as_deref() {
        params.push(("id_token_hint", t));
    }
    params.push(("client_id", oidc.client_id.as_str()));
    params.push((
        "post_logout_redirect_uri",
        oidc.post_logout_redirect_uri.as_str(),
    ));
    Some(with_query(&end, &params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_appended_and_encoded() {
        assert_eq!(
            with_query("https://p/auth", &[("a", "x y"), ("b", "é&=")]),
            "https://p/auth?a=x%20y&b=%C3%A9%26%3D"
        );
        assert_eq!(
            with_query("https://p/auth?tenant=1", &[("a", "b")]),
            "https://p/auth?tenant=1&a=b"
        );
    }
}

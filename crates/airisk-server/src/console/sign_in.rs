//! The sign-in page (a button to the OpenID provider when configured; the pasted-token form in
//! dev mode; the SSO proxy's header needs no page) and signing out.

use std::sync::Arc;

use axum::Extension;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::Console;
use super::cookies::{CookiePolicy, cookie_safe, read_cookie};
use super::csrf::{CSRF_FIELD, new_nonce};
use super::layout::public_page;
use super::session::{MaybeSigned, safe_next, see_other};
use super::session_store::{self, Record, hash_hex};
use crate::state::AppState;
use airisk_core::governance::audit_record::Outcome;

/// The sign-in page's query.
#[derive(Debug, Deserialize)]
pub(crate) struct SignInQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub(crate) struct SignInForm {
    token: String,
    next: Option<String>,
}

/// GET `/console/sign-in`.
pub(crate) async fn page(
    Extension(console): Extension<Arc<Console>>,
    MaybeSigned(identity, policy): MaybeSigned,
    headers: axum::http::HeaderMap,
    Query(q): Query<SignInQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if identity.is_some() && q.signed_out.is_none() {
        return see_other(&next);
    }
    form(
        &console,
        policy,
        &headers,
        &next,
        q.signed_out.is_some(),
        None,
    )
}

/// The sign-in form, with a fresh or reused pre-session nonce.
fn form(
    console: &Console,
    policy: CookiePolicy,
    headers: &axum::http::HeaderMap,
    next: &str,
    signed_out: bool,
    error: Option<&str>,
) -> Response {
    let Some(keys) = console.keys.as_ref() else {
        return super::ConsoleError::Unavailable.into_response();
    };
    let existing = read_cookie(headers, policy.presession_name()).map(str::to_owned);
    let fresh = existing.is_none();
    let Some(nonce) = existing.or_else(new_nonce) else {
        return super::ConsoleError::Unavailable.into_response();
    };
    let csrf = keys.sign_in_csrf(&nonce);
    let proxy = console.config.trusted_header.as_ref();
    let oidc = console.config.oidc.as_ref();
    let paste = console.config.token_sign_in;
    let start = format!("/console/oidc/start?next={}", super::layout::pct(next));
    let content = html! {
        @if signed_out {
            p class="flash flash-ok" role="status" {
                "You are signed out of the console."
                @if let Some(h) = proxy {
                    " Your SSO proxy still vouches for you on each request (header "
                    code { (h.as_str()) } "): sign out there to end that."
                }
            }
        }
        @if let Some(e) = error {
            p class="flash flash-bad" role="alert" id="sign-in-error" { (e) }
        }
        @if let Some(o) = oidc {
            p { "Sign in at your bank's identity provider. Your role and tenant come from what it says about you, never from this page." }
            p class="actions" {
                a class="button primary" id="oidc-sign-in" href=(start) { "Sign in with " (o.display_name) }
            }
        }
        @if let Some(h) = proxy {
            p class="muted" {
                "When you reach this console through your bank's single sign-on, you are signed in automatically (header "
                code { (h.as_str()) } ")."
            }
        }
        @if paste {
            p {
                "Dev mode: sign in with the same token you use for the API. Your role and tenant come from the token, never from this page."
            }
            form method="post" action="/console/sign-in" class="stack" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                input type="hidden" name="next" value=(next);
                div class="field" {
                    label for="token" { "Access token (JWT)" }
                    textarea id="token" name="token" rows="5" required autocomplete="off" spellcheck="false"
                        aria-describedby=[error.map(|_| "sign-in-error")] {}
                    p class="hint" { "In dev mode, " code { "airisk serve --dev" } " prints one token per role. Otherwise " code { "airisk token issue" } " or your identity provider issues it." }
                }
                div class="actions" {
                    button type="submit" class="primary" { "Sign in" }
                }
            }
        }
        @if oidc.is_none() && proxy.is_none() && !paste {
            p class="flash flash-bad" role="alert" {
                "No way to sign in is configured: the operator sets up the OpenID provider (docs/AUTHENTICATION.md) or an SSO proxy."
            }
        }
    };
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let mut response = public_page(status, "Sign in", content);
    if fresh && let Some(c) = policy.set_presession(&nonce) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// POST `/console/sign-in` (the CSRF token was checked against the pre-session cookie by the
/// middleware).
pub(crate) async fn submit(
    State(app): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    MaybeSigned(_, policy): MaybeSigned,
    headers: axum::http::HeaderMap,
    Form(f): Form<SignInForm>,
) -> Response {
    if !console.config.token_sign_in {
        // Pasted tokens sign people in only in dev mode.
        return super::ConsoleError::not_found("the pasted-token sign-in").into_response();
    }
    let next = safe_next(f.next.as_deref());
    let token = f.token.trim();
    let token = token
        .strip_prefix("Bearer ")
        .or_else(|| token.strip_prefix("bearer "))
        .unwrap_or(token)
        .trim();
    let verified = app
        .auth()
        .verify_claims_fresh(token)
        .await
        .and_then(|claims| claims.principal().map(|p| (p, claims.exp)));
    match verified {
        Ok((principal, exp)) if cookie_safe(token) => {
            tracing::info!(
                tenant = %principal.tenant(),
                actor = %principal.actor(),
                role = %principal.role(),
                "console: signed in"
            );
            let mut response = see_other(&next);
            let h = response.headers_mut();
            for cookie in [policy.set_session(token, exp), policy.clear_presession()]
                .into_iter()
                .flatten()
            {
                h.append(header::SET_COOKIE, cookie);
            }
            response
        }
        Ok(_) => form(
            &console,
            policy,
            &headers,
            &next,
            false,
            Some("This token is too large to keep in a browser cookie."),
        ),
        Err(e) => {
            // A genuine token that maps to no single role is on the record (see crate::mapping).
            crate::mapping::record_refusal(&app, &e, crate::context::correlation().as_ref()).await;
            form(
                &console,
                policy,
                &headers,
                &next,
                false,
                Some(&format!("Sign-in refused: {e}.")),
            )
        }
    }
}

/// POST `/console/sign-out`: ends the session everywhere (an `auth.sign_out` record every
/// replica consults) and forgets the cookie; then, for a session of the OpenID provider that has
/// an end-session endpoint, on to the provider's sign-out.
pub(crate) async fn sign_out(
    State(app): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    MaybeSigned(identity, policy): MaybeSigned,
) -> Response {
    let mut provider_sign_out = None;
    if let Some(id) = &identity {
        if let Some(session) = &id.session {
            let recorded = session_store::record(
                &app,
                Record {
                    tenant: Some(&session.tenant),
                    actor: Some(&session.actor),
                    action: "auth.sign_out",
                    outcome: Outcome::Success,
                    resource_id: &hash_hex(&session.sid),
                    reason: None,
                    metadata: Some(serde_json::json!({ "issuer": session.issuer })),
                },
            )
            .await;
            if let Err(e) = recorded {
                // Without its record the session would live on elsewhere: not signed out.
                tracing::error!(error = %e, "console: could not record a sign-out");
                return super::ConsoleError::Api(crate::ApiError::Unavailable(
                    "the sign-out could not be recorded".to_owned(),
                ))
                .into_response();
            }
            provider_sign_out = console
                .config
                .oidc
                .as_ref()
                .filter(|o| o.issuer == session.issuer)
                .and_then(|o| super::oidc_sign_in::end_session_url(&app, o, session));
        }
        tracing::info!(actor = %id.principal.actor(), "console: signed out");
    }
    let mut response = match provider_sign_out {
        Some(url) => super::layout::moving_on_page(
            "Signed out",
            &url,
            "You are signed out of the console. Continuing to sign out at your identity provider…",
        ),
        None => see_other("/console/sign-in?signed_out=1"),
    };
    if let Some(c) = policy.clear_session() {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

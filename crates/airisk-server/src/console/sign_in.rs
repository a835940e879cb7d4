//! Signing in (a pasted JWT, or the SSO proxy's header) and out.

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
use crate::state::AppState;

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
    let content = html! {
        @if signed_out {
            p class="flash flash-ok" role="status" {
                "You are signed out. The session cookie was removed from this browser."
                @if let Some(h) = proxy {
                    " Your SSO proxy still vouches for you on each request (header "
                    code { (h.as_str()) } "): sign out there to end that."
                }
            }
        }
        @if let Some(e) = error {
            p class="flash flash-bad" role="alert" id="sign-in-error" { (e) }
        }
        p {
            "Sign in with the same token you use for the API. Your role and tenant come from the token, never from this page."
        }
        @if let Some(h) = proxy {
            p class="muted" {
                "When you reach this console through your bank's single sign-on, you are signed in automatically (header "
                code { (h.as_str()) } ")."
            }
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

/// POST `/console/sign-out`: forgets the session cookie.
pub(crate) async fn sign_out(MaybeSigned(identity, policy): MaybeSigned) -> Response {
    if let Some(id) = &identity {
        tracing::info!(actor = %id.principal.actor(), "console: signed out");
    }
    let mut response = see_other("/console/sign-in?signed_out=1");
    if let Some(c) = policy.clear_session() {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

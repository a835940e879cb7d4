//! Every route, registered in one place through `utoipa-axum`, so the router and the OpenAPI
//! document come from the same declarations and cannot drift apart.

pub(crate) mod approvals;
pub(crate) mod audit;
mod links;
pub(crate) mod models;
pub(crate) mod ops;
pub(crate) mod prompts;
pub(crate) mod tenant;

use axum::extract::Request;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, middleware};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::context::observe;
use crate::error::{ApiError, HiddenCharacterView, Problem};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "airisk",
        description = "The ai-risk-engine governance & security kernel: tamper-evident audit ledger, \
model registry with human approval, versioned prompts, four-eyes approvals. Every `/v1` call needs \
`Authorization: Bearer <jwt>` with claims `sub`, `tenant`, `role` (`kind` optional); the tenant comes \
only from the token. Errors are RFC 9457 `application/problem+json` with the request's correlation \
id; send `X-Correlation-Id` to choose it. A write may carry `Idempotency-Key` (1-255 visible ASCII \
characters, scoped to the caller and the route): retrying it with the same key never applies it twice, \
and a retry of a write that committed answers with its receipts and `Idempotency-Replayed: true`.",
    ),
    components(schemas(Problem, HiddenCharacterView)),
    modifiers(&BearerAuth),
    tags(
        (name = "audit", description = "The caller's tenant's tamper-evident ledger"),
        (name = "models", description = "Model registry and deployment gate"),
        (name = "prompts", description = "Versioned prompts and approved label moves"),
        (name = "approvals", description = "Four-eyes approval requests"),
        (name = "integrations", description = "External registries (MLflow) governed by airisk"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document served at `/openapi.json`.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object))
)]
async fn openapi_json() -> Json<serde_json::Value> {
    // Rebuilt per request (about a millisecond): simpler than caching, and rarely asked for.
    Json(openapi())
}

/// The routes and the document they generate.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(audit::append, audit::search))
        .routes(routes!(audit::get_entry))
        .routes(routes!(audit::verify, audit::verify_checkpoint))
        .routes(routes!(audit::latest_checkpoint, audit::sign_checkpoint))
        .routes(routes!(audit::inclusion_proof))
        .routes(routes!(audit::consistency_proof))
        .routes(routes!(audit::export))
        .routes(routes!(models::register))
        .routes(routes!(models::list_versions))
        .routes(routes!(models::get_version))
        .routes(routes!(models::approve))
        .routes(routes!(models::reject))
        .routes(routes!(models::authorize_deployment))
        .routes(routes!(prompts::register))
        .routes(routes!(prompts::get))
        .routes(routes!(prompts::update))
        .routes(routes!(prompts::history))
        .routes(routes!(prompts::diff))
        .routes(routes!(prompts::move_label))
        .routes(routes!(approvals::request, approvals::list))
        .routes(routes!(approvals::get))
        .routes(routes!(approvals::approve))
        .routes(routes!(approvals::reject))
        .routes(routes!(approvals::cancel))
        .routes(routes!(crate::integrations::mlflow::webhook::receive))
        .routes(routes!(crate::integrations::mlflow::webhook::status))
        .routes(routes!(crate::integrations::mlflow::webhook::reconcile))
        .routes(routes!(tenant::shred))
        .routes(routes!(tenant::rotate_data_key))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(openapi_json))
        .split_for_parts()
}

/// The OpenAPI 3.1 document of the API, as served at `/openapi.json`: the annotations, with the
/// generated visible-text patterns and the links that lead from a created resource to the
/// operations on it.
pub fn openapi() -> serde_json::Value {
    let mut doc = serde_json::to_value(api().1).unwrap_or_default();
    crate::api_types::expand_patterns(&mut doc);
    links::add(&mut doc);
    doc
}

/// The complete router: every route, the fallbacks, and the middleware.
pub fn router(state: AppState) -> Router {
    api()
        .0
        // The approver console's HTML pages: not API routes, so not in the OpenAPI document.
        .merge(crate::console::routes(&state))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        // Inside the request scope: a 409 of a write with an Idempotency-Key whose write
        // committed becomes its replay (inside the throttle, so a replay is not charged).
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::idempotency::replay,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::throttle::charge_refusals,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        // Outermost: an Idempotency-Key becomes the request's correlation id.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::idempotency::scope,
        ))
        .with_state(state)
}

async fn no_route(request: Request) -> Response {
    ApiError::NoRoute(request.uri().path().to_owned()).into_response()
}

async fn method_not_allowed() -> Response {
    let mut response = ApiError::MethodNotAllowed.into_response();
    // The router adds `Allow` itself when it knows the route's methods.
    response.headers_mut().remove(header::ALLOW);
    response
}

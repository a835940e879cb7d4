//! What every request carries through the service: its correlation id and, once authenticated,
//! who made it; and the middleware that sets them up, bounds the request's time, and writes the
//! one log line and the metrics of the request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airisk_core::request::CorrelationId;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::admission::Slot;
use crate::error::ApiError;
use crate::state::AppState;

/// `Strict-Transport-Security` sent on every response when the public URL is https: one year.
pub(crate) const HSTS: &str = "max-age=31536000";

/// The header that carries the correlation id, both ways.
pub const CORRELATION_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

/// Label of requests no route matched (keeps the metrics' label set bounded).
pub const UNMATCHED_ROUTE: &str = "<unmatched>";

/// Per-request context, visible to everything the request's future runs.
#[derive(Debug)]
pub(crate) struct RequestContext {
    pub(crate) correlation: CorrelationId,
    /// `(tenant, actor)` once the bearer token verified.
    pub(crate) caller: Mutex<Option<(String, String)>>,
    /// The admission slot, once the caller is authenticated and admitted; freed when the
    /// request's handler is done (or timed out).
    pub(crate) slot: Mutex<Option<Slot>>,
}

tokio::task_local! {
    static CONTEXT: Arc<RequestContext>;
}

/// The current request's correlation id, or a fresh one outside a request.
pub(crate) fn correlation_id() -> String {
    CONTEXT
        .try_with(|c| c.correlation.to_string())
        .unwrap_or_else(|_| CorrelationId::generate().to_string())
}

/// The current request's correlation id as a value.
pub(crate) fn correlation() -> CorrelationId {
    CONTEXT
        .try_with(|c| c.correlation.clone())
        .unwrap_or_else(|_| CorrelationId::generate())
}

/// Records who the request is from, for the request's log line.
pub(crate) fn set_caller(tenant: &str, actor: &str) {
    let _ = CONTEXT.try_with(|c| {
        if let Ok(mut slot) = c.caller.lock() {
            *slot = Some((tenant.to_owned(), actor.to_owned()));
        }
    });
}

/// Waits for an admission slot for an authenticated request of `tenant` and holds it for the
/// rest of the request (see [`crate::admission`]). The wait counts against the request timeout.
///
/// # Errors
/// 503 if the admission control is shut down.
pub(crate) async fn admit(state: &AppState, tenant: &str) -> Result<(), ApiError> {
    // Once per request: a second authentication of the same request (two extractors) must not
    // wait for a second slot of the share the first one holds.
    let admitted = CONTEXT
        .try_with(|c| c.slot.lock().map(|s| s.is_some()).unwrap_or(false))
        .unwrap_or(false);
    if admitted {
        return Ok(());
    }
    let slot = state
        .admission()
        .admit(tenant, state.metrics_arc().clone())
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    // Outside a request's scope (never: `observe` wraps every route) the slot would be freed
    // here at once.
    let _ = CONTEXT.try_with(|c| {
        if let Ok(mut held) = c.slot.lock() {
            *held = Some(slot);
        }
    });
    Ok(())
}

/// The outermost middleware of every route: correlation id in and out, request timeout, the
/// headers every response carries (`X-Content-Type-Options: nosniff`; `Strict-Transport-Security`
/// when the public URL is https), one structured log line and the metrics per request.
pub(crate) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let correlation = request
        .headers()
        .get(&CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| CorrelationId::parse(v).ok())
        .unwrap_or_else(CorrelationId::generate);
    // A client may send any token as a method: only a bounded label is kept.
    let method = crate::metrics::method_label(request.method().as_str());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |p| p.as_str().to_owned());
    let context = Arc::new(RequestContext {
        correlation: correlation.clone(),
        caller: Mutex::new(None),
        slot: Mutex::new(None),
    });
    let timeout: Duration = state.config().request_timeout;
    let _in_flight = InFlight::enter(&state);
    // The admission slot is taken once the caller is authenticated (the `Caller` extractor of
    // `/v1` routes, the console's session guard): the probes take none, so a saturated service
    // still answers them.
    let run = CONTEXT.scope(context.clone(), next.run(request));
    let mut response = match tokio::time::timeout(timeout, run).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout {
            seconds: timeout.as_secs().max(1),
        }
        .into_response_with(correlation.as_str()),
    };
    // The handler is done (or timed out): its slot goes back.
    if let Ok(mut held) = context.slot.lock() {
        held.take();
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(correlation.as_str()) {
        headers.insert(CORRELATION_HEADER, value);
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if state
        .config()
        .public_url
        .as_ref()
        .is_some_and(|u| u.is_https())
    {
        headers.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    let status = response.status().as_u16();
    let latency = started.elapsed();
    state.metrics().observe(method, &route, status, latency);
    let caller = context.caller.lock().ok().and_then(|c| c.clone());
    let (tenant, actor) = caller.unwrap_or_default();
    // One line per request. Never the Authorization header, never a body.
    tracing::info!(
        target: "http",
        method = %method,
        route = %route,
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        tenant = %tenant,
        actor = %actor,
        correlation_id = %correlation,
        "request"
    );
    response
}

/// Counts a request in flight until dropped (also when the client goes away mid-request).
struct InFlight(AppState);

impl InFlight {
    fn enter(state: &AppState) -> Self {
        state.metrics().in_flight(1);
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.metrics().in_flight(-1);
    }
}

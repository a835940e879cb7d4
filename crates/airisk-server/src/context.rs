//! What every request carries through the service: its correlation id and, once authenticated,
//! who made it; and the middleware that sets them up, bounds the request's time, and writes the
//! one log line and the metrics of the request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airisk_core::request::CorrelationId;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;
use crate::state::AppState;

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

/// The outermost middleware of every route: correlation id in and out, request timeout, one
/// structured log line and the metrics per request.
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
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |p| p.as_str().to_owned());
    let context = Arc::new(RequestContext {
        correlation: correlation.clone(),
        caller: Mutex::new(None),
    });
    let timeout: Duration = state.config().request_timeout;
    let _in_flight = InFlight::enter(&state);
    // Operations routes skip the line: a saturated service must still answer its probes.
    let limiter = if route.starts_with("/v1/") {
        state.limiter().cloned()
    } else {
        None
    };
    let handle = async move {
        let _permit = match &limiter {
            Some(l) => l.acquire().await.ok(),
            None => None,
        };
        next.run(request).await
    };
    let run = CONTEXT.scope(context.clone(), handle);
    let mut response = match tokio::time::timeout(timeout, run).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout {
            seconds: timeout.as_secs().max(1),
        }
        .into_response_with(correlation.as_str()),
    };
    if let Ok(value) = HeaderValue::from_str(correlation.as_str()) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    let status = response.status().as_u16();
    let latency = started.elapsed();
    state
        .metrics()
        .observe(method.as_str(), &route, status, latency);
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

//! `Idempotency-Key`: a client may retry a write safely, e.g. after a 503 or a lost connection
//! whose outcome it does not know.
//!
//! How it works (docs/OPERATIONS.md, "Idempotent writes", has the operator's view):
//!
//! 1. [`scope`], outside everything else, turns the key into the request's correlation id:
//!    `idem-` followed by 48 hex digits of SHA-256 over (tenant, principal, method, path, key) of
//!    the VERIFIED bearer token. So a key is scoped per tenant and principal (two callers' keys
//!    never collide, and nobody can claim someone else's) and per route. Every audit record the
//!    write appends carries that id, in the same transaction as its state change.
//! 2. The stores refuse a write whose idempotent correlation id is already in the tenant's
//!    ledger, in the write's own transaction under the tenant's write lock
//!    ([`airisk_core::ports::IDEMPOTENCY_CONFLICT`]): of any number of attempts with one key, from
//!    any instance, at most one commits.
//! 3. [`replay`], inside the request scope: when a request with a key ends in 409 (the store's
//!    refusal, or a business rule refusing to do it twice: "already registered", "not pending"),
//!    it looks the id up in the ledger. If the write committed, the client gets its receipts,
//!    with `Idempotency-Replayed: true`, instead of the 409: 201 with the original receipt for an
//!    audit append; 200 with `{"replayed": true, "receipts": [...]}` for other writes (read the
//!    resource for its current state).
//!
//! The key's record is the ledger itself: nothing extra to retain or expire, and the key is kept
//! exactly as long as the records it produced. A key first used by a request that was refused
//! (a denial record carries it) cannot be used again: 409 `idempotency-key-reused`.
//!
//! A client-chosen `X-Correlation-Id` starting with `idem-` is refused (400): the prefix is
//! reserved, so a client cannot claim another request's key through its correlation id.

use airisk_core::governance::audit_record::{AuditReceipt, AuditRecord, Outcome};
use airisk_core::ports::{AuditQuery, IDEMPOTENT_CORRELATION_PREFIX};
use airisk_core::request::CorrelationId;
use airisk_core::security::tenant_context::TenantId;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api_types::ReceiptView;
use crate::context::{self, CORRELATION_HEADER};
use crate::error::ApiError;
use crate::state::AppState;

/// The request header that carries a client's idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: HeaderName = HeaderName::from_static("idempotency-key");

/// The response header that marks an answer replayed from the ledger.
pub const IDEMPOTENCY_REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotency-replayed");

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// Most records one write is expected to append (a replay reads at most this many).
const MAX_RECORDS_PER_WRITE: usize = 64;

/// A request whose correlation id was derived from its idempotency key, for [`replay`].
#[derive(Debug, Clone)]
struct Idempotent {
    tenant: TenantId,
}

/// The idempotent correlation id of `key` for this caller and route.
fn derive(tenant: &str, actor: &str, method: &Method, path: &str, key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [
        "airisk-idempotency-v1",
        tenant,
        actor,
        method.as_str(),
        path,
        key,
    ] {
        // Length-prefixed, so no two tuples hash the same bytes.
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let digest = ctx.finish();
    let hex: String = digest
        .as_ref()
        .iter()
        .take(24)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{IDEMPOTENT_CORRELATION_PREFIX}{hex}")
}

/// Whether a key is acceptable: 1 to [`MAX_KEY_LEN`] visible ASCII characters.
fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic())
}

/// A 400 from outside the request scope, with its own fresh correlation id (in the body, the
/// header and the log line).
fn reject(message: &str) -> Response {
    let correlation = CorrelationId::generate();
    tracing::info!(target: "http", correlation_id = %correlation, status = 400, "{message}");
    let mut response =
        ApiError::BadRequest(message.to_owned()).into_response_with(correlation.as_str());
    if let Ok(value) = HeaderValue::from_str(correlation.as_str()) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    response
}

/// The outermost middleware: reserves the `idem-` correlation prefix, and gives a write with an
/// `Idempotency-Key` its derived correlation id (see the module documentation).
pub(crate) async fn scope(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let reserved = request
        .headers()
        .get(&CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.get(..IDEMPOTENT_CORRELATION_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(IDEMPOTENT_CORRELATION_PREFIX))
        });
    if reserved {
        return reject(
            "correlation ids starting with `idem-` are reserved for requests with an Idempotency-Key",
        );
    }
    let Some(raw) = request.headers().get(&IDEMPOTENCY_KEY_HEADER) else {
        return next.run(request).await;
    };
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        // Reads are idempotent already.
        return next.run(request).await;
    }
    let Some(key) = raw.to_str().ok().filter(|k| valid_key(k)) else {
        return reject("the Idempotency-Key header must be 1 to 255 visible ASCII characters");
    };
    // Scoped by the verified caller. Without a valid token the route answers 401 itself.
    let principal = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        })
        .and_then(|token| state.auth().verify(token).ok());
    let Some(principal) = principal else {
        return next.run(request).await;
    };
    let id = derive(
        principal.tenant().as_str(),
        principal.actor().as_str(),
        request.method(),
        request.uri().path(),
        key,
    );
    let Ok(value) = HeaderValue::from_str(&id) else {
        return next.run(request).await;
    };
    request.headers_mut().insert(CORRELATION_HEADER, value);
    request.extensions_mut().insert(Idempotent {
        tenant: principal.tenant().clone(),
    });
    next.run(request).await
}

/// Inside the request scope: a 409 for a request with a key whose write committed becomes the
/// replay of that write's receipts (see the module documentation).
pub(crate) async fn replay(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(Idempotent { tenant }) = request.extensions().get::<Idempotent>().cloned() else {
        return next.run(request).await;
    };
    let correlation = context::correlation_id();
    if !correlation.starts_with(IDEMPOTENT_CORRELATION_PREFIX) {
        return next.run(request).await;
    }
    let append = request.uri().path() == "/v1/audit/events";
    let response = next.run(request).await;
    if response.status() != StatusCode::CONFLICT {
        return response;
    }
    let query = AuditQuery {
        correlation_id: Some(correlation.clone()),
        ..AuditQuery::default()
    };
    let entries = match state
        .stores()
        .audit
        .search(&tenant, &query, MAX_RECORDS_PER_WRITE)
        .await
    {
        Ok(entries) => entries,
        // The outcome is unknown: the client retries again later.
        Err(e) => return ApiError::from(e).into_response(),
    };
    if entries.is_empty() {
        return response;
    }
    let mut receipts = Vec::with_capacity(entries.len());
    for entry in &entries {
        let record = match AuditRecord::from_leaf_bytes(&entry.leaf) {
            Ok(r) => r,
            Err(e) => {
                return ApiError::Internal(format!("unreadable record at seq {}: {e}", entry.seq))
                    .into_response();
            }
        };
        if record.event().outcome() != Outcome::Success {
            return ApiError::Conflict {
                kind: "idempotency-key-reused",
                detail: "this Idempotency-Key was used by a request that was refused; send the \
                         request again with a new key"
                    .to_owned(),
            }
            .into_response();
        }
        receipts.push(ReceiptView::from(&AuditReceipt {
            id: record.event().id(),
            tenant_id: tenant.clone(),
            seq: entry.seq,
            leaf_hash: entry.leaf_hash.to_hex(),
            recorded_at: record.recorded_at(),
        }));
    }
    let mut replayed = match (append, receipts.as_slice()) {
        (true, [receipt]) => (StatusCode::CREATED, Json(receipt.clone())).into_response(),
        _ => (
            StatusCode::OK,
            Json(json!({"replayed": true, "receipts": receipts})),
        )
            .into_response(),
    };
    replayed.headers_mut().insert(
        IDEMPOTENCY_REPLAYED_HEADER,
        HeaderValue::from_static("true"),
    );
    replayed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_valid_correlation_ids_scoped_by_every_part() {
        let base = derive("acme", "alice", &Method::POST, "/v1/audit/events", "k1");
        assert!(CorrelationId::parse(&base).is_ok());
        assert!(base.starts_with(IDEMPOTENT_CORRELATION_PREFIX));
        for other in [
            derive("acme2", "alice", &Method::POST, "/v1/audit/events", "k1"),
            derive("acme", "bob", &Method::POST, "/v1/audit/events", "k1"),
            derive("acme", "alice", &Method::PUT, "/v1/audit/events", "k1"),
            derive("acme", "alice", &Method::POST, "/v1/models", "k1"),
            derive("acme", "alice", &Method::POST, "/v1/audit/events", "k2"),
            // Length prefixes: moving a boundary changes the id.
            derive("acm", "ealice", &Method::POST, "/v1/audit/events", "k1"),
        ] {
            assert_ne!(base, other);
        }
        assert_eq!(
            base,
            derive("acme", "alice", &Method::POST, "/v1/audit/events", "k1")
        );
    }

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(valid_key("a"));
        assert!(valid_key(&"k".repeat(MAX_KEY_LEN)));
        assert!(!valid_key(""));
        assert!(!valid_key(&"k".repeat(MAX_KEY_LEN + 1)));
        assert!(!valid_key("has space"));
        assert!(!valid_key("tab\t"));
    }
}

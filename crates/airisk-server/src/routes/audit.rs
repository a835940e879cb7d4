//! `/v1/audit/…`: the caller's tenant's tamper-evident ledger.

use airisk_core::governance::audit_record::{AuditEventInput, Outcome, SensitiveMetadata};
use airisk_core::ports::{AuditQuery, StoredCheckpoint, StoredEntry};
use airisk_core::security::rbac::{Action, RbacService};
use airisk_core::security::tenant_context::TenantId;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use crate::api_types::{
    AppendAuditBody, AuditEntryView, AuditPage, CheckpointView, ConsistencyProofView,
    InclusionProofView, ReceiptView, VerifyCheckpointBody, VerifyView,
};
use crate::error::{ApiError, ListErrors, ReadErrors, VerifyCheckpointErrors, WriteErrors};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::state::AppState;

/// Largest page of a search.
pub const MAX_PAGE: usize = 1000;
/// Default page of a search.
pub const DEFAULT_PAGE: usize = 100;
/// Entries read from the store per chunk of an export.
const EXPORT_CHUNK: usize = 4096;

pub(crate) fn require(caller: &Caller, action: Action) -> Result<(), ApiError> {
    Ok(RbacService::new().check_permission(caller.principal.role(), action)?)
}

fn entry_view(e: &StoredEntry) -> AuditEntryView {
    AuditEntryView {
        seq: e.seq,
        leaf_hash: e.leaf_hash.to_hex(),
        leaf: BASE64.encode(&e.leaf),
        record: serde_json::from_slice(&e.leaf).unwrap_or(serde_json::Value::Null),
    }
}

fn checkpoint_view(state: &AppState, c: StoredCheckpoint) -> CheckpointView {
    CheckpointView {
        size: c.size,
        root: c.root.to_hex(),
        note: c.note,
        signed_at: airisk_core::governance::audit_record::format_timestamp(&c.signed_at),
        verifier_key: state.ledger_verifier().to_verifier_key(),
    }
}

/// Append an application event to the caller's tenant's ledger (`audit.append`: analyst, admin).
#[utoipa::path(
    post, path = "/v1/audit/events", tag = "audit", operation_id = "appendAuditEvent",
    request_body = AppendAuditBody,
    responses((status = 201, description = "Durably recorded", body = ReceiptView), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn append(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AppendAuditBody>,
) -> Result<(StatusCode, Json<ReceiptView>), ApiError> {
    let p = &caller.principal;
    let input = AuditEventInput {
        actor: p.actor().to_string(),
        tenant_id: p.tenant().to_string(),
        action: body.action,
        resource_type: body.resource_type,
        resource_id: body.resource_id,
        reason: body.reason,
        correlation_id: caller.correlation.to_string(),
        metadata: body.metadata,
    };
    let sensitive = match body.sensitive_metadata {
        None | Some(Value::Null) => SensitiveMetadata::new(),
        Some(Value::Object(map)) => SensitiveMetadata::from_map(map),
        Some(_) => {
            return Err(ApiError::Unprocessable(
                "sensitive_metadata must be a JSON object".to_owned(),
            ));
        }
    };
    // Without sensitive values a subject has nothing to apply to: it is validated, then unused
    // (nothing about it is stored).
    let sensitive = match body.data_subject {
        None => sensitive,
        Some(subject) => sensitive.with_subject(
            airisk_core::security::data_subject::DataSubject::parse(&subject)
                .map_err(|e| ApiError::Unprocessable(e.to_string()))?,
        ),
    };
    let receipt = state
        .audit()
        .log_action_sensitive(p, input, &sensitive)
        .await?;
    Ok((StatusCode::CREATED, Json(ReceiptView::from(&receipt))))
}

/// Search parameters. Every one narrows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// Exact actor. No NUL character (422).
    #[param(pattern = "^[^\\x00]*$")]
    actor: Option<String>,
    /// Exact action, or a prefix ending in `.` (`model.` matches every model action). No NUL character (422).
    #[param(pattern = "^[^\\x00]*$")]
    action: Option<String>,
    /// Exact resource type. No NUL character (422).
    #[param(pattern = "^[^\\x00]*$")]
    resource_type: Option<String>,
    /// Exact resource id. No NUL character (422).
    #[param(pattern = "^[^\\x00]*$")]
    resource_id: Option<String>,
    /// Exact correlation id. No NUL character (422).
    #[param(pattern = "^[^\\x00]*$")]
    correlation_id: Option<String>,
    /// `success` or `denied`.
    #[param(value_type = Option<crate::api_types::OutcomeParam>, inline)]
    outcome: Option<String>,
    /// Recorded at or after (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Recorded before (RFC 3339).
    #[param(format = DateTime)]
    to: Option<String>,
    /// `asc` (oldest first, default) or `desc`.
    #[param(value_type = Option<crate::api_types::OrderParam>, inline)]
    order: Option<String>,
    /// Continue after this seq (the previous page's `next_cursor`), at most 2^63 - 1.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    cursor: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

fn parse_time(field: &str, value: Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| ApiError::Unprocessable(format!("{field}: not RFC 3339: {e}")))
        })
        .transpose()
}

/// Search the caller's tenant's ledger, with a cursor (`audit.read`: every role).
#[utoipa::path(
    get, path = "/v1/audit/events", tag = "audit", operation_id = "searchAudit",
    params(SearchParams),
    responses((status = 200, description = "A page of entries", body = AuditPage), ListErrors),
    security(("bearer" = []))
)]
pub(crate) async fn search(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SearchParams>,
) -> Result<Json<AuditPage>, ApiError> {
    require(&caller, Action::AuditRead)?;
    if q.cursor.is_some_and(|c| c > crate::api_types::MAX_OFFSET) {
        return Err(ApiError::Unprocessable(format!(
            "cursor must be at most {}",
            crate::api_types::MAX_OFFSET
        )));
    }
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::Unprocessable(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let outcome = match q.outcome.as_deref() {
        None => None,
        Some("success") => Some(Outcome::Success),
        Some("denied") => Some(Outcome::Denied),
        Some(_) => {
            return Err(ApiError::Unprocessable(
                "outcome must be success or denied".into(),
            ));
        }
    };
    let newest_first = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::Unprocessable("order must be asc or desc".into())),
    };
    let query = AuditQuery {
        actor: q.actor,
        action: q.action,
        resource_type: q.resource_type,
        resource_id: q.resource_id,
        correlation_id: q.correlation_id,
        outcome,
        from: parse_time("from", q.from)?,
        to: parse_time("to", q.to)?,
        newest_first,
        cursor: q.cursor,
    };
    let entries = state
        .stores()
        .audit
        .search(caller.principal.tenant(), &query, limit)
        .await?;
    let next_cursor = if entries.len() == limit {
        entries.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(Json(AuditPage {
        entries: entries.iter().map(entry_view).collect(),
        next_cursor,
    }))
}

/// One entry of the caller's tenant's ledger (`audit.read`).
#[utoipa::path(
    get, path = "/v1/audit/events/{seq}", tag = "audit", operation_id = "getAuditEntry",
    params(("seq" = u64, Path, description = "The entry's position")),
    responses((status = 200, description = "The entry", body = AuditEntryView), ReadErrors),
    security(("bearer" = []))
)]
pub(crate) async fn get_entry(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(seq): ApiPath<u64>,
) -> Result<Json<AuditEntryView>, ApiError> {
    require(&caller, Action::AuditRead)?;
    state
        .stores()
        .audit
        .entries(caller.principal.tenant(), seq, 1)
        .await?
        .into_iter()
        .find(|e| e.seq == seq)
        .map(|e| Json(entry_view(&e)))
        .ok_or_else(|| ApiError::NotFound("audit entry not found".into()))
}

/// Recompute the caller's tenant's whole ledger: every leaf, root and checkpoint signature
/// (`audit.verify`: every role). One consistent snapshot is checked: the tree head and stored
/// checkpoints as of one moment, and the entries up to that head, so appends that land while it
/// reads never look like tampering. The ledger alone cannot show a rollback to an older, consistent
/// state (a restored backup): `POST` this route with a checkpoint kept from earlier for that.
#[utoipa::path(
    get, path = "/v1/audit/verify", tag = "audit", operation_id = "verifyLedger",
    responses((status = 200, description = "The report (intact or not)", body = VerifyView), ReadErrors),
    security(("bearer" = []))
)]
pub(crate) async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<VerifyView>, ApiError> {
    require(&caller, Action::AuditVerify)?;
    let report = state
        .audit()
        .verify(
            caller.principal.tenant(),
            Some(state.ledger_verifier()),
            None,
            |_, _| {},
        )
        .await?;
    Ok(Json(verify_view(&report, None)))
}

/// The API's view of a verification report.
pub(crate) fn verify_view(
    report: &airisk_core::governance::audit_verification::VerifyReport,
    kept_size: Option<u64>,
) -> VerifyView {
    VerifyView {
        tenant: report.tenant.to_string(),
        intact: report.is_intact(),
        entries: report.entries,
        root: report.root.map(|r| r.to_hex()),
        checkpoints_verified: report.checkpoints_verified,
        first_bad_seq: report.problem.as_ref().and_then(|p| p.seq()),
        problem: report.problem.as_ref().map(ToString::to_string),
        kept_checkpoint_size: kept_size,
        kept_checkpoint_verified: report.kept_checkpoint_verified,
    }
}

/// Longest kept checkpoint accepted (a checkpoint with a few signatures is a few hundred bytes).
pub(crate) const MAX_KEPT_CHECKPOINT: usize = 8192;

/// Why a kept checkpoint cannot be used, or `None` with its size when it is a note signed by this
/// ledger's key for `tenant`'s ledger. Refusing it is the caller's mistake (422), never a verdict
/// on the ledger.
pub(crate) fn check_kept_checkpoint(
    state: &AppState,
    tenant: &TenantId,
    note: &str,
) -> Result<u64, String> {
    if note.trim().is_empty() {
        return Err("checkpoint: give the signed note text".into());
    }
    if note.len() > MAX_KEPT_CHECKPOINT {
        return Err(format!(
            "checkpoint: at most {MAX_KEPT_CHECKPOINT} bytes (a signed note is a few hundred)"
        ));
    }
    let checkpoint = airisk_core::ledger::verify_checkpoint(note, state.ledger_verifier())
        .map_err(|e| format!("checkpoint: not a note signed by this ledger's key: {e}"))?;
    let origin = state.audit().name().origin_for(tenant);
    if checkpoint.origin != origin {
        return Err(format!(
            "checkpoint: it is for the ledger {:?}, not yours ({:?})",
            checkpoint.origin.as_str(),
            origin.as_str()
        ));
    }
    Ok(checkpoint.size)
}

/// Recompute the caller's tenant's ledger as `GET` does, and also against a checkpoint kept from
/// earlier (`audit.verify`: every role): the ledger must still hold the entries that checkpoint
/// signed, with exactly its root. A ledger rolled back or truncated below the kept size (an older
/// backup restored) is reported `intact: false` with "ledger truncated or rolled back"; one whose
/// first entries were rewritten to a different history, with "differs from the kept checkpoint".
/// The kept note must be signed by this ledger's key and name the caller's tenant's ledger, or
/// the request is refused with 422 (a bad note says nothing about the ledger).
#[utoipa::path(
    post, path = "/v1/audit/verify", tag = "audit", operation_id = "verifyAgainstKeptCheckpoint",
    request_body = VerifyCheckpointBody,
    responses(
        (status = 200, description = "The report (intact or not); `kept_checkpoint_verified` says whether the kept checkpoint is consistent with the ledger", body = VerifyView),
        VerifyCheckpointErrors
    ),
    security(("bearer" = []))
)]
pub(crate) async fn verify_checkpoint(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<VerifyCheckpointBody>,
) -> Result<Json<VerifyView>, ApiError> {
    require(&caller, Action::AuditVerify)?;
    let tenant = caller.principal.tenant();
    let kept_size =
        check_kept_checkpoint(&state, tenant, &body.checkpoint).map_err(ApiError::Unprocessable)?;
    let report = state
        .audit()
        .verify(
            tenant,
            Some(state.ledger_verifier()),
            Some(&body.checkpoint),
            |_, _| {},
        )
        .await?;
    Ok(Json(verify_view(&report, Some(kept_size))))
}

/// The latest signed checkpoint of the caller's tenant's ledger (`audit.read`).
#[utoipa::path(
    get, path = "/v1/audit/checkpoint", tag = "audit", operation_id = "latestCheckpoint",
    responses((status = 200, description = "The checkpoint", body = CheckpointView), ReadErrors),
    security(("bearer" = []))
)]
pub(crate) async fn latest_checkpoint(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<CheckpointView>, ApiError> {
    require(&caller, Action::AuditRead)?;
    let cp = state
        .stores()
        .audit
        .latest_checkpoint(caller.principal.tenant())
        .await?
        .ok_or_else(|| ApiError::NotFound("no checkpoint has been signed yet".into()))?;
    Ok(Json(checkpoint_view(&state, cp)))
}

/// Sign a checkpoint of the current tree head now (`audit.checkpoint`: analyst, admin). Returns
/// the newest checkpoint, which covers every entry appended before the call.
#[utoipa::path(
    post, path = "/v1/audit/checkpoint", tag = "audit", operation_id = "signCheckpoint",
    responses((status = 200, description = "The checkpoint covering the head", body = CheckpointView), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn sign_checkpoint(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<CheckpointView>, ApiError> {
    require(&caller, Action::AuditCheckpoint)?;
    let cp = state.audit().checkpoint(caller.principal.tenant()).await?;
    Ok(Json(checkpoint_view(&state, cp)))
}

/// Parameters of an inclusion proof.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct InclusionParams {
    /// The entry.
    seq: u64,
    /// The tree size to prove against (default: the latest checkpoint's, if it covers `seq`;
    /// else the current size).
    tree_size: Option<u64>,
}

/// An RFC 6962 inclusion proof of one entry, with its leaf and, when one of that size is stored,
/// the signed checkpoint: everything to check it offline (`audit.read`).
#[utoipa::path(
    get, path = "/v1/audit/proofs/inclusion", tag = "audit", operation_id = "inclusionProof",
    params(InclusionParams),
    responses((status = 200, description = "The proof", body = InclusionProofView), ReadErrors),
    security(("bearer" = []))
)]
pub(crate) async fn inclusion_proof(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<InclusionParams>,
) -> Result<Json<InclusionProofView>, ApiError> {
    require(&caller, Action::AuditRead)?;
    let tenant: &TenantId = caller.principal.tenant();
    let repo = &state.stores().audit;
    let entry = repo
        .entries(tenant, q.seq, 1)
        .await?
        .into_iter()
        .find(|e| e.seq == q.seq)
        .ok_or_else(|| ApiError::NotFound("audit entry not found".into()))?;
    let latest = repo.latest_checkpoint(tenant).await?;
    let tree_size = match (q.tree_size, &latest) {
        (Some(s), _) => s,
        (None, Some(cp)) if cp.size > q.seq => cp.size,
        _ => state.audit().tree_head(tenant).await?.size,
    };
    let proof = state
        .audit()
        .inclusion_proof(tenant, q.seq, tree_size)
        .await?;
    let root = state.audit().root_at(tenant, tree_size).await?;
    let checkpoint = match latest {
        Some(cp) if cp.size == tree_size => Some(cp.note),
        _ => repo
            .checkpoints(tenant)
            .await?
            .into_iter()
            .find(|c| c.size == tree_size)
            .map(|c| c.note),
    };
    Ok(Json(InclusionProofView {
        seq: q.seq,
        tree_size,
        leaf_hash: entry.leaf_hash.to_hex(),
        leaf: BASE64.encode(&entry.leaf),
        root: root.to_hex(),
        proof: proof.iter().map(|h| h.to_hex()).collect(),
        checkpoint,
        verifier_key: state.ledger_verifier().to_verifier_key(),
    }))
}

/// Parameters of a consistency proof.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConsistencyParams {
    /// The older size (at least 1).
    #[param(minimum = 1)]
    from: u64,
    /// The newer size (default: the current size).
    to: Option<u64>,
}

/// An RFC 6962 consistency proof: the tree of `from` entries is a prefix of the tree of `to`
/// entries (`audit.read`).
#[utoipa::path(
    get, path = "/v1/audit/proofs/consistency", tag = "audit", operation_id = "consistencyProof",
    params(ConsistencyParams),
    responses((status = 200, description = "The proof", body = ConsistencyProofView), ReadErrors),
    security(("bearer" = []))
)]
pub(crate) async fn consistency_proof(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ConsistencyParams>,
) -> Result<Json<ConsistencyProofView>, ApiError> {
    require(&caller, Action::AuditRead)?;
    let tenant = caller.principal.tenant();
    let to = match q.to {
        Some(t) => t,
        None => state.audit().tree_head(tenant).await?.size,
    };
    let proof = state.audit().consistency_proof(tenant, q.from, to).await?;
    Ok(Json(ConsistencyProofView {
        size1: q.from,
        size2: to,
        root1: state.audit().root_at(tenant, q.from).await?.to_hex(),
        root2: state.audit().root_at(tenant, to).await?.to_hex(),
        proof: proof.iter().map(|h| h.to_hex()).collect(),
    }))
}

/// Stream the caller's tenant's ledger as JSON Lines (`audit.export`: every role), in the format of
/// `airisk audit export` that `tools/verify_export.py` checks: line 1 is
/// `{"type":"checkpoint","tenant_id","checkpoint","verifier_key","checkpoint_signed_for_export"}`,
/// then every entry the checkpoint covers is one line
/// `{"type":"entry","seq","leaf"(base64),"leaf_hash"}`.
///
/// A caller that may sign checkpoints (`audit.checkpoint`: analyst, admin) gets a checkpoint signed
/// over the current head first, so the export covers the whole ledger. Anyone else gets the latest
/// checkpoint already signed, and the entries it covers: exporting never makes a role sign what it
/// may not sign through `POST /v1/audit/checkpoint`. The header's `checkpoint_signed_for_export`
/// and the `X-Airisk-Checkpoint` response header (`signed-for-export` or `latest-stored`) say
/// which; 404 if no checkpoint was ever signed.
#[utoipa::path(
    get, path = "/v1/audit/export", tag = "audit", operation_id = "exportLedger",
    responses(
        (status = 200, description = "JSON Lines, streamed", content_type = "application/x-ndjson", body = String),
        ReadErrors
    ),
    security(("bearer" = []))
)]
pub(crate) async fn export(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    require(&caller, Action::AuditExport)?;
    let tenant = caller.principal.tenant().clone();
    // Commit to the whole ledger first when the caller may sign, so the export is covered end to
    // end by a signature; otherwise take the latest signed one. Either way, send exactly the
    // entries that signature covers.
    let may_sign = require(&caller, Action::AuditCheckpoint).is_ok();
    let checkpoint = if may_sign {
        state.audit().checkpoint(&tenant).await?
    } else {
        state
            .stores()
            .audit
            .latest_checkpoint(&tenant)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(
                    "no checkpoint has been signed yet; this role exports only what a signed checkpoint covers (retry after the checkpoint interval)".into(),
                )
            })?
    };
    let end = checkpoint.size;
    let mut header = json!({
        "type": "checkpoint",
        "tenant_id": tenant.as_str(),
        "checkpoint": checkpoint.note,
        "verifier_key": state.ledger_verifier().to_verifier_key(),
        "checkpoint_signed_for_export": may_sign,
    })
    .to_string();
    header.push('\n');
    let repo = state.stores().audit.clone();
    let correlation = caller.correlation.clone();
    let first = futures_util::stream::once(async move { Ok(Bytes::from(header)) });
    let entries = futures_util::stream::unfold(0u64, move |next| {
        let repo = repo.clone();
        let tenant = tenant.clone();
        let correlation = correlation.clone();
        async move {
            if next >= end {
                return None;
            }
            let want = usize::try_from(end - next)
                .unwrap_or(EXPORT_CHUNK)
                .min(EXPORT_CHUNK);
            match repo.entries(&tenant, next, want).await {
                Ok(page) if !page.is_empty() => {
                    let mut chunk = String::with_capacity(page.len() * 700);
                    let mut last = next;
                    for e in page.iter().take_while(|e| e.seq < end) {
                        chunk.push_str(
                            &json!({
                                "type": "entry",
                                "seq": e.seq,
                                "leaf": BASE64.encode(&e.leaf),
                                "leaf_hash": e.leaf_hash.to_hex(),
                            })
                            .to_string(),
                        );
                        chunk.push('\n');
                        last = e.seq;
                    }
                    Some((Ok(Bytes::from(chunk)), last + 1))
                }
                Ok(_) => {
                    tracing::error!(%correlation, tenant_id = %tenant, seq = next, "export: the ledger ended before its checkpoint");
                    Some((
                        Err(std::io::Error::other("ledger shorter than its checkpoint")),
                        end,
                    ))
                }
                Err(e) => {
                    tracing::error!(%correlation, tenant_id = %tenant, error = %e, "export failed mid-stream");
                    Some((Err(std::io::Error::other("store failed")), end))
                }
            }
        }
    });
    let stream = futures_util::StreamExt::chain(first, entries);
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::HeaderName::from_static("x-airisk-checkpoint"),
                if may_sign {
                    "signed-for-export"
                } else {
                    "latest-stored"
                },
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

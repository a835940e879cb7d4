//! `/v1/approvals/…`: the approval workflow (four eyes).

use airisk_core::governance::approval_workflow::{
    ApprovalError, ApprovalRequest, ApprovalStatus, NewApprovalRequest,
};
use airisk_core::ports::{ApprovalFilter, Page};
use airisk_core::security::rbac::{Action, RbacService};
use airisk_core::security::tenant_context::ActorId;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Duration;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::api_types::{
    ApprovalPage, ApprovalView, MAX_OFFSET, NewApprovalBody, ReasonBody, check_expires_in,
};
use crate::error::{ApiError, ListErrors, ReadErrors, WriteErrors};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::state::AppState;

/// Largest page of a listing.
pub const MAX_PAGE: u32 = 1000;
/// Default page of a listing.
pub const DEFAULT_PAGE: u32 = 100;

/// A malformed id names no request: it becomes the nil id, which no request has, so the service
/// still checks the role first and then answers the same 404 as for a missing request. (The
/// console's request pages read their ids the same way.)
pub(crate) fn parse_id(id: &str) -> Uuid {
    Uuid::parse_str(id).unwrap_or(Uuid::nil())
}

/// What a decision route does to a pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `approval.approve`.
    Approve,
    /// `approval.reject`.
    Reject,
    /// `approval.cancel` (the requester withdraws it).
    Cancel,
}

impl Verdict {
    /// Asks the approval workflow for this verdict on the request `id` names, as `caller`, with
    /// `reason`: the one call behind the API's and the console's approve, reject and cancel
    /// routes. Returns the request after the decision.
    pub(crate) async fn apply(
        self,
        state: &AppState,
        caller: &Caller,
        id: &str,
        reason: &str,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let (workflow, id) = (state.approvals(), parse_id(id));
        let (principal, correlation) = (&caller.principal, &caller.correlation);
        let decided = match self {
            Verdict::Approve => workflow.approve(principal, correlation, id, reason).await,
            Verdict::Reject => workflow.reject(principal, correlation, id, reason).await,
            Verdict::Cancel => workflow.cancel(principal, correlation, id, reason).await,
        }?;
        Ok(decided.request)
    }
}

/// The body of the API's three decision routes: the verdict, then the request as it now is.
async fn decide(
    state: &AppState,
    caller: &Caller,
    id: &str,
    reason: &str,
    verdict: Verdict,
) -> Result<Json<ApprovalView>, ApiError> {
    let request = verdict.apply(state, caller, id, reason).await?;
    Ok(Json(ApprovalView::of(&request, state.clock().now())))
}

/// Open an approval request (`approval.request`: analyst, admin). Only prompt-label moves are
/// opened here; a model's request is opened by registering the model.
#[utoipa::path(
    post, path = "/v1/approvals", tag = "approvals", operation_id = "requestApproval",
    request_body = NewApprovalBody,
    responses((status = 201, description = "Opened, PENDING", body = ApprovalView), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn request(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewApprovalBody>,
) -> Result<(StatusCode, Json<ApprovalView>), ApiError> {
    // Deny by default, in order: a caller who may not open requests is refused (and the refusal
    // recorded, with the subject's names as sent) by the service before any business rule looks
    // at the body; the service then checks the names. The route checks the expiry only for a
    // caller the matrix allows.
    let may_open = RbacService::new()
        .check_permission(caller.principal.role(), Action::ApprovalRequest)
        .is_ok();
    if may_open {
        check_expires_in(body.expires_in_seconds)?;
    }
    let subject = body.subject.into_requested();
    let expires_in = body
        .expires_in_seconds
        .filter(|_| may_open)
        .map(|s| {
            Duration::try_seconds(s)
                .ok_or_else(|| ApiError::Unprocessable("expires_in_seconds is out of range".into()))
        })
        .transpose()?;
    let decided = state
        .approvals()
        .request_approval(
            &caller.principal,
            &caller.correlation,
            NewApprovalRequest {
                subject,
                justification: body.justification,
                required_approvals: body.required_approvals.unwrap_or(1),
                expires_in,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ApprovalView::of(&decided.request, state.clock().now())),
    ))
}

/// A request's stored status, as a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum StatusFilter {
    /// Waiting for decisions.
    Pending,
    /// Approved.
    Approved,
    /// Rejected.
    Rejected,
    /// Expired.
    Expired,
    /// Cancelled.
    Cancelled,
}

impl From<StatusFilter> for ApprovalStatus {
    fn from(s: StatusFilter) -> Self {
        match s {
            StatusFilter::Pending => ApprovalStatus::Pending,
            StatusFilter::Approved => ApprovalStatus::Approved,
            StatusFilter::Rejected => ApprovalStatus::Rejected,
            StatusFilter::Expired => ApprovalStatus::Expired,
            StatusFilter::Cancelled => ApprovalStatus::Cancelled,
        }
    }
}

/// Listing filters. Every one narrows (so `pending_for_me=true` with another `status` lists
/// nothing).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only this stored status.
    #[param(inline)]
    status: Option<StatusFilter>,
    /// Only requests opened by this actor (1 to 128 ASCII letters, digits, `.`, `_`, `-`, `@`,
    /// `:`, `+`, starting with a letter or digit).
    #[param(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._@:+-]*$",
        min_length = 1,
        max_length = 128
    )]
    requested_by: Option<String>,
    /// `true`: the caller's queue: PENDING, not expired, and not requested by the caller (what
    /// they may decide).
    pending_for_me: Option<bool>,
    /// Skip this many (the previous page's `next_offset`), at most 2^63 - 1.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    offset: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// List the caller's tenant's approval requests, oldest first (`approval.view`: every role).
#[utoipa::path(
    get, path = "/v1/approvals", tag = "approvals", operation_id = "listApprovals",
    params(ListParams),
    responses((status = 200, description = "A page of requests", body = ApprovalPage), ListErrors),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<ApprovalPage>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::Unprocessable(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let offset = q.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::Unprocessable(format!(
            "offset must be at most {MAX_OFFSET}"
        )));
    }
    let for_me = q.pending_for_me.unwrap_or(false);
    let mut filter = ApprovalFilter {
        status: q.status.map(Into::into),
        requested_by: q
            .requested_by
            .as_deref()
            .map(|a| {
                ActorId::canonical(a)
                    .map_err(|e| ApiError::Unprocessable(format!("requested_by: {e}")))
            })
            .transpose()?,
        ..ApprovalFilter::default()
    };
    if for_me {
        if filter.status.is_some_and(|s| s != ApprovalStatus::Pending) {
            // The filters narrow: the caller's queue holds PENDING requests only, so nothing
            // matches another status (after the same role check as any listing).
            crate::routes::audit::require(&caller, Action::ApprovalView)?;
            return Ok(Json(ApprovalPage {
                requests: Vec::new(),
                next_offset: None,
            }));
        }
        filter.status = Some(ApprovalStatus::Pending);
        filter.not_requested_by = Some(caller.principal.actor().clone());
    }
    let found = state
        .approvals()
        .list(&caller.principal, &filter, Page { offset, limit })
        .await?;
    let next_offset = (found.len() == limit as usize).then(|| offset + u64::from(limit));
    let now = state.clock().now();
    let requests = found
        .iter()
        .filter(|r| !for_me || r.status_at(now) == ApprovalStatus::Pending)
        .map(|r| ApprovalView::of(r, now))
        .collect();
    Ok(Json(ApprovalPage {
        requests,
        next_offset,
    }))
}

/// One approval request (`approval.view`).
#[utoipa::path(
    get, path = "/v1/approvals/{id}", tag = "approvals", operation_id = "getApproval",
    params(("id" = String, Path, description = "The request's id (a UUID; anything else names no request: 404)")),
    responses((status = 200, description = "The request", body = ApprovalView), ReadErrors),
    security(("bearer" = []))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ApprovalView>, ApiError> {
    let id = parse_id(&id);
    let r = state.approvals().get(&caller.principal, id).await?;
    Ok(Json(ApprovalView::of(&r, state.clock().now())))
}

/// Approve (`approval.approve`: approver, admin; never one's own request; humans only).
#[utoipa::path(
    post, path = "/v1/approvals/{id}/approve", tag = "approvals", operation_id = "approveRequest",
    params(("id" = String, Path, description = "The request's id (a UUID; anything else names no request: 404)")),
    request_body = ReasonBody,
    responses((status = 200, description = "The request after the decision", body = ApprovalView), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<ApprovalView>, ApiError> {
    decide(&state, &caller, &id, &body.reason, Verdict::Approve).await
}

/// Reject (`approval.reject`: approver, admin; never one's own request; humans only).
#[utoipa::path(
    post, path = "/v1/approvals/{id}/reject", tag = "approvals", operation_id = "rejectRequest",
    params(("id" = String, Path, description = "The request's id (a UUID; anything else names no request: 404)")),
    request_body = ReasonBody,
    responses((status = 200, description = "The request after the decision", body = ApprovalView), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<ApprovalView>, ApiError> {
    decide(&state, &caller, &id, &body.reason, Verdict::Reject).await
}

/// Withdraw one's own pending request (`approval.cancel`: analyst, admin; requester only).
#[utoipa::path(
    post, path = "/v1/approvals/{id}/cancel", tag = "approvals", operation_id = "cancelRequest",
    params(("id" = String, Path, description = "The request's id (a UUID; anything else names no request: 404)")),
    request_body = ReasonBody,
    responses((status = 200, description = "The request, CANCELLED", body = ApprovalView), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<ApprovalView>, ApiError> {
    decide(&state, &caller, &id, &body.reason, Verdict::Cancel).await
}

//! `/v1/prompts/…`: the prompt registry. Prompt names may contain `/`: percent-encode it (`%2F`)
//! in paths.

use airisk_core::governance::prompt_registry::PromptSelector;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api_types::{
    DiffLineView, DiffView, LabelMoveView, LabelView, MoveLabelBody, PromptHistoryView,
    PromptVersionView, RegisterPromptBody, UpdatePromptBody,
};
use crate::error::{ApiError, ReadErrors, WriteErrors};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::state::AppState;

/// Create a prompt at version 1 (`prompt.register`: analyst, admin).
#[utoipa::path(
    post, path = "/v1/prompts", tag = "prompts", operation_id = "registerPrompt",
    request_body = RegisterPromptBody,
    responses((status = 201, description = "Version 1", body = PromptVersionView), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RegisterPromptBody>,
) -> Result<(StatusCode, Json<PromptVersionView>), ApiError> {
    let change = state
        .prompts()
        .register_prompt(
            &caller.principal,
            &caller.correlation,
            &body.name,
            &body.template,
            &body.change_reason,
        )
        .await?;
    Ok((StatusCode::CREATED, Json((&change.version).into())))
}

/// Which version to read: `version`, or `label`, or (neither) the latest. Both: the version the
/// label points to, only if that is `version` (else 404) — a check-and-read for a deployer who
/// expects, say, `production` at version 3.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SelectorParams {
    /// A version number.
    #[param(minimum = 0, maximum = 4_294_967_295_u64, format = Int64)]
    version: Option<u32>,
    /// A label, e.g. `production`.
    #[param(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        min_length = 1,
        max_length = 64
    )]
    label: Option<String>,
}

/// Read a prompt version: by number, by label, or the latest (`prompt.view`: every role).
#[utoipa::path(
    get, path = "/v1/prompts/{name}", tag = "prompts", operation_id = "getPrompt",
    params(("name" = String, Path, description = "Prompt name (percent-encode `/`)", pattern = "^[A-Za-z0-9][A-Za-z0-9._/-]*$", min_length = 1, max_length = 128), SelectorParams),
    responses((status = 200, description = "The version", body = PromptVersionView), ReadErrors),
    security(("bearer" = []))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<SelectorParams>,
) -> Result<Json<PromptVersionView>, ApiError> {
    let selector = match (q.version, q.label) {
        (Some(v), None) => PromptSelector::Version(v),
        (_, Some(l)) => PromptSelector::Label(l),
        (None, None) => PromptSelector::Latest,
    };
    let v = state
        .prompts()
        .get_prompt(&caller.principal, &name, &selector)
        .await?;
    if q.version.is_some_and(|want| want != v.version()) {
        return Err(ApiError::NotFound(
            "the label does not point to that version".into(),
        ));
    }
    Ok(Json((&v).into()))
}

/// Add version n+1 of a prompt (`prompt.update`: analyst, admin). Earlier versions never change.
#[utoipa::path(
    post, path = "/v1/prompts/{name}/versions", tag = "prompts", operation_id = "updatePrompt",
    params(("name" = String, Path, description = "Prompt name (percent-encode `/`)", pattern = "^[A-Za-z0-9][A-Za-z0-9._/-]*$", min_length = 1, max_length = 128)),
    request_body = UpdatePromptBody,
    responses((status = 201, description = "The new version", body = PromptVersionView), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UpdatePromptBody>,
) -> Result<(StatusCode, Json<PromptVersionView>), ApiError> {
    let change = state
        .prompts()
        .update_prompt(
            &caller.principal,
            &caller.correlation,
            &name,
            &body.template,
            &body.change_reason,
        )
        .await?;
    Ok((StatusCode::CREATED, Json((&change.version).into())))
}

/// Every version and label move of a prompt (`prompt.view`).
#[utoipa::path(
    get, path = "/v1/prompts/{name}/history", tag = "prompts", operation_id = "promptHistory",
    params(("name" = String, Path, description = "Prompt name (percent-encode `/`)", pattern = "^[A-Za-z0-9][A-Za-z0-9._/-]*$", min_length = 1, max_length = 128)),
    responses((status = 200, description = "The history", body = PromptHistoryView), ReadErrors),
    security(("bearer" = []))
)]
pub(crate) async fn history(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PromptHistoryView>, ApiError> {
    let h = state.prompts().history(&caller.principal, &name).await?;
    Ok(Json(PromptHistoryView {
        versions: h.versions.iter().map(Into::into).collect(),
        label_moves: h.label_moves.iter().map(Into::into).collect(),
        labels: h
            .labels
            .into_iter()
            .map(|(label, version)| LabelView { label, version })
            .collect(),
    }))
}

/// The two versions to compare.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DiffParams {
    /// The older version.
    #[param(minimum = 0, maximum = 4_294_967_295_u64, format = Int64)]
    from: u32,
    /// The newer version.
    #[param(minimum = 0, maximum = 4_294_967_295_u64, format = Int64)]
    to: u32,
}

/// A line diff between two versions of a prompt (`prompt.view`).
#[utoipa::path(
    get, path = "/v1/prompts/{name}/diff", tag = "prompts", operation_id = "promptDiff",
    params(("name" = String, Path, description = "Prompt name (percent-encode `/`)", pattern = "^[A-Za-z0-9][A-Za-z0-9._/-]*$", min_length = 1, max_length = 128), DiffParams),
    responses((status = 200, description = "The diff", body = DiffView), ReadErrors),
    security(("bearer" = []))
)]
pub(crate) async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<DiffParams>,
) -> Result<Json<DiffView>, ApiError> {
    let lines = state
        .prompts()
        .diff(&caller.principal, &name, q.from, q.to)
        .await?;
    Ok(Json(DiffView {
        from: q.from,
        to: q.to,
        lines: lines.iter().map(DiffLineView::from).collect(),
    }))
}

/// Move a label (such as `production`) to a version (`prompt.move_label`: analyst, admin). Needs
/// an APPROVED, unused approval request for exactly this move (open one with `POST
/// /v1/approvals`); the move spends it. Without one: 409 `approval-required`.
#[utoipa::path(
    put, path = "/v1/prompts/{name}/labels/{label}", tag = "prompts", operation_id = "movePromptLabel",
    params(("name" = String, Path, description = "Prompt name (percent-encode `/`)", pattern = "^[A-Za-z0-9][A-Za-z0-9._/-]*$", min_length = 1, max_length = 128), ("label" = String, Path, description = "The label", pattern = "^[A-Za-z0-9][A-Za-z0-9._/-]*$", min_length = 1, max_length = 64)),
    request_body = MoveLabelBody,
    responses((status = 200, description = "The move", body = LabelMoveView), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn move_label(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((name, label)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<MoveLabelBody>,
) -> Result<Json<LabelMoveView>, ApiError> {
    let mv = state
        .prompts()
        .move_label(
            &caller.principal,
            &caller.correlation,
            &name,
            &label,
            body.version,
        )
        .await?;
    Ok(Json((&mv).into()))
}

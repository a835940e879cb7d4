//! `/v1/prompts/…`: the prompt registry. Prompt names may contain `/`: percent-encode it (`%2F`)
//! in paths.

use airisk_core::governance::prompt_registry::PromptSelector;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ReadErrors, WriteErrors};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::state::AppState;
use crate::views::{
    DiffLineView, DiffView, LabelMoveView, LabelView, MoveLabelBody, PromptHistoryView,
    PromptVersionView, RegisterPromptBody, UpdatePromptBody,
};

/// Create a prompt at version 1 (`prompt.register`: analyst, admin).
#[utoipa::path(
    post, path = "/v1/prompts", tag = "prompts",
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

/// Which version to read: `version`, or `label`, or (neither) the latest.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SelectorParams {
    /// A version number.
    version: Option<u32>,
    /// A label, e.g. `production`.
    label: Option<String>,
}

/// Read a prompt version: by number, by label, or the latest (`prompt.view`: every role).
#[utoipa::path(
    get, path = "/v1/prompts/{name}", tag = "prompts",
    params(("name" = String, Path, description = "Prompt name"), SelectorParams),
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
        (None, Some(l)) => PromptSelector::Label(l),
        (None, None) => PromptSelector::Latest,
        (Some(_), Some(_)) => {
            return Err(ApiError::Unprocessable(
                "give version or label, not both".into(),
            ));
        }
    };
    let v = state
        .prompts()
        .get_prompt(&caller.principal, &name, &selector)
        .await?;
    Ok(Json((&v).into()))
}

/// Add version n+1 of a prompt (`prompt.update`: analyst, admin). Earlier versions never change.
#[utoipa::path(
    post, path = "/v1/prompts/{name}/versions", tag = "prompts",
    params(("name" = String, Path, description = "Prompt name")),
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
    get, path = "/v1/prompts/{name}/history", tag = "prompts",
    params(("name" = String, Path, description = "Prompt name")),
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
    from: u32,
    /// The newer version.
    to: u32,
}

/// A line diff between two versions of a prompt (`prompt.view`).
#[utoipa::path(
    get, path = "/v1/prompts/{name}/diff", tag = "prompts",
    params(("name" = String, Path, description = "Prompt name"), DiffParams),
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
    put, path = "/v1/prompts/{name}/labels/{label}", tag = "prompts",
    params(("name" = String, Path, description = "Prompt name"), ("label" = String, Path, description = "The label")),
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

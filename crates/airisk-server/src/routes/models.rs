//! `/v1/models/…`: the model registry.

use airisk_core::governance::audit_record::SensitiveMetadata;
use airisk_core::governance::model_registry::{Deployment, ModelName, RegisterModel};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

use crate::api_types::{
    ApprovalView, DeploymentBody, DeploymentView, ModelView, ReasonBody, RegisterModelBody,
    RegistrationView, check_expires_in,
};
use crate::error::{ApiError, ListErrors, ReadErrors, WriteErrors};
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::state::AppState;

/// Register a model version with its artifact's SHA-256 (`model.register`: admin only). It starts
/// PENDING, with an approval request that someone other than the registrant must approve.
/// Values in `sensitive_metadata` are sealed under the tenant's data key and stored only as
/// ciphertext.
#[utoipa::path(
    post, path = "/v1/models", tag = "models", operation_id = "registerModel",
    request_body = RegisterModelBody,
    responses((status = 201, description = "Registered, PENDING", body = RegistrationView), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RegisterModelBody>,
) -> Result<(StatusCode, Json<RegistrationView>), ApiError> {
    check_expires_in(body.expires_in_seconds)?;
    let sensitive = match body.sensitive_metadata {
        None | Some(Value::Null) => SensitiveMetadata::new(),
        Some(Value::Object(map)) => SensitiveMetadata::from_map(map),
        Some(_) => {
            return Err(ApiError::Unprocessable(
                "sensitive_metadata must be a JSON object".to_owned(),
            ));
        }
    };
    let input = RegisterModel {
        name: body.name,
        version: body.version,
        checksum: body.checksum,
        artifact_uri: body.artifact_uri,
        metadata: body.metadata,
        justification: body.justification,
        required_approvals: body.required_approvals,
        expires_in_seconds: body.expires_in_seconds,
    };
    let registered = state
        .models()
        .register_model_sensitive(&caller.principal, &caller.correlation, input, &sensitive)
        .await?;
    let now = state.clock().now();
    Ok((
        StatusCode::CREATED,
        Json(RegistrationView {
            model: (&registered.model).into(),
            approval_request: ApprovalView::of(&registered.request, now),
        }),
    ))
}

/// Every version of a model, oldest first (`model.view`: every role). An unknown model has no
/// versions; a name no model can have is a 422.
#[utoipa::path(
    get, path = "/v1/models/{name}/versions", tag = "models", operation_id = "listModelVersions",
    params(("name" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$", min_length = 1, max_length = 128)),
    responses((status = 200, description = "The versions", body = [ModelView]), ListErrors),
    security(("bearer" = []))
)]
pub(crate) async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<ModelView>>, ApiError> {
    // A name no model can have is an invalid parameter (the document states the pattern), not
    // an empty list.
    ModelName::parse(&name)?;
    let versions = state
        .models()
        .list_versions(&caller.principal, &name)
        .await?;
    Ok(Json(versions.iter().map(Into::into).collect()))
}

/// One model version (`model.view`).
#[utoipa::path(
    get, path = "/v1/models/{name}/versions/{version}", tag = "models", operation_id = "getModelVersion",
    params(("name" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$", min_length = 1, max_length = 128), ("version" = String, Path, description = "Version label", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$", min_length = 1, max_length = 64)),
    responses((status = 200, description = "The model version", body = ModelView), ReadErrors),
    security(("bearer" = []))
)]
pub(crate) async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> Result<Json<ModelView>, ApiError> {
    let model = state
        .models()
        .get_model(&caller.principal, &name, &version)
        .await?;
    Ok(Json((&model).into()))
}

/// What a model decision route asks of the registry (a model's request is never cancelled
/// through its model: the requester cancels it as an approval request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelVerdict {
    /// `model.approve`.
    Approve,
    /// `model.reject`.
    Reject,
}

/// The body of the two model decision routes: the registry's verdict on the version's approval
/// request, then the request as it now is (as `approvals::decide` does for the request routes).
async fn decide(
    state: &AppState,
    caller: &Caller,
    (name, version): &(String, String),
    reason: &str,
    verdict: ModelVerdict,
) -> Result<Json<ApprovalView>, ApiError> {
    let (models, principal, correlation) = (state.models(), &caller.principal, &caller.correlation);
    let request = match verdict {
        ModelVerdict::Approve => {
            models
                .approve_model(principal, correlation, name, version, reason)
                .await
        }
        ModelVerdict::Reject => {
            models
                .reject_model(principal, correlation, name, version, reason)
                .await
        }
    }?;
    Ok(Json(ApprovalView::of(&request, state.clock().now())))
}

/// Approve a model version through its approval request (`model.approve`: approver, admin; never
/// the registrant; humans only). When the quorum is reached the model becomes APPROVED.
#[utoipa::path(
    post, path = "/v1/models/{name}/versions/{version}/approve", tag = "models", operation_id = "approveModel",
    params(("name" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$", min_length = 1, max_length = 128), ("version" = String, Path, description = "Version label", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$", min_length = 1, max_length = 64)),
    request_body = ReasonBody,
    responses((status = 200, description = "The approval request after the decision", body = ApprovalView), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(model): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<ApprovalView>, ApiError> {
    decide(&state, &caller, &model, &body.reason, ModelVerdict::Approve).await
}

/// Reject a model version (`model.reject`: approver, admin; never the registrant).
#[utoipa::path(
    post, path = "/v1/models/{name}/versions/{version}/reject", tag = "models", operation_id = "rejectModel",
    params(("name" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$", min_length = 1, max_length = 128), ("version" = String, Path, description = "Version label", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$", min_length = 1, max_length = 64)),
    request_body = ReasonBody,
    responses((status = 200, description = "The approval request after the decision", body = ApprovalView), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(model): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<ApprovalView>, ApiError> {
    decide(&state, &caller, &model, &body.reason, ModelVerdict::Reject).await
}

/// The deployment gate (`model.authorize_deployment`: analyst, admin): authorised only for an
/// APPROVED version whose registered checksum equals the presented SHA-256. A refusal on the
/// merits is a 409 `deployment-denied` problem. Every outcome is audited.
#[utoipa::path(
    post, path = "/v1/models/{name}/versions/{version}/deployments", tag = "models", operation_id = "authorizeDeployment",
    params(("name" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$", min_length = 1, max_length = 128), ("version" = String, Path, description = "Version label", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$", min_length = 1, max_length = 64)),
    request_body = DeploymentBody,
    responses((status = 200, description = "Authorised", body = DeploymentView), WriteErrors),
    security(("bearer" = []))
)]
pub(crate) async fn authorize_deployment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((name, version)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<DeploymentBody>,
) -> Result<Json<DeploymentView>, ApiError> {
    match state
        .models()
        .authorize_deployment(
            &caller.principal,
            &caller.correlation,
            &name,
            &version,
            &body.sha256,
        )
        .await?
    {
        Deployment::Authorized { model, receipt } => Ok(Json(DeploymentView {
            authorized: true,
            model: model.as_ref().into(),
            receipt: receipt.as_ref().into(),
        })),
        Deployment::Denied { reason } => Err(reason.into()),
    }
}

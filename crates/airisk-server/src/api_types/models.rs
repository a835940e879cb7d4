//! The model routes' bodies (`/v1/models/…`): registration, versions, decisions and deployment.

use airisk_core::governance::model_registry::ModelVersion;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{ApprovalView, Metadata, ReceiptView, SensitiveModelMetadata, integral, ts};

/// A model version to register. It starts PENDING with an approval request. `Debug` never shows
/// the sensitive metadata's values.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterModelBody {
    /// Model name, e.g. `credit-scoring`: 1 to 128 ASCII letters, digits, `.`, `_`, `-`,
    /// starting with a letter or digit.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$",
        min_length = 1,
        max_length = 128
    )]
    pub name: String,
    /// Version label, e.g. `1.4.0`: as the name, at most 64.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$",
        min_length = 1,
        max_length = 64
    )]
    pub version: String,
    /// SHA-256 of the artifact: 64 hex digits (optionally `sha256:`-prefixed).
    #[schema(pattern = "^(sha256:)?[0-9A-Fa-f]{64}$")]
    pub checksum: String,
    /// Where the artifact lives (`s3://…`, `https://…`, `file://…`): `scheme://rest`, no space or
    /// control character, no hidden character (as for approved text); at most 2048 bytes of
    /// UTF-8.
    #[schema(pattern = "@artifact-uri", max_length = 2048)]
    pub artifact_uri: String,
    /// Free-form metadata (a JSON object, at most 16 KiB as canonical JSON); every key and
    /// string is shown to approvers and must hold no hidden character.
    #[serde(default)]
    #[schema(value_type = Option<Metadata>)]
    pub metadata: Option<Value>,
    /// Metadata the caller marks sensitive (a JSON object, at most 16 KiB as canonical JSON;
    /// keys must not repeat `metadata`'s, at most 128 characters each): each value is sealed under
    /// the tenant's data key (purpose `model.metadata`, row `name@version/key`) and stored only
    /// as ciphertext; reads return it opened, or its key in `erased_metadata` after a shred.
    /// Refused when the service has no encryption keys. Never logged.
    #[serde(default)]
    #[schema(value_type = Option<SensitiveModelMetadata>)]
    pub sensitive_metadata: Option<Value>,
    /// Why it should be deployed (the approval request's justification): visible text (see
    /// `hidden-character` problems), not blank, at most 4096 bytes of UTF-8.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 4096)]
    pub justification: String,
    /// Distinct approvals needed (1 to 10; default 1).
    #[serde(default, deserialize_with = "integral::opt_u32")]
    #[schema(minimum = 1, maximum = 10)]
    pub required_approvals: Option<u32>,
    /// Seconds until the approval request expires (1 to 315576000, ten years; default: never).
    #[serde(default, deserialize_with = "integral::opt_i64")]
    #[schema(minimum = 1, maximum = 315_576_000)]
    pub expires_in_seconds: Option<i64>,
}

impl std::fmt::Debug for RegisterModelBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterModelBody")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("checksum", &self.checksum)
            .field("artifact_uri", &self.artifact_uri)
            .field("metadata", &self.metadata)
            .field(
                "sensitive_metadata_keys",
                &self
                    .sensitive_metadata
                    .as_ref()
                    .and_then(Value::as_object)
                    .map(|m| m.keys().collect::<Vec<_>>()),
            )
            .field("justification", &self.justification)
            .field("required_approvals", &self.required_approvals)
            .field("expires_in_seconds", &self.expires_in_seconds)
            .finish()
    }
}

/// A registered model version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelView {
    /// Model name.
    pub name: String,
    /// Version label.
    pub version: String,
    /// The registered artifact's SHA-256, hex.
    pub checksum: String,
    /// Where the artifact lives.
    pub artifact_uri: String,
    /// Free-form metadata.
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// The sensitive metadata values, opened for the tenant's users (absent when there are
    /// none, or when every one was erased).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Option<Object>)]
    pub sensitive_metadata: Map<String, Value>,
    /// Keys of sensitive metadata values erased by crypto-shredding (absent when none was).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erased_metadata: Vec<String>,
    /// Who registered it.
    pub registered_by: String,
    /// When.
    pub created_at: String,
    /// `PENDING`, `APPROVED` or `REJECTED`.
    pub status: String,
    /// Whether it is approved.
    pub approved: bool,
    /// Every approver of the quorum.
    pub approved_by: Vec<String>,
    /// When it was approved.
    pub approved_at: Option<String>,
    /// Who rejected it.
    pub rejected_by: Option<String>,
    /// The approval request that decides it.
    pub approval_request_id: String,
}

impl From<&ModelVersion> for ModelView {
    fn from(m: &ModelVersion) -> Self {
        ModelView {
            name: m.model_name().to_string(),
            version: m.version().to_string(),
            checksum: m.checksum().to_hex(),
            artifact_uri: m.artifact_uri().to_owned(),
            metadata: m.metadata().clone(),
            sensitive_metadata: m.sensitive_metadata().expose().clone(),
            erased_metadata: m.erased_metadata().to_vec(),
            registered_by: m.registered_by().to_string(),
            created_at: ts(m.created_at()),
            status: m.status().as_str().to_owned(),
            approved: m.approved(),
            approved_by: m.approved_by().iter().map(ToString::to_string).collect(),
            approved_at: m.approved_at().map(ts),
            rejected_by: m.rejected_by().map(ToString::to_string),
            approval_request_id: m.approval_request_id().to_string(),
        }
    }
}

/// A registration: the model and its approval request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistrationView {
    /// The model, PENDING.
    pub model: ModelView,
    /// Its approval request.
    pub approval_request: ApprovalView,
}

/// A decision's reason.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why (mandatory): visible text, not blank, at most 4096 bytes of UTF-8.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 4096)]
    pub reason: String,
}

/// The artifact presented for deployment.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentBody {
    /// SHA-256 of the artifact about to be deployed: 64 hex digits (optionally
    /// `sha256:`-prefixed).
    #[schema(pattern = "^(sha256:)?[0-9A-Fa-f]{64}$")]
    pub sha256: String,
}

/// A granted deployment authorisation (a refusal is a 409 problem).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeploymentView {
    /// Always true here.
    pub authorized: bool,
    /// The model version.
    pub model: ModelView,
    /// The audit record of this authorisation.
    pub receipt: ReceiptView,
}

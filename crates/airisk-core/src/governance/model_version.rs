//! The model registry's values: a model's name and version label, an artifact's SHA-256 digest,
//! a registered [`ModelVersion`] and its [`ModelStatus`]. Each is valid by construction; the
//! service that registers, approves and authorises them is [`super::model_registry`].
//!
//! The seed's fields (`model_name`, `version`, `checksum`, `created_at`, `approved`,
//! `approved_by`, `approved_at`, `status`) are all on [`ModelVersion`].

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::approval_request::{ApprovalRequest, ApprovalStatus};
use super::audit_record::SensitiveMetadata;
use crate::input::InputError;
use crate::security::tenant_context::{ActorId, TenantId};

/// Longest model name, in bytes.
pub const MODEL_NAME_MAX_LEN: usize = 128;
/// Longest model version, in bytes.
pub const MODEL_VERSION_MAX_LEN: usize = 64;
/// Longest artifact URI, in bytes.
pub const ARTIFACT_URI_MAX_LEN: usize = 2048;
/// Largest metadata object (canonical JSON), in bytes; the same bound holds for the sensitive
/// metadata object on its own.
pub const MODEL_METADATA_MAX_BYTES: usize = 16 * 1024;
/// Longest key of a sensitive metadata value, in characters (the key is part of the sealed
/// value's row identity, which must fit in 1024 bytes with the model's name and version).
pub const SENSITIVE_METADATA_KEY_MAX_LEN: usize = 128;

/// Where a model version stands.
///
/// A model whose approval request was cancelled or expired stays PENDING and can never be
/// approved: its request is terminal and a model's request is opened only by registration.
/// Register a new version instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ModelStatus {
    /// Registered, waiting for approval.
    Pending,
    /// Approved: deployable with its registered checksum.
    Approved,
    /// Rejected: never deployable.
    Rejected,
}

impl fmt::Display for ModelStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ModelStatus {
    /// `PENDING`, `APPROVED` or `REJECTED`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ModelStatus::Pending => "PENDING",
            ModelStatus::Approved => "APPROVED",
            ModelStatus::Rejected => "REJECTED",
        }
    }
}

crate::newtype::validated_name!(
    /// A model's name, e.g. `credit-scoring`.
    ModelName,
    "model name",
    MODEL_NAME_MAX_LEN
);
crate::newtype::validated_name!(
    /// A model's version label, e.g. `1.4.0`.
    ModelVersionTag,
    "model version",
    MODEL_VERSION_MAX_LEN
);

/// A SHA-256 digest as 64 lower-case hex digits. Parsing accepts upper case and normalises it,
/// and an optional `sha256:` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// Parses 64 hex digits (optionally prefixed `sha256:`).
    ///
    /// # Errors
    /// [`InputError`] (field `checksum`) if the input is not 32 bytes of hex.
    pub fn parse(input: &str) -> Result<Self, InputError> {
        let invalid = || InputError::new("checksum", "must be a SHA-256 digest: 64 hex digits");
        let hex = input.strip_prefix("sha256:").unwrap_or(input);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).unwrap_or("00");
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(Sha256Digest(out))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let d = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Sha256Digest(out)
    }

    /// 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Constant-time comparison (the presented digest comes from outside).
    pub fn matches(&self, other: &Sha256Digest) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl TryFrom<String> for Sha256Digest {
    type Error = InputError;
    fn try_from(s: String) -> Result<Self, InputError> {
        Sha256Digest::parse(&s)
    }
}
impl From<Sha256Digest> for String {
    fn from(v: Sha256Digest) -> String {
        v.to_hex()
    }
}

/// A registered model version. Immutable; changes produce a new value with `row_version + 1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub(super) tenant_id: TenantId,
    pub(super) model_name: ModelName,
    pub(super) version: ModelVersionTag,
    pub(super) checksum: Sha256Digest,
    pub(super) artifact_uri: String,
    pub(super) metadata: Map<String, Value>,
    /// As stored: each sensitive metadata value sealed under the tenant's data key (key →
    /// `v1.<dek-kid>.…`), bound to the row `name@version/key`. Kept as is when the values are
    /// opened, so a decision written back keeps the ciphertext.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub(super) sealed_metadata: Map<String, Value>,
    /// The sensitive values opened for a reader holding the tenant's key (never stored or
    /// serialised; `Debug` shows the keys only).
    #[serde(skip)]
    pub(super) sensitive_metadata: SensitiveMetadata,
    /// Keys of sensitive values erased by crypto-shredding (never stored).
    #[serde(skip)]
    pub(super) erased_metadata: Vec<String>,
    pub(super) registered_by: ActorId,
    pub(super) created_at: DateTime<Utc>,
    pub(super) status: ModelStatus,
    pub(super) approval_request_id: Uuid,
    pub(super) approved_by: Vec<ActorId>,
    pub(super) approved_at: Option<DateTime<Utc>>,
    pub(super) rejected_by: Option<ActorId>,
    pub(super) row_version: u64,
}

impl ModelVersion {
    /// Its tenant.
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }
    /// The seed's `model_name`.
    pub fn model_name(&self) -> &ModelName {
        &self.model_name
    }
    /// The seed's `version`.
    pub fn version(&self) -> &ModelVersionTag {
        &self.version
    }
    /// The seed's `checksum`: the registered artifact's SHA-256.
    pub fn checksum(&self) -> &Sha256Digest {
        &self.checksum
    }
    /// Where the artifact lives.
    pub fn artifact_uri(&self) -> &str {
        &self.artifact_uri
    }
    /// Free-form metadata.
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }
    /// The sensitive metadata values as stored: key → `v1.` ciphertext under the tenant's data
    /// key (empty if none was given).
    pub fn sealed_metadata(&self) -> &Map<String, Value> {
        &self.sealed_metadata
    }
    /// The sensitive metadata values, opened: filled only by a registry that holds the tenant's
    /// keys ([`super::model_registry::ModelRegistry::with_envelope`]) and only for values that
    /// were not erased.
    pub fn sensitive_metadata(&self) -> &SensitiveMetadata {
        &self.sensitive_metadata
    }
    /// Keys of sensitive metadata values erased by crypto-shredding: a state, not an error.
    pub fn erased_metadata(&self) -> &[String] {
        &self.erased_metadata
    }
    /// Who registered it.
    pub fn registered_by(&self) -> &ActorId {
        &self.registered_by
    }
    /// The seed's `created_at`.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    /// The seed's `status`.
    pub fn status(&self) -> ModelStatus {
        self.status
    }
    /// The seed's `approved`.
    pub fn approved(&self) -> bool {
        self.status == ModelStatus::Approved
    }
    /// The seed's `approved_by`: every approver of the quorum.
    pub fn approved_by(&self) -> &[ActorId] {
        &self.approved_by
    }
    /// The seed's `approved_at`.
    pub fn approved_at(&self) -> Option<DateTime<Utc>> {
        self.approved_at
    }
    /// Who rejected it, if rejected.
    pub fn rejected_by(&self) -> Option<&ActorId> {
        self.rejected_by.as_ref()
    }
    /// The approval request that decides it.
    pub fn approval_request_id(&self) -> Uuid {
        self.approval_request_id
    }
    /// Optimistic-concurrency version.
    pub fn row_version(&self) -> u64 {
        self.row_version
    }

    /// The model after its approval request reached a terminal decision.
    pub(crate) fn decided(&self, request: &ApprovalRequest) -> ModelVersion {
        let mut next = self.clone();
        next.row_version += 1;
        // What is written back is the stored form: the sealed values, never their plaintext.
        next.sensitive_metadata = SensitiveMetadata::new();
        next.erased_metadata.clear();
        match request.status() {
            ApprovalStatus::Approved => {
                next.status = ModelStatus::Approved;
                next.approved_by = request
                    .approvals()
                    .iter()
                    .map(|a| a.approver.clone())
                    .collect();
                next.approved_at = request.decided_at();
            }
            ApprovalStatus::Rejected => {
                next.status = ModelStatus::Rejected;
                next.rejected_by = request.rejection().map(|d| d.by.clone());
            }
            _ => {}
        }
        next
    }
}

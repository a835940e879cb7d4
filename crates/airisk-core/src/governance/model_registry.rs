//! The model registry: every model version is registered with its artifact's SHA-256, waits for a
//! human approval, and is authorised for deployment only while APPROVED and only for the exact
//! artifact that was approved. The values it keeps (names, digests, [`ModelVersion`]) are
//! [`super::model_version`].

use std::sync::Arc;

use chrono::Duration;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::approval_request::{
    ApprovalError, ApprovalRequest, NewApprovalRequest, RequestedSubject,
};
use super::approval_workflow::{ApprovalWorkflow, Verdict};
use super::audit_record::{AuditReceipt, AuditValidationError, Outcome, SensitiveMetadata};
pub use super::model_version::{
    ARTIFACT_URI_MAX_LEN, MODEL_METADATA_MAX_BYTES, MODEL_NAME_MAX_LEN, MODEL_VERSION_MAX_LEN,
    ModelName, ModelStatus, ModelVersion, ModelVersionTag, SENSITIVE_METADATA_KEY_MAX_LEN,
    Sha256Digest,
};
use super::service_context::{Resource, ServiceContext};
use super::visible_text::{self, HiddenCharacter};
use crate::input::InputError;
use crate::ledger::to_canonical_json;
use crate::ports::{
    ApprovalWithSubject, ChangeSet, Clock, GovernanceStore, IdGenerator, Mutation, StoreError,
};
use crate::request::CorrelationId;
use crate::security::encryption::EncryptionError;
use crate::security::envelope::{Envelope, Opened, model_metadata_context};
use crate::security::rbac::{Action, AuthorizationError};
use crate::security::tenant_context::{Principal, TenantId};

/// Why a model registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelRegistryError {
    /// The caller's role may not do this (recorded as a denial).
    #[error(transparent)]
    Forbidden(#[from] AuthorizationError),
    /// No such model version in the caller's tenant.
    #[error("model version not found")]
    NotFound,
    /// The tenant already has this name and version.
    #[error("model {name} version {version} is already registered")]
    AlreadyRegistered {
        /// Name.
        name: String,
        /// Version.
        version: String,
    },
    /// An input is invalid; nothing was written.
    #[error("invalid input: {0}")]
    Invalid(#[from] InputError),
    /// The artifact URI or a metadata key or value holds a character a reader would not see
    /// (see [`visible_text`]); nothing was written.
    #[error(transparent)]
    HiddenCharacter(#[from] HiddenCharacter),
    /// The approval step failed (self-approval, already decided, expired, conflict, …).
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// The audit record could not be built.
    #[error(transparent)]
    Audit(#[from] AuditValidationError),
    /// The store failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sensitive metadata could not be sealed or opened (no keys configured, a tampered or
    /// misplaced ciphertext); nothing was written.
    #[error("sensitive model metadata could not be sealed or opened: {0}")]
    Sealing(#[from] EncryptionError),
}

/// The input of [`ModelRegistry::register_model`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegisterModel {
    /// Model name.
    pub name: String,
    /// Version label.
    pub version: String,
    /// SHA-256 of the artifact, 64 hex digits.
    pub checksum: String,
    /// Where the artifact lives (`s3://…`, `https://…`, `file://…`).
    pub artifact_uri: String,
    /// Free-form metadata (a JSON object).
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Why it should be deployed (the approval request's justification).
    pub justification: String,
    /// Distinct approvals needed (default 1).
    #[serde(default)]
    pub required_approvals: Option<u32>,
    /// Seconds until the approval request expires (default: never).
    #[serde(default)]
    pub expires_in_seconds: Option<i64>,
}

/// A registration: the model and its approval request.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The model, PENDING.
    pub model: ModelVersion,
    /// The approval request that decides it.
    pub request: ApprovalRequest,
    /// Audit receipts.
    pub receipts: Vec<AuditReceipt>,
}

/// The outcome of [`ModelRegistry::authorize_deployment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployment {
    /// Deploy: the model is APPROVED and the presented artifact is the approved one.
    Authorized {
        /// The model version.
        model: Box<ModelVersion>,
        /// Receipt of the audit record of this authorisation.
        receipt: Box<AuditReceipt>,
    },
    /// Do not deploy, and why (the refusal is audited too).
    Denied {
        /// Why, in words.
        reason: DeploymentDenial,
    },
}

/// Why a deployment was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeploymentDenial {
    /// The model is not (or not yet) approved.
    #[error("the model version is {0}, not APPROVED")]
    NotApproved(ModelStatus),
    /// The presented artifact is not the one that was registered and approved.
    #[error("the presented artifact's SHA-256 does not match the registered checksum")]
    ChecksumMismatch,
}

/// The model registry service. A model's approval goes through the approval workflow, which
/// holds the shared [`ServiceContext`].
#[derive(Debug, Clone)]
pub struct ModelRegistry {
    workflow: ApprovalWorkflow,
    envelope: Option<Arc<Envelope>>,
}

impl ModelRegistry {
    /// A registry over `store` (a shorthand for [`ModelRegistry::with_context`] with a new
    /// [`ServiceContext`]).
    pub fn new(
        store: Arc<dyn GovernanceStore>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self::with_context(ServiceContext::new(store, clock, ids))
    }

    /// A registry working with the shared `ctx`.
    pub fn with_context(ctx: ServiceContext) -> Self {
        ModelRegistry {
            workflow: ApprovalWorkflow::with_context(ctx),
            envelope: None,
        }
    }

    /// The same registry, sealing sensitive metadata values under the tenant's data key on
    /// registration ([`ModelRegistry::register_model_sensitive`]) and opening them on reads (see
    /// [`crate::security::envelope`]). Without it, a registration with sensitive values is
    /// refused and a read of a version that has some fails closed.
    #[must_use]
    pub fn with_envelope(mut self, envelope: Arc<Envelope>) -> Self {
        self.envelope = Some(envelope);
        self
    }

    /// Opens the sealed metadata of every version in `models` in place (its
    /// [`ModelVersion::sensitive_metadata`], or [`ModelVersion::erased_metadata`] after a
    /// shred), reading the tenant's key list once.
    async fn open_metadata(
        &self,
        tenant: &TenantId,
        models: &mut [ModelVersion],
    ) -> Result<(), ModelRegistryError> {
        if models.iter().all(|m| m.sealed_metadata.is_empty()) {
            return Ok(());
        }
        // Fail closed: a sealed value with no envelope configured is an error, never shown as is.
        let Some(env) = &self.envelope else {
            return Err(ModelRegistryError::Sealing(EncryptionError::KeyMissing));
        };
        let keys = self.ctx().store.data_keys(tenant).await?;
        for m in models.iter_mut() {
            let mut opened = SensitiveMetadata::new();
            let mut erased = Vec::new();
            for (key, sealed) in &m.sealed_metadata {
                let ctx =
                    model_metadata_context(tenant, m.model_name.as_str(), m.version.as_str(), key)?;
                let text = sealed.as_str().ok_or(EncryptionError::DecryptionFailed)?;
                match env.open(&keys, &ctx, text)? {
                    Opened::Plain(json) => {
                        let json = zeroize::Zeroizing::new(json);
                        let value = serde_json::from_str(&json)
                            .map_err(|_| EncryptionError::DecryptionFailed)?;
                        opened.insert(key.clone(), value);
                    }
                    Opened::Erased => erased.push(key.clone()),
                }
            }
            m.sensitive_metadata = opened;
            m.erased_metadata = erased;
        }
        Ok(())
    }

    fn ctx(&self) -> &ServiceContext {
        self.workflow.context()
    }

    /// Registers a model version, PENDING, with its approval request, in one transaction with
    /// their audit records (`model.register`).
    ///
    /// # Errors
    /// [`ModelRegistryError::Forbidden`], [`ModelRegistryError::Invalid`],
    /// [`ModelRegistryError::HiddenCharacter`] (artifact URI, metadata, or as
    /// [`ModelRegistryError::Approval`] the justification),
    /// [`ModelRegistryError::AlreadyRegistered`], [`ModelRegistryError::Store`].
    pub async fn register_model(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        input: RegisterModel,
    ) -> Result<Registered, ModelRegistryError> {
        self.register_model_sensitive(principal, correlation, input, &SensitiveMetadata::new())
            .await
    }

    /// [`ModelRegistry::register_model`] with metadata values the caller marks sensitive
    /// (personal or confidential context: a data owner, a customer sample, a contract
    /// reference). Each value is sealed, as its canonical JSON text, under the tenant's newest
    /// data key, bound to the tenant, purpose `model.metadata` and the row `name@version/key`,
    /// and stored only as ciphertext ([`ModelVersion::sealed_metadata`]); a first data key is
    /// made and stored in the same transaction. The returned model carries the values opened.
    /// The `model.register` record lists the sensitive keys (`sensitive_metadata_keys`), never
    /// the values.
    ///
    /// # Errors
    /// As [`ModelRegistry::register_model`]; [`ModelRegistryError::Invalid`] for a key also in
    /// `metadata`, a key longer than [`SENSITIVE_METADATA_KEY_MAX_LEN`] or a sensitive object
    /// larger than [`MODEL_METADATA_MAX_BYTES`]; [`ModelRegistryError::Sealing`] if values are
    /// given and this registry has no envelope ([`ModelRegistry::with_envelope`]). Nothing is
    /// written then.
    #[tracing::instrument(
        name = "register_model",
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::ModelRegister.as_str(), correlation_id = %correlation)
    )]
    pub async fn register_model_sensitive(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        input: RegisterModel,
        sensitive: &SensitiveMetadata,
    ) -> Result<Registered, ModelRegistryError> {
        let k = self.ctx();
        let resource = Resource::Model {
            name: &input.name,
            version: &input.version,
        };
        k.authorize(principal, correlation, Action::ModelRegister, resource)
            .await?;
        let name = ModelName::parse(&input.name)?;
        let version = ModelVersionTag::parse(&input.version)?;
        let checksum = Sha256Digest::parse(&input.checksum)?;
        let artifact_uri = check_uri(&input.artifact_uri)?;
        let metadata = match input.metadata {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(InputError::new("metadata", "must be a JSON object").into());
            }
        };
        // The metadata is shown to the approver: every key and string value must be visible.
        visible_text::check_object("metadata", &metadata)?;
        metadata
            .values()
            .try_for_each(crate::ledger::check_safe_integers)
            .map_err(|e| InputError::new("metadata", format!("is not canonical JSON: {e}")))?;
        let size = to_canonical_json(&Value::Object(metadata.clone()))
            .map_err(|e| InputError::new("metadata", format!("is not canonical JSON: {e}")))?
            .len();
        if size > MODEL_METADATA_MAX_BYTES {
            return Err(InputError::new(
                "metadata",
                format!("is {size} bytes; at most {MODEL_METADATA_MAX_BYTES} are allowed"),
            )
            .into());
        }
        check_sensitive(&metadata, sensitive)?;
        if !sensitive.is_empty() && self.envelope.is_none() {
            return Err(ModelRegistryError::Sealing(EncryptionError::KeyMissing));
        }
        let expires_in = match input.expires_in_seconds {
            Some(s) => Some(
                Duration::try_seconds(s)
                    .ok_or_else(|| InputError::new("expires_in_seconds", "is out of range"))?,
            ),
            None => None,
        };
        if k.store
            .model(principal.tenant(), &name, &version)
            .await?
            .is_some()
        {
            return Err(ModelRegistryError::AlreadyRegistered {
                name: name.to_string(),
                version: version.to_string(),
            });
        }
        let now = k.clock.now();
        let request = ApprovalRequest::open(
            k.ids.new_id(),
            principal,
            NewApprovalRequest {
                subject: RequestedSubject::Model {
                    name: name.to_string(),
                    version: version.to_string(),
                },
                justification: input.justification,
                required_approvals: input.required_approvals.unwrap_or(1),
                expires_in,
            },
            now,
        )?;
        let mut mutations = Vec::with_capacity(3);
        let mut sealed_metadata = Map::new();
        if let (Some(env), false) = (&self.envelope, sensitive.is_empty()) {
            let mut keys = k.store.data_keys(principal.tenant()).await?;
            for (key, value) in sensitive.expose() {
                let ctx = model_metadata_context(
                    principal.tenant(),
                    name.as_str(),
                    version.as_str(),
                    key,
                )?;
                let text = zeroize::Zeroizing::new(to_canonical_json(value).map_err(|e| {
                    InputError::new("sensitive_metadata", format!("is not canonical JSON: {e}"))
                })?);
                let (ciphertext, fresh) = env.seal(&keys, &ctx, &text, now)?;
                if let Some(dek) = fresh {
                    // The tenant's first data key: stored with the values it seals, in this
                    // transaction, and used for the remaining values.
                    keys.push(dek.clone());
                    mutations.push(Mutation::InsertDataKey(dek));
                }
                sealed_metadata.insert(key.clone(), Value::from(ciphertext));
            }
        }
        let model = ModelVersion {
            tenant_id: principal.tenant().clone(),
            model_name: name,
            version,
            checksum,
            artifact_uri,
            metadata,
            sealed_metadata,
            sensitive_metadata: SensitiveMetadata::new(),
            erased_metadata: Vec::new(),
            registered_by: principal.actor().clone(),
            created_at: now,
            status: ModelStatus::Pending,
            approval_request_id: request.id(),
            approved_by: Vec::new(),
            approved_at: None,
            rejected_by: None,
            row_version: 1,
        };
        let mut meta = Map::new();
        meta.insert("checksum".into(), model.checksum.to_hex().into());
        meta.insert("artifact_uri".into(), model.artifact_uri.clone().into());
        meta.insert(
            "approval_request_id".into(),
            request.id().to_string().into(),
        );
        if !sensitive.is_empty() {
            meta.insert(
                "sensitive_metadata_keys".into(),
                sensitive
                    .expose()
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .into(),
            );
        }
        let audit = vec![
            k.event(
                principal,
                correlation,
                Action::ModelRegister,
                resource,
                None,
                Some(meta),
            )?,
            self.workflow
                .request_event(principal, correlation, &request)?,
        ];
        let receipts = k
            .store
            .commit(ChangeSet {
                tenant: principal.tenant().clone(),
                mutations: {
                    mutations.push(Mutation::InsertModel(model.clone()));
                    mutations.push(Mutation::InsertApproval(request.clone()));
                    mutations
                },
                audit,
            })
            .await
            .map_err(|e| {
                e.map_conflict(
                    || ModelRegistryError::AlreadyRegistered {
                        name: model.model_name.to_string(),
                        version: model.version.to_string(),
                    },
                    ModelRegistryError::Store,
                )
            })?;
        // The registrant gets its own values back, opened; the store holds only ciphertext.
        let mut model = model;
        model.sensitive_metadata = sensitive.clone();
        Ok(Registered {
            model,
            request,
            receipts,
        })
    }

    /// Reads one model version (`model.view`). A name or version no model can have is
    /// [`ModelRegistryError::NotFound`], like a missing one.
    ///
    /// # Errors
    /// [`ModelRegistryError::Forbidden`], [`ModelRegistryError::NotFound`].
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::ModelView.as_str())
    )]
    pub async fn get_model(
        &self,
        principal: &Principal,
        name: &str,
        version: &str,
    ) -> Result<ModelVersion, ModelRegistryError> {
        self.ctx()
            .rbac
            .check_permission(principal.role(), Action::ModelView)?;
        let Some((name, version)) = parse_model_key(name, version) else {
            return Err(ModelRegistryError::NotFound);
        };
        let model = self
            .ctx()
            .store
            .model(principal.tenant(), &name, &version)
            .await?
            .ok_or(ModelRegistryError::NotFound)?;
        let mut found = [model];
        self.open_metadata(principal.tenant(), &mut found).await?;
        let [model] = found;
        Ok(model)
    }

    /// Every version of a model, oldest first (`model.view`). A name no model can have has no
    /// versions.
    ///
    /// # Errors
    /// [`ModelRegistryError::Forbidden`], [`ModelRegistryError::Store`].
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::ModelView.as_str())
    )]
    pub async fn list_versions(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<Vec<ModelVersion>, ModelRegistryError> {
        self.ctx()
            .rbac
            .check_permission(principal.role(), Action::ModelView)?;
        let Ok(name) = ModelName::parse(name) else {
            return Ok(Vec::new());
        };
        let mut versions = self
            .ctx()
            .store
            .model_versions(principal.tenant(), &name)
            .await?;
        self.open_metadata(principal.tenant(), &mut versions)
            .await?;
        Ok(versions)
    }

    /// Like [`ModelRegistry::find`], but reads the model with its approval request, in one
    /// read: what deciding the model needs.
    async fn find_with_request(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        action: Action,
        name: &str,
        version: &str,
    ) -> Result<ApprovalWithSubject, ModelRegistryError> {
        let k = self.ctx();
        let resource = Resource::Model { name, version };
        k.authorize(principal, correlation, action, resource)
            .await?;
        // A name or version no model can have names nothing: refused as not found.
        let found = match parse_model_key(name, version) {
            Some((name, version)) => {
                k.store
                    .model_with_approval(principal.tenant(), &name, &version)
                    .await?
            }
            None => None,
        };
        match found {
            Some(read) => Ok(read),
            None => {
                k.deny(principal, correlation, action, resource, "not found")
                    .await;
                Err(ModelRegistryError::NotFound)
            }
        }
    }

    async fn find(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        action: Action,
        name: &str,
        version: &str,
    ) -> Result<ModelVersion, ModelRegistryError> {
        let k = self.ctx();
        let resource = Resource::Model { name, version };
        k.authorize(principal, correlation, action, resource)
            .await?;
        // A name or version no model can have names nothing: refused as not found.
        let found = match parse_model_key(name, version) {
            Some((name, version)) => k.store.model(principal.tenant(), &name, &version).await?,
            None => None,
        };
        match found {
            Some(m) => Ok(m),
            None => {
                k.deny(principal, correlation, action, resource, "not found")
                    .await;
                Err(ModelRegistryError::NotFound)
            }
        }
    }

    /// Approves a model version through its approval request (`model.approve`). When the quorum
    /// is reached the model becomes APPROVED in the same transaction.
    ///
    /// # Errors
    /// [`ModelRegistryError::Forbidden`], [`ModelRegistryError::NotFound`], and the workflow's
    /// errors as [`ModelRegistryError::Approval`] (approving twice is `NotPending`).
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::ModelApprove.as_str(), correlation_id = %correlation)
    )]
    pub async fn approve_model(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        name: &str,
        version: &str,
        reason: &str,
    ) -> Result<ApprovalRequest, ModelRegistryError> {
        let read = self
            .find_with_request(principal, correlation, Action::ModelApprove, name, version)
            .await?;
        let decided = self
            .workflow
            .decide_read(principal, correlation, read, reason, Verdict::Approve)
            .await?;
        Ok(decided.request)
    }

    /// Rejects a model version through its approval request (`model.reject`).
    ///
    /// # Errors
    /// As [`ModelRegistry::approve_model`].
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::ModelReject.as_str(), correlation_id = %correlation)
    )]
    pub async fn reject_model(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        name: &str,
        version: &str,
        reason: &str,
    ) -> Result<ApprovalRequest, ModelRegistryError> {
        let read = self
            .find_with_request(principal, correlation, Action::ModelReject, name, version)
            .await?;
        let decided = self
            .workflow
            .decide_read(principal, correlation, read, reason, Verdict::Reject)
            .await?;
        Ok(decided.request)
    }

    /// The deployment gate (`model.authorize_deployment`): authorises only an APPROVED model whose
    /// registered checksum equals `presented_sha256`. Every outcome is audited, authorised or
    /// denied, with why.
    ///
    /// # Errors
    /// [`ModelRegistryError::Forbidden`], [`ModelRegistryError::NotFound`],
    /// [`ModelRegistryError::Invalid`] for a malformed digest, [`ModelRegistryError::Store`].
    /// A refusal on the merits is `Ok(Deployment::Denied { .. })`.
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::ModelAuthorizeDeployment.as_str(), correlation_id = %correlation)
    )]
    pub async fn authorize_deployment(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        name: &str,
        version: &str,
        presented_sha256: &str,
    ) -> Result<Deployment, ModelRegistryError> {
        let model = self
            .find(
                principal,
                correlation,
                Action::ModelAuthorizeDeployment,
                name,
                version,
            )
            .await?;
        let k = self.ctx();
        let resource = Resource::Model { name, version };
        let presented = match Sha256Digest::parse(presented_sha256) {
            Ok(d) => d,
            Err(e) => {
                k.deny(
                    principal,
                    correlation,
                    Action::ModelAuthorizeDeployment,
                    resource,
                    &e.to_string(),
                )
                .await;
                return Err(e.into());
            }
        };
        let denial = if model.status != ModelStatus::Approved {
            Some(DeploymentDenial::NotApproved(model.status))
        } else if !model.checksum.matches(&presented) {
            Some(DeploymentDenial::ChecksumMismatch)
        } else {
            None
        };
        let mut meta = Map::new();
        meta.insert("presented_sha256".into(), presented.to_hex().into());
        meta.insert("registered_sha256".into(), model.checksum.to_hex().into());
        let event = k.event_named(
            principal,
            correlation,
            Action::ModelAuthorizeDeployment.as_str(),
            if denial.is_some() {
                Outcome::Denied
            } else {
                Outcome::Success
            },
            resource,
            Some(match denial {
                Some(d) => d.to_string(),
                None => "approved model, checksum verified".to_owned(),
            }),
            Some(meta),
        )?;
        let mut receipts = k
            .store
            .commit(ChangeSet::audit_only(
                principal.tenant().clone(),
                vec![event],
            ))
            .await?;
        Ok(match (denial, receipts.pop()) {
            (None, Some(receipt)) => Deployment::Authorized {
                model: Box::new(model),
                receipt: Box::new(receipt),
            },
            (Some(reason), _) => Deployment::Denied { reason },
            (None, None) => {
                return Err(StoreError::Corrupt {
                    message: "commit returned no receipt".to_owned(),
                }
                .into());
            }
        })
    }
}

/// The validated name and version, if both are valid.
fn parse_model_key(name: &str, version: &str) -> Option<(ModelName, ModelVersionTag)> {
    Some((
        ModelName::parse(name).ok()?,
        ModelVersionTag::parse(version).ok()?,
    ))
}

/// The rules for sensitive metadata: no key also in `metadata`, keys at most
/// [`SENSITIVE_METADATA_KEY_MAX_LEN`] characters, values visible text and canonical JSON (they are
/// shown to the tenant's approvers once opened), the object at most [`MODEL_METADATA_MAX_BYTES`].
fn check_sensitive(
    metadata: &Map<String, Value>,
    sensitive: &SensitiveMetadata,
) -> Result<(), ModelRegistryError> {
    let field = "sensitive_metadata";
    let values = sensitive.expose();
    for key in values.keys() {
        if metadata.contains_key(key) {
            return Err(InputError::new(
                field,
                format!("key {key:?} is also in metadata; a key is either sensitive or not"),
            )
            .into());
        }
        if key.chars().count() > SENSITIVE_METADATA_KEY_MAX_LEN {
            return Err(InputError::new(
                field,
                format!("keys must be at most {SENSITIVE_METADATA_KEY_MAX_LEN} characters"),
            )
            .into());
        }
    }
    visible_text::check_object(field, values)?;
    values
        .values()
        .try_for_each(crate::ledger::check_safe_integers)
        .map_err(|e| InputError::new(field, format!("is not canonical JSON: {e}")))?;
    let size = to_canonical_json(&Value::Object(values.clone()))
        .map_err(|e| InputError::new(field, format!("is not canonical JSON: {e}")))?
        .len();
    if size > MODEL_METADATA_MAX_BYTES {
        return Err(InputError::new(
            field,
            format!("is {size} bytes; at most {MODEL_METADATA_MAX_BYTES} are allowed"),
        )
        .into());
    }
    Ok(())
}

fn check_uri(uri: &str) -> Result<String, ModelRegistryError> {
    let invalid = |m: &'static str| ModelRegistryError::from(InputError::new("artifact_uri", m));
    if uri.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if uri.len() > ARTIFACT_URI_MAX_LEN {
        return Err(invalid("is too long"));
    }
    visible_text::check("artifact_uri", uri)?;
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(invalid("must be an absolute URI such as s3://bucket/key"));
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || rest.is_empty() || uri.chars().any(|c| c.is_control() || c == ' ') {
        return Err(invalid("must be an absolute URI such as s3://bucket/key"));
    }
    Ok(uri.to_owned())
}

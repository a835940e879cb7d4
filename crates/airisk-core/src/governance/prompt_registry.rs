//! The prompt registry: every prompt change is a new immutable version, and a label such as
//! `production` moves to a version only with an APPROVED request for exactly that move.
//!
//! * `register_prompt` makes version 1; `update_prompt` makes version n+1 and never touches an
//!   earlier version. An update whose template equals the latest version's is refused
//!   ([`PromptRegistryError::NoChange`]): a version always means a change.
//! * `get_prompt` by version, latest or label; `history`; `diff` between two versions.
//! * `move_label` needs an APPROVED, unused approval request for `(prompt, version, label)`; the
//!   approval is spent by the move (single use), and every move is kept in the label history.

use std::fmt;
use std::ops::Not;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Map;
use uuid::Uuid;

use super::approval_request::{ApprovalError, ApprovalStatus, Subject};
use super::audit_record::{AuditReceipt, AuditValidationError};
use super::model_version::Sha256Digest;
use super::service_context::{Resource, ServiceContext};
use super::visible_text::{self, HiddenCharacter};
use crate::input::InputError;
use crate::ports::{
    ApprovalFilter, ChangeSet, Clock, GovernanceStore, IdGenerator, Mutation, Page, StoreError,
};
use crate::request::CorrelationId;
use crate::security::encryption::EncryptionError;
use crate::security::envelope::{Envelope, Opened, WrappedDataKey, prompt_template_context};
use crate::security::rbac::{Action, AuthorizationError};
use crate::security::tenant_context::{ActorId, Principal, TenantId};

/// Longest prompt name, in bytes.
pub const PROMPT_NAME_MAX_LEN: usize = 128;
/// Longest label, in bytes.
pub const LABEL_MAX_LEN: usize = 64;
/// Largest template, in bytes.
pub const TEMPLATE_MAX_BYTES: usize = 256 * 1024;
/// Longest change reason, in bytes.
pub const CHANGE_REASON_MAX_LEN: usize = 4096;
/// Largest LCS table the diff builds (cells); beyond it the changed middle is shown whole.
const LCS_MAX_CELLS: usize = 4_000_000;

crate::newtype::validated_name!(
    /// A prompt's name, e.g. `kyc-summary` or `letters/decline`.
    PromptName,
    "prompt name",
    PROMPT_NAME_MAX_LEN,
    '.' | '_' | '-' | '/',
    "'.', '_', '-' and '/'"
);
crate::newtype::validated_name!(
    /// The name of a prompt label, e.g. `production`.
    LabelName,
    "label",
    LABEL_MAX_LEN,
    '.' | '_' | '-' | '/',
    "'.', '_', '-' and '/'"
);

/// One immutable version of a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptVersion {
    tenant_id: TenantId,
    name: String,
    version: u32,
    template: String,
    template_sha256: Sha256Digest,
    author: ActorId,
    change_reason: String,
    created_at: DateTime<Utc>,
    /// In a store: `template` holds a `v1.` ciphertext under the tenant's data key.
    #[serde(default, skip_serializing_if = "is_false")]
    sealed: bool,
    /// Read back after the tenant's data keys were shredded: `template` is empty.
    #[serde(default, skip_serializing_if = "is_false")]
    erased: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl PromptVersion {
    /// Its tenant.
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }
    /// The prompt's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The version number, from 1.
    pub fn version(&self) -> u32 {
        self.version
    }
    /// The template text.
    pub fn template(&self) -> &str {
        &self.template
    }
    /// SHA-256 of the template's UTF-8 bytes.
    pub fn template_sha256(&self) -> &Sha256Digest {
        &self.template_sha256
    }
    /// Who wrote it.
    pub fn author(&self) -> &ActorId {
        &self.author
    }
    /// Why it changed.
    pub fn change_reason(&self) -> &str {
        &self.change_reason
    }
    /// When it was created.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    /// Whether `template` is, as stored, a ciphertext (only a store's own rows are).
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }
    /// Whether the template was erased by crypto-shredding (then [`PromptVersion::template`] is
    /// empty): a state, not an error.
    pub fn is_erased(&self) -> bool {
        self.erased
    }

    /// This stored plaintext version with its template replaced by `ciphertext` (the template
    /// sealed under the tenant's data key, see
    /// [`crate::security::envelope::prompt_template_context`]) and marked sealed; every other
    /// field unchanged. For [`crate::ports::Mutation::SealPromptVersion`] (`airisk keys
    /// seal-existing`).
    ///
    /// # Errors
    /// [`InputError`] if this version is sealed already or `ciphertext` is not a `v1.` value.
    pub fn sealed_with(&self, ciphertext: String) -> Result<PromptVersion, InputError> {
        if self.sealed {
            return Err(InputError::new("template", "is sealed already"));
        }
        if crate::security::encryption::key_id_of(&ciphertext).is_err() {
            return Err(InputError::new("template", "is not a sealed value"));
        }
        Ok(PromptVersion {
            template: ciphertext,
            sealed: true,
            ..self.clone()
        })
    }

    /// Whether `other` is this version with only its template and `sealed` flag changed (what
    /// [`crate::ports::Mutation::SealPromptVersion`] may write).
    pub fn differs_only_in_template(&self, other: &PromptVersion) -> bool {
        PromptVersion {
            template: String::new(),
            sealed: false,
            ..self.clone()
        } == PromptVersion {
            template: String::new(),
            sealed: false,
            ..other.clone()
        }
    }
}

/// One move of a label, kept forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMove {
    /// Its id.
    pub id: Uuid,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The prompt.
    pub name: String,
    /// The label.
    pub label: String,
    /// Where it pointed before, if anywhere.
    pub from_version: Option<u32>,
    /// Where it points now.
    pub to_version: u32,
    /// Who moved it.
    pub moved_by: ActorId,
    /// When.
    pub moved_at: DateTime<Utc>,
    /// The approval request that allowed it.
    pub approval_request_id: Uuid,
}

/// How [`PromptRegistry::get_prompt`] picks a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptSelector {
    /// A version number.
    Version(u32),
    /// The newest version.
    Latest,
    /// The version a label points to.
    Label(String),
}

/// A line of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", content = "line", rename_all = "snake_case")]
pub enum DiffLine {
    /// In both versions.
    Same(String),
    /// Only in the older version.
    Removed(String),
    /// Only in the newer version.
    Added(String),
}

impl fmt::Display for DiffLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiffLine::Same(l) => write!(f, " {l}"),
            DiffLine::Removed(l) => write!(f, "-{l}"),
            DiffLine::Added(l) => write!(f, "+{l}"),
        }
    }
}

/// A prompt's versions and label moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptHistory {
    /// Every version, oldest first.
    pub versions: Vec<PromptVersion>,
    /// Every label move, oldest first.
    pub label_moves: Vec<LabelMove>,
    /// Where each label points now.
    pub labels: Vec<(String, u32)>,
}

/// Why a prompt registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptRegistryError {
    /// The caller's role may not do this (recorded as a denial).
    #[error(transparent)]
    Forbidden(#[from] AuthorizationError),
    /// No such prompt, version or label in the caller's tenant.
    #[error("prompt, version or label not found")]
    NotFound,
    /// A prompt of that name exists already.
    #[error("prompt {name} already exists")]
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// The new template equals the latest version's: nothing to version.
    #[error("the template is identical to version {latest}; no new version was made")]
    NoChange {
        /// The latest version.
        latest: u32,
    },
    /// Another update or move got there first; read again and retry.
    #[error("the prompt was changed concurrently; read it again and retry")]
    Conflict,
    /// No APPROVED, unused request allows this label move (recorded as a denial).
    #[error(
        "moving label {label} of {name} to version {version} needs an APPROVED approval request for exactly that move"
    )]
    MoveNotApproved {
        /// Prompt.
        name: String,
        /// Label.
        label: String,
        /// Version.
        version: u32,
    },
    /// An input is invalid; nothing was written.
    #[error("invalid input: {0}")]
    Invalid(#[from] InputError),
    /// The approval request refused to be spent for a label move (no longer pending or
    /// approved, decided by the wrong person, …); nothing was written.
    #[error(transparent)]
    Approval(ApprovalError),
    /// The template or change reason holds a character a reader would not see (see
    /// [`visible_text`]); nothing was written.
    #[error(transparent)]
    HiddenCharacter(#[from] HiddenCharacter),
    /// The audit record could not be built.
    #[error(transparent)]
    Audit(#[from] AuditValidationError),
    /// The store failed; nothing was written.
    #[error(transparent)]
    Store(StoreError),
    /// A template could not be sealed or opened (no keys, a tampered or misplaced ciphertext).
    #[error("a prompt template could not be sealed or opened: {0}")]
    Sealing(#[from] EncryptionError),
}

impl From<StoreError> for PromptRegistryError {
    fn from(e: StoreError) -> Self {
        e.map_conflict(|| PromptRegistryError::Conflict, PromptRegistryError::Store)
    }
}

impl From<ApprovalError> for PromptRegistryError {
    fn from(e: ApprovalError) -> Self {
        match e {
            ApprovalError::Forbidden(f) => PromptRegistryError::Forbidden(f),
            ApprovalError::NotFound => PromptRegistryError::NotFound,
            ApprovalError::Conflict => PromptRegistryError::Conflict,
            ApprovalError::Invalid(i) => PromptRegistryError::Invalid(i),
            ApprovalError::HiddenCharacter(h) => PromptRegistryError::HiddenCharacter(h),
            ApprovalError::Audit(a) => PromptRegistryError::Audit(a),
            ApprovalError::Store(s) => PromptRegistryError::Store(s),
            e @ (ApprovalError::NotHuman
            | ApprovalError::SelfApproval
            | ApprovalError::AlreadyApproved { .. }
            | ApprovalError::NotRequester
            | ApprovalError::NotPending { .. }
            | ApprovalError::Expired { .. }) => PromptRegistryError::Approval(e),
        }
    }
}

/// A prompt command's result.
#[derive(Debug, Clone)]
pub struct PromptChange {
    /// The version written.
    pub version: PromptVersion,
    /// Audit receipts.
    pub receipts: Vec<AuditReceipt>,
}

/// The prompt registry service.
#[derive(Debug, Clone)]
pub struct PromptRegistry {
    ctx: ServiceContext,
    envelope: Option<Arc<Envelope>>,
}

fn check_text(kind: &'static str, s: &str, max: usize) -> Result<(), PromptRegistryError> {
    if s.trim().is_empty() {
        return Err(InputError::new(kind, "must not be empty").into());
    }
    if s.len() > max {
        return Err(InputError::new(
            kind,
            format!("is {} bytes; at most {max} are allowed", s.len()),
        )
        .into());
    }
    if s.contains('\0') {
        return Err(InputError::new(kind, "contains a NUL byte").into());
    }
    // What an approver approves is what they could see: no invisible or reordering characters.
    visible_text::check(kind, s)?;
    Ok(())
}

impl PromptRegistry {
    /// A registry over `store` (a shorthand for [`PromptRegistry::with_context`] with a new
    /// [`ServiceContext`]).
    pub fn new(
        store: Arc<dyn GovernanceStore>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self::with_context(ServiceContext::new(store, clock, ids))
    }

    /// A registry working with the shared `ctx`, storing templates as they are (see
    /// [`PromptRegistry::with_envelope`]).
    pub fn with_context(ctx: ServiceContext) -> Self {
        PromptRegistry {
            ctx,
            envelope: None,
        }
    }

    /// The same registry, sealing every template it writes with the tenant's data key (see
    /// [`crate::security::envelope`]) and opening sealed templates it reads.
    #[must_use]
    pub fn with_envelope(mut self, envelope: Arc<Envelope>) -> Self {
        self.envelope = Some(envelope);
        self
    }

    /// Every version of `name`, with the tenant's data keys when this registry seals (one read
    /// of the store where it can: see
    /// [`GovernanceStore::prompt_versions_and_data_keys`]).
    async fn versions_for_reading(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<(Vec<PromptVersion>, Option<Vec<WrappedDataKey>>), PromptRegistryError> {
        if self.envelope.is_some() {
            let (versions, keys) = self
                .ctx
                .store
                .prompt_versions_and_data_keys(tenant, name)
                .await?;
            Ok((versions, Some(keys)))
        } else {
            Ok((self.ctx.store.prompt_versions(tenant, name).await?, None))
        }
    }

    /// Opens every sealed version of `versions` in place; leaves plaintext rows as they are.
    /// `keys` is the tenant's key list if it was read with the versions; otherwise it is read.
    async fn open_versions(
        &self,
        tenant: &TenantId,
        versions: &mut [PromptVersion],
        keys: Option<Vec<WrappedDataKey>>,
    ) -> Result<(), PromptRegistryError> {
        if !versions.iter().any(|v| v.sealed) {
            return Ok(());
        }
        // Fail closed: a sealed row with no envelope configured is an error, never shown as is.
        let Some(env) = &self.envelope else {
            return Err(PromptRegistryError::Sealing(EncryptionError::KeyMissing));
        };
        let keys = match keys {
            Some(keys) => keys,
            None => self.ctx.store.data_keys(tenant).await?,
        };
        for v in versions.iter_mut().filter(|v| v.sealed) {
            let ctx = prompt_template_context(tenant, &v.name, v.version)?;
            match env.open(&keys, &ctx, &v.template)? {
                Opened::Plain(text) => v.template = text,
                Opened::Erased => {
                    v.template = String::new();
                    v.erased = true;
                }
            }
            v.sealed = false;
        }
        Ok(())
    }

    /// Creates a prompt at version 1 (`prompt.register`).
    ///
    /// # Errors
    /// [`PromptRegistryError::Forbidden`], [`PromptRegistryError::Invalid`],
    /// [`PromptRegistryError::HiddenCharacter`] for a template or change reason holding a
    /// character a reader would not see, [`PromptRegistryError::AlreadyExists`],
    /// [`PromptRegistryError::Store`].
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::PromptRegister.as_str(), correlation_id = %correlation)
    )]
    pub async fn register_prompt(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        name: &str,
        template: &str,
        change_reason: &str,
    ) -> Result<PromptChange, PromptRegistryError> {
        self.ctx
            .authorize(
                principal,
                correlation,
                Action::PromptRegister,
                Resource::Prompt { name },
            )
            .await?;
        let name = &PromptName::parse(name)?;
        // The tenant's key list comes with the existence check: one read of the store.
        let (existing, keys) = self.versions_for_reading(principal.tenant(), name).await?;
        if existing.is_empty().not() {
            return Err(PromptRegistryError::AlreadyExists {
                name: name.to_string(),
            });
        }
        self.write_version(
            principal,
            correlation,
            Action::PromptRegister,
            name,
            1,
            template,
            change_reason,
            keys,
        )
        .await
        .map_err(|e| match e {
            PromptRegistryError::Conflict => PromptRegistryError::AlreadyExists {
                name: name.to_string(),
            },
            other => other,
        })
    }

    /// Adds version n+1 (`prompt.update`). Earlier versions never change.
    ///
    /// # Errors
    /// [`PromptRegistryError::Forbidden`], [`PromptRegistryError::NotFound`],
    /// [`PromptRegistryError::NoChange`], [`PromptRegistryError::Invalid`],
    /// [`PromptRegistryError::HiddenCharacter`],
    /// [`PromptRegistryError::Conflict`] if another update took n+1 first.
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::PromptUpdate.as_str(), correlation_id = %correlation)
    )]
    pub async fn update_prompt(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        name: &str,
        template: &str,
        change_reason: &str,
    ) -> Result<PromptChange, PromptRegistryError> {
        let k = &self.ctx;
        let resource = Resource::Prompt { name };
        k.authorize(principal, correlation, Action::PromptUpdate, resource)
            .await?;
        // A name no prompt can have names nothing: not found, as for a missing prompt.
        let parsed = PromptName::parse(name).ok();
        let (mut versions, keys) = match &parsed {
            Some(name) => self.versions_for_reading(principal.tenant(), name).await?,
            None => (Vec::new(), None),
        };
        let tail = versions.len().saturating_sub(1);
        if let Some(last) = versions.get_mut(tail..) {
            self.open_versions(principal.tenant(), last, keys.clone())
                .await?;
        }
        let (Some(latest), Some(name)) = (versions.last(), &parsed) else {
            k.deny(
                principal,
                correlation,
                Action::PromptUpdate,
                resource,
                "not found",
            )
            .await;
            return Err(PromptRegistryError::NotFound);
        };
        if latest.template == template {
            return Err(PromptRegistryError::NoChange {
                latest: latest.version,
            });
        }
        let next = latest.version.checked_add(1).ok_or_else(|| {
            InputError::new("version", "cannot go past the largest version number")
        })?;
        self.write_version(
            principal,
            correlation,
            Action::PromptUpdate,
            name,
            next,
            template,
            change_reason,
            keys,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)] // internal: one argument per field written, and the keys
    async fn write_version(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        action: Action,
        name: &PromptName,
        version: u32,
        template: &str,
        change_reason: &str,
        keys: Option<Vec<WrappedDataKey>>,
    ) -> Result<PromptChange, PromptRegistryError> {
        let k = &self.ctx;
        check_text("template", template, TEMPLATE_MAX_BYTES)?;
        check_text("change_reason", change_reason, CHANGE_REASON_MAX_LEN)?;
        let pv = PromptVersion {
            tenant_id: principal.tenant().clone(),
            name: name.to_string(),
            version,
            template: template.to_owned(),
            template_sha256: Sha256Digest::of(template.as_bytes()),
            author: principal.actor().clone(),
            change_reason: change_reason.to_owned(),
            created_at: k.clock.now(),
            sealed: false,
            erased: false,
        };
        let mut mutations = Vec::with_capacity(2);
        let mut stored = pv.clone();
        if let Some(env) = &self.envelope {
            // The key list read with the versions this command checked, else read now.
            let keys = match keys {
                Some(keys) => keys,
                None => k.store.data_keys(principal.tenant()).await?,
            };
            let ctx = prompt_template_context(principal.tenant(), name.as_str(), version)?;
            let (sealed, fresh) = env.seal(&keys, &ctx, template, pv.created_at)?;
            if let Some(dek) = fresh {
                mutations.push(Mutation::InsertDataKey(dek));
            }
            stored.template = sealed;
            stored.sealed = true;
        }
        mutations.push(Mutation::InsertPromptVersion(stored));
        let mut meta = Map::new();
        meta.insert("version".into(), version.into());
        meta.insert("template_sha256".into(), pv.template_sha256.to_hex().into());
        let event = k.event(
            principal,
            correlation,
            action,
            Resource::PromptVersion {
                name: name.as_str(),
                version,
            },
            Some(change_reason.to_owned()),
            Some(meta),
        )?;
        let receipts = k
            .store
            .commit(ChangeSet {
                tenant: principal.tenant().clone(),
                mutations,
                audit: vec![event],
            })
            .await?;
        Ok(PromptChange {
            version: pv,
            receipts,
        })
    }

    /// Reads a version by number, latest or label (`prompt.view`).
    ///
    /// # Errors
    /// [`PromptRegistryError::Forbidden`], [`PromptRegistryError::NotFound`].
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::PromptView.as_str())
    )]
    pub async fn get_prompt(
        &self,
        principal: &Principal,
        name: &str,
        selector: &PromptSelector,
    ) -> Result<PromptVersion, PromptRegistryError> {
        let k = &self.ctx;
        k.rbac
            .check_permission(principal.role(), Action::PromptView)?;
        // A name no prompt can have names nothing.
        let name = &PromptName::parse(name).map_err(|_| PromptRegistryError::NotFound)?;
        let (versions, keys) = self.versions_for_reading(principal.tenant(), name).await?;
        let wanted = match selector {
            PromptSelector::Version(v) => Some(*v),
            PromptSelector::Latest => versions.last().map(|v| v.version),
            PromptSelector::Label(label) => k
                .store
                .prompt_labels(principal.tenant(), name)
                .await?
                .into_iter()
                .find(|(l, _)| l == label)
                .map(|(_, v)| v),
        };
        let mut found: Vec<PromptVersion> = wanted
            .and_then(|w| versions.into_iter().find(|v| v.version == w))
            .into_iter()
            .collect();
        self.open_versions(principal.tenant(), &mut found, keys)
            .await?;
        found.pop().ok_or(PromptRegistryError::NotFound)
    }

    /// Every version and label move of a prompt (`prompt.view`).
    ///
    /// # Errors
    /// [`PromptRegistryError::Forbidden`], [`PromptRegistryError::NotFound`].
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::PromptView.as_str())
    )]
    pub async fn history(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<PromptHistory, PromptRegistryError> {
        let k = &self.ctx;
        k.rbac
            .check_permission(principal.role(), Action::PromptView)?;
        let name = &PromptName::parse(name).map_err(|_| PromptRegistryError::NotFound)?;
        let (mut versions, keys) = self.versions_for_reading(principal.tenant(), name).await?;
        if versions.is_empty() {
            return Err(PromptRegistryError::NotFound);
        }
        self.open_versions(principal.tenant(), &mut versions, keys)
            .await?;
        Ok(PromptHistory {
            versions,
            label_moves: k.store.label_moves(principal.tenant(), name).await?,
            labels: k.store.prompt_labels(principal.tenant(), name).await?,
        })
    }

    /// A line diff from version `from` to version `to` (`prompt.view`).
    ///
    /// # Errors
    /// [`PromptRegistryError::Forbidden`], [`PromptRegistryError::NotFound`].
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::PromptView.as_str())
    )]
    pub async fn diff(
        &self,
        principal: &Principal,
        name: &str,
        from: u32,
        to: u32,
    ) -> Result<Vec<DiffLine>, PromptRegistryError> {
        let a = self
            .get_prompt(principal, name, &PromptSelector::Version(from))
            .await?;
        let b = self
            .get_prompt(principal, name, &PromptSelector::Version(to))
            .await?;
        Ok(diff_lines(&a.template, &b.template))
    }

    /// Moves `label` to `version` (`prompt.move_label`): needs an APPROVED, unused approval request
    /// for exactly this move; spends it; records the move.
    ///
    /// # Errors
    /// [`PromptRegistryError::Forbidden`], [`PromptRegistryError::NotFound`],
    /// [`PromptRegistryError::MoveNotApproved`] (recorded as a denial),
    /// [`PromptRegistryError::Conflict`], [`PromptRegistryError::Invalid`].
    #[tracing::instrument(
        skip_all,
        fields(tenant_id = %principal.tenant(), actor = %principal.actor(), action = Action::PromptMoveLabel.as_str(), correlation_id = %correlation)
    )]
    pub async fn move_label(
        &self,
        principal: &Principal,
        correlation: &CorrelationId,
        name: &str,
        label: &str,
        version: u32,
    ) -> Result<LabelMove, PromptRegistryError> {
        let k = &self.ctx;
        let resource = Resource::PromptLabel {
            name,
            version,
            label,
        };
        k.authorize(principal, correlation, Action::PromptMoveLabel, resource)
            .await?;
        let label = &LabelName::parse(label)?;
        // A name no prompt can have names nothing: not found, as for a missing prompt.
        let parsed = PromptName::parse(name).ok();
        let versions = match &parsed {
            Some(name) => k.store.prompt_versions(principal.tenant(), name).await?,
            None => Vec::new(),
        };
        let Some(name) = parsed.filter(|_| versions.iter().any(|v| v.version == version)) else {
            k.deny(
                principal,
                correlation,
                Action::PromptMoveLabel,
                resource,
                "not found",
            )
            .await;
            return Err(PromptRegistryError::NotFound);
        };
        let subject = Subject::PromptLabel {
            name: name.clone(),
            version,
            label: label.clone(),
        };
        let now = k.clock.now();
        let approvals = k
            .store
            .approvals(
                principal.tenant(),
                &ApprovalFilter {
                    status: Some(ApprovalStatus::Approved),
                    subject: Some(subject.clone()),
                    ..ApprovalFilter::default()
                },
                Page::first(100),
            )
            .await?;
        let Some(approval) = approvals.into_iter().find(|a| a.used_at().is_none()) else {
            let err = PromptRegistryError::MoveNotApproved {
                name: name.to_string(),
                label: label.to_string(),
                version,
            };
            k.deny(
                principal,
                correlation,
                Action::PromptMoveLabel,
                resource,
                &err.to_string(),
            )
            .await;
            return Err(err);
        };
        let from_version = k
            .store
            .prompt_labels(principal.tenant(), &name)
            .await?
            .into_iter()
            .find(|(l, _)| l == label.as_str())
            .map(|(_, v)| v);
        let spent = approval.mark_used(now)?;
        let mv = LabelMove {
            id: k.ids.new_id(),
            tenant_id: principal.tenant().clone(),
            name: name.to_string(),
            label: label.to_string(),
            from_version,
            to_version: version,
            moved_by: principal.actor().clone(),
            moved_at: now,
            approval_request_id: approval.id(),
        };
        let mut meta = Map::new();
        meta.insert(
            "approval_request_id".into(),
            approval.id().to_string().into(),
        );
        meta.insert(
            "from_version".into(),
            from_version.map_or(serde_json::Value::Null, Into::into),
        );
        meta.insert("to_version".into(), version.into());
        let event = k.event(
            principal,
            correlation,
            Action::PromptMoveLabel,
            resource,
            None,
            Some(meta),
        )?;
        k.store
            .commit(ChangeSet {
                tenant: principal.tenant().clone(),
                mutations: vec![
                    Mutation::UpdateApproval {
                        expected_version: approval.version(),
                        request: spent,
                    },
                    Mutation::MoveLabel {
                        expected_from: from_version,
                        label_move: mv.clone(),
                    },
                ],
                audit: vec![event],
            })
            .await?;
        Ok(mv)
    }
}

/// A line diff (longest common subsequence), old to new.
pub fn diff_lines(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Strip the common prefix and suffix first: prompt edits are usually local.
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(a.len().min(b.len()) - prefix)
        .take_while(|(x, y)| x == y)
        .count();
    let (a_mid, b_mid) = (
        a.get(prefix..a.len() - suffix).unwrap_or_default(),
        b.get(prefix..b.len() - suffix).unwrap_or_default(),
    );
    let mut out: Vec<DiffLine> = a
        .get(..prefix)
        .unwrap_or_default()
        .iter()
        .map(|l| DiffLine::Same((*l).to_owned()))
        .collect();
    // LCS table over the middle, (n+1) x (m+1), filled from the end. Past a few million cells
    // (two very different large templates) the middle is shown as removed then added instead.
    let (n, m) = (a_mid.len(), b_mid.len());
    if n.saturating_mul(m) > LCS_MAX_CELLS {
        out.extend(a_mid.iter().map(|l| DiffLine::Removed((*l).to_owned())));
        out.extend(b_mid.iter().map(|l| DiffLine::Added((*l).to_owned())));
        out.extend(
            a.get(a.len() - suffix..)
                .unwrap_or_default()
                .iter()
                .map(|l| DiffLine::Same((*l).to_owned())),
        );
        return out;
    }
    let width = m + 1;
    let mut lcs = vec![0u32; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let value = if a_mid.get(i) == b_mid.get(j) {
                lcs.get((i + 1) * width + j + 1).copied().unwrap_or(0) + 1
            } else {
                let down = lcs.get((i + 1) * width + j).copied().unwrap_or(0);
                let right = lcs.get(i * width + j + 1).copied().unwrap_or(0);
                down.max(right)
            };
            if let Some(cell) = lcs.get_mut(i * width + j) {
                *cell = value;
            }
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        let (x, y) = (a_mid.get(i), b_mid.get(j));
        if let (Some(x), Some(y)) = (x, y)
            && x == y
        {
            out.push(DiffLine::Same((*x).to_owned()));
            i += 1;
            j += 1;
            continue;
        }
        let down = lcs.get((i + 1) * width + j).copied().unwrap_or(0);
        let right = lcs.get(i * width + j + 1).copied().unwrap_or(0);
        match (x, y) {
            (Some(x), _) if j >= m || down >= right => {
                out.push(DiffLine::Removed((*x).to_owned()));
                i += 1;
            }
            (_, Some(y)) => {
                out.push(DiffLine::Added((*y).to_owned()));
                j += 1;
            }
            (Some(x), None) => {
                out.push(DiffLine::Removed((*x).to_owned()));
                i += 1;
            }
            (None, None) => break,
        }
    }
    out.extend(
        a.get(a.len() - suffix..)
            .unwrap_or_default()
            .iter()
            .map(|l| DiffLine::Same((*l).to_owned())),
    );
    out
}

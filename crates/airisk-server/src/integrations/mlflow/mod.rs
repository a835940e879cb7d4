//! The MLflow integration: airisk's four-eyes gate in front of an existing MLflow (OSS 3.x) Model
//! Registry. An adapter like the HTTP API: every change goes through the core services
//! ([`ModelRegistry`](airisk_core::governance::model_registry::ModelRegistry), the approval
//! workflow, the audit logger) as a service principal of the instance's tenant, so RBAC, the
//! tenant wall, four eyes and the ledger apply unchanged. See docs/MLFLOW.md.
//!
//! * `webhook`: `POST /v1/integrations/mlflow/webhook?instance=<id>` receives MLflow's signed
//!   deliveries. `model_version.created` registers the version PENDING with an approval request
//!   (artifact digest computed by airisk, [`manifest`]); an alias event on a protected alias that
//!   does not match airisk's approvals is recorded as a denied bypass and undone.
//! * [`MlflowIntegration::run`]: the sync loop. It reads decided approval requests of MLflow
//!   versions and brings MLflow in line (protected aliases, approval tags), recording each call;
//!   what MLflow could not take yet stays "pending sync" (visible at
//!   `GET /v1/integrations/mlflow/status`) and is retried with back-off. Every so often it also
//!   reconciles every protected alias in MLflow against airisk's approvals (drift repair).

pub mod client;
pub mod manifest;
pub mod signature;
pub(crate) mod webhook;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airisk_core::governance::approval_workflow::{ApprovalRequest, ApprovalStatus, Subject};
use airisk_core::governance::audit_record::{AuditEvent, Outcome};
use airisk_core::governance::model_registry::{ModelStatus, ModelVersion};
use airisk_core::governance::prompt_registry::{PromptRegistryError, PromptSelector};
use airisk_core::ports::{ApprovalFilter, Page};
use airisk_core::request::CorrelationId;
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::{ActorId, Principal, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::state::AppState;
use client::{MlflowClient, MlflowError};

/// Protected aliases when the configuration names none.
pub const DEFAULT_PROTECTED_ALIAS: &str = "production";
/// MLflow tag with the approval request id.
pub const TAG_APPROVAL_ID: &str = "airisk.approval_id";
/// MLflow tag with the approval status (`approved`, `rejected`).
pub const TAG_APPROVAL_STATUS: &str = "airisk.approval_status";

/// One `[[instances]]` entry of the integration's TOML file. Secrets are not in the file: it
/// names the environment variables that hold them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    /// The instance's id (letters, digits, `-`, `_`, `.`); in the webhook URL's `instance`.
    pub id: String,
    /// MLflow's base URL, e.g. `http://mlflow:5000`.
    pub url: String,
    /// The airisk tenant the instance belongs to.
    pub tenant: String,
    /// Aliases only airisk moves [default: `["production"]`].
    #[serde(default = "default_aliases")]
    pub protected_aliases: Vec<String>,
    /// Environment variable with the webhook's HMAC secret.
    pub webhook_secret_env: String,
    /// Environment variable with a bearer token for MLflow's API, if MLflow needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// PEM bundle of the CA(s) that sign MLflow's certificate (a private CA), for an `https://`
    /// URL. Without it the Mozilla roots are trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// MLflow user → airisk identity, for MLflow users whose airisk identity is not their own
    /// name in canonical form (see [`Instance::maker`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub authors: BTreeMap<String, String>,
    /// Id of the webhook `connect` created in MLflow (for `disconnect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    /// Where the protected aliases pointed when the instance was connected: kept there until a
    /// version of the model is approved in airisk (adoption without removing live aliases).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baseline: Vec<BaselineAlias>,
}

/// A protected alias as it was when the instance was connected.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BaselineAlias {
    /// Registered model name.
    pub model: String,
    /// The alias.
    pub alias: String,
    /// The version it pointed at.
    pub version: String,
}

fn default_aliases() -> Vec<String> {
    vec![DEFAULT_PROTECTED_ALIAS.to_owned()]
}

/// The integration's TOML file: `[[instances]]` tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Connected instances.
    #[serde(default)]
    pub instances: Vec<InstanceConfig>,
}

impl ConfigFile {
    /// Reads `path` (a missing file is an empty configuration).
    ///
    /// # Errors
    /// An unreadable or invalid file, in words.
    pub fn read(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the file (mode 0600 on Unix: it names where secrets are, and the webhook id).
    ///
    /// # Errors
    /// An I/O error, in words.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = toml::to_string(self).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600));
        }
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Checks an instance id.
///
/// # Errors
/// The rule broken, in words.
pub fn check_instance_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "instance id {id:?} must be 1 to 64 ASCII letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(())
}

/// A connected MLflow instance.
pub struct Instance {
    id: String,
    tenant: TenantId,
    principal: Principal,
    secret: Zeroizing<Vec<u8>>,
    protected_aliases: Vec<String>,
    baseline: Vec<BaselineAlias>,
    authors: BTreeMap<String, ActorId>,
    client: MlflowClient,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("url", &self.client.base())
            .field("protected_aliases", &self.protected_aliases)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl Instance {
    /// An instance from validated parts. Its principal is the service (non-human) admin
    /// `mlflow:<id>` of `tenant`: it may register versions, never approve them.
    ///
    /// # Errors
    /// An invalid id, tenant, URL, alias or an empty secret, in words.
    pub fn new(
        id: &str,
        url: &str,
        tenant: &str,
        secret: Zeroizing<Vec<u8>>,
        token: Option<Zeroizing<String>>,
        protected_aliases: Vec<String>,
        http: crate::https::HttpsClient,
    ) -> Result<Self, String> {
        check_instance_id(id)?;
        let tenant = TenantId::parse(tenant).map_err(|e| e.to_string())?;
        let actor = ActorId::parse(&format!("mlflow:{id}")).map_err(|e| e.to_string())?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "MLflow URL {url:?} must start with http:// or https://"
            ));
        }
        if secret.len() < 16 {
            return Err("the webhook secret must be at least 16 bytes".to_owned());
        }
        let protected_aliases = if protected_aliases.is_empty() {
            default_aliases()
        } else {
            protected_aliases
        };
        for alias in &protected_aliases {
            if alias.is_empty() || alias.len() > 255 || alias.chars().any(char::is_whitespace) {
                return Err(format!("protected alias {alias:?} is not a valid alias"));
            }
        }
        Ok(Instance {
            id: id.to_owned(),
            principal: Principal::service(actor, tenant.clone(), Role::Admin),
            tenant,
            secret,
            protected_aliases,
            baseline: Vec::new(),
            authors: BTreeMap::new(),
            client: MlflowClient::new(http, url, token),
        })
    }

    /// The same instance with an author mapping: MLflow user → airisk identity (folded to its
    /// canonical form, [`ActorId::canonical`]).
    ///
    /// # Errors
    /// An airisk identity that is not a valid actor id, in words.
    pub fn with_authors(mut self, authors: &BTreeMap<String, String>) -> Result<Self, String> {
        for (user, identity) in authors {
            let actor = ActorId::canonical(identity).map_err(|e| {
                format!(
                    "instance {}: author {user:?} maps to {identity:?}: {e}",
                    self.id
                )
            })?;
            self.authors.insert(user.clone(), actor);
        }
        Ok(self)
    }

    /// The airisk identity of an MLflow user: the configured mapping of exactly that user name,
    /// else the user name itself in canonical form ([`ActorId::canonical`], the rule every
    /// identity entering airisk follows), so `Alice.Maker` in MLflow is `alice.maker` in airisk.
    ///
    /// # Errors
    /// A user name that has no canonical airisk form and no mapping, in words.
    pub fn author_identity(&self, mlflow_user: &str) -> Result<ActorId, String> {
        if let Some(actor) = self.authors.get(mlflow_user) {
            return Ok(actor.clone());
        }
        ActorId::canonical(mlflow_user).map_err(|e| {
            format!(
                "MLflow user {:?} has no airisk identity ({e}); map it in the instance's `authors`",
                mlflow_user.chars().take(64).collect::<String>()
            )
        })
    }

    /// Who opens the approval request of a version MLflow user `author` created: that person
    /// (their airisk identity, acting through this instance), so the four-eyes rule keeps them
    /// from approving it; the instance's own service principal when MLflow names nobody.
    ///
    /// # Errors
    /// As [`Instance::author_identity`]: an author airisk cannot name is refused rather than
    /// left free to approve their own version.
    pub fn maker(&self, author: Option<&str>) -> Result<Principal, String> {
        match author.map(str::trim).filter(|a| !a.is_empty()) {
            None => Ok(self.principal.clone()),
            Some(user) => Ok(Principal::service(
                self.author_identity(user)?,
                self.tenant.clone(),
                Role::Admin,
            )),
        }
    }

    /// The airisk prompt that mirrors MLflow prompt `name` of this instance:
    /// `mlflow/<instance>/<name>` (its own namespace, apart from prompts made in airisk).
    pub fn prompt_name(&self, name: &str) -> String {
        format!("mlflow/{}/{name}", self.id)
    }

    /// The MLflow prompt name of an airisk prompt of this instance, if it is one.
    pub fn mlflow_prompt<'a>(&self, airisk_name: &'a str) -> Option<&'a str> {
        airisk_name
            .strip_prefix("mlflow/")?
            .strip_prefix(self.id.as_str())?
            .strip_prefix('/')
    }

    /// The same instance with a baseline: where its protected aliases pointed when it was
    /// connected. A baseline alias stays where it is until a version of its model is approved.
    pub fn with_baseline(mut self, baseline: Vec<BaselineAlias>) -> Self {
        self.baseline = baseline;
        self
    }

    fn baseline_of(&self, model: &str, alias: &str) -> Option<String> {
        self.baseline
            .iter()
            .find(|b| b.model == model && b.alias == alias)
            .map(|b| b.version.clone())
    }

    /// Where `alias` of `model` must point given its latest approved version, if any.
    fn target(&self, model: &str, alias: &str, approved: Option<&String>) -> Option<String> {
        approved.cloned().or_else(|| self.baseline_of(model, alias))
    }

    /// Builds an instance from its file entry, reading its secrets from the environment and its
    /// CA bundle (`ca_file`) from disk.
    ///
    /// # Errors
    /// A missing secret variable, an unreadable CA bundle or an invalid entry, in words.
    pub fn from_config(c: &InstanceConfig) -> Result<Self, String> {
        let http = crate::https::HttpsClient::new(c.ca_file.as_deref())
            .map_err(|e| format!("instance {}: {e}", c.id))?;
        let secret = std::env::var(&c.webhook_secret_env).map_err(|_| {
            format!(
                "instance {}: the webhook secret variable {} is not set",
                c.id, c.webhook_secret_env
            )
        })?;
        let token = match &c.token_env {
            Some(var) => Some(Zeroizing::new(std::env::var(var).map_err(|_| {
                format!("instance {}: the token variable {var} is not set", c.id)
            })?)),
            None => None,
        };
        Instance::new(
            &c.id,
            &c.url,
            &c.tenant,
            Zeroizing::new(secret.into_bytes()),
            token,
            c.protected_aliases.clone(),
            http,
        )
        .map(|i| i.with_baseline(c.baseline.clone()))?
        .with_authors(&c.authors)
    }

    /// The instance's id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Its tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    /// The service principal it acts as.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
    /// Its protected aliases.
    pub fn protected_aliases(&self) -> &[String] {
        &self.protected_aliases
    }
    /// Its MLflow client.
    pub fn client(&self) -> &MlflowClient {
        &self.client
    }
    /// The instance's replay memory, shared through the governance database by every process.
    pub(crate) fn replay_memory(&self, state: &AppState) -> signature::ReplayMemory {
        signature::ReplayMemory::new(
            state.stores().governance.clone(),
            self.tenant.clone(),
            self.principal.actor().as_str().to_owned(),
        )
    }

    fn protects(&self, alias: &str) -> bool {
        self.protected_aliases.iter().any(|a| a == alias)
    }
}

/// Timers of the sync loop.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    /// How often decided approvals are looked for.
    pub tick: Duration,
    /// How often every protected alias is reconciled against airisk's approvals.
    pub reconcile_every: Duration,
    /// Longest wait between retries of a failing sync.
    pub max_backoff: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            tick: Duration::from_secs(2),
            reconcile_every: Duration::from_secs(300),
            max_backoff: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Pending {
    instance: String,
    approval_request_id: Uuid,
    model: String,
    version: String,
    decision: String,
    attempts: u32,
    last_error: String,
    #[serde(skip)]
    next_try: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Decided requests whose result MLflow holds (this process confirmed it).
    done: HashSet<Uuid>,
    /// Decided requests MLflow does not hold yet.
    pending: BTreeMap<Uuid, Pending>,
    /// `(instance, model, alias) → version` airisk itself last set, to tell its own alias
    /// events from someone else's.
    own_sets: HashMap<(String, String, String), String>,
    last_reconcile: Option<DateTime<Utc>>,
}

/// What one sync or reconcile pass did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PassReport {
    /// Decided requests brought into MLflow.
    pub synced: u32,
    /// Decided requests still pending sync.
    pub pending: u32,
    /// Protected aliases found drifted and repaired.
    pub repaired: u32,
    /// MLflow versions airisk had missed (no webhook) and registered now.
    pub registered: u32,
    /// Errors, in words.
    pub errors: Vec<String>,
}

/// The connected instances and the integration's state.
#[derive(Debug)]
pub struct MlflowIntegration {
    instances: BTreeMap<String, Arc<Instance>>,
    /// Registrations (artifact downloads and hashing) running at once.
    hashing: Arc<tokio::sync::Semaphore>,
    sync: Mutex<SyncState>,
    settings: SyncSettings,
}

impl MlflowIntegration {
    /// The integration over `instances`.
    ///
    /// # Errors
    /// Two instances with the same id.
    pub fn new(instances: Vec<Instance>, settings: SyncSettings) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for i in instances {
            let id = i.id.clone();
            if map.insert(id.clone(), Arc::new(i)).is_some() {
                return Err(format!("instance {id} is configured twice"));
            }
        }
        Ok(MlflowIntegration {
            instances: map,
            hashing: Arc::new(tokio::sync::Semaphore::new(2)),
            sync: Mutex::new(SyncState::default()),
            settings,
        })
    }

    /// Loads the TOML file at `path`, secrets from the environment.
    ///
    /// # Errors
    /// An unreadable file, an invalid entry or a missing secret, in words.
    pub fn load(path: &Path, settings: SyncSettings) -> Result<Self, String> {
        let file = ConfigFile::read(path)?;
        let instances = file
            .instances
            .iter()
            .map(Instance::from_config)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(instances, settings)
    }

    /// The instance with `id`.
    pub fn instance(&self, id: &str) -> Option<&Arc<Instance>> {
        self.instances.get(id)
    }

    /// Every instance.
    pub fn instances(&self) -> impl Iterator<Item = &Arc<Instance>> {
        self.instances.values()
    }

    /// Runs the sync loop until the task is dropped or aborted.
    pub async fn run(self: Arc<Self>, state: AppState) {
        let correlation = CorrelationId::generate();
        for inst in self.instances.values().filter(|i| !i.baseline.is_empty()) {
            let mut meta = Map::new();
            meta.insert("instance".into(), inst.id.clone().into());
            meta.insert("baseline".into(), json!(inst.baseline));
            self.record(
                &state,
                inst,
                &correlation,
                "mlflow.baseline",
                Outcome::Success,
                "baseline",
                Some("protected aliases kept where they were at connection until a version is approved".to_owned()),
                meta,
            )
            .await;
        }
        let mut interval = tokio::time::interval(self.settings.tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let due = {
                let now = state.clock().now();
                match self.sync.lock() {
                    Ok(s) => s.last_reconcile.is_none_or(|t| {
                        (now - t).to_std().unwrap_or_default() >= self.settings.reconcile_every
                    }),
                    Err(_) => false,
                }
            };
            let report = self.sync_once(&state).await;
            if !report.errors.is_empty() {
                tracing::warn!(errors = ?report.errors, pending = report.pending, "mlflow sync: some decisions are pending sync");
            }
            if due {
                for inst in self.instances.values() {
                    let r = self.reconcile(&state, inst).await;
                    if !r.errors.is_empty() {
                        tracing::warn!(instance = %inst.id, errors = ?r.errors, "mlflow reconcile failed");
                    }
                }
            }
        }
    }

    /// One pass of the sync: every decided (approved or rejected) request of an MLflow version
    /// not yet confirmed in MLflow is applied there.
    pub async fn sync_once(&self, state: &AppState) -> PassReport {
        let mut report = PassReport::default();
        let correlation = CorrelationId::generate();
        for inst in self.instances.values() {
            for status in [ApprovalStatus::Approved, ApprovalStatus::Rejected] {
                let mut offset = 0u64;
                loop {
                    let filter = ApprovalFilter {
                        status: Some(status),
                        ..ApprovalFilter::default()
                    };
                    let page = match state
                        .approvals()
                        .list(&inst.principal, &filter, Page { offset, limit: 500 })
                        .await
                    {
                        Ok(p) => p,
                        Err(e) => {
                            report
                                .errors
                                .push(format!("{}: list approvals: {e}", inst.id));
                            break;
                        }
                    };
                    let n = page.len();
                    for request in page {
                        if !self.due(request.id(), state.clock().now()) {
                            continue;
                        }
                        let (name, version) = match request.subject() {
                            Subject::Model { name, version } => (name, version),
                            Subject::PromptLabel { .. } => {
                                self.sync_prompt_request(
                                    state,
                                    inst,
                                    &correlation,
                                    &request,
                                    status,
                                    &mut report,
                                )
                                .await;
                                continue;
                            }
                        };
                        let model = match state
                            .models()
                            .get_model(&inst.principal, name.as_str(), version.as_str())
                            .await
                        {
                            Ok(m) => m,
                            Err(_) => continue,
                        };
                        if origin(&model) != Some(inst.id.as_str()) {
                            self.mark_done(request.id());
                            continue;
                        }
                        let applied = self
                            .apply_decision(state, inst, &correlation, &model, request.id(), status)
                            .await;
                        let synced = Synced {
                            request: request.id(),
                            status,
                            name: model.model_name().as_str(),
                            version: model.version().as_str(),
                            resource: &format!("{name}@{version}"),
                        };
                        self.settle(state, inst, &correlation, synced, applied, &mut report)
                            .await;
                    }
                    if n < 500 {
                        break;
                    }
                    offset += 500;
                }
            }
        }
        report.pending = self
            .sync
            .lock()
            .map(|s| s.pending.len() as u32)
            .unwrap_or(0);
        report
    }

    /// Brings one decided prompt-label request of this instance into MLflow; records and
    /// schedules a retry when MLflow cannot take it.
    async fn sync_prompt_request(
        &self,
        state: &AppState,
        inst: &Instance,
        correlation: &CorrelationId,
        request: &ApprovalRequest,
        status: ApprovalStatus,
        report: &mut PassReport,
    ) {
        let Subject::PromptLabel {
            name,
            version,
            label,
        } = request.subject()
        else {
            return;
        };
        let (name, label) = (name.as_str(), label.as_str());
        let Some(mlflow_name) = inst.mlflow_prompt(name) else {
            self.mark_done(request.id());
            return;
        };
        let applied = self
            .apply_prompt_decision(state, inst, correlation, request, status)
            .await;
        let synced = Synced {
            request: request.id(),
            status,
            name: mlflow_name,
            version: &version.to_string(),
            resource: &format!("{mlflow_name}@{version}#{label}"),
        };
        self.settle(state, inst, correlation, synced, applied, report)
            .await;
    }

    /// The end of one decision's sync, model or prompt alike: done when MLflow took it;
    /// otherwise scheduled again with back-off (visible as pending) and the failure recorded
    /// (`mlflow.sync`, denied).
    async fn settle(
        &self,
        state: &AppState,
        inst: &Instance,
        correlation: &CorrelationId,
        synced: Synced<'_>,
        applied: Result<(), MlflowError>,
        report: &mut PassReport,
    ) {
        let e = match applied {
            Ok(()) => {
                self.mark_done(synced.request);
                report.synced += 1;
                return;
            }
            Err(e) => e,
        };
        let attempt = self.mark_pending(state, inst, &synced, &e);
        let mut meta = Map::new();
        meta.insert("instance".into(), inst.id.clone().into());
        meta.insert(
            "approval_request_id".into(),
            synced.request.to_string().into(),
        );
        meta.insert("decision".into(), synced.status.to_string().into());
        meta.insert("attempt".into(), attempt.into());
        self.record(
            state,
            inst,
            correlation,
            "mlflow.sync",
            Outcome::Denied,
            synced.resource,
            Some(format!("pending sync, will retry: {e}")),
            meta,
        )
        .await;
        report.errors.push(format!(
            "{}: {}@{}: {e}",
            inst.id, synced.name, synced.version
        ));
    }

    /// A decided prompt-label request in MLflow: approval tags on the prompt version; when
    /// approved, the label moved in airisk's prompt registry (spending the approval) and the
    /// MLflow alias pointed where airisk's label points. Reads first, writes what differs.
    async fn apply_prompt_decision(
        &self,
        state: &AppState,
        inst: &Instance,
        correlation: &CorrelationId,
        request: &ApprovalRequest,
        status: ApprovalStatus,
    ) -> Result<(), MlflowError> {
        let Subject::PromptLabel {
            name,
            version,
            label,
        } = request.subject()
        else {
            return Ok(());
        };
        let (name, label) = (name.as_str(), label.as_str());
        let Some(mlflow_name) = inst.mlflow_prompt(name) else {
            return Ok(());
        };
        // A version may have one request per protected alias: the tags name the latest decided.
        self.tag_decision(
            state,
            inst,
            correlation,
            (mlflow_name, &version.to_string()),
            request.id(),
            status,
        )
        .await?;
        if status != ApprovalStatus::Approved || !inst.protects(label) {
            return Ok(());
        }
        if request.used_at().is_none() {
            match state
                .prompts()
                .move_label(&inst.principal, correlation, name, label, *version)
                .await
            {
                // Spent meanwhile (another process moved it): the label is where it should be.
                Ok(_) | Err(PromptRegistryError::MoveNotApproved { .. }) => {}
                Err(e) => return Err(MlflowError::Airisk(e.to_string())),
            }
        }
        let desired = self.prompt_target(state, inst, mlflow_name, label).await?;
        let current = inst.client.alias_target(mlflow_name, label).await?;
        if current != desired {
            self.move_alias(
                state,
                inst,
                correlation,
                mlflow_name,
                label,
                desired.as_deref(),
            )
            .await?;
        }
        Ok(())
    }

    /// Where protected alias `alias` of MLflow prompt `mlflow_name` must point: at the version
    /// airisk's label of the same name points to (moved only with an approval), else at the
    /// baseline, else nowhere.
    async fn prompt_target(
        &self,
        state: &AppState,
        inst: &Instance,
        mlflow_name: &str,
        alias: &str,
    ) -> Result<Option<String>, MlflowError> {
        // An error here must not read as "nothing approved": that would remove the alias.
        let labelled = match state
            .prompts()
            .get_prompt(
                &inst.principal,
                &inst.prompt_name(mlflow_name),
                &PromptSelector::Label(alias.to_owned()),
            )
            .await
        {
            Ok(v) => Some(v.version().to_string()),
            Err(PromptRegistryError::NotFound) => None,
            Err(e) => return Err(MlflowError::Airisk(e.to_string())),
        };
        Ok(inst.target(mlflow_name, alias, labelled.as_ref()))
    }

    fn due(&self, id: Uuid, now: DateTime<Utc>) -> bool {
        match self.sync.lock() {
            Ok(s) => !s.done.contains(&id) && s.pending.get(&id).is_none_or(|p| p.next_try <= now),
            Err(_) => false,
        }
    }

    fn mark_done(&self, id: Uuid) {
        if let Ok(mut s) = self.sync.lock() {
            s.pending.remove(&id);
            s.done.insert(id);
        }
    }

    /// Schedules `synced` again after a back-off that doubles per attempt; returns the attempt.
    fn mark_pending(
        &self,
        state: &AppState,
        inst: &Instance,
        synced: &Synced<'_>,
        error: &MlflowError,
    ) -> u32 {
        let id = synced.request;
        let mut attempts = 1;
        if let Ok(mut s) = self.sync.lock() {
            attempts = s.pending.get(&id).map_or(0, |p| p.attempts) + 1;
            let backoff = self
                .settings
                .tick
                .saturating_mul(2u32.saturating_pow(attempts.min(16)))
                .min(self.settings.max_backoff);
            let next_try = state.clock().now()
                + chrono::Duration::from_std(backoff).unwrap_or(chrono::Duration::seconds(60));
            s.pending.insert(
                id,
                Pending {
                    instance: inst.id.clone(),
                    approval_request_id: id,
                    model: synced.name.to_owned(),
                    version: synced.version.to_owned(),
                    decision: synced.status.to_string(),
                    attempts,
                    last_error: error.to_string(),
                    next_try,
                },
            );
        }
        attempts
    }

    /// Brings a decided version into MLflow: approval tags on the version and, when approved,
    /// every protected alias to the model's latest approved version. Reads first, writes only
    /// what differs, and records every write.
    async fn apply_decision(
        &self,
        state: &AppState,
        inst: &Instance,
        correlation: &CorrelationId,
        model: &ModelVersion,
        request_id: Uuid,
        status: ApprovalStatus,
    ) -> Result<(), MlflowError> {
        let name = model.model_name().as_str();
        let version = model.version().as_str();
        self.tag_decision(
            state,
            inst,
            correlation,
            (name, version),
            request_id,
            status,
        )
        .await?;
        if status == ApprovalStatus::Approved {
            self.align_aliases(state, inst, correlation, name).await?;
        }
        Ok(())
    }

    /// Tags MLflow version `version` of `name` (a model or a prompt) with the decided request
    /// and its decision (`approved` or `rejected`), writing only the tags that differ and
    /// recording each write.
    async fn tag_decision(
        &self,
        state: &AppState,
        inst: &Instance,
        correlation: &CorrelationId,
        (name, version): (&str, &str),
        request_id: Uuid,
        status: ApprovalStatus,
    ) -> Result<(), MlflowError> {
        let mv = inst.client.model_version(name, version).await?;
        let tags = client::tag_map(&mv.tags);
        let status_text = match status {
            ApprovalStatus::Approved => "approved",
            _ => "rejected",
        };
        let id_text = request_id.to_string();
        for (key, value) in [
            (TAG_APPROVAL_ID, id_text.as_str()),
            (TAG_APPROVAL_STATUS, status_text),
        ] {
            if tags.get(key).map(String::as_str) != Some(value) {
                let result = inst.client.set_version_tag(name, version, key, value).await;
                self.record_call(
                    state,
                    inst,
                    correlation,
                    "mlflow.tag.set",
                    &format!("{name}@{version}"),
                    json!({"key": key, "value": value, "approval_request_id": id_text}),
                    &result,
                )
                .await;
                result?;
            }
        }
        Ok(())
    }

    /// Points every protected alias of `name` at its latest approved version (removes it if
    /// there is none). Returns how many aliases it changed.
    async fn align_aliases(
        &self,
        state: &AppState,
        inst: &Instance,
        correlation: &CorrelationId,
        name: &str,
    ) -> Result<u32, MlflowError> {
        let approved = self.desired_version(state, inst, name).await?;
        let model = inst.client.registered_model(name).await?;
        let mut changed = 0;
        for alias in &inst.protected_aliases {
            let desired = inst.target(name, alias, approved.as_ref());
            let current = model
                .aliases
                .iter()
                .find(|a| &a.alias == alias)
                .map(|a| a.version.clone());
            if current == desired {
                continue;
            }
            changed += 1;
            self.move_alias(state, inst, correlation, name, alias, desired.as_deref())
                .await?;
        }
        Ok(changed)
    }

    async fn move_alias(
        &self,
        state: &AppState,
        inst: &Instance,
        correlation: &CorrelationId,
        name: &str,
        alias: &str,
        to: Option<&str>,
    ) -> Result<(), MlflowError> {
        if let Ok(mut s) = self.sync.lock() {
            let key = (inst.id.clone(), name.to_owned(), alias.to_owned());
            match to {
                Some(v) => s.own_sets.insert(key, v.to_owned()),
                None => s.own_sets.remove(&key),
            };
        }
        let (action, result) = match to {
            Some(v) => (
                "mlflow.alias.set",
                inst.client.set_alias(name, alias, v).await,
            ),
            None => (
                "mlflow.alias.delete",
                match inst.client.delete_alias(name, alias).await {
                    Err(e) if e.is_not_found() => Ok(()),
                    other => other,
                },
            ),
        };
        self.record_call(
            state,
            inst,
            correlation,
            action,
            &format!("{name}#{alias}"),
            json!({"alias": alias, "version": to}),
            &result,
        )
        .await;
        result
    }

    /// The latest approved version of `name` that came from `inst` (by approval time).
    async fn desired_version(
        &self,
        state: &AppState,
        inst: &Instance,
        name: &str,
    ) -> Result<Option<String>, MlflowError> {
        // An error here must not read as "nothing approved": that would remove the alias.
        let versions = state
            .models()
            .list_versions(&inst.principal, name)
            .await
            .map_err(|e| MlflowError::Airisk(e.to_string()))?;
        Ok(versions
            .iter()
            .filter(|m| m.status() == ModelStatus::Approved && origin(m) == Some(inst.id.as_str()))
            .max_by_key(|m| (m.approved_at(), m.created_at()))
            .map(|m| m.version().to_string()))
    }

    /// Compares every protected alias of every registered model in MLflow with airisk's
    /// approvals and repairs what drifted, recording each drift as a denied bypass.
    pub async fn reconcile(&self, state: &AppState, inst: &Instance) -> PassReport {
        let mut report = PassReport::default();
        let correlation = CorrelationId::generate();
        if let Ok(mut s) = self.sync.lock() {
            s.last_reconcile = Some(state.clock().now());
        }
        let models = match inst.client.registered_models().await {
            Ok(m) => m,
            Err(e) => {
                report.errors.push(format!("{}: {e}", inst.id));
                return report;
            }
        };
        for model in models {
            let kind = if model.is_prompt() {
                Registered::Prompt
            } else {
                Registered::Model
            };
            // Versions whose webhook airisk never received: register them now (PENDING).
            match inst.client.model_versions(&model.name).await {
                Ok(versions) => match kind {
                    Registered::Model => {
                        self.register_model_versions(
                            state,
                            inst,
                            &correlation,
                            &versions,
                            &mut report,
                        )
                        .await
                    }
                    Registered::Prompt => {
                        self.register_prompt_versions(
                            state,
                            inst,
                            &correlation,
                            &model.name,
                            &versions,
                            &mut report,
                        )
                        .await
                    }
                },
                Err(e) => {
                    report
                        .errors
                        .push(format!("{}: {}{}: {e}", inst.id, kind.prefix(), model.name))
                }
            }
            self.repair_aliases(state, inst, &correlation, &model, kind, &mut report)
                .await;
        }
        report
    }

    /// The reconcile's registration of a model's versions airisk has no record of (each READY
    /// version it does not know, as the webhook would have registered it).
    async fn register_model_versions(
        &self,
        state: &AppState,
        inst: &Instance,
        correlation: &CorrelationId,
        versions: &[client::MlflowModelVersion],
        report: &mut PassReport,
    ) {
        for mv in versions {
            let ready = mv.status.as_deref().is_none_or(|s| s == "READY");
            let known = state
                .models()
                .get_model(&inst.principal, &mv.name, &mv.version)
                .await
                .is_ok();
            if !ready || known {
                continue;
            }
            match webhook::register(state, inst, correlation, &mv.name, &mv.version, None, None)
                .await
            {
                Ok(v) if v.get("status").and_then(Value::as_str) == Some("registered") => {
                    report.registered += 1
                }
                Ok(_) => {}
                Err(e) => report
                    .errors
                    .push(format!("{}: {}@{}: {e}", inst.id, mv.name, mv.version)),
            }
        }
    }

    /// The reconcile's registration of a prompt's versions airisk has no record of (up to its
    /// newest READY version, as the webhook would have registered them).
    async fn register_prompt_versions(
        &self,
        state: &AppState,
        inst: &Instance,
        correlation: &CorrelationId,
        name: &str,
        versions: &[client::MlflowModelVersion],
        report: &mut PassReport,
    ) {
        let newest = versions
            .iter()
            .filter(|mv| mv.status.as_deref().is_none_or(|s| s == "READY"))
            .filter_map(|mv| mv.version.parse::<u32>().ok())
            .max();
        let Some(newest) = newest else {
            return;
        };
        match webhook::register_prompt(state, inst, correlation, name, &newest.to_string(), None)
            .await
        {
            Ok(v) => {
                report.registered += v
                    .get("registered")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0);
            }
            Err(e) => report
                .errors
                .push(format!("{}: prompt {name}: {e}", inst.id)),
        }
    }

    /// Where protected alias `alias` of `name` must point, for a registered model of `kind`.
    async fn alias_target(
        &self,
        state: &AppState,
        inst: &Instance,
        kind: Registered,
        name: &str,
        alias: &str,
    ) -> Result<Option<String>, MlflowError> {
        match kind {
            Registered::Model => {
                let approved = self.desired_version(state, inst, name).await?;
                Ok(inst.target(name, alias, approved.as_ref()))
            }
            Registered::Prompt => self.prompt_target(state, inst, name, alias).await,
        }
    }

    /// The reconcile's repair of one registered model or prompt: every protected alias that is
    /// not where airisk's approvals put it is recorded as a denied bypass and moved back.
    async fn repair_aliases(
        &self,
        state: &AppState,
        inst: &Instance,
        correlation: &CorrelationId,
        model: &client::RegisteredModel,
        kind: Registered,
        report: &mut PassReport,
    ) {
        for alias in &inst.protected_aliases {
            let current = model
                .aliases
                .iter()
                .find(|a| &a.alias == alias)
                .map(|a| a.version.clone());
            let desired = match self
                .alias_target(state, inst, kind, &model.name, alias)
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    report.errors.push(format!(
                        "{}: {}{}: {e}",
                        inst.id,
                        kind.prefix(),
                        model.name
                    ));
                    continue;
                }
            };
            if current == desired {
                continue;
            }
            self.record_bypass(
                state,
                inst,
                correlation,
                &model.name,
                alias,
                current.as_deref(),
                desired.as_deref(),
                kind.found_by_reconcile(),
            )
            .await;
            match self
                .move_alias(
                    state,
                    inst,
                    correlation,
                    &model.name,
                    alias,
                    desired.as_deref(),
                )
                .await
            {
                Ok(()) => report.repaired += 1,
                Err(e) => report
                    .errors
                    .push(format!("{}: {}#{alias}: {e}", inst.id, model.name)),
            }
        }
    }

    /// The status shown to `tenant`: its instances and what is pending sync.
    pub fn status(&self, tenant: &TenantId) -> Value {
        let (pending, last_reconcile) = match self.sync.lock() {
            Ok(s) => (
                s.pending.values().cloned().collect::<Vec<_>>(),
                s.last_reconcile,
            ),
            Err(_) => (Vec::new(), None),
        };
        let instances: Vec<Value> = self
            .instances
            .values()
            .filter(|i| &i.tenant == tenant)
            .map(|i| {
                let mine: Vec<&Pending> = pending.iter().filter(|p| p.instance == i.id).collect();
                json!({
                    "id": i.id,
                    "url": i.client.base(),
                    "protected_aliases": i.protected_aliases,
                    "pending_sync": mine,
                })
            })
            .collect();
        json!({"instances": instances, "last_reconcile": last_reconcile})
    }

    /// Records a protected alias found where airisk's approvals do not put it, as a denial.
    #[allow(clippy::too_many_arguments)] // one argument per field of the record
    async fn record_bypass(
        &self,
        state: &AppState,
        inst: &Instance,
        correlation: &CorrelationId,
        name: &str,
        alias: &str,
        found: Option<&str>,
        restored: Option<&str>,
        extra: Value,
    ) {
        let mut meta = Map::new();
        meta.insert("instance".into(), inst.id.clone().into());
        meta.insert("alias".into(), alias.into());
        meta.insert("found_version".into(), found.into());
        meta.insert("restored_version".into(), restored.into());
        if let Value::Object(extra) = extra {
            meta.extend(extra);
        }
        let reason = format!(
            "protected alias {alias} of {name} was moved outside airisk (to {}); airisk restores it to {}",
            found.unwrap_or("nothing"),
            restored.unwrap_or("nothing (no approved version)")
        );
        self.record(
            state,
            inst,
            correlation,
            "mlflow.alias.bypass",
            Outcome::Denied,
            &format!("{name}#{alias}"),
            Some(reason),
            meta,
        )
        .await;
    }

    #[allow(clippy::too_many_arguments)] // one argument per field of the record
    async fn record_call(
        &self,
        state: &AppState,
        inst: &Instance,
        correlation: &CorrelationId,
        action: &str,
        resource: &str,
        detail: Value,
        result: &Result<(), MlflowError>,
    ) {
        let mut meta = Map::new();
        meta.insert("instance".into(), inst.id.clone().into());
        meta.insert("call".into(), detail);
        let (outcome, reason) = match result {
            Ok(()) => (Outcome::Success, None),
            // A failed call is recorded as a refusal by MLflow, with the error; it is retried.
            Err(e) => (Outcome::Denied, Some(format!("MLflow call failed: {e}"))),
        };
        self.record(
            state,
            inst,
            correlation,
            action,
            outcome,
            resource,
            reason,
            meta,
        )
        .await;
    }

    /// Appends one record to the instance's tenant's ledger, as the instance's principal.
    #[allow(clippy::too_many_arguments)] // one argument per field of the record
    async fn record(
        &self,
        state: &AppState,
        inst: &Instance,
        correlation: &CorrelationId,
        action: &str,
        outcome: Outcome,
        resource_id: &str,
        reason: Option<String>,
        metadata: Map<String, Value>,
    ) {
        let reason = reason.map(|r| r.chars().take(1000).collect::<String>());
        let event = AuditEvent::new(
            Uuid::now_v7(),
            inst.tenant.clone(),
            inst.principal.actor().clone(),
            action,
            outcome,
            "mlflow",
            resource_id,
            reason,
            correlation.clone(),
            Some(metadata),
        );
        let result = match event {
            Ok(e) => state
                .audit()
                .append(vec![e])
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            tracing::error!(instance = %inst.id, action, error = %e, "mlflow integration: could not record");
        }
    }

    pub(crate) fn own_set(&self, inst: &str, name: &str, alias: &str) -> Option<String> {
        self.sync
            .lock()
            .ok()?
            .own_sets
            .get(&(inst.to_owned(), name.to_owned(), alias.to_owned()))
            .cloned()
    }
}

/// One decided request on its way into MLflow, as the sync records it when MLflow cannot take it
/// yet.
#[derive(Debug, Clone, Copy)]
struct Synced<'a> {
    /// The approval request.
    request: Uuid,
    /// Its decision.
    status: ApprovalStatus,
    /// The MLflow model or prompt.
    name: &'a str,
    /// Its version.
    version: &'a str,
    /// The resource of the `mlflow.sync` record (`name@version`, `#label` for a prompt).
    resource: &'a str,
}

/// What an MLflow registered model is to the reconcile: a model (its aliases follow airisk's
/// approved versions) or a prompt (its aliases follow airisk's prompt labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registered {
    /// A model whose versions are airisk model versions.
    Model,
    /// A prompt (MLflow keeps prompts as registered models too).
    Prompt,
}

impl Registered {
    /// What precedes the name in a reconcile error (`prompt ` for a prompt).
    fn prefix(self) -> &'static str {
        match self {
            Registered::Model => "",
            Registered::Prompt => "prompt ",
        }
    }

    /// The extra metadata of a bypass the reconcile found.
    fn found_by_reconcile(self) -> Value {
        match self {
            Registered::Model => json!({"found_by": "reconcile"}),
            Registered::Prompt => json!({"found_by": "reconcile", "kind": "prompt"}),
        }
    }
}

/// The MLflow instance a model version came from (its metadata `mlflow.instance`).
fn origin(model: &ModelVersion) -> Option<&str> {
    model
        .metadata()
        .get("mlflow")
        .and_then(|m| m.get("instance"))
        .and_then(Value::as_str)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests
mod tests {
    use super::*;

    fn instance(secret: &str, url: &str) -> Result<Instance, String> {
        Instance::new(
            "risk",
            url,
            "acme",
            Zeroizing::new(secret.as_bytes().to_vec()),
            Some(Zeroizing::new("mlflow-api-token-value".to_owned())),
            Vec::new(),
            crate::https::HttpsClient::new(None).unwrap(),
        )
    }

    #[test]
    fn an_instance_is_a_service_principal_and_never_shows_its_secrets() {
        let i = instance("a-long-enough-webhook-secret", "http://mlflow:5000").unwrap();
        assert_eq!(
            i.principal().kind(),
            airisk_core::security::tenant_context::PrincipalKind::Service
        );
        assert_eq!(i.protected_aliases(), ["production"]);
        let shown = format!("{i:?} {:?}", i.client());
        assert!(!shown.contains("a-long-enough-webhook-secret"), "{shown}");
        assert!(!shown.contains("mlflow-api-token-value"), "{shown}");
    }

    #[test]
    fn weak_secrets_odd_ids_and_unsupported_urls_are_refused() {
        assert!(instance("short", "http://mlflow:5000").is_err());
        assert!(instance("a-long-enough-webhook-secret", "ftp://mlflow").is_err());
        assert!(instance("a-long-enough-webhook-secret", "https://mlflow").is_ok());
        assert!(check_instance_id("risk/../x").is_err());
        assert!(check_instance_id("").is_err());
        assert!(check_instance_id("risk-1.prod").is_ok());
    }

    #[test]
    fn the_mlflow_author_is_the_maker_by_the_canonical_rule_or_the_mapping() {
        let i = instance("a-long-enough-webhook-secret", "http://mlflow:5000")
            .unwrap()
            .with_authors(&[("jdoe".to_owned(), "John.Doe@Bank.example".to_owned())].into())
            .unwrap();
        // Nobody named: the service principal, which can never approve.
        let none = i.maker(None).unwrap();
        assert_eq!(none.actor().as_str(), "mlflow:risk");
        assert_eq!(i.maker(Some("  ")).unwrap().actor().as_str(), "mlflow:risk");
        // A name: that person, canonical, whatever the spelling.
        for spelling in ["Alice.Maker", "ALICE.MAKER", "ａｌｉｃｅ.maker"] {
            let m = i.maker(Some(spelling)).unwrap();
            assert_eq!(m.actor().as_str(), "alice.maker", "{spelling}");
            assert_eq!(m.tenant().as_str(), "acme");
        }
        // The mapping, by the exact MLflow name, folded to canonical form.
        assert_eq!(
            i.maker(Some("jdoe")).unwrap().actor().as_str(),
            "john.doe@bank.example"
        );
        // Not the mapping for another spelling: that one is its own canonical identity.
        assert_eq!(i.maker(Some("JDoe")).unwrap().actor().as_str(), "jdoe");
        // A name with no airisk form is refused, never left free to approve.
        let err = i.maker(Some("Jürgen")).unwrap_err();
        assert!(err.contains("no airisk identity"), "{err}");
        assert!(
            instance("a-long-enough-webhook-secret", "http://mlflow:5000")
                .unwrap()
                .with_authors(&[("x".to_owned(), "not an id".to_owned())].into())
                .is_err()
        );
    }

    #[test]
    fn mirrored_prompts_live_in_the_instance_namespace() {
        let i = instance("a-long-enough-webhook-secret", "http://mlflow:5000").unwrap();
        assert_eq!(i.prompt_name("greeting"), "mlflow/risk/greeting");
        assert_eq!(i.mlflow_prompt("mlflow/risk/greeting"), Some("greeting"));
        assert_eq!(i.mlflow_prompt("mlflow/risky/greeting"), None);
        assert_eq!(i.mlflow_prompt("mlflow/other/greeting"), None);
        assert_eq!(i.mlflow_prompt("greeting"), None);
    }

    #[test]
    fn a_baseline_alias_holds_only_until_a_version_is_approved() {
        let i = instance("a-long-enough-webhook-secret", "http://mlflow:5000")
            .unwrap()
            .with_baseline(vec![BaselineAlias {
                model: "credit".into(),
                alias: "production".into(),
                version: "3".into(),
            }]);
        assert_eq!(i.target("credit", "production", None).as_deref(), Some("3"));
        assert_eq!(
            i.target("credit", "production", Some(&"5".to_owned()))
                .as_deref(),
            Some("5")
        );
        assert_eq!(i.target("other", "production", None), None);
    }
}

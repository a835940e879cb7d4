//! The application state: the core services, built from the ports the composition root hands in.
//! The server never opens a database itself.

use std::sync::Arc;
use std::time::Duration;

use airisk_core::governance::approval_workflow::ApprovalWorkflow;
use airisk_core::governance::audit_logger::{AuditLogger, CheckpointPolicy};
use airisk_core::governance::model_registry::ModelRegistry;
use airisk_core::governance::prompt_registry::PromptRegistry;
use airisk_core::ledger::{LedgerName, LedgerSigner, LedgerVerifier};
use airisk_core::ports::{AuditRepository, Clock, GovernanceStore, IdGenerator};

use crate::auth::JwtVerifier;
use crate::console::ConsoleConfig;
use crate::metrics::Metrics;

/// Default largest request body: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Default request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default period of the checkpoint timer.
pub const DEFAULT_CHECKPOINT_TICK: Duration = Duration::from_secs(1);
/// Default most `/v1` requests handled at once (others wait their turn, within the request
/// timeout).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;

/// Limits and timers of the HTTP service.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body, in bytes (larger: 413).
    pub body_limit: usize,
    /// Longest a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// How often the checkpoint timer asks each tenant's ledger whether a checkpoint is due.
    pub checkpoint_tick: Duration,
    /// Most `/v1` requests handled at once; the rest wait in line (their wait counts against the
    /// request timeout). 0: no limit. A few per core keeps the cores busy while bounding the
    /// threads and store connections a burst of connections would otherwise fan out to.
    pub max_in_flight: usize,
    /// How the approver console (`/console`) signs people in.
    pub console: ConsoleConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            checkpoint_tick: DEFAULT_CHECKPOINT_TICK,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            console: ConsoleConfig::default(),
        }
    }
}

/// The stores the service runs on. Both may be the same object.
#[derive(Debug, Clone)]
pub struct Stores {
    /// The audit ledger.
    pub audit: Arc<dyn AuditRepository>,
    /// Models, prompts and approval requests (with their audit records, in one transaction).
    pub governance: Arc<dyn GovernanceStore>,
}

/// How the audit ledger is signed.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// The checkpoint signing key (its name is the ledger's name).
    pub signer: Arc<LedgerSigner>,
    /// When to sign checkpoints.
    pub policy: CheckpointPolicy,
}

struct Inner {
    stores: Stores,
    clock: Arc<dyn Clock>,
    audit: AuditLogger,
    verifier: LedgerVerifier,
    models: ModelRegistry,
    prompts: PromptRegistry,
    approvals: ApprovalWorkflow,
    auth: JwtVerifier,
    config: ServerConfig,
    metrics: Metrics,
    limiter: Option<Arc<tokio::sync::Semaphore>>,
    mlflow: std::sync::OnceLock<Arc<crate::integrations::mlflow::MlflowIntegration>>,
}

/// Shared by every request; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("audit", &self.0.audit)
            .field("auth", &self.0.auth)
            .field("config", &self.0.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the services over `stores`.
    pub fn new(
        stores: Stores,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        ledger: LedgerConfig,
        auth: JwtVerifier,
        config: ServerConfig,
    ) -> Self {
        let name: LedgerName = ledger.signer.name().clone();
        let verifier = ledger.signer.verifier();
        let audit = AuditLogger::new(
            stores.audit.clone(),
            ids.clone(),
            clock.clone(),
            name,
            Some(ledger.signer),
            ledger.policy,
        );
        let models = ModelRegistry::new(stores.governance.clone(), clock.clone(), ids.clone());
        let prompts = PromptRegistry::new(stores.governance.clone(), clock.clone(), ids.clone());
        let approvals = ApprovalWorkflow::new(stores.governance.clone(), clock.clone(), ids);
        AppState(Arc::new(Inner {
            stores,
            clock,
            audit,
            verifier,
            models,
            prompts,
            approvals,
            auth,
            limiter: (config.max_in_flight > 0)
                .then(|| Arc::new(tokio::sync::Semaphore::new(config.max_in_flight))),
            config,
            metrics: Metrics::new(),
            mlflow: std::sync::OnceLock::new(),
        }))
    }

    /// The stores.
    pub fn stores(&self) -> &Stores {
        &self.0.stores
    }
    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.0.clock
    }
    /// The audit logger.
    pub fn audit(&self) -> &AuditLogger {
        &self.0.audit
    }
    /// The ledger's verifier key (what auditors check checkpoints with).
    pub fn ledger_verifier(&self) -> &LedgerVerifier {
        &self.0.verifier
    }
    /// The model registry.
    pub fn models(&self) -> &ModelRegistry {
        &self.0.models
    }
    /// The prompt registry.
    pub fn prompts(&self) -> &PromptRegistry {
        &self.0.prompts
    }
    /// The approval workflow.
    pub fn approvals(&self) -> &ApprovalWorkflow {
        &self.0.approvals
    }
    /// The token verifier.
    pub fn auth(&self) -> &JwtVerifier {
        &self.0.auth
    }
    /// Limits and timers.
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }
    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }
    /// Connects the MLflow integration (once; a second call is refused with `false`).
    pub fn connect_mlflow(
        &self,
        mlflow: Arc<crate::integrations::mlflow::MlflowIntegration>,
    ) -> bool {
        self.0.mlflow.set(mlflow).is_ok()
    }
    /// The MLflow integration, if connected.
    pub fn mlflow(&self) -> Option<&Arc<crate::integrations::mlflow::MlflowIntegration>> {
        self.0.mlflow.get()
    }
    /// The in-flight limit, if any.
    pub(crate) fn limiter(&self) -> Option<&Arc<tokio::sync::Semaphore>> {
        self.0.limiter.as_ref()
    }
}

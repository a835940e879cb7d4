//! The application state: the core services, built from the ports the composition root hands in.
//! The server never opens a database itself.

use airisk_core::security::envelope::Envelope;
use std::sync::Arc;
use std::time::Duration;

use airisk_core::governance::approval_workflow::ApprovalWorkflow;
use airisk_core::governance::audit_logger::{AuditLogger, CheckpointPolicy};
use airisk_core::governance::model_registry::ModelRegistry;
use airisk_core::governance::prompt_registry::PromptRegistry;
use airisk_core::governance::service_context::ServiceContext;
use airisk_core::ledger::{LedgerName, LedgerSigner, LedgerVerifier};
use airisk_core::ports::{AuditRepository, Clock, GovernanceStore, IdGenerator};

use crate::admission::Admission;
use crate::auth::JwtVerifier;
use crate::console::ConsoleConfig;
use crate::metrics::Metrics;
use crate::throttle::{DenialThrottle, DenialThrottleConfig};

/// Default largest request body: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Default request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default period of the checkpoint timer.
pub const DEFAULT_CHECKPOINT_TICK: Duration = Duration::from_secs(1);
/// Default most `/v1` requests handled at once (others wait their turn, within the request
/// timeout).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;
/// Default most `/v1` requests of one tenant handled at once: half the slots, so one tenant
/// cannot take them all.
pub const DEFAULT_MAX_IN_FLIGHT_PER_TENANT: usize = 8;
/// Default longest a client may take to send a request's head (line and headers); slower
/// connections are closed.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default longest a client may take to send a request's body once its head is in; slower is a
/// 408.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

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
    ///
    /// A request takes its slot only once its token verified (unauthenticated requests never
    /// hold one), and before its body is read (so a slow body holds a slot at most for
    /// `body_read_timeout`).
    pub max_in_flight: usize,
    /// Most `/v1` requests of one tenant handled at once, within `max_in_flight`; the tenant's
    /// other requests wait in their tenant's own line, not in everybody's. 0: no per-tenant
    /// limit (one tenant may then take every slot).
    pub max_in_flight_per_tenant: usize,
    /// Longest a client may take to send a request's head; the connection is then closed
    /// (without a response: the request was never complete). Also bounds an idle keep-alive
    /// connection's wait for its next request.
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a request's body (from when the handler starts reading
    /// it); then 408 problem+json and the connection is closed.
    pub body_read_timeout: Duration,
    /// The service's public URL, as browsers reach it (`https://risk.bank.example`), if
    /// configured. `https`: every response carries `Strict-Transport-Security`, and the
    /// console's cookies are always `Secure` with the `__Host-` prefix.
    pub public_url: Option<PublicUrl>,
    /// How the approver console (`/console`) signs people in.
    pub console: ConsoleConfig,
    /// How fast one principal's refused requests may go on (then 429).
    pub denial_throttle: DenialThrottleConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            checkpoint_tick: DEFAULT_CHECKPOINT_TICK,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_in_flight_per_tenant: DEFAULT_MAX_IN_FLIGHT_PER_TENANT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            public_url: None,
            console: ConsoleConfig::default(),
            denial_throttle: DenialThrottleConfig::default(),
        }
    }
}

/// The service's public URL: an `http` or `https` origin (scheme, host, optional port), without
/// user information, query or fragment. A path is accepted and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    origin: String,
    https: bool,
}

impl PublicUrl {
    /// Parses `url`.
    ///
    /// # Errors
    /// A message naming what is wrong: another scheme, no host, user information, a query or a
    /// fragment.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let (https, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
            (false, rest)
        } else {
            return Err(format!(
                "the public URL {url:?} must start with https:// (or http:// for a loopback test)"
            ));
        };
        if rest.contains(['?', '#']) {
            return Err("the public URL takes no query or fragment".to_owned());
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err("the public URL takes no user information".to_owned());
        }
        if authority.is_empty()
            || !authority
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        {
            return Err(format!("the public URL {url:?} has no valid host"));
        }
        let scheme = if https { "https" } else { "http" };
        Ok(PublicUrl {
            origin: format!("{scheme}://{}", authority.to_ascii_lowercase()),
            https,
        })
    }

    /// Whether browsers reach the service over TLS.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The origin, e.g. `https://risk.bank.example`.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
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
    metrics: Arc<Metrics>,
    admission: Arc<Admission>,
    denials: DenialThrottle,
    mlflow: std::sync::OnceLock<Arc<crate::integrations::mlflow::MlflowIntegration>>,
    ids: Arc<dyn IdGenerator>,
    envelope: Option<Arc<Envelope>>,
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
    /// Builds the services over `stores`, without sealing (prompt templates stored as given).
    pub fn new(
        stores: Stores,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        ledger: LedgerConfig,
        auth: JwtVerifier,
        config: ServerConfig,
    ) -> Self {
        Self::new_sealed(stores, clock, ids, ledger, auth, config, None)
    }

    /// Builds the services over `stores`; with `envelope`, prompt templates and sensitive model
    /// and audit metadata are sealed under the tenant's data key on write and opened on read
    /// (what `airisk serve` runs).
    pub fn new_sealed(
        stores: Stores,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        ledger: LedgerConfig,
        auth: JwtVerifier,
        config: ServerConfig,
        envelope: Option<Arc<Envelope>>,
    ) -> Self {
        let name: LedgerName = ledger.signer.name().clone();
        let verifier = ledger.signer.verifier();
        let mut audit = AuditLogger::new(
            stores.audit.clone(),
            ids.clone(),
            clock.clone(),
            name,
            Some(ledger.signer),
            ledger.policy,
        );
        if let Some(envelope) = &envelope {
            audit = audit.with_sealing(stores.governance.clone(), envelope.clone());
        }
        // One context (store, clock, ids, RBAC) shared by the three governance services.
        let services = ServiceContext::new(stores.governance.clone(), clock.clone(), ids.clone());
        let mut models = ModelRegistry::with_context(services.clone());
        let mut prompts = PromptRegistry::with_context(services.clone());
        if let Some(envelope) = &envelope {
            models = models.with_envelope(envelope.clone());
            prompts = prompts.with_envelope(envelope.clone());
        }
        let approvals = ApprovalWorkflow::with_context(services);
        AppState(Arc::new(Inner {
            stores,
            clock,
            audit,
            verifier,
            models,
            prompts,
            approvals,
            auth,
            admission: Arc::new(Admission::new(
                config.max_in_flight,
                config.max_in_flight_per_tenant,
            )),
            denials: DenialThrottle::new(config.denial_throttle),
            config,
            metrics: Arc::new(Metrics::new()),
            mlflow: std::sync::OnceLock::new(),
            ids,
            envelope,
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
    /// The id generator.
    pub fn ids(&self) -> &Arc<dyn IdGenerator> {
        &self.0.ids
    }
    /// The envelope that seals values under tenants' data keys, if configured.
    pub fn envelope(&self) -> Option<&Arc<Envelope>> {
        self.0.envelope.as_ref()
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
    /// The metrics, shared (for what outlives a borrow of the state).
    pub(crate) fn metrics_arc(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }
    /// The admission control of `/v1` requests.
    pub(crate) fn admission(&self) -> &Arc<Admission> {
        &self.0.admission
    }
    /// The denial throttle.
    pub fn denials(&self) -> &DenialThrottle {
        &self.0.denials
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
}

#[cfg(test)]
mod tests {
    use super::PublicUrl;

    #[test]
    fn public_urls_are_origins_over_http_or_https() {
        let u = PublicUrl::parse("HTTPS://Risk.Bank.Example:8443/console").unwrap();
        assert!(u.is_https());
        assert_eq!(u.origin(), "https://risk.bank.example:8443");
        assert!(
            !PublicUrl::parse("http://127.0.0.1:8080")
                .unwrap()
                .is_https()
        );
        for bad in [
            "risk.bank.example",
            "ftp://risk.bank.example",
            "https://",
            "https://u:p@risk.bank.example",
            "https://risk.bank.example/?a=b",
            "https://risk.bank.example/#x",
            "https://risk bank",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }
}

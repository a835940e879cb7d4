//! # airisk-py
//!
//! The ai-risk-engine kernel as the Python module `airisk` (built with maturin; see
//! `docs/PYTHON.md`). It exposes the specification's classes (`AuditLogger`, `ModelRegistry`,
//! `PromptRegistry`, `ApprovalWorkflow`, `RBACService`, `TenantContext` and the encryption wrapper)
//! with keyword-only signatures, backed by the airisk-core services over the same stores the
//! `airisk` binary opens. Nothing is global: `airisk.open(...)` returns a `Kernel` that owns its
//! store, keys and tokio runtime; several can coexist in one process.
#![deny(missing_docs)]

mod bridge;
mod errors;
mod services;
mod values;

use std::sync::Arc;

use airisk_core::governance::approval_workflow::ApprovalWorkflow as CoreWorkflow;
use airisk_core::governance::audit_logger::{AuditLogger as CoreLogger, CheckpointPolicy};
use airisk_core::governance::model_registry::ModelRegistry as CoreModels;
use airisk_core::governance::prompt_registry::PromptRegistry as CorePrompts;
use airisk_core::ledger::{LedgerName, LedgerSigner, SIGNING_KEY_ENV, generate_key_pair};
use airisk_core::ports::{AuditRepository, Clock, GovernanceStore, SystemClock, UuidV7Generator};
use airisk_core::security::encryption::{
    ENV_VAR as ENCRYPTION_KEYS_ENV, EncryptionKeyId, Encryptor, generate_key_entry,
};
use pyo3::prelude::*;
use zeroize::Zeroizing;

use crate::bridge::{Bridge, Runtime};
use crate::errors::{Failure, Family};

/// The environment variable naming the store, as for `airisk serve` and `airisk audit`.
const DATABASE_URL_ENV: &str = "AIRISK_DATABASE_URL";
/// The environment variable of the checkpoint cadence, as for `airisk serve` and `airisk audit`.
const CHECKPOINT_EVERY_ENV: &str = "AIRISK_CHECKPOINT_EVERY_ENTRIES";
/// The URL of the in-memory store (not durable), as in the `airisk` binary.
const MEMORY_URL: &str = "memory:";

/// The stores behind the ports, from one database URL: the same schemes as the `airisk` binary's
/// `--database-url` (`sqlite://path`, `postgres://…`, `memory:`), opened by the same store crates.
async fn open_store(
    url: &str,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<dyn AuditRepository>, Arc<dyn GovernanceStore>), Failure> {
    let unusable = |e: String| Failure::new(Family::Configuration, "store", e);
    if url == MEMORY_URL {
        let store = Arc::new(airisk_testkit::InMemoryStore::new(clock));
        return Ok((store.clone(), store));
    }
    if url.starts_with("sqlite:") {
        let location = url.to_owned();
        // Opening migrates the file and starts the writer thread: blocking work.
        let store = tokio::task::spawn_blocking(move || {
            airisk_store_sqlite::SqliteStore::open(&location, clock)
        })
        .await
        .map_err(|e| unusable(format!("the store opener failed: {e}")))?
        .map_err(|e| unusable(format!("could not open the SQLite store: {e}")))?;
        let store = Arc::new(store);
        return Ok((store.clone(), store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = airisk_store_postgres::PostgresStore::connect(
            url,
            clock,
            airisk_store_postgres::PostgresOptions::default(),
        )
        .await
        .map_err(|e| unusable(format!("could not connect to the PostgreSQL store: {e}")))?;
        let store = Arc::new(store);
        return Ok((store.clone(), store));
    }
    Err(unusable(format!(
        "unsupported database URL: use sqlite://path, postgres://… or {MEMORY_URL}"
    )))
}

/// An argument, else the environment variable (empty counts as absent).
fn arg_or_env(arg: Option<String>, var: &str) -> Option<Zeroizing<String>> {
    arg.or_else(|| std::env::var(var).ok())
        .filter(|s| !s.trim().is_empty())
        .map(Zeroizing::new)
}

/// One kernel: a store, the ledger key, the encryption keyring and the runtime the services'
/// awaitables run on. Hands out the services.
#[pyclass(frozen, module = "airisk", name = "Kernel")]
#[derive(Debug)]
struct Kernel {
    audit_logger: Py<services::AuditLogger>,
    model_registry: Py<services::ModelRegistry>,
    prompt_registry: Py<services::PromptRegistry>,
    approval_workflow: Py<services::ApprovalWorkflow>,
    encryption: Py<services::EncryptionService>,
    rbac: Py<services::RbacServicePy>,
    tenant_context: Py<services::TenantContextPy>,
}

#[pymethods]
impl Kernel {
    /// The `AuditLogger`.
    #[getter]
    fn audit_logger(&self, py: Python<'_>) -> Py<services::AuditLogger> {
        self.audit_logger.clone_ref(py)
    }
    /// The `ModelRegistry`.
    #[getter]
    fn model_registry(&self, py: Python<'_>) -> Py<services::ModelRegistry> {
        self.model_registry.clone_ref(py)
    }
    /// The `PromptRegistry`.
    #[getter]
    fn prompt_registry(&self, py: Python<'_>) -> Py<services::PromptRegistry> {
        self.prompt_registry.clone_ref(py)
    }
    /// The `ApprovalWorkflow`.
    #[getter]
    fn approval_workflow(&self, py: Python<'_>) -> Py<services::ApprovalWorkflow> {
        self.approval_workflow.clone_ref(py)
    }
    /// The encryption wrapper over this kernel's keyring.
    #[getter]
    fn encryption(&self, py: Python<'_>) -> Py<services::EncryptionService> {
        self.encryption.clone_ref(py)
    }
    /// The `RBACService`.
    #[getter]
    fn rbac(&self, py: Python<'_>) -> Py<services::RbacServicePy> {
        self.rbac.clone_ref(py)
    }
    /// The `TenantContext`.
    #[getter]
    fn tenant_context(&self, py: Python<'_>) -> Py<services::TenantContextPy> {
        self.tenant_context.clone_ref(py)
    }
    /// The ledger's verifier key (what `airisk audit verify` needs as AIRISK_LEDGER_VERIFIER_KEY).
    #[getter]
    fn verifier_key(&self) -> Option<String> {
        self.audit_logger.get().inner.verifier_key()
    }
}

/// Opens a kernel. Each argument left out is read from the environment variable the `airisk`
/// binary reads: `AIRISK_DATABASE_URL`, `AIRISK_LEDGER_SIGNING_KEY`, `AIRISK_ENCRYPTION_KEYS`,
/// `AIRISK_CHECKPOINT_EVERY_ENTRIES`. All three keys and the URL are required (like
/// `airisk serve` outside dev mode): a missing or invalid one raises `ConfigurationError` naming
/// every problem, never a key.
#[pyfunction]
#[pyo3(signature = (*, database_url = None, ledger_signing_key = None, encryption_keys = None, checkpoint_every_entries = None))]
fn open(
    py: Python<'_>,
    database_url: Option<String>,
    ledger_signing_key: Option<String>,
    encryption_keys: Option<String>,
    checkpoint_every_entries: Option<u64>,
) -> PyResult<Kernel> {
    let mut problems = Vec::new();
    let url = arg_or_env(database_url, DATABASE_URL_ENV);
    if url.is_none() {
        problems.push(format!(
            "no database URL: pass database_url= or set {DATABASE_URL_ENV} (sqlite://path, postgres://…, {MEMORY_URL})"
        ));
    }
    let signer = match arg_or_env(ledger_signing_key, SIGNING_KEY_ENV) {
        None => {
            problems.push(format!(
                "no ledger signing key: pass ledger_signing_key= or set {SIGNING_KEY_ENV} (make one with `airisk keys generate --ledger` or airisk.generate_ledger_key())"
            ));
            None
        }
        Some(k) => match LedgerSigner::from_signing_key(k.trim()) {
            Ok(s) => Some(s),
            Err(e) => {
                problems.push(format!("the ledger signing key is invalid: {e}"));
                None
            }
        },
    };
    let encryptor = match arg_or_env(encryption_keys, ENCRYPTION_KEYS_ENV) {
        None => {
            problems.push(format!(
                "no encryption keys: pass encryption_keys= or set {ENCRYPTION_KEYS_ENV} (make one with `airisk keys generate` or airisk.generate_encryption_key())"
            ));
            None
        }
        Some(k) => match Encryptor::from_env_value(&k) {
            Ok(e) => Some(e),
            Err(e) => {
                problems.push(format!("the encryption keys are invalid: {e}"));
                None
            }
        },
    };
    let every_entries = match checkpoint_every_entries {
        Some(n) => Some(n),
        None => match std::env::var(CHECKPOINT_EVERY_ENV) {
            Ok(v) => match v.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    problems.push(format!("{CHECKPOINT_EVERY_ENV} must be a whole number"));
                    None
                }
            },
            Err(_) => None,
        },
    };
    let (Some(url), Some(signer), Some(encryptor)) = (url, signer, encryptor) else {
        return Err(Failure::new(
            Family::Configuration,
            "missing_or_invalid",
            format!("cannot open the kernel:\n  - {}", problems.join("\n  - ")),
        )
        .into());
    };
    if let Some(problem) = problems.into_iter().next() {
        return Err(Failure::new(Family::Configuration, "invalid", problem).into());
    }
    let policy = match every_entries {
        None => CheckpointPolicy::default(),
        Some(0) => CheckpointPolicy {
            every_entries: None,
            ..CheckpointPolicy::default()
        },
        Some(n) => CheckpointPolicy {
            every_entries: Some(n),
            ..CheckpointPolicy::default()
        },
    };

    let runtime = Runtime::new()?;
    let bridge = Bridge::new(py, runtime)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ids = Arc::new(UuidV7Generator);
    let (audit_repo, governance) = bridge.block_on(py, open_store(&url, clock.clone()))??;
    let verifier = signer.verifier();
    let logger = CoreLogger::new(
        audit_repo,
        ids.clone(),
        clock.clone(),
        signer.name().clone(),
        Some(Arc::new(signer)),
        policy,
    );
    Ok(Kernel {
        audit_logger: Py::new(
            py,
            services::AuditLogger {
                bridge: bridge.clone(),
                inner: Arc::new(logger),
                verifier: Some(verifier),
            },
        )?,
        model_registry: Py::new(
            py,
            services::ModelRegistry {
                bridge: bridge.clone(),
                inner: Arc::new(CoreModels::new(
                    governance.clone(),
                    clock.clone(),
                    ids.clone(),
                )),
            },
        )?,
        prompt_registry: Py::new(
            py,
            services::PromptRegistry {
                bridge: bridge.clone(),
                inner: Arc::new(CorePrompts::new(
                    governance.clone(),
                    clock.clone(),
                    ids.clone(),
                )),
            },
        )?,
        approval_workflow: Py::new(
            py,
            services::ApprovalWorkflow {
                bridge,
                inner: Arc::new(CoreWorkflow::new(governance, clock, ids)),
            },
        )?,
        encryption: Py::new(
            py,
            services::EncryptionService {
                inner: Arc::new(encryptor),
            },
        )?,
        rbac: Py::new(py, services::RbacServicePy)?,
        tenant_context: Py::new(py, services::TenantContextPy)?,
    })
}

/// A fresh ledger key pair: `(signing_key, verifier_key)`. The signing key is a secret (give it to
/// `airisk.open` / AIRISK_LEDGER_SIGNING_KEY); the verifier key is public (auditors).
#[pyfunction]
#[pyo3(signature = (name = "airisk.local/ledger"))]
fn generate_ledger_key(name: &str) -> PyResult<(String, String)> {
    let name = LedgerName::parse(name)
        .map_err(|e| Failure::new(Family::Validation, "invalid_ledger_name", e.to_string()))?;
    let (signing, verifier) = generate_key_pair(&name)
        .map_err(|e| Failure::new(Family::Configuration, "key_generation", e.to_string()))?;
    Ok((signing.as_str().to_owned(), verifier))
}

/// A fresh encryption keyring entry `kid:base64key` (a secret), under `key_id` or a dated one.
#[pyfunction]
#[pyo3(signature = (key_id = None))]
fn generate_encryption_key(key_id: Option<&str>) -> PyResult<String> {
    let kid = match key_id {
        Some(k) => EncryptionKeyId::parse(k).map_err(Failure::from)?,
        None => {
            EncryptionKeyId::generate(chrono::Utc::now().date_naive()).map_err(Failure::from)?
        }
    };
    let entry = generate_key_entry(&kid).map_err(Failure::from)?;
    Ok(entry.as_str().to_owned())
}

/// The compiled part of the `airisk` package.
#[pymodule]
#[pyo3(name = "_airisk")]
fn airisk_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let shutdown = wrap_pyfunction!(bridge::_airisk_shutdown, m)?;
    py.import("atexit")?.call_method1("register", (shutdown,))?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(generate_ledger_key, m)?)?;
    m.add_function(wrap_pyfunction!(generate_encryption_key, m)?)?;
    m.add_class::<Kernel>()?;
    m.add_class::<values::Principal>()?;
    m.add_class::<values::AuditReceipt>()?;
    m.add_class::<values::AuditEntry>()?;
    m.add_class::<values::VerifyReport>()?;
    m.add_class::<values::ModelVersion>()?;
    m.add_class::<values::ApprovalRequest>()?;
    m.add_class::<values::Registration>()?;
    m.add_class::<values::Decision>()?;
    m.add_class::<values::PromptVersion>()?;
    m.add_class::<values::PromptChange>()?;
    m.add_class::<values::LabelMove>()?;
    m.add_class::<values::DeploymentDecision>()?;
    m.add_class::<services::AuditLogger>()?;
    m.add_class::<services::ModelRegistry>()?;
    m.add_class::<services::PromptRegistry>()?;
    m.add_class::<services::ApprovalWorkflow>()?;
    m.add_class::<services::RbacServicePy>()?;
    m.add_class::<services::TenantContextPy>()?;
    m.add_class::<services::EncryptionService>()?;
    m.add("AiriskError", py.get_type::<errors::AiriskError>())?;
    m.add(
        "AuthorizationError",
        py.get_type::<errors::AuthorizationError>(),
    )?;
    m.add(
        "TenantIsolationError",
        py.get_type::<errors::TenantIsolationError>(),
    )?;
    m.add("ValidationError", py.get_type::<errors::ValidationError>())?;
    m.add("AuditError", py.get_type::<errors::AuditError>())?;
    m.add(
        "ModelRegistryError",
        py.get_type::<errors::ModelRegistryError>(),
    )?;
    m.add(
        "PromptRegistryError",
        py.get_type::<errors::PromptRegistryError>(),
    )?;
    m.add("ApprovalError", py.get_type::<errors::ApprovalError>())?;
    m.add("EncryptionError", py.get_type::<errors::EncryptionError>())?;
    m.add("StoreError", py.get_type::<errors::StoreError>())?;
    m.add(
        "ConfigurationError",
        py.get_type::<errors::ConfigurationError>(),
    )?;
    Ok(())
}

//! The specification's service classes, each a thin shell over the airisk-core service of the
//! same name: the kernel checks RBAC first, then the tenant wall, then the business rules, and
//! commits state and audit record in one transaction. Nothing is re-implemented here.
//!
//! Every method takes the acting principal as the keyword `actor` (an `airisk.Principal`); the
//! tenant a command acts in is always the principal's.

use std::sync::Arc;

use airisk_core::governance::approval_workflow::{
    ApprovalWorkflow as CoreWorkflow, NewApprovalRequest, RequestedSubject,
};
use airisk_core::governance::audit_logger::AuditLogger as CoreLogger;
use airisk_core::governance::audit_record::AuditEventInput;
use airisk_core::governance::model_registry::{
    Deployment, ModelRegistry as CoreModels, RegisterModel,
};
use airisk_core::governance::prompt_registry::{PromptRegistry as CorePrompts, PromptSelector};
use airisk_core::ledger::LedgerVerifier;
use airisk_core::request::CorrelationId;
use airisk_core::security::encryption::Encryptor;
use airisk_core::security::rbac::{Action, RbacService};
use airisk_core::security::tenant_context::{TenantContext as CoreTenantContext, TenantId};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::bridge::Bridge;
use crate::errors::{Failure, Family};
use crate::values::{
    ApprovalRequest, AuditEntry, AuditReceipt, Decision, DeploymentDecision, LabelMove,
    ModelVersion, Principal, PromptChange, PromptVersion, Registration, VerifyReport, py_to_json,
    role_of,
};

/// Most audit entries one `entries` call returns.
const MAX_ENTRIES_PER_CALL: usize = 1_000;

/// The caller's correlation id, or a fresh UUIDv7 one.
fn correlation(id: Option<String>) -> Result<CorrelationId, Failure> {
    match id {
        None => Ok(CorrelationId::generate()),
        Some(s) => CorrelationId::parse(&s)
            .map_err(|e| Failure::new(Family::Validation, "invalid_correlation_id", e.to_string())),
    }
}

fn any<T>(p: Py<T>) -> Py<PyAny> {
    p.into_any()
}

/// `AuditLogger`: appends application records to the tenant's ledger, reads and verifies it.
#[pyclass(frozen, module = "airisk", name = "AuditLogger")]
#[derive(Debug)]
pub struct AuditLogger {
    pub(crate) bridge: Bridge,
    pub(crate) inner: Arc<CoreLogger>,
    pub(crate) verifier: Option<LedgerVerifier>,
}

#[pymethods]
impl AuditLogger {
    /// The specification's `log_action`. `actor` is the acting `Principal` (its actor id is the
    /// record's actor); `tenant_id` is the tenant the record is for and must be the principal's
    /// (else `TenantIsolationError`, recorded as a denial). Returns the `AuditReceipt` (the
    /// specification's `None`-returning callers may ignore it).
    #[pyo3(signature = (*, actor, tenant_id, action, resource_type, resource_id, reason = None, correlation_id, metadata = None))]
    #[allow(clippy::too_many_arguments)] // the specification's keyword arguments, one per field
    fn log_action<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        tenant_id: String,
        action: String,
        resource_type: String,
        resource_id: String,
        reason: Option<String>,
        correlation_id: String,
        metadata: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = actor.inner.clone();
        let metadata = match metadata {
            Some(m) if !m.is_none() => Some(py_to_json(&m)?),
            _ => None,
        };
        let input = AuditEventInput {
            actor: principal.actor().as_str().to_owned(),
            tenant_id,
            action,
            resource_type,
            resource_id,
            reason,
            correlation_id,
            metadata,
        };
        let logger = self.inner.clone();
        self.bridge.awaitable(
            py,
            async move {
                logger
                    .log_action(&principal, input)
                    .await
                    .map_err(Failure::from)
            },
            |py, r| AuditReceipt::py(py, &r).map(any),
        )
    }

    /// Up to `limit` (at most 1,000) records of the principal's tenant from `from_seq` on, as
    /// stored (`audit.read`).
    #[pyo3(signature = (*, actor, from_seq = 0, limit = 100))]
    fn entries<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        from_seq: u64,
        limit: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = actor.inner.clone();
        RbacService::new()
            .check_permission(principal.role(), Action::AuditRead)
            .map_err(Failure::from)?;
        let logger = self.inner.clone();
        let limit = limit.min(MAX_ENTRIES_PER_CALL);
        self.bridge.awaitable(
            py,
            async move {
                let stored = logger
                    .repository()
                    .entries(principal.tenant(), from_seq, limit)
                    .await
                    .map_err(Failure::from)?;
                stored
                    .into_iter()
                    .map(AuditEntry::decode)
                    .collect::<Result<Vec<_>, _>>()
            },
            |py, entries| {
                let items = entries
                    .into_iter()
                    .map(|e| Py::new(py, e))
                    .collect::<PyResult<Vec<_>>>()?;
                Ok(PyTuple::new(py, items)?.into_any().unbind())
            },
        )
    }

    /// Recomputes the principal's tenant's whole ledger and checks every signed checkpoint with
    /// this kernel's verifier key (`audit.verify`).
    #[pyo3(signature = (*, actor))]
    fn verify<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = actor.inner.clone();
        RbacService::new()
            .check_permission(principal.role(), Action::AuditVerify)
            .map_err(Failure::from)?;
        let logger = self.inner.clone();
        let verifier = self.verifier.clone();
        self.bridge.awaitable(
            py,
            async move {
                logger
                    .verify(principal.tenant(), verifier.as_ref(), None, |_, _| {})
                    .await
                    .map_err(Failure::from)
            },
            |py, r| Ok(Py::new(py, VerifyReport::from_core(&r))?.into_any()),
        )
    }

    /// Signs a checkpoint of the principal's tenant's ledger now (`audit.checkpoint`); returns the
    /// signed note text.
    #[pyo3(signature = (*, actor))]
    fn checkpoint<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = actor.inner.clone();
        RbacService::new()
            .check_permission(principal.role(), Action::AuditCheckpoint)
            .map_err(Failure::from)?;
        let logger = self.inner.clone();
        self.bridge.awaitable(
            py,
            async move {
                logger
                    .checkpoint(principal.tenant())
                    .await
                    .map_err(Failure::from)
            },
            |py, c| Ok(c.note.into_pyobject(py)?.into_any().unbind()),
        )
    }

    /// The ledger's verifier key (`name+hexkeyid+base64`), what auditors check checkpoints with.
    #[getter]
    fn verifier_key(&self) -> Option<String> {
        self.inner.verifier_key()
    }
}

/// `ModelRegistry`: register, approve (four eyes), reject, read, and the deployment gate.
#[pyclass(frozen, module = "airisk", name = "ModelRegistry")]
#[derive(Debug)]
pub struct ModelRegistry {
    pub(crate) bridge: Bridge,
    pub(crate) inner: Arc<CoreModels>,
}

#[pymethods]
impl ModelRegistry {
    /// Registers a model version, PENDING, with its approval request (`model.register`, admin
    /// only). Returns a `Registration`.
    #[pyo3(signature = (*, actor, name, version, checksum, artifact_uri, justification, metadata = None, required_approvals = 1, expires_in_seconds = None, correlation_id = None))]
    #[allow(clippy::too_many_arguments)] // keyword arguments, one per field of the registration
    fn register_model<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        name: String,
        version: String,
        checksum: String,
        artifact_uri: String,
        justification: String,
        metadata: Option<Bound<'py, PyAny>>,
        required_approvals: u32,
        expires_in_seconds: Option<i64>,
        correlation_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = actor.inner.clone();
        let correlation = correlation(correlation_id)?;
        let metadata = match metadata {
            Some(m) if !m.is_none() => Some(py_to_json(&m)?),
            _ => None,
        };
        let input = RegisterModel {
            name,
            version,
            checksum,
            artifact_uri,
            metadata,
            justification,
            required_approvals: Some(required_approvals),
            expires_in_seconds,
        };
        let models = self.inner.clone();
        self.bridge.awaitable(
            py,
            async move {
                models
                    .register_model(&principal, &correlation, input)
                    .await
                    .map_err(Failure::from)
            },
            |py, r| {
                Ok(Py::new(
                    py,
                    Registration {
                        model: ModelVersion::py(py, r.model)?,
                        request: ApprovalRequest::py(py, r.request)?,
                        receipts: AuditReceipt::tuple(py, &r.receipts)?,
                    },
                )?
                .into_any())
            },
        )
    }

    /// Approves a model version (`model.approve`): a human other than the registrant. Returns the
    /// `ApprovalRequest` after the approval; approving a decided model raises `ApprovalError`
    /// (kind `not_pending`).
    #[pyo3(signature = (*, actor, name, version, reason, correlation_id = None))]
    fn approve_model<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        name: String,
        version: String,
        reason: String,
        correlation_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = actor.inner.clone();
        let correlation = correlation(correlation_id)?;
        let models = self.inner.clone();
        self.bridge.awaitable(
            py,
            async move {
                models
                    .approve_model(&principal, &correlation, &name, &version, &reason)
                    .await
                    .map_err(Failure::from)
            },
            |py, r| ApprovalRequest::py(py, r).map(any),
        )
    }

    /// Rejects a model version (`model.reject`). Returns the `ApprovalRequest` after it.
    #[pyo3(signature = (*, actor, name, version, reason, correlation_id = None))]
    fn reject_model<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        name: String,
        version: String,
        reason: String,
        correlation_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = actor.inner.clone();
        let correlation = correlation(correlation_id)?;
        let models = self.inner.clone();
        self.bridge.awaitable(
            py,
            async move {
                models
                    .reject_model(&principal, &correlation, &name, &version, &reason)
                    .await
                    .map_err(Failure::from)
            },
            |py, r| ApprovalRequest::py(py, r).map(any),
        )
    }

    /// Reads one model version of the principal's tenant (`model.view`); another tenant's model
    /// is `ModelRegistryError` kind `not_found`, like a missing one.
    #[pyo3(signature = (*, actor, name, version))]
    fn get_model<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        name: String,
        version: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = actor.inner.clone();
        let models = self.inner.clone();
        self.bridge.awaitable(
            py,
            async move {
                models
                    .get_model(&principal, &name, &version)
                    .await
                    .map_err(Failure::from)
            },
            |py, m| ModelVersion::py(py, m).map(any),
        )
    }

    /// The deployment gate (`model.authorize_deployment`): authorised only for an APPROVED model
    /// whose registered checksum equals `artifact_sha256`. Every answer is audited. Returns a
    /// `DeploymentDecision`; a refusal on the merits is `authorized=False`, not an exception.
    #[pyo3(signature = (*, actor, name, version, artifact_sha256, correlation_id = None))]
    fn authorize_deployment<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        name: String,
        version: String,
        artifact_sha256: String,
        correlation_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = actor.inner.clone();
        let correlation = correlation(correlation_id)?;
        let models = self.inner.clone();
        self.bridge.awaitable(
            py,
            async move {
                models
                    .authorize_deployment(
                        &principal,
                        &correlation,
                        &name,
                        &version,
                        &artifact_sha256,
                    )
                    .await
                    .map_err(Failure::from)
            },
            |py, d| {
                let decision = match d {
                    Deployment::Authorized { receipt, .. } => DeploymentDecision {
                        authorized: true,
                        reason: None,
                        receipt: Some(AuditReceipt::py(py, &receipt)?),
                    },
                    Deployment::Denied { reason } => DeploymentDecision {
                        authorized: false,
                        reason: Some(reason.to_string()),
                        receipt: None,
                    },
                };
                Ok(Py::new(py, decision)?.into_any())
            },
        )
    }
}

/// `PromptRegistry`: immutable, incrementing prompt versions and approved label moves.
#[pyclass(frozen, module = "airisk", name = "PromptRegistry")]
#[derive(Debug)]
pub struct PromptRegistry {
    pub(crate) bridge: Bridge,
    pub(crate) inner: Arc<CorePrompts>,
}

fn prompt_change(
    py: Python<'_>,
    c: airisk_core::governance::prompt_registry::PromptChange,
) -> PyResult<Py<PyAny>> {
    Ok(Py::new(
        py,
        PromptChange {
            version: PromptVersion::py(py, c.version)?,
            receipts: AuditReceipt::tuple(py, &c.receipts)?,
        },
    )?
    .into_any())
}

#[pymethods]
impl PromptRegistry {
    /// Creates a prompt at version 1 (`prompt.register`). Returns a `PromptChange`.
    /// `change_reason` defaults to "initial version".
    #[pyo3(signature = (*, actor, name, template, change_reason = None, correlation_id = None))]
    fn register_prompt<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        name: String,
        template: String,
        change_reason: Option<String>,
        correlation_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = actor.inner.clone();
        let correlation = correlation(correlation_id)?;
        let change_reason = change_reason.unwrap_or_else(|| "initial version".to_owned());
        let prompts = self.inner.clone();
        self.bridge.awaitable(
            py,
            async move {
                prompts
                    .register_prompt(&principal, &correlation, &name, &template, &change_reason)
                    .await
                    .map_err(Failure::from)
            },
            prompt_change,
        )
    }

    /// Adds version n+1 (`prompt.update`); earlier versions never change. An identical template
    /// is `PromptRegistryError` kind `no_change`.
    #[pyo3(signature = (*, actor, name, template, change_reason, correlation_id = None))]
    fn update_prompt<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        name: String,
        template: String,
        change_reason: String,
        correlation_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = actor.inner.clone();
        let correlation = correlation(correlation_id)?;
        let prompts = self.inner.clone();
        self.bridge.awaitable(
            py,
            async move {
                prompts
                    .update_prompt(&principal, &correlation, &name, &template, &change_reason)
                    .await
                    .map_err(Failure::from)
            },
            prompt_change,
        )
    }

    /// Reads a version (`prompt.view`): by `version` number, by `label`, or the latest when
    /// neither is given (giving both is a `ValidationError`).
    #[pyo3(signature = (*, actor, name, version = None, label = None))]
    fn get_prompt<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        name: String,
        version: Option<u32>,
        label: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let selector = match (version, label) {
            (Some(v), None) => PromptSelector::Version(v),
            (None, Some(l)) => PromptSelector::Label(l),
            (None, None) => PromptSelector::Latest,
            (Some(_), Some(_)) => {
                return Err(Failure::new(
                    Family::Validation,
                    "invalid",
                    "give version or label, not both",
                )
                .into());
            }
        };
        let principal = actor.inner.clone();
        let prompts = self.inner.clone();
        self.bridge.awaitable(
            py,
            async move {
                prompts
                    .get_prompt(&principal, &name, &selector)
                    .await
                    .map_err(Failure::from)
            },
            |py, p| PromptVersion::py(py, p).map(any),
        )
    }

    /// Points `label` (e.g. `production`) at `version` (`prompt.move_label`); needs an APPROVED,
    /// unused approval request for exactly that move (else kind `move_not_approved`, recorded as
    /// a denial). Returns a `LabelMove`.
    #[pyo3(signature = (*, actor, name, label, version, correlation_id = None))]
    fn move_label<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        name: String,
        label: String,
        version: u32,
        correlation_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = actor.inner.clone();
        let correlation = correlation(correlation_id)?;
        let prompts = self.inner.clone();
        self.bridge.awaitable(
            py,
            async move {
                prompts
                    .move_label(&principal, &correlation, &name, &label, version)
                    .await
                    .map_err(Failure::from)
            },
            |py, m| Ok(Py::new(py, LabelMove::from_core(&m))?.into_any()),
        )
    }
}

/// `ApprovalWorkflow`: open, approve, reject and cancel approval requests (four eyes).
#[pyclass(frozen, module = "airisk", name = "ApprovalWorkflow")]
#[derive(Debug)]
pub struct ApprovalWorkflow {
    pub(crate) bridge: Bridge,
    pub(crate) inner: Arc<CoreWorkflow>,
}

fn parse_request_id(id: &str) -> Result<uuid::Uuid, Failure> {
    uuid::Uuid::parse_str(id).map_err(|_| {
        Failure::new(
            Family::Validation,
            "invalid_request_id",
            "request_id must be a UUID",
        )
    })
}

fn decision(
    py: Python<'_>,
    d: airisk_core::governance::approval_workflow::ApprovalChange,
) -> PyResult<Py<PyAny>> {
    Ok(Py::new(
        py,
        Decision {
            request: ApprovalRequest::py(py, d.request)?,
            receipts: AuditReceipt::tuple(py, &d.receipts)?,
        },
    )?
    .into_any())
}

#[pymethods]
impl ApprovalWorkflow {
    /// Opens a PENDING request to point prompt `prompt_name`'s `label` at `prompt_version`
    /// (`approval.request`). A model's request is opened by `register_model`. Returns a
    /// `Decision` (the new request and its receipt).
    #[pyo3(signature = (*, actor, prompt_name, prompt_version, label, justification, required_approvals = 1, expires_in_seconds = None, correlation_id = None))]
    #[allow(clippy::too_many_arguments)] // keyword arguments, one per field of the request
    fn request_approval<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        prompt_name: String,
        prompt_version: u32,
        label: String,
        justification: String,
        required_approvals: u32,
        expires_in_seconds: Option<i64>,
        correlation_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = actor.inner.clone();
        let correlation = correlation(correlation_id)?;
        let expires_in = expires_in_seconds.map(chrono::Duration::seconds);
        let new = NewApprovalRequest {
            subject: RequestedSubject::PromptLabel {
                name: prompt_name,
                version: prompt_version,
                label,
            },
            justification,
            required_approvals,
            expires_in,
        };
        let workflow = self.inner.clone();
        self.bridge.awaitable(
            py,
            async move {
                workflow
                    .request_approval(&principal, &correlation, new)
                    .await
                    .map_err(Failure::from)
            },
            decision,
        )
    }

    /// Approves (`approval.approve`): a human, not the requester, while PENDING.
    #[pyo3(signature = (*, actor, request_id, reason, correlation_id = None))]
    fn approve<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        request_id: &str,
        reason: String,
        correlation_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.decide(
            py,
            actor,
            request_id,
            reason,
            correlation_id,
            Verdict::Approve,
        )
    }

    /// Rejects (`approval.reject`): a human, not the requester, while PENDING.
    #[pyo3(signature = (*, actor, request_id, reason, correlation_id = None))]
    fn reject<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        request_id: &str,
        reason: String,
        correlation_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.decide(
            py,
            actor,
            request_id,
            reason,
            correlation_id,
            Verdict::Reject,
        )
    }

    /// Withdraws one's own PENDING request (`approval.cancel`).
    #[pyo3(signature = (*, actor, request_id, reason, correlation_id = None))]
    fn cancel<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        request_id: &str,
        reason: String,
        correlation_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.decide(
            py,
            actor,
            request_id,
            reason,
            correlation_id,
            Verdict::Cancel,
        )
    }

    /// Reads a request of the principal's tenant (`approval.view`).
    #[pyo3(signature = (*, actor, request_id))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        request_id: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = actor.inner.clone();
        let id = parse_request_id(request_id)?;
        let workflow = self.inner.clone();
        self.bridge.awaitable(
            py,
            async move { workflow.get(&principal, id).await.map_err(Failure::from) },
            |py, r| ApprovalRequest::py(py, r).map(any),
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum Verdict {
    Approve,
    Reject,
    Cancel,
}

impl ApprovalWorkflow {
    fn decide<'py>(
        &self,
        py: Python<'py>,
        actor: PyRef<'py, Principal>,
        request_id: &str,
        reason: String,
        correlation_id: Option<String>,
        verdict: Verdict,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = actor.inner.clone();
        let correlation = correlation(correlation_id)?;
        let id = parse_request_id(request_id)?;
        let workflow = self.inner.clone();
        self.bridge.awaitable(
            py,
            async move {
                let decided = match verdict {
                    Verdict::Approve => {
                        workflow
                            .approve(&principal, &correlation, id, &reason)
                            .await
                    }
                    Verdict::Reject => workflow.reject(&principal, &correlation, id, &reason).await,
                    Verdict::Cancel => workflow.cancel(&principal, &correlation, id, &reason).await,
                };
                decided.map_err(Failure::from)
            },
            decision,
        )
    }
}

/// `RBACService`: the seed's matrix over the kernel's 20 actions. Synchronous, as specified.
#[pyclass(frozen, module = "airisk", name = "RBACService")]
#[derive(Debug, Default)]
pub struct RbacServicePy;

#[pymethods]
impl RbacServicePy {
    #[new]
    fn new() -> Self {
        RbacServicePy
    }

    /// Returns None when `role` (an `airisk.Role` or its string) may perform `action` (a dotted
    /// action name such as `"model.register"`); raises `AuthorizationError` otherwise, also for
    /// an unknown role or action (kinds `denied`, `unknown_role`, `unknown_action`).
    fn check_permission(&self, role: &Bound<'_, PyAny>, action: &str) -> PyResult<()> {
        let role = role_of(role)?;
        let action: Action = action.parse().map_err(Failure::from)?;
        RbacService::new()
            .check_permission(role, action)
            .map_err(Failure::from)?;
        Ok(())
    }

    /// Every action name the kernel knows, in declaration order.
    #[staticmethod]
    fn actions() -> Vec<&'static str> {
        Action::ALL.iter().map(|a| a.as_str()).collect()
    }
}

/// `TenantContext`: the tenant wall. Synchronous, as specified.
#[pyclass(frozen, module = "airisk", name = "TenantContext")]
#[derive(Debug, Default)]
pub struct TenantContextPy;

#[pymethods]
impl TenantContextPy {
    #[new]
    fn new() -> Self {
        TenantContextPy
    }

    /// Returns None when both are the same tenant; raises `TenantIsolationError` otherwise (and
    /// `ValidationError` for a string that is not a tenant id at all).
    #[staticmethod]
    fn validate_access(resource_tenant: &str, request_tenant: &str) -> PyResult<()> {
        let resource = TenantId::parse(resource_tenant).map_err(Failure::from)?;
        let request = TenantId::parse(request_tenant).map_err(Failure::from)?;
        CoreTenantContext::validate_access(&resource, &request).map_err(Failure::from)?;
        Ok(())
    }
}

/// The encryption wrapper: AES-256-GCM under the keyring `AIRISK_ENCRYPTION_KEYS` names.
#[pyclass(frozen, module = "airisk", name = "EncryptionService")]
#[derive(Debug)]
pub struct EncryptionService {
    pub(crate) inner: Arc<Encryptor>,
}

#[pymethods]
impl EncryptionService {
    /// A wrapper over `keys` (`kid:base64key[,kid:base64key…]`, the first one seals) or, when
    /// None, over the `AIRISK_ENCRYPTION_KEYS` environment variable. Raises `EncryptionError`
    /// kind `key_missing` when there is no key, `key_invalid` when it does not parse.
    #[new]
    #[pyo3(signature = (keys = None))]
    fn new(keys: Option<String>) -> PyResult<Self> {
        let keys = keys.map(zeroize::Zeroizing::new);
        let encryptor = match keys {
            Some(k) => Encryptor::from_env_value(&k),
            None => Encryptor::from_env(),
        }
        .map_err(Failure::from)?;
        Ok(EncryptionService {
            inner: Arc::new(encryptor),
        })
    }

    /// Seals `data`: `v1.<kid>.<base64url(nonce ‖ ciphertext ‖ tag)>`.
    fn encrypt(&self, data: &str) -> PyResult<String> {
        Ok(self.inner.encrypt(data).map_err(Failure::from)?)
    }

    /// Opens a value `encrypt` sealed; a changed byte, a wrong or unknown key raises
    /// `EncryptionError`.
    fn decrypt(&self, data: &str) -> PyResult<String> {
        Ok(self.inner.decrypt(data).map_err(Failure::from)?)
    }

    /// The key id new values are sealed under.
    #[getter]
    fn primary_key_id(&self) -> String {
        self.inner.keyring().primary_kid().as_str().to_owned()
    }

    fn __repr__(&self) -> String {
        format!(
            "EncryptionService(primary_key_id={:?})",
            self.primary_key_id()
        )
    }
}

//! The values Python sees: the principal it passes in and the immutable results it gets back.
//!
//! Every class is `frozen`: assigning an attribute raises `AttributeError`, as a frozen dataclass
//! does. Collections come back as tuples and JSON objects as fresh dicts on every access, so no
//! result can be changed through what it hands out.

use airisk_core::governance::approval_workflow::{ApprovalRequest as CoreRequest, Subject};
use airisk_core::governance::audit_record::{AuditReceipt as CoreReceipt, AuditRecord};
use airisk_core::governance::audit_verification::VerifyReport as CoreVerifyReport;
use airisk_core::governance::model_registry::ModelVersion as CoreModel;
use airisk_core::governance::prompt_registry::{
    LabelMove as CoreLabelMove, PromptVersion as CorePrompt,
};
use airisk_core::ports::StoredEntry;
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::{
    ActorId, Principal as CorePrincipal, PrincipalKind, TenantId,
};
use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::errors::{Failure, Family};

/// Parses a role given as an `airisk.Role` member (its `.value`) or as its string. Exact match:
/// `"Admin"` or `"root"` is an `AuthorizationError` (kind `unknown_role`).
pub fn role_of(obj: &Bound<'_, PyAny>) -> Result<Role, Failure> {
    let text: String = match obj.extract::<String>() {
        Ok(s) => s,
        Err(_) => obj
            .getattr("value")
            .and_then(|v| v.extract::<String>())
            .map_err(|_| {
                Failure::new(
                    Family::Authorization,
                    "unknown_role",
                    "role must be an airisk.Role or one of the strings admin, analyst, approver, viewer",
                )
            })?,
    };
    text.parse::<Role>().map_err(Failure::from)
}

/// The `airisk.Role` member for `role`.
pub fn role_to_py(py: Python<'_>, role: Role) -> PyResult<Py<PyAny>> {
    Ok(py
        .import("airisk")?
        .getattr("Role")?
        .call1((role.as_str(),))?
        .unbind())
}

/// Who is acting: `Principal(actor=..., tenant_id=..., role=Role.ADMIN, human=True)`.
///
/// Build it from a verified token, never from a request body. `human` defaults to False: a caller
/// is a person only when its credential positively says so, and only a person approves.
#[pyclass(frozen, module = "airisk", name = "Principal")]
#[derive(Debug, Clone)]
pub struct Principal {
    pub(crate) inner: CorePrincipal,
}

#[pymethods]
impl Principal {
    #[new]
    #[pyo3(signature = (*, actor, tenant_id, role, human = false))]
    fn new(actor: &str, tenant_id: &str, role: &Bound<'_, PyAny>, human: bool) -> PyResult<Self> {
        // The one canonical identity (NFKC, lower case): the same rule as a token's `sub`.
        let actor = ActorId::canonical(actor).map_err(Failure::from)?;
        let tenant = TenantId::parse(tenant_id).map_err(Failure::from)?;
        let role = role_of(role)?;
        let inner = if human {
            CorePrincipal::human(actor, tenant, role)
        } else {
            CorePrincipal::service(actor, tenant, role)
        };
        Ok(Principal { inner })
    }

    /// The acting identity.
    #[getter]
    fn actor(&self) -> &str {
        self.inner.actor().as_str()
    }

    /// The tenant the principal acts in.
    #[getter]
    fn tenant_id(&self) -> &str {
        self.inner.tenant().as_str()
    }

    /// The principal's role, an `airisk.Role`.
    #[getter]
    fn role(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        role_to_py(py, self.inner.role())
    }

    /// Whether the principal is a person (only persons approve).
    #[getter]
    fn human(&self) -> bool {
        self.inner.kind() == PrincipalKind::Human
    }

    fn __repr__(&self) -> String {
        format!(
            "Principal(actor={:?}, tenant_id={:?}, role=Role.{}, human={})",
            self.inner.actor().as_str(),
            self.inner.tenant().as_str(),
            self.inner.role().as_str().to_uppercase(),
            if self.human() { "True" } else { "False" }
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Principal>()
            .map(|o| o.get().inner == self.inner)
            .unwrap_or(false)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.hash(&mut h);
        h.finish()
    }
}

/// A JSON value as a fresh Python object (`json.loads`).
fn json_to_py(py: Python<'_>, value: &serde_json::Value) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| {
        PyErr::from(Failure::new(
            Family::Validation,
            "invalid_json",
            e.to_string(),
        ))
    })?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// A Python object as JSON (`json.dumps(allow_nan=False)`, then parsed): only what JSON can
/// represent passes.
pub fn py_to_json(obj: &Bound<'_, PyAny>) -> Result<serde_json::Value, Failure> {
    let invalid = |e: String| Failure::new(Family::Validation, "invalid_metadata", e);
    let kwargs = pyo3::types::PyDict::new(obj.py());
    kwargs
        .set_item("allow_nan", false)
        .map_err(|e| invalid(e.to_string()))?;
    let text: String = obj
        .py()
        .import("json")
        .and_then(|json| json.call_method("dumps", (obj,), Some(&kwargs)))
        .and_then(|s| s.extract())
        .map_err(|e| invalid(format!("metadata is not JSON-serialisable: {e}")))?;
    serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))
}

fn tuple_of_str<'a>(
    py: Python<'_>,
    items: impl IntoIterator<Item = &'a str>,
) -> PyResult<Py<PyTuple>> {
    let items: Vec<&str> = items.into_iter().collect();
    Ok(PyTuple::new(py, items)?.unbind())
}

/// The receipt of one appended audit record.
#[pyclass(frozen, get_all, module = "airisk", name = "AuditReceipt")]
#[derive(Debug)]
pub struct AuditReceipt {
    /// The record's id (UUIDv7).
    id: String,
    /// Its tenant.
    tenant_id: String,
    /// Its position in the tenant's ledger.
    seq: u64,
    /// SHA-256 leaf hash, hex.
    leaf_hash: String,
    /// When it was recorded (UTC).
    recorded_at: DateTime<Utc>,
}

#[pymethods]
impl AuditReceipt {
    fn __repr__(&self) -> String {
        format!(
            "AuditReceipt(tenant_id={:?}, seq={}, leaf_hash={:?})",
            self.tenant_id, self.seq, self.leaf_hash
        )
    }
}

impl AuditReceipt {
    /// The Python receipt of `r`.
    pub fn py(py: Python<'_>, r: &CoreReceipt) -> PyResult<Py<AuditReceipt>> {
        Py::new(
            py,
            AuditReceipt {
                id: r.id.to_string(),
                tenant_id: r.tenant_id.as_str().to_owned(),
                seq: r.seq,
                leaf_hash: r.leaf_hash.clone(),
                recorded_at: r.recorded_at,
            },
        )
    }

    /// A tuple of receipts.
    pub fn tuple(py: Python<'_>, rs: &[CoreReceipt]) -> PyResult<Py<PyTuple>> {
        let items = rs
            .iter()
            .map(|r| AuditReceipt::py(py, r))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyTuple::new(py, items)?.unbind())
    }
}

/// One audit record as stored: every field, the exact leaf bytes and the stored leaf hash.
#[pyclass(frozen, module = "airisk", name = "AuditEntry")]
#[derive(Debug)]
pub struct AuditEntry {
    seq: u64,
    leaf: Vec<u8>,
    leaf_hash: String,
    record: AuditRecord,
}

impl AuditEntry {
    /// Decodes a stored entry.
    pub fn decode(entry: StoredEntry) -> Result<Self, Failure> {
        let record = AuditRecord::from_leaf_bytes(&entry.leaf).map_err(|e| {
            Failure::new(
                Family::Store,
                "corrupt",
                format!("entry {}: {e}", entry.seq),
            )
        })?;
        Ok(AuditEntry {
            seq: entry.seq,
            leaf_hash: entry.leaf_hash.to_hex(),
            leaf: entry.leaf,
            record,
        })
    }
}

#[pymethods]
impl AuditEntry {
    /// Position in the tenant's ledger.
    #[getter]
    fn seq(&self) -> u64 {
        self.seq
    }
    /// The record's id.
    #[getter]
    fn id(&self) -> String {
        self.record.event().id().to_string()
    }
    /// Tenant.
    #[getter]
    fn tenant_id(&self) -> &str {
        self.record.event().tenant_id().as_str()
    }
    /// Who acted.
    #[getter]
    fn actor(&self) -> &str {
        self.record.event().actor().as_str()
    }
    /// What they did.
    #[getter]
    fn action(&self) -> &str {
        self.record.event().action()
    }
    /// `"success"` or `"denied"`.
    #[getter]
    fn outcome(&self) -> &'static str {
        self.record.event().outcome().as_str()
    }
    /// Kind of resource.
    #[getter]
    fn resource_type(&self) -> &str {
        self.record.event().resource_type()
    }
    /// Which resource.
    #[getter]
    fn resource_id(&self) -> &str {
        self.record.event().resource_id()
    }
    /// Why, if given.
    #[getter]
    fn reason(&self) -> Option<&str> {
        self.record.event().reason()
    }
    /// Correlation id.
    #[getter]
    fn correlation_id(&self) -> &str {
        self.record.event().correlation_id().as_str()
    }
    /// Metadata (a fresh dict), if any.
    #[getter]
    fn metadata(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.record
            .event()
            .metadata()
            .map(|m| json_to_py(py, &serde_json::Value::Object(m.clone())))
            .transpose()
    }
    /// When it was recorded.
    #[getter]
    fn recorded_at(&self) -> DateTime<Utc> {
        self.record.recorded_at()
    }
    /// The exact leaf bytes (canonical JSON) the ledger hashes.
    #[getter]
    fn leaf<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.leaf)
    }
    /// The stored leaf hash, hex.
    #[getter]
    fn leaf_hash(&self) -> &str {
        &self.leaf_hash
    }
    fn __repr__(&self) -> String {
        format!(
            "AuditEntry(seq={}, actor={:?}, action={:?}, outcome={:?})",
            self.seq,
            self.actor(),
            self.action(),
            self.outcome()
        )
    }
}

/// The result of a full ledger verification.
#[pyclass(frozen, get_all, module = "airisk", name = "VerifyReport")]
#[derive(Debug)]
pub struct VerifyReport {
    /// Tenant.
    tenant_id: String,
    /// Entries checked.
    entries: u64,
    /// Recomputed root, hex (None for an empty ledger).
    root: Option<String>,
    /// Signed checkpoints checked.
    checkpoints_verified: u64,
    /// Whether everything checked out.
    intact: bool,
    /// The first problem, in words.
    problem: Option<String>,
    /// The first bad entry's seq, where one can be named.
    first_bad_seq: Option<u64>,
}

impl VerifyReport {
    /// The Python report of `r`.
    pub fn from_core(r: &CoreVerifyReport) -> Self {
        VerifyReport {
            tenant_id: r.tenant.as_str().to_owned(),
            entries: r.entries,
            root: r.root.map(|h| h.to_hex()),
            checkpoints_verified: r.checkpoints_verified,
            intact: r.is_intact(),
            problem: r.problem.as_ref().map(ToString::to_string),
            first_bad_seq: r.problem.as_ref().and_then(|p| p.seq()),
        }
    }
}

/// A registered model version.
#[pyclass(frozen, module = "airisk", name = "ModelVersion")]
#[derive(Debug)]
pub struct ModelVersion {
    inner: CoreModel,
}

#[pymethods]
impl ModelVersion {
    /// Tenant.
    #[getter]
    fn tenant_id(&self) -> &str {
        self.inner.tenant_id().as_str()
    }
    /// Model name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.model_name().as_ref()
    }
    /// Version label.
    #[getter]
    fn version(&self) -> &str {
        self.inner.version().as_ref()
    }
    /// Registered artifact SHA-256, hex.
    #[getter]
    fn checksum(&self) -> String {
        self.inner.checksum().to_hex()
    }
    /// Where the artifact lives.
    #[getter]
    fn artifact_uri(&self) -> &str {
        self.inner.artifact_uri()
    }
    /// Metadata (a fresh dict).
    #[getter]
    fn metadata(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        json_to_py(
            py,
            &serde_json::Value::Object(self.inner.metadata().clone()),
        )
    }
    /// Who registered it.
    #[getter]
    fn registered_by(&self) -> &str {
        self.inner.registered_by().as_str()
    }
    /// When.
    #[getter]
    fn created_at(&self) -> DateTime<Utc> {
        self.inner.created_at()
    }
    /// `"PENDING"`, `"APPROVED"` or `"REJECTED"`.
    #[getter]
    fn status(&self) -> &'static str {
        self.inner.status().as_str()
    }
    /// Whether it is APPROVED.
    #[getter]
    fn approved(&self) -> bool {
        self.inner.approved()
    }
    /// Who approved it (a tuple).
    #[getter]
    fn approved_by(&self, py: Python<'_>) -> PyResult<Py<PyTuple>> {
        tuple_of_str(py, self.inner.approved_by().iter().map(ActorId::as_str))
    }
    /// When it became APPROVED.
    #[getter]
    fn approved_at(&self) -> Option<DateTime<Utc>> {
        self.inner.approved_at()
    }
    /// Who rejected it.
    #[getter]
    fn rejected_by(&self) -> Option<&str> {
        self.inner.rejected_by().map(ActorId::as_str)
    }
    /// The approval request that decides it.
    #[getter]
    fn approval_request_id(&self) -> String {
        self.inner.approval_request_id().to_string()
    }
    fn __repr__(&self) -> String {
        format!(
            "ModelVersion(name={:?}, version={:?}, status={:?})",
            self.name(),
            self.version(),
            self.status()
        )
    }
}

impl ModelVersion {
    /// The Python model of `m`.
    pub fn py(py: Python<'_>, m: CoreModel) -> PyResult<Py<ModelVersion>> {
        Py::new(py, ModelVersion { inner: m })
    }
}

/// An approval request.
#[pyclass(frozen, module = "airisk", name = "ApprovalRequest")]
#[derive(Debug)]
pub struct ApprovalRequest {
    inner: CoreRequest,
}

#[pymethods]
impl ApprovalRequest {
    /// The request's id.
    #[getter]
    fn id(&self) -> String {
        self.inner.id().to_string()
    }
    /// Tenant.
    #[getter]
    fn tenant_id(&self) -> &str {
        self.inner.tenant_id().as_str()
    }
    /// `"model"` or `"prompt_label"`.
    #[getter]
    fn resource_type(&self) -> &'static str {
        self.inner.subject().resource_type()
    }
    /// `name@version` (model) or `name@version#label` (prompt label).
    #[getter]
    fn resource_id(&self) -> String {
        self.inner.subject().resource_id()
    }
    /// Who asked.
    #[getter]
    fn requested_by(&self) -> &str {
        self.inner.requested_by().as_str()
    }
    /// Why.
    #[getter]
    fn justification(&self) -> &str {
        self.inner.justification()
    }
    /// Distinct approvals needed.
    #[getter]
    fn required_approvals(&self) -> u32 {
        self.inner.required_approvals()
    }
    /// Who approved so far (a tuple).
    #[getter]
    fn approved_by(&self, py: Python<'_>) -> PyResult<Py<PyTuple>> {
        tuple_of_str(
            py,
            self.inner.approvals().iter().map(|a| a.approver.as_str()),
        )
    }
    /// Who rejected it.
    #[getter]
    fn rejected_by(&self) -> Option<&str> {
        self.inner.rejection().map(|d| d.by.as_str())
    }
    /// `"PENDING"`, `"APPROVED"`, `"REJECTED"`, `"EXPIRED"` or `"CANCELLED"`.
    #[getter]
    fn status(&self) -> &'static str {
        self.inner.status().as_str()
    }
    /// When it was opened.
    #[getter]
    fn created_at(&self) -> DateTime<Utc> {
        self.inner.created_at()
    }
    /// When it expires, if ever.
    #[getter]
    fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.inner.expires_at()
    }
    /// When it was decided.
    #[getter]
    fn decided_at(&self) -> Option<DateTime<Utc>> {
        self.inner.decided_at()
    }
    /// Optimistic-concurrency version (1 when opened).
    #[getter]
    fn version(&self) -> u64 {
        self.inner.version()
    }
    /// For a prompt-label request: (prompt name, version, label); None for a model.
    #[getter]
    fn prompt_label(&self) -> Option<(String, u32, String)> {
        match self.inner.subject() {
            Subject::PromptLabel {
                name,
                version,
                label,
            } => Some((name.to_string(), *version, label.to_string())),
            _ => None,
        }
    }
    fn __repr__(&self) -> String {
        format!(
            "ApprovalRequest(id={:?}, resource_id={:?}, status={:?})",
            self.id(),
            self.resource_id(),
            self.status()
        )
    }
}

impl ApprovalRequest {
    /// The Python request of `r`.
    pub fn py(py: Python<'_>, r: CoreRequest) -> PyResult<Py<ApprovalRequest>> {
        Py::new(py, ApprovalRequest { inner: r })
    }
}

/// What `register_model` returns: the PENDING model, its approval request and the receipts.
#[pyclass(frozen, get_all, module = "airisk", name = "Registration")]
#[derive(Debug)]
pub struct Registration {
    /// The model, PENDING.
    pub model: Py<ModelVersion>,
    /// The approval request that decides it.
    pub request: Py<ApprovalRequest>,
    /// Receipts of the audit records written with it (a tuple of `AuditReceipt`).
    pub receipts: Py<PyTuple>,
}

/// What an approval command returns: the request after it, and the receipts.
#[pyclass(frozen, get_all, module = "airisk", name = "Decision")]
#[derive(Debug)]
pub struct Decision {
    /// The request after the command.
    pub request: Py<ApprovalRequest>,
    /// Receipts of the audit records written with it.
    pub receipts: Py<PyTuple>,
}

/// A prompt version (immutable once written).
#[pyclass(frozen, module = "airisk", name = "PromptVersion")]
#[derive(Debug)]
pub struct PromptVersion {
    inner: CorePrompt,
}

#[pymethods]
impl PromptVersion {
    /// Tenant.
    #[getter]
    fn tenant_id(&self) -> &str {
        self.inner.tenant_id().as_str()
    }
    /// Prompt name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }
    /// Version number (1, 2, …).
    #[getter]
    fn version(&self) -> u32 {
        self.inner.version()
    }
    /// The template text.
    #[getter]
    fn template(&self) -> &str {
        self.inner.template()
    }
    /// SHA-256 of the template, hex.
    #[getter]
    fn template_sha256(&self) -> String {
        self.inner.template_sha256().to_hex()
    }
    /// Who wrote it.
    #[getter]
    fn author(&self) -> &str {
        self.inner.author().as_str()
    }
    /// Why.
    #[getter]
    fn change_reason(&self) -> &str {
        self.inner.change_reason()
    }
    /// When.
    #[getter]
    fn created_at(&self) -> DateTime<Utc> {
        self.inner.created_at()
    }
    fn __repr__(&self) -> String {
        format!(
            "PromptVersion(name={:?}, version={})",
            self.name(),
            self.version()
        )
    }
}

impl PromptVersion {
    /// The Python version of `p`.
    pub fn py(py: Python<'_>, p: CorePrompt) -> PyResult<Py<PromptVersion>> {
        Py::new(py, PromptVersion { inner: p })
    }
}

/// What `register_prompt` / `update_prompt` return: the version written and the receipts.
#[pyclass(frozen, get_all, module = "airisk", name = "PromptChange")]
#[derive(Debug)]
pub struct PromptChange {
    /// The version written.
    pub version: Py<PromptVersion>,
    /// Receipts.
    pub receipts: Py<PyTuple>,
}

/// A label move (`production` now points at a version).
#[pyclass(frozen, get_all, module = "airisk", name = "LabelMove")]
#[derive(Debug)]
pub struct LabelMove {
    /// Prompt.
    name: String,
    /// Label.
    label: String,
    /// Where it pointed before (None: new label).
    from_version: Option<u32>,
    /// Where it points now.
    to_version: u32,
    /// Who moved it.
    moved_by: String,
    /// When.
    moved_at: DateTime<Utc>,
    /// The approval request that allowed it.
    approval_request_id: String,
}

impl LabelMove {
    /// The Python move of `m`.
    pub fn from_core(m: &CoreLabelMove) -> Self {
        LabelMove {
            name: m.name.clone(),
            label: m.label.clone(),
            from_version: m.from_version,
            to_version: m.to_version,
            moved_by: m.moved_by.as_str().to_owned(),
            moved_at: m.moved_at,
            approval_request_id: m.approval_request_id.to_string(),
        }
    }
}

/// The deployment gate's answer.
#[pyclass(frozen, get_all, module = "airisk", name = "DeploymentDecision")]
#[derive(Debug)]
pub struct DeploymentDecision {
    /// Whether deployment is authorised.
    pub authorized: bool,
    /// Why not, in words (None when authorised).
    pub reason: Option<String>,
    /// The receipt of the authorisation record (None when denied).
    pub receipt: Option<Py<AuditReceipt>>,
}

//! Shared set-up for the governance tests: one in-memory store, a manual clock, the three services.

use std::sync::Arc;

use airisk_core::governance::approval_workflow::ApprovalWorkflow;
use airisk_core::governance::audit_record::{AuditRecord, Outcome};
use airisk_core::governance::model_registry::{ModelRegistry, RegisterModel, Registered};
use airisk_core::governance::prompt_registry::PromptRegistry;
use airisk_core::governance::service_context::ServiceContext;
use airisk_core::ports::{AuditRepository, UuidV7Generator};
use airisk_core::request::CorrelationId;
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::Principal;
use airisk_testkit::InMemoryStore;
use airisk_testkit::fixtures::{ManualClock, human, tenant};

pub const CHECKSUM: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
pub const OTHER_CHECKSUM: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

pub struct World {
    pub store: InMemoryStore,
    pub clock: Arc<ManualClock>,
    pub workflow: ApprovalWorkflow,
    pub models: ModelRegistry,
    pub prompts: PromptRegistry,
}

impl World {
    pub fn new() -> World {
        let clock = Arc::new(ManualClock::new());
        let store = InMemoryStore::new(clock.clone());
        let s = Arc::new(store.clone());
        let services = ServiceContext::new(s, clock.clone(), Arc::new(UuidV7Generator));
        World {
            workflow: ApprovalWorkflow::with_context(services.clone()),
            models: ModelRegistry::with_context(services.clone()),
            prompts: PromptRegistry::with_context(services),
            store,
            clock,
        }
    }

    /// Every audit record of `tenant_id`, decoded.
    pub async fn audit(&self, tenant_id: &str) -> Vec<AuditRecord> {
        self.store
            .entries(&tenant(tenant_id), 0, usize::MAX)
            .await
            .unwrap()
            .iter()
            .map(|e| AuditRecord::from_leaf_bytes(&e.leaf).unwrap())
            .collect()
    }

    /// (action, outcome) of every audit record of `tenant_id`.
    pub async fn audit_trail(&self, tenant_id: &str) -> Vec<(String, Outcome)> {
        self.audit(tenant_id)
            .await
            .iter()
            .map(|r| (r.event().action().to_owned(), r.event().outcome()))
            .collect()
    }

    pub async fn register(&self, who: &Principal, name: &str, version: &str) -> Registered {
        self.models
            .register_model(who, &corr(), register_input(name, version))
            .await
            .unwrap()
    }
}

pub fn register_input(name: &str, version: &str) -> RegisterModel {
    RegisterModel {
        name: name.into(),
        version: version.into(),
        checksum: CHECKSUM.into(),
        artifact_uri: format!("s3://models/{name}/{version}/model.onnx"),
        metadata: Some(serde_json::json!({"framework": "onnx"})),
        justification: "challenger beats champion on Q3 backtest".into(),
        required_approvals: None,
        expires_in_seconds: None,
    }
}

pub fn corr() -> CorrelationId {
    CorrelationId::generate()
}

/// Admin of acme: the only role that registers models (the role matrix).
pub fn admin() -> Principal {
    human("ada@acme.example", "acme", Role::Admin)
}
pub fn analyst() -> Principal {
    human("alice@acme.example", "acme", Role::Analyst)
}
pub fn approver() -> Principal {
    human("bob@acme.example", "acme", Role::Approver)
}
pub fn approver2() -> Principal {
    human("carol@acme.example", "acme", Role::Approver)
}
pub fn viewer() -> Principal {
    human("victor@acme.example", "acme", Role::Viewer)
}
/// An approver of another tenant.
pub fn globex_approver() -> Principal {
    human("gina@globex.example", "globex", Role::Approver)
}
pub fn globex_admin() -> Principal {
    human("gus@globex.example", "globex", Role::Admin)
}

/// Tenant acme's record of approval number `n` (resource `credit-risk-pd-<n>`) with `metadata`,
/// as `AuditEvent::parse` judges it.
pub fn approval_event(
    n: u64,
    metadata: serde_json::Value,
) -> Result<
    airisk_core::governance::audit_record::AuditEvent,
    airisk_core::governance::audit_record::AuditValidationError,
> {
    airisk_core::governance::audit_record::AuditEvent::parse(
        uuid::Uuid::now_v7(),
        Outcome::Success,
        airisk_core::governance::audit_record::AuditEventInput {
            actor: "alice@bank.example".into(),
            tenant_id: "acme".into(),
            action: "model.approve".into(),
            resource_type: "model".into(),
            resource_id: format!("credit-risk-pd-{n}"),
            reason: Some("four-eyes approval".into()),
            correlation_id: format!("req-{n}"),
            metadata: Some(metadata),
        },
    )
}

/// `future`, under a one-hour deadline on tokio's clock. The tests that verify ledgers run with
/// the clock paused (`#[tokio::test(start_paused = true)]`): as soon as nothing can run, the clock
/// jumps to the deadline, so a verification waiting on something that never comes fails its test
/// at once instead of hanging it. No wall-clock time is measured.
pub async fn finishes<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(std::time::Duration::from_secs(3_600), future)
        .await
        .expect("waited for something that never came")
}

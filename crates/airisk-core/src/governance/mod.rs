//! Governance: the audit ledger's records and logger, the approval workflow (four eyes), the
//! model registry and the prompt registry. Every state-changing command commits its state change
//! and its audit record in one transaction through [`crate::ports::GovernanceStore::commit`].

pub mod approval_request;
pub mod approval_workflow;
pub mod audit_logger;
pub mod audit_record;
pub mod audit_verification;
pub mod model_registry;
pub mod model_version;
pub mod prompt_registry;
pub mod service_context;
pub mod visible_text;

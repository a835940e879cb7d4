//! Governance: the audit ledger's records and logger (and, as they land, model registry, prompt
//! registry and approval workflow).

pub mod audit_logger;
pub mod audit_record;

//! Governance: the audit logger (and, as they land, model registry, prompt registry and approval
//! workflow).

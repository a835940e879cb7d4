//! Adapters that connect external registries to the kernel. They drive the same core services
//! as the HTTP API, under the same RBAC, tenant wall and ledger.

pub mod mlflow;

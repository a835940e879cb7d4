//! Security: who may do what ([`rbac`]), to whose data ([`tenant_context`]), and how sensitive
//! values are sealed at rest ([`encryption`]).

pub mod data_subject;
pub mod encryption;
pub mod envelope;
pub mod key_custody;
pub mod rbac;
pub mod seal_existing;
pub mod tenant_context;

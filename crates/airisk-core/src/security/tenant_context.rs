//! Tenant isolation: validated identifiers and the principal every service method takes.
//!
//! A [`TenantId`] or [`ActorId`] that exists is valid: checks happen once, at the edge, in `parse`.
//! [`TenantContext::validate_access`] is the application-level wall between tenants; stores add a
//! second one (every query is scoped by tenant, and PostgreSQL row-level security).

use serde::{Deserialize, Serialize};

use super::rbac::Role;
use crate::newtype::validate_identifier;

/// Longest tenant id, in bytes.
pub const TENANT_ID_MAX_LEN: usize = 64;
/// Longest actor id, in bytes.
pub const ACTOR_ID_MAX_LEN: usize = 128;

/// A tenant identifier: 1 to 64 characters of ASCII lower-case letters, digits, `-` and `_`,
/// starting with a letter or digit.
///
/// Lower case only, with no normalisation: `Acme` is rejected rather than folded to `acme`, so two
/// spellings can never name one tenant in one place and two in another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// Validates `input` as a tenant id.
    ///
    /// # Errors
    /// [`IdentifierError`] saying which rule the input broke.
    pub fn parse(input: &str) -> Result<Self, IdentifierError> {
        validate_identifier(
            "tenant id",
            input,
            TENANT_ID_MAX_LEN,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_',
            "ASCII lower-case letters, digits, '-' and '_'",
        )?;
        Ok(TenantId(input.to_owned()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The identity of a person or service acting: 1 to 128 characters of ASCII letters, digits and
/// `.`, `_`, `-`, `@`, `:`, `+`, starting with a letter or digit (so e-mail addresses and
/// `svc:pipeline` style names fit).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActorId(String);

impl ActorId {
    /// Validates `input` as an actor id.
    ///
    /// # Errors
    /// [`IdentifierError`] saying which rule the input broke.
    pub fn parse(input: &str) -> Result<Self, IdentifierError> {
        validate_identifier(
            "actor id",
            input,
            ACTOR_ID_MAX_LEN,
            |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | ':' | '+'),
            "ASCII letters, digits and . _ - @ : +",
        )?;
        Ok(ActorId(input.to_owned()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::newtype::string_newtype!(TenantId, IdentifierError);
crate::newtype::string_newtype!(ActorId, IdentifierError);

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentifierError {
    /// The input is empty.
    #[error("{kind} must not be empty")]
    Empty {
        /// Which identifier (`"tenant id"`, `"actor id"`, …).
        kind: &'static str,
    },
    /// The input is longer than allowed.
    #[error("{kind} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Which identifier.
        kind: &'static str,
        /// The input's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input holds a character outside the allowed set, or starts with punctuation.
    #[error(
        "{kind} has a character outside {allowed} (or does not start with a letter or digit) at byte {position}"
    )]
    InvalidCharacter {
        /// Which identifier.
        kind: &'static str,
        /// Byte offset of the first offending character.
        position: usize,
        /// The allowed set, in words.
        allowed: &'static str,
    },
}

/// Whether a principal is a person or an automated service.
///
/// Only humans may approve: a pipeline or system account never counts as the second pair of eyes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person, authenticated as themselves.
    Human,
    /// An automated caller (CI pipeline, scheduler, the system itself).
    Service,
}

/// Who is acting: the authenticated actor, the tenant they act in, and their role.
///
/// Every service method takes one. It is built by the authentication layer (or a CLI operator's
/// flags) and is never read from a request body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    actor: ActorId,
    tenant: TenantId,
    role: Role,
    kind: PrincipalKind,
}

impl Principal {
    /// A human principal.
    pub fn human(actor: ActorId, tenant: TenantId, role: Role) -> Self {
        Principal {
            actor,
            tenant,
            role,
            kind: PrincipalKind::Human,
        }
    }

    /// A service (non-human) principal. It can never approve a request.
    pub fn service(actor: ActorId, tenant: TenantId, role: Role) -> Self {
        Principal {
            actor,
            tenant,
            role,
            kind: PrincipalKind::Service,
        }
    }

    /// The acting identity.
    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    /// The tenant the principal acts in.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The principal's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Person or service.
    pub fn kind(&self) -> PrincipalKind {
        self.kind
    }
}

/// A resource of one tenant was asked for in the context of another.
///
/// Services turn this into "not found" at their boundary, so a caller cannot tell another tenant's
/// resource from a missing one; it is kept distinct inside so it can be audited as a denial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant {request_tenant} may not access a resource of tenant {resource_tenant}")]
pub struct TenantIsolationError {
    /// The tenant that owns the resource.
    pub resource_tenant: TenantId,
    /// The tenant of the request.
    pub request_tenant: TenantId,
}

/// The tenant check.
#[derive(Debug, Clone, Copy, Default)]
pub struct TenantContext;

impl TenantContext {
    /// Allows access only when the resource belongs to the requesting tenant.
    ///
    /// # Errors
    /// [`TenantIsolationError`] on any mismatch.
    pub fn validate_access(
        resource_tenant: &TenantId,
        request_tenant: &TenantId,
    ) -> Result<(), TenantIsolationError> {
        if resource_tenant == request_tenant {
            Ok(())
        } else {
            Err(TenantIsolationError {
                resource_tenant: resource_tenant.clone(),
                request_tenant: request_tenant.clone(),
            })
        }
    }
}

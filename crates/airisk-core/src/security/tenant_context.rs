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

/// Longest raw identity accepted by [`ActorId::canonical`] before normalisation, in bytes
/// (normalising can only shorten a full-width or compatibility spelling to the 128-byte limit).
pub const ACTOR_ID_MAX_RAW_LEN: usize = 1024;

/// The identity of a person or service acting: 1 to 128 characters of ASCII letters, digits and
/// `.`, `_`, `-`, `@`, `:`, `+`, starting with a letter or digit (so e-mail addresses and
/// `svc:pipeline` style names fit).
///
/// # One canonical identity
///
/// People are compared by their *canonical* id: Unicode NFKC, then lower case, then NFKC again
/// (see [`ActorId::canonical`]), which must land in the ASCII set above. So `ADMIN1`, `Admin1`,
/// full-width `ａｄｍｉｎ１` and `admin¹` all name the person `admin1`, and a spelling that does not
/// fold into ASCII is refused rather than kept as a second identity. Every [`Principal`] holds the
/// canonical id (its constructors fold), and [`ActorId::same_identity`] is the one comparison the
/// four-eyes and quorum rules use, so ids stored before canonicalisation compare correctly too.
/// [`ActorId::parse`] keeps its input byte for byte: it also reads ids back from stored records,
/// whose bytes must not change.
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

    /// The canonical id of an identity as it enters from outside (a token's `sub`, an operator's
    /// flag): NFKC, lower case, NFKC again, then validated as by [`ActorId::parse`].
    ///
    /// Lower case (Rust's full Unicode `to_lowercase`) rather than Unicode case folding is enough
    /// here because the result must be ASCII: every character whose fold and lower case differ
    /// (`ß`, `İ`, `ŉ`, …) lower-cases to something outside ASCII and is refused, never kept as a
    /// distinct identity. Refusing is the fail-closed side.
    ///
    /// # Errors
    /// [`IdentifierError`]: too long before normalising (over [`ACTOR_ID_MAX_RAW_LEN`] bytes) or
    /// after, or a character that does not fold into the allowed ASCII set.
    pub fn canonical(input: &str) -> Result<Self, IdentifierError> {
        use unicode_normalization::UnicodeNormalization as _;
        if input.len() > ACTOR_ID_MAX_RAW_LEN {
            return Err(IdentifierError::TooLong {
                kind: "actor id",
                len: input.len(),
                max: ACTOR_ID_MAX_RAW_LEN,
            });
        }
        let once: String = input.nfkc().collect();
        let folded: String = once.to_lowercase().nfkc().collect();
        Self::parse(&folded)
    }

    /// This id in canonical form. An id that parsed is ASCII, where NFKC is the identity and
    /// lower case is the whole fold.
    #[must_use]
    pub fn to_canonical(&self) -> ActorId {
        ActorId(self.0.to_ascii_lowercase())
    }

    /// Whether two ids name the same identity: their canonical forms are equal. The comparison
    /// every "same person" rule (four eyes, quorum, requester-only) uses.
    pub fn same_identity(&self, other: &ActorId) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
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
/// The authentication layer makes a principal human only on a positive assertion in the token
/// (by default the claim `kind` = `human`); anything else is a service.
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
/// flags) and is never read from a request body. Its actor is always canonical (see [`ActorId`]):
/// the constructors fold it, so no principal can carry a case variant of someone's id.
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
            actor: actor.to_canonical(),
            tenant,
            role,
            kind: PrincipalKind::Human,
        }
    }

    /// A service (non-human) principal. It can never approve a request.
    pub fn service(actor: ActorId, tenant: TenantId, role: Role) -> Self {
        Principal {
            actor: actor.to_canonical(),
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

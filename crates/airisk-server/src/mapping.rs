//! Claim mapping: the tenant and role of a provider's token, from the claims the bank's identity
//! provider actually issues.
//!
//! # Rules (fail closed)
//!
//! * **Tenant**: a fixed tenant for the issuer (one provider per tenant), or the value of a claim
//!   (one shared provider). A token without the claim is refused.
//! * **Role**: the values of one claim (`roles`, `groups`, …; a string or a list of strings) are
//!   looked up, exactly, in a mapping table (`model-risk-approvers` → `approver`). Values not in
//!   the table are ignored. No mapped value → refused (403, audited). Several values mapping to
//!   the same role → that role. Several values mapping to **different** roles → refused as
//!   ambiguous, unless a precedence list is configured, in which case the first role of the list
//!   the token maps to is taken (and a token mapping only to roles outside the list is refused).
//!   Never the union: a role is one set of permissions, and granting the sum of two by accident
//!   is how segregation of duties is lost.
//! * **Identity**: the actor stays the provider's stable subject (`sub`, or the configured
//!   immutable claim such as `oid`), canonicalised; never an e-mail or display name.
//! * A refused mapping is an [`AuthError::NotMapped`]: 403 with the reason, and an `auth.refused`
//!   record (outcome `denied`) in the tenant's ledger when the tenant is known, else in the
//!   system ledger (tenant `system`).

use std::collections::BTreeMap;

use airisk_core::governance::audit_record::{AuditEvent, AuditEventInput, Outcome};
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::{ActorId, TenantId};

use crate::auth::{AuthConfigError, AuthError, Claims};
use crate::state::AppState;

/// The tenant under which refusals without a known tenant are recorded.
pub const SYSTEM_TENANT: &str = "system";

/// Where a token's tenant comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantSource {
    /// Every token of the issuer acts in this tenant.
    Fixed(TenantId),
    /// The tenant is the value of this claim.
    Claim(String),
}

/// How an issuer's claims become a tenant and a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    tenant: TenantSource,
    role_claim: String,
    roles: BTreeMap<String, Role>,
    precedence: Vec<Role>,
}

impl ClaimMapping {
    /// Tenant from `tenant`, role from the values of `role_claim` through `roles` (claim value →
    /// role name), with an optional `precedence` (role names, first wins) for tokens mapping to
    /// several roles.
    ///
    /// # Errors
    /// [`AuthConfigError::InvalidClaimMapping`] for an empty claim name or table, or an unknown
    /// role name.
    pub fn new(
        tenant: TenantSource,
        role_claim: &str,
        roles: &BTreeMap<String, String>,
        precedence: &[String],
    ) -> Result<Self, AuthConfigError> {
        let bad = |m: String| AuthConfigError::InvalidClaimMapping(m);
        if let TenantSource::Claim(c) = &tenant
            && c.trim().is_empty()
        {
            return Err(bad("the tenant claim name must not be empty".into()));
        }
        if role_claim.trim().is_empty() {
            return Err(bad("the role claim name must not be empty".into()));
        }
        if roles.is_empty() {
            return Err(bad(
                "the role table is empty: no token could be accepted".into()
            ));
        }
        let parse = |r: &str| {
            r.parse::<Role>()
                .map_err(|e| bad(format!("role {r:?}: {e}")))
        };
        let mut table = BTreeMap::new();
        for (value, role) in roles {
            table.insert(value.clone(), parse(role)?);
        }
        let precedence = precedence
            .iter()
            .map(|r| parse(r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ClaimMapping {
            tenant,
            role_claim: role_claim.trim().to_owned(),
            roles: table,
            precedence,
        })
    }

    /// Sets `claims.tenant` and `claims.role` from the mapping.
    ///
    /// # Errors
    /// [`AuthError::NotMapped`] with the reason (and the tenant, when known).
    pub fn apply(&self, claims: &mut Claims) -> Result<(), AuthError> {
        let subject = Some(claims.sub.clone());
        let tenant = match &self.tenant {
            TenantSource::Fixed(t) => t.as_str().to_owned(),
            TenantSource::Claim(name) => {
                let value = match name.as_str() {
                    "tenant" => Some(claims.tenant.clone()).filter(|t| !t.is_empty()),
                    other => claims
                        .extra
                        .get(other)
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned),
                };
                value.ok_or_else(|| AuthError::NotMapped {
                    reason: format!("the token has no {name} claim (the tenant)"),
                    tenant: None,
                    subject: subject.clone(),
                })?
            }
        };
        let not_mapped = |reason: String| AuthError::NotMapped {
            reason,
            tenant: Some(tenant.clone()),
            subject: subject.clone(),
        };
        let values: Vec<String> = match self.role_claim.as_str() {
            "role" => vec![claims.role.clone()],
            other => match claims.extra.get(other) {
                Some(serde_json::Value::String(s)) => vec![s.clone()],
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            },
        };
        let mut mapped: Vec<Role> = values
            .iter()
            .filter_map(|v| self.roles.get(v).copied())
            .collect();
        mapped.sort_by_key(|r| r.as_str());
        mapped.dedup();
        let role = match mapped.as_slice() {
            [] => {
                return Err(not_mapped(format!(
                    "none of the token's {} values is mapped to a role",
                    self.role_claim
                )));
            }
            [one] => *one,
            several => self
                .precedence
                .iter()
                .find(|r| several.contains(r))
                .copied()
                .ok_or_else(|| {
                    not_mapped(format!(
                        "the token's {} values map to several roles ({}) and no precedence \
                         decides between them",
                        self.role_claim,
                        several
                            .iter()
                            .map(|r| r.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?,
        };
        claims.tenant = tenant;
        claims.role = role.as_str().to_owned();
        Ok(())
    }
}

/// Records a refused mapping: an `auth.refused` record (outcome `denied`) in the tenant's ledger,
/// or the system ledger when no valid tenant is known. A failure to record is logged.
pub(crate) async fn record_refusal(state: &AppState, error: &AuthError, correlation: &str) {
    let AuthError::NotMapped {
        reason,
        tenant,
        subject,
    } = error
    else {
        return;
    };
    let tenant = tenant
        .as_deref()
        .and_then(|t| TenantId::parse(t).ok())
        .map_or_else(|| SYSTEM_TENANT.to_owned(), |t| t.as_str().to_owned());
    let actor = subject
        .as_deref()
        .and_then(|s| ActorId::canonical(s).ok())
        .map_or_else(|| "unknown".to_owned(), |a| a.as_str().to_owned());
    let input = AuditEventInput {
        actor: actor.clone(),
        tenant_id: tenant,
        action: "auth.refused".to_owned(),
        resource_type: "principal".to_owned(),
        resource_id: actor,
        reason: Some(reason.clone()),
        correlation_id: correlation.to_owned(),
        metadata: None,
    };
    match AuditEvent::parse(uuid::Uuid::now_v7(), Outcome::Denied, input) {
        Ok(event) => {
            if let Err(e) = state.audit().append(vec![event]).await {
                tracing::error!(error = %e, "auth: could not record a refused sign-in");
            }
        }
        Err(e) => tracing::error!(error = %e, "auth: could not record a refused sign-in"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests

    use super::*;

    fn claims(extra: serde_json::Value) -> Claims {
        let mut c = Claims::new("user-1", "", Role::Viewer, 60);
        c.tenant.clear();
        c.role.clear();
        if let serde_json::Value::Object(m) = extra {
            c.extra = m;
        }
        c
    }

    fn table() -> BTreeMap<String, String> {
        [
            ("model-risk-approvers", "approver"),
            ("model-risk-analysts", "analyst"),
            ("risk-readers", "viewer"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
    }

    #[test]
    fn one_mapped_group_gives_its_role_and_the_fixed_tenant() {
        let m = ClaimMapping::new(
            TenantSource::Fixed(TenantId::parse("bank-a").unwrap()),
            "groups",
            &table(),
            &[],
        )
        .unwrap();
        let mut c = claims(serde_json::json!({"groups": ["staff", "model-risk-approvers"]}));
        m.apply(&mut c).unwrap();
        assert_eq!((c.tenant.as_str(), c.role.as_str()), ("bank-a", "approver"));
    }

    #[test]
    fn unmapped_and_ambiguous_tokens_are_refused_unless_a_precedence_decides() {
        let m =
            ClaimMapping::new(TenantSource::Claim("tid".into()), "roles", &table(), &[]).unwrap();
        let mut c = claims(serde_json::json!({"tid": "bank-b", "roles": ["staff"]}));
        assert!(
            matches!(m.apply(&mut c), Err(AuthError::NotMapped { tenant: Some(t), .. }) if t == "bank-b")
        );
        let mut c = claims(serde_json::json!({"roles": ["risk-readers"]}));
        assert!(matches!(
            m.apply(&mut c),
            Err(AuthError::NotMapped { tenant: None, .. })
        ));
        let both = serde_json::json!({"tid": "bank-b", "roles": ["model-risk-approvers", "model-risk-analysts"]});
        let mut c = claims(both.clone());
        assert!(matches!(m.apply(&mut c), Err(AuthError::NotMapped { .. })));
        let m = ClaimMapping::new(
            TenantSource::Claim("tid".into()),
            "roles",
            &table(),
            &["analyst".to_owned(), "approver".to_owned()],
        )
        .unwrap();
        let mut c = claims(both);
        m.apply(&mut c).unwrap();
        assert_eq!(c.role, "analyst");
        // A pair outside the precedence list is still ambiguous.
        let mut c = claims(
            serde_json::json!({"tid": "b", "roles": ["model-risk-approvers", "risk-readers"]}),
        );
        assert!(m.apply(&mut c).is_ok());
        let m = ClaimMapping::new(
            TenantSource::Claim("tid".into()),
            "roles",
            &table(),
            &["admin".to_owned()],
        )
        .unwrap();
        let mut c = claims(
            serde_json::json!({"tid": "b", "roles": ["model-risk-approvers", "risk-readers"]}),
        );
        assert!(m.apply(&mut c).is_err());
    }

    #[test]
    fn bad_mappings_are_refused_at_configuration() {
        let fixed = || TenantSource::Fixed(TenantId::parse("a").unwrap());
        assert!(ClaimMapping::new(fixed(), "", &table(), &[]).is_err());
        assert!(ClaimMapping::new(fixed(), "roles", &BTreeMap::new(), &[]).is_err());
        let mut t = table();
        t.insert("x".into(), "root".into());
        assert!(ClaimMapping::new(fixed(), "roles", &t, &[]).is_err());
        assert!(ClaimMapping::new(fixed(), "roles", &table(), &["root".into()]).is_err());
        assert!(
            ClaimMapping::new(TenantSource::Claim(" ".into()), "roles", &table(), &[]).is_err()
        );
    }
}

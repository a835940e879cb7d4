//! Tenant ids, principals and the tenant wall.

use airisk_core::request::{CorrelationId, CorrelationIdError};
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::{
    ActorId, IdentifierError, Principal, PrincipalKind, TenantContext, TenantId,
    TenantIsolationError,
};
use proptest::prelude::*;

fn t(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

#[test]
fn a_matching_tenant_passes() {
    assert_eq!(
        TenantContext::validate_access(&t("acme"), &t("acme")),
        Ok(())
    );
}

#[test]
fn a_mismatched_tenant_raises_tenant_isolation_error() {
    let err = TenantContext::validate_access(&t("acme"), &t("globex")).unwrap_err();
    assert_eq!(
        err,
        TenantIsolationError {
            resource_tenant: t("acme"),
            request_tenant: t("globex")
        }
    );
    assert!(err.to_string().contains("globex"));
}

#[test]
fn cross_tenant_access_raises_in_both_directions_and_for_lookalikes() {
    for (a, b) in [
        ("acme", "globex"),
        ("globex", "acme"),
        ("acme", "acme-eu"),
        ("acme1", "acme"),
    ] {
        assert!(
            TenantContext::validate_access(&t(a), &t(b)).is_err(),
            "{a} vs {b}"
        );
    }
}

#[test]
fn tenant_ids_reject_empty_long_and_odd_input() {
    assert_eq!(
        TenantId::parse(""),
        Err(IdentifierError::Empty { kind: "tenant id" })
    );
    assert!(matches!(
        TenantId::parse(&"a".repeat(65)),
        Err(IdentifierError::TooLong {
            len: 65,
            max: 64,
            ..
        })
    ));
    assert!(TenantId::parse(&"a".repeat(64)).is_ok());
    for bad in [
        "Acme", "ac me", "acme/..", "-acme", "_acme", "acmé", "acme\n", "ACME", "a.b",
    ] {
        assert!(
            matches!(
                TenantId::parse(bad),
                Err(IdentifierError::InvalidCharacter { .. })
            ),
            "{bad:?}"
        );
    }
    for good in ["acme", "acme-eu_1", "0bank", "x"] {
        assert_eq!(TenantId::parse(good).unwrap().as_str(), good);
    }
}

#[test]
fn tenant_ids_deserialize_only_when_valid() {
    let ok: TenantId = serde_json::from_str("\"acme\"").unwrap();
    assert_eq!(ok, t("acme"));
    assert!(serde_json::from_str::<TenantId>("\"Acme\"").is_err());
    assert!(serde_json::from_str::<TenantId>("\"\"").is_err());
}

#[test]
fn actor_ids_accept_emails_and_service_names_only() {
    for good in [
        "alice@bank.example",
        "svc:ci-pipeline",
        "bob.smith+risk@bank.example",
    ] {
        assert!(ActorId::parse(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        " alice",
        "alice bob",
        "al\u{0}ice",
        "@alice",
        "alice;drop",
    ] {
        assert!(ActorId::parse(bad).is_err(), "{bad:?}");
    }
    assert!(ActorId::parse(&"a".repeat(129)).is_err());
}

#[test]
fn principals_carry_actor_tenant_role_and_kind() {
    let p = Principal::human(ActorId::parse("alice").unwrap(), t("acme"), Role::Approver);
    assert_eq!(p.actor().as_str(), "alice");
    assert_eq!(p.tenant(), &t("acme"));
    assert_eq!(p.role(), Role::Approver);
    assert_eq!(p.kind(), PrincipalKind::Human);
    let s = Principal::service(ActorId::parse("svc:ci").unwrap(), t("acme"), Role::Admin);
    assert_eq!(s.kind(), PrincipalKind::Service);
}

#[test]
fn correlation_ids_are_validated_or_generated() {
    assert!(CorrelationId::parse("req-123:abc.DEF_9").is_ok());
    assert_eq!(CorrelationId::parse(""), Err(CorrelationIdError::Empty));
    assert!(matches!(
        CorrelationId::parse("a b"),
        Err(CorrelationIdError::InvalidCharacter { position: 1 })
    ));
    assert!(CorrelationId::parse(&"x".repeat(129)).is_err());
    let a = CorrelationId::generate();
    let b = CorrelationId::generate();
    assert_ne!(a, b);
    assert!(CorrelationId::parse(a.as_str()).is_ok());
}

proptest! {
    /// Whatever parses is within the documented character set and length, and round-trips.
    #[test]
    fn parsed_tenant_ids_obey_the_documented_rules(s in "\\PC{0,80}") {
        if let Ok(id) = TenantId::parse(&s) {
            prop_assert!(!s.is_empty() && s.len() <= 64);
            prop_assert!(s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'));
            prop_assert_eq!(id.as_str(), s.as_str());
        }
    }

    /// Two tenants pass the wall if and only if they are equal.
    #[test]
    fn the_wall_passes_exactly_equal_tenants(a in "[a-c]{1,3}", b in "[a-c]{1,3}") {
        let got = TenantContext::validate_access(&t(&a), &t(&b));
        prop_assert_eq!(got.is_ok(), a == b);
    }
}

#[test]
fn a_raw_identity_is_measured_before_normalising_up_to_1024_bytes_inclusive() {
    // U+1D41A MATHEMATICAL BOLD SMALL A: four bytes that NFKC turns into one `a`.
    let bold_a = "\u{1D41A}";
    // Exactly 1024 bytes passes the raw limit, and is then too long as 256 characters.
    let at_limit = bold_a.repeat(256);
    assert_eq!(at_limit.len(), 1024);
    assert_eq!(
        ActorId::canonical(&at_limit),
        Err(IdentifierError::TooLong {
            kind: "actor id",
            len: 256,
            max: 128
        })
    );
    // One byte more is refused before any normalising.
    let over = format!("{at_limit}a");
    assert_eq!(
        ActorId::canonical(&over),
        Err(IdentifierError::TooLong {
            kind: "actor id",
            len: 1025,
            max: 1024
        })
    );
    // Within both limits it folds to the ASCII id.
    assert_eq!(
        ActorId::canonical(&bold_a.repeat(5)).unwrap().as_str(),
        "aaaaa"
    );
}

#[test]
fn same_identity_ignores_ascii_case_and_nothing_else() {
    let id = |s: &str| ActorId::parse(s).unwrap();
    assert!(id("Alice@Bank.Example").same_identity(&id("alice@bank.example")));
    assert!(id("alice@bank.example").same_identity(&id("alice@bank.example")));
    assert!(!id("alice@bank.example").same_identity(&id("alicia@bank.example")));
    assert!(!id("alice@bank.example").same_identity(&id("alice@bank.example.")));
}

//! Data-key envelopes: what a key id says about its key, and when a key is live.

use airisk_core::security::encryption::EncryptionKeyId;
use airisk_core::security::envelope::{DataKeyKind, WrappedDataKey};
use airisk_core::security::tenant_context::TenantId;
use chrono::{TimeZone, Utc};

fn kid(s: &str) -> EncryptionKeyId {
    EncryptionKeyId::parse(s).unwrap()
}

#[test]
fn a_key_ids_first_letter_names_its_kind() {
    // The documented ids (ENCRYPTION.md, "Data keys"): `d`, `s` or `h` and 30 hex digits for a
    // tenant DEK, a data subject's key and the pseudonym key.
    let hex30 = "0123456789abcdef0123456789abcd";
    for (first, kind) in [
        ("d", DataKeyKind::Tenant),
        ("s", DataKeyKind::Subject),
        ("h", DataKeyKind::Pseudonym),
        ("k", DataKeyKind::Tenant),
        ("S", DataKeyKind::Tenant),
    ] {
        let id = format!("{first}{hex30}");
        assert_eq!(DataKeyKind::of(&kid(&id)), kind, "{id}");
    }
    for (kind, prefix) in [
        (DataKeyKind::Tenant, 'd'),
        (DataKeyKind::Subject, 's'),
        (DataKeyKind::Pseudonym, 'h'),
    ] {
        assert_eq!(kind.prefix(), prefix);
        assert_eq!(DataKeyKind::of(&kid(&format!("{prefix}7"))), kind);
    }
}

#[test]
fn a_key_is_live_until_its_wrapped_bytes_are_shredded() {
    let mut key = WrappedDataKey {
        tenant_id: TenantId::parse("acme").unwrap(),
        kid: kid("s0123456789abcdef0123456789abcd"),
        wrapped: Some("v1.kek.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()),
        created_at: Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap(),
        subject: None,
    };
    assert!(key.is_live());
    assert_eq!(key.kind(), DataKeyKind::Subject);
    key.wrapped = None;
    assert!(!key.is_live());
}

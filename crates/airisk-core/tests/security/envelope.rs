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

#[test]
fn a_rewrap_moves_a_data_key_under_the_new_kek_and_keeps_its_bindings() {
    use airisk_core::security::encryption::Encryptor;
    use airisk_core::security::envelope::{KeyProvider, KeyringKeyProvider};
    use std::sync::Arc;

    let kek =
        |ring: &str| KeyringKeyProvider::new(Arc::new(Encryptor::from_env_value(ring).unwrap()));
    let b64 = |seed: u8| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode([seed; 32])
    };
    let (old, both, new_only) = (
        kek(&format!("kek1:{}", b64(1))),
        kek(&format!("kek2:{},kek1:{}", b64(2), b64(1))),
        kek(&format!("kek2:{}", b64(2))),
    );
    let acme = TenantId::parse("acme").unwrap();
    let dek_id = kid("d0123456789abcdef0123456789abcd");
    let dek = [42u8; 32];

    let wrapped = old.wrap(&acme, &dek_id, &dek).unwrap();
    assert!(wrapped.starts_with("v1.kek1."), "{wrapped}");
    let rewrapped = both.rewrap(&acme, &dek_id, &wrapped).unwrap();
    assert!(rewrapped.starts_with("v1.kek2."), "{rewrapped}");
    // The old KEK can go: the new one alone opens the rewrapped key, to the same bytes.
    assert_eq!(*new_only.unwrap(&acme, &dek_id, &rewrapped).unwrap(), dek);
    assert!(new_only.unwrap(&acme, &dek_id, &wrapped).is_err());
    // Still bound to its tenant and id.
    let globex = TenantId::parse("globex").unwrap();
    assert!(new_only.unwrap(&globex, &dek_id, &rewrapped).is_err());
    assert!(both.rewrap(&globex, &dek_id, &wrapped).is_err());
    let other_id = kid("d9999999999999999999999999999a");
    assert!(new_only.unwrap(&acme, &other_id, &rewrapped).is_err());
}

#[test]
fn an_opened_value_debug_prints_its_kind_but_never_the_plaintext() {
    use airisk_core::security::envelope::Opened;
    let plain = Opened::Plain("IBAN DE89 3704 0044 0532 0130 00".into());
    assert_eq!(format!("{plain:?}"), "Plain(<redacted>)");
    assert_eq!(format!("{plain:#?}"), "Plain(<redacted>)");
    assert_eq!(format!("{:?}", Opened::Erased), "Erased");
}

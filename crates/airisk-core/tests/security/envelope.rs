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

mod sealing {
    //! `Envelope`: which of a tenant's keys seals, what opens, what the cache forgets. The keys
    //! are made here with a known KEK; every expectation is about which key id a value names and
    //! whether it opens, read back with `key_id_of`, never with the envelope's own choice.

    use std::sync::Arc;

    use airisk_core::security::data_subject::{DataSubject, SubjectPseudonym};
    use airisk_core::security::encryption::{
        EncryptionContext, EncryptionError, EncryptionKeyId, Encryptor, Purpose, key_id_of,
    };
    use airisk_core::security::envelope::{
        DataKeyKind, Envelope, KeyProvider, KeyringKeyProvider, Opened, WrappedDataKey,
    };
    use airisk_core::security::tenant_context::TenantId;
    use base64::Engine as _;
    use chrono::{DateTime, Duration, TimeZone, Utc};

    fn provider(ring: &[(&str, u8)]) -> Arc<dyn KeyProvider> {
        let text: Vec<String> = ring
            .iter()
            .map(|(kid, seed)| {
                format!(
                    "{kid}:{}",
                    base64::engine::general_purpose::STANDARD.encode([*seed; 32])
                )
            })
            .collect();
        Arc::new(KeyringKeyProvider::new(Arc::new(
            Encryptor::from_env_value(&text.join(",")).unwrap(),
        )))
    }

    fn envelope() -> Envelope {
        Envelope::new(provider(&[("kek1", 1)]), 16)
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    fn ctx(name: &str) -> EncryptionContext {
        EncryptionContext::new(tenant(name), Purpose::parse("prompt.body").unwrap())
    }

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap() + Duration::minutes(minute)
    }

    fn key(
        env: &Envelope,
        kind: DataKeyKind,
        name: &str,
        subject: Option<&SubjectPseudonym>,
        minute: i64,
    ) -> WrappedDataKey {
        env.new_key(kind, &tenant(name), subject.cloned(), at(minute))
            .unwrap()
            .0
    }

    fn shredded(mut k: WrappedDataKey) -> WrappedDataKey {
        k.wrapped = None;
        k.subject = None;
        k
    }

    fn pseudonym(digit: char) -> SubjectPseudonym {
        SubjectPseudonym::parse(&digit.to_string().repeat(64)).unwrap()
    }

    fn kid_of(sealed: &str) -> EncryptionKeyId {
        key_id_of(sealed).unwrap()
    }

    #[test]
    fn a_new_key_has_its_kinds_letter_and_names_a_subject_only_if_it_is_a_subject_key() {
        let env = envelope();
        let p = pseudonym('a');
        for kind in [
            DataKeyKind::Tenant,
            DataKeyKind::Subject,
            DataKeyKind::Pseudonym,
        ] {
            let k = key(&env, kind, "acme", Some(&p), 0);
            assert_eq!(k.kind(), kind);
            assert!(k.kid.as_str().starts_with(kind.prefix()));
            assert_eq!(k.kid.as_str().len(), 31);
            assert_eq!(k.tenant_id, tenant("acme"));
            assert_eq!(k.created_at, at(0));
            assert!(k.is_live());
            let expected = (kind == DataKeyKind::Subject).then(|| p.clone());
            assert_eq!(k.subject, expected, "{kind:?}");
        }
    }

    #[test]
    fn seal_uses_the_tenants_newest_live_dek_and_nothing_else() {
        let env = envelope();
        let p = pseudonym('a');
        let older = key(&env, DataKeyKind::Tenant, "acme", None, 0);
        let newest = key(&env, DataKeyKind::Tenant, "acme", None, 5);
        // Newer than both, but each is the wrong key for a tenant value.
        let decoys = [
            shredded(key(&env, DataKeyKind::Tenant, "acme", None, 10)),
            key(&env, DataKeyKind::Subject, "acme", Some(&p), 11),
            key(&env, DataKeyKind::Pseudonym, "acme", None, 12),
            key(&env, DataKeyKind::Tenant, "globex", None, 13),
        ];
        let mut keys = vec![older.clone(), newest.clone()];
        keys.extend(decoys.iter().cloned());
        let (sealed, fresh) = env.seal(&keys, &ctx("acme"), "secret", at(20)).unwrap();
        assert!(fresh.is_none());
        assert_eq!(kid_of(&sealed), newest.kid);
        assert_eq!(
            env.open(&keys, &ctx("acme"), &sealed).unwrap(),
            Opened::Plain("secret".into())
        );
        // Sealed for acme, it does not open as globex's value.
        assert!(env.open(&keys, &ctx("globex"), &sealed).is_err());
    }

    #[test]
    fn seal_without_a_live_dek_makes_one_for_the_caller_to_store() {
        let env = envelope();
        let gone = shredded(key(&env, DataKeyKind::Tenant, "acme", None, 0));
        let other = key(&env, DataKeyKind::Tenant, "globex", None, 1);
        let (sealed, fresh) = env
            .seal(&[gone.clone(), other.clone()], &ctx("acme"), "v", at(7))
            .unwrap();
        let fresh = fresh.expect("a new DEK to store");
        assert_eq!(fresh.kind(), DataKeyKind::Tenant);
        assert_eq!(fresh.tenant_id, tenant("acme"));
        assert_eq!(fresh.created_at, at(7));
        assert_ne!(fresh.kid, gone.kid);
        assert_eq!(kid_of(&sealed), fresh.kid);
        let keys = [gone, other, fresh];
        assert_eq!(
            env.open(&keys, &ctx("acme"), &sealed).unwrap(),
            Opened::Plain("v".into())
        );
    }

    #[test]
    fn open_finds_the_named_key_of_the_tenant_and_says_erased_once_it_is_shredded() {
        let env = envelope();
        let dek = key(&env, DataKeyKind::Tenant, "acme", None, 0);
        let (sealed, _) = env
            .seal(std::slice::from_ref(&dek), &ctx("acme"), "v", at(1))
            .unwrap();
        // Another tenant's row with the same id, and the tenant's other keys, listed first.
        let mut foreign = key(&env, DataKeyKind::Tenant, "globex", None, 0);
        foreign.kid = dek.kid.clone();
        let others = [
            foreign.clone(),
            key(&env, DataKeyKind::Pseudonym, "acme", None, 0),
            key(&env, DataKeyKind::Tenant, "acme", None, 2),
        ];
        let mut keys = others.to_vec();
        keys.push(dek.clone());
        assert_eq!(
            env.open(&keys, &ctx("acme"), &sealed).unwrap(),
            Opened::Plain("v".into())
        );
        // Only the other tenant's row carries the id: unknown for acme.
        assert_eq!(
            env.open(&[foreign], &ctx("acme"), &sealed).unwrap_err(),
            EncryptionError::UnknownKeyId {
                kid: dek.kid.clone()
            }
        );
        let mut keys = others.to_vec();
        keys.push(shredded(dek));
        assert_eq!(
            env.open(&keys, &ctx("acme"), &sealed).unwrap(),
            Opened::Erased
        );
    }

    #[test]
    fn a_subject_value_is_sealed_with_the_newest_live_key_of_that_subject() {
        let env = envelope();
        let (p, q) = (pseudonym('a'), pseudonym('b'));
        let older = key(&env, DataKeyKind::Subject, "acme", Some(&p), 0);
        let newest = key(&env, DataKeyKind::Subject, "acme", Some(&p), 5);
        let decoys = [
            shredded(key(&env, DataKeyKind::Subject, "acme", Some(&p), 10)),
            key(&env, DataKeyKind::Subject, "acme", Some(&q), 11),
            key(&env, DataKeyKind::Tenant, "acme", None, 12),
            key(&env, DataKeyKind::Subject, "globex", Some(&p), 13),
        ];
        let mut keys = vec![older, newest.clone()];
        keys.extend(decoys.iter().cloned());
        let sealed = env
            .seal_for_subject(&keys, &ctx("acme"), &p, "C-42's salary")
            .unwrap()
            .expect("p has a live key");
        assert_eq!(kid_of(&sealed), newest.kid);
        // Opened without naming the subject: the key row names it.
        assert_eq!(
            env.open(&keys, &ctx("acme"), &sealed).unwrap(),
            Opened::Plain("C-42's salary".into())
        );
        // The pseudonym is bound: the same key row claiming another subject does not open it.
        let mut relabelled = keys.clone();
        relabelled[1].subject = Some(q.clone());
        assert!(env.open(&relabelled, &ctx("acme"), &sealed).is_err());
        // A subject with no live key of this tenant: nothing sealed, the caller makes a key.
        let r = pseudonym('c');
        assert_eq!(
            env.seal_for_subject(&keys, &ctx("acme"), &r, "x").unwrap(),
            None
        );
        assert_eq!(
            env.seal_for_subject(&decoys[..1], &ctx("acme"), &p, "x")
                .unwrap(),
            None
        );
    }

    #[test]
    fn pseudonyms_come_from_every_live_pseudonym_key_of_the_tenant_oldest_first() {
        let env = envelope();
        let acme = tenant("acme");
        let subject = DataSubject::parse("C-42").unwrap();
        let (first, first_raw) = env
            .new_key(DataKeyKind::Pseudonym, &acme, None, at(0))
            .unwrap();
        let (second, second_raw) = env
            .new_key(DataKeyKind::Pseudonym, &acme, None, at(3))
            .unwrap();
        let keys = [
            second.clone(),
            shredded(key(&env, DataKeyKind::Pseudonym, "acme", None, 1)),
            key(&env, DataKeyKind::Pseudonym, "globex", None, 0),
            key(&env, DataKeyKind::Tenant, "acme", None, 0),
            first.clone(),
        ];
        assert_eq!(
            env.pseudonyms(&keys, &acme, &subject).unwrap(),
            vec![
                SubjectPseudonym::compute(&first_raw, &subject),
                SubjectPseudonym::compute(&second_raw, &subject),
            ]
        );
        assert_eq!(
            env.pseudonyms(&keys[1..4], &acme, &subject).unwrap(),
            vec![]
        );
    }

    #[test]
    fn the_cache_forgets_a_tenant_or_some_of_its_keys_and_nothing_else() {
        let env = envelope();
        let a1 = key(&env, DataKeyKind::Tenant, "acme", None, 0);
        let a2 = key(&env, DataKeyKind::Tenant, "acme", None, 1);
        let g1 = key(&env, DataKeyKind::Tenant, "globex", None, 0);
        let keys = [a1.clone(), a2.clone(), g1.clone()];
        for k in &keys {
            let (sealed, _) = env
                .seal(
                    std::slice::from_ref(k),
                    &ctx(k.tenant_id.as_str()),
                    "v",
                    at(5),
                )
                .unwrap();
            env.open(&keys, &ctx(k.tenant_id.as_str()), &sealed)
                .unwrap();
        }
        assert_eq!(env.cached_keys(), 3);
        // g1 is named too, but it is globex's: only acme's a1 is forgotten.
        env.forget_keys(&tenant("acme"), &[a1.kid.clone(), g1.kid.clone()]);
        assert_eq!(env.cached_keys(), 2);
        env.forget_keys(&tenant("globex"), std::slice::from_ref(&a2.kid));
        assert_eq!(env.cached_keys(), 2);
        env.forget_tenant(&tenant("globex"));
        assert_eq!(env.cached_keys(), 1);
        // What is left is acme's a2: forgetting it empties the cache.
        env.forget_keys(&tenant("acme"), std::slice::from_ref(&a2.kid));
        assert_eq!(env.cached_keys(), 0);
    }

    #[test]
    fn the_cache_serves_a_key_only_for_the_same_tenant_id_and_wrapped_text() {
        let kek = provider(&[("kek1", 1)]);
        let env = Envelope::new(Arc::clone(&kek), 16);
        let acme_key = key(&env, DataKeyKind::Tenant, "acme", None, 0);
        let (acme_value, _) = env
            .seal(std::slice::from_ref(&acme_key), &ctx("acme"), "a", at(1))
            .unwrap();
        let acme_keys = [acme_key.clone()];
        env.open(&acme_keys, &ctx("acme"), &acme_value).unwrap();
        env.open(&acme_keys, &ctx("acme"), &acme_value).unwrap();
        // A hit is served from the cache, not unwrapped and cached again.
        assert_eq!(env.cached_keys(), 1);

        // Another DEK wrapped under the same id, for globex and for acme itself (a replaced row):
        // neither may be served acme's cached key.
        for name in ["globex", "acme"] {
            let dek = [7u8; 32];
            let row = WrappedDataKey {
                tenant_id: tenant(name),
                wrapped: Some(kek.wrap(&tenant(name), &acme_key.kid, &dek).unwrap()),
                ..acme_key.clone()
            };
            let (sealed, _) = env
                .seal(std::slice::from_ref(&row), &ctx(name), "b", at(2))
                .unwrap();
            // A fresh envelope, with nothing cached, opens it with the row's own DEK.
            let fresh = Envelope::new(Arc::clone(&kek), 16);
            assert_eq!(
                fresh
                    .open(std::slice::from_ref(&row), &ctx(name), &sealed)
                    .unwrap(),
                Opened::Plain("b".into()),
                "{name}"
            );
        }
    }

    #[test]
    fn rewrap_keys_moves_every_live_key_under_the_new_kek() {
        let old = envelope();
        let live = [
            key(&old, DataKeyKind::Tenant, "acme", None, 0),
            key(&old, DataKeyKind::Subject, "acme", Some(&pseudonym('a')), 1),
        ];
        let gone = shredded(key(&old, DataKeyKind::Tenant, "acme", None, 2));
        let (sealed, _) = old.seal(&live, &ctx("acme"), "v", at(3)).unwrap();
        let rotated = Envelope::new(provider(&[("kek2", 2), ("kek1", 1)]), 16);
        let mut keys = live.to_vec();
        keys.push(gone);
        let changed = rotated.rewrap_keys(&keys).unwrap();
        assert_eq!(changed.len(), 2);
        for (new, was) in changed.iter().zip(&live) {
            assert_eq!(new.kid, was.kid);
            assert_eq!(new.subject, was.subject);
            assert!(
                new.wrapped.as_deref().unwrap().starts_with("v1.kek2."),
                "{:?}",
                new.wrapped
            );
        }
        // Only the new KEK left: the rewrapped keys open the value sealed before.
        let new_only = Envelope::new(provider(&[("kek2", 2)]), 16);
        assert_eq!(
            new_only.open(&changed, &ctx("acme"), &sealed).unwrap(),
            Opened::Plain("v".into())
        );
        assert!(new_only.open(&live, &ctx("acme"), &sealed).is_err());
        let debug = format!("{new_only:?}");
        assert!(
            debug.starts_with("Envelope {") && debug.contains("capacity: 16"),
            "{debug}"
        );
    }
}

#[test]
fn an_opened_metadata_value_debug_prints_its_kind_but_never_the_value() {
    use airisk_core::security::key_custody::OpenedValue;
    let value = OpenedValue::Value(serde_json::json!({"iban": "DE89 3704 0044 0532 0130 00"}));
    assert_eq!(format!("{value:?}"), "Value(<redacted>)");
    assert_eq!(format!("{:?}", OpenedValue::Erased), "Erased");
}

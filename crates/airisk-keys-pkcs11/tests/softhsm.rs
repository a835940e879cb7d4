//! The PKCS#11 provider and signer against a real token (SoftHSM2, made by
//! scripts/setup-softhsm.sh). Every test makes its own keys under fresh labels, so the tests run
//! in parallel on one token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: fail loudly

use std::sync::Arc;

use airisk_core::ledger::{Checkpoint, Hash, LedgerName, LedgerVerifier, verify_checkpoint};
use airisk_core::security::encryption::{EncryptionError, EncryptionKeyId, KEY_LEN};
use airisk_core::security::envelope::{
    Envelope, KeyProvider, Opened, WrappedDataKey, prompt_template_context,
};
use airisk_core::security::tenant_context::TenantId;
use airisk_keys_pkcs11::{
    AuthPin, KeyKind, PAYLOAD_LEN, Pkcs11Error, Pkcs11KeyProvider, Pkcs11LedgerKey, Token,
    TokenConfig,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::UserType;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ED25519, UnparsedPublicKey};

const IGNORE: &str =
    "SoftHSM2: needs AIRISK_TEST_PKCS11_MODULE; run with --ignored (scripts/test.sh does)";

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run scripts/setup-softhsm.sh and export what it prints ({IGNORE})"
        )
    })
}

fn config() -> TokenConfig {
    TokenConfig::new(
        env("AIRISK_TEST_PKCS11_MODULE"),
        env("AIRISK_TEST_PKCS11_TOKEN"),
        AuthPin::from(env("AIRISK_TEST_PKCS11_PIN").as_str()),
    )
}

/// One token handle for the whole test binary, as the service has one: calls from this crate
/// are serialised by its session mutex (SoftHSM2 answers concurrent key-pair generation from
/// several sessions of one process with CKR_GENERAL_ERROR now and then).
fn token() -> Arc<Token> {
    static TOKEN: std::sync::OnceLock<Arc<Token>> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| Token::open(config()).unwrap()).clone()
}

/// A label no other test (or earlier run on the same token) uses.
fn fresh_label(prefix: &str) -> String {
    let mut r = [0u8; 6];
    SystemRandom::new().fill(&mut r).unwrap();
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

fn dek() -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    SystemRandom::new().fill(&mut k).unwrap();
    k
}

fn tenant(t: &str) -> TenantId {
    TenantId::parse(t).unwrap()
}

fn kid(k: &str) -> EncryptionKeyId {
    EncryptionKeyId::parse(k).unwrap()
}

fn provider_with_new_kek(token: &Arc<Token>) -> Pkcs11KeyProvider {
    let label = fresh_label("kek");
    token.generate_kek(&label).unwrap();
    Pkcs11KeyProvider::new(token.clone(), &label).unwrap()
}

/// A raw session on the test token, for what the crate deliberately cannot do (make an
/// extractable key, destroy a key).
fn raw_session() -> cryptoki::session::Session {
    let ctx = Pkcs11::new(env("AIRISK_TEST_PKCS11_MODULE")).unwrap();
    // The crate's context already initialised the module in this process, or not yet.
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let label = env("AIRISK_TEST_PKCS11_TOKEN");
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == label)
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    let pin = AuthPin::from(env("AIRISK_TEST_PKCS11_PIN").as_str());
    match session.login(UserType::User, Some(&pin)) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
        }
        Err(e) => panic!("login: {e}"),
    }
    session
}

fn destroy(class: ObjectClass, key_type: KeyType, label: &str) {
    let s = raw_session();
    let found = s
        .find_objects(&[
            Attribute::Class(class),
            Attribute::KeyType(key_type),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1, "exactly one object labelled {label}");
    for h in found {
        s.destroy_object(h).unwrap();
    }
}

#[test]
#[ignore = "SoftHSM2: needs AIRISK_TEST_PKCS11_MODULE; run with --ignored (scripts/test.sh does)"]
fn a_dek_wrapped_in_the_token_unwraps_only_for_its_tenant_and_id() {
    let token = token();
    let p = provider_with_new_kek(&token);
    let key = dek();
    let acme = tenant("acme");
    let d1 = kid("d1");
    let wrapped = p.wrap(&acme, &d1, &key).unwrap();

    // The documented format: p11.<label>.<base64url(IV 12 || ct 32 || tag 16)>.
    let prefix = format!("p11.{}.", p.kek_label());
    let payload = wrapped.strip_prefix(&prefix).expect("p11.<label>. prefix");
    let raw = URL_SAFE_NO_PAD.decode(payload).unwrap();
    assert_eq!(raw.len(), PAYLOAD_LEN);
    assert_eq!(PAYLOAD_LEN, 12 + 32 + 16);
    assert!(
        !raw.windows(KEY_LEN).any(|w| w == key),
        "the key is not in the clear"
    );
    // A fresh IV each time: the same key wraps differently.
    assert_ne!(p.wrap(&acme, &d1, &key).unwrap(), wrapped);

    assert_eq!(*p.unwrap(&acme, &d1, &wrapped).unwrap(), key);
    assert_eq!(
        p.unwrap(&tenant("globex"), &d1, &wrapped),
        Err(EncryptionError::DecryptionFailed),
        "another tenant"
    );
    assert_eq!(
        p.unwrap(&acme, &kid("d2"), &wrapped),
        Err(EncryptionError::DecryptionFailed),
        "another DEK id"
    );
    // Every single flipped bit of IV, ciphertext or tag is caught.
    for i in 0..raw.len() {
        let mut bad = raw.clone();
        bad[i] ^= 0x01;
        let text = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(&bad));
        assert_eq!(
            p.unwrap(&acme, &d1, &text),
            Err(EncryptionError::DecryptionFailed),
            "byte {i} flipped"
        );
    }
    // Relabelled to another KEK in the same token: the label is bound too.
    let other = provider_with_new_kek(&token);
    let moved = wrapped.replacen(p.kek_label(), other.kek_label(), 1);
    assert_eq!(
        p.unwrap(&acme, &d1, &moved),
        Err(EncryptionError::DecryptionFailed)
    );
    // Truncated, or not ours at all: malformed, not a token call.
    assert!(matches!(
        p.unwrap(&acme, &d1, &wrapped[..wrapped.len() - 2]),
        Err(EncryptionError::MalformedCiphertext { .. })
    ));
    assert!(matches!(
        p.unwrap(&acme, &d1, "v1.k1.AAAA"),
        Err(EncryptionError::MalformedCiphertext { .. })
    ));
    assert_eq!(p.readiness(), Ok(()));
}

#[test]
#[ignore = "SoftHSM2: needs AIRISK_TEST_PKCS11_MODULE; run with --ignored (scripts/test.sh does)"]
fn the_envelope_seals_and_opens_a_prompt_under_a_token_kek() {
    let token = token();
    let env = Envelope::new(Arc::new(provider_with_new_kek(&token)), 8);
    let acme = tenant("acme");
    let ctx = prompt_template_context(&acme, "loan/system", 1).unwrap();
    let (sealed, fresh) = env
        .seal(&[], &ctx, "CANARY prompt body", chrono::Utc::now())
        .unwrap();
    let keys = vec![fresh.unwrap()];
    assert!(keys[0].wrapped.as_deref().unwrap().starts_with("p11."));
    assert!(!sealed.contains("CANARY"));
    // A fresh envelope (empty cache) must unwrap the DEK in the token to open it.
    let again = Envelope::new(env.provider().clone(), 8);
    assert_eq!(
        again.open(&keys, &ctx, &sealed).unwrap(),
        Opened::Plain("CANARY prompt body".into())
    );
}

#[test]
#[ignore = "SoftHSM2: needs AIRISK_TEST_PKCS11_MODULE; run with --ignored (scripts/test.sh does)"]
fn kek_rotation_rewraps_and_old_texts_open_until_rotated() {
    let token = token();
    let old = provider_with_new_kek(&token);
    let acme = tenant("acme");
    let keys: Vec<_> = (0..3)
        .map(|i| {
            let k = dek();
            let id = kid(&format!("d{i}"));
            let w = old.wrap(&acme, &id, &k).unwrap();
            (id, k, w)
        })
        .collect();
    let new_label = fresh_label("kek");
    token.generate_kek(&new_label).unwrap();
    let new = Pkcs11KeyProvider::new(token.clone(), &new_label).unwrap();
    // Before rotation the new provider still opens what the old label wrapped.
    for (id, k, w) in &keys {
        assert_eq!(*new.unwrap(&acme, id, w).unwrap(), *k);
    }
    let stored: Vec<WrappedDataKey> = keys
        .iter()
        .map(|(id, _, w)| WrappedDataKey {
            tenant_id: acme.clone(),
            kid: id.clone(),
            wrapped: Some(w.clone()),
            created_at: chrono::Utc::now(),
            subject: None,
        })
        .collect();
    let env = Envelope::new(Arc::new(new), 8);
    let changed = env.rewrap_keys(&stored).unwrap();
    assert_eq!(changed.len(), 3);
    let new_prefix = format!("p11.{new_label}.");
    for (c, (id, k, _)) in changed.iter().zip(&keys) {
        let w = c.wrapped.as_deref().unwrap();
        assert!(w.starts_with(&new_prefix), "{w}");
        assert_eq!(*env.provider().unwrap(&acme, id, w).unwrap(), *k);
        // Any provider on this token opens a text with the KEK it names: rotation changes which
        // label wraps, not which texts open.
        assert_eq!(*old.unwrap(&acme, id, w).unwrap(), *k);
    }
    // Rewrapping again changes nothing.
    assert!(env.rewrap_keys(&changed).unwrap().is_empty());
}

#[test]
#[ignore = "SoftHSM2: needs AIRISK_TEST_PKCS11_MODULE; run with --ignored (scripts/test.sh does)"]
fn keys_made_in_the_token_are_non_extractable_and_sensitive() {
    let token = token();
    let kek = fresh_label("kek");
    let p = token.generate_kek(&kek).unwrap();
    let read = token.key_protection(KeyKind::Kek, &kek).unwrap();
    assert_eq!(p, read);
    assert!(!read.extractable && read.sensitive);
    assert!(read.never_extractable && read.always_sensitive && read.token_object);

    let ledger = fresh_label("ledger");
    token.generate_ledger_key(&ledger).unwrap();
    let read = token
        .key_protection(KeyKind::LedgerPrivate, &ledger)
        .unwrap();
    assert!(!read.extractable && read.sensitive);
    assert!(read.never_extractable && read.always_sensitive && read.token_object);

    // A label in use is refused rather than shadowed.
    assert!(matches!(
        token.generate_kek(&kek),
        Err(Pkcs11Error::LabelTaken { .. })
    ));
    assert!(matches!(
        token.generate_ledger_key(&ledger),
        Err(Pkcs11Error::LabelTaken { .. })
    ));

    // An extractable AES key made by someone else is refused as a KEK.
    let loose = fresh_label("loose");
    raw_session()
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Label(loose.as_bytes().to_vec()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
        )
        .unwrap();
    assert_eq!(
        Pkcs11KeyProvider::new(token.clone(), &loose).unwrap_err(),
        Pkcs11Error::KeyNotProtected {
            kind: "AES key-encryption key",
            label: loose.clone()
        }
    );
}

#[test]
#[ignore = "SoftHSM2: needs AIRISK_TEST_PKCS11_MODULE; run with --ignored (scripts/test.sh does)"]
fn a_checkpoint_signed_in_the_token_verifies_in_software_and_a_tampered_one_does_not() {
    let token = token();
    let label = fresh_label("ledger");
    let public = token.generate_ledger_key(&label).unwrap();
    let key = Pkcs11LedgerKey::new(token.clone(), &label).unwrap();
    let name = LedgerName::parse("airisk.test/ledger").unwrap();
    let signer = key.into_signer(name.clone());
    assert!(signer.is_external());
    assert_eq!(signer.readiness(), Ok(()));
    let verifier_key = signer.verifier().to_verifier_key();
    // The verifier key an auditor gets is built from the token's public key.
    let verifier = LedgerVerifier::parse(&verifier_key).unwrap();
    assert_eq!(verifier.public_key(), &public);

    let checkpoint = Checkpoint::new(name.origin_for(&tenant("acme")), 3, Hash::from([7u8; 32]));
    let note = checkpoint.sign(&signer).unwrap().into_note_text();
    assert_eq!(verify_checkpoint(&note, &verifier), Ok(checkpoint.clone()));
    // Independently of LedgerVerifier: the signature line holds key id (4) ‖ Ed25519
    // signature (64) over the body, checked here with ring directly against the token's key.
    let (body, sig_line) = note.split_once("\n\n").unwrap();
    let blob = airisk_core_b64(sig_line.trim_end().rsplit(' ').next().unwrap());
    assert_eq!(blob.len(), 68);
    UnparsedPublicKey::new(&ED25519, &public)
        .verify(format!("{body}\n").as_bytes(), &blob[4..])
        .unwrap();
    // Ed25519 is deterministic: the token signs the same body the same way.
    assert_eq!(checkpoint.sign(&signer).unwrap().into_note_text(), note);

    let tampered = note.replacen("\n3\n", "\n4\n", 1);
    assert!(verify_checkpoint(&tampered, &verifier).is_err());
    let other = Checkpoint::new(name.origin_for(&tenant("globex")), 3, Hash::from([7u8; 32]));
    let foreign = other.sign(&signer).unwrap().into_note_text();
    let swapped = format!(
        "{}{}",
        note.split_once("\n\n").unwrap().0,
        &foreign[foreign.find("\n\n").unwrap()..]
    );
    assert!(verify_checkpoint(&swapped, &verifier).is_err());
}

fn airisk_core_b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[test]
#[ignore = "SoftHSM2: needs AIRISK_TEST_PKCS11_MODULE; run with --ignored (scripts/test.sh does)"]
fn a_wrong_pin_is_a_typed_error_that_never_shows_the_pin() {
    // A token no other test logs in to (login state is shared by a process's sessions).
    let module = env("AIRISK_TEST_PKCS11_MODULE");
    let pin_token = env("AIRISK_TEST_PKCS11_PIN_TOKEN");
    let wrong = "wrong-PIN-739146";
    let err = Token::open(TokenConfig::new(&module, &pin_token, AuthPin::from(wrong))).unwrap_err();
    assert_eq!(
        err,
        Pkcs11Error::WrongPin {
            token: pin_token.clone()
        }
    );
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(wrong), "{shown}");
    }
    let config = TokenConfig::new(&module, &pin_token, AuthPin::from(wrong));
    assert!(!format!("{config:?}").contains(wrong));
    // The right PIN opens it, so the refusal was the PIN's.
    Token::open(TokenConfig::new(
        &module,
        &pin_token,
        AuthPin::from(env("AIRISK_TEST_PKCS11_PIN").as_str()),
    ))
    .unwrap();
}

#[test]
#[ignore = "SoftHSM2: needs AIRISK_TEST_PKCS11_MODULE; run with --ignored (scripts/test.sh does)"]
fn missing_module_token_or_key_labels_are_typed_errors() {
    let module = env("AIRISK_TEST_PKCS11_MODULE");
    let pin = || AuthPin::from(env("AIRISK_TEST_PKCS11_PIN").as_str());
    assert!(matches!(
        Token::open(TokenConfig::new("/nonexistent/libpkcs11.so", "t", pin())),
        Err(Pkcs11Error::Module { .. })
    ));
    assert_eq!(
        Token::open(TokenConfig::new(&module, "no-such-token", pin())).unwrap_err(),
        Pkcs11Error::TokenNotFound {
            label: "no-such-token".into()
        }
    );
    let token = token();
    let absent = fresh_label("absent");
    assert_eq!(
        Pkcs11KeyProvider::new(token.clone(), &absent).unwrap_err(),
        Pkcs11Error::KeyNotFound {
            kind: "AES key-encryption key",
            label: absent.clone()
        }
    );
    assert_eq!(
        Pkcs11LedgerKey::new(token.clone(), &absent).unwrap_err(),
        Pkcs11Error::KeyNotFound {
            kind: "Ed25519 public key",
            label: absent.clone()
        }
    );
    assert!(matches!(
        Pkcs11KeyProvider::new(token.clone(), "has.dot"),
        Err(Pkcs11Error::InvalidLabel { .. })
    ));
    // A wrapped text naming a KEK label the token does not hold: unknown key, as for a keyring.
    let p = provider_with_new_kek(&token);
    let w = p.wrap(&tenant("acme"), &kid("d1"), &dek()).unwrap();
    let orphan = w.replacen(p.kek_label(), &absent, 1);
    assert_eq!(
        p.unwrap(&tenant("acme"), &kid("d1"), &orphan),
        Err(EncryptionError::UnknownKeyId { kid: kid(&absent) })
    );
}

#[test]
#[ignore = "SoftHSM2: needs AIRISK_TEST_PKCS11_MODULE; run with --ignored (scripts/test.sh does)"]
fn a_key_gone_from_the_token_fails_closed_and_readiness_says_why() {
    let token = token();
    let p = provider_with_new_kek(&token);
    let label = p.kek_label().to_owned();
    let acme = tenant("acme");
    let key = dek();
    let wrapped = p.wrap(&acme, &kid("d1"), &key).unwrap();
    let ledger = fresh_label("ledger");
    token.generate_ledger_key(&ledger).unwrap();
    let signer = Pkcs11LedgerKey::new(token.clone(), &ledger)
        .unwrap()
        .into_signer(LedgerName::parse("airisk.test/ledger").unwrap());
    let checkpoint = Checkpoint::new(
        LedgerName::parse("airisk.test/ledger")
            .unwrap()
            .origin_for(&acme),
        1,
        Hash::from([1u8; 32]),
    );
    assert!(checkpoint.sign(&signer).is_ok());

    destroy(ObjectClass::SECRET_KEY, KeyType::AES, &label);
    let err = p.wrap(&acme, &kid("d2"), &key).unwrap_err();
    assert!(
        matches!(&err, EncryptionError::ProviderUnavailable { reason } if reason.contains(&label)),
        "{err:?}"
    );
    assert_eq!(
        p.unwrap(&acme, &kid("d1"), &wrapped),
        Err(EncryptionError::UnknownKeyId { kid: kid(&label) })
    );
    let why = p.readiness().unwrap_err();
    assert!(
        why.contains(&label) && why.contains("no AES key-encryption key"),
        "{why}"
    );

    destroy(ObjectClass::PRIVATE_KEY, KeyType::EC_EDWARDS, &ledger);
    let err = checkpoint.sign(&signer).unwrap_err();
    assert!(
        matches!(&err, airisk_core::ledger::CheckpointError::SigningUnavailable { reason } if reason.contains(&ledger)),
        "{err:?}"
    );
    assert!(signer.readiness().unwrap_err().contains(&ledger));
}

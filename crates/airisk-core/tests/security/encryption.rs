//! AES-256-GCM keyring and ciphertext tests.

use std::collections::HashSet;

use airisk_core::security::encryption::{
    EncryptionContext, EncryptionError, EncryptionKeyId, Encryptor, KeyProblem, Keyring, Purpose,
    generate_key_entry, key_id_of,
};
use airisk_core::security::tenant_context::{IdentifierError, TenantId};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use proptest::prelude::*;

/// A 32-byte key whose bytes are all `byte` plus their index, so two keys never share a byte run.
fn key(seed: u8) -> [u8; 32] {
    std::array::from_fn(|i| seed.wrapping_add(u8::try_from(i).unwrap()))
}

fn entry(kid: &str, seed: u8) -> String {
    format!("{kid}:{}", STANDARD.encode(key(seed)))
}

fn encryptor(keyring: &str) -> Encryptor {
    Encryptor::from_env_value(keyring).unwrap()
}

fn ctx(tenant: &str, purpose: &str) -> EncryptionContext {
    EncryptionContext::new(
        TenantId::parse(tenant).unwrap(),
        Purpose::parse(purpose).unwrap(),
    )
}

/// Splits `v1.<kid>.<payload>` and decodes the payload with an independent base64 implementation.
fn decode(ciphertext: &str) -> (String, Vec<u8>) {
    let mut parts = ciphertext.splitn(3, '.');
    assert_eq!(parts.next(), Some("v1"));
    let kid = parts.next().unwrap().to_owned();
    let payload = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
    (kid, payload)
}

fn encode(kid: &str, payload: &[u8]) -> String {
    format!("v1.{kid}.{}", URL_SAFE_NO_PAD.encode(payload))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Neither the base64 text, nor the hex, nor Rust's `Debug` of the key bytes appear in `text`.
fn assert_no_key_material(text: &str, seed: u8) {
    let key = key(seed);
    let b64 = STANDARD.encode(key);
    assert!(!text.contains(&b64), "base64 key in {text:?}");
    assert!(
        !text.contains(b64.trim_end_matches('=')),
        "base64 key in {text:?}"
    );
    // Any 8-character window of the base64 text would already be a leak.
    for window in b64.as_bytes().windows(8) {
        let window = std::str::from_utf8(window).unwrap();
        assert!(
            !text.contains(window),
            "base64 fragment {window:?} in {text:?}"
        );
    }
    assert!(
        !text.to_lowercase().contains(&hex(&key)[..16]),
        "hex key in {text:?}"
    );
    let debug_bytes = format!("{:?}", &key[..4]);
    assert!(
        !text.contains(debug_bytes.trim_end_matches(']')),
        "key bytes in {text:?}"
    );
}

#[test]
fn round_trips_empty_unicode_and_one_mebibyte_strings() {
    let enc = encryptor(&entry("k1", 1));
    let big: String = "0123456789abcdef€".chars().cycle().take(1 << 20).collect();
    for plaintext in ["", "sk-live-123", "Grüße, 世界 🦀 \u{0}\n", big.as_str()] {
        let sealed = enc.encrypt(plaintext).unwrap();
        assert!(sealed.starts_with("v1.k1."));
        assert_eq!(enc.decrypt(&sealed).unwrap(), plaintext);
    }
}

#[test]
fn round_trips_with_a_context() {
    let enc = encryptor(&entry("k1", 1));
    let c = ctx("acme", "model.api-key");
    let sealed = enc.encrypt_with_context("secret", &c).unwrap();
    assert_eq!(enc.decrypt_with_context(&sealed, &c).unwrap(), "secret");
}

#[test]
fn the_same_plaintext_encrypts_differently_each_time() {
    let enc = encryptor(&entry("k1", 1));
    assert_ne!(enc.encrypt("same").unwrap(), enc.encrypt("same").unwrap());
}

#[test]
fn ciphertext_has_the_documented_shape() {
    let enc = encryptor(&entry("k2026", 1));
    let sealed = enc.encrypt("abc").unwrap();
    let (kid, payload) = decode(&sealed);
    assert_eq!(kid, "k2026");
    assert_eq!(payload.len(), 12 + 3 + 16);
    assert!(
        sealed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    );
    assert!(!sealed.contains('='));
    assert_eq!(key_id_of(&sealed).unwrap().as_str(), "k2026");
}

#[test]
fn a_different_key_under_the_same_key_id_does_not_decrypt() {
    let sealed = encryptor(&entry("k1", 1)).encrypt("secret").unwrap();
    let err = encryptor(&entry("k1", 2)).decrypt(&sealed).unwrap_err();
    assert_eq!(err, EncryptionError::DecryptionFailed);
}

#[test]
fn relabelling_a_ciphertext_to_another_key_id_fails_even_with_the_same_key_bytes() {
    // Two ids for one key: if the key id were not bound into the AAD, this would decrypt.
    let enc = encryptor(&format!("{},{}", entry("a1", 7), entry("b1", 7)));
    let sealed = enc.encrypt("secret").unwrap();
    let relabelled = sealed.replacen("v1.a1.", "v1.b1.", 1);
    assert_eq!(
        enc.decrypt(&relabelled).unwrap_err(),
        EncryptionError::DecryptionFailed
    );
}

#[test]
fn flipping_any_bit_of_any_payload_byte_fails() {
    let enc = encryptor(&entry("k1", 1));
    let sealed = enc.encrypt("hi").unwrap();
    let (kid, payload) = decode(&sealed);
    for position in 0..payload.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut tampered = payload.clone();
            tampered[position] ^= mask;
            let err = enc.decrypt(&encode(&kid, &tampered)).unwrap_err();
            assert_eq!(
                err,
                EncryptionError::DecryptionFailed,
                "byte {position} ^ {mask:#x}"
            );
        }
    }
}

#[test]
fn changing_any_character_of_the_ciphertext_text_fails() {
    let enc = encryptor(&format!("{},{}", entry("k1", 1), entry("k2", 2)));
    let sealed = enc.encrypt("hi").unwrap();
    for position in 0..sealed.len() {
        for replacement in ['A', 'z', '2', '-', '_', '.', 'v'] {
            let mut chars: Vec<char> = sealed.chars().collect();
            if chars[position] == replacement {
                continue;
            }
            chars[position] = replacement;
            let tampered: String = chars.into_iter().collect();
            assert!(
                enc.decrypt(&tampered).is_err(),
                "{tampered} decrypted after changing character {position}"
            );
        }
    }
    // The key id in the prefix, swapped for another id of the keyring.
    let swapped = sealed.replacen("v1.k1.", "v1.k2.", 1);
    assert_eq!(
        enc.decrypt(&swapped).unwrap_err(),
        EncryptionError::DecryptionFailed
    );
}

#[test]
fn truncation_fails() {
    let enc = encryptor(&entry("k1", 1));
    let sealed = enc.encrypt("a value of some length").unwrap();
    for len in 0..sealed.len() {
        assert!(
            enc.decrypt(&sealed[..len]).is_err(),
            "prefix of {len} chars"
        );
    }
    let (kid, payload) = decode(&sealed);
    for len in 0..payload.len() {
        assert!(
            enc.decrypt(&encode(&kid, &payload[..len])).is_err(),
            "payload of {len} bytes"
        );
    }
    // Appending is no better than cutting.
    let mut longer = payload.clone();
    longer.push(0);
    assert!(enc.decrypt(&encode(&kid, &longer)).is_err());
}

#[test]
fn another_tenant_or_purpose_does_not_decrypt() {
    let enc = encryptor(&entry("k1", 1));
    let sealed = enc
        .encrypt_with_context("secret", &ctx("acme", "model.api-key"))
        .unwrap();
    for wrong in [
        ctx("globex", "model.api-key"),
        ctx("acme", "prompt.body"),
        ctx("acm", "model.api-key"),
        ctx("acme", "model.api-ke"),
    ] {
        assert_eq!(
            enc.decrypt_with_context(&sealed, &wrong).unwrap_err(),
            EncryptionError::DecryptionFailed,
            "{wrong:?}"
        );
    }
}

#[test]
fn a_context_bound_value_needs_its_context_and_a_context_free_one_refuses_any() {
    let enc = encryptor(&entry("k1", 1));
    let c = ctx("acme", "model.api-key");
    let bound = enc.encrypt_with_context("secret", &c).unwrap();
    let free = enc.encrypt("secret").unwrap();
    assert_eq!(
        enc.decrypt(&bound).unwrap_err(),
        EncryptionError::DecryptionFailed
    );
    assert_eq!(
        enc.decrypt_with_context(&free, &c).unwrap_err(),
        EncryptionError::DecryptionFailed
    );
}

#[test]
fn tenant_and_purpose_boundaries_cannot_be_shifted() {
    // The length prefixes keep ("ab", "c.d") and ("a", "bc.d")-style splits apart.
    let enc = encryptor(&entry("k1", 1));
    let sealed = enc.encrypt_with_context("x", &ctx("ab", "c.d")).unwrap();
    assert!(
        enc.decrypt_with_context(&sealed, &ctx("a", "bc.d"))
            .is_err()
    );
    assert!(enc.decrypt_with_context(&sealed, &ctx("abc", "d")).is_err());
}

#[test]
fn an_unknown_key_id_is_named() {
    let sealed = encryptor(&entry("old", 1)).encrypt("secret").unwrap();
    let err = encryptor(&entry("new", 2)).decrypt(&sealed).unwrap_err();
    assert_eq!(
        err,
        EncryptionError::UnknownKeyId {
            kid: EncryptionKeyId::parse("old").unwrap()
        }
    );
    assert!(err.to_string().contains("old"));
}

#[test]
fn malformed_ciphertexts_are_reported_as_such() {
    let enc = encryptor(&entry("k1", 1));
    for input in [
        "",
        "v1",
        "v1.",
        "v1.k1",
        "v1.k1.",
        "v2.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "V1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.k.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1..AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.k1.AAAA",
        "v1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "v1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",
        "v1.k1.AAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAAAAAAA",
        "plaintext",
    ] {
        assert!(
            matches!(
                enc.decrypt(input),
                Err(EncryptionError::MalformedCiphertext { .. })
            ),
            "{input:?} gave {:?}",
            enc.decrypt(input)
        );
    }
    assert!(matches!(
        key_id_of("v1.k1"),
        Err(EncryptionError::MalformedCiphertext { .. })
    ));
}

fn keyring_error(value: &str) -> EncryptionError {
    Keyring::parse(value).unwrap_err()
}

#[test]
fn a_missing_or_blank_keyring_is_key_missing() {
    for value in ["", "   ", "\n"] {
        let err = keyring_error(value);
        assert_eq!(err, EncryptionError::KeyMissing);
        assert!(err.to_string().contains("AIRISK_ENCRYPTION_KEYS"));
    }
}

#[test]
fn each_malformed_keyring_entry_is_named_by_position_and_key_id_without_key_material() {
    let good = entry("k0", 9);
    let short = format!("k1:{}", STANDARD.encode(&key(1)[..16]));
    let unpadded = format!("k1:{}", STANDARD.encode(key(1)).trim_end_matches('='));
    let urlsafe = format!("k1:{}", URL_SAFE_NO_PAD.encode(key(1)));
    let no_colon = STANDARD.encode(key(1));
    let bad_kid = format!("bad.kid:{}", STANDARD.encode(key(1)));
    let reversed = format!("{}:k1", STANDARD.encode(key(1)));
    let cases: Vec<(String, usize, Option<&str>, KeyProblem)> = vec![
        (
            format!("{good},{short}"),
            2,
            Some("k1"),
            KeyProblem::WrongLength { len: 16 },
        ),
        (
            format!("{good},{unpadded}"),
            2,
            Some("k1"),
            KeyProblem::InvalidBase64,
        ),
        (
            format!("{good},{urlsafe}"),
            2,
            Some("k1"),
            KeyProblem::InvalidBase64,
        ),
        (
            format!("{good},k1:not base64!"),
            2,
            Some("k1"),
            KeyProblem::InvalidBase64,
        ),
        (
            format!("{good},{no_colon}"),
            2,
            None,
            KeyProblem::MissingSeparator,
        ),
        (
            format!("{good},,{}", entry("k1", 1)),
            2,
            None,
            KeyProblem::EmptyEntry,
        ),
        (
            format!("{},{good}", entry("k0", 1)),
            2,
            Some("k0"),
            KeyProblem::DuplicateKeyId { first: 1 },
        ),
    ];
    for (value, position, kid, problem) in cases {
        let err = keyring_error(&value);
        assert_eq!(
            err,
            EncryptionError::KeyInvalid {
                position,
                kid: kid.map(|k| EncryptionKeyId::parse(k).unwrap()),
                problem,
            },
            "{value}"
        );
        let message = err.to_string();
        assert!(message.contains("AIRISK_ENCRYPTION_KEYS"), "{message}");
        assert!(message.contains(&format!("entry {position}")), "{message}");
        if let Some(kid) = kid {
            assert!(message.contains(kid), "{message}");
        }
        assert_no_key_material(&message, 1);
        assert_no_key_material(&message, 9);
        assert_no_key_material(&format!("{err:?}"), 1);
    }

    // An invalid key id is not echoed: it may be a key pasted in the wrong place.
    for value in [bad_kid, reversed] {
        let err = keyring_error(&value);
        assert!(
            matches!(
                err,
                EncryptionError::KeyInvalid {
                    position: 1,
                    kid: None,
                    problem: KeyProblem::InvalidKeyId(_),
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains("bad.kid"));
        assert_no_key_material(&err.to_string(), 1);
        assert_no_key_material(&format!("{err:?}"), 1);
    }
}

#[test]
fn blanks_around_entries_are_ignored_and_the_first_entry_is_primary() {
    let keyring = Keyring::parse(&format!(" {} ,\n{} ", entry("new", 2), entry("old", 1))).unwrap();
    assert_eq!(keyring.primary_kid().as_str(), "new");
    let kids: Vec<&str> = keyring.kids().map(EncryptionKeyId::as_str).collect();
    assert_eq!(kids, ["new", "old"]);
    assert_eq!(keyring.len(), 2);
    assert!(!keyring.is_empty());
}

#[test]
fn old_ciphertexts_still_decrypt_after_rotation_and_rewrap_moves_them_to_the_primary() {
    let c = ctx("acme", "model.api-key");
    let before = encryptor(&entry("old", 1));
    let free = before.encrypt("free value").unwrap();
    let bound = before.encrypt_with_context("bound value", &c).unwrap();

    let rotated = encryptor(&format!("{},{}", entry("new", 2), entry("old", 1)));
    assert_eq!(rotated.decrypt(&free).unwrap(), "free value");
    assert_eq!(
        rotated.decrypt_with_context(&bound, &c).unwrap(),
        "bound value"
    );
    assert!(rotated.encrypt("x").unwrap().starts_with("v1.new."));

    let free2 = rotated.rewrap(&free, None).unwrap();
    let bound2 = rotated.rewrap(&bound, Some(&c)).unwrap();
    for sealed in [&free2, &bound2] {
        assert!(sealed.starts_with("v1.new."), "{sealed}");
        assert_eq!(key_id_of(sealed).unwrap().as_str(), "new");
    }

    // Once everything is rewrapped, the old key can go.
    let after = encryptor(&entry("new", 2));
    assert_eq!(after.decrypt(&free2).unwrap(), "free value");
    assert_eq!(
        after.decrypt_with_context(&bound2, &c).unwrap(),
        "bound value"
    );
    assert!(matches!(
        after.decrypt(&free),
        Err(EncryptionError::UnknownKeyId { .. })
    ));
    // The context survives the rewrap.
    assert_eq!(
        after.decrypt(&bound2).unwrap_err(),
        EncryptionError::DecryptionFailed
    );
}

#[test]
fn rewrap_authenticates_and_leaves_primary_ciphertexts_unchanged() {
    let enc = encryptor(&format!("{},{}", entry("new", 2), entry("old", 1)));
    let current = enc.encrypt("v").unwrap();
    assert_eq!(enc.rewrap(&current, None).unwrap(), current);

    let (kid, mut payload) = decode(&current);
    payload[20] ^= 1;
    assert_eq!(
        enc.rewrap(&encode(&kid, &payload), None).unwrap_err(),
        EncryptionError::DecryptionFailed
    );
    // Wrong context on rewrap fails like on decrypt.
    let bound = encryptor(&entry("old", 1))
        .encrypt_with_context("v", &ctx("acme", "p"))
        .unwrap();
    assert_eq!(
        enc.rewrap(&bound, Some(&ctx("globex", "p"))).unwrap_err(),
        EncryptionError::DecryptionFailed
    );
}

#[test]
fn no_nonce_repeats_over_100_000_encryptions() {
    let enc = encryptor(&entry("k1", 1));
    let mut nonces = HashSet::with_capacity(100_000);
    for _ in 0..100_000 {
        let (_, payload) = decode(&enc.encrypt("").unwrap());
        let nonce: [u8; 12] = payload[..12].try_into().unwrap();
        assert!(nonces.insert(nonce), "nonce {} repeated", hex(&nonce));
    }
}

#[test]
fn debug_and_display_show_key_ids_but_no_key_material() {
    let keyring = Keyring::parse(&format!("{},{}", entry("new", 1), entry("old", 2))).unwrap();
    let keyring_debug = format!("{keyring:?}");
    let keyring_alt = format!("{keyring:#?}");
    let keyring_display = keyring.to_string();
    let enc = Encryptor::new(keyring);
    for text in [
        keyring_debug,
        keyring_alt,
        keyring_display,
        format!("{enc:?}"),
        format!("{enc:#?}"),
        enc.to_string(),
    ] {
        assert!(text.contains("new") && text.contains("old"), "{text}");
        assert_no_key_material(&text, 1);
        assert_no_key_material(&text, 2);
    }
}

#[test]
fn bytes_round_trip_and_non_utf8_is_reported_by_the_text_api() {
    let enc = encryptor(&entry("k1", 1));
    let c = ctx("acme", "blob");
    let raw = [0xff_u8, 0xfe, 0, 1, 2];
    let sealed = enc.encrypt_bytes(&raw, Some(&c)).unwrap();
    assert_eq!(
        enc.decrypt_bytes(&sealed, Some(&c)).unwrap().as_slice(),
        raw
    );
    assert_eq!(
        enc.decrypt_with_context(&sealed, &c).unwrap_err(),
        EncryptionError::PlaintextNotUtf8
    );
    // Text sealed by `encrypt` opens as bytes too.
    let text = enc.encrypt("héllo").unwrap();
    assert_eq!(
        enc.decrypt_bytes(&text, None).unwrap().as_slice(),
        "héllo".as_bytes()
    );
}

#[test]
fn key_ids_and_purposes_are_validated() {
    for ok in ["k1", "K_2026-01", "a", &"x".repeat(32)] {
        assert!(EncryptionKeyId::parse(ok).is_ok(), "{ok}");
    }
    for bad in ["", "k.1", "k 1", "-k", "_k", "kü", &"x".repeat(33), "k:1"] {
        assert!(EncryptionKeyId::parse(bad).is_err(), "{bad}");
    }
    for ok in ["api-key", "model.api_key", "p", "2fa.seed", &"p".repeat(64)] {
        assert!(Purpose::parse(ok).is_ok(), "{ok}");
    }
    for bad in ["", "Api", "a b", ".a", "a/b", &"p".repeat(65)] {
        assert!(Purpose::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        Purpose::parse("").unwrap_err(),
        IdentifierError::Empty { kind: "purpose" }
    );
}

#[test]
fn generated_entries_parse_as_a_keyring() {
    let kid =
        EncryptionKeyId::generate(chrono::NaiveDate::from_ymd_opt(2026, 1, 27).unwrap()).unwrap();
    assert!(kid.as_str().starts_with("k20260127-"), "{kid}");
    assert_eq!(kid.as_str().len(), "k20260127-".len() + 6);
    let first = generate_key_entry(&kid).unwrap();
    let second = generate_key_entry(&kid).unwrap();
    assert_ne!(*first, *second);
    let keyring = Keyring::parse(&first).unwrap();
    assert_eq!(keyring.primary_kid(), &kid);
    let enc = Encryptor::new(keyring);
    assert_eq!(enc.decrypt(&enc.encrypt("x").unwrap()).unwrap(), "x");
}

#[test]
fn encryptor_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Encryptor>();
    assert_send_sync::<Keyring>();
}

// ---- interoperability: the documented format, read by other implementations ----

/// The AAD of the documentation, built here independently of the library.
fn documented_aad(kid: &str, context: Option<(&str, &str)>) -> Vec<u8> {
    let mut aad = b"airisk.v1\x00".to_vec();
    aad.extend_from_slice(kid.as_bytes());
    aad.push(0);
    if let Some((tenant, purpose)) = context {
        for field in [tenant, purpose] {
            aad.extend_from_slice(&u16::try_from(field.len()).unwrap().to_be_bytes());
            aad.extend_from_slice(field.as_bytes());
        }
    }
    aad
}

/// Vectors made once with Python's `cryptography` 48 (`AESGCM(key).encrypt(nonce, pt, aad)`), key
/// = bytes 0..32, with the AAD of `docs/ENCRYPTION.md`. Python is not needed to run this test.
const PYTHON_KEYRING: &str = "py2026:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const PYTHON_NO_CONTEXT: &str =
    "v1.py2026.AAECAwQFBgcICQoLL2e6d6rFpGniLLf7yJ0QAu3CVmLVxz5dMui1oEbcbScR";
const PYTHON_WITH_CONTEXT: &str =
    "v1.py2026.oKGio6SlpqeoqaqrlXNRQSy9Z5KszKriNUl8iL_Ru3oMIR2WYXViQQfW";
const PYTHON_EMPTY: &str = "v1.py2026.AAECAwQFBgcICQoL_UfXSYmMZQD-bF9gFtZlUA";

#[test]
fn ciphertexts_made_by_python_cryptography_decrypt() {
    let enc = encryptor(PYTHON_KEYRING);
    assert_eq!(enc.decrypt(PYTHON_NO_CONTEXT).unwrap(), "hello from python");
    assert_eq!(
        enc.decrypt_with_context(PYTHON_WITH_CONTEXT, &ctx("acme", "model.api-key"))
            .unwrap(),
        "sk-live-Ω-123"
    );
    assert_eq!(enc.decrypt(PYTHON_EMPTY).unwrap(), "");
    assert!(
        enc.decrypt_with_context(PYTHON_WITH_CONTEXT, &ctx("acme", "model.api-keys"))
            .is_err()
    );
}

/// Opens `sealed` with raw AES-256-GCM under `key(seed)` and the documented AAD: the oracle for
/// the ciphertext format, independent of [`Encryptor`]'s own opening.
fn open_raw(
    seed: u8,
    sealed: &str,
    context: Option<(&str, &str)>,
) -> Result<Vec<u8>, ring::error::Unspecified> {
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

    let raw = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key(seed)).unwrap());
    let (kid, payload) = decode(sealed);
    let (nonce, rest) = payload.split_at(12);
    let mut in_out = rest.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce).unwrap();
    let aad = documented_aad(&kid, context);
    raw.open_in_place(nonce, Aad::from(&aad[..]), &mut in_out)
        .map(|plaintext| plaintext.to_vec())
}

#[test]
fn ciphertexts_open_with_raw_aes_gcm_and_the_documented_aad() {
    let enc = encryptor(&entry("k1", 3));
    let open = |sealed: &str, context: Option<(&str, &str)>| {
        open_raw(3, sealed, context).map(|plaintext| String::from_utf8(plaintext).unwrap())
    };
    assert_eq!(open(&enc.encrypt("plain").unwrap(), None).unwrap(), "plain");
    let sealed = enc
        .encrypt_with_context("bound", &ctx("acme", "api-key"))
        .unwrap();
    assert_eq!(open(&sealed, Some(("acme", "api-key"))).unwrap(), "bound");
    assert!(open(&sealed, None).is_err());
    assert_eq!(
        hex(&documented_aad("k1", Some(("acme", "api-key")))),
        "6169726973 6b2e7631 00 6b31 00 0004 61636d65 0007 6170692d6b6579".replace(' ', "")
    );
}

#[test]
fn plaintexts_around_the_copy_pieces_open_with_raw_aes_gcm_byte_for_byte() {
    // The plaintext is copied into the sealing buffer in 1 KiB pieces: a piece dropped, repeated
    // or cut short at any boundary would change what raw AES-GCM opens.
    let enc = encryptor(&entry("k1", 5));
    for len in [
        0, 1, 1_023, 1_024, 1_025, 2_047, 2_048, 2_049, 4_096, 6_144, 16_384, 16_385, 65_537,
    ] {
        // Every 1 KiB piece different from its neighbours (the index in the low and high byte).
        let plaintext: Vec<u8> = (0..len)
            .map(|i: usize| (i as u8) ^ ((i >> 10) as u8).rotate_left(3))
            .collect();
        let sealed = enc.encrypt_bytes(&plaintext, None).unwrap();
        let (_, payload) = decode(&sealed);
        assert_eq!(
            payload.len(),
            12 + len + 16,
            "nonce, ciphertext, tag for {len} bytes"
        );
        let opened = open_raw(5, &sealed, None).unwrap();
        assert!(opened == plaintext, "{len} bytes opened differently");
    }
}

// ---- properties ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_text_round_trips_with_or_without_context(
        plaintext in any::<String>(),
        tenant in "[a-z0-9][a-z0-9_-]{0,20}",
        purpose in "[a-z0-9][a-z0-9._-]{0,20}",
        with_context in any::<bool>(),
    ) {
        let enc = encryptor(&entry("k1", 1));
        if with_context {
            let c = ctx(&tenant, &purpose);
            let sealed = enc.encrypt_with_context(&plaintext, &c).unwrap();
            prop_assert_eq!(enc.decrypt_with_context(&sealed, &c).unwrap(), plaintext);
        } else {
            let sealed = enc.encrypt(&plaintext).unwrap();
            prop_assert_eq!(enc.decrypt(&sealed).unwrap(), plaintext);
        }
    }

    #[test]
    fn any_single_byte_change_of_the_payload_is_detected(
        plaintext in proptest::collection::vec(any::<u8>(), 0..200),
        position in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let enc = encryptor(&entry("k1", 1));
        let c = ctx("acme", "blob");
        let sealed = enc.encrypt_bytes(&plaintext, Some(&c)).unwrap();
        let (kid, mut payload) = decode(&sealed);
        let i = position.index(payload.len());
        payload[i] ^= mask;
        prop_assert_eq!(
            enc.decrypt_bytes(&encode(&kid, &payload), Some(&c)).unwrap_err(),
            EncryptionError::DecryptionFailed
        );
    }
}

#[test]
fn a_row_or_subject_of_up_to_1024_bytes_is_bound_and_one_byte_more_is_refused() {
    // The documented limit (ENCRYPTION.md: a row identity is at most 1024 bytes), written out.
    let e = encryptor(&entry("k1", 1));
    for len in [0, 1, 1023, 1024] {
        let row = "r".repeat(len);
        let with_row = ctx("acme", "prompt.body").with_row(row.clone()).unwrap();
        let sealed = e.encrypt_with_context("x", &with_row).unwrap();
        assert_eq!(
            e.decrypt_with_context(&sealed, &with_row).unwrap(),
            "x",
            "row of {len}"
        );
        let with_subject = ctx("acme", "prompt.body").with_subject(row).unwrap();
        let sealed = e.encrypt_with_context("x", &with_subject).unwrap();
        assert_eq!(
            e.decrypt_with_context(&sealed, &with_subject).unwrap(),
            "x",
            "subject of {len}"
        );
    }
    for len in [1025, 4096] {
        assert_eq!(
            ctx("acme", "prompt.body").with_row("r".repeat(len)).err(),
            Some(EncryptionError::RowTooLong { len }),
        );
        assert_eq!(
            ctx("acme", "prompt.body")
                .with_subject("s".repeat(len))
                .err(),
            Some(EncryptionError::RowTooLong { len }),
        );
    }
}

#[test]
fn a_keyring_prints_its_primary_then_its_decrypt_only_ids_in_order() {
    let one = Keyring::parse(&entry("k1", 1)).unwrap();
    assert_eq!(one.to_string(), "keyring of 1 key(s), primary k1");
    let three = Keyring::parse(&format!(
        "{},{},{}",
        entry("k3", 3),
        entry("k2", 2),
        entry("k1", 1)
    ))
    .unwrap();
    assert_eq!(
        three.to_string(),
        "keyring of 3 key(s), primary k3, decrypt-only k2, k1"
    );
}

#[test]
fn raw_keys_make_a_keyring_whose_first_is_primary_and_a_repeated_id_is_refused() {
    let kid = |s: &str| EncryptionKeyId::parse(s).unwrap();
    let (a, b) = (key(1), key(2));
    let keyring = Keyring::from_raw_keys(&[(kid("dek-2"), &b), (kid("dek-1"), &a)]).unwrap();
    assert_eq!(
        keyring.to_string(),
        "keyring of 2 key(s), primary dek-2, decrypt-only dek-1"
    );
    // What the raw keys seal, a keyring parsed from the same keys in text opens.
    let sealed = Encryptor::new(keyring).encrypt("x").unwrap();
    let parsed = encryptor(&format!("{},{}", entry("dek-2", 2), entry("dek-1", 1)));
    assert_eq!(parsed.decrypt(&sealed).unwrap(), "x");

    let err = Keyring::from_raw_keys(&[(kid("dek-1"), &a), (kid("dek-2"), &b), (kid("dek-1"), &b)])
        .unwrap_err();
    assert_eq!(
        err,
        EncryptionError::KeyInvalid {
            position: 3,
            kid: Some(kid("dek-1")),
            problem: KeyProblem::DuplicateKeyId { first: 1 },
        }
    );
    assert!(matches!(
        Keyring::from_raw_keys(&[]),
        Err(EncryptionError::KeyMissing)
    ));
}

#[test]
fn a_payload_shorter_than_nonce_and_tag_is_too_short_whatever_its_characters() {
    // 16 characters of nonce, then fewer than the 22 a 16-byte tag needs: the length is judged
    // before the characters, so junk and valid base64 give the same reason.
    let enc = encryptor(&entry("k1", 1));
    for tail in [String::new(), "!!".into(), "A".repeat(21), "!".repeat(21)] {
        let input = format!("v1.k1.{}{tail}", "A".repeat(16));
        assert_eq!(
            enc.decrypt(&input),
            Err(EncryptionError::MalformedCiphertext {
                reason: "payload is too short"
            }),
            "{input}"
        );
    }
}

#[test]
fn a_text_that_is_not_v1_is_told_apart_from_another_version() {
    let enc = encryptor(&entry("k1", 1));
    let reason = |input: &str| match enc.decrypt(input) {
        Err(EncryptionError::MalformedCiphertext { reason }) => reason,
        other => panic!("{input:?} gave {other:?}"),
    };
    for other_version in ["v2.k1.AAAA", "v0.k1", "vx."] {
        assert_eq!(
            reason(other_version),
            "unsupported format version (expected v1)",
            "{other_version}"
        );
    }
    for not_a_ciphertext in ["version", "x.y", "plain text.", "V1.k1.AAAA"] {
        assert_eq!(
            reason(not_a_ciphertext),
            "does not start with 'v1.'",
            "{not_a_ciphertext}"
        );
    }
}

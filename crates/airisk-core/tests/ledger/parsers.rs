//! Every parser that takes outside input, fed arbitrary input: it never panics, a refusal is a
//! typed error, and whatever it accepts round-trips (what it prints parses back to the same
//! value). The coverage-guided fuzz targets in `fuzz/` run the same parsers for longer
//! (`scripts/fuzz.sh`); these properties keep them honest on every `cargo test`.

use airisk_core::governance::audit_record::{AuditEvent, AuditEventInput, AuditRecord, Outcome};
use airisk_core::ledger::{
    Checkpoint, Hash, LedgerName, LedgerSigner, LedgerVerifier, Origin, to_canonical_json,
    verify_checkpoint,
};
use airisk_core::security::encryption::{EncryptionKeyId, Encryptor, Keyring, key_id_of};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use serde_json::Value;

/// Arbitrary JSON values, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn signer() -> LedgerSigner {
    LedgerSigner::generate(LedgerName::parse("bank.example/ledger").unwrap()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // ---- keyring strings and ciphertexts ----

    #[test]
    fn a_keyring_string_never_panics_and_what_parses_keeps_its_order(s in "\\PC{0,200}") {
        if let Ok(k) = Keyring::parse(&s) {
            let kids: Vec<&str> = s.split(',').filter_map(|e| e.split_once(':')).map(|(k, _)| k.trim()).collect();
            prop_assert_eq!(k.kids().map(EncryptionKeyId::as_str).collect::<Vec<_>>(), kids);
        }
    }

    #[test]
    fn generated_keyrings_round_trip(
        kids in prop::collection::btree_set("[a-z0-9][a-z0-9_-]{0,10}", 1..5),
        seed in any::<u8>(),
    ) {
        let kids: Vec<String> = kids.into_iter().collect();
        let text = kids
            .iter()
            .enumerate()
            .map(|(i, kid)| format!("{kid}:{}", STANDARD.encode([seed.wrapping_add(i as u8); 32])))
            .collect::<Vec<_>>()
            .join(",");
        let k = Keyring::parse(&text).unwrap();
        prop_assert_eq!(k.kids().map(|k| k.as_str().to_owned()).collect::<Vec<_>>(), kids);
    }

    #[test]
    fn an_arbitrary_ciphertext_is_refused_with_a_typed_error(s in "\\PC{0,120}", raw in prop::collection::vec(any::<u8>(), 0..80)) {
        let enc = Encryptor::from_env_value(&format!("k1:{}", STANDARD.encode([7u8; 32]))).unwrap();
        prop_assert!(enc.decrypt(&s).is_err());
        let _ = key_id_of(&s);
        // Well-formed framing around random bytes: still refused, never a panic.
        let framed = format!("v1.k1.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw));
        prop_assert!(enc.decrypt(&framed).is_err());
    }

    #[test]
    fn a_sealed_value_round_trips(plain in "\\PC{0,100}") {
        let enc = Encryptor::from_env_value(&format!("k1:{}", STANDARD.encode([7u8; 32]))).unwrap();
        let sealed = enc.encrypt(&plain).unwrap();
        let kid = key_id_of(&sealed).unwrap();
        prop_assert_eq!(kid.as_str(), "k1");
        prop_assert_eq!(enc.decrypt(&sealed).unwrap(), plain);
    }

    // ---- verifier keys, checkpoint bodies and signed notes ----

    #[test]
    fn a_verifier_key_never_panics_and_round_trips(s in "\\PC{0,120}") {
        if let Ok(v) = LedgerVerifier::parse(&s) {
            let again = LedgerVerifier::parse(&v.to_verifier_key()).unwrap();
            prop_assert_eq!(again.to_verifier_key(), v.to_verifier_key());
        }
    }

    #[test]
    fn a_mangled_verifier_key_is_refused_or_is_another_valid_key(i in any::<prop::sample::Index>(), c in any::<char>()) {
        let key = signer().verifier().to_verifier_key();
        let mut chars: Vec<char> = key.chars().collect();
        let at = i.index(chars.len());
        chars[at] = c;
        let mangled: String = chars.into_iter().collect();
        if let Ok(v) = LedgerVerifier::parse(&mangled) {
            prop_assert_eq!(v.to_verifier_key(), mangled);
        }
    }

    #[test]
    fn a_checkpoint_body_never_panics_and_round_trips(s in "\\PC{0,120}") {
        if let Ok(c) = Checkpoint::parse_body(&s) {
            prop_assert_eq!(Checkpoint::parse_body(&c.to_body()).unwrap(), c);
        }
    }

    #[test]
    fn generated_checkpoints_round_trip(tenant in "[a-z0-9][a-z0-9_-]{0,20}", size in any::<u64>(), root in any::<[u8; 32]>()) {
        let origin = Origin::parse(&format!("bank.example/ledger/{tenant}")).unwrap();
        let c = Checkpoint::new(origin, size, Hash::from(root));
        prop_assert_eq!(Checkpoint::parse_body(&c.to_body()).unwrap(), c);
    }

    #[test]
    fn an_arbitrary_or_mangled_note_never_verifies(s in "\\PC{0,300}", i in any::<prop::sample::Index>(), c in any::<char>()) {
        let signer = signer();
        let verifier = signer.verifier();
        prop_assert!(verify_checkpoint(&s, &verifier).is_err());
        let origin = Origin::parse("bank.example/ledger/acme").unwrap();
        let note = Checkpoint::new(origin, 3, Hash::from([9u8; 32])).sign(&signer).unwrap();
        let text = note.note_text().to_owned();
        prop_assert!(verify_checkpoint(&text, &verifier).is_ok());
        let mut chars: Vec<char> = text.chars().collect();
        let at = i.index(chars.len());
        if chars[at] != c {
            chars[at] = c;
            let mangled: String = chars.into_iter().collect();
            // A change anywhere is refused (the signature covers the body; the signature line
            // itself must decode to the one valid signature).
            prop_assert!(verify_checkpoint(&mangled, &verifier).is_err(), "{:?}", mangled);
        }
    }

    // ---- canonical JSON and audit leaves (the lines of an export carry these) ----

    /// Idempotent, except (by RFC 8785's design) for doubles it prints as integers beyond the
    /// safe range, which audit metadata refuses (see the test below).
    #[test]
    fn canonical_json_is_idempotent(v in json_value()) {
        prop_assume!(!has_large_integral_double(&v));
        if let Ok(text) = to_canonical_json(&v) {
            let back: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(to_canonical_json(&back).unwrap(), text);
        }
    }

    #[test]
    fn arbitrary_leaf_bytes_never_panic_and_what_parses_is_canonical(bytes in prop::collection::vec(any::<u8>(), 0..300), v in json_value()) {
        if let Ok(r) = AuditRecord::from_leaf_bytes(&bytes) {
            prop_assert_eq!(r.leaf_bytes(), bytes.as_slice());
        }
        let text = serde_json::to_vec(&v).unwrap();
        if let Ok(r) = AuditRecord::from_leaf_bytes(&text) {
            prop_assert_eq!(r.leaf_bytes(), text.as_slice());
        }
    }

    #[test]
    fn generated_records_round_trip_through_their_leaf(
        actor in "[a-z][a-z0-9.@-]{0,20}",
        resource in "\\PC{1,30}",
        reason in proptest::option::of("\\PC{1,40}"),
        meta in proptest::option::of(prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..4)),
        seq in 0u64..1_000_000,
    ) {
        let Ok(event) = AuditEvent::parse(
            uuid::Uuid::now_v7(),
            Outcome::Success,
            AuditEventInput {
                actor,
                tenant_id: "acme".into(),
                action: "model.register".into(),
                resource_type: "model".into(),
                resource_id: resource,
                reason,
                correlation_id: "corr-1".into(),
                metadata: meta.map(|m| serde_json::to_value(m).unwrap()),
            },
        ) else {
            return Ok(());
        };
        let record = event.seal(seq, chrono::Utc::now()).unwrap();
        // Every record that could be sealed reads back, to the same bytes and fields (metadata
        // numbers may change representation, e.g. 1.0 reads back as 1, which prints the same).
        let back = AuditRecord::from_leaf_bytes(record.leaf_bytes()).unwrap();
        prop_assert_eq!(back.leaf_bytes(), record.leaf_bytes());
        prop_assert_eq!(back.seq(), record.seq());
        prop_assert_eq!(back.event().id(), record.event().id());
    }

    #[test]
    fn arbitrary_event_input_json_never_panics(v in json_value()) {
        if let Ok(input) = serde_json::from_value::<AuditEventInput>(v) {
            let _ = AuditEvent::parse(uuid::Uuid::now_v7(), Outcome::Success, input);
        }
    }
}

/// Found by `canonical_json_is_idempotent`: RFC 8785 prints a double between 2^53 and 1e21 as an
/// integer literal (`320495088182348350`, as the RFC's own samples require), and a JSON parser
/// reads that back as an integer beyond the safe range, which canonical JSON refuses. So a record
/// whose metadata held such a double could be sealed but never read back (`from_leaf_bytes`
/// failed: verification would have reported an intact entry as malformed, and any analyst could
/// append one over HTTP). Such metadata is now refused when the event is made, and with it every
/// whole number beyond ±(2^53 - 1) however it is written (`1e21` too): the rule the API document
/// states, so no client has to know where RFC 8785 switches to exponent form.
#[test]
fn metadata_with_a_double_that_prints_as_an_unsafe_integer_is_refused() {
    for x in [
        3.204_950_881_823_483_5e17_f64,
        9_007_199_254_740_992.0,
        -1e20,
        1e21,
        1e300,
    ] {
        let v = serde_json::json!({ "deep": [{ "x": x }] });
        // The canonicaliser itself stays RFC 8785: it prints the double.
        assert!(to_canonical_json(&v).is_ok());
        let got = AuditEvent::parse(uuid::Uuid::now_v7(), Outcome::Success, input(Some(v)));
        assert!(
            matches!(
                got,
                Err(airisk_core::governance::audit_record::AuditValidationError::MetadataNotCanonical { .. })
            ),
            "{x}: {got:?}"
        );
    }
    // Still accepted, and read back: the largest safe integer as a double, ordinary fractions.
    for x in [9_007_199_254_740_991.0_f64, 0.5, -2.5e-300, 1.5e-7] {
        let event = AuditEvent::parse(
            uuid::Uuid::now_v7(),
            Outcome::Success,
            input(Some(serde_json::json!({ "x": x }))),
        )
        .unwrap();
        let record = event.seal(0, chrono::Utc::now()).unwrap();
        let back = AuditRecord::from_leaf_bytes(record.leaf_bytes()).unwrap();
        assert_eq!(back.leaf_bytes(), record.leaf_bytes(), "{x}");
    }
}

fn input(metadata: Option<Value>) -> AuditEventInput {
    AuditEventInput {
        actor: "ann".into(),
        tenant_id: "acme".into(),
        action: "model.register".into(),
        resource_type: "model".into(),
        resource_id: "m".into(),
        reason: None,
        correlation_id: "c".into(),
        metadata,
    }
}

/// Whether `v` holds a double that RFC 8785 prints as an integer literal beyond 2^53 - 1.
fn has_large_integral_double(v: &Value) -> bool {
    match v {
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .is_some_and(|f| f.abs() >= 9_007_199_254_740_992.0 && f.abs() < 1e21),
        Value::Array(a) => a.iter().any(has_large_integral_double),
        Value::Object(o) => o.values().any(has_large_integral_double),
        _ => false,
    }
}

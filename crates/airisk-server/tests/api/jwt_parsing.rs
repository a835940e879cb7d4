//! The bearer-token parser fed arbitrary input: never a panic, never a principal from a token it
//! should refuse. (The coverage-guided target `fuzz/fuzz_targets/jwt.rs` runs the same parser for
//! longer.)

use airisk_core::security::rbac::Role;
use airisk_server::auth::{
    Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER, JwtVerifier, TokenSigner, generate_ed25519, now_secs,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::support::SECRET;

fn verifier() -> (JwtVerifier, TokenSigner) {
    let (pkcs8, jwks) = generate_ed25519().unwrap();
    let verifier = JwtVerifier::new(DEFAULT_ISSUER, DEFAULT_AUDIENCE)
        .with_jwks(&jwks)
        .unwrap()
        .dangerous_with_hs256_secret(SECRET)
        .unwrap();
    (verifier, TokenSigner::ed25519_from_pkcs8(&pkcs8).unwrap())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 16, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("alg".to_owned()),
                    Just("kid".to_owned()),
                    Just("sub".to_owned()),
                    Just("role".to_owned()),
                    Just("tenant".to_owned()),
                    Just("exp".to_owned()),
                    "[a-z]{1,5}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn an_arbitrary_string_is_refused(s in "\\PC{0,300}") {
        let (v, _) = verifier();
        prop_assert!(v.verify(&s).is_err());
    }

    #[test]
    fn arbitrary_header_and_payload_json_with_any_signature_is_refused(
        header in json_value(),
        payload in json_value(),
        signature in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let (v, _) = verifier();
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap()),
            URL_SAFE_NO_PAD.encode(&signature)
        );
        prop_assert!(v.verify(&token).is_err());
    }

    #[test]
    fn arbitrary_claims_signed_with_a_trusted_key_yield_exactly_their_principal_or_a_refusal(
        extra in json_value(),
        role in prop_oneof![Just("admin"), Just("viewer"), Just("root"), Just("Admin")],
        tenant in prop_oneof![Just("acme"), Just("Acme Corp"), Just("")],
        sub in "\\PC{0,20}",
        hs in any::<bool>(),
    ) {
        let (v, eddsa) = verifier();
        let mut claims = json!({
            "iss": DEFAULT_ISSUER, "aud": DEFAULT_AUDIENCE, "sub": sub, "role": role,
            "tenant": tenant, "exp": now_secs() + 60,
        });
        if let (Value::Object(extra), Some(c)) = (extra, claims.as_object_mut()) {
            for (k, val) in extra {
                c.entry(k).or_insert(val);
            }
        }
        let signer = if hs { TokenSigner::Hs256(Zeroizing::new(SECRET.to_vec())) } else { eddsa };
        let token = signer.sign(&claims).unwrap();
        if let Ok(p) = v.verify(&token) {
            prop_assert_eq!(p.role().as_str(), role);
            prop_assert_eq!(p.tenant().as_str(), tenant);
            // The one canonical identity: an ASCII `sub` is its lower case; anything else is
            // accepted only if it folds (NFKC, lower case) into the ASCII actor set.
            if sub.is_ascii() {
                prop_assert_eq!(p.actor().as_str(), sub.to_ascii_lowercase());
            } else {
                prop_assert!(p.actor().as_str().is_ascii());
            }
        }
    }

    #[test]
    fn a_valid_token_with_one_character_changed_is_refused(i in any::<prop::sample::Index>(), c in "[A-Za-z0-9_.-]") {
        let (v, eddsa) = verifier();
        let token = eddsa.sign(&Claims::new("ann", "acme", Role::Admin, 600)).unwrap();
        prop_assert!(v.verify(&token).is_ok());
        let mut chars: Vec<char> = token.chars().collect();
        let at = i.index(chars.len());
        let c = c.chars().next().unwrap();
        prop_assume!(chars[at] != c);
        chars[at] = c;
        let mangled: String = chars.into_iter().collect();
        // Base64url has slack bits in a final character: a change there may decode to the same
        // bytes, and then the token is the same token.
        if let Ok(p) = v.verify(&mangled) {
            prop_assert_eq!(p.actor().as_str(), "ann");
            prop_assert_eq!(p.role(), Role::Admin);
        }
    }
}

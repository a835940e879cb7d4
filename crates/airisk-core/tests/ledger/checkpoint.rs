//! Signed checkpoints: C2SP tlog-checkpoint bodies in Ed25519 signed notes.

use airisk_core::ledger::{
    Checkpoint, CheckpointError, Hash, LedgerName, LedgerSigner, LedgerVerifier, MAX_NOTE_LEN,
    MAX_SIGNATURES, NoteKeyId, Origin, SIGNING_KEY_ENV, SignedCheckpoint, generate_key_pair,
    verify_checkpoint,
};
use airisk_core::security::tenant_context::TenantId;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

// An interoperability vector computed once, independently, with Python 3:
//
//   import hashlib, base64
//   from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
//   from cryptography.hazmat.primitives import serialization
//   seed = bytes(range(32)); name = "airisk.example/ledger"
//   sk = Ed25519PrivateKey.from_private_bytes(seed)
//   pub = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
//   kid = hashlib.sha256(name.encode() + b"\n" + b"\x01" + pub).digest()[:4]
//   root = bytes.fromhex("aeb6bcfe…6e77")  # roots.json, n = 3
//   body = "%s/acme\n3\n%s\n" % (name, base64.b64encode(root).decode())
//   note = body + "\n" + "\u2014 %s %s\n" % (name, base64.b64encode(kid + sk.sign(body.encode())).decode())
const PY_SEED: [u8; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    26, 27, 28, 29, 30, 31,
];
const PY_PUBLIC_KEY_HEX: &str = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
const PY_KEY_ID: &str = "4dcd3c3f";
const PY_VERIFIER_KEY: &str =
    "airisk.example/ledger+4dcd3c3f+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4";
const PY_SIGNING_KEY: &str =
    "PRIVATE+KEY+airisk.example/ledger+4dcd3c3f+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
const PY_NOTE: &str = "airisk.example/ledger/acme\n3\nrra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=\n\n\
\u{2014} airisk.example/ledger Tc08P0wa58FYjlpIfK4/7wdh6YBzO/xdgpV/v+lwDfKX2680oaG40Zdw3tPnlNhmwBiHiMAePhWK+O0phcPkXB5bCgk=\n";
const ROOT_3_HEX: &str = "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77";

fn ledger() -> LedgerName {
    LedgerName::parse("airisk.example/ledger").unwrap()
}

fn acme_checkpoint() -> Checkpoint {
    let origin = ledger().origin_for(&TenantId::parse("acme").unwrap());
    Checkpoint::new(origin, 3, Hash::from_hex(ROOT_3_HEX).unwrap())
}

/// Signs arbitrary text as a signed note with a raw seed, bypassing the library's checkpoint
/// rules, to build notes the library would never write.
fn sign_raw(seed: &[u8; 32], name: &str, key_id: [u8; 4], text: &str) -> String {
    let key = Ed25519KeyPair::from_seed_unchecked(seed).unwrap();
    let mut blob = key_id.to_vec();
    blob.extend_from_slice(key.sign(text.as_bytes()).as_ref());
    format!("{text}\n\u{2014} {name} {}\n", BASE64.encode(blob))
}

fn py_verifier() -> LedgerVerifier {
    LedgerVerifier::parse(PY_VERIFIER_KEY).unwrap()
}

#[test]
fn key_id_matches_an_independent_python_computation() {
    let key = Ed25519KeyPair::from_seed_unchecked(&PY_SEED).unwrap();
    let public_key: [u8; 32] = key.public_key().as_ref().try_into().unwrap();
    assert_eq!(
        public_key
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        PY_PUBLIC_KEY_HEX
    );
    let id = NoteKeyId::for_ed25519(&ledger(), &public_key);
    assert_eq!(id.to_string(), PY_KEY_ID);
    assert_eq!(id.to_u32(), 0x4dcd3c3f);
    assert_eq!(id.to_bytes(), [0x4d, 0xcd, 0x3c, 0x3f]);
    let verifier = LedgerVerifier::from_public_key(ledger(), public_key);
    assert_eq!(verifier.to_verifier_key(), PY_VERIFIER_KEY);
    assert_eq!(py_verifier(), verifier);
    // The parsed key exposes the public key Python derived from the seed.
    assert_eq!(py_verifier().public_key(), &public_key);
    assert_eq!(
        py_verifier()
            .public_key()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        PY_PUBLIC_KEY_HEX
    );
}

#[test]
fn rust_signs_the_python_vector_byte_for_byte_and_verifies_it() {
    // Ed25519 is deterministic: the same seed and body give the same signature.
    let signer = LedgerSigner::from_signing_key(PY_SIGNING_KEY).unwrap();
    assert_eq!(signer.key_id().to_string(), PY_KEY_ID);
    assert_eq!(signer.verifier().to_string(), PY_VERIFIER_KEY);
    let signed = acme_checkpoint().sign(&signer).unwrap();
    assert_eq!(signed.note_text(), PY_NOTE);
    assert_eq!(
        verify_checkpoint(PY_NOTE, &py_verifier()).unwrap(),
        acme_checkpoint()
    );
}

#[test]
fn body_is_the_three_c2sp_lines() {
    assert_eq!(
        acme_checkpoint().to_body(),
        "airisk.example/ledger/acme\n3\nrra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=\n"
    );
    assert_eq!(
        Checkpoint::parse_body(&acme_checkpoint().to_body()),
        Ok(acme_checkpoint())
    );
    let empty = Checkpoint::new(Origin::parse("x.example/l/t").unwrap(), 0, Hash::EMPTY_ROOT);
    assert_eq!(
        empty.to_body(),
        "x.example/l/t\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    );
    assert_eq!(Checkpoint::parse_body(&empty.to_body()), Ok(empty));
}

#[test]
fn sign_then_verify_round_trips_with_a_generated_key() {
    let signer = LedgerSigner::generate(ledger()).unwrap();
    let signed = acme_checkpoint().sign(&signer).unwrap();
    let opened = SignedCheckpoint::open(signed.note_text(), &signer.verifier()).unwrap();
    assert_eq!(opened, signed);
    assert_eq!(opened.checkpoint(), &acme_checkpoint());
    assert_eq!(opened.to_string(), signed.clone().into_note_text());
}

#[test]
fn generated_key_strings_parse_back_into_a_matching_pair() {
    let (signing_key, verifier_key) = generate_key_pair(&ledger()).unwrap();
    assert!(signing_key.starts_with("PRIVATE+KEY+airisk.example/ledger+"));
    let signer = LedgerSigner::from_signing_key(&signing_key).unwrap();
    let verifier = LedgerVerifier::parse(&verifier_key).unwrap();
    assert_eq!(signer.verifier(), verifier);
    assert_eq!(verifier.to_string(), verifier_key);
    let note = acme_checkpoint().sign(&signer).unwrap();
    assert_eq!(
        verify_checkpoint(note.note_text(), &verifier),
        Ok(acme_checkpoint())
    );
    // Two generations never collide.
    assert_ne!(generate_key_pair(&ledger()).unwrap().1, verifier_key);
}

#[test]
fn a_signature_by_another_key_is_rejected() {
    let other = LedgerSigner::generate(ledger()).unwrap();
    let note = acme_checkpoint().sign(&other).unwrap();
    // Same name, different key: a different key id, so the line is not ours and is ignored.
    assert_eq!(
        verify_checkpoint(note.note_text(), &py_verifier()),
        Err(CheckpointError::NoSignature {
            key_name: "airisk.example/ledger".into(),
            key_id: py_verifier().key_id(),
        })
    );
    // A forged line claiming our name and key id does not verify.
    let key_id = py_verifier().key_id().to_bytes();
    let forged = sign_raw(
        &[7; 32],
        "airisk.example/ledger",
        key_id,
        &acme_checkpoint().to_body(),
    );
    assert!(matches!(
        verify_checkpoint(&forged, &py_verifier()),
        Err(CheckpointError::InvalidSignature { .. })
    ));
}

#[test]
fn a_body_with_one_changed_byte_is_rejected() {
    for (from, to) in [("\n3\n", "\n4\n"), ("rra8", "rrb8"), ("/acme", "/acmf")] {
        let tampered = PY_NOTE.replacen(from, to, 1);
        assert_ne!(tampered, PY_NOTE);
        assert!(
            matches!(
                verify_checkpoint(&tampered, &py_verifier()),
                Err(CheckpointError::InvalidSignature { .. })
            ),
            "{from} -> {to}"
        );
    }
    // One changed byte in the signature itself.
    let sig_start = PY_NOTE.rfind(' ').unwrap() + 10;
    let mut bytes = PY_NOTE.as_bytes().to_vec();
    bytes[sig_start] = if bytes[sig_start] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    assert!(verify_checkpoint(&tampered, &py_verifier()).is_err());
}

#[test]
fn unknown_signatures_are_ignored_and_ours_must_be_present() {
    let witness = sign_raw(
        &[9; 32],
        "witness.example/w1",
        [1, 2, 3, 4],
        &acme_checkpoint().to_body(),
    );
    let witness_line = witness.rsplit_once("\n\n").unwrap().1;
    let cosigned = format!("{PY_NOTE}{witness_line}");
    assert_eq!(
        verify_checkpoint(&cosigned, &py_verifier()),
        Ok(acme_checkpoint())
    );
    assert!(matches!(
        verify_checkpoint(&witness, &py_verifier()),
        Err(CheckpointError::NoSignature { .. })
    ));
}

#[test]
fn key_id_mismatches_are_rejected() {
    let wrong_vkey = PY_VERIFIER_KEY.replace(PY_KEY_ID, "4dcd3c40");
    match LedgerVerifier::parse(&wrong_vkey) {
        Err(CheckpointError::KeyIdMismatch { stated, computed }) => {
            assert_eq!(stated.to_string(), "4dcd3c40");
            assert_eq!(computed, py_verifier().key_id());
        }
        other => panic!("{other:?}"),
    }
    let wrong_skey = PY_SIGNING_KEY.replace(PY_KEY_ID, "00000000");
    assert!(matches!(
        LedgerSigner::from_signing_key(&wrong_skey),
        Err(CheckpointError::KeyIdMismatch { .. })
    ));
    // Renaming the key changes its id, so a renamed verifier key string is rejected too.
    let renamed = PY_VERIFIER_KEY.replace("airisk.example/ledger", "other.example/ledger");
    assert!(matches!(
        LedgerVerifier::parse(&renamed),
        Err(CheckpointError::KeyIdMismatch { .. })
    ));
}

#[test]
fn malformed_key_strings_are_rejected_without_echoing_them() {
    let secret_b64 = "AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
    for bad in [
        "",
        "PRIVATE+KEY+",
        "PRIVATE+KEY+airisk.example/ledger+4dcd3c3f",
        "PRIVATE+KEY+airisk.example/ledger+4DCD3C3F+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f",
        "PRIVATE+KEY+airisk.example/ledger+4dcd3c3f+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4",
        "PRIVATE+KEY+airisk.example/ledger+4dcd3c3f+AgABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f",
        "PRIVATE+KEY+airisk.example/ledger+4dcd3c3f+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fIA==",
        "PRIVATE+KEY+ +4dcd3c3f+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f",
        "airisk.example/ledger+4dcd3c3f+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f",
    ] {
        let err = LedgerSigner::from_signing_key(bad).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains(secret_b64) && !shown.contains("AQABAgMEBQYHCAkK"),
            "{shown}"
        );
    }
    for bad in [
        "airisk.example/ledger",
        "airisk.example/ledger+4dcd3c3f",
        "airisk.example/ledger+4dcd3c3+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4",
        "airisk.example/ledger+4dcd3c3f+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG",
        "airisk.example/ledger+4dcd3c3f+AgOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4",
    ] {
        assert!(LedgerVerifier::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_signer_never_shows_its_key() {
    let signer = LedgerSigner::from_signing_key(PY_SIGNING_KEY).unwrap();
    let debug = format!("{signer:?}");
    assert!(debug.contains("redacted"), "{debug}");
    assert!(!debug.contains("AQABAgMEBQYHCAkK"), "{debug}");
    assert!(!debug.contains("000102030405"), "{debug}");
    assert!(!debug.contains("[0, 1, 2, 3"), "{debug}");
}

#[test]
fn from_env_reports_a_missing_variable() {
    // Tests cannot set variables (edition 2024 makes that unsafe); check the unset case only.
    if std::env::var_os(SIGNING_KEY_ENV).is_none() {
        assert_eq!(
            LedgerSigner::from_env().unwrap_err(),
            CheckpointError::MissingSigningKey {
                var: "AIRISK_LEDGER_SIGNING_KEY"
            }
        );
    }
}

#[test]
fn malformed_notes_are_rejected() {
    let v = py_verifier();
    let malformed = |note: &str| verify_checkpoint(note, &v).unwrap_err();
    let (body, sig) = PY_NOTE.rsplit_once("\n\n").unwrap();
    let cases = [
        ("no blank line", format!("{body}\n{sig}")),
        ("no final newline", PY_NOTE.trim_end().to_owned()),
        ("crlf", PY_NOTE.replace('\n', "\r\n")),
        ("no signatures", format!("{body}\n\n")),
        (
            "hyphen instead of em dash",
            PY_NOTE.replace('\u{2014}', "-"),
        ),
        ("bad base64", PY_NOTE.replace("Tc08P0", "Tc08P!")),
        ("unpadded base64", PY_NOTE.replace("gk=\n", "gk\n")),
        (
            "no space after the name",
            PY_NOTE.replace("ledger Tc08", "ledgerTc08"),
        ),
        ("tab", PY_NOTE.replace("acme", "ac\tme")),
        (
            "blank line inside the signatures",
            format!("{PY_NOTE}\n{sig}"),
        ),
    ];
    for (what, note) in cases {
        let err = malformed(&note);
        assert!(
            matches!(
                err,
                CheckpointError::MalformedNote { .. }
                    | CheckpointError::NoSignature { .. }
                    | CheckpointError::InvalidSignature { .. }
            ),
            "{what}: {err:?}"
        );
    }
    // Exactly MAX_SIGNATURES lines is allowed; one more is not.
    let at_limit = format!("{PY_NOTE}{}", sig.repeat(MAX_SIGNATURES - 1));
    assert_eq!(at_limit.matches('\u{2014}').count(), MAX_SIGNATURES);
    assert!(verify_checkpoint(&at_limit, &v).is_ok());
    let many = format!("{PY_NOTE}{}", sig.repeat(MAX_SIGNATURES));
    assert_eq!(
        malformed(&many),
        CheckpointError::TooManySignatures {
            max: MAX_SIGNATURES
        }
    );
}

#[test]
fn properly_signed_but_malformed_checkpoints_are_rejected() {
    let v = py_verifier();
    let id = v.key_id().to_bytes();
    let signed = |text: &str| sign_raw(&PY_SEED, "airisk.example/ledger", id, text);
    let root = "rra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=";
    let o = "airisk.example/ledger/acme";
    for (text, line) in [
        (format!("{o}\n03\n{root}\n"), 2),
        (format!("{o}\n+3\n{root}\n"), 2),
        (format!("{o}\n-3\n{root}\n"), 2),
        (format!("{o}\n\n{root}\n"), 2),
        (format!("{o}\n18446744073709551616\n{root}\n"), 2),
        (format!("{o}\n3\n{}\n", root.trim_end_matches('=')), 3),
        (format!("{o}\n3\nAAAA\n"), 3),
        (format!("{o}\n3\n"), 3),
    ] {
        match verify_checkpoint(&signed(&text), &v) {
            Err(CheckpointError::MalformedCheckpoint { line: l, .. }) => {
                assert_eq!(l, line, "{text:?}")
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    assert!(matches!(
        verify_checkpoint(&signed(&format!("{o}\n3\n{root}\nextension\n")), &v),
        Err(CheckpointError::ExtensionLines { count: 1 })
    ));
    assert!(matches!(
        verify_checkpoint(&signed(&format!("has space\n3\n{root}\n")), &v),
        Err(CheckpointError::InvalidName { kind: "origin", .. })
    ));
    // The largest size is fine.
    let max = signed(&format!("{o}\n18446744073709551615\n{root}\n"));
    assert_eq!(verify_checkpoint(&max, &v).unwrap().size, u64::MAX);
}

#[test]
fn names_follow_the_signed_note_rules() {
    for bad in ["", "a b", "a+b", "a\nb", "a\u{2003}b", "a\u{7f}"] {
        assert!(
            matches!(
                LedgerName::parse(bad),
                Err(CheckpointError::InvalidName {
                    kind: "ledger name",
                    ..
                })
            ),
            "{bad:?}"
        );
        assert!(Origin::parse(bad).is_err(), "{bad:?}");
    }
    let origin = Origin::for_tenant(&ledger(), &TenantId::parse("acme-bank_1").unwrap());
    assert_eq!(origin.as_str(), "airisk.example/ledger/acme-bank_1");
    assert_eq!(Origin::parse(origin.as_str()), Ok(origin));
}

/// An external key (as a PKCS#11 token is) over a ring key pair: it can be told to fail, or to
/// sign with another key than the public key it reports.
struct FakeExternal {
    key: Ed25519KeyPair,
    impostor: Option<Ed25519KeyPair>,
    down: bool,
}

impl airisk_core::ledger::CheckpointSigning for FakeExternal {
    fn public_key(&self) -> [u8; 32] {
        self.key.public_key().as_ref().try_into().unwrap()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], CheckpointError> {
        if self.down {
            return Err(CheckpointError::SigningUnavailable {
                reason: "token unreachable".into(),
            });
        }
        let by = self.impostor.as_ref().unwrap_or(&self.key);
        Ok(by.sign(message).as_ref().try_into().unwrap())
    }

    fn readiness(&self) -> Result<(), String> {
        if self.down {
            Err("token unreachable".into())
        } else {
            Ok(())
        }
    }
}

fn external(impostor: bool, down: bool) -> LedgerSigner {
    LedgerSigner::external(
        ledger(),
        Box::new(FakeExternal {
            key: Ed25519KeyPair::from_seed_unchecked(&PY_SEED).unwrap(),
            impostor: impostor.then(|| Ed25519KeyPair::from_seed_unchecked(&[9u8; 32]).unwrap()),
            down,
        }),
    )
}

#[test]
fn an_external_key_signs_the_same_note_as_the_python_vector() {
    let signer = external(false, false);
    assert!(signer.is_external());
    assert!(
        !LedgerSigner::from_signing_key(PY_SIGNING_KEY)
            .unwrap()
            .is_external()
    );
    assert_eq!(signer.key_id().to_string(), PY_KEY_ID);
    assert_eq!(signer.verifier().to_string(), PY_VERIFIER_KEY);
    assert_eq!(signer.readiness(), Ok(()));
    let signed = acme_checkpoint().sign(&signer).unwrap();
    assert_eq!(signed.note_text(), PY_NOTE);
    assert!(format!("{signer:?}").contains("[external]"));
}

#[test]
fn an_external_key_that_fails_or_signs_with_another_key_writes_no_note() {
    let down = external(false, true);
    assert_eq!(
        acme_checkpoint().sign(&down),
        Err(CheckpointError::SigningUnavailable {
            reason: "token unreachable".into()
        })
    );
    assert_eq!(down.readiness(), Err("token unreachable".into()));
    // A token answering with a signature by a key other than the one it reports (a wrong label,
    // a swapped key) is caught before a note nobody can verify is written.
    let lying = external(true, false);
    assert!(matches!(
        acme_checkpoint().sign(&lying),
        Err(CheckpointError::SigningUnavailable { .. })
    ));
}

#[test]
fn a_note_over_one_mebibyte_is_refused_for_its_length_alone() {
    let verifier = py_verifier();
    let error = |note: &str| SignedCheckpoint::open(note, &verifier).unwrap_err();
    // At the limit the length passes; what fails is the missing blank line.
    let at_limit = format!("{}\n", "a".repeat(MAX_NOTE_LEN - 1));
    assert_eq!(at_limit.len(), 1 << 20);
    assert_eq!(
        error(&at_limit),
        CheckpointError::MalformedNote {
            reason: "no blank line separates the text from the signatures"
        }
    );
    for over in [MAX_NOTE_LEN, 2 * MAX_NOTE_LEN] {
        assert_eq!(
            error(&format!("{}\n", "a".repeat(over))),
            CheckpointError::MalformedNote {
                reason: "the note is too long"
            }
        );
    }
}

#[test]
fn a_signature_line_holding_only_a_key_id_is_malformed() {
    let v = py_verifier();
    let (body, _) = PY_NOTE.rsplit_once("\n\n").unwrap();
    for id in [v.key_id().to_bytes(), [0xde, 0xad, 0xbe, 0xef]] {
        let note = format!(
            "{body}\n\n\u{2014} airisk.example/ledger {}\n",
            BASE64.encode(id)
        );
        assert_eq!(
            verify_checkpoint(&note, &v).unwrap_err(),
            CheckpointError::MalformedNote {
                reason: "a signature must hold a key id and at least one byte"
            }
        );
    }
}

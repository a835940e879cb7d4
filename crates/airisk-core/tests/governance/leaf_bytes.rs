//! The leaf bytes `AuditEvent::seal` writes are exactly the canonical JSON (RFC 8785, written by
//! the general encoder, `to_canonical_json`) of the record's members as `AuditRecord::to_json`
//! gives them: for every shape of event (each optional member present or not, kernel or
//! application origin, sealed metadata) and for hostile text. `seal` writes the leaf member by
//! member without building that JSON value, so the general encoder is the oracle: a member out
//! of order, a missing comma or a member written when absent changes the bytes, and with them
//! every leaf hash.

use airisk_core::governance::audit_record::{AuditEvent, AuditRecord, Outcome};
use airisk_core::ledger::{MAX_SAFE_INTEGER, to_canonical_json};
use airisk_core::request::CorrelationId;
use airisk_core::security::tenant_context::{ActorId, TenantId};
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Seals `event` and checks its leaf against the oracle, that it reads back as the record, and
/// that `leaf_at` (what the SQLite writer writes) gives the same bytes and time.
fn check(event: AuditEvent, seq: u64, at: DateTime<Utc>) -> Result<(), TestCaseError> {
    let (leaf, recorded_at) = event.leaf_at(seq, at).unwrap();
    let record = event.seal(seq, at).unwrap();
    prop_assert_eq!(leaf.as_slice(), record.leaf_bytes());
    prop_assert_eq!(recorded_at, record.recorded_at());
    let expected = to_canonical_json(&record.to_json()).unwrap();
    prop_assert_eq!(
        std::str::from_utf8(record.leaf_bytes()).unwrap(),
        expected.as_str()
    );
    let back = AuditRecord::from_leaf_bytes(record.leaf_bytes()).unwrap();
    prop_assert_eq!(back.leaf_bytes(), record.leaf_bytes());
    Ok(())
}

#[allow(clippy::too_many_arguments)] // one argument per record field, as AuditEvent::new
fn event(
    id: u128,
    tenant: &str,
    actor: &str,
    action: &str,
    outcome: Outcome,
    resource: (&str, &str),
    reason: Option<String>,
    metadata: Option<Map<String, Value>>,
) -> Option<AuditEvent> {
    AuditEvent::new(
        Uuid::from_u128(id),
        TenantId::parse(tenant).ok()?,
        ActorId::parse(actor).ok()?,
        action,
        outcome,
        resource.0,
        resource.1,
        reason,
        CorrelationId::parse("req-leaf-bytes").unwrap(),
        metadata,
    )
    .ok()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn every_optional_member_present_or_absent_gives_the_canonical_bytes() {
    let at = Utc.with_ymd_and_hms(2026, 11, 30, 23, 59, 59).unwrap()
        + chrono::Duration::nanoseconds(123_456_789);
    let metadata = object(json!({"z": 1, "a": {"y": [1, 2.5, null, true], "b": "é"}, "é": "x"}));
    let sealed = object(json!({"iban": "v1.k1.AAAAAAAAAAAAAAAAAAAAAA"}));
    for reason in [None, Some("line one\nline two\t\"quoted\"".to_owned())] {
        for metadata in [None, Some(metadata.clone())] {
            for application in [false, true] {
                for with_sealed in [false, true] {
                    let mut e = event(
                        7,
                        "acme",
                        "alice@bank.example",
                        "report.generate",
                        Outcome::Success,
                        ("report", "r-1"),
                        reason.clone(),
                        metadata.clone(),
                    )
                    .unwrap();
                    if application {
                        e = e.into_application();
                    }
                    if with_sealed {
                        e = e.with_sealed_metadata(sealed.clone()).unwrap();
                    }
                    for seq in [0, 1, 4_096, MAX_SAFE_INTEGER] {
                        check(e.clone(), seq, at).unwrap();
                    }
                }
            }
        }
    }
}

#[test]
fn a_seq_beyond_the_exact_integers_of_json_is_refused_as_before() {
    let e = event(
        1,
        "acme",
        "alice",
        "a",
        Outcome::Denied,
        ("t", "i"),
        None,
        None,
    )
    .unwrap();
    assert!(e.clone().seal(MAX_SAFE_INTEGER + 1, Utc::now()).is_err());
    assert!(e.seal(MAX_SAFE_INTEGER, Utc::now()).is_ok());
}

/// Printable text with the characters JSON escapes or that sort apart in UTF-16.
const TEXT: &str = "(\\PC|[\"\\\\\u{7f}\u{2028}é😀\u{ffff}]){1,24}";

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53) + 1..(1i64 << 53)).prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        TEXT.prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(TEXT, inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_event_is_sealed_into_the_canonical_json_of_its_members(
        id in any::<u128>(),
        action in "[a-z0-9._-]{1,32}",
        denied in any::<bool>(),
        resource_type in TEXT,
        resource_id in TEXT,
        reason in proptest::option::of(TEXT),
        metadata in proptest::option::of(prop::collection::btree_map(TEXT, json_value(), 0..5)),
        application in any::<bool>(),
        seq in 0..=MAX_SAFE_INTEGER,
        micros in 0i64..4_102_444_800_000_000,
    ) {
        let outcome = if denied { Outcome::Denied } else { Outcome::Success };
        let metadata = metadata.map(|m| m.into_iter().collect::<Map<String, Value>>());
        let Some(mut e) = event(
            id, "acme", "alice@bank.example", &action, outcome,
            (&resource_type, &resource_id), reason, metadata,
        ) else {
            // Refused input never reaches a leaf.
            return Ok(());
        };
        if application {
            e = e.into_application();
        }
        let at = Utc.timestamp_micros(micros).unwrap();
        check(e, seq, at)?;
    }
}

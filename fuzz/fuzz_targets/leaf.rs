//! Canonical JSON audit leaves: `AuditRecord::from_leaf_bytes` never panics and accepts only its
//! own canonical bytes; canonical JSON of any JSON text canonicalises again to itself, except for
//! the doubles RFC 8785 prints as integers beyond 2^53, which audit metadata must refuse; and any
//! metadata an event accepts seals into a leaf that reads back byte for byte.
//!
//! This target found, on its own, the bug `parsers.rs` found first: such a double was accepted
//! as metadata and sealed into a leaf that could never be read back.
#![no_main]
use airisk_core::governance::audit_record::{AuditEvent, AuditEventInput, AuditRecord, Outcome};
use airisk_core::ledger::{CanonicalJsonError, to_canonical_json};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn event_with(metadata: Value) -> Result<AuditEvent, impl std::fmt::Debug> {
    AuditEvent::parse(
        airisk_core::ports::IdGenerator::new_id(&airisk_core::ports::UuidV7Generator),
        Outcome::Success,
        AuditEventInput {
            actor: "fuzz".into(),
            tenant_id: "acme".into(),
            action: "fuzz.leaf".into(),
            resource_type: "t".into(),
            resource_id: "1".into(),
            reason: None,
            correlation_id: "c".into(),
            metadata: Some(serde_json::json!({ "v": metadata })),
        },
    )
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = AuditRecord::from_leaf_bytes(data) {
        assert_eq!(r.leaf_bytes(), data);
    }
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    if let Ok(text) = to_canonical_json(&v) {
        let back: Value = serde_json::from_str(&text).expect("canonical JSON is JSON");
        match to_canonical_json(&back) {
            Ok(again) => assert_eq!(again, text),
            Err(CanonicalJsonError::UnsafeInteger { .. }) => {
                assert!(event_with(v.clone()).is_err(), "metadata that cannot read back was accepted");
            }
            Err(e) => panic!("canonical text does not canonicalise again: {e}"),
        }
    }
    if let Ok(event) = event_with(v) {
        let record = event.seal(0, chrono::Utc::now()).expect("an accepted event seals");
        let back = AuditRecord::from_leaf_bytes(record.leaf_bytes()).expect("a sealed leaf reads back");
        assert_eq!(back.leaf_bytes(), record.leaf_bytes());
    }
});

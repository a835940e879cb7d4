//! Canonical JSON audit leaves: `AuditRecord::from_leaf_bytes` never panics and accepts only its
//! own canonical bytes; canonical JSON of any JSON text is idempotent.
#![no_main]
use airisk_core::governance::audit_record::AuditRecord;
use airisk_core::ledger::to_canonical_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = AuditRecord::from_leaf_bytes(data) {
        assert_eq!(r.leaf_bytes(), data);
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(text) = to_canonical_json(&v) {
            let back: serde_json::Value = serde_json::from_str(&text).expect("canonical JSON is JSON");
            assert_eq!(to_canonical_json(&back).expect("again"), text);
        }
    }
});

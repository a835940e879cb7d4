//! One line of an audit export (`GET /v1/audit/export`, `airisk audit export`), read the way an
//! auditor's Rust reader would: the checkpoint line (verifier key + signed note) or an entry line
//! (base64 leaf, hex leaf hash). Never panics; an entry is accepted only if its hash matches.
#![no_main]
use std::str::FromStr;

use airisk_core::governance::audit_record::AuditRecord;
use airisk_core::ledger::{Hash, LedgerVerifier, leaf_hash, verify_checkpoint};
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = serde_json::from_slice::<Value>(data) else { return };
    match line.get("type").and_then(Value::as_str) {
        Some("checkpoint") => {
            let key = line.get("verifier_key").and_then(Value::as_str).unwrap_or_default();
            let note = line.get("checkpoint").and_then(Value::as_str).unwrap_or_default();
            if let Ok(v) = LedgerVerifier::parse(key) {
                let _ = verify_checkpoint(note, &v);
            }
        }
        Some("entry") => {
            let leaf = line.get("leaf").and_then(Value::as_str).unwrap_or_default();
            let hash = line.get("leaf_hash").and_then(Value::as_str).unwrap_or_default();
            let (Ok(bytes), Ok(claimed)) = (
                base64::engine::general_purpose::STANDARD.decode(leaf),
                Hash::from_str(hash),
            ) else {
                return;
            };
            if leaf_hash(&bytes) == claimed {
                if let Ok(r) = AuditRecord::from_leaf_bytes(&bytes) {
                    assert_eq!(r.leaf_bytes(), bytes.as_slice());
                }
            }
        }
        _ => {}
    }
});

//! `LedgerVerifier::parse` (a ledger's public verifier key): never panics; round-trips.
#![no_main]
use airisk_core::ledger::LedgerVerifier;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(v) = LedgerVerifier::parse(s) {
        let again = LedgerVerifier::parse(&v.to_verifier_key()).expect("a printed key parses");
        assert_eq!(again.to_verifier_key(), v.to_verifier_key());
    }
});

//! Checkpoint bodies and signed notes: `Checkpoint::parse_body` never panics and round-trips;
//! `verify_checkpoint` never panics and never accepts a note not signed by the key.
#![no_main]
use std::sync::OnceLock;

use airisk_core::ledger::{Checkpoint, LedgerName, LedgerSigner, verify_checkpoint};
use libfuzzer_sys::fuzz_target;

fn signer() -> &'static LedgerSigner {
    static S: OnceLock<LedgerSigner> = OnceLock::new();
    S.get_or_init(|| LedgerSigner::generate(LedgerName::parse("bank.example/ledger").expect("name")).expect("key"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(c) = Checkpoint::parse_body(s) {
        assert_eq!(Checkpoint::parse_body(&c.to_body()).expect("printed body parses"), c);
        // Signed by us, it verifies to itself.
        let note = c.sign(signer()).expect("a key in this process always signs");
        assert_eq!(verify_checkpoint(note.note_text(), &signer().verifier()).expect("own note"), c);
    }
    // The fresh key never signed this input.
    assert!(verify_checkpoint(s, &signer().verifier()).is_err());
});

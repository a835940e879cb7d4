//! `Keyring::parse` (the AIRISK_ENCRYPTION_KEYS value): never panics; what it accepts lists its
//! key ids in input order.
#![no_main]
use airisk_core::security::encryption::{KeyId, Keyring};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(k) = Keyring::parse(s) {
        let kids: Vec<&str> = s.split(',').filter_map(|e| e.split_once(':')).map(|(k, _)| k.trim()).collect();
        assert_eq!(k.kids().map(KeyId::as_str).collect::<Vec<_>>(), kids);
        // Display and Debug never print key material.
        let shown = format!("{k} {k:?}");
        for entry in s.split(',') {
            if let Some((_, key)) = entry.split_once(':') {
                let key = key.trim();
                if key.len() > 8 {
                    assert!(!shown.contains(key), "key material in Display/Debug");
                }
            }
        }
    }
});

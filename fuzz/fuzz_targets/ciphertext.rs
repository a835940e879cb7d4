//! `Encryptor::decrypt` and `key_id_of` on arbitrary text: never panic, never decrypt forged input.
#![no_main]
use airisk_core::security::encryption::{Encryptor, key_id_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let enc = Encryptor::from_env_value("k1:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=").expect("fixed key");
    let _ = key_id_of(s);
    assert!(enc.decrypt(s).is_err(), "a forged ciphertext decrypted");
    // Round trip of the input as plaintext.
    let sealed = enc.encrypt(s).expect("encrypt");
    assert_eq!(enc.decrypt(&sealed).expect("decrypt"), s);
});

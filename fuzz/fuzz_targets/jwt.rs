//! `JwtVerifier::verify` on arbitrary bearer tokens: never panics, never yields a principal (the
//! keys are fresh: no input can carry a valid signature).
#![no_main]
use std::sync::OnceLock;

use airisk_server::auth::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, JwtVerifier, generate_ed25519};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static JwtVerifier {
    static V: OnceLock<JwtVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let (_, jwks) = generate_ed25519().expect("key");
        JwtVerifier::new(DEFAULT_ISSUER, DEFAULT_AUDIENCE)
            .with_jwks(&jwks)
            .expect("jwks")
            .dangerous_with_hs256_secret(b"fuzz-secret-fuzz-secret-fuzz-sec")
            .expect("secret")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    assert!(verifier().verify(s).is_err(), "a forged token was accepted");
});

//! A lost session is reopened (and logged in again) on the next call. Its own test binary: it
//! closes every session of the process on the token, which would disturb tests running beside it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: fail loudly

use airisk_core::security::encryption::{EncryptionKeyId, KEY_LEN};
use airisk_core::security::envelope::KeyProvider;
use airisk_core::security::tenant_context::TenantId;
use airisk_keys_pkcs11::{AuthPin, Pkcs11KeyProvider, Token, TokenConfig};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/setup-softhsm.sh and export what it prints")
    })
}

#[test]
#[ignore = "SoftHSM2: needs AIRISK_TEST_PKCS11_MODULE; run with --ignored (scripts/test.sh does)"]
fn a_lost_session_is_reopened_and_logged_in_on_the_next_call() {
    let module = env("AIRISK_TEST_PKCS11_MODULE");
    let label = env("AIRISK_TEST_PKCS11_TOKEN");
    let token = Token::open(TokenConfig::new(
        &module,
        &label,
        AuthPin::from(env("AIRISK_TEST_PKCS11_PIN").as_str()),
    ))
    .unwrap();
    let kek = format!("kek-loss-{}", std::process::id());
    token.generate_kek(&kek).unwrap();
    let p = Pkcs11KeyProvider::new(token, &kek).unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let d1 = EncryptionKeyId::parse("d1").unwrap();
    let dek = [7u8; KEY_LEN];
    let wrapped = p.wrap(&acme, &d1, &dek).unwrap();

    // Log the application out of the token from another session (login state is shared by
    // all of a process's sessions, as after an HSM-side session timeout): the provider's session
    // no longer sees the private KEK object.
    let ctx = Pkcs11::new(&module).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == label)
        .unwrap();
    let other = ctx.open_rw_session(slot).unwrap();
    other.logout().unwrap();
    assert_eq!(
        other.get_session_info().unwrap().session_state(),
        cryptoki::session::SessionState::RwPublic,
        "the token is logged out"
    );

    assert_eq!(*p.unwrap(&acme, &d1, &wrapped).unwrap(), dek);
    assert_eq!(p.readiness(), Ok(()));
    let again = p.wrap(&acme, &d1, &dek).unwrap();
    assert_eq!(*p.unwrap(&acme, &d1, &again).unwrap(), dek);
}

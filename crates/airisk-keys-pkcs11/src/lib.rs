//! PKCS#11 custody of ai-risk-engine's two long-lived keys, so that neither ever leaves a
//! hardware security module (or SoftHSM2 in tests):
//!
//! * the **key-encryption key** that wraps every tenant's data keys ([`Pkcs11KeyProvider`], an
//!   [`airisk_core::security::envelope::KeyProvider`]): an AES-256 secret key object used with
//!   `CKM_AES_GCM`;
//! * the **ledger's checkpoint key** ([`Pkcs11LedgerKey`], an
//!   [`airisk_core::ledger::CheckpointSigning`]): an Ed25519 key pair used with `CKM_EDDSA`.
//!
//! Both are found by label in a token found by label ([`TokenConfig`], [`KeyLabels`], read from
//! the `AIRISK_PKCS11_…` variables), through one logged-in session ([`Token`]); the PIN comes
//! only from `AIRISK_PKCS11_PIN`, is held zeroized and never shown. [`Token::generate_kek`] and
//! [`Token::generate_ledger_key`] create the keys inside the token, non-extractable and
//! sensitive. When the token is unavailable every operation fails with a typed error and the
//! readiness probes say why; nothing falls back to a key outside the token.
//!
//! docs/OPERATIONS.md ("Keys in a hardware security module") and docs/ENCRYPTION.md ("The KEK in
//! a PKCS#11 token") describe configuration and the wrapped-key format byte for byte.

mod config;
mod error;
mod kek;
mod signer;
mod token;

pub use config::{
    KEK_LABEL_ENV, KeyLabels, LEDGER_KEY_LABEL_ENV, MODULE_ENV, PIN_ENV, TOKEN_ENV, TokenConfig,
    check_label,
};
pub use cryptoki::types::AuthPin;
pub use error::Pkcs11Error;
pub use kek::{AAD_LABEL, IV_LEN, PAYLOAD_LEN, Pkcs11KeyProvider, TAG_LEN, WRAP_PREFIX, wrap_aad};
pub use signer::Pkcs11LedgerKey;
pub use token::{ED25519_EC_PARAMS, KeyKind, KeyProtection, Token};

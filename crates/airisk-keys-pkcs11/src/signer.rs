//! The ledger's Ed25519 checkpoint key in the token: checkpoints signed with `CKM_EDDSA` inside
//! it.

use std::fmt;
use std::sync::Arc;

use airisk_core::ledger::{CheckpointError, CheckpointSigning, LedgerName, LedgerSigner};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};

use crate::config::check_label;
use crate::error::Pkcs11Error;
use crate::token::{KeyKind, Token, find_one};

/// [`CheckpointSigning`] by the Ed25519 private key object labelled `label` in a token
/// (pure Ed25519, `CKM_EDDSA` without parameters). The public key is read once from the public
/// key object of the same label; [`LedgerSigner`] checks every signature against it.
pub struct Pkcs11LedgerKey {
    token: Arc<Token>,
    label: String,
    public_key: [u8; 32],
}

impl fmt::Debug for Pkcs11LedgerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11LedgerKey")
            .field("token", &self.token.label())
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Pkcs11LedgerKey {
    /// The key pair `label`: reads its public key and checks that the private key is there,
    /// non-extractable and sensitive.
    ///
    /// # Errors
    /// [`Pkcs11Error::InvalidLabel`], [`Pkcs11Error::KeyNotFound`],
    /// [`Pkcs11Error::AmbiguousLabel`], [`Pkcs11Error::NotEd25519`],
    /// [`Pkcs11Error::KeyNotProtected`], the token's errors.
    pub fn new(token: Arc<Token>, label: &str) -> Result<Self, Pkcs11Error> {
        check_label("ledger key label", label)?;
        let public_key = token.ledger_public_key(label)?;
        let protection = token.key_protection(KeyKind::LedgerPrivate, label)?;
        if protection.extractable || !protection.sensitive {
            return Err(Pkcs11Error::KeyNotProtected {
                kind: KeyKind::LedgerPrivate.describe(),
                label: label.to_owned(),
            });
        }
        Ok(Pkcs11LedgerKey {
            token,
            label: label.to_owned(),
            public_key,
        })
    }

    /// A [`LedgerSigner`] named `name` that signs with this key.
    pub fn into_signer(self, name: LedgerName) -> LedgerSigner {
        LedgerSigner::external(name, Box::new(self))
    }
}

impl CheckpointSigning for Pkcs11LedgerKey {
    fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], CheckpointError> {
        let signature = self
            .token
            .with_session(|s| {
                let key = find_one(s, KeyKind::LedgerPrivate, &self.label)?;
                let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
                Ok(s.sign(&mechanism, key, message)?)
            })
            .map_err(|e| CheckpointError::SigningUnavailable {
                reason: self.token.reason(e).to_string(),
            })?;
        <[u8; 64]>::try_from(signature.as_slice()).map_err(|_| {
            CheckpointError::SigningUnavailable {
                reason: "the token returned a signature that is not 64 bytes".into(),
            }
        })
    }

    /// The private key is present and the public key under the label is still the one this
    /// signer started with (a key pair replaced under the same label would sign notes that do not
    /// verify with the published verifier key).
    fn readiness(&self) -> Result<(), String> {
        self.token.check(&[(KeyKind::LedgerPrivate, &self.label)])?;
        let now = self
            .token
            .ledger_public_key(&self.label)
            .map_err(|e| e.to_string())?;
        if now == self.public_key {
            Ok(())
        } else {
            Err(format!(
                "the Ed25519 key labelled {:?} in the token is not the key this service started with",
                self.label
            ))
        }
    }
}

//! The key-encryption key in the token: tenant data keys wrapped and unwrapped with
//! `CKM_AES_GCM` inside it.

use std::fmt;
use std::sync::Arc;

use airisk_core::security::encryption::{EncryptionError, EncryptionKeyId, KEY_LEN};
use airisk_core::security::envelope::{DEK_WRAP_PURPOSE, KeyProvider};
use airisk_core::security::tenant_context::TenantId;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::config::check_label;
use crate::error::Pkcs11Error;
use crate::token::{CallError, KeyKind, Token, find_one};

/// The first field of a DEK wrapped in the token: `p11.<kek-label>.<payload>`.
pub const WRAP_PREFIX: &str = "p11";
/// The first bytes of the associated data of a wrap in the token.
pub const AAD_LABEL: &[u8] = b"airisk.p11.v1";
/// IV length (the 96 bits GCM is made for).
pub const IV_LEN: usize = 12;
/// Tag length (128 bits).
pub const TAG_LEN: usize = 16;
/// Length of the decoded payload: IV, the 32 encrypted key bytes, tag.
pub const PAYLOAD_LEN: usize = IV_LEN + KEY_LEN + TAG_LEN;

/// The associated data of a wrap:
/// `"airisk.p11.v1" 0x00 kek-label 0x00 u16be(len tenant) tenant u16be(len purpose) purpose
/// u16be(len kid) kid`, purpose being `airisk.dek` — the tenant, purpose and DEK-id binding of
/// the keyring provider, plus the KEK label (as the keyring format binds the KEK's kid).
pub fn wrap_aad(kek_label: &str, tenant: &TenantId, kid: &EncryptionKeyId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 2 + kek_label.len() + 6 + 128);
    aad.extend_from_slice(AAD_LABEL);
    aad.push(0);
    aad.extend_from_slice(kek_label.as_bytes());
    aad.push(0);
    for field in [
        tenant.as_str().as_bytes(),
        DEK_WRAP_PURPOSE.as_bytes(),
        kid.as_str().as_bytes(),
    ] {
        // Tenant ids, the purpose and DEK ids are at most 64 bytes (validated newtypes).
        let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
        aad.extend_from_slice(&len.to_be_bytes());
        aad.extend_from_slice(field);
    }
    aad
}

/// Splits `p11.<label>.<payload>` into the label and the decoded payload.
fn parse(wrapped: &str) -> Result<(&str, Zeroizing<Vec<u8>>), EncryptionError> {
    let malformed = |reason| EncryptionError::MalformedCiphertext { reason };
    let rest = wrapped
        .strip_prefix(WRAP_PREFIX)
        .and_then(|r| r.strip_prefix('.'))
        .ok_or(malformed(
            "not a key wrapped in the PKCS#11 token (expected p11.<kek-label>.<payload>)",
        ))?;
    let (label, payload) = rest
        .split_once('.')
        .ok_or(malformed("expected p11.<kek-label>.<payload>"))?;
    check_label("KEK label", label).map_err(|_| malformed("invalid KEK label"))?;
    let raw = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| malformed("the payload is not unpadded base64url"))?,
    );
    if raw.len() != PAYLOAD_LEN {
        return Err(malformed("the payload is not IV, 32 key bytes and tag"));
    }
    Ok((label, raw))
}

/// [`KeyProvider`] whose key-encryption key is an AES-256 key object in a PKCS#11 token, found
/// by label; the KEK never leaves the token.
///
/// * **Wrap**: `C_Encrypt` with `CKM_AES_GCM` under the current label, a fresh 12-byte IV from
///   the operating system's CSPRNG (ring), a 128-bit tag and the AAD of [`wrap_aad`]. The text is
///   `p11.<kek-label>.<base64url, no padding (IV ‖ ciphertext ‖ tag)>` (80 characters of
///   payload).
/// * **Unwrap**: with the KEK whose label the text names, so keys wrapped before a rotation keep
///   opening while the old KEK object stays in the token.
/// * **Rewrap**: a text already under the current label is returned unchanged; any other is
///   unwrapped and wrapped again under the current label, inside the token (the DEK passes
///   through this process's memory, zeroized, as on every unwrap).
///
/// Fails closed: when the token is unreachable or the key is missing, every operation returns
/// [`EncryptionError::ProviderUnavailable`] (or [`EncryptionError::UnknownKeyId`] for a text
/// naming a KEK label the token does not hold); nothing falls back to another key.
pub struct Pkcs11KeyProvider {
    token: Arc<Token>,
    current: String,
    rng: SystemRandom,
}

impl fmt::Debug for Pkcs11KeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11KeyProvider")
            .field("token", &self.token.label())
            .field("kek_label", &self.current)
            .finish()
    }
}

impl Pkcs11KeyProvider {
    /// A provider wrapping under the KEK `kek_label`, which must be in the token, and be
    /// non-extractable and sensitive.
    ///
    /// # Errors
    /// [`Pkcs11Error::InvalidLabel`], [`Pkcs11Error::KeyNotFound`],
    /// [`Pkcs11Error::AmbiguousLabel`], [`Pkcs11Error::KeyNotProtected`], the token's errors.
    pub fn new(token: Arc<Token>, kek_label: &str) -> Result<Self, Pkcs11Error> {
        check_label("KEK label", kek_label)?;
        let protection = token.key_protection(KeyKind::Kek, kek_label)?;
        if protection.extractable || !protection.sensitive {
            return Err(Pkcs11Error::KeyNotProtected {
                kind: KeyKind::Kek.describe(),
                label: kek_label.to_owned(),
            });
        }
        Ok(Pkcs11KeyProvider {
            token,
            current: kek_label.to_owned(),
            rng: SystemRandom::new(),
        })
    }

    /// The label of the KEK that wraps.
    pub fn kek_label(&self) -> &str {
        &self.current
    }

    /// The token.
    pub fn token(&self) -> &Arc<Token> {
        &self.token
    }

    fn unavailable(&self, e: CallError) -> EncryptionError {
        EncryptionError::ProviderUnavailable {
            reason: self.token.reason(e).to_string(),
        }
    }
}

impl KeyProvider for Pkcs11KeyProvider {
    fn wrap(
        &self,
        tenant: &TenantId,
        kid: &EncryptionKeyId,
        dek: &[u8; KEY_LEN],
    ) -> Result<String, EncryptionError> {
        let mut iv = [0u8; IV_LEN];
        self.rng
            .fill(&mut iv)
            .map_err(|_| EncryptionError::RandomUnavailable)?;
        let aad = wrap_aad(&self.current, tenant, kid);
        let sealed = self
            .token
            .with_session(|s| {
                let key = find_one(s, KeyKind::Kek, &self.current)?;
                let mut iv = iv;
                let params = GcmParams::new(&mut iv, &aad, 128.into())?;
                Ok(s.encrypt(&Mechanism::AesGcm(params), key, dek)?)
            })
            .map_err(|e| self.unavailable(e))?;
        if sealed.len() != KEY_LEN + TAG_LEN {
            return Err(EncryptionError::ProviderUnavailable {
                reason: "the token returned a GCM output of unexpected length".into(),
            });
        }
        let mut payload = Vec::with_capacity(PAYLOAD_LEN);
        payload.extend_from_slice(&iv);
        payload.extend_from_slice(&sealed);
        Ok(format!(
            "{WRAP_PREFIX}.{}.{}",
            self.current,
            URL_SAFE_NO_PAD.encode(payload)
        ))
    }

    fn unwrap(
        &self,
        tenant: &TenantId,
        kid: &EncryptionKeyId,
        wrapped: &str,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, EncryptionError> {
        let (label, raw) = parse(wrapped)?;
        let (iv, sealed) = raw.split_at(IV_LEN);
        let aad = wrap_aad(label, tenant, kid);
        let opened = self.token.with_session(|s| {
            let key = find_one(s, KeyKind::Kek, label)?;
            let mut iv_buf = [0u8; IV_LEN];
            iv_buf.copy_from_slice(iv);
            let params = GcmParams::new(&mut iv_buf, &aad, 128.into())?;
            Ok(Zeroizing::new(s.decrypt(
                &Mechanism::AesGcm(params),
                key,
                sealed,
            )?))
        });
        let plain = match opened {
            Ok(plain) => plain,
            // A text naming a KEK the token does not hold: as for a keyring without that kid.
            Err(CallError::Token(Pkcs11Error::KeyNotFound { .. })) => {
                return Err(match EncryptionKeyId::parse(label) {
                    Ok(kid) => EncryptionError::UnknownKeyId { kid },
                    Err(_) => EncryptionError::DecryptionFailed,
                });
            }
            // Authentication failed: wrong tenant, DEK id or KEK, or tampered bytes.
            Err(CallError::Refused(CkError::Pkcs11(
                RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::DataInvalid
                | RvError::DataLenRange
                | RvError::FunctionFailed,
                _,
            ))) => return Err(EncryptionError::DecryptionFailed),
            // Some tokens (SoftHSM2) report a GCM tag mismatch as CKR_GENERAL_ERROR, which a
            // failing device may also return: it is an authentication failure only if the token
            // still answers and holds the key.
            Err(CallError::Refused(CkError::Pkcs11(RvError::GeneralError, _))) => {
                return Err(match self.token.check(&[(KeyKind::Kek, label)]) {
                    Ok(()) => EncryptionError::DecryptionFailed,
                    Err(reason) => EncryptionError::ProviderUnavailable { reason },
                });
            }
            Err(e) => return Err(self.unavailable(e)),
        };
        if plain.len() != KEY_LEN {
            return Err(EncryptionError::DecryptionFailed);
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&plain);
        Ok(key)
    }

    fn rewrap(
        &self,
        tenant: &TenantId,
        kid: &EncryptionKeyId,
        wrapped: &str,
    ) -> Result<String, EncryptionError> {
        let (label, _) = parse(wrapped)?;
        if label == self.current {
            return Ok(wrapped.to_owned());
        }
        let dek = self.unwrap(tenant, kid, wrapped)?;
        self.wrap(tenant, kid, &dek)
    }

    fn readiness(&self) -> Result<(), String> {
        self.token.check(&[(KeyKind::Kek, &self.current)])
    }
}

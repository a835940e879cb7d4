//! Keys kept in a PKCS#11 token (a hardware security module; SoftHSM2 in tests), for every
//! command that needs the key-encryption key or the ledger's signing key (`serve`,
//! `tenant rewrap-data-keys`, `audit export --decrypt`, `audit checkpoint` and the other `audit`
//! commands that sign): when
//! `AIRISK_PKCS11_MODULE` is set they come from the token named by the `AIRISK_PKCS11_…`
//! variables, and the environment keys (`AIRISK_ENCRYPTION_KEYS`, `AIRISK_LEDGER_SIGNING_KEY`)
//! are not used for those roles. docs/OPERATIONS.md, "Keys in a hardware security module".

use std::sync::Arc;

use airisk_core::ledger::{LedgerName, LedgerSigner};
use airisk_core::security::encryption::{EncryptionError, EncryptionKeyId, Encryptor, KEY_LEN};
use airisk_core::security::envelope::{Envelope, KeyProvider, KeyringKeyProvider};
use airisk_core::security::tenant_context::TenantId;
use airisk_keys_pkcs11::{
    KEK_LABEL_ENV, KeyLabels, LEDGER_KEY_LABEL_ENV, MODULE_ENV, Pkcs11KeyProvider, Pkcs11LedgerKey,
    Token, TokenConfig,
};
use anyhow::Context;
use zeroize::Zeroizing;

/// The ledger's name when its key is in a token (with `AIRISK_LEDGER_SIGNING_KEY` the name is
/// part of the key string).
pub const LEDGER_NAME_ENV: &str = "AIRISK_LEDGER_NAME";

/// Whether the keys are to come from a token (`AIRISK_PKCS11_MODULE` is set).
pub fn configured() -> bool {
    TokenConfig::configured_in_env()
}

/// The token, logged in, from `AIRISK_PKCS11_MODULE`, `_TOKEN` and `_PIN`.
///
/// # Errors
/// A missing variable, a module that does not load, a token not found, a wrong PIN.
pub fn open_token() -> anyhow::Result<Arc<Token>> {
    let config = TokenConfig::from_env()?;
    let module = config.module.display().to_string();
    Token::open(config).with_context(|| format!("the PKCS#11 token ({MODULE_ENV}={module})"))
}

/// The ledger's name for a key in a token: `AIRISK_LEDGER_NAME`, else the default.
///
/// # Errors
/// An invalid name.
pub fn ledger_name() -> anyhow::Result<LedgerName> {
    let name = std::env::var(LEDGER_NAME_ENV)
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| crate::cmd::audit::DEFAULT_LEDGER_NAME.to_owned());
    LedgerName::parse(name.trim()).with_context(|| format!("{LEDGER_NAME_ENV} {name:?}"))
}

/// Both keys from the token: the KEK provider and the ledger signer.
pub struct TokenKeys {
    /// Wraps and unwraps tenant data keys in the token.
    pub kek: Arc<Pkcs11KeyProvider>,
    /// Signs checkpoints in the token.
    pub ledger: LedgerSigner,
}

/// Opens the token and both keys named by `AIRISK_PKCS11_KEK_LABEL` and
/// `AIRISK_PKCS11_LEDGER_KEY_LABEL`.
///
/// # Errors
/// As [`open_token`], a missing or invalid label, a key not in the token or not protected.
pub fn token_keys() -> anyhow::Result<TokenKeys> {
    let labels = KeyLabels::from_env()?;
    let token = open_token()?;
    let kek = Pkcs11KeyProvider::new(token.clone(), &labels.kek)?;
    let ledger = Pkcs11LedgerKey::new(token, &labels.ledger)?.into_signer(ledger_name()?);
    Ok(TokenKeys {
        kek: Arc::new(kek),
        ledger,
    })
}

/// The ledger signer in the token for an offline command (`audit checkpoint`, `audit export`):
/// `Some` when `AIRISK_PKCS11_MODULE` and `AIRISK_PKCS11_LEDGER_KEY_LABEL` are both set.
///
/// # Errors
/// As [`open_token`], an invalid label, a key not in the token or not protected.
pub fn ledger_signer() -> anyhow::Result<Option<LedgerSigner>> {
    let label = std::env::var(LEDGER_KEY_LABEL_ENV)
        .ok()
        .filter(|l| !l.trim().is_empty());
    let (true, Some(label)) = (configured(), label) else {
        return Ok(None);
    };
    let token = open_token()?;
    Ok(Some(
        Pkcs11LedgerKey::new(token, label.trim())?.into_signer(ledger_name()?),
    ))
}

/// The key-encryption key for an offline command (`tenant rewrap-data-keys`,
/// `audit export --decrypt`): the token's when configured, else the `AIRISK_ENCRYPTION_KEYS`
/// keyring. With both configured, the move from the keyring to the token
/// ([`MigratingKeyProvider`]): `v1.` wraps open with the keyring, everything is wrapped in the
/// token.
///
/// # Errors
/// The token's errors, or a missing or invalid keyring.
pub fn key_provider(purpose: &str) -> anyhow::Result<Arc<dyn KeyProvider>> {
    if configured() {
        let label = std::env::var(KEK_LABEL_ENV).unwrap_or_default();
        if label.trim().is_empty() {
            anyhow::bail!(
                "{KEK_LABEL_ENV} is not set: the label of the AES-256 key-encryption key"
            );
        }
        let token = open_token()?;
        let to = Pkcs11KeyProvider::new(token, label.trim())?;
        if std::env::var_os(airisk_core::security::encryption::ENV_VAR).is_some() {
            let from = Encryptor::from_env().context(
                "AIRISK_ENCRYPTION_KEYS is set beside the PKCS#11 token, to move data keys into it, but is invalid",
            )?;
            return Ok(Arc::new(MigratingKeyProvider {
                from: KeyringKeyProvider::new(Arc::new(from)),
                to,
            }));
        }
        return Ok(Arc::new(to));
    }
    let kek = Encryptor::from_env().with_context(|| purpose.to_owned())?;
    Ok(Arc::new(KeyringKeyProvider::new(Arc::new(kek))))
}

/// An [`Envelope`] over [`key_provider`]'s key-encryption key, with the default bound on cached
/// data keys: what an offline command seals and opens with. `purpose` says why the key is
/// needed, for the error when it is missing.
///
/// # Errors
/// As [`key_provider`].
pub fn envelope(purpose: &str) -> anyhow::Result<Envelope> {
    Ok(Envelope::new(
        key_provider(purpose)?,
        airisk_core::security::envelope::DEFAULT_DEK_CACHE,
    ))
}

/// Moves data keys from the environment keyring into the token, for offline commands only
/// (`airisk tenant rewrap-data-keys` with both `AIRISK_ENCRYPTION_KEYS` and the PKCS#11 variables
/// set): a data key wrapped by the keyring (`v1.…`) is unwrapped with it and, on rewrap, wrapped
/// in the token; everything else is the token's. `airisk serve` never uses it: a running service
/// takes its KEK from one place.
#[derive(Debug)]
pub struct MigratingKeyProvider {
    from: KeyringKeyProvider,
    to: Pkcs11KeyProvider,
}

impl MigratingKeyProvider {
    fn from_keyring(wrapped: &str) -> bool {
        wrapped.starts_with("v1.")
    }
}

impl KeyProvider for MigratingKeyProvider {
    fn wrap(
        &self,
        tenant: &TenantId,
        kid: &EncryptionKeyId,
        dek: &[u8; KEY_LEN],
    ) -> Result<String, EncryptionError> {
        self.to.wrap(tenant, kid, dek)
    }

    fn unwrap(
        &self,
        tenant: &TenantId,
        kid: &EncryptionKeyId,
        wrapped: &str,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, EncryptionError> {
        if Self::from_keyring(wrapped) {
            self.from.unwrap(tenant, kid, wrapped)
        } else {
            self.to.unwrap(tenant, kid, wrapped)
        }
    }

    fn rewrap(
        &self,
        tenant: &TenantId,
        kid: &EncryptionKeyId,
        wrapped: &str,
    ) -> Result<String, EncryptionError> {
        if Self::from_keyring(wrapped) {
            let dek = self.from.unwrap(tenant, kid, wrapped)?;
            self.to.wrap(tenant, kid, &dek)
        } else {
            self.to.rewrap(tenant, kid, wrapped)
        }
    }

    fn readiness(&self) -> Result<(), String> {
        self.to.readiness()
    }
}

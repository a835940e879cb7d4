//! Where the token is and which keys to use: from the `AIRISK_PKCS11_…` environment variables.

use std::fmt;
use std::path::PathBuf;

use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::error::Pkcs11Error;

/// The PKCS#11 module (shared library) path, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
pub const MODULE_ENV: &str = "AIRISK_PKCS11_MODULE";
/// The token label (as `softhsm2-util --show-slots` or the vendor's tool lists it).
pub const TOKEN_ENV: &str = "AIRISK_PKCS11_TOKEN";
/// The user PIN. Only ever read from the environment, held zeroized, never shown.
pub const PIN_ENV: &str = "AIRISK_PKCS11_PIN";
/// The label of the current key-encryption key (an AES-256 secret key object).
pub const KEK_LABEL_ENV: &str = "AIRISK_PKCS11_KEK_LABEL";
/// The label of the ledger's Ed25519 key pair (private and public objects share it).
pub const LEDGER_KEY_LABEL_ENV: &str = "AIRISK_PKCS11_LEDGER_KEY_LABEL";

/// Checks a key label: 1–32 of `A-Z a-z 0-9 - _`, starting with a letter or digit (the key-id
/// rules of `AIRISK_ENCRYPTION_KEYS`, so a KEK label can stand where a key id does, and never
/// contains the `.` that separates the fields of a wrapped key).
///
/// # Errors
/// [`Pkcs11Error::InvalidLabel`].
pub fn check_label(what: &'static str, label: &str) -> Result<(), Pkcs11Error> {
    let reason = if label.is_empty() || label.len() > 32 {
        "must be 1 to 32 characters"
    } else if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        "may contain only A-Z a-z 0-9 - _"
    } else if !label
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_alphanumeric)
    {
        "must start with a letter or digit"
    } else {
        return Ok(());
    };
    Err(Pkcs11Error::InvalidLabel {
        what,
        label: label.to_owned(),
        reason,
    })
}

/// How to reach the token: module, token label and PIN. `Debug` never shows the PIN.
#[derive(Clone)]
pub struct TokenConfig {
    /// The PKCS#11 module path.
    pub module: PathBuf,
    /// The token label.
    pub token_label: String,
    pin: AuthPin,
}

impl TokenConfig {
    /// A configuration with `pin` (taken over; zeroized when dropped).
    pub fn new(module: impl Into<PathBuf>, token_label: impl Into<String>, pin: AuthPin) -> Self {
        TokenConfig {
            module: module.into(),
            token_label: token_label.into(),
            pin,
        }
    }

    /// Reads [`MODULE_ENV`], [`TOKEN_ENV`] and [`PIN_ENV`] now.
    ///
    /// # Errors
    /// [`Pkcs11Error::MissingSetting`] naming the first unset (or empty, or non-Unicode) one.
    pub fn from_env() -> Result<Self, Pkcs11Error> {
        let module = required(MODULE_ENV, "the path of the HSM vendor's PKCS#11 library")?;
        let token_label = required(TOKEN_ENV, "the label of the token that holds the keys")?;
        let pin = required(PIN_ENV, "the token's user PIN")?;
        Ok(TokenConfig::new(
            module.as_str(),
            token_label.as_str(),
            AuthPin::from(pin.as_str()),
        ))
    }

    /// Whether [`MODULE_ENV`] is set: the service then takes its keys from the token.
    pub fn configured_in_env() -> bool {
        std::env::var_os(MODULE_ENV).is_some_and(|v| !v.is_empty())
    }

    pub(crate) fn pin(&self) -> &AuthPin {
        &self.pin
    }
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"[redacted]")
            .finish()
    }
}

/// The key labels the service uses, from [`KEK_LABEL_ENV`] and [`LEDGER_KEY_LABEL_ENV`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLabels {
    /// The current key-encryption key.
    pub kek: String,
    /// The ledger's Ed25519 key pair.
    pub ledger: String,
}

impl KeyLabels {
    /// Reads and checks both labels now.
    ///
    /// # Errors
    /// [`Pkcs11Error::MissingSetting`], [`Pkcs11Error::InvalidLabel`].
    pub fn from_env() -> Result<Self, Pkcs11Error> {
        let kek = required(KEK_LABEL_ENV, "the label of the AES-256 key-encryption key")?;
        let ledger = required(
            LEDGER_KEY_LABEL_ENV,
            "the label of the ledger's Ed25519 key",
        )?;
        check_label("KEK label", &kek)?;
        check_label("ledger key label", &ledger)?;
        Ok(KeyLabels {
            kek: kek.to_string(),
            ledger: ledger.to_string(),
        })
    }
}

fn required(var: &'static str, hint: &'static str) -> Result<Zeroizing<String>, Pkcs11Error> {
    match std::env::var(var) {
        Ok(v) => {
            // The copy we were handed is wiped when this returns, like the trimmed one later.
            let v = Zeroizing::new(v);
            if v.trim().is_empty() {
                Err(Pkcs11Error::MissingSetting { var, hint })
            } else {
                Ok(Zeroizing::new(v.trim().to_owned()))
            }
        }
        Err(std::env::VarError::NotUnicode(raw)) => {
            drop(Zeroizing::new(raw.into_encoded_bytes()));
            Err(Pkcs11Error::MissingSetting { var, hint })
        }
        Err(std::env::VarError::NotPresent) => Err(Pkcs11Error::MissingSetting { var, hint }),
    }
}

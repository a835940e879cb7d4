//! What can go wrong talking to a token. No variant ever carries the PIN or key material.

use std::fmt;

/// Why a PKCS#11 operation failed. Messages name the module, token and key labels involved but
/// never the PIN, a key's bytes, a wrapped key or a plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// A required setting is not set (`AIRISK_PKCS11_…`).
    #[error("{var} is not set: {hint}")]
    MissingSetting {
        /// The environment variable.
        var: &'static str,
        /// What to put in it.
        hint: &'static str,
    },
    /// A label breaks the rules (1–32 of `A-Z a-z 0-9 - _`, starting with a letter or digit).
    #[error("invalid {what} {label:?}: {reason}")]
    InvalidLabel {
        /// Which label (`"KEK label"`, `"ledger key label"`).
        what: &'static str,
        /// The label as given.
        label: String,
        /// The rule broken.
        reason: &'static str,
    },
    /// The PKCS#11 module could not be loaded or initialised.
    #[error("the PKCS#11 module {module} could not be loaded: {reason}")]
    Module {
        /// The module path.
        module: String,
        /// The loader's or the module's reason.
        reason: String,
    },
    /// No slot holds an initialised token with this label.
    #[error("no token labelled {label:?} is present in the PKCS#11 module")]
    TokenNotFound {
        /// The token label asked for.
        label: String,
    },
    /// The token refused the PIN (`CKR_PIN_INCORRECT`, `CKR_PIN_LEN_RANGE`).
    #[error("the token {token:?} refused the PIN (from AIRISK_PKCS11_PIN)")]
    WrongPin {
        /// The token label.
        token: String,
    },
    /// The token's user PIN is locked after too many failures (`CKR_PIN_LOCKED`).
    #[error("the user PIN of token {token:?} is locked; the security officer must reset it")]
    PinLocked {
        /// The token label.
        token: String,
    },
    /// No key object with this label (and the expected class and type) is in the token.
    #[error("no {kind} labelled {label:?} is in the token")]
    KeyNotFound {
        /// `"AES key-encryption key"`, `"Ed25519 private key"` or `"Ed25519 public key"`.
        kind: &'static str,
        /// The label.
        label: String,
    },
    /// Several key objects carry this label, so it does not name one key.
    #[error("{count} objects of kind {kind} are labelled {label:?}; a label must name one key")]
    AmbiguousLabel {
        /// The kind looked for.
        kind: &'static str,
        /// The label.
        label: String,
        /// How many objects carry it.
        count: usize,
    },
    /// `hsm-generate` was asked for a label already in use.
    #[error("the token already holds a key labelled {label:?} ({kind}); choose a new label")]
    LabelTaken {
        /// The kind found.
        kind: &'static str,
        /// The label.
        label: String,
    },
    /// A key-encryption key the token would let out (`CKA_EXTRACTABLE` true or `CKA_SENSITIVE`
    /// false): refused, as its bytes could leave the token.
    #[error("the {kind} labelled {label:?} is extractable or not sensitive; refusing to use it")]
    KeyNotProtected {
        /// The kind.
        kind: &'static str,
        /// The label.
        label: String,
    },
    /// The token's public key is not an Ed25519 point.
    #[error("the public key labelled {label:?} is not an Ed25519 key: {reason}")]
    NotEd25519 {
        /// The label.
        label: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The token or the session is gone (device removed, session closed, device error) and
    /// reopening it failed too.
    #[error("the token {token:?} is unavailable: {reason}")]
    Unavailable {
        /// The token label.
        token: String,
        /// The module's reason.
        reason: String,
    },
    /// The token answered a call with an error.
    #[error("the token refused {operation}: {reason}")]
    Operation {
        /// What was attempted.
        operation: &'static str,
        /// The module's reason (its return value).
        reason: String,
    },
}

/// Short text for a cryptoki error: the PKCS#11 function and return value only (cryptoki's own
/// `Display` of a return value is a paragraph of the standard).
pub(crate) struct Short<'a>(pub(crate) &'a cryptoki::error::Error);

impl fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            cryptoki::error::Error::Pkcs11(rv, function) => write!(f, "{function}: {rv:?}"),
            other => write!(f, "{other}"),
        }
    }
}

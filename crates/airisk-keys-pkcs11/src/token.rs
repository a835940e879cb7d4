//! One logged-in session to one token, shared behind a mutex, reopened when lost.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;

use crate::config::{TokenConfig, check_label};
use crate::error::{Pkcs11Error, Short};

/// The DER encoding of the Ed25519 curve's object identifier, 1.3.101.112 (RFC 8410), as
/// `CKA_EC_PARAMS` of an Edwards key pair.
pub const ED25519_EC_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// `CKA_EC_PARAMS` as some tokens write it for Ed25519: the printable string `edwards25519`.
const ED25519_EC_PARAMS_NAME: &[u8] = b"\x13\x0cedwards25519";

/// The kinds of key object this crate uses, each found by label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The AES-256 key-encryption key (`CKO_SECRET_KEY`, `CKK_AES`).
    Kek,
    /// The ledger's Ed25519 private key (`CKO_PRIVATE_KEY`, `CKK_EC_EDWARDS`).
    LedgerPrivate,
    /// The ledger's Ed25519 public key (`CKO_PUBLIC_KEY`, `CKK_EC_EDWARDS`).
    LedgerPublic,
}

impl KeyKind {
    /// How errors name it.
    pub fn describe(self) -> &'static str {
        match self {
            KeyKind::Kek => "AES key-encryption key",
            KeyKind::LedgerPrivate => "Ed25519 private key",
            KeyKind::LedgerPublic => "Ed25519 public key",
        }
    }

    fn template(self, label: &str) -> Vec<Attribute> {
        let (class, key_type) = match self {
            KeyKind::Kek => (ObjectClass::SECRET_KEY, KeyType::AES),
            KeyKind::LedgerPrivate => (ObjectClass::PRIVATE_KEY, KeyType::EC_EDWARDS),
            KeyKind::LedgerPublic => (ObjectClass::PUBLIC_KEY, KeyType::EC_EDWARDS),
        };
        vec![
            Attribute::Class(class),
            Attribute::KeyType(key_type),
            Attribute::Label(label.as_bytes().to_vec()),
        ]
    }
}

/// The protection attributes of a key object, as the token reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyProtection {
    /// `CKA_EXTRACTABLE`: whether it may leave the token (wrapped). Must be false.
    pub extractable: bool,
    /// `CKA_SENSITIVE`: whether its value is hidden. Must be true.
    pub sensitive: bool,
    /// `CKA_NEVER_EXTRACTABLE`: it was never extractable.
    pub never_extractable: bool,
    /// `CKA_ALWAYS_SENSITIVE`: it was always sensitive.
    pub always_sensitive: bool,
    /// `CKA_TOKEN`: a persistent token object (not a session object).
    pub token_object: bool,
}

/// A failure inside a session: the token's own refusal, or one of ours.
#[derive(Debug)]
pub(crate) enum CallError {
    /// A PKCS#11 call returned an error.
    Refused(CkError),
    /// A check of ours failed (a key missing, say).
    Token(Pkcs11Error),
}

impl From<CkError> for CallError {
    fn from(e: CkError) -> Self {
        CallError::Refused(e)
    }
}

impl From<Pkcs11Error> for CallError {
    fn from(e: Pkcs11Error) -> Self {
        CallError::Token(e)
    }
}

/// Return values after which the session (or the token) must be reopened.
fn session_lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::UserNotLoggedIn
                | RvError::CryptokiNotInitialized
                | RvError::SlotIdInvalid,
            _
        )
    )
}

/// Whether `session` is a logged-in user session (a failed query counts as not).
fn logged_in(session: &Session) -> bool {
    session
        .get_session_info()
        .is_ok_and(|i| i.session_state() == SessionState::RwUser)
}

/// One initialised context per module path for the whole process: PKCS#11 allows one
/// `C_Initialize` per process, and `C_Finalize` would end every other user's sessions, so a
/// context, once made, lives as long as the process.
fn context(module: &Path) -> Result<Pkcs11, Pkcs11Error> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut contexts = CONTEXTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = contexts.get(module) {
        return Ok(ctx.clone());
    }
    let failed = |reason: String| Pkcs11Error::Module {
        module: module.display().to_string(),
        reason,
    };
    let ctx = Pkcs11::new(module).map_err(|e| failed(Short(&e).to_string()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(failed(Short(&e).to_string())),
    }
    contexts.insert(module.to_owned(), ctx.clone());
    Ok(ctx)
}

/// A token, logged in as its user: one read-write session, used by one caller at a time (PKCS#11
/// sessions are not to be shared between threads at once). When a call finds the session gone
/// (device removed, session closed, logged out), the session is reopened and logged in again and
/// the call retried once; if that fails the caller gets [`Pkcs11Error::Unavailable`] and the next
/// call tries again. Nothing ever falls back to a key outside the token.
pub struct Token {
    config: TokenConfig,
    ctx: Pkcs11,
    session: Mutex<Option<Session>>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("module", &self.config.module)
            .field("token_label", &self.config.token_label)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Loads the module, finds the token by label, opens a session and logs in.
    ///
    /// # Errors
    /// [`Pkcs11Error::Module`], [`Pkcs11Error::TokenNotFound`], [`Pkcs11Error::WrongPin`],
    /// [`Pkcs11Error::PinLocked`], [`Pkcs11Error::Unavailable`].
    pub fn open(config: TokenConfig) -> Result<Arc<Token>, Pkcs11Error> {
        let ctx = context(&config.module)?;
        let token = Token {
            config,
            ctx,
            session: Mutex::new(None),
        };
        let session = token.connect()?;
        *token.session.lock().unwrap_or_else(PoisonError::into_inner) = Some(session);
        Ok(Arc::new(token))
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.config.token_label
    }

    fn unavailable(&self, reason: String) -> Pkcs11Error {
        Pkcs11Error::Unavailable {
            token: self.config.token_label.clone(),
            reason,
        }
    }

    fn find_slot(&self) -> Result<Slot, Pkcs11Error> {
        let slots = self
            .ctx
            .get_slots_with_initialized_token()
            .map_err(|e| self.unavailable(Short(&e).to_string()))?;
        let mut unreadable = None;
        for slot in slots {
            match self.ctx.get_token_info(slot) {
                Ok(info) if info.label().trim_end() == self.config.token_label => return Ok(slot),
                Ok(_) => {}
                Err(e) => unreadable = Some(Short(&e).to_string()),
            }
        }
        // A slot whose token could not be read may be ours: unavailable, not absent.
        Err(match unreadable {
            Some(reason) => self.unavailable(reason),
            None => Pkcs11Error::TokenNotFound {
                label: self.config.token_label.clone(),
            },
        })
    }

    fn connect(&self) -> Result<Session, Pkcs11Error> {
        let slot = self.find_slot()?;
        let session = self
            .ctx
            .open_rw_session(slot)
            .map_err(|e| self.unavailable(Short(&e).to_string()))?;
        match session.login(UserType::User, Some(self.config.pin())) {
            // Login state is per application and token: another session may have logged in.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(CkError::Pkcs11(
                RvError::PinIncorrect | RvError::PinLenRange | RvError::PinInvalid,
                _,
            )) => Err(Pkcs11Error::WrongPin {
                token: self.config.token_label.clone(),
            }),
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(Pkcs11Error::PinLocked {
                token: self.config.token_label.clone(),
            }),
            Err(e) => Err(self.unavailable(Short(&e).to_string())),
        }
    }

    /// Runs `f` on the session (opening it first if needed); reopens and retries once when the
    /// session was lost.
    pub(crate) fn with_session<T>(
        &self,
        f: impl Fn(&Session) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        let mut guard = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        for attempt in 0..2 {
            if guard.is_none() {
                *guard = Some(self.connect()?);
            }
            let Some(session) = guard.as_ref() else {
                break;
            };
            let result = match f(session) {
                // Private objects are invisible to a session that is no longer logged in (the
                // token logged the application out): that is a lost login, not a missing key.
                Err(CallError::Token(Pkcs11Error::KeyNotFound { .. })) if !logged_in(session) => {
                    Err(CallError::Refused(CkError::Pkcs11(
                        RvError::UserNotLoggedIn,
                        cryptoki::context::Function::FindObjects,
                    )))
                }
                other => other,
            };
            match result {
                Err(CallError::Refused(e)) if session_lost(&e) => {
                    tracing::warn!(
                        token = %self.config.token_label,
                        error = %Short(&e),
                        attempt,
                        "the PKCS#11 session was lost; reopening it"
                    );
                    // Dropping the session closes it (an error closing a dead one is moot).
                    *guard = None;
                    if attempt == 1 {
                        return Err(self.unavailable(Short(&e).to_string()).into());
                    }
                }
                other => return other,
            }
        }
        Err(self
            .unavailable("the session could not be reopened".into())
            .into())
    }

    /// Whether the session answers and the key objects `keys` are present, for readiness probes.
    ///
    /// # Errors
    /// A short reason (token unavailable, key missing).
    pub fn check(&self, keys: &[(KeyKind, &str)]) -> Result<(), String> {
        self.with_session(|s| {
            s.get_session_info()?;
            for (kind, label) in keys {
                find_one(s, *kind, label)?;
            }
            Ok(())
        })
        .map_err(|e| self.reason(e).to_string())
    }

    /// Turns a [`CallError`] into a [`Pkcs11Error`], naming `operation` for a refused call.
    pub(crate) fn reason(&self, e: CallError) -> Pkcs11Error {
        match e {
            CallError::Token(e) => e,
            CallError::Refused(e) if session_lost(&e) => self.unavailable(Short(&e).to_string()),
            CallError::Refused(e) => Pkcs11Error::Operation {
                operation: "the call",
                reason: Short(&e).to_string(),
            },
        }
    }

    /// The protection attributes of the key object `label` of `kind`.
    ///
    /// # Errors
    /// [`Pkcs11Error::KeyNotFound`], [`Pkcs11Error::AmbiguousLabel`], the token's errors.
    pub fn key_protection(&self, kind: KeyKind, label: &str) -> Result<KeyProtection, Pkcs11Error> {
        self.with_session(|s| {
            let handle = find_one(s, kind, label)?;
            protection(s, handle)
        })
        .map_err(|e| self.reason(e))
    }

    /// Generates the AES-256 key-encryption key `label` inside the token: a persistent, private,
    /// sensitive, non-extractable secret key that may only encrypt and decrypt.
    ///
    /// # Errors
    /// [`Pkcs11Error::InvalidLabel`], [`Pkcs11Error::LabelTaken`], the token's errors.
    pub fn generate_kek(&self, label: &str) -> Result<KeyProtection, Pkcs11Error> {
        check_label("KEK label", label)?;
        self.with_session(|s| {
            refuse_taken(s, KeyKind::Kek, label)?;
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Sign(false),
                Attribute::Verify(false),
                Attribute::Derive(false),
            ];
            let handle = s.generate_key(&Mechanism::AesKeyGen, &template)?;
            protection(s, handle)
        })
        .map_err(|e| self.reason(e))
    }

    /// Generates the ledger's Ed25519 key pair `label` inside the token
    /// (`CKM_EC_EDWARDS_KEY_PAIR_GEN`): the private key persistent, private, sensitive,
    /// non-extractable, sign-only; the public key persistent and verify-only. Returns the public
    /// key.
    ///
    /// # Errors
    /// [`Pkcs11Error::InvalidLabel`], [`Pkcs11Error::LabelTaken`], [`Pkcs11Error::NotEd25519`],
    /// the token's errors.
    pub fn generate_ledger_key(&self, label: &str) -> Result<[u8; 32], Pkcs11Error> {
        check_label("ledger key label", label)?;
        self.with_session(|s| {
            refuse_taken(s, KeyKind::LedgerPrivate, label)?;
            refuse_taken(s, KeyKind::LedgerPublic, label)?;
            let public = [
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Verify(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::EcParams(ED25519_EC_PARAMS.to_vec()),
            ];
            let private = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Derive(false),
                Attribute::Label(label.as_bytes().to_vec()),
            ];
            let (public, _) =
                s.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private)?;
            read_public_key(s, public, label)
        })
        .map_err(|e| self.reason(e))
    }

    /// The ledger's Ed25519 public key `label`, read from the token's public key object.
    ///
    /// # Errors
    /// [`Pkcs11Error::KeyNotFound`], [`Pkcs11Error::NotEd25519`], the token's errors.
    pub fn ledger_public_key(&self, label: &str) -> Result<[u8; 32], Pkcs11Error> {
        self.with_session(|s| {
            let handle = find_one(s, KeyKind::LedgerPublic, label)?;
            read_public_key(s, handle, label)
        })
        .map_err(|e| self.reason(e))
    }
}

fn refuse_taken(s: &Session, kind: KeyKind, label: &str) -> Result<(), CallError> {
    if s.find_objects(&kind.template(label))?.is_empty() {
        Ok(())
    } else {
        Err(Pkcs11Error::LabelTaken {
            kind: kind.describe(),
            label: label.to_owned(),
        }
        .into())
    }
}

/// The one object of `kind` labelled `label`.
pub(crate) fn find_one(s: &Session, kind: KeyKind, label: &str) -> Result<ObjectHandle, CallError> {
    let found = s.find_objects(&kind.template(label))?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Pkcs11Error::KeyNotFound {
            kind: kind.describe(),
            label: label.to_owned(),
        }
        .into()),
        many => Err(Pkcs11Error::AmbiguousLabel {
            kind: kind.describe(),
            label: label.to_owned(),
            count: many.len(),
        }
        .into()),
    }
}

fn protection(s: &Session, handle: ObjectHandle) -> Result<KeyProtection, CallError> {
    let attributes = s.get_attributes(
        handle,
        &[
            AttributeType::Extractable,
            AttributeType::Sensitive,
            AttributeType::NeverExtractable,
            AttributeType::AlwaysSensitive,
            AttributeType::Token,
        ],
    )?;
    // Absent attributes read as the unsafe answer, so a token that does not report them fails
    // the checks made on them.
    let mut p = KeyProtection {
        extractable: true,
        sensitive: false,
        never_extractable: false,
        always_sensitive: false,
        token_object: false,
    };
    for a in attributes {
        match a {
            Attribute::Extractable(v) => p.extractable = v,
            Attribute::Sensitive(v) => p.sensitive = v,
            Attribute::NeverExtractable(v) => p.never_extractable = v,
            Attribute::AlwaysSensitive(v) => p.always_sensitive = v,
            Attribute::Token(v) => p.token_object = v,
            _ => {}
        }
    }
    Ok(p)
}

/// Reads `CKA_EC_PARAMS` and `CKA_EC_POINT` of an Edwards public key and returns the 32-byte
/// Ed25519 point (accepting the DER OCTET STRING that PKCS#11 specifies and the raw 32 bytes
/// some tokens return).
fn read_public_key(s: &Session, handle: ObjectHandle, label: &str) -> Result<[u8; 32], CallError> {
    let not_ed25519 = |reason| {
        CallError::Token(Pkcs11Error::NotEd25519 {
            label: label.to_owned(),
            reason,
        })
    };
    let mut params = None;
    let mut point = None;
    for a in s.get_attributes(handle, &[AttributeType::EcParams, AttributeType::EcPoint])? {
        match a {
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            _ => {}
        }
    }
    match params.as_deref() {
        Some(p) if p == ED25519_EC_PARAMS || p == ED25519_EC_PARAMS_NAME => {}
        _ => return Err(not_ed25519("CKA_EC_PARAMS does not name Ed25519")),
    }
    let point = point.ok_or_else(|| not_ed25519("CKA_EC_POINT is missing"))?;
    let raw = match point.as_slice() {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        raw if raw.len() == 32 => raw,
        _ => return Err(not_ed25519("CKA_EC_POINT is not a 32-byte point")),
    };
    let mut key = [0u8; 32];
    key.copy_from_slice(raw);
    Ok(key)
}

//! Sealing sensitive values at rest: AES-256-GCM with a keyring from the environment.
//!
//! An [`Encryptor`] holds a [`Keyring`]: one *primary* key that seals new values and any number of
//! older keys that only open values sealed before a rotation. Every ciphertext names the key that
//! sealed it, so keys can be rotated without a flag day (see "Rotation" below).
//!
//! ```
//! use airisk_core::security::encryption::{EncryptionContext, Encryptor, Purpose};
//! use airisk_core::security::tenant_context::TenantId;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // In production: Encryptor::from_env() reads AIRISK_ENCRYPTION_KEYS once.
//! let encryptor =
//!     Encryptor::from_env_value("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?;
//! let ctx = EncryptionContext::new(TenantId::parse("acme")?, Purpose::parse("model.api-key")?);
//!
//! let sealed = encryptor.encrypt_with_context("sk-live-123", &ctx)?;
//! assert!(sealed.starts_with("v1.k1."));
//! assert_eq!(encryptor.decrypt_with_context(&sealed, &ctx)?, "sk-live-123");
//!
//! // The same ciphertext, presented for another tenant, does not open.
//! let other = EncryptionContext::new(TenantId::parse("globex")?, Purpose::parse("model.api-key")?);
//! assert!(encryptor.decrypt_with_context(&sealed, &other).is_err());
//! # Ok(())
//! # }
//! ```
//!
//! # Keyring
//!
//! [`ENV_VAR`] (`AIRISK_ENCRYPTION_KEYS`) holds comma-separated `kid:base64key` entries, for example
//! `k2026b:<44 base64 chars>,k2026a:<44 base64 chars>`. The key is 32 random bytes in standard
//! base64 *with* padding (RFC 4648 §4); the key id follows the rules of [`EncryptionKeyId`]. The first entry is
//! the primary key; the others only decrypt. Blanks around entries are ignored. The variable is read
//! once, when the [`Keyring`] is built; `airisk keys generate` prints a fresh entry.
//!
//! # Ciphertext format
//!
//! ```text
//! v1.<kid>.<base64url-nopad(nonce ‖ ciphertext ‖ tag)>
//! ```
//!
//! * `v1` is the format version.
//! * `<kid>` is the [`EncryptionKeyId`] of the key that sealed the value (no dots, so the string splits on the
//!   first two dots).
//! * the payload is base64url (RFC 4648 §5, alphabet `A–Z a–z 0–9 - _`) without `=` padding, of the
//!   12-byte nonce, the AES-GCM ciphertext (as long as the plaintext) and the 16-byte tag. Decoding
//!   is strict: padding, other alphabets and non-zero trailing bits are rejected, so one value has
//!   exactly one textual form.
//!
//! # Associated data, byte for byte
//!
//! AES-GCM authenticates, besides the ciphertext, "associated data" that is not stored in it. Here
//! it binds the format version and the key id (so a ciphertext cannot be relabelled to another key
//! id) and, for context-bound values, the tenant and the purpose (so a ciphertext copied to another
//! tenant's row, or to another column, does not open):
//!
//! ```text
//! without context:  "airisk.v1" 0x00 kid 0x00
//! with context:     "airisk.v1" 0x00 kid 0x00 len(tenant) tenant len(purpose) purpose
//! ```
//!
//! `"airisk.v1"` is the 9 ASCII bytes `61 69 72 69 73 6b 2e 76 31`; `kid`, `tenant` and `purpose`
//! are their ASCII bytes; each `len(…)` is the length in bytes as an unsigned 16-bit big-endian
//! integer (2 bytes). Key ids cannot contain `0x00`, and the context part is either absent or made
//! of exactly two length-prefixed fields, so no two different (kid, context) pairs share an AAD and
//! a value sealed without context never opens with one, nor the other way round.
//!
//! For key id `k1`, tenant `acme` and purpose `api-key` the AAD is the 28 bytes
//! `61 69 72 69 73 6b 2e 76 31 00 6b 31 00 00 04 61 63 6d 65 00 07 61 70 69 2d 6b 65 79`
//! (`"airisk.v1" 00 "k1" 00 0004 "acme" 0007 "api-key"`). `docs/ENCRYPTION.md` shows a Python
//! decryption with `cryptography`'s `AESGCM`.
//!
//! # Nonces and the per-key limit
//!
//! Each encryption draws a fresh 96-bit nonce from the operating system's CSPRNG
//! ([`ring::rand::SystemRandom`], the `getrandom` system call on Linux); nothing is buffered or
//! counted in process memory, so a `fork` cannot replay nonces. NIST SP 800-38D §8.3 limits a key
//! used with random 96-bit nonces to 2<sup>32</sup> (about 4.29 billion) encryptions, which keeps
//! the probability of a nonce collision below 2<sup>-32</sup>. The library keeps no counter: rotate
//! (make a new key primary) well before a key has sealed that many values — for example yearly, or
//! whenever a bulk job re-encrypts a large table.
//!
//! # Rotation
//!
//! 1. Generate a new entry and put it *first* in `AIRISK_ENCRYPTION_KEYS`, keeping the old entries
//!    after it. New values are sealed with the new key; old values still open.
//! 2. Re-encrypt stored values with [`Encryptor::rewrap`] (or `airisk crypto rewrap --lines`). The
//!    plaintext never leaves this module; values already under the primary key are returned as they
//!    are, after being authenticated.
//! 3. When no value names the old key id any more ([`key_id_of`] tells), drop the old entry.
//!
//! # What is zeroized
//!
//! The environment string read by [`Keyring::from_env`], the decoded key bytes and every plaintext
//! buffer this module owns (in [`Encryptor::rewrap`], [`Encryptor::decrypt_bytes`]'s result, and a
//! failed seal) are overwritten with zeros when dropped ([`zeroize`]). The expanded AES key schedule
//! and GHASH table live inside ring's [`LessSafeKey`], which offers no zeroization; they are freed,
//! not wiped, when the [`Encryptor`] is dropped. Building a `LessSafeKey` per call would not help
//! (the schedule would then be left on the stack of every thread that encrypts) and costs time, so
//! the keys are expanded once. The process environment itself still holds the variable; only the
//! process owner can read it. [`Debug`] and [`Display`](fmt::Display) show key ids only.

use std::fmt;

use base64_simd::{Out, STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::tenant_context::{IdentifierError, TENANT_ID_MAX_LEN, TenantId};
use crate::newtype::validate_identifier;

/// The environment variable [`Keyring::from_env`] and [`Encryptor::from_env`] read.
pub const ENV_VAR: &str = "AIRISK_ENCRYPTION_KEYS";
/// Length of an AES-256 key, in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the AES-GCM nonce stored at the start of every payload, in bytes.
pub const NONCE_BYTES: usize = NONCE_LEN;
/// Length of the AES-GCM tag stored at the end of every payload, in bytes.
pub const TAG_BYTES: usize = 16;
/// The format version, the first field of every ciphertext.
pub const FORMAT_VERSION: &str = "v1";
/// The constant that starts every AAD (see the module documentation).
pub const AAD_LABEL: &[u8] = b"airisk.v1";
/// Longest key id, in bytes.
pub const KEY_ID_MAX_LEN: usize = 32;
/// Longest purpose, in bytes.
pub const PURPOSE_MAX_LEN: usize = 64;

// The context's length prefixes are u16.
const _: () =
    assert!(TENANT_ID_MAX_LEN <= u16::MAX as usize && PURPOSE_MAX_LEN <= u16::MAX as usize);
// The nonce (12 bytes) is a whole number of base64 quanta (3 bytes), so it encodes to exactly 16
// characters and the payload can be encoded and decoded in two independent pieces.
const _: () = assert!(NONCE_BYTES.is_multiple_of(3));
const NONCE_B64_LEN: usize = NONCE_BYTES / 3 * 4;
/// "v1." — the version and its dot.
const VERSION_PREFIX: &str = "v1.";

/// The largest piece [`copy_in_pieces`] hands to `memcpy` at once.
const COPY_PIECE: usize = 1024;

/// Appends `src` to `dst` in pieces of at most [`COPY_PIECE`] bytes: the same bytes as one
/// `extend_from_slice`, faster on some machines. glibc before 2.39 (Debian 12 has 2.36) copies
/// blocks from its `x86_rep_movsb_threshold` up with `rep movsb` (2,112 bytes on the AMD EPYC
/// (Zen 3) guests this project is measured on, `ld.so --list-tunables`; 2 KiB at the lowest),
/// and there that runs at about a third of its vector loop: one 16 KiB copy took longer than
/// AES-GCM over the same bytes. Pieces of 1 KiB stay below every such switch point. Measured
/// with `cargo bench -p airisk-core --bench encryption` (16 KiB encrypt: 15.4 µs as one copy,
/// 5.7 µs with the switch point raised by `GLIBC_TUNABLES`; docs/ENCRYPTION.md).
fn copy_in_pieces(dst: &mut Vec<u8>, src: &[u8]) {
    for piece in src.chunks(COPY_PIECE) {
        dst.extend_from_slice(piece);
    }
}

/// The id of one key of the keyring: 1 to 32 characters of ASCII letters, digits, `-` and `_`,
/// starting with a letter or digit.
///
/// It appears in every ciphertext between two dots, which is why it cannot contain one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EncryptionKeyId(String);

impl EncryptionKeyId {
    /// Validates `input` as a key id.
    ///
    /// # Errors
    /// [`IdentifierError`] saying which rule the input broke.
    pub fn parse(input: &str) -> Result<Self, IdentifierError> {
        validate_identifier(
            "key id",
            input,
            KEY_ID_MAX_LEN,
            |c| c.is_ascii_alphanumeric() || c == '-' || c == '_',
            "ASCII letters, digits, '-' and '_'",
        )?;
        Ok(EncryptionKeyId(input.to_owned()))
    }

    /// A fresh key id for a key made on `date`: `k`, the date as `YYYYMMDD`, `-` and six random hex
    /// digits, such as `k20260127-3fa9c1`. Ids sort by creation date and two operators generating on
    /// the same day do not collide in practice.
    ///
    /// # Errors
    /// [`EncryptionError::RandomUnavailable`] if the OS random generator fails.
    pub fn generate(date: chrono::NaiveDate) -> Result<Self, EncryptionError> {
        let mut suffix = [0u8; 3];
        SystemRandom::new()
            .fill(&mut suffix)
            .map_err(|_| EncryptionError::RandomUnavailable)?;
        let [a, b, c] = suffix;
        Ok(EncryptionKeyId(format!(
            "k{}-{a:02x}{b:02x}{c:02x}",
            date.format("%Y%m%d")
        )))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a sealed value is for, such as `model.api-key` or `prompt.body`: 1 to 64 characters of
/// ASCII lower-case letters, digits, `.`, `_` and `-`, starting with a letter or digit.
///
/// Bound into the AAD with the tenant, so a ciphertext moved from one column (purpose) to another
/// does not decrypt.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Purpose(String);

impl Purpose {
    /// Validates `input` as a purpose.
    ///
    /// # Errors
    /// [`IdentifierError`] saying which rule the input broke.
    pub fn parse(input: &str) -> Result<Self, IdentifierError> {
        validate_identifier(
            "purpose",
            input,
            PURPOSE_MAX_LEN,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'),
            "ASCII lower-case letters, digits, '.', '_' and '-'",
        )?;
        Ok(Purpose(input.to_owned()))
    }

    /// The purpose as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::newtype::string_newtype!(EncryptionKeyId, IdentifierError);
crate::newtype::string_newtype!(Purpose, IdentifierError);

/// The tenant and purpose a value is sealed for, bound into the AES-GCM associated data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncryptionContext {
    /// The tenant that owns the value.
    pub tenant: TenantId,
    /// What the value is for.
    pub purpose: Purpose,
    /// The identity of the row (or record) that holds the value, if bound: a ciphertext copied
    /// to another row does not open. Set with [`EncryptionContext::with_row`].
    pub row: Option<String>,
    /// The data subject the value is about, as its pseudonym (see
    /// [`crate::security::data_subject`]), if bound: a ciphertext relabelled to another subject
    /// does not open. Set with [`EncryptionContext::with_subject`].
    pub subject: Option<String>,
}

/// Longest row identity bound into a context, in bytes.
pub const ROW_MAX_LEN: usize = 1024;
const _: () = assert!(ROW_MAX_LEN <= u16::MAX as usize);

impl EncryptionContext {
    /// The context of `tenant`'s values of `purpose`.
    pub fn new(tenant: TenantId, purpose: Purpose) -> Self {
        EncryptionContext {
            tenant,
            purpose,
            row: None,
            subject: None,
        }
    }

    /// The same context, bound to a data subject's pseudonym: the AAD gains a fourth
    /// length-prefixed field after the row (an empty row field if no row is bound), so a
    /// subject-bound AAD never equals a two- or three-field one.
    ///
    /// # Errors
    /// [`EncryptionError::RowTooLong`] past [`ROW_MAX_LEN`] bytes.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Result<Self, EncryptionError> {
        let subject = subject.into();
        if subject.len() > ROW_MAX_LEN {
            return Err(EncryptionError::RowTooLong { len: subject.len() });
        }
        self.subject = Some(subject);
        Ok(self)
    }

    /// The same context, bound to the row identity `row` as a third length-prefixed AAD field.
    ///
    /// # Errors
    /// [`EncryptionError::RowTooLong`] past [`ROW_MAX_LEN`] bytes.
    pub fn with_row(mut self, row: impl Into<String>) -> Result<Self, EncryptionError> {
        let row = row.into();
        if row.len() > ROW_MAX_LEN {
            return Err(EncryptionError::RowTooLong { len: row.len() });
        }
        self.row = Some(row);
        Ok(self)
    }
}

/// Why a keyring entry was rejected. Never carries key bytes or base64 text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProblem {
    /// The entry is empty (two commas in a row, or a trailing comma).
    #[error("is empty")]
    EmptyEntry,
    /// The entry has no `:` between the key id and the key.
    #[error("has no ':' between key id and key")]
    MissingSeparator,
    /// The part before the `:` is not a valid [`EncryptionKeyId`].
    #[error("has an invalid key id: {0}")]
    InvalidKeyId(IdentifierError),
    /// The key is not standard base64 with padding.
    #[error("key is not valid standard base64 (with '=' padding)")]
    InvalidBase64,
    /// The key does not decode to exactly [`KEY_LEN`] bytes.
    #[error("key decodes to {len} bytes; AES-256 needs exactly {KEY_LEN}")]
    WrongLength {
        /// The decoded length.
        len: usize,
    },
    /// The key id was already used by an earlier entry.
    #[error("repeats the key id of entry {first}")]
    DuplicateKeyId {
        /// 1-based position of the first entry with this key id.
        first: usize,
    },
}

/// Everything that can go wrong building a keyring, sealing or opening a value.
///
/// Messages never contain key material. Decryption has a single failure for a wrong key, a wrong
/// context and a tampered ciphertext ([`EncryptionError::DecryptionFailed`]), so an attacker learns
/// nothing from which one it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptionError {
    /// The keyring variable is not set, or holds only blanks.
    #[error("{ENV_VAR} is not set or is empty; expected comma-separated `kid:base64key` entries")]
    KeyMissing,
    /// The keyring variable is set but is not valid UTF-8.
    #[error("{ENV_VAR} is not valid UTF-8")]
    KeyringNotUnicode,
    /// One keyring entry is invalid. Names the entry by position and, when its key id is valid,
    /// by key id.
    #[error("{ENV_VAR} entry {position}{}: {problem}", kid_label(kid.as_ref()))]
    KeyInvalid {
        /// 1-based position of the entry in the comma-separated list.
        position: usize,
        /// The entry's key id, when it is a valid one (an invalid one might be a pasted key, so it
        /// is never echoed).
        kid: Option<EncryptionKeyId>,
        /// What is wrong with it.
        problem: KeyProblem,
    },
    /// The ciphertext names a key id that is not in the keyring (a key dropped too early, or a
    /// keyring from another environment).
    #[error("ciphertext is sealed with key id {kid}, which is not in the keyring")]
    UnknownKeyId {
        /// The key id the ciphertext names.
        kid: EncryptionKeyId,
    },
    /// The input is not a ciphertext of the form `v1.<kid>.<base64url>`.
    #[error("malformed ciphertext: {reason}")]
    MalformedCiphertext {
        /// What is wrong with its shape.
        reason: &'static str,
    },
    /// Authentication failed: wrong key, wrong context (tenant, purpose, or context vs none), or a
    /// tampered or truncated payload. Deliberately one opaque error.
    #[error("ciphertext could not be decrypted (wrong key, wrong context or tampered)")]
    DecryptionFailed,
    /// The value decrypted and authenticated, but is not UTF-8 text: it was sealed with
    /// [`Encryptor::encrypt_bytes`] and must be opened with [`Encryptor::decrypt_bytes`].
    #[error("decrypted value is not UTF-8 text (it was encrypted as bytes)")]
    PlaintextNotUtf8,
    /// The operating system's random number generator failed, so no nonce could be drawn.
    #[error("the operating system's random number generator failed")]
    RandomUnavailable,
    /// The plaintext is longer than one AES-GCM message may be (about 64 GiB).
    #[error("plaintext is too long to encrypt as one value")]
    PlaintextTooLong,
    /// The key-encryption key's custodian (a PKCS#11 token, `airisk-keys-pkcs11`) cannot be
    /// used now: the module failed, the session was lost, or the key is missing. Nothing was
    /// wrapped or unwrapped and nothing falls back to another key; the reason never holds key
    /// material or credentials.
    #[error("the key provider is unavailable: {reason}")]
    ProviderUnavailable {
        /// Why.
        reason: String,
    },
    /// A row identity longer than [`ROW_MAX_LEN`] bytes.
    #[error("row identity is {len} bytes; at most {ROW_MAX_LEN} can be bound")]
    RowTooLong {
        /// Its length.
        len: usize,
    },
}

fn kid_label(kid: Option<&EncryptionKeyId>) -> String {
    kid.map(|k| format!(" (key id {k})")).unwrap_or_default()
}

/// One key: its id, ring's expanded key, and the context-free AAD (computed once).
struct KeyEntry {
    kid: EncryptionKeyId,
    key: LessSafeKey,
    aad: Box<[u8]>,
}

/// The keys an [`Encryptor`] uses: the primary (first) seals, all of them open.
///
/// Built once from [`ENV_VAR`]; the raw key bytes are wiped as soon as ring has expanded them (see
/// the module documentation). [`Debug`] and [`Display`](fmt::Display) show key ids only.
pub struct Keyring {
    primary: KeyEntry,
    /// Decrypt-only keys, in the order of the variable.
    older: Vec<KeyEntry>,
}

impl Keyring {
    /// Reads and parses [`ENV_VAR`] (once; later changes to the environment are not seen).
    ///
    /// # Errors
    /// [`EncryptionError::KeyMissing`] if the variable is unset or blank,
    /// [`EncryptionError::KeyringNotUnicode`] if it is not UTF-8, and the errors of
    /// [`Keyring::parse`].
    pub fn from_env() -> Result<Self, EncryptionError> {
        let value = match std::env::var(ENV_VAR) {
            Ok(value) => Zeroizing::new(value),
            Err(std::env::VarError::NotPresent) => return Err(EncryptionError::KeyMissing),
            Err(std::env::VarError::NotUnicode(raw)) => {
                drop(Zeroizing::new(raw.into_encoded_bytes()));
                return Err(EncryptionError::KeyringNotUnicode);
            }
        };
        Keyring::parse(&value)
    }

    /// Parses a keyring in the format of [`ENV_VAR`]: comma-separated `kid:base64key` entries, the
    /// first one primary. Errors name [`ENV_VAR`], since that is where this text lives.
    ///
    /// # Errors
    /// [`EncryptionError::KeyMissing`] if `value` is blank; [`EncryptionError::KeyInvalid`] naming
    /// the first bad entry (empty, no `:`, invalid key id, bad base64, not 32 bytes, duplicate key
    /// id).
    pub fn parse(value: &str) -> Result<Self, EncryptionError> {
        if value.trim().is_empty() {
            return Err(EncryptionError::KeyMissing);
        }
        let mut entries: Vec<KeyEntry> = Vec::new();
        for (index, entry) in value.split(',').enumerate() {
            let position = index + 1;
            let invalid = |kid: Option<&EncryptionKeyId>, problem| EncryptionError::KeyInvalid {
                position,
                kid: kid.cloned(),
                problem,
            };
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(invalid(None, KeyProblem::EmptyEntry));
            }
            let Some((kid, key_b64)) = entry.split_once(':') else {
                return Err(invalid(None, KeyProblem::MissingSeparator));
            };
            let kid = EncryptionKeyId::parse(kid.trim())
                .map_err(|e| invalid(None, KeyProblem::InvalidKeyId(e)))?;
            if let Some(first) = entries.iter().position(|e| e.kid == kid) {
                return Err(invalid(
                    Some(&kid),
                    KeyProblem::DuplicateKeyId { first: first + 1 },
                ));
            }
            // Length first, then decode straight into a wiped-on-drop array: no heap copy of the key.
            let key_b64 = key_b64.trim().as_bytes();
            let len = STANDARD
                .decoded_length(key_b64)
                .map_err(|_| invalid(Some(&kid), KeyProblem::InvalidBase64))?;
            if len != KEY_LEN {
                return Err(invalid(Some(&kid), KeyProblem::WrongLength { len }));
            }
            let mut raw = Zeroizing::new([0u8; KEY_LEN]);
            STANDARD
                .decode(key_b64, Out::from_slice(raw.as_mut()))
                .map_err(|_| invalid(Some(&kid), KeyProblem::InvalidBase64))?;
            // ring only refuses keys of the wrong length, which was checked just above.
            let unbound = UnboundKey::new(&AES_256_GCM, raw.as_ref())
                .map_err(|_| invalid(Some(&kid), KeyProblem::WrongLength { len }))?;
            entries.push(KeyEntry {
                aad: aad_without_context(&kid),
                kid,
                key: LessSafeKey::new(unbound),
            });
        }
        let mut entries = entries.into_iter();
        let Some(primary) = entries.next() else {
            return Err(EncryptionError::KeyMissing);
        };
        Ok(Keyring {
            primary,
            older: entries.collect(),
        })
    }

    /// A keyring over raw 32-byte keys, the first primary (for data keys unwrapped by a key
    /// provider). The caller's key buffers are wiped when it drops them.
    ///
    /// # Errors
    /// [`EncryptionError::KeyMissing`] if `keys` is empty; [`EncryptionError::KeyInvalid`] for a
    /// repeated key id.
    pub fn from_raw_keys(
        keys: &[(EncryptionKeyId, &[u8; KEY_LEN])],
    ) -> Result<Self, EncryptionError> {
        let mut entries: Vec<KeyEntry> = Vec::with_capacity(keys.len());
        for (index, (kid, raw)) in keys.iter().enumerate() {
            if let Some(first) = entries.iter().position(|e| &e.kid == kid) {
                return Err(EncryptionError::KeyInvalid {
                    position: index + 1,
                    kid: Some(kid.clone()),
                    problem: KeyProblem::DuplicateKeyId { first: first + 1 },
                });
            }
            let unbound = UnboundKey::new(&AES_256_GCM, raw.as_slice()).map_err(|_| {
                EncryptionError::KeyInvalid {
                    position: index + 1,
                    kid: Some(kid.clone()),
                    problem: KeyProblem::WrongLength { len: raw.len() },
                }
            })?;
            entries.push(KeyEntry {
                aad: aad_without_context(kid),
                kid: kid.clone(),
                key: LessSafeKey::new(unbound),
            });
        }
        let mut entries = entries.into_iter();
        let Some(primary) = entries.next() else {
            return Err(EncryptionError::KeyMissing);
        };
        Ok(Keyring {
            primary,
            older: entries.collect(),
        })
    }

    /// The key id that seals new values (the first entry).
    pub fn primary_kid(&self) -> &EncryptionKeyId {
        &self.primary.kid
    }

    /// Every key id, primary first, in the order of the variable.
    pub fn kids(&self) -> impl Iterator<Item = &EncryptionKeyId> {
        self.entries().map(|e| &e.kid)
    }

    /// Number of keys (at least one).
    pub fn len(&self) -> usize {
        1 + self.older.len()
    }

    /// Always `false`: a keyring has at least its primary key.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn entries(&self) -> impl Iterator<Item = &KeyEntry> {
        std::iter::once(&self.primary).chain(&self.older)
    }

    fn find(&self, kid: &str) -> Option<&KeyEntry> {
        self.entries().find(|e| e.kid.as_str() == kid)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("primary", &self.primary_kid().as_str())
            .field(
                "kids",
                &self.kids().map(EncryptionKeyId::as_str).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "keyring of {} key(s), primary {}",
            self.len(),
            self.primary_kid()
        )?;
        let mut older = self.kids().skip(1).peekable();
        if older.peek().is_some() {
            f.write_str(", decrypt-only ")?;
            for (i, kid) in older.enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(kid.as_str())?;
            }
        }
        Ok(())
    }
}

/// Seals and opens values with a [`Keyring`]. `Send + Sync`: share one behind an `Arc`.
///
/// It holds no state besides the keys: every nonce comes fresh from the OS.
pub struct Encryptor {
    keyring: Keyring,
    rng: SystemRandom,
}

impl Encryptor {
    /// An encryptor over `keyring` (for injection and tests).
    pub fn new(keyring: Keyring) -> Self {
        Encryptor {
            keyring,
            rng: SystemRandom::new(),
        }
    }

    /// An encryptor over the keyring in [`ENV_VAR`], read once, now.
    ///
    /// # Errors
    /// The errors of [`Keyring::from_env`].
    pub fn from_env() -> Result<Self, EncryptionError> {
        Keyring::from_env().map(Encryptor::new)
    }

    /// An encryptor over a keyring given as text in the format of [`ENV_VAR`] (so tests need not
    /// change the process environment).
    ///
    /// # Errors
    /// The errors of [`Keyring::parse`].
    pub fn from_env_value(value: &str) -> Result<Self, EncryptionError> {
        Keyring::parse(value).map(Encryptor::new)
    }

    /// The keyring in use.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Seals `plaintext` under the primary key, without context.
    ///
    /// # Errors
    /// [`EncryptionError::RandomUnavailable`] if no nonce could be drawn;
    /// [`EncryptionError::PlaintextTooLong`] past AES-GCM's message limit.
    pub fn encrypt(&self, plaintext: &str) -> Result<String, EncryptionError> {
        self.seal(plaintext.as_bytes(), None)
    }

    /// Opens a value sealed by [`Encryptor::encrypt`] (without context).
    ///
    /// # Errors
    /// [`EncryptionError::MalformedCiphertext`], [`EncryptionError::UnknownKeyId`],
    /// [`EncryptionError::DecryptionFailed`] (wrong key, sealed with a context, or tampered), and
    /// [`EncryptionError::PlaintextNotUtf8`] for a value sealed as bytes.
    pub fn decrypt(&self, ciphertext: &str) -> Result<String, EncryptionError> {
        into_string(self.open(ciphertext, None)?)
    }

    /// Seals `plaintext` under the primary key, bound to `ctx`: it opens only with the same tenant
    /// and purpose.
    ///
    /// # Errors
    /// As [`Encryptor::encrypt`].
    pub fn encrypt_with_context(
        &self,
        plaintext: &str,
        ctx: &EncryptionContext,
    ) -> Result<String, EncryptionError> {
        self.seal(plaintext.as_bytes(), Some(ctx))
    }

    /// Opens a value sealed by [`Encryptor::encrypt_with_context`] with the same `ctx`.
    ///
    /// # Errors
    /// As [`Encryptor::decrypt`]; another tenant or purpose, or a value sealed without context,
    /// gives [`EncryptionError::DecryptionFailed`].
    pub fn decrypt_with_context(
        &self,
        ciphertext: &str,
        ctx: &EncryptionContext,
    ) -> Result<String, EncryptionError> {
        into_string(self.open(ciphertext, Some(ctx))?)
    }

    /// Seals arbitrary bytes under the primary key, with or without context. The ciphertext has the
    /// same format as the text variants'.
    ///
    /// # Errors
    /// As [`Encryptor::encrypt`].
    pub fn encrypt_bytes(
        &self,
        plaintext: &[u8],
        ctx: Option<&EncryptionContext>,
    ) -> Result<String, EncryptionError> {
        self.seal(plaintext, ctx)
    }

    /// Opens any value sealed with `ctx` (or without context for `None`), text or bytes. The result
    /// is wiped when dropped.
    ///
    /// # Errors
    /// As [`Encryptor::decrypt`], except that bytes are never rejected as non-UTF-8.
    pub fn decrypt_bytes(
        &self,
        ciphertext: &str,
        ctx: Option<&EncryptionContext>,
    ) -> Result<Zeroizing<Vec<u8>>, EncryptionError> {
        self.open(ciphertext, ctx).map(Zeroizing::new)
    }

    /// Re-seals `ciphertext` under the primary key, with the same context, without handing the
    /// plaintext to the caller (it lives only in a buffer wiped on drop).
    ///
    /// A value already sealed under the primary key is authenticated and returned unchanged, so
    /// rewrapping a table twice changes nothing the second time.
    ///
    /// # Errors
    /// The errors of [`Encryptor::decrypt_bytes`] and [`Encryptor::encrypt_bytes`].
    pub fn rewrap(
        &self,
        ciphertext: &str,
        ctx: Option<&EncryptionContext>,
    ) -> Result<String, EncryptionError> {
        let plaintext = Zeroizing::new(self.open(ciphertext, ctx)?);
        if key_id_str(ciphertext) == Some(self.keyring.primary_kid().as_str()) {
            return Ok(ciphertext.to_owned());
        }
        self.seal(&plaintext, ctx)
    }

    fn seal(
        &self,
        plaintext: &[u8],
        ctx: Option<&EncryptionContext>,
    ) -> Result<String, EncryptionError> {
        let entry = &self.keyring.primary;
        let mut nonce = [0u8; NONCE_BYTES];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| EncryptionError::RandomUnavailable)?;

        let mut sealed = Vec::with_capacity(plaintext.len() + TAG_BYTES);
        copy_in_pieces(&mut sealed, plaintext);
        let context_aad;
        let aad: &[u8] = match ctx {
            None => &entry.aad,
            Some(ctx) => {
                context_aad = aad_with_context(&entry.aad, ctx);
                &context_aad
            }
        };
        let tag = match entry.key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut sealed,
        ) {
            Ok(tag) => tag,
            Err(_) => {
                // The buffer still holds the plaintext.
                sealed.zeroize();
                return Err(EncryptionError::PlaintextTooLong);
            }
        };
        sealed.extend_from_slice(tag.as_ref());

        let payload_len = NONCE_B64_LEN + URL_SAFE_NO_PAD.encoded_length(sealed.len());
        let mut out = String::with_capacity(
            VERSION_PREFIX.len() + entry.kid.as_str().len() + 1 + payload_len,
        );
        out.push_str(VERSION_PREFIX);
        out.push_str(entry.kid.as_str());
        out.push('.');
        URL_SAFE_NO_PAD.encode_append(nonce, &mut out);
        URL_SAFE_NO_PAD.encode_append(&sealed, &mut out);
        Ok(out)
    }

    /// Authenticates and decrypts; returns the plaintext bytes (the caller wipes or hands them on).
    fn open(
        &self,
        ciphertext: &str,
        ctx: Option<&EncryptionContext>,
    ) -> Result<Vec<u8>, EncryptionError> {
        let (kid, payload) = split_ciphertext(ciphertext)?;
        let (nonce_b64, sealed_b64) =
            match (payload.get(..NONCE_B64_LEN), payload.get(NONCE_B64_LEN..)) {
                (Some(n), Some(s)) if s.len() >= MIN_SEALED_B64_LEN => (n, s),
                _ => return Err(malformed("payload is too short")),
            };
        let mut nonce = [0u8; NONCE_BYTES];
        // 16 base64 characters decode to exactly 12 bytes (or fail), so `nonce` is large enough.
        match URL_SAFE_NO_PAD.decode(nonce_b64.as_bytes(), Out::from_slice(&mut nonce)) {
            Ok(decoded) if decoded.len() == NONCE_BYTES => {}
            _ => return Err(malformed(NOT_BASE64URL)),
        }
        let mut sealed = URL_SAFE_NO_PAD
            .decode_to_vec(sealed_b64)
            .map_err(|_| malformed(NOT_BASE64URL))?;
        if sealed.len() < TAG_BYTES {
            return Err(malformed("payload is too short"));
        }
        // Shape first, then the key: a string that is not a ciphertext at all is reported as such.
        let entry = self
            .keyring
            .find(kid)
            .ok_or_else(|| EncryptionError::UnknownKeyId {
                kid: EncryptionKeyId(kid.to_owned()),
            })?;

        let context_aad;
        let aad: &[u8] = match ctx {
            None => &entry.aad,
            Some(ctx) => {
                context_aad = aad_with_context(&entry.aad, ctx);
                &context_aad
            }
        };
        let plaintext_len = entry
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut sealed,
            )
            .map_err(|_| EncryptionError::DecryptionFailed)?
            .len();
        sealed.truncate(plaintext_len);
        Ok(sealed)
    }
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AES-256-GCM encryptor, {}", self.keyring)
    }
}

/// The key id a ciphertext names, without decrypting it (to find values that still need a
/// [`Encryptor::rewrap`] before an old key is dropped).
///
/// # Errors
/// [`EncryptionError::MalformedCiphertext`] if `ciphertext` does not start with `v1.<kid>.`.
pub fn key_id_of(ciphertext: &str) -> Result<EncryptionKeyId, EncryptionError> {
    split_ciphertext(ciphertext).map(|(kid, _)| EncryptionKeyId(kid.to_owned()))
}

/// A fresh keyring entry `kid:base64key` with 32 bytes from the OS CSPRNG, wiped when dropped.
///
/// # Errors
/// [`EncryptionError::RandomUnavailable`] if the OS random generator fails.
pub fn generate_key_entry(kid: &EncryptionKeyId) -> Result<Zeroizing<String>, EncryptionError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    SystemRandom::new()
        .fill(key.as_mut())
        .map_err(|_| EncryptionError::RandomUnavailable)?;
    let mut entry = Zeroizing::new(String::with_capacity(kid.as_str().len() + 1 + 44));
    entry.push_str(kid.as_str());
    entry.push(':');
    STANDARD.encode_append(key.as_ref(), &mut *entry);
    Ok(entry)
}

const NOT_BASE64URL: &str = "payload is not base64url without padding";
/// Shortest base64 text of a sealed part (an empty plaintext's 16-byte tag): 22 characters.
const MIN_SEALED_B64_LEN: usize = (TAG_BYTES * 4).div_ceil(3);

fn malformed(reason: &'static str) -> EncryptionError {
    EncryptionError::MalformedCiphertext { reason }
}

/// Splits `v1.<kid>.<payload>` and checks the version and the key id's syntax.
fn split_ciphertext(ciphertext: &str) -> Result<(&str, &str), EncryptionError> {
    let Some(rest) = ciphertext.strip_prefix(VERSION_PREFIX) else {
        return Err(if ciphertext.starts_with('v') && ciphertext.contains('.') {
            malformed("unsupported format version (expected v1)")
        } else {
            malformed("does not start with 'v1.'")
        });
    };
    let Some((kid, payload)) = rest.split_once('.') else {
        return Err(malformed("no '.' after the key id"));
    };
    if EncryptionKeyId::parse(kid).is_err() {
        return Err(malformed("invalid key id"));
    }
    Ok((kid, payload))
}

/// The key id of a well-formed ciphertext, or `None`.
fn key_id_str(ciphertext: &str) -> Option<&str> {
    split_ciphertext(ciphertext).ok().map(|(kid, _)| kid)
}

fn into_string(plaintext: Vec<u8>) -> Result<String, EncryptionError> {
    String::from_utf8(plaintext).map_err(|e| {
        drop(Zeroizing::new(e.into_bytes()));
        EncryptionError::PlaintextNotUtf8
    })
}

/// `"airisk.v1" 0x00 kid 0x00` — the whole AAD of a context-free value, and the start of a
/// context-bound one.
fn aad_without_context(kid: &EncryptionKeyId) -> Box<[u8]> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 2 + kid.as_str().len());
    aad.extend_from_slice(AAD_LABEL);
    aad.push(0);
    aad.extend_from_slice(kid.as_str().as_bytes());
    aad.push(0);
    aad.into_boxed_slice()
}

/// `prefix ‖ u16be(len(tenant)) ‖ tenant ‖ u16be(len(purpose)) ‖ purpose`.
fn aad_with_context(prefix: &[u8], ctx: &EncryptionContext) -> Vec<u8> {
    let tenant = ctx.tenant.as_str().as_bytes();
    let purpose = ctx.purpose.as_str().as_bytes();
    let subject = ctx.subject.as_deref().map(str::as_bytes);
    // A subject-bound context always writes the row field (empty when no row is bound), so its
    // subject is always the fourth field.
    let row = match (ctx.row.as_deref(), subject) {
        (Some(row), _) => Some(row.as_bytes()),
        (None, Some(_)) => Some(&b""[..]),
        (None, None) => None,
    };
    let mut aad = Vec::with_capacity(
        prefix.len()
            + 8
            + tenant.len()
            + purpose.len()
            + row.map_or(0, <[u8]>::len)
            + subject.map_or(0, <[u8]>::len),
    );
    aad.extend_from_slice(prefix);
    // A row-bound context adds a third length-prefixed field, a subject-bound one a fourth; each
    // form ends exactly after its last field, and length-prefixed fields parse one way only, so
    // no two forms share an AAD.
    for field in [Some(tenant), Some(purpose), row, subject]
        .into_iter()
        .flatten()
    {
        // Tenant and purpose are at most 64 bytes (validated newtypes), the row and subject at
        // most ROW_MAX_LEN (checked in `with_row`, `with_subject`), so each fits a u16; see the
        // const asserts.
        let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
        aad.extend_from_slice(&len.to_be_bytes());
        aad.extend_from_slice(field);
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_aad_example_is_what_the_code_builds() {
        let kid = EncryptionKeyId::parse("k1").unwrap();
        let ctx = EncryptionContext::new(
            TenantId::parse("acme").unwrap(),
            Purpose::parse("api-key").unwrap(),
        );
        let aad = aad_with_context(&aad_without_context(&kid), &ctx);
        let hex: Vec<String> = aad.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex.join(" "),
            "61 69 72 69 73 6b 2e 76 31 00 6b 31 00 00 04 61 63 6d 65 00 07 61 70 69 2d 6b 65 79"
        );
        assert_eq!(aad.len(), 28);
    }

    #[test]
    fn the_documented_row_bound_aad_example_is_what_the_code_builds() {
        let kid = EncryptionKeyId::parse("dabc").unwrap();
        let ctx = EncryptionContext::new(
            TenantId::parse("acme").unwrap(),
            Purpose::parse("prompt.template").unwrap(),
        )
        .with_row("p@1")
        .unwrap();
        let aad = aad_with_context(&aad_without_context(&kid), &ctx);
        let mut expected = b"airisk.v1\x00dabc\x00".to_vec();
        expected.extend_from_slice(b"\x00\x04acme\x00\x0fprompt.template\x00\x03p@1");
        assert_eq!(aad, expected);
        // A row-bound value never opens with the two-field context, nor under another row.
        let enc =
            Encryptor::from_env_value("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let sealed = enc.encrypt_with_context("x", &ctx).unwrap();
        let two = EncryptionContext::new(ctx.tenant.clone(), ctx.purpose.clone());
        assert!(enc.decrypt_with_context(&sealed, &two).is_err());
        let other = two.with_row("p@2").unwrap();
        assert!(enc.decrypt_with_context(&sealed, &other).is_err());
        assert_eq!(enc.decrypt_with_context(&sealed, &ctx).unwrap(), "x");
    }

    #[test]
    fn the_documented_subject_bound_aad_example_is_what_the_code_builds() {
        let kid = EncryptionKeyId::parse("sabc").unwrap();
        let row_only = EncryptionContext::new(
            TenantId::parse("acme").unwrap(),
            Purpose::parse("audit.metadata").unwrap(),
        )
        .with_row("r/k")
        .unwrap();
        let ctx = row_only.clone().with_subject("ab12").unwrap();
        let aad = aad_with_context(&aad_without_context(&kid), &ctx);
        let mut expected = b"airisk.v1\x00sabc\x00".to_vec();
        expected.extend_from_slice(b"\x00\x04acme\x00\x0eaudit.metadata\x00\x03r/k\x00\x04ab12");
        assert_eq!(aad, expected);
        // Without a row, the row field is written empty: the subject stays the fourth field.
        let no_row = EncryptionContext::new(ctx.tenant.clone(), ctx.purpose.clone())
            .with_subject("ab12")
            .unwrap();
        let mut expected = b"airisk.v1\x00sabc\x00".to_vec();
        expected.extend_from_slice(b"\x00\x04acme\x00\x0eaudit.metadata\x00\x00\x00\x04ab12");
        assert_eq!(
            aad_with_context(&aad_without_context(&kid), &no_row),
            expected
        );
        // A subject-bound value opens under its subject only, never without one.
        let enc =
            Encryptor::from_env_value("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let sealed = enc.encrypt_with_context("x", &ctx).unwrap();
        assert!(enc.decrypt_with_context(&sealed, &row_only).is_err());
        let other = row_only.with_subject("ab13").unwrap();
        assert!(enc.decrypt_with_context(&sealed, &other).is_err());
        assert_eq!(enc.decrypt_with_context(&sealed, &ctx).unwrap(), "x");
    }
}

//! Signed checkpoints: C2SP `tlog-checkpoint` bodies in C2SP `signed-note` envelopes, signed with
//! Ed25519 (<https://c2sp.org/tlog-checkpoint>, <https://c2sp.org/signed-note>).
//!
//! A checkpoint commits to one tenant's tree at one size:
//!
//! ```text
//! airisk.example/ledger/acme                    origin: <ledger name>/<tenant id>
//! 3                                             tree size, decimal
//! rra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=  root hash, standard padded base64
//!                                               blank line
//! — airisk.example/ledger <base64(key id || Ed25519 signature)>
//! ```
//!
//! The signature covers the body (the first three lines, final newline included). The key id is
//! `SHA-256(key name || 0x0A || 0x01 || public key)[..4]`; the verifier key an auditor is given is
//! `<key name>+<key id, 8 lower-case hex digits>+<base64(0x01 || public key)>`, and the operator's
//! signing key (`AIRISK_LEDGER_SIGNING_KEY`) is
//! `PRIVATE+KEY+<key name>+<key id>+<base64(0x01 || 32-byte seed)>`, both as Go's
//! `golang.org/x/mod/sumdb/note` writes them.
//!
//! # Choices within the specifications
//!
//! * One key signs every tenant's checkpoints; its name is the ledger name, and each origin is
//!   `<ledger name>/<tenant id>`. (tlog-checkpoint says the key name SHOULD match the origin; with
//!   one key per ledger it matches the origin's prefix instead.) Verifiers must compare
//!   [`Checkpoint::origin`] with the tenant they asked about.
//! * Extension lines (optional in tlog-checkpoint, "NOT RECOMMENDED") are never written and are
//!   rejected when parsing: this ledger gives them no meaning, and accepting signed text nobody
//!   reads only invites confusion.
//! * Parsing is strict: the note must end in a newline, contain no control character other than
//!   newline, be at most [`MAX_NOTE_LEN`] bytes with at most [`MAX_SIGNATURES`] signature lines,
//!   every signature line must be well formed, and the tree size has no sign, no leading zero and
//!   fits in a `u64`; the root is canonical padded base64 of 32 bytes. Signatures by other keys
//!   (witness cosignatures, a rotated key) are ignored, as signed-note requires; every signature
//!   line naming our key (name *and* key id) must verify, and at least one must.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::digest;
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{self, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use zeroize::Zeroizing;

use super::merkle::Hash;
use crate::security::tenant_context::TenantId;

/// The environment variable [`LedgerSigner::from_env`] reads.
pub const SIGNING_KEY_ENV: &str = "AIRISK_LEDGER_SIGNING_KEY";

/// The signed-note signature type identifier byte of Ed25519.
const ED25519_TYPE: u8 = 0x01;
/// The signature line prefix: em dash (U+2014) and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// The prefix of a signing-key string, as in Go's `note` package.
const SIGNING_KEY_PREFIX: &str = "PRIVATE+KEY+";

/// Largest note [`SignedCheckpoint::open`] reads, in bytes.
pub const MAX_NOTE_LEN: usize = 1 << 20;
/// Most signature lines [`SignedCheckpoint::open`] reads (signed-note requires at least 16; Go's
/// `note` package allows 100).
pub const MAX_SIGNATURES: usize = 100;

/// Checks the signed-note name rules, plus no control characters (notes may not contain any).
fn validate_name(kind: &'static str, name: &str) -> Result<(), CheckpointError> {
    let reason = if name.is_empty() {
        "must not be empty"
    } else if name.chars().any(char::is_whitespace) {
        "must not contain spaces"
    } else if name.contains('+') {
        "must not contain '+'"
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(CheckpointError::InvalidName { kind, reason })
}

/// The name of a ledger, such as `airisk.example/ledger`: the key name of its signing key and the
/// prefix of every origin. Non-empty, without spaces, `+` or control characters (the signed-note
/// rules for key names); a schema-less URL is recommended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LedgerName(String);

impl LedgerName {
    /// Validates `name`.
    ///
    /// # Errors
    /// [`CheckpointError::InvalidName`] naming the broken rule.
    pub fn parse(name: &str) -> Result<Self, CheckpointError> {
        validate_name("ledger name", name)?;
        Ok(LedgerName(name.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The origin of `tenant`'s ledger: `<ledger name>/<tenant id>`.
    pub fn origin_for(&self, tenant: &TenantId) -> Origin {
        Origin::for_tenant(self, tenant)
    }
}

/// The first line of a checkpoint, naming the log (here: one tenant's ledger). Same rules as a
/// [`LedgerName`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin(String);

impl Origin {
    /// Validates `origin`.
    ///
    /// # Errors
    /// [`CheckpointError::InvalidName`] naming the broken rule.
    pub fn parse(origin: &str) -> Result<Self, CheckpointError> {
        validate_name("origin", origin)?;
        Ok(Origin(origin.to_owned()))
    }

    /// `<ledger name>/<tenant id>`: valid by construction, as a tenant id is lower-case ASCII
    /// letters, digits, `-` and `_`.
    pub fn for_tenant(ledger: &LedgerName, tenant: &TenantId) -> Self {
        Origin(format!("{}/{}", ledger.as_str(), tenant.as_str()))
    }

    /// The origin as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::newtype::string_newtype!(LedgerName, CheckpointError);
crate::newtype::string_newtype!(Origin, CheckpointError);

/// A signed-note key id: the first four bytes of
/// `SHA-256(key name || 0x0A || 0x01 || Ed25519 public key)`. Displays as 8 lower-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NoteKeyId([u8; 4]);

impl NoteKeyId {
    /// The key id of the Ed25519 public key `public_key` under the key name `name`.
    pub fn for_ed25519(name: &LedgerName, public_key: &[u8; 32]) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(name.as_str().as_bytes());
        ctx.update(b"\n");
        ctx.update(&[ED25519_TYPE]);
        ctx.update(public_key);
        let out = ctx.finish();
        let mut id = [0u8; 4];
        for (byte, out_byte) in id.iter_mut().zip(out.as_ref()) {
            *byte = *out_byte;
        }
        NoteKeyId(id)
    }

    /// The four bytes, as they prefix a signature.
    pub const fn to_bytes(self) -> [u8; 4] {
        self.0
    }

    /// The id as the big-endian `u32` of signed-note.
    pub const fn to_u32(self) -> u32 {
        u32::from_be_bytes(self.0)
    }

    /// Parses exactly 8 lower-case hex digits, as key strings carry them.
    fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 8
            || !text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        u32::from_str_radix(text, 16)
            .ok()
            .map(|n| NoteKeyId(n.to_be_bytes()))
    }
}

impl fmt::Display for NoteKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.to_u32())
    }
}

/// Splits `<name>+<hex key id>+<base64 key>`; the base64 part may itself contain `+`.
fn split_key_string(text: &str) -> Option<(&str, &str, &str)> {
    let (name, rest) = text.split_once('+')?;
    let (id, key) = rest.split_once('+')?;
    Some((name, id, key))
}

/// The public half of the ledger key: checks checkpoint signatures. Parsed from, and displayed
/// as, the verifier key string `<name>+<key id>+<base64(0x01 || public key)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerVerifier {
    name: LedgerName,
    key_id: NoteKeyId,
    public_key: [u8; 32],
}

impl LedgerVerifier {
    /// Parses a verifier key string and checks that its key id matches its name and key.
    ///
    /// # Errors
    /// [`CheckpointError::MalformedVerifierKey`] if the string is not
    /// `<name>+<8 lower-case hex digits>+<base64 of 0x01 and 32 bytes>`,
    /// [`CheckpointError::InvalidName`] for a bad name, and [`CheckpointError::KeyIdMismatch`] if
    /// the key id is not the one the name and key derive.
    pub fn parse(verifier_key: &str) -> Result<Self, CheckpointError> {
        let malformed = |reason| CheckpointError::MalformedVerifierKey { reason };
        let (name, id, key) =
            split_key_string(verifier_key).ok_or(malformed("expected <name>+<key id>+<key>"))?;
        let name = LedgerName::parse(name)?;
        let stated = NoteKeyId::from_hex(id)
            .ok_or(malformed("the key id must be 8 lower-case hex digits"))?;
        let key = BASE64
            .decode(key)
            .map_err(|_| malformed("the key is not canonical padded base64"))?;
        let Some((&ED25519_TYPE, public_key)) = key.split_first() else {
            return Err(malformed("the key is not an ed25519 key (type 0x01)"));
        };
        let public_key: [u8; 32] = public_key
            .try_into()
            .map_err(|_| malformed("an ed25519 public key is 32 bytes"))?;
        let verifier = LedgerVerifier::from_public_key(name, public_key);
        if verifier.key_id != stated {
            return Err(CheckpointError::KeyIdMismatch {
                stated,
                computed: verifier.key_id,
            });
        }
        Ok(verifier)
    }

    /// The verifier for an Ed25519 public key under the key name `name`.
    pub fn from_public_key(name: LedgerName, public_key: [u8; 32]) -> Self {
        let key_id = NoteKeyId::for_ed25519(&name, &public_key);
        LedgerVerifier {
            name,
            key_id,
            public_key,
        }
    }

    /// The key name (the ledger name).
    pub fn name(&self) -> &LedgerName {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> NoteKeyId {
        self.key_id
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// The verifier key string, `<name>+<key id>+<base64(0x01 || public key)>`.
    pub fn to_verifier_key(&self) -> String {
        let mut key = Vec::with_capacity(33);
        key.push(ED25519_TYPE);
        key.extend_from_slice(&self.public_key);
        format!("{}+{}+{}", self.name, self.key_id, BASE64.encode(key))
    }

    fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&signature::ED25519, &self.public_key)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Display for LedgerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_verifier_key())
    }
}

impl FromStr for LedgerVerifier {
    type Err = CheckpointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LedgerVerifier::parse(s)
    }
}

/// An Ed25519 key kept outside this process (in a hardware security module, for instance) that
/// signs checkpoint bodies: the seam [`LedgerSigner::external`] plugs it into.
///
/// The key never has to leave its custodian: [`LedgerSigner`] hands it the exact bytes to sign
/// (a checkpoint body) and gets back a pure Ed25519 (RFC 8032) signature, which it checks against
/// [`CheckpointSigning::public_key`] before writing any note.
pub trait CheckpointSigning: Send + Sync {
    /// The 32-byte Ed25519 public key of the signing key.
    fn public_key(&self) -> [u8; 32];

    /// Signs `message` with pure Ed25519 and returns the 64-byte signature.
    ///
    /// # Errors
    /// [`CheckpointError::SigningUnavailable`] when the key cannot be used now (its custodian is
    /// unreachable, the key is gone, the session was lost). The reason never holds key material
    /// or credentials.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], CheckpointError>;

    /// Whether the key can sign now, cheaply checked (for readiness probes): `Err` names why not.
    ///
    /// # Errors
    /// A short reason, free of key material and credentials.
    fn readiness(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Where a [`LedgerSigner`]'s private key lives.
enum SigningKey {
    /// In this process, as ring's key pair (from a seed).
    Software(Ed25519KeyPair),
    /// Outside it, behind [`CheckpointSigning`]; the public key is cached.
    External {
        signer: Box<dyn CheckpointSigning>,
        public_key: [u8; 32],
    },
}

/// The private half of the ledger key: signs checkpoints.
///
/// Built from the signing-key string `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`, read
/// once from `AIRISK_LEDGER_SIGNING_KEY` by [`LedgerSigner::from_env`], freshly generated, or
/// over a key kept elsewhere (a PKCS#11 token) with [`LedgerSigner::external`].
/// Every buffer that holds the seed or that string is zeroized when dropped; `Debug` shows only
/// the name and key id, and no error ever contains key material. (The expanded key inside ring's
/// `Ed25519KeyPair` is ring's to manage; ring does not zeroize it.)
pub struct LedgerSigner {
    name: LedgerName,
    key_id: NoteKeyId,
    key: SigningKey,
}

impl LedgerSigner {
    /// Parses a signing-key string and checks that its key id matches the key.
    ///
    /// # Errors
    /// [`CheckpointError::MalformedSigningKey`] if the string is not
    /// `PRIVATE+KEY+<name>+<8 lower-case hex digits>+<base64 of 0x01 and a 32-byte seed>`,
    /// [`CheckpointError::InvalidName`] for a bad name, and [`CheckpointError::KeyIdMismatch`] if
    /// the key id is not the one derived from the name and the public key of that seed.
    pub fn from_signing_key(signing_key: &str) -> Result<Self, CheckpointError> {
        let malformed = |reason| CheckpointError::MalformedSigningKey { reason };
        let rest = signing_key
            .strip_prefix(SIGNING_KEY_PREFIX)
            .ok_or(malformed("expected PRIVATE+KEY+<name>+<key id>+<key>"))?;
        let (name, id, key) = split_key_string(rest)
            .ok_or(malformed("expected PRIVATE+KEY+<name>+<key id>+<key>"))?;
        let name = LedgerName::parse(name)?;
        let stated = NoteKeyId::from_hex(id)
            .ok_or(malformed("the key id must be 8 lower-case hex digits"))?;
        let key = Zeroizing::new(
            BASE64
                .decode(key)
                .map_err(|_| malformed("the key is not canonical padded base64"))?,
        );
        let Some((&ED25519_TYPE, seed)) = key.split_first() else {
            return Err(malformed("the key is not an ed25519 key (type 0x01)"));
        };
        if seed.len() != 32 {
            return Err(malformed("an ed25519 seed is 32 bytes"));
        }
        let signer = LedgerSigner::from_seed(name, seed)?;
        if signer.key_id != stated {
            return Err(CheckpointError::KeyIdMismatch {
                stated,
                computed: signer.key_id,
            });
        }
        Ok(signer)
    }

    /// Reads the signing-key string from `AIRISK_LEDGER_SIGNING_KEY` (once, now) and parses it,
    /// ignoring surrounding whitespace.
    ///
    /// # Errors
    /// [`CheckpointError::MissingSigningKey`] if the variable is unset,
    /// [`CheckpointError::MalformedSigningKey`] if it is not Unicode, and the errors of
    /// [`LedgerSigner::from_signing_key`].
    pub fn from_env() -> Result<Self, CheckpointError> {
        let value = match std::env::var(SIGNING_KEY_ENV) {
            Ok(value) => Zeroizing::new(value),
            Err(std::env::VarError::NotPresent) => {
                return Err(CheckpointError::MissingSigningKey {
                    var: SIGNING_KEY_ENV,
                });
            }
            Err(std::env::VarError::NotUnicode(raw)) => {
                // Overwrite the copy we were handed before reporting.
                drop(Zeroizing::new(raw.into_encoded_bytes()));
                return Err(CheckpointError::MalformedSigningKey {
                    reason: "the environment variable is not valid unicode",
                });
            }
        };
        LedgerSigner::from_signing_key(value.trim())
    }

    /// Generates a fresh key named `name` from the operating system's CSPRNG.
    ///
    /// # Errors
    /// [`CheckpointError::Randomness`] if the CSPRNG fails.
    pub fn generate(name: LedgerName) -> Result<Self, CheckpointError> {
        let seed = random_seed()?;
        LedgerSigner::from_seed(name, seed.as_slice())
    }

    fn from_seed(name: LedgerName, seed: &[u8]) -> Result<Self, CheckpointError> {
        let key_pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| {
            CheckpointError::MalformedSigningKey {
                reason: "ring rejected the ed25519 seed",
            }
        })?;
        let public_key = public_key_of(&key_pair);
        let key_id = NoteKeyId::for_ed25519(&name, &public_key);
        Ok(LedgerSigner {
            name,
            key_id,
            key: SigningKey::Software(key_pair),
        })
    }

    /// A signer named `name` whose private key stays with `signer` (a hardware token): every
    /// checkpoint body is signed by it, and each signature is checked against its public key
    /// before a note is written. The verifier key is derived from that public key as usual.
    pub fn external(name: LedgerName, signer: Box<dyn CheckpointSigning>) -> Self {
        let public_key = signer.public_key();
        let key_id = NoteKeyId::for_ed25519(&name, &public_key);
        LedgerSigner {
            name,
            key_id,
            key: SigningKey::External { signer, public_key },
        }
    }

    /// Whether the key can sign now: always for a key in this process; for an external key, its
    /// custodian's answer ([`CheckpointSigning::readiness`]).
    ///
    /// # Errors
    /// A short reason, free of key material and credentials.
    pub fn readiness(&self) -> Result<(), String> {
        match &self.key {
            SigningKey::Software(_) => Ok(()),
            SigningKey::External { signer, .. } => signer.readiness(),
        }
    }

    /// Whether the private key is kept outside this process ([`LedgerSigner::external`]).
    pub fn is_external(&self) -> bool {
        matches!(self.key, SigningKey::External { .. })
    }

    /// The key name (the ledger name).
    pub fn name(&self) -> &LedgerName {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> NoteKeyId {
        self.key_id
    }

    /// The matching verifier, to hand to auditors.
    pub fn verifier(&self) -> LedgerVerifier {
        LedgerVerifier::from_public_key(self.name.clone(), self.public_key())
    }

    fn public_key(&self) -> [u8; 32] {
        match &self.key {
            SigningKey::Software(key_pair) => public_key_of(key_pair),
            SigningKey::External { public_key, .. } => *public_key,
        }
    }

    /// The signature line for `text`: `— <name> <base64(key id || signature)>\n`.
    fn signature_line(&self, text: &[u8]) -> Result<String, CheckpointError> {
        let mut blob = Vec::with_capacity(4 + 64);
        blob.extend_from_slice(&self.key_id.to_bytes());
        match &self.key {
            SigningKey::Software(key_pair) => blob.extend_from_slice(key_pair.sign(text).as_ref()),
            SigningKey::External { signer, public_key } => {
                let signature = signer.sign(text)?;
                // A token holding another key under the configured label (or a faulty one) must
                // not produce notes nobody can verify: check before writing.
                UnparsedPublicKey::new(&signature::ED25519, public_key)
                    .verify(text, &signature)
                    .map_err(|_| CheckpointError::SigningUnavailable {
                        reason:
                            "the external signer's signature does not verify with its public key"
                                .into(),
                    })?;
                blob.extend_from_slice(&signature);
            }
        }
        Ok(format!(
            "{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(blob)
        ))
    }
}

impl fmt::Debug for LedgerSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerSigner")
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .field(
                "key",
                &match self.key {
                    SigningKey::Software(_) => "[redacted]",
                    SigningKey::External { .. } => "[external]",
                },
            )
            .finish()
    }
}

fn public_key_of(key_pair: &Ed25519KeyPair) -> [u8; 32] {
    let mut public_key = [0u8; 32];
    for (byte, key_byte) in public_key.iter_mut().zip(key_pair.public_key().as_ref()) {
        *byte = *key_byte;
    }
    public_key
}

fn random_seed() -> Result<Zeroizing<[u8; 32]>, CheckpointError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(seed.as_mut_slice())
        .map_err(|_| CheckpointError::Randomness)?;
    Ok(seed)
}

/// Generates a fresh ledger key named `name` and returns its signing-key string (for
/// `AIRISK_LEDGER_SIGNING_KEY`; keep it secret) and its verifier key string (for auditors).
///
/// # Errors
/// [`CheckpointError::Randomness`] if the CSPRNG fails.
pub fn generate_key_pair(
    name: &LedgerName,
) -> Result<(Zeroizing<String>, String), CheckpointError> {
    let seed = random_seed()?;
    let signer = LedgerSigner::from_seed(name.clone(), seed.as_slice())?;
    let mut key = Zeroizing::new([0u8; 33]);
    if let Some((kind, rest)) = key.split_first_mut() {
        *kind = ED25519_TYPE;
        rest.copy_from_slice(seed.as_slice());
    }
    let mut signing_key = Zeroizing::new(String::with_capacity(128));
    signing_key.push_str(SIGNING_KEY_PREFIX);
    signing_key.push_str(name.as_str());
    signing_key.push('+');
    signing_key.push_str(&signer.key_id.to_string());
    signing_key.push('+');
    BASE64.encode_string(key.as_slice(), &mut signing_key);
    Ok((signing_key, signer.verifier().to_verifier_key()))
}

/// A tree head: `size` leaves of the log named `origin` have the RFC 6962 root `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Which log (ledger and tenant).
    pub origin: Origin,
    /// Number of leaves.
    pub size: u64,
    /// The RFC 6962 root of those leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint `(origin, size, root)`.
    pub fn new(origin: Origin, size: u64, root: Hash) -> Self {
        Checkpoint { origin, size, root }
    }

    /// The note text: `<origin>\n<size>\n<base64 root>\n`.
    pub fn to_body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        )
    }

    /// Parses a note text written by [`Checkpoint::to_body`]. Does not check any signature: use
    /// [`verify_checkpoint`] on a signed note.
    ///
    /// # Errors
    /// [`CheckpointError::MalformedCheckpoint`] naming the 1-based line at fault,
    /// [`CheckpointError::InvalidName`] for a bad origin, and
    /// [`CheckpointError::ExtensionLines`] if lines follow the root.
    pub fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let malformed = |line, reason| CheckpointError::MalformedCheckpoint { line, reason };
        let content = body
            .strip_suffix('\n')
            .ok_or(malformed(0, "the text must end with a newline"))?;
        let mut lines = content.split('\n');
        let origin = lines.next().unwrap_or_default();
        let size = lines
            .next()
            .ok_or(malformed(2, "the tree size is missing"))?;
        let root = lines
            .next()
            .ok_or(malformed(3, "the root hash is missing"))?;
        let extensions = lines.count();
        if extensions > 0 {
            return Err(CheckpointError::ExtensionLines { count: extensions });
        }
        let origin = Origin::parse(origin)?;
        let size = parse_size(size).ok_or(malformed(
            2,
            "the tree size must be a decimal u64 without sign or leading zeros",
        ))?;
        let root = Hash::from_base64(root)
            .map_err(|_| malformed(3, "the root must be padded base64 of 32 bytes"))?;
        Ok(Checkpoint { origin, size, root })
    }

    /// Signs the checkpoint: its body, a blank line and one signature line.
    ///
    /// # Errors
    /// Only with an external key ([`LedgerSigner::external`]):
    /// [`CheckpointError::SigningUnavailable`] when it cannot sign, or signs with a key other than
    /// its public key. A key in this process always signs.
    pub fn sign(&self, signer: &LedgerSigner) -> Result<SignedCheckpoint, CheckpointError> {
        let body = self.to_body();
        let line = signer.signature_line(body.as_bytes())?;
        let note = format!("{body}\n{line}");
        Ok(SignedCheckpoint {
            checkpoint: self.clone(),
            note,
        })
    }
}

fn parse_size(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

/// A checkpoint with its signed-note text, as produced by [`Checkpoint::sign`] or checked by
/// [`SignedCheckpoint::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    note: String,
}

impl SignedCheckpoint {
    /// Verifies `note_text` against `verifier` and parses its checkpoint (see the module docs for
    /// the exact rules).
    ///
    /// # Errors
    /// * [`CheckpointError::MalformedNote`] for a note that breaks the signed-note format, or
    ///   [`CheckpointError::TooManySignatures`];
    /// * [`CheckpointError::NoSignature`] if no line is signed by the verifier's key;
    /// * [`CheckpointError::InvalidSignature`] if a line claiming the verifier's key does not
    ///   verify;
    /// * the errors of [`Checkpoint::parse_body`] for the signed text.
    pub fn open(note_text: &str, verifier: &LedgerVerifier) -> Result<Self, CheckpointError> {
        let malformed = |reason| CheckpointError::MalformedNote { reason };
        if note_text.len() > MAX_NOTE_LEN {
            return Err(malformed("the note is too long"));
        }
        if note_text.chars().any(|c| c < '\u{20}' && c != '\n') {
            return Err(malformed("the note contains a control character"));
        }
        if !note_text.ends_with('\n') {
            return Err(malformed("the note must end with a newline"));
        }
        // The text ends at the last blank line: keep its newline, drop the blank line.
        let split = note_text.rfind("\n\n").ok_or(malformed(
            "no blank line separates the text from the signatures",
        ))?;
        let (text, signatures) = note_text
            .split_at_checked(split + 1)
            .and_then(|(text, rest)| Some((text, rest.strip_prefix('\n')?)))
            .ok_or(malformed(
                "no blank line separates the text from the signatures",
            ))?;
        let lines: Vec<&str> = signatures
            .strip_suffix('\n')
            .map(|s| s.split('\n').collect())
            .unwrap_or_default();
        if lines.is_empty() {
            return Err(malformed("the note has no signature lines"));
        }
        if lines.len() > MAX_SIGNATURES {
            return Err(CheckpointError::TooManySignatures {
                max: MAX_SIGNATURES,
            });
        }
        let mut verified = false;
        for line in lines {
            let (name, key_id, signature) = parse_signature_line(line)?;
            if name != verifier.name.as_str() || key_id != verifier.key_id {
                continue; // another key: ignored, as signed-note requires
            }
            if !verifier.verify_signature(text.as_bytes(), &signature) {
                return Err(CheckpointError::InvalidSignature {
                    key_name: verifier.name.to_string(),
                    key_id,
                });
            }
            verified = true;
        }
        if !verified {
            return Err(CheckpointError::NoSignature {
                key_name: verifier.name.to_string(),
                key_id: verifier.key_id,
            });
        }
        let checkpoint = Checkpoint::parse_body(text)?;
        Ok(SignedCheckpoint {
            checkpoint,
            note: note_text.to_owned(),
        })
    }

    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The full signed-note text.
    pub fn note_text(&self) -> &str {
        &self.note
    }

    /// The full signed-note text, by value.
    pub fn into_note_text(self) -> String {
        self.note
    }
}

impl fmt::Display for SignedCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.note)
    }
}

/// Splits `— <name> <base64(key id || signature)>` into its name, key id and signature bytes.
fn parse_signature_line(line: &str) -> Result<(&str, NoteKeyId, Vec<u8>), CheckpointError> {
    let malformed = |reason| CheckpointError::MalformedNote { reason };
    let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or(malformed(
        "a signature line must start with an em dash and a space",
    ))?;
    let (name, blob) = rest
        .split_once(' ')
        .ok_or(malformed("a signature line must be '— <name> <signature>'"))?;
    validate_name("key name", name)
        .map_err(|_| malformed("a signature line has an invalid key name"))?;
    let blob = BASE64
        .decode(blob)
        .map_err(|_| malformed("a signature is not canonical padded base64"))?;
    match blob.split_first_chunk::<4>() {
        Some((id, signature)) if !signature.is_empty() => {
            Ok((name, NoteKeyId(*id), signature.to_vec()))
        }
        _ => Err(malformed(
            "a signature must hold a key id and at least one byte",
        )),
    }
}

/// Verifies a signed checkpoint note against `verifier` and returns the checkpoint it commits to.
/// The caller must still check that [`Checkpoint::origin`] is the ledger it asked about.
///
/// # Errors
/// The errors of [`SignedCheckpoint::open`].
pub fn verify_checkpoint(
    note_text: &str,
    verifier: &LedgerVerifier,
) -> Result<Checkpoint, CheckpointError> {
    SignedCheckpoint::open(note_text, verifier).map(|signed| signed.checkpoint)
}

/// Why a key, a checkpoint or a signed note was rejected. No variant carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A ledger name, origin or key name breaks the signed-note naming rules.
    #[error("the {kind} {reason}")]
    InvalidName {
        /// `"ledger name"`, `"origin"` or `"key name"`.
        kind: &'static str,
        /// The rule broken.
        reason: &'static str,
    },
    /// A signing-key string is malformed (the message never echoes the key).
    #[error("malformed ledger signing key: {reason}")]
    MalformedSigningKey {
        /// What is wrong.
        reason: &'static str,
    },
    /// A verifier key string is malformed.
    #[error("malformed ledger verifier key: {reason}")]
    MalformedVerifierKey {
        /// What is wrong.
        reason: &'static str,
    },
    /// A key string states a key id other than the one its name and key derive.
    #[error("the key id {stated} does not match the key, whose id is {computed}")]
    KeyIdMismatch {
        /// The id written in the key string.
        stated: NoteKeyId,
        /// The id computed from the name and public key.
        computed: NoteKeyId,
    },
    /// The signing-key environment variable is not set.
    #[error("the ledger signing key is not set ({var})")]
    MissingSigningKey {
        /// The variable's name.
        var: &'static str,
    },
    /// The operating system's CSPRNG failed.
    #[error("the system random number generator failed")]
    Randomness,
    /// An external signing key ([`CheckpointSigning`]) could not sign: its custodian (a PKCS#11
    /// token) is unreachable, the key is missing, or its signature did not verify. Nothing was
    /// signed; no key material or credential is in the reason.
    #[error("the ledger signing key cannot sign: {reason}")]
    SigningUnavailable {
        /// Why.
        reason: String,
    },
    /// A signed note breaks the signed-note format.
    #[error("malformed signed note: {reason}")]
    MalformedNote {
        /// What is wrong.
        reason: &'static str,
    },
    /// A signed note has more signature lines than [`MAX_SIGNATURES`].
    #[error("the note has more than {max} signatures")]
    TooManySignatures {
        /// The limit.
        max: usize,
    },
    /// A checkpoint text breaks the tlog-checkpoint format.
    #[error("malformed checkpoint (line {line}): {reason}")]
    MalformedCheckpoint {
        /// The 1-based line at fault (0 for the text as a whole).
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A checkpoint has extension lines, which this ledger does not accept.
    #[error("the checkpoint has {count} extension lines; this ledger accepts none")]
    ExtensionLines {
        /// How many lines follow the root hash.
        count: usize,
    },
    /// No signature line is by the verifier's key (name and key id).
    #[error("the note has no signature by {key_name}+{key_id}")]
    NoSignature {
        /// The verifier's key name.
        key_name: String,
        /// The verifier's key id.
        key_id: NoteKeyId,
    },
    /// A signature line by the verifier's key does not verify: the text or the signature was
    /// altered.
    #[error("the signature by {key_name}+{key_id} does not verify")]
    InvalidSignature {
        /// The verifier's key name.
        key_name: String,
        /// The verifier's key id.
        key_id: NoteKeyId,
    },
}

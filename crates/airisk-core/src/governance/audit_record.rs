//! The audit record: what an auditor reads, and the exact bytes the ledger hashes.
//!
//! An [`AuditEvent`] is a validated, not yet recorded action. A store turns it into an
//! [`AuditRecord`] by giving it its place (`seq`, gapless per tenant from 0) and its time
//! (`recorded_at`), inside the transaction that appends it. A record's leaf bytes are the RFC 8785
//! canonical JSON of its fields (see [`AuditRecord::leaf_bytes`]); those bytes, not any
//! re-serialisation, are what is stored, exported and hashed.
//!
//! Records are immutable: fields are private, there are no setters and no `&mut` accessors.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::ledger::{CanonicalJsonError, to_canonical_json};
use crate::request::CorrelationId;
use crate::security::tenant_context::{ActorId, TenantId};

/// Version of the leaf layout, carried in every leaf as `"v"`.
pub const LEAF_VERSION: u64 = 1;
/// Longest action name, in bytes.
pub const ACTION_MAX_LEN: usize = 128;
/// Longest resource type, in bytes.
pub const RESOURCE_TYPE_MAX_LEN: usize = 64;
/// Longest resource id, in bytes.
pub const RESOURCE_ID_MAX_LEN: usize = 256;
/// Longest reason, in bytes.
pub const REASON_MAX_LEN: usize = 4096;
/// Largest metadata object, measured as its canonical JSON, in bytes.
pub const METADATA_MAX_BYTES: usize = 64 * 1024;

/// The action namespaces of the kernel itself: an action named `<namespace>` or
/// `<namespace>.<anything>` is a kernel action, written only by the kernel's own services, never
/// through [`crate::governance::audit_logger::AuditLogger::log_action`] (the append API).
///
/// THE list: every action the kernel records falls in one of these (a test checks each
/// [`crate::security::rbac::Action`]), and a namespace the kernel may use later is reserved here
/// before it is used.
pub const KERNEL_NAMESPACES: &[&str] = &[
    "model",
    "prompt",
    "approval",
    "audit",
    "keys",
    "crypto",
    "tenant",
    "ledger",
    "system",
    "console",
    "auth",
    "deployment",
    "mlflow",
];

/// Whether `action` is, or case-folds into, a kernel namespace (see [`KERNEL_NAMESPACES`]).
///
/// Action names are case-sensitive lower-case ASCII, so an upper-case spelling is refused by
/// validation anyway; this check folds case and compatibility forms (NFKC) first as well, so that
/// `Approval.approve` or a full-width `ａpproval.approve` can never be read as a non-kernel name.
pub fn is_kernel_action(action: &str) -> bool {
    use unicode_normalization::UnicodeNormalization as _;
    let folded: String = action
        .nfkc()
        .collect::<String>()
        .to_lowercase()
        .nfkc()
        .collect();
    KERNEL_NAMESPACES.iter().any(|ns| {
        folded
            .strip_prefix(ns)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

/// What a value that cannot be recorded as it is gets replaced by: see [`recordable_text`].
pub const TRUNCATION_MARKER: &str = "…[truncated]";

/// A piece of caller input as a denial record can hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordableText {
    /// The text to record.
    pub text: String,
    /// Set when `text` is not the input itself (escaped, truncated or replaced because empty):
    /// the input's SHA-256 (lower-case hex) and length in bytes, for the record's metadata.
    pub original: Option<(String, usize)>,
}

impl RecordableText {
    /// The `{"sha256": …, "bytes": …}` object describing the original, if it was changed.
    pub fn original_json(&self) -> Option<Value> {
        self.original.as_ref().map(|(sha256, bytes)| {
            serde_json::json!({
                "sha256": sha256,
                "bytes": bytes,
                "escaping": "json-u-escapes+truncation",
            })
        })
    }
}

/// Makes caller input recordable in a free-text field of at most `max` bytes, so that a refusal is
/// always recorded, whatever the input held.
///
/// Input that is non-empty, at most `max` bytes and free of control characters is kept unchanged.
/// Anything else is escaped, byte for byte as documented in `docs/AUDIT_VERIFICATION.md`:
/// `\` becomes `\\`; every control character (U+0000–U+001F, U+007F–U+009F) becomes the six
/// characters `\u00xx` (lower-case hex, as in JSON); an empty input becomes `-`; and a result
/// longer than `max` is cut at a character boundary and ends with [`TRUNCATION_MARKER`]. When the
/// text was changed, [`RecordableText::original`] carries the input's SHA-256 and length, so the
/// original can still be matched exactly. (Bytes that are not UTF-8 never reach here: the HTTP
/// layer keeps them as `%XX`.)
pub fn recordable_text(value: &str, max: usize) -> RecordableText {
    if !value.is_empty() && value.len() <= max && !value.chars().any(char::is_control) {
        return RecordableText {
            text: value.to_owned(),
            original: None,
        };
    }
    let mut text = String::with_capacity(value.len().min(max));
    for c in value.chars() {
        match c {
            '\\' => text.push_str("\\\\"),
            c if c.is_control() => text.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => text.push(c),
        }
        if text.len() > max {
            break;
        }
    }
    if text.is_empty() {
        text.push('-');
    }
    if text.len() > max {
        let keep = max.saturating_sub(TRUNCATION_MARKER.len());
        let mut cut = keep.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(TRUNCATION_MARKER);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
    let sha256 = digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    RecordableText {
        text,
        original: Some((sha256, value.len())),
    }
}

/// Who wrote a record: the kernel's own services, or an application through the append API.
///
/// In the leaf an application record carries `"origin":"application"`; a kernel record carries no
/// `origin` member (so every leaf written before the marker existed still decodes and verifies, as
/// a kernel record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordOrigin {
    /// Written by the kernel (governance services, denials, key operations).
    Kernel,
    /// Written by a client through `POST /v1/audit/events` (`log_action`).
    Application,
}

impl RecordOrigin {
    /// `"kernel"` or `"application"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordOrigin::Kernel => "kernel",
            RecordOrigin::Application => "application",
        }
    }
}

/// What happened to the attempted action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action was carried out.
    Success,
    /// The action was refused (permission, tenant, four-eyes or another rule). Denials are audited
    /// too.
    Denied,
}

impl Outcome {
    /// `"success"` or `"denied"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
        }
    }
}

/// Why an audit event or a stored leaf is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditValidationError {
    /// A required field is empty.
    #[error("audit field {field} must not be empty")]
    Empty {
        /// The field's name.
        field: &'static str,
    },
    /// A field is longer than its limit.
    #[error("audit field {field} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// The field's name.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A field holds a character it may not hold (control characters anywhere; for the action
    /// name, anything outside `a-z 0-9 . _ -`).
    #[error("audit field {field} has a disallowed character at byte {position}")]
    InvalidCharacter {
        /// The field's name.
        field: &'static str,
        /// Byte offset of the first offending character.
        position: usize,
    },
    /// An identifier field (tenant, actor, correlation id) did not parse.
    #[error("audit field {field} is invalid: {reason}")]
    InvalidIdentifier {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Metadata was given but is not a JSON object.
    #[error("audit metadata must be a JSON object, not {found}")]
    MetadataNotObject {
        /// The JSON type found (`array`, `string`, …).
        found: &'static str,
    },
    /// Metadata's canonical form exceeds [`METADATA_MAX_BYTES`].
    #[error("audit metadata is {len} bytes as canonical JSON; at most {max} are allowed")]
    MetadataTooLarge {
        /// Canonical size in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Metadata holds a value canonical JSON cannot represent exactly (a non-finite number, or an
    /// integer beyond ±2^53).
    #[error("audit metadata cannot be canonicalised: {reason}")]
    MetadataNotCanonical {
        /// What is wrong.
        reason: String,
    },
    /// Sensitive metadata is malformed: a key also in `metadata`, or a sealed value that is not
    /// a `v1.` ciphertext.
    #[error("sensitive metadata: {reason}")]
    SensitiveMetadata {
        /// What is wrong.
        reason: String,
    },
    /// Stored leaf bytes do not decode to a record, or are not in canonical form.
    #[error("leaf bytes are not a canonical audit record: {reason}")]
    MalformedLeaf {
        /// What is wrong.
        reason: String,
    },
}

/// The raw input of an audit event, as a caller (API, CLI) supplies it. Validated by
/// [`AuditEvent::parse`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditEventInput {
    /// Who acted.
    pub actor: String,
    /// In which tenant.
    pub tenant_id: String,
    /// What they did (`model.register`, or an application's own dotted name).
    pub action: String,
    /// The kind of thing acted on (`model`, `prompt`, `approval_request`, …).
    pub resource_type: String,
    /// Which one.
    pub resource_id: String,
    /// Why (free text), if given.
    #[serde(default)]
    pub reason: Option<String>,
    /// The request's correlation id.
    pub correlation_id: String,
    /// Extra structured context: a JSON object, if given.
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// A validated action, ready to be appended to its tenant's ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    id: Uuid,
    tenant_id: TenantId,
    actor: ActorId,
    action: String,
    outcome: Outcome,
    resource_type: String,
    resource_id: String,
    reason: Option<String>,
    correlation_id: CorrelationId,
    metadata: Option<Map<String, Value>>,
    sealed_metadata: Option<Map<String, Value>>,
    origin: RecordOrigin,
}

/// Metadata values a caller marks sensitive: sealed under the tenant's data key before the leaf
/// is built, so the ledger holds (and commits to) ciphertext only. `Debug` shows the keys, never
/// the values, and never the data subject.
///
/// With a data subject ([`SensitiveMetadata::with_subject`]) the values are sealed under that
/// subject's own data key instead of the tenant's, so they can be erased alone
/// ([`crate::security::key_custody::shred_subject`]). A record has at most one data subject.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SensitiveMetadata {
    values: Map<String, Value>,
    subject: Option<crate::security::data_subject::DataSubject>,
}

impl SensitiveMetadata {
    /// No values.
    pub fn new() -> Self {
        SensitiveMetadata::default()
    }
    /// Marks `value` sensitive under `key` (replacing an earlier one).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        self.values.insert(key.into(), value);
    }
    /// From a JSON object, as the HTTP API receives it.
    pub fn from_map(map: Map<String, Value>) -> Self {
        SensitiveMetadata {
            values: map,
            subject: None,
        }
    }
    /// The same values, about the data subject `subject`: sealed under its key.
    #[must_use]
    pub fn with_subject(mut self, subject: crate::security::data_subject::DataSubject) -> Self {
        self.subject = Some(subject);
        self
    }
    /// The data subject the values are about, if one was named.
    pub fn subject(&self) -> Option<&crate::security::data_subject::DataSubject> {
        self.subject.as_ref()
    }
    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// The values, to seal (the only place they are exposed).
    pub fn expose(&self) -> &Map<String, Value> {
        &self.values
    }
}

impl std::fmt::Debug for SensitiveMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SensitiveMetadata")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("has_subject", &self.subject.is_some())
            .finish_non_exhaustive()
    }
}

impl AuditEvent {
    /// Validates raw input into an event with the given id and outcome.
    ///
    /// # Errors
    /// [`AuditValidationError`] for the first field that breaks a rule.
    pub fn parse(
        id: Uuid,
        outcome: Outcome,
        input: AuditEventInput,
    ) -> Result<Self, AuditValidationError> {
        let tenant_id = TenantId::parse(&input.tenant_id).map_err(|e| {
            AuditValidationError::InvalidIdentifier {
                field: "tenant_id",
                reason: e.to_string(),
            }
        })?;
        let actor =
            ActorId::parse(&input.actor).map_err(|e| AuditValidationError::InvalidIdentifier {
                field: "actor",
                reason: e.to_string(),
            })?;
        let correlation_id = CorrelationId::parse(&input.correlation_id).map_err(|e| {
            AuditValidationError::InvalidIdentifier {
                field: "correlation_id",
                reason: e.to_string(),
            }
        })?;
        let metadata = match input.metadata {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(other) => {
                return Err(AuditValidationError::MetadataNotObject {
                    found: json_type(&other),
                });
            }
        };
        Self::new(
            id,
            tenant_id,
            actor,
            &input.action,
            outcome,
            &input.resource_type,
            &input.resource_id,
            input.reason,
            correlation_id,
            metadata,
        )
    }

    /// Builds an event from already-validated identifiers; checks the free-form fields.
    ///
    /// # Errors
    /// [`AuditValidationError`] for the first field that breaks a rule.
    #[allow(clippy::too_many_arguments)] // one argument per record field; a builder would hide nothing
    pub fn new(
        id: Uuid,
        tenant_id: TenantId,
        actor: ActorId,
        action: &str,
        outcome: Outcome,
        resource_type: &str,
        resource_id: &str,
        reason: Option<String>,
        correlation_id: CorrelationId,
        metadata: Option<Map<String, Value>>,
    ) -> Result<Self, AuditValidationError> {
        check_text("action", action, ACTION_MAX_LEN, true)?;
        check_text("resource_type", resource_type, RESOURCE_TYPE_MAX_LEN, false)?;
        check_text("resource_id", resource_id, RESOURCE_ID_MAX_LEN, false)?;
        let reason = match reason {
            Some(r) if r.is_empty() => None,
            Some(r) => {
                check_text("reason", &r, REASON_MAX_LEN, false)?;
                Some(r)
            }
            None => None,
        };
        if let Some(map) = &metadata {
            let not_canonical =
                |e: &dyn std::fmt::Display| AuditValidationError::MetadataNotCanonical {
                    reason: e.to_string(),
                };
            let bytes =
                to_canonical_json(&Value::Object(map.clone())).map_err(|e| not_canonical(&e))?;
            // The leaf must read back: a double such as 2^60 is written as plain digits, which
            // parse as an integer outside the canonical range, and the record could never be
            // read or verified again. Refuse every whole number beyond ±(2^53 - 1), however it
            // is written (the rule the API document states).
            map.values()
                .try_for_each(crate::ledger::check_safe_integers)
                .map_err(|e| not_canonical(&e))?;
            if bytes.len() > METADATA_MAX_BYTES {
                return Err(AuditValidationError::MetadataTooLarge {
                    len: bytes.len(),
                    max: METADATA_MAX_BYTES,
                });
            }
        }
        Ok(AuditEvent {
            id,
            tenant_id,
            actor,
            action: action.to_owned(),
            outcome,
            resource_type: resource_type.to_owned(),
            resource_id: resource_id.to_owned(),
            reason,
            correlation_id,
            metadata,
            sealed_metadata: None,
            origin: RecordOrigin::Kernel,
        })
    }

    /// The same event, marked as written by an application (`"origin":"application"` in its
    /// leaf). The append API marks every event it writes.
    #[must_use]
    pub fn into_application(mut self) -> Self {
        self.origin = RecordOrigin::Application;
        self
    }

    /// Who wrote it.
    pub fn origin(&self) -> RecordOrigin {
        self.origin
    }

    /// The event's id (UUIDv7).
    pub fn id(&self) -> Uuid {
        self.id
    }
    /// The tenant whose ledger receives it.
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }
    /// Who acted.
    pub fn actor(&self) -> &ActorId {
        &self.actor
    }
    /// What they did.
    pub fn action(&self) -> &str {
        &self.action
    }
    /// Carried out or refused.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }
    /// The kind of resource.
    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }
    /// The resource's id.
    pub fn resource_id(&self) -> &str {
        &self.resource_id
    }
    /// Why, if given.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
    /// The correlation id of the request that caused it.
    pub fn correlation_id(&self) -> &CorrelationId {
        &self.correlation_id
    }
    /// Structured context, if given.
    pub fn metadata(&self) -> Option<&Map<String, Value>> {
        self.metadata.as_ref()
    }

    /// Values sealed under the tenant's data key, by key (each a `v1.<dek-kid>.…` string), if any.
    pub fn sealed_metadata(&self) -> Option<&Map<String, Value>> {
        self.sealed_metadata.as_ref()
    }

    /// The same event carrying `sealed` (key → ciphertext) as its `sealed_metadata` leaf member.
    /// The values must be ciphertexts already (see
    /// [`crate::security::key_custody::seal_sensitive_metadata`]).
    ///
    /// # Errors
    /// [`AuditValidationError::SensitiveMetadata`] for a key also in `metadata` or a value that is
    /// not a `v1.` ciphertext; [`AuditValidationError::MetadataTooLarge`] past
    /// [`METADATA_MAX_BYTES`].
    pub fn with_sealed_metadata(
        mut self,
        sealed: Map<String, Value>,
    ) -> Result<Self, AuditValidationError> {
        if sealed.is_empty() {
            self.sealed_metadata = None;
            return Ok(self);
        }
        for (key, value) in &sealed {
            if self.metadata.as_ref().is_some_and(|m| m.contains_key(key)) {
                return Err(AuditValidationError::SensitiveMetadata {
                    reason: format!("key {key:?} is in both metadata and sensitive metadata"),
                });
            }
            let is_ciphertext = value
                .as_str()
                .is_some_and(|v| crate::security::encryption::key_id_of(v).is_ok());
            if !is_ciphertext {
                return Err(AuditValidationError::SensitiveMetadata {
                    reason: format!("value of {key:?} is not a sealed value"),
                });
            }
        }
        let len = to_canonical_json(&Value::Object(sealed.clone()))
            .map_err(|e| AuditValidationError::MetadataNotCanonical {
                reason: e.to_string(),
            })?
            .len();
        if len > METADATA_MAX_BYTES {
            return Err(AuditValidationError::MetadataTooLarge {
                len,
                max: METADATA_MAX_BYTES,
            });
        }
        self.sealed_metadata = Some(sealed);
        Ok(self)
    }

    /// Gives the event its place and time in the ledger. Called by stores inside the append
    /// transaction; `recorded_at` is truncated to whole microseconds.
    ///
    /// # Errors
    /// [`AuditValidationError::MetadataNotCanonical`] if the leaf cannot be canonicalised (cannot
    /// happen for an event built by [`AuditEvent::new`], whose metadata was checked).
    pub fn seal(
        self,
        seq: u64,
        recorded_at: DateTime<Utc>,
    ) -> Result<AuditRecord, AuditValidationError> {
        let (leaf, recorded_at) = self.leaf_at(seq, recorded_at)?;
        Ok(AuditRecord {
            event: self,
            seq,
            recorded_at,
            leaf,
        })
    }

    /// The leaf bytes [`AuditEvent::seal`] gives the event at `seq` and `recorded_at`, with the
    /// time they carry (truncated to whole microseconds), leaving the event as it is: for a store
    /// that may have to write the same event again (the SQLite writer retrying a batch).
    ///
    /// # Errors
    /// As [`AuditEvent::seal`].
    pub fn leaf_at(
        &self,
        seq: u64,
        recorded_at: DateTime<Utc>,
    ) -> Result<(Vec<u8>, DateTime<Utc>), AuditValidationError> {
        let recorded_at = truncate_micros(recorded_at);
        let leaf = leaf_json(self, seq, &recorded_at)
            .map_err(|e| AuditValidationError::MetadataNotCanonical {
                reason: e.to_string(),
            })?
            .into_bytes();
        Ok((leaf, recorded_at))
    }
}

/// A recorded action: an event with its place (`seq`) and time, and its exact leaf bytes.
///
/// Immutable once made: the fields are private and every accessor hands out a shared reference,
/// so none of these compiles, even with the record held mutably (each fails for that reason: a
/// private field, and assignment through a `&` reference):
///
/// ```compile_fail,E0616
/// # fn f(record: &mut airisk_core::governance::audit_record::AuditRecord) {
/// record.seq = 7;
/// # }
/// ```
///
/// ```compile_fail,E0594
/// # fn f(record: &mut airisk_core::governance::audit_record::AuditRecord) {
/// record.leaf_bytes()[0] = b'x';
/// # }
/// ```
///
/// ```compile_fail,E0594
/// # fn f(record: &mut airisk_core::governance::audit_record::AuditRecord,
/// #      other: airisk_core::governance::audit_record::AuditEvent) {
/// *record.event() = other;
/// # }
/// ```
///
/// The same calls through the shared accessors do compile (so the examples above fail for the
/// reason given, not because a name is wrong):
///
/// ```
/// # fn f(record: &mut airisk_core::governance::audit_record::AuditRecord) {
/// let _: u64 = record.seq();
/// let _: u8 = record.leaf_bytes()[0];
/// let _ = record.event().clone();
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    event: AuditEvent,
    seq: u64,
    recorded_at: DateTime<Utc>,
    leaf: Vec<u8>,
}

impl AuditRecord {
    /// The position in the tenant's ledger, gapless from 0.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// When it was recorded (UTC, microseconds).
    pub fn recorded_at(&self) -> DateTime<Utc> {
        self.recorded_at
    }
    /// The event recorded.
    pub fn event(&self) -> &AuditEvent {
        &self.event
    }
    /// The exact leaf bytes: RFC 8785 canonical JSON of the record.
    ///
    /// The object has these members (absent optional ones are omitted, never `null`):
    /// `v` (1), `id`, `tenant_id`, `seq`, `recorded_at` (RFC 3339, microseconds, `Z`), `actor`,
    /// `action`, `outcome` (`success`/`denied`), `resource_type`, `resource_id`, `reason`?,
    /// `correlation_id`, `metadata`?, `sealed_metadata`? (key → `v1.` ciphertext of the value's
    /// canonical JSON, only when a caller marked values sensitive), `origin`? (only on application records, as
    /// `"application"`; it sorts before `seq`, so the leaf still ends with `seq`, `tenant_id`,
    /// `v`).
    pub fn leaf_bytes(&self) -> &[u8] {
        &self.leaf
    }
    /// Consumes the record, returning its leaf bytes.
    pub fn into_leaf_bytes(self) -> Vec<u8> {
        self.leaf
    }

    /// Decodes stored leaf bytes back into a record, and insists they are exactly the canonical
    /// form of what they decode to: any byte changed, added or reordered is caught here or by the
    /// leaf hash.
    ///
    /// # Errors
    /// [`AuditValidationError::MalformedLeaf`] if the bytes are not JSON, miss a member, hold an
    /// invalid value, or are not canonical.
    pub fn from_leaf_bytes(leaf: &[u8]) -> Result<Self, AuditValidationError> {
        let malformed = |reason: String| AuditValidationError::MalformedLeaf { reason };
        let value: Value =
            serde_json::from_slice(leaf).map_err(|e| malformed(format!("not JSON: {e}")))?;
        let wire: LeafWire = serde_json::from_value(value)
            .map_err(|e| malformed(format!("not an audit record: {e}")))?;
        if wire.v != LEAF_VERSION {
            return Err(malformed(format!("unsupported leaf version {}", wire.v)));
        }
        let recorded_at = DateTime::parse_from_rfc3339(&wire.recorded_at)
            .map_err(|e| malformed(format!("recorded_at: {e}")))?
            .with_timezone(&Utc);
        let origin = match wire.origin.as_deref() {
            None => RecordOrigin::Kernel,
            Some("application") => RecordOrigin::Application,
            Some(other) => return Err(malformed(format!("unknown origin {other:?}"))),
        };
        let event = AuditEvent::parse(
            wire.id,
            wire.outcome,
            AuditEventInput {
                actor: wire.actor,
                tenant_id: wire.tenant_id,
                action: wire.action,
                resource_type: wire.resource_type,
                resource_id: wire.resource_id,
                reason: wire.reason,
                correlation_id: wire.correlation_id,
                metadata: wire.metadata.map(Value::Object),
            },
        )
        .map_err(|e| malformed(e.to_string()))?;
        let event = match origin {
            RecordOrigin::Kernel => event,
            RecordOrigin::Application => event.into_application(),
        };
        let event = match wire.sealed_metadata {
            Some(sealed) => event
                .with_sealed_metadata(sealed)
                .map_err(|e| malformed(e.to_string()))?,
            None => event,
        };
        let record = event.seal(wire.seq, recorded_at)?;
        if record.leaf != leaf {
            return Err(malformed("bytes are not in canonical form".to_owned()));
        }
        Ok(record)
    }

    /// The record as a JSON value (the same members as the leaf), for APIs and logs.
    pub fn to_json(&self) -> Value {
        leaf_value(&self.event, self.seq, &self.recorded_at)
    }
}

/// What an append returns: enough to find the record again and to check its inclusion later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReceipt {
    /// The record's id.
    pub id: Uuid,
    /// The tenant whose ledger holds it.
    pub tenant_id: TenantId,
    /// Its position, gapless from 0.
    pub seq: u64,
    /// SHA-256(0x00 || leaf), lower-case hex.
    pub leaf_hash: String,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeafWire {
    v: u64,
    id: Uuid,
    tenant_id: String,
    seq: u64,
    recorded_at: String,
    actor: String,
    action: String,
    outcome: Outcome,
    resource_type: String,
    resource_id: String,
    #[serde(default)]
    reason: Option<String>,
    correlation_id: String,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default)]
    sealed_metadata: Option<Map<String, Value>>,
}

/// RFC 3339 with exactly six fractional digits and `Z`, e.g. `2026-11-27T04:30:51.123456Z`.
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

/// The leaf: the canonical JSON of [`leaf_value`], written member by member in canonical key
/// order instead of building that `Value` first (which copies every field and the metadata into
/// a fresh tree, only to drop it). The store's writer seals every record on its one thread, so
/// this is on the ledger's hot path. [`leaf_value`] stays the definition: the tests check that
/// both give the same bytes (`tests/governance/leaf_bytes.rs`).
fn leaf_json(
    event: &AuditEvent,
    seq: u64,
    recorded_at: &DateTime<Utc>,
) -> Result<String, CanonicalJsonError> {
    use crate::ledger::{write_number, write_object, write_string};
    let text_len = event.action.len()
        + event.actor.as_str().len()
        + event.correlation_id.as_str().len()
        + event.resource_id.len()
        + event.resource_type.len()
        + event.reason.as_ref().map_or(0, String::len)
        + event.tenant_id.as_str().len();
    let mut out = String::with_capacity(text_len + 320);
    // Keys in RFC 8785 order (by UTF-16 code units; all are ASCII, so bytewise); optional
    // members only when `leaf_value` has them.
    out.push_str("{\"action\":");
    write_string(&mut out, &event.action);
    out.push_str(",\"actor\":");
    write_string(&mut out, event.actor.as_str());
    out.push_str(",\"correlation_id\":");
    write_string(&mut out, event.correlation_id.as_str());
    out.push_str(",\"id\":");
    write_string(
        &mut out,
        event
            .id
            .hyphenated()
            .encode_lower(&mut Uuid::encode_buffer()),
    );
    if let Some(metadata) = &event.metadata {
        out.push_str(",\"metadata\":");
        write_object(&mut out, metadata)?;
    }
    if event.origin == RecordOrigin::Application {
        out.push_str(",\"origin\":");
        write_string(&mut out, RecordOrigin::Application.as_str());
    }
    out.push_str(",\"outcome\":");
    write_string(&mut out, event.outcome.as_str());
    if let Some(reason) = &event.reason {
        out.push_str(",\"reason\":");
        write_string(&mut out, reason);
    }
    out.push_str(",\"recorded_at\":");
    write_string(&mut out, &format_timestamp(recorded_at));
    out.push_str(",\"resource_id\":");
    write_string(&mut out, &event.resource_id);
    out.push_str(",\"resource_type\":");
    write_string(&mut out, &event.resource_type);
    if let Some(sealed) = &event.sealed_metadata {
        out.push_str(",\"sealed_metadata\":");
        write_object(&mut out, sealed)?;
    }
    out.push_str(",\"seq\":");
    write_number(&mut out, &seq.into())?;
    out.push_str(",\"tenant_id\":");
    write_string(&mut out, event.tenant_id.as_str());
    out.push_str(",\"v\":");
    write_number(&mut out, &LEAF_VERSION.into())?;
    out.push('}');
    Ok(out)
}

/// The leaf's members as a JSON value: what [`AuditRecord::to_json`] returns, and the
/// definition of the leaf bytes (their canonical JSON; [`leaf_json`] writes them directly).
fn leaf_value(event: &AuditEvent, seq: u64, recorded_at: &DateTime<Utc>) -> Value {
    let mut m = Map::new();
    m.insert("v".into(), Value::from(LEAF_VERSION));
    m.insert("id".into(), Value::from(event.id.to_string()));
    m.insert("tenant_id".into(), Value::from(event.tenant_id.as_str()));
    m.insert("seq".into(), Value::from(seq));
    m.insert(
        "recorded_at".into(),
        Value::from(format_timestamp(recorded_at)),
    );
    m.insert("actor".into(), Value::from(event.actor.as_str()));
    m.insert("action".into(), Value::from(event.action.as_str()));
    m.insert("outcome".into(), Value::from(event.outcome.as_str()));
    m.insert(
        "resource_type".into(),
        Value::from(event.resource_type.as_str()),
    );
    m.insert(
        "resource_id".into(),
        Value::from(event.resource_id.as_str()),
    );
    if let Some(reason) = &event.reason {
        m.insert("reason".into(), Value::from(reason.as_str()));
    }
    m.insert(
        "correlation_id".into(),
        Value::from(event.correlation_id.as_str()),
    );
    if let Some(metadata) = &event.metadata {
        m.insert("metadata".into(), Value::Object(metadata.clone()));
    }
    // Only records with sealed values carry the member, so other leaves keep their bytes.
    if let Some(sealed) = &event.sealed_metadata {
        m.insert("sealed_metadata".into(), Value::Object(sealed.clone()));
    }
    // Only application records carry the member, so kernel leaves keep their old bytes.
    if event.origin == RecordOrigin::Application {
        m.insert(
            "origin".into(),
            Value::from(RecordOrigin::Application.as_str()),
        );
    }
    Value::Object(m)
}

fn check_text(
    field: &'static str,
    value: &str,
    max: usize,
    action_charset: bool,
) -> Result<(), AuditValidationError> {
    if value.is_empty() {
        return Err(AuditValidationError::Empty { field });
    }
    if value.len() > max {
        return Err(AuditValidationError::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    let bad = value.char_indices().find(|(_, c)| {
        if action_charset {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        } else {
            // Reasons may span lines; everything else is one line of printable text.
            c.is_control() && !(field == "reason" && matches!(c, '\n' | '\t'))
        }
    });
    if let Some((position, _)) = bad {
        return Err(AuditValidationError::InvalidCharacter { field, position });
    }
    Ok(())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

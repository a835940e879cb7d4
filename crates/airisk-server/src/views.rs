//! The API's request and response bodies. They are the contract (each is a schema of the OpenAPI
//! document) and are kept apart from the domain types, which may change shape without changing
//! the wire. Timestamps are RFC 3339 UTC with microseconds; ids are UUID strings.

use airisk_core::governance::approval_workflow::{ApprovalRequest, Decision, Subject};
use airisk_core::governance::audit_record::{AuditReceipt, format_timestamp};
use airisk_core::governance::model_registry::ModelVersion;
use airisk_core::governance::prompt_registry::{DiffLine, LabelMove, PromptVersion};
use std::sync::OnceLock;

use airisk_core::governance::visible_text;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::ApiError;

fn ts(t: DateTime<Utc>) -> String {
    format_timestamp(&t)
}

// ---------------------------------------------------------------------------------------------
// Patterns: the rules the server enforces, stated in the document

/// The longest `expires_in_seconds`: ten years of 365.25 days.
pub const MAX_EXPIRES_IN_SECONDS: i64 = 315_576_000;
/// The largest `offset`: the stores count rows in signed 64-bit integers.
pub const MAX_OFFSET: u64 = i64::MAX as u64;

/// Placeholder patterns in the annotations below, replaced in the served document by
/// [`expand_patterns`] with the rules of `airisk_core::governance::visible_text`, generated from
/// the same function the server checks with (a table of hundreds of ranges).
const VISIBLE_TEXT: &str = "@visible-text";
/// As [`VISIBLE_TEXT`], but empty or blank text is allowed too (metadata strings and keys).
const VISIBLE_TEXT_OR_EMPTY: &str = "@visible-text-or-empty";
/// An absolute URI (`scheme://rest`) whose rest is visible text without spaces or controls.
const ARTIFACT_URI: &str = "@artifact-uri";

/// The three generated patterns, built once. Surrogates are not named: no JSON text carries
/// them alone, and regex engines built on Rust's (the JSON Schema validators of some tools)
/// refuse a class that names them.
fn generated_patterns() -> &'static [(&'static str, String); 3] {
    static PATTERNS: OnceLock<[(&'static str, String); 3]> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let esc = |c: char| {
            let u = u32::from(c);
            if u <= 0xFFFF {
                format!("\\u{u:04X}")
            } else {
                c.to_string()
            }
        };
        let mut refused = String::new();
        for (lo, hi) in visible_text::refused_ranges() {
            refused.push_str(&esc(lo));
            if hi != lo {
                refused.push('-');
                refused.push_str(&esc(hi));
            }
        }
        let sel = "\\uFE0E\\uFE0F";
        // A visible character, then at most one presentation selector.
        let base = format!("[^{refused}\\t\\n{sel}][{sel}]?");
        let item = format!("(?:[\\t\\n]|{base})");
        // What Rust's `str::trim` removes (White_Space) among the characters the check allows.
        let blank = "\\t\\n \\u00A0\\u1680\\u2000-\\u200A\\u202F\\u205F\\u3000";
        let solid = format!("[^{refused}{blank}{sel}][{sel}]?");
        let uri_char = format!("[^{refused}\\t\\n {sel}][{sel}]?");
        [
            (VISIBLE_TEXT, format!("^{item}*{solid}{item}*$")),
            (VISIBLE_TEXT_OR_EMPTY, format!("^{item}*$")),
            (
                ARTIFACT_URI,
                format!("^[A-Za-z][A-Za-z0-9+.-]*://(?:[{sel}](?:{uri_char})*|(?:{uri_char})+)$"),
            ),
        ]
    })
}

fn pattern(name: &str) -> String {
    generated_patterns()
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| p.clone())
        .unwrap_or_default()
}

/// A recursive JSON value schema: strings (and object keys) visible when `visible`, integers
/// (plain digits) within ±(2^53 - 1), the range the canonical JSON of the ledger and the
/// metadata size check can write exactly.
fn json_value_schemas(object: &str, value: &str, visible: bool) -> (Value, Value) {
    let string = || {
        let mut m = Map::new();
        m.insert("type".into(), Value::from("string"));
        if visible {
            m.insert(
                "pattern".into(),
                Value::from(pattern(VISIBLE_TEXT_OR_EMPTY)),
            );
        }
        Value::Object(m)
    };
    let value_ref = format!("#/components/schemas/{value}");
    let object_ref = format!("#/components/schemas/{object}");
    let object_schema = serde_json::json!({
        "type": "object",
        "propertyNames": string(),
        "additionalProperties": { "$ref": value_ref },
    });
    let safe = airisk_core::ledger::MAX_SAFE_INTEGER;
    let value_schema = serde_json::json!({
        "anyOf": [
            { "type": "null" },
            { "type": "boolean" },
            { "type": "integer", "minimum": -(safe as i64), "maximum": safe },
            { "type": "number", "not": { "type": "integer" } },
            string(),
            { "type": "array", "items": { "$ref": value_ref } },
            { "$ref": object_ref },
        ],
    });
    (object_schema, value_schema)
}

/// Replaces the placeholder patterns of the document `doc` with the generated constraints, and
/// states the recursive `Metadata` (model) and `AuditMetadata` schemas.
pub(crate) fn expand_patterns(doc: &mut Value) {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(p)) = map.get_mut("pattern")
                    && let Some((_, real)) = generated_patterns().iter().find(|(name, _)| name == p)
                {
                    *p = real.clone();
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(doc);
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        let (mut object, value) = json_value_schemas("Metadata", "MetadataValue", true);
        if let Some(o) = object.as_object_mut() {
            o.insert("description".into(), Value::from(
                "Model metadata: a JSON object (at most 16 KiB as canonical JSON) whose keys and \
                 strings, at any depth, hold no hidden character (approvers read it), and whose \
                 integers are within ±(2^53 - 1).",
            ));
        }
        schemas.insert("Metadata".into(), object);
        schemas.insert("MetadataValue".into(), value);
        let (mut object, value) = json_value_schemas("AuditMetadata", "AuditMetadataValue", false);
        if let Some(o) = object.as_object_mut() {
            o.insert("description".into(), Value::from(
                "An audit record's metadata: a JSON object (at most 64 KiB as canonical JSON) whose \
                 integers are within ±(2^53 - 1).",
            ));
        }
        // The subject has one variant: state it as that object (a one-member `oneOf` says the
        // same, and slows generators down), refusing unknown fields as serde does.
        if let Some(subject) = schemas
            .get_mut("NewSubjectBody")
            .and_then(Value::as_object_mut)
            && subject
                .get("oneOf")
                .and_then(Value::as_array)
                .is_some_and(|v| v.len() == 1)
            && let Some(Value::Array(mut variants)) = subject.remove("oneOf")
            && let Some(Value::Object(only)) = variants.pop()
        {
            for (k, v) in only {
                if k != "description" {
                    subject.insert(k, v);
                }
            }
            subject.insert("additionalProperties".into(), Value::Bool(false));
        }
        schemas.insert("AuditMetadata".into(), object);
        schemas.insert("AuditMetadataValue".into(), value);
    }
}

/// Integer fields as JSON Schema reads them: `1.0` is the integer 1 (an `integer` is any number
/// with a zero fractional part), so the server accepts what the document calls valid.
mod integral {
    use serde::de::{Deserialize, Deserializer, Error};

    fn whole<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
        n: serde_json::Number,
    ) -> Result<T, D::Error> {
        let value = if let Some(i) = n.as_i64() {
            Some(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Some(i128::from(u))
        } else {
            // Exact for every whole double in range of the targets (|f| < 2^64 fits i128).
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1.8e19)
                .map(|f| f as i128)
        };
        value
            .and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| D::Error::custom(format!("{n} is not a whole number in range")))
    }

    /// A `u32`.
    pub(crate) fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        whole::<D, u32>(serde_json::Number::deserialize(d)?)
    }

    /// An optional `u32` (`null` or absent: none).
    pub(crate) fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        Option::<serde_json::Number>::deserialize(d)?
            .map(whole::<D, u32>)
            .transpose()
    }

    /// An optional `i64` (`null` or absent: none).
    pub(crate) fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<serde_json::Number>::deserialize(d)?
            .map(whole::<D, i64>)
            .transpose()
    }
}

/// Checks a prompt name or label the way the registry does, for inputs the registry does not
/// check itself (an approval request's subject).
fn check_prompt_name(what: &str, s: &str, max: usize) -> Result<(), ApiError> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.char_indices().all(|(i, c)| {
            c.is_ascii_alphanumeric() || (i > 0 && matches!(c, '.' | '_' | '-' | '/'))
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "{what} must be 1 to {max} ASCII letters, digits, '.', '_', '-' or '/', starting with a letter or digit"
        )))
    }
}

/// Checks `expires_in_seconds`: 1 to [`MAX_EXPIRES_IN_SECONDS`].
pub(crate) fn check_expires_in(seconds: Option<i64>) -> Result<(), ApiError> {
    match seconds {
        Some(s) if !(1..=MAX_EXPIRES_IN_SECONDS).contains(&s) => Err(ApiError::Unprocessable(
            format!("expires_in_seconds must be between 1 and {MAX_EXPIRES_IN_SECONDS}"),
        )),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Audit

/// An application event to append to the caller's tenant's ledger. The actor, tenant and
/// correlation id are the request's, never the body's.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendAuditBody {
    /// What was done, e.g. `report.generate` (lower-case letters, digits, `.`, `_`, `-`; at most
    /// 128).
    #[schema(pattern = "^[a-z0-9._-]+$", min_length = 1, max_length = 128)]
    pub action: String,
    /// The kind of thing acted on (one line, no control characters; at most 64 bytes of UTF-8).
    #[schema(
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        min_length = 1,
        max_length = 64
    )]
    pub resource_type: String,
    /// Which one (one line, no control characters; at most 256 bytes of UTF-8).
    #[schema(
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        min_length = 1,
        max_length = 256
    )]
    pub resource_id: String,
    /// Why, in words (no control characters but tab and line feed; at most 4096 bytes of UTF-8;
    /// empty is the same as absent).
    #[serde(default)]
    #[schema(
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$",
        max_length = 4096
    )]
    pub reason: Option<String>,
    /// Extra structured context (a JSON object, at most 64 KiB as canonical JSON).
    #[serde(default)]
    #[schema(value_type = Option<AuditMetadata>)]
    pub metadata: Option<Value>,
    /// Context the caller marks sensitive (a JSON object; keys must not repeat `metadata`'s):
    /// each value is sealed under the tenant's data key before the record is built, so the
    /// ledger holds only ciphertext (`sealed_metadata` in the leaf). Never logged.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub sensitive_metadata: Option<Value>,
}

/// What an append returns once the record is durable.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReceiptView {
    /// The record's id.
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its position in the tenant's ledger, gapless from 0.
    pub seq: u64,
    /// SHA-256(0x00 || leaf), hex.
    pub leaf_hash: String,
    /// When it was recorded.
    pub recorded_at: String,
}

impl From<&AuditReceipt> for ReceiptView {
    fn from(r: &AuditReceipt) -> Self {
        ReceiptView {
            id: r.id.to_string(),
            tenant_id: r.tenant_id.to_string(),
            seq: r.seq,
            leaf_hash: r.leaf_hash.clone(),
            recorded_at: ts(r.recorded_at),
        }
    }
}

/// One audit entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryView {
    /// Position in the ledger.
    pub seq: u64,
    /// SHA-256(0x00 || leaf), hex.
    pub leaf_hash: String,
    /// The exact leaf bytes (RFC 8785 canonical JSON), base64: what the tree hashes.
    pub leaf: String,
    /// The record, decoded from the leaf.
    #[schema(value_type = Object)]
    pub record: Value,
}

/// An audit search's `outcome` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeParam {
    /// The action was done.
    Success,
    /// The action was refused.
    Denied,
}

/// An audit search's `order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderParam {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// A page of audit entries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// Matching entries, in the requested order.
    pub entries: Vec<AuditEntryView>,
    /// Pass as `cursor` to continue; absent on the last page.
    pub next_cursor: Option<u64>,
}

/// The outcome of recomputing the caller's tenant's ledger.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyView {
    /// The tenant.
    pub tenant: String,
    /// True when every leaf, root and checkpoint signature checked out.
    pub intact: bool,
    /// Entries read and checked.
    pub entries: u64,
    /// The recomputed root, hex (when intact).
    pub root: Option<String>,
    /// Stored checkpoints whose signature and root were confirmed.
    pub checkpoints_verified: u64,
    /// The first bad entry, where one can be named.
    pub first_bad_seq: Option<u64>,
    /// What is wrong, if anything.
    pub problem: Option<String>,
    /// The size of the kept checkpoint the caller gave (`POST /v1/audit/verify`); absent for a
    /// plain `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_checkpoint_size: Option<u64>,
    /// True when a kept checkpoint was given and the ledger's first `kept_checkpoint_size`
    /// entries recompute to exactly the root it signed: the ledger still holds what it held then,
    /// and everything since was appended after it (no rollback, no rewrite).
    #[serde(default)]
    pub kept_checkpoint_verified: bool,
}

/// A checkpoint kept from an earlier moment, to check the ledger against (rollback detection).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyCheckpointBody {
    /// The complete signed note (C2SP tlog-checkpoint text plus signature lines) as kept, e.g.
    /// the `note` of an earlier `GET /v1/audit/checkpoint` or the first line of an export. At
    /// most 8192 bytes.
    #[schema(max_length = 8192, min_length = 1)]
    pub checkpoint: String,
}

/// A signed checkpoint (C2SP tlog-checkpoint signed note).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckpointView {
    /// The tree size it commits to.
    pub size: u64,
    /// The root it commits to, hex.
    pub root: String,
    /// The signed note text.
    pub note: String,
    /// When it was signed.
    pub signed_at: String,
    /// The verifier key (`name+keyid+base64`) to check the note with.
    pub verifier_key: String,
}

/// An RFC 6962 inclusion proof of one entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InclusionProofView {
    /// The entry.
    pub seq: u64,
    /// The tree size proved against.
    pub tree_size: u64,
    /// The entry's leaf hash, hex.
    pub leaf_hash: String,
    /// The entry's exact leaf bytes, base64.
    pub leaf: String,
    /// The root of the tree of `tree_size` entries, hex.
    pub root: String,
    /// The audit path, hex hashes, leaf to root.
    pub proof: Vec<String>,
    /// The signed checkpoint of exactly `tree_size`, when one is stored.
    pub checkpoint: Option<String>,
    /// The verifier key for the checkpoint.
    pub verifier_key: String,
}

/// An RFC 6962 consistency proof between two tree sizes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProofView {
    /// The older size.
    pub size1: u64,
    /// The newer size.
    pub size2: u64,
    /// Root at `size1`, hex.
    pub root1: String,
    /// Root at `size2`, hex.
    pub root2: String,
    /// The proof, hex hashes.
    pub proof: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Models

/// A model version to register. It starts PENDING with an approval request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterModelBody {
    /// Model name, e.g. `credit-scoring`: 1 to 128 ASCII letters, digits, `.`, `_`, `-`,
    /// starting with a letter or digit.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$",
        min_length = 1,
        max_length = 128
    )]
    pub name: String,
    /// Version label, e.g. `1.4.0`: as the name, at most 64.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$",
        min_length = 1,
        max_length = 64
    )]
    pub version: String,
    /// SHA-256 of the artifact: 64 hex digits (optionally `sha256:`-prefixed).
    #[schema(pattern = "^(sha256:)?[0-9A-Fa-f]{64}$")]
    pub checksum: String,
    /// Where the artifact lives (`s3://…`, `https://…`, `file://…`): `scheme://rest`, no space or
    /// control character, no hidden character (as for approved text); at most 2048 bytes of
    /// UTF-8.
    #[schema(pattern = "@artifact-uri", max_length = 2048)]
    pub artifact_uri: String,
    /// Free-form metadata (a JSON object, at most 16 KiB as canonical JSON); every key and
    /// string is shown to approvers and must hold no hidden character.
    #[serde(default)]
    #[schema(value_type = Option<Metadata>)]
    pub metadata: Option<Value>,
    /// Why it should be deployed (the approval request's justification): visible text (see
    /// `hidden-character` problems), not blank, at most 4096 bytes of UTF-8.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 4096)]
    pub justification: String,
    /// Distinct approvals needed (1 to 10; default 1).
    #[serde(default, deserialize_with = "integral::opt_u32")]
    #[schema(minimum = 1, maximum = 10)]
    pub required_approvals: Option<u32>,
    /// Seconds until the approval request expires (1 to 315576000, ten years; default: never).
    #[serde(default, deserialize_with = "integral::opt_i64")]
    #[schema(minimum = 1, maximum = 315_576_000)]
    pub expires_in_seconds: Option<i64>,
}

/// Model metadata: a JSON object whose keys and strings (at any depth) hold no hidden character.
/// Its schema is stated in the document (`MetadataValue`, recursive).
#[derive(Debug)]
pub struct Metadata;

impl utoipa::PartialSchema for Metadata {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        // Replaced in the served document by `expand_patterns` (utoipa cannot state a recursive
        // schema with `propertyNames`).
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Object)
            .into()
    }
}

impl ToSchema for Metadata {}

/// An audit record's metadata: a JSON object. Its schema is stated in the document
/// (`AuditMetadataValue`, recursive).
#[derive(Debug)]
pub struct AuditMetadata;

impl utoipa::PartialSchema for AuditMetadata {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        // Replaced in the served document by `expand_patterns`.
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Object)
            .into()
    }
}

impl ToSchema for AuditMetadata {}

/// A registered model version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelView {
    /// Model name.
    pub name: String,
    /// Version label.
    pub version: String,
    /// The registered artifact's SHA-256, hex.
    pub checksum: String,
    /// Where the artifact lives.
    pub artifact_uri: String,
    /// Free-form metadata.
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// Who registered it.
    pub registered_by: String,
    /// When.
    pub created_at: String,
    /// `PENDING`, `APPROVED` or `REJECTED`.
    pub status: String,
    /// Whether it is approved.
    pub approved: bool,
    /// Every approver of the quorum.
    pub approved_by: Vec<String>,
    /// When it was approved.
    pub approved_at: Option<String>,
    /// Who rejected it.
    pub rejected_by: Option<String>,
    /// The approval request that decides it.
    pub approval_request_id: String,
}

impl From<&ModelVersion> for ModelView {
    fn from(m: &ModelVersion) -> Self {
        ModelView {
            name: m.model_name().to_string(),
            version: m.version().to_string(),
            checksum: m.checksum().to_hex(),
            artifact_uri: m.artifact_uri().to_owned(),
            metadata: m.metadata().clone(),
            registered_by: m.registered_by().to_string(),
            created_at: ts(m.created_at()),
            status: m.status().as_str().to_owned(),
            approved: m.approved(),
            approved_by: m.approved_by().iter().map(ToString::to_string).collect(),
            approved_at: m.approved_at().map(ts),
            rejected_by: m.rejected_by().map(ToString::to_string),
            approval_request_id: m.approval_request_id().to_string(),
        }
    }
}

/// A registration: the model and its approval request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistrationView {
    /// The model, PENDING.
    pub model: ModelView,
    /// Its approval request.
    pub approval_request: ApprovalView,
}

/// A decision's reason.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why (mandatory): visible text, not blank, at most 4096 bytes of UTF-8.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 4096)]
    pub reason: String,
}

/// The artifact presented for deployment.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentBody {
    /// SHA-256 of the artifact about to be deployed: 64 hex digits (optionally
    /// `sha256:`-prefixed).
    #[schema(pattern = "^(sha256:)?[0-9A-Fa-f]{64}$")]
    pub sha256: String,
}

/// A granted deployment authorisation (a refusal is a 409 problem).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeploymentView {
    /// Always true here.
    pub authorized: bool,
    /// The model version.
    pub model: ModelView,
    /// The audit record of this authorisation.
    pub receipt: ReceiptView,
}

// ---------------------------------------------------------------------------------------------
// Prompts

/// A new prompt (version 1).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterPromptBody {
    /// Prompt name: 1 to 128 ASCII letters, digits, `.`, `_`, `-`, `/`, starting with a letter
    /// or digit (percent-encode `/` in paths).
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        min_length = 1,
        max_length = 128
    )]
    pub name: String,
    /// The template text: visible text (no tag, bidi-control, zero-width or other hidden
    /// character; line breaks are LF), not blank, at most 262144 bytes of UTF-8.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 262_144)]
    pub template: String,
    /// Why it exists: visible text, not blank, at most 4096 bytes of UTF-8.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 4096)]
    pub change_reason: String,
}

/// A new version of an existing prompt.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePromptBody {
    /// The new template text (must differ from the latest version's): as for a new prompt.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 262_144)]
    pub template: String,
    /// Why it changed: visible text, not blank, at most 4096 bytes of UTF-8.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 4096)]
    pub change_reason: String,
}

/// Where to move a label.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveLabelBody {
    /// The version the label should point to. An APPROVED, unused approval request for exactly
    /// this move must exist.
    #[serde(deserialize_with = "integral::u32")]
    #[schema(minimum = 0, maximum = 4_294_967_295_u64, format = Int64)]
    pub version: u32,
}

/// One immutable prompt version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PromptVersionView {
    /// Prompt name.
    pub name: String,
    /// Version number, from 1.
    pub version: u32,
    /// The template.
    pub template: String,
    /// SHA-256 of the template's UTF-8 bytes, hex.
    pub template_sha256: String,
    /// Who wrote it.
    pub author: String,
    /// Why it changed.
    pub change_reason: String,
    /// When.
    pub created_at: String,
    /// `true` when the template was erased by crypto-shredding the tenant's data keys: the
    /// template is then empty. Absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
}

impl From<&PromptVersion> for PromptVersionView {
    fn from(p: &PromptVersion) -> Self {
        PromptVersionView {
            name: p.name().to_owned(),
            version: p.version(),
            template: p.template().to_owned(),
            template_sha256: p.template_sha256().to_hex(),
            author: p.author().to_string(),
            change_reason: p.change_reason().to_owned(),
            created_at: ts(p.created_at()),
            erased: p.is_erased(),
        }
    }
}

/// One move of a label.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LabelMoveView {
    /// The move's id.
    pub id: String,
    /// Prompt name.
    pub name: String,
    /// The label.
    pub label: String,
    /// Where it pointed before.
    pub from_version: Option<u32>,
    /// Where it points now.
    pub to_version: u32,
    /// Who moved it.
    pub moved_by: String,
    /// When.
    pub moved_at: String,
    /// The approval request that allowed it.
    pub approval_request_id: String,
}

impl From<&LabelMove> for LabelMoveView {
    fn from(m: &LabelMove) -> Self {
        LabelMoveView {
            id: m.id.to_string(),
            name: m.name.clone(),
            label: m.label.clone(),
            from_version: m.from_version,
            to_version: m.to_version,
            moved_by: m.moved_by.to_string(),
            moved_at: ts(m.moved_at),
            approval_request_id: m.approval_request_id.to_string(),
        }
    }
}

/// A label and the version it points to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LabelView {
    /// The label.
    pub label: String,
    /// The version.
    pub version: u32,
}

/// A prompt's versions and label moves.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PromptHistoryView {
    /// Every version, oldest first.
    pub versions: Vec<PromptVersionView>,
    /// Every label move, oldest first.
    pub label_moves: Vec<LabelMoveView>,
    /// Where each label points now.
    pub labels: Vec<LabelView>,
}

/// One line of a diff.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiffLineView {
    /// `same`, `removed` or `added`.
    pub op: String,
    /// The line.
    pub line: String,
}

impl From<&DiffLine> for DiffLineView {
    fn from(d: &DiffLine) -> Self {
        let (op, line) = match d {
            DiffLine::Same(l) => ("same", l),
            DiffLine::Removed(l) => ("removed", l),
            DiffLine::Added(l) => ("added", l),
        };
        DiffLineView {
            op: op.to_owned(),
            line: line.clone(),
        }
    }
}

/// A line diff between two versions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiffView {
    /// The older version.
    pub from: u32,
    /// The newer version.
    pub to: u32,
    /// The lines.
    pub lines: Vec<DiffLineView>,
}

// ---------------------------------------------------------------------------------------------
// Approvals

/// What an approval request is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SubjectView {
    /// Deploying a model version (opened by registering the model).
    Model {
        /// Model name.
        name: String,
        /// Model version.
        version: String,
    },
    /// Moving a prompt label to a version.
    PromptLabel {
        /// Prompt name.
        name: String,
        /// The version the label would point to.
        version: u32,
        /// The label.
        label: String,
    },
}

impl From<&Subject> for SubjectView {
    fn from(s: &Subject) -> Self {
        match s {
            Subject::Model { name, version } => SubjectView::Model {
                name: name.clone(),
                version: version.clone(),
            },
            Subject::PromptLabel {
                name,
                version,
                label,
            } => SubjectView::PromptLabel {
                name: name.clone(),
                version: *version,
                label: label.clone(),
            },
        }
    }
}

impl From<SubjectView> for Subject {
    fn from(s: SubjectView) -> Self {
        match s {
            SubjectView::Model { name, version } => Subject::Model { name, version },
            SubjectView::PromptLabel {
                name,
                version,
                label,
            } => Subject::PromptLabel {
                name,
                version,
                label,
            },
        }
    }
}

/// What a new approval request is for. Only prompt-label moves are opened through
/// `POST /v1/approvals`: a model's request is opened by registering the model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NewSubjectBody {
    /// Moving a prompt label to a version.
    PromptLabel {
        /// Prompt name (as in `POST /v1/prompts`).
        #[schema(
            pattern = "^[A-Za-z0-9][A-Za-z0-9._/-]*$",
            min_length = 1,
            max_length = 128
        )]
        name: String,
        /// The version the label would point to.
        #[serde(deserialize_with = "integral::u32")]
        #[schema(minimum = 0, maximum = 4_294_967_295_u64, format = Int64)]
        version: u32,
        /// The label: 1 to 64 ASCII letters, digits, `.`, `_`, `-`, `/`, starting with a letter
        /// or digit.
        #[schema(
            pattern = "^[A-Za-z0-9][A-Za-z0-9._/-]*$",
            min_length = 1,
            max_length = 64
        )]
        label: String,
    },
}

impl NewSubjectBody {
    /// The domain subject, once its name and label are checked as the registry checks them.
    ///
    /// # Errors
    /// [`ApiError::Unprocessable`] for a malformed name or label.
    pub(crate) fn into_subject(self) -> Result<Subject, ApiError> {
        match self {
            NewSubjectBody::PromptLabel {
                name,
                version,
                label,
            } => {
                check_prompt_name("subject.name", &name, 128)?;
                check_prompt_name("subject.label", &label, 64)?;
                Ok(Subject::PromptLabel {
                    name,
                    version,
                    label,
                })
            }
        }
    }

    /// The subject as sent, for a caller the service will refuse before it reads the subject
    /// (the refusal records the names escaped).
    pub(crate) fn into_unchecked_subject(self) -> Subject {
        match self {
            NewSubjectBody::PromptLabel {
                name,
                version,
                label,
            } => Subject::PromptLabel {
                name,
                version,
                label,
            },
        }
    }
}

/// A new approval request (for a prompt label move; a model's is opened by registering it).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApprovalBody {
    /// What is to be approved.
    pub subject: NewSubjectBody,
    /// Why (mandatory): visible text, not blank, at most 4096 bytes of UTF-8.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 4096)]
    pub justification: String,
    /// Distinct approvals needed (1 to 10; default 1).
    #[serde(default, deserialize_with = "integral::opt_u32")]
    #[schema(minimum = 1, maximum = 10)]
    pub required_approvals: Option<u32>,
    /// Seconds until it expires (1 to 315576000, ten years; default: never).
    #[serde(default, deserialize_with = "integral::opt_i64")]
    #[schema(minimum = 1, maximum = 315_576_000)]
    pub expires_in_seconds: Option<i64>,
}

/// One approval given.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalGivenView {
    /// Who.
    pub approver: String,
    /// When.
    pub at: String,
    /// Why.
    pub reason: String,
}

/// A rejection or cancellation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionView {
    /// Who.
    pub by: String,
    /// When.
    pub at: String,
    /// Why.
    pub reason: String,
}

impl From<&Decision> for DecisionView {
    fn from(d: &Decision) -> Self {
        DecisionView {
            by: d.by.to_string(),
            at: ts(d.at),
            reason: d.reason.clone(),
        }
    }
}

/// An approval request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalView {
    /// Its id.
    pub id: String,
    /// What it is for.
    pub subject: SubjectView,
    /// Who asked.
    pub requested_by: String,
    /// Why.
    pub justification: String,
    /// Distinct approvals needed.
    pub required_approvals: u32,
    /// Approvals given so far.
    pub approvals: Vec<ApprovalGivenView>,
    /// The rejection, if rejected.
    pub rejection: Option<DecisionView>,
    /// The cancellation, if cancelled.
    pub cancellation: Option<DecisionView>,
    /// `PENDING`, `APPROVED`, `REJECTED`, `EXPIRED` or `CANCELLED`, as of now (a pending
    /// request past its expiry reads EXPIRED).
    pub status: String,
    /// When it was opened.
    pub created_at: String,
    /// When it expires.
    pub expires_at: Option<String>,
    /// When it reached a terminal state.
    pub decided_at: Option<String>,
    /// When a single-use approval was spent.
    pub used_at: Option<String>,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl ApprovalView {
    /// The view of `r` as of `now`.
    pub fn of(r: &ApprovalRequest, now: DateTime<Utc>) -> Self {
        ApprovalView {
            id: r.id().to_string(),
            subject: r.subject().into(),
            requested_by: r.requested_by().to_string(),
            justification: r.justification().to_owned(),
            required_approvals: r.required_approvals(),
            approvals: r
                .approvals()
                .iter()
                .map(|a| ApprovalGivenView {
                    approver: a.approver.to_string(),
                    at: ts(a.at),
                    reason: a.reason.clone(),
                })
                .collect(),
            rejection: r.rejection().map(Into::into),
            cancellation: r.cancellation().map(Into::into),
            status: r.status_at(now).as_str().to_owned(),
            created_at: ts(r.created_at()),
            expires_at: r.expires_at().map(ts),
            decided_at: r.decided_at().map(ts),
            used_at: r.used_at().map(ts),
            version: r.version(),
        }
    }
}

/// A page of approval requests.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalPage {
    /// The requests, oldest first.
    pub requests: Vec<ApprovalView>,
    /// Pass as `offset` to continue; absent on the last page.
    pub next_offset: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Operations

/// Liveness or readiness.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// `ok`, or `unavailable` (readiness only).
    pub status: String,
    /// Why not ready, when the reason is safe to show (an OpenID provider that has not provided
    /// its keys); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

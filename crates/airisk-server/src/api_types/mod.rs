//! The API's JSON types: every request and response body of the `/v1` routes. They are the
//! contract (each is a schema of the OpenAPI document) and are kept apart from the domain types,
//! which may change shape without changing the wire. Timestamps are RFC 3339 UTC with
//! microseconds; ids are UUID strings.
//!
//! One file per route module: [`audit`], [`models`], [`prompts`], [`approvals`], [`ops`]; this file
//! holds what they share: the generated patterns the document states (`expand_patterns`), the
//! metadata schemas, and the integer and name checks.

use std::sync::OnceLock;

use airisk_core::governance::audit_record::format_timestamp;
use airisk_core::governance::visible_text;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::ApiError;

pub mod approvals;
pub mod audit;
pub mod models;
pub mod ops;
pub mod prompts;

pub use approvals::*;
pub use audit::*;
pub use models::*;
pub use ops::*;
pub use prompts::*;

/// A timestamp as the API writes it: RFC 3339 UTC with microseconds.
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
        // Sensitive model metadata: the same, with its top-level keys (part of each sealed
        // value's row identity) at most SENSITIVE_METADATA_KEY_MAX_LEN characters.
        let mut sensitive = object.clone();
        if let Some(o) = sensitive.as_object_mut() {
            o.insert(
                "description".into(),
                Value::from(format!(
                    "Sensitive model metadata: as `Metadata` (at most 16 KiB as canonical JSON, no \
                 hidden character, safe integers), with top-level keys of at most {} \
                 characters. Each value is sealed under the tenant's data key.",
                    airisk_core::governance::model_registry::SENSITIVE_METADATA_KEY_MAX_LEN
                )),
            );
            if let Some(Value::Object(names)) = o.get_mut("propertyNames") {
                names.insert(
                    "maxLength".into(),
                    Value::from(
                        airisk_core::governance::model_registry::SENSITIVE_METADATA_KEY_MAX_LEN,
                    ),
                );
            }
        }
        schemas.insert("SensitiveModelMetadata".into(), sensitive);
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
// Metadata: JSON objects whose schemas `expand_patterns` states

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

/// Sensitive model metadata: as [`Metadata`], with top-level keys of at most
/// `SENSITIVE_METADATA_KEY_MAX_LEN` characters. Its schema is stated in the document
/// (`SensitiveModelMetadata`).
#[derive(Debug)]
pub struct SensitiveModelMetadata;

impl utoipa::PartialSchema for SensitiveModelMetadata {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        // Replaced in the served document by `expand_patterns`.
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Object)
            .into()
    }
}

impl ToSchema for SensitiveModelMetadata {}

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

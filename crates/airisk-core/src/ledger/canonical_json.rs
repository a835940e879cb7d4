//! RFC 8785 JSON Canonicalization Scheme (JCS) for [`serde_json::Value`]: the exact bytes a ledger
//! leaf commits to.
//!
//! * Objects: members sorted by key, comparing keys as UTF-16 code units (RFC 8785 §3.2.3), so
//!   `"\u{1f600}"` (a surrogate pair, `d83d de00`) sorts before `"\u{fb33}"` (`fb33`) even though
//!   its UTF-8 bytes (`f0 …`) sort after (`ef …`). No whitespace anywhere.
//! * Strings: as ECMAScript `JSON.stringify` writes them: only `"`, `\` and the control characters
//!   below U+0020 are escaped — `\b \f \n \r \t` by name, the rest as `\u00xx` in lower-case hex.
//!   Everything else, including non-ASCII, is written as UTF-8.
//! * Numbers: the ECMAScript `Number.prototype.toString` form of the IEEE 754 double (via
//!   [`ryu_js`]): `1e30` → `1e+30`, `4.50` → `4.5`, `2e-3` → `0.002`, `1e-7` → `1e-7`, `-0` → `0`.
//!   Integers held as `u64`/`i64` are written exactly when they are *safe* (`|n| <= 2^53 - 1`,
//!   ECMAScript's `Number.MAX_SAFE_INTEGER`, the I-JSON range RFC 8785 relies on); larger ones
//!   are a [`CanonicalJsonError::UnsafeInteger`] rather than being rounded to a double. Put such
//!   values in strings.
//!
//! Canonicalisation starts from the double a [`Value`] holds. Turning JSON *text* into that double
//! is the parser's job: serde_json is only correctly rounded with its `float_roundtrip` feature
//! (without it, `333333333.33333329` parses one unit in the last place off, and canonicalises to
//! `333333333.33333325` where ECMAScript gives `333333333.3333333`).
//!
//! A `serde_json::Value` cannot hold NaN or an infinity. [`serialize_canonical_json`] goes through
//! `serde_json::to_value`, which (like `JSON.stringify`) turns a non-finite `f64` into `null`
//! before this module sees it; audit records should not carry floats where that matters.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Number, Value};

/// `Number.MAX_SAFE_INTEGER`: the largest integer `n` such that `n` and `n + 1` are both exact
/// doubles.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The RFC 8785 canonical form of `value`.
///
/// ```
/// use airisk_core::ledger::to_canonical_json;
/// let value = serde_json::json!({"b": [1, 2.50, "x\n"], "a": null});
/// assert_eq!(to_canonical_json(&value)?, r#"{"a":null,"b":[1,2.5,"x\n"]}"#);
/// # Ok::<(), airisk_core::ledger::CanonicalJsonError>(())
/// ```
///
/// # Errors
/// [`CanonicalJsonError::UnsafeInteger`] for an integer outside `±(2^53 - 1)`,
/// [`CanonicalJsonError::NonFiniteNumber`] for NaN or an infinity.
pub fn to_canonical_json(value: &Value) -> Result<String, CanonicalJsonError> {
    let mut out = String::new();
    write_value(&mut out, value)?;
    Ok(out)
}

/// Serialises `value` with serde and returns its RFC 8785 canonical form.
///
/// # Errors
/// [`CanonicalJsonError::Serialize`] if serde cannot represent `value` as JSON (for example a map
/// with non-string keys), and the errors of [`to_canonical_json`].
pub fn serialize_canonical_json<T: Serialize + ?Sized>(
    value: &T,
) -> Result<String, CanonicalJsonError> {
    let value = serde_json::to_value(value).map_err(|err| CanonicalJsonError::Serialize {
        message: err.to_string(),
    })?;
    to_canonical_json(&value)
}

fn write_value(out: &mut String, value: &Value) -> Result<(), CanonicalJsonError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(out, number)?,
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(members) => write_object(out, members)?,
    }
    Ok(())
}

pub(crate) fn write_object(
    out: &mut String,
    members: &Map<String, Value>,
) -> Result<(), CanonicalJsonError> {
    let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
    sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    out.push('{');
    for (i, (key, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, value)?;
    }
    out.push('}');
    Ok(())
}

/// Checks that every number in `value` (at any depth) whose value is a whole number lies within
/// `±(2^53 - 1)`, however it is written: `9007199254740993`, `9.007199254740993e15` and `1e300`
/// alike. [`to_canonical_json`] refuses such integers only when they are held as integers, so a
/// rule stated on JSON values (as a JSON Schema `integer` range is) needs this check too; put
/// larger values in strings.
///
/// # Errors
/// [`CanonicalJsonError::UnsafeInteger`] for the first such number (saturated to `i128`).
pub fn check_safe_integers(value: &Value) -> Result<(), CanonicalJsonError> {
    match value {
        Value::Number(n) => {
            let unsafe_value = if let Some(u) = n.as_u64() {
                (u > MAX_SAFE_INTEGER).then_some(i128::from(u))
            } else if let Some(i) = n.as_i64() {
                (i.unsigned_abs() > MAX_SAFE_INTEGER).then_some(i128::from(i))
            } else {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() > MAX_SAFE_INTEGER as f64)
                    .map(|f| f as i128)
            };
            unsafe_value.map_or(Ok(()), |value| {
                Err(CanonicalJsonError::UnsafeInteger { value })
            })
        }
        Value::Array(items) => items.iter().try_for_each(check_safe_integers),
        Value::Object(map) => map.values().try_for_each(check_safe_integers),
        _ => Ok(()),
    }
}

pub(crate) fn write_number(out: &mut String, number: &Number) -> Result<(), CanonicalJsonError> {
    if let Some(n) = number.as_u64() {
        if n > MAX_SAFE_INTEGER {
            return Err(CanonicalJsonError::UnsafeInteger {
                value: i128::from(n),
            });
        }
        let _ = write!(out, "{n}");
    } else if let Some(n) = number.as_i64() {
        if n.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(CanonicalJsonError::UnsafeInteger {
                value: i128::from(n),
            });
        }
        let _ = write!(out, "{n}");
    } else {
        match number.as_f64() {
            Some(f) if f.is_finite() => out.push_str(ryu_js::Buffer::new().format_finite(f)),
            _ => return Err(CanonicalJsonError::NonFiniteNumber),
        }
    }
    Ok(())
}

pub(crate) fn write_string(out: &mut String, text: &str) {
    out.push('"');
    // Runs of characters that need no escape are copied whole. Every byte that needs one is
    // ASCII, so the run boundaries are character boundaries.
    let mut run = 0;
    for (i, byte) in text.bytes().enumerate() {
        // `Some`: a named escape; `None`: a control character without one, written `\u00xx`.
        let named = match byte {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.push_str(text.get(run..i).unwrap_or_default());
        match named {
            Some(escape) => out.push_str(escape),
            None => {
                let _ = write!(out, "\\u{:04x}", byte);
            }
        }
        run = i + 1;
    }
    out.push_str(text.get(run..).unwrap_or_default());
    out.push('"');
}

/// Why a JSON value has no RFC 8785 canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalJsonError {
    /// An integer outside `±(2^53 - 1)`: a double cannot hold it exactly, so its canonical form
    /// would silently differ from the value.
    #[error("integer {value} is outside the exact range of a double (±(2^53 - 1)); use a string")]
    UnsafeInteger {
        /// The integer.
        value: i128,
    },
    /// NaN or an infinity, which JSON cannot represent.
    #[error("json numbers must be finite")]
    NonFiniteNumber,
    /// serde could not turn the value into JSON.
    #[error("cannot serialise the value as json: {message}")]
    Serialize {
        /// serde_json's explanation.
        message: String,
    },
}

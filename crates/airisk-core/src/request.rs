//! What every call carries besides its arguments: the correlation id that ties a request, its log
//! lines and its audit records together.

use serde::{Deserialize, Serialize};

/// Longest correlation id, in bytes.
pub const CORRELATION_ID_MAX_LEN: usize = 128;

/// A correlation id: 1 to 128 characters of ASCII letters, digits and `.`, `_`, `-`, `:`.
///
/// Callers may send their own (an upstream trace id); otherwise [`CorrelationId::generate`] makes a
/// UUIDv7 one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CorrelationId(String);

impl CorrelationId {
    /// Validates `input`.
    ///
    /// # Errors
    /// [`CorrelationIdError`] naming the rule broken.
    pub fn parse(input: &str) -> Result<Self, CorrelationIdError> {
        if input.is_empty() {
            return Err(CorrelationIdError::Empty);
        }
        if input.len() > CORRELATION_ID_MAX_LEN {
            return Err(CorrelationIdError::TooLong {
                len: input.len(),
                max: CORRELATION_ID_MAX_LEN,
            });
        }
        if let Some(position) = input
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')))
            .map(|(i, _)| i)
        {
            return Err(CorrelationIdError::InvalidCharacter { position });
        }
        Ok(CorrelationId(input.to_owned()))
    }

    /// A fresh UUIDv7 correlation id.
    pub fn generate() -> Self {
        CorrelationId(uuid::Uuid::now_v7().to_string())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::newtype::string_newtype!(CorrelationId, CorrelationIdError);

/// Why a string is not a valid correlation id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorrelationIdError {
    /// Empty input.
    #[error("correlation id must not be empty")]
    Empty,
    /// Longer than [`CORRELATION_ID_MAX_LEN`].
    #[error("correlation id is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character outside `A-Z a-z 0-9 . _ - :`.
    #[error("correlation id has a character outside A-Z a-z 0-9 . _ - : at byte {position}")]
    InvalidCharacter {
        /// Byte offset of the first offending character.
        position: usize,
    },
}

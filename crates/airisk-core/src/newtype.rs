//! The shared plumbing of validated string newtypes (`TenantId`, `ActorId`, `EncryptionKeyId`, `Purpose`,
//! `LedgerName`, `Origin`, `ModelName`, …): one validator for the common "identifier" shape and
//! one macro for the conversions every such type has.

use crate::security::tenant_context::IdentifierError;

/// Checks an identifier: non-empty, at most `max` bytes, every character allowed by
/// `allowed_char`, and the first one a letter or digit.
///
/// # Errors
/// [`IdentifierError`] naming `kind` and the rule broken (`allowed` describes the set in words).
pub(crate) fn validate_identifier(
    kind: &'static str,
    input: &str,
    max: usize,
    allowed_char: impl Fn(char) -> bool,
    allowed: &'static str,
) -> Result<(), IdentifierError> {
    if input.is_empty() {
        return Err(IdentifierError::Empty { kind });
    }
    if input.len() > max {
        return Err(IdentifierError::TooLong {
            kind,
            len: input.len(),
            max,
        });
    }
    for (position, c) in input.char_indices() {
        if !(allowed_char(c) && (position > 0 || c.is_ascii_alphanumeric())) {
            return Err(IdentifierError::InvalidCharacter {
                kind,
                position,
                allowed,
            });
        }
    }
    Ok(())
}

/// Implements `Display`, `AsRef<str>`, `FromStr`, `TryFrom<String>` and `From<$ty> for String`
/// for a tuple newtype over `String` whose `parse(&str) -> Result<Self, $err>` validates.
macro_rules! string_newtype {
    ($ty:ident, $err:ty) => {
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl ::std::str::FromStr for $ty {
            type Err = $err;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::parse(s)
            }
        }
        impl TryFrom<String> for $ty {
            type Error = $err;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $ty::parse(&s)
            }
        }
        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.0
            }
        }
    };
}
pub(crate) use string_newtype;

/// Declares a validated name: a tuple newtype over `String` whose `parse` accepts 1 to `$max`
/// bytes of ASCII letters, digits and `.`, `_`, `-` (or the punctuation given after the length,
/// with its description in words), starting with a letter or digit, and reports an
/// [`InputError`](crate::input::InputError) naming `$what`; with the conversions of
/// [`string_newtype!`] and serde through `String` (so a stored value is re-validated on read, and
/// the type serializes as the plain string).
macro_rules! validated_name {
    ($(#[$doc:meta])* $ty:ident, $what:literal, $max:expr) => {
        crate::newtype::validated_name!(
            $(#[$doc])* $ty, $what, $max, '.' | '_' | '-', "'.', '_' and '-'"
        );
    };
    ($(#[$doc:meta])* $ty:ident, $what:literal, $max:expr, $($punct:literal)|+, $punct_words:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize,
        )]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            #[doc = concat!(
                "Validates `input`: 1 to the maximum length of ASCII letters, digits, ",
                $punct_words,
                ", starting with a letter or digit."
            )]
            ///
            /// # Errors
            /// [`InputError`](crate::input::InputError) naming the rule broken.
            pub fn parse(input: &str) -> Result<Self, crate::input::InputError> {
                if input.is_empty() {
                    return Err(crate::input::InputError::new($what, "must not be empty"));
                }
                if input.len() > $max {
                    return Err(crate::input::InputError::new($what, format!("is longer than {} bytes", $max)));
                }
                let ok = input.char_indices().all(|(i, c)| {
                    c.is_ascii_alphanumeric() || (i > 0 && matches!(c, $($punct)|+))
                });
                if !ok {
                    return Err(crate::input::InputError::new(
                        $what,
                        concat!(
                            "may hold only ASCII letters, digits, ",
                            $punct_words,
                            ", starting with a letter or digit"
                        ),
                    ));
                }
                Ok($ty(input.to_owned()))
            }
            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        crate::newtype::string_newtype!($ty, crate::input::InputError);
    };
}
pub(crate) use validated_name;

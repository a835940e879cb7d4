//! Data subjects: the person (a customer, an applicant) a sealed value is about, so that one
//! person's values can be erased without the tenant's (GDPR Art. 17).
//!
//! * [`DataSubject`] is the identifier a caller names (e.g. a customer id). It is validated and
//!   compared **byte for byte**: nothing is trimmed, case-folded or normalised, so `C-42` and
//!   `c-42` are two subjects. A caller whose identifiers are case-insensitive folds them before
//!   it names them. Its `Debug` never shows it, and it has no `Display`: it is personal data and
//!   never reaches a log or an error.
//! * [`SubjectPseudonym`] is what the kernel stores instead: `HMAC-SHA256(tenant pseudonym key,
//!   "airisk.subject.v1" 0x00 subject)`, as 64 lower-case hex digits. The key is a per-tenant
//!   random key kept, like a data key, only wrapped by the key-encryption key (kid `h…` in
//!   `data_keys`). A keyed hash and not a plain one because customer ids are few and guessable: a
//!   plain SHA-256 of `C-000001` … `C-999999` is a dictionary away from the identifier, while the
//!   keyed one needs the KEK to compute.

use std::fmt;

use ring::hmac;

use crate::input::InputError;

/// Longest data subject identifier, in bytes.
pub const DATA_SUBJECT_MAX_LEN: usize = 128;

/// The label hashed before the subject, so the pseudonym key's MAC of a subject can never be the
/// MAC of anything else the kernel computes.
const PSEUDONYM_LABEL: &[u8] = b"airisk.subject.v1\x00";

/// A data subject's identifier as a caller gives it: 1 to 128 visible ASCII characters
/// (`!` to `~`, no space, no control character), compared byte for byte.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DataSubject(String);

impl DataSubject {
    /// Validates `s` (see the type's rules). Nothing is trimmed or case-folded.
    ///
    /// # Errors
    /// [`InputError`] on the field `data subject`, which never repeats the input (it is personal
    /// data): empty, too long, or a character outside `!`..=`~` (named by position).
    pub fn parse(s: &str) -> Result<Self, InputError> {
        if s.is_empty() {
            return Err(InputError::new("data subject", "must not be empty"));
        }
        if s.len() > DATA_SUBJECT_MAX_LEN {
            return Err(InputError::new(
                "data subject",
                format!(
                    "is {} bytes; at most {DATA_SUBJECT_MAX_LEN} are allowed",
                    s.len()
                ),
            ));
        }
        if let Some(pos) = s.chars().position(|c| !c.is_ascii_graphic()) {
            return Err(InputError::new(
                "data subject",
                format!(
                    "has a character other than visible ASCII (! to ~) at position {}",
                    pos + 1
                ),
            ));
        }
        Ok(DataSubject(s.to_owned()))
    }

    /// The identifier (the one place it is exposed: to compute its pseudonym).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DataSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataSubject(<redacted>)")
    }
}

/// A data subject's pseudonym in its tenant: 64 lower-case hex digits of
/// `HMAC-SHA256(pseudonym key, "airisk.subject.v1" 0x00 subject)`. What `data_keys.subject`, the
/// associated data of the subject's sealed values and the `tenant.shred_subject` record hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SubjectPseudonym(String);

impl SubjectPseudonym {
    /// Computes the pseudonym of `subject` under the tenant's pseudonym key.
    pub fn compute(key: &[u8; 32], subject: &DataSubject) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(PSEUDONYM_LABEL);
        ctx.update(subject.expose().as_bytes());
        let tag = ctx.sign();
        SubjectPseudonym(tag.as_ref().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Reads a stored pseudonym.
    ///
    /// # Errors
    /// [`InputError`] unless `s` is exactly 64 lower-case hex digits.
    pub fn parse(s: &str) -> Result<Self, InputError> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(SubjectPseudonym(s.to_owned()))
        } else {
            Err(InputError::new(
                "subject pseudonym",
                "must be 64 lower-case hex digits",
            ))
        }
    }

    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubjectPseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for SubjectPseudonym {
    type Error = InputError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SubjectPseudonym::parse(&s)
    }
}

impl From<SubjectPseudonym> for String {
    fn from(p: SubjectPseudonym) -> Self {
        p.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure should stop loudly
mod tests {
    use super::*;

    #[test]
    fn subjects_are_case_exact_and_never_trimmed() {
        assert!(DataSubject::parse("C-42").unwrap() != DataSubject::parse("c-42").unwrap());
        for bad in [
            "",
            " C-42",
            "C-42 ",
            "C 42",
            "C-42\n",
            "Ç-42",
            &"x".repeat(129),
        ] {
            let err = DataSubject::parse(bad).unwrap_err();
            assert_eq!(err.field(), "data subject");
            assert!(bad.is_empty() || !err.to_string().contains(bad), "{err}");
        }
        assert!(DataSubject::parse(&"x".repeat(128)).is_ok());
        assert_eq!(
            format!("{:?}", DataSubject::parse("C-42").unwrap()),
            "DataSubject(<redacted>)"
        );
    }

    #[test]
    fn the_pseudonym_is_the_documented_hmac() {
        // HMAC-SHA256 over "airisk.subject.v1\0C-42" with the key 0x00..0x1f, computed
        // independently with Python's hmac module:
        // hmac.new(bytes(range(32)), b"airisk.subject.v1\x00C-42", "sha256").hexdigest()
        let key: [u8; 32] = core::array::from_fn(|i| u8::try_from(i).unwrap());
        let p = SubjectPseudonym::compute(&key, &DataSubject::parse("C-42").unwrap());
        assert_eq!(p.as_str(), PYTHON_HMAC);
        assert_eq!(SubjectPseudonym::parse(p.as_str()).unwrap(), p);
        assert!(SubjectPseudonym::parse(&p.as_str().to_uppercase()).is_err());
        let other = SubjectPseudonym::compute(&key, &DataSubject::parse("c-42").unwrap());
        assert_ne!(p, other);
    }

    const PYTHON_HMAC: &str = "b82fd5a406a4089fd8d85e822cbf25e407bd6ccbd9d6a838aa2db48f935ab6a3";
}

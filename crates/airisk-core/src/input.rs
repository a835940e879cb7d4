//! Input errors: which field of a command broke which rule. The validated types (`ModelName`,
//! `Sha256Digest`, …) and the services' input checks report this one type, so a caller can tell
//! the field from the problem without parsing a message.

/// An input that breaks a rule; nothing was written. Its message is the field followed by the
/// problem, e.g. `model name must not be empty`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct InputError {
    field: &'static str,
    problem: String,
}

impl InputError {
    /// `field` breaks a rule; `problem` says which, as the rest of a sentence that starts with
    /// the field (`must not be empty`).
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        InputError {
            field,
            problem: problem.into(),
        }
    }

    /// The field, as a reader names it (`model name`, `justification`, `artifact_uri`).
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

//! How PostgreSQL's failures become the core's [`StoreError`], and the errors of connecting and
//! migrating.

use airisk_core::ports::StoreError;

/// Why [`PostgresStore::connect`](crate::PostgresStore::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The connection URL did not parse.
    #[error("invalid database url: {message}")]
    InvalidUrl {
        /// The parser's reason (never the URL, which may hold a password).
        message: String,
    },
    /// The server could not be reached, or refused the login.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The schema is not there: run `airisk migrate` (or [`crate::migrate`]) first.
    #[error("the airisk schema is missing from this database; run `airisk migrate` first")]
    SchemaMissing,
    /// The login can bypass row-level security (superuser, BYPASSRLS, or a member of the tables'
    /// owner), so the database would not keep tenants apart. Connect as a member of
    /// `airisk_app`, or set [`PostgresOptions::dangerous_allow_privileged_role`](crate::PostgresOptions).
    #[error(
        "role {role} bypasses row-level security ({why}); connect as a login that is a member of \
         airisk_app only (docs/OPERATIONS.md)"
    )]
    PrivilegedRole {
        /// The connected role.
        role: String,
        /// Which privilege it holds.
        why: &'static str,
    },
}

/// Why [`migrate`](crate::migrate) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The connection URL did not parse.
    #[error("invalid database url: {message}")]
    InvalidUrl {
        /// The parser's reason.
        message: String,
    },
    /// The server could not be reached, or refused the login.
    #[error("cannot connect to run migrations: {message}")]
    Connect {
        /// The driver's reason.
        message: String,
    },
    /// A migration failed (it was rolled back), or the database holds a migration this build does
    /// not know (it was migrated by a newer build), or a applied migration's checksum changed.
    #[error("migration failed: {message}")]
    Migration {
        /// The driver's reason.
        message: String,
    },
}

/// Maps a driver error onto the core's store error, with a short context.
pub(crate) fn map(e: &sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            let message = db.message().to_owned();
            match code {
                // unique_violation: realworld's `on_constraint`, by constraint name.
                "23505" => on_constraint(db.constraint().unwrap_or(""), message),
                // insufficient_privilege (also "new row violates row-level security policy"),
                // raise_exception (the append-only triggers), check_violation, not_null_violation.
                "42501" | "P0001" | "23514" | "23502" => StoreError::Refused { message },
                _ => StoreError::Unavailable {
                    message: format!("postgres error {code}: {message}"),
                },
            }
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt {
            message: format!("unreadable row: {e}"),
        },
        other => StoreError::Unavailable {
            message: other.to_string(),
        },
    }
}

/// A unique violation, in words.
fn on_constraint(constraint: &str, message: String) -> StoreError {
    let what = match constraint {
        "approval_requests_pkey" => "approval request exists",
        "model_versions_pkey" => "model version exists",
        "prompt_versions_pkey" => "prompt version exists",
        "prompt_labels_pkey" => "label exists (it moved since it was read)",
        "label_moves_pkey" => "label move exists",
        "audit_checkpoints_pkey" => "a checkpoint of that size exists",
        // Rows at or beyond the locked head: the head and the rows disagree.
        "audit_entries_pkey" | "audit_nodes_pkey" => {
            return StoreError::Corrupt {
                message: format!("the ledger holds rows beyond its tree head ({message})"),
            };
        }
        _ => {
            return StoreError::Conflict {
                what: format!("unique constraint {constraint}"),
            };
        }
    };
    StoreError::Conflict {
        what: what.to_owned(),
    }
}

/// A stored value that does not fit its Rust type.
pub(crate) fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        message: message.into(),
    }
}

/// A `u64` as a PostgreSQL `bigint`.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Refused {
        message: format!("{what} {value} does not fit a bigint"),
    })
}

/// A PostgreSQL `bigint` as a `u64`.
pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(format!("stored {what} {value} is negative")))
}

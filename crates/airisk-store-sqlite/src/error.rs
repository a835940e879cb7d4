//! Errors: what opening a store can fail with, and how SQLite's errors map onto [`StoreError`].

use std::path::PathBuf;

use airisk_core::ports::StoreError;
use rusqlite::ffi;

/// The message every append-only trigger raises.
pub(crate) const APPEND_ONLY: &str = "audit ledger is append-only";

/// Why [`crate::SqliteStore::open`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The location is not something this store can open (for example `:memory:`, which the
    /// reader connections could not share with the writer).
    #[error("cannot open sqlite location {location:?}: {reason}")]
    InvalidLocation {
        /// The location as given.
        location: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The database file's directory could not be created.
    #[error("cannot create directory {}: {message}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's reason.
        message: String,
    },
    /// The database file could not be created with owner-only permissions.
    #[error("cannot create database file {}: {message}", path.display())]
    CreateFile {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        message: String,
    },
    /// The database was migrated by a newer version of this crate; this one does not know its
    /// schema and refuses to touch it.
    #[error(
        "database schema version {found} is newer than this build supports ({supported}); upgrade the binary"
    )]
    NewerSchema {
        /// The newest migration recorded in the database.
        found: i64,
        /// The newest migration this build carries.
        supported: i64,
    },
    /// A migration failed; it was rolled back and the database is as it was.
    #[error("migration {version} ({name}) failed: {message}")]
    Migration {
        /// The migration's version number.
        version: i64,
        /// Its file name.
        name: &'static str,
        /// SQLite's reason.
        message: String,
    },
    /// The database could not be opened or configured.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Store(inner) => inner,
            OpenError::NewerSchema { .. } | OpenError::Migration { .. } => StoreError::Refused {
                message: e.to_string(),
            },
            other => StoreError::Unavailable {
                message: other.to_string(),
            },
        }
    }
}

impl From<rusqlite::Error> for OpenError {
    fn from(e: rusqlite::Error) -> Self {
        OpenError::Store(map_sqlite(&e))
    }
}

/// Maps a SQLite error onto the port's error: a trigger's refusal is [`StoreError::Refused`], a
/// uniqueness clash [`StoreError::Conflict`], a damaged file [`StoreError::Corrupt`], and
/// everything else (busy, I/O, full disk, misuse) [`StoreError::Unavailable`].
pub(crate) fn map_sqlite(e: &rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(err, message) => {
            let message = message.clone().unwrap_or_else(|| err.to_string());
            match err.code {
                ffi::ErrorCode::ConstraintViolation
                    if err.extended_code == ffi::SQLITE_CONSTRAINT_TRIGGER
                        || message.contains(APPEND_ONLY) =>
                {
                    StoreError::Refused { message }
                }
                ffi::ErrorCode::ConstraintViolation
                    if err.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                        || err.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE =>
                {
                    StoreError::Conflict { what: message }
                }
                ffi::ErrorCode::ConstraintViolation => StoreError::Refused { message },
                ffi::ErrorCode::DatabaseCorrupt | ffi::ErrorCode::NotADatabase => {
                    StoreError::Corrupt { message }
                }
                _ => StoreError::Unavailable { message },
            }
        }
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt {
            message: e.to_string(),
        },
        other => StoreError::Unavailable {
            message: other.to_string(),
        },
    }
}

/// A stored value that does not decode.
pub(crate) fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        message: message.into(),
    }
}

/// A `u64` as SQLite's `INTEGER` (`i64`); values beyond `i64::MAX` cannot be stored.
pub(crate) fn to_sql_int(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Refused {
        message: format!("{what} {value} exceeds the largest storable integer"),
    })
}

/// A stored `INTEGER` that must be non-negative.
pub(crate) fn from_sql_int(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(format!("stored {what} {value} is negative")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!("../migrations/0001_audit_ledger.sql"))
            .unwrap();
        conn.execute(
            "INSERT INTO audit_entries (tenant_id, seq, leaf, leaf_hash) VALUES ('acme', 0, x'00', zeroblob(32))",
            [],
        )
        .unwrap();
        conn
    }

    #[test]
    fn a_trigger_refusal_is_refused_with_the_databases_reason() {
        let conn = ledger();
        let err = conn.execute("DELETE FROM audit_entries", []).unwrap_err();
        assert_eq!(
            map_sqlite(&err),
            StoreError::Refused {
                message: APPEND_ONLY.to_owned()
            }
        );
    }

    #[test]
    fn a_key_clash_is_a_conflict_and_a_bad_value_is_refused() {
        let conn = ledger();
        conn.execute_batch("DROP TRIGGER audit_entries_no_replace")
            .unwrap();
        let clash = conn
            .execute(
                "INSERT INTO audit_entries (tenant_id, seq, leaf, leaf_hash) VALUES ('acme', 0, x'00', zeroblob(32))",
                [],
            )
            .unwrap_err();
        assert!(matches!(map_sqlite(&clash), StoreError::Conflict { .. }));
        let check = conn
            .execute(
                "INSERT INTO audit_entries (tenant_id, seq, leaf, leaf_hash) VALUES ('acme', 1, x'00', x'00')",
                [],
            )
            .unwrap_err();
        assert!(matches!(map_sqlite(&check), StoreError::Refused { .. }));
    }

    #[test]
    fn integers_beyond_sqlite_range_are_refused_not_wrapped() {
        assert_eq!(to_sql_int(7, "seq"), Ok(7));
        assert!(matches!(
            to_sql_int(u64::MAX, "seq"),
            Err(StoreError::Refused { .. })
        ));
        assert!(matches!(
            from_sql_int(-1, "seq"),
            Err(StoreError::Corrupt { .. })
        ));
    }
}

//! Where the database is, how its connections are configured, and its embedded migrations.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::OpenError;

/// The schema, one plain SQL file per version, applied in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_audit_ledger.sql",
        include_str!("../migrations/0001_audit_ledger.sql"),
    ),
    (
        2,
        "0002_governance.sql",
        include_str!("../migrations/0002_governance.sql"),
    ),
    (
        3,
        "0003_idempotency.sql",
        include_str!("../migrations/0003_idempotency.sql"),
    ),
    (
        4,
        "0004_data_keys.sql",
        include_str!("../migrations/0004_data_keys.sql"),
    ),
    (
        5,
        "0005_webhook_deliveries.sql",
        include_str!("../migrations/0005_webhook_deliveries.sql"),
    ),
    (
        6,
        "0006_data_key_subjects.sql",
        include_str!("../migrations/0006_data_key_subjects.sql"),
    ),
    (
        7,
        "0007_seal_existing_prompts.sql",
        include_str!("../migrations/0007_seal_existing_prompts.sql"),
    ),
];

/// Every schema version this build knows, in order (numbers may skip: a number is reserved by
/// the branch that adds its file).
pub(crate) fn schema_versions() -> Vec<i64> {
    MIGRATIONS.iter().map(|(v, _, _)| *v).collect()
}

/// The newest schema version this build knows.
pub(crate) fn latest_schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |(v, _, _)| *v)
}

/// Turns `sqlite://path`, `sqlite:path` or a plain path into a file path.
///
/// `sqlite:///abs/file.db` is an absolute path and `sqlite://data/file.db` a relative one (as
/// sqlx reads them); a `?query` suffix (sqlx's `?mode=rwc`) is ignored: the file is always
/// created. In-memory databases are refused: the reader connections must see the writer's data.
pub(crate) fn parse_location(location: &str) -> Result<PathBuf, OpenError> {
    let invalid = |reason| OpenError::InvalidLocation {
        location: location.to_owned(),
        reason,
    };
    let rest = location
        .strip_prefix("sqlite://")
        .or_else(|| location.strip_prefix("sqlite:"));
    let path = match rest {
        Some(rest) => rest.split_once('?').map_or(rest, |(path, _)| path),
        None => location,
    };
    if path.is_empty() {
        return Err(invalid("no file path given"));
    }
    if path == ":memory:" || path.starts_with("file:") || path.contains("mode=memory") {
        return Err(invalid(
            "in-memory and URI databases are not supported: readers must share the writer's file; use a temporary file",
        ));
    }
    Ok(PathBuf::from(path))
}

/// Creates the file's directory if needed; directories this creates are `0700` on Unix (the
/// ledger's directory is nobody else's business either).
pub(crate) fn ensure_parent_dir(path: &Path) -> Result<(), OpenError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).map_err(|e| OpenError::CreateDir {
                path: dir.to_owned(),
                message: e.to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// Owner read and write only: the mode of the database file, and so of its `-wal` and `-shm`
/// files, which SQLite's Unix VFS creates with the database file's permissions (and sets them
/// explicitly, so the umask does not loosen them).
#[cfg(unix)]
const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates the database file, if it does not exist yet, with mode `0600` whatever the umask
/// (created `0600`, then set to `0600` explicitly, before SQLite ever opens it). An existing file
/// keeps its mode; a file others may read is reported in the log, since the ledger and sealed
/// governance state are in it.
pub(crate) fn create_private_file(path: &Path) -> Result<(), OpenError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let failed = |e: std::io::Error| OpenError::CreateFile {
            path: path.to_owned(),
            message: e.to_string(),
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_FILE_MODE)
            .open(path)
        {
            Ok(file) => file
                .set_permissions(std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))
                .map_err(failed)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Ok(meta) = std::fs::metadata(path)
                    && meta.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(
                        path = %path.display(),
                        mode = format!("{:o}", meta.permissions().mode() & 0o777),
                        "the database file is readable or writable by others; its -wal and -shm files will be too (chmod 600 it)"
                    );
                }
            }
            Err(e) => return Err(failed(e)),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Opens (creating if needed) the writer connection: WAL, `synchronous=FULL`, foreign keys,
/// a busy timeout, and a page cache large enough that the hot right edge of every index stays in
/// memory, small enough that commits do not walk a large cache.
pub(crate) fn open_writer(path: &Path, busy_timeout: Duration) -> Result<Connection, OpenError> {
    create_private_file(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Store(
            airisk_core::ports::StoreError::Unavailable {
                message: format!("the database refused WAL mode (journal_mode is {mode})"),
            },
        ));
    }
    // FULL: the WAL is fsynced at every commit, so a receipt means the record is on disk.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // 8 MiB of page cache (negative = KiB): bounded, so memory stays flat as the file grows. The
    // writer's working set is small (the right edges of the append-only ledger tables, the
    // governance tables' upper levels), and a larger cache costs time at commits: when an insert
    // splits a B-tree page and reorders the new pages, SQLite parks one of them under the lock
    // page's number, and the next COMMIT of a file under 1 GiB then walks every cached page
    // (`pcache1TruncateUnsafe`). With 32 MiB that walk was 3.8% of the server's CPU in the
    // register+approve benchmark and the server's RSS 61 MiB; with 8 MiB 1.4% and 34 MiB.
    conn.pragma_update(None, "cache_size", -8_192)?;
    // Savepoint sub-journals (one per request of a multi-request batch) stay in memory instead of
    // spilling to a temporary file; they hold at most the pages one request touched.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Opens a read-only connection to an existing database (WAL lets it read while the writer
/// writes).
pub(crate) fn open_reader(
    path: &Path,
    busy_timeout: Duration,
) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -16_384)?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}

/// The settings a connection actually runs with, read back from that connection with `PRAGMA`
/// queries (not the values the code meant to set). For tests: `synchronous` and `journal_mode`
/// carry the durability promise ("a receipt means the record is on disk").
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// `"writer"` or `"reader"`.
    pub role: &'static str,
    /// `PRAGMA journal_mode` (lower case).
    pub journal_mode: String,
    /// `PRAGMA synchronous`: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
    pub synchronous: i64,
    /// `PRAGMA foreign_keys`.
    pub foreign_keys: bool,
    /// `PRAGMA busy_timeout`, in milliseconds.
    pub busy_timeout_ms: i64,
    /// Whether the connection was opened read-only.
    pub read_only: bool,
    /// `PRAGMA cache_size` (negative: KiB).
    pub cache_size: i64,
}

/// Reads `conn`'s effective settings.
pub(crate) fn read_settings(
    conn: &Connection,
    role: &'static str,
) -> Result<ConnectionSettings, rusqlite::Error> {
    let int =
        |pragma: &str| conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get::<_, i64>(0));
    Ok(ConnectionSettings {
        role,
        journal_mode: conn
            .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))?
            .to_ascii_lowercase(),
        synchronous: int("synchronous")?,
        foreign_keys: int("foreign_keys")? == 1,
        busy_timeout_ms: int("busy_timeout")?,
        read_only: conn.is_readonly(rusqlite::MAIN_DB)?,
        cache_size: int("cache_size")?,
    })
}

/// Applies every migration the database lacks, all in one `IMMEDIATE` transaction (so two
/// processes opening a new file at once cannot both migrate it), and records each in
/// `schema_migrations`.
///
/// # Errors
/// [`OpenError::NewerSchema`] if the database knows a migration this build does not;
/// [`OpenError::Migration`] if one fails (nothing is applied).
pub(crate) fn migrate(conn: &mut Connection, now: &str) -> Result<(), OpenError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER NOT NULL PRIMARY KEY,
             name       TEXT    NOT NULL,
             applied_at TEXT    NOT NULL
         );",
    )?;
    let current: i64 = tx
        .query_row("SELECT max(version) FROM schema_migrations", [], |row| {
            row.get::<_, Option<i64>>(0)
        })
        .optional()?
        .flatten()
        .unwrap_or(0);
    let supported = latest_schema_version();
    if current > supported {
        return Err(OpenError::NewerSchema {
            found: current,
            supported,
        });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        let failed = |e: rusqlite::Error| OpenError::Migration {
            version: *version,
            name,
            message: e.to_string(),
        };
        tx.execute_batch(sql).map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, now],
        )
        .map_err(failed)?;
        tracing::info!(version, name, "applied sqlite migration");
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "airisk-sqlite-connection-{name}-{}",
                uuid::Uuid::now_v7().simple()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_file_that_cannot_be_created_is_an_error_that_names_it() {
        let scratch = Scratch::new("missing");
        let path = scratch.0.join("no-such-directory").join("audit.db");
        match create_private_file(&path) {
            Err(OpenError::CreateFile { path: named, .. }) => assert_eq!(named, path),
            other => panic!("{other:?}"),
        }
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_file_others_can_read_is_reported_and_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = Scratch::new("modes");
        let logged = |path: &Path| {
            let logs = airisk_testkit::log_capture::CapturedLogs::new();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(logs.writer())
                .with_ansi(false)
                .finish();
            tracing::subscriber::with_default(subscriber, || create_private_file(path).unwrap());
            logs.text()
        };
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        for (name, bits, reported) in [
            ("private.db", 0o600, false),
            ("owner-only-read.db", 0o400, false),
            ("group.db", 0o640, true),
            ("world.db", 0o604, true),
            ("group-write.db", 0o620, true),
        ] {
            let path = scratch.0.join(name);
            std::fs::write(&path, b"").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bits)).unwrap();
            let text = logged(&path);
            assert_eq!(
                text.contains("readable or writable by others"),
                reported,
                "{name} ({bits:o}): {text:?}"
            );
            if reported {
                assert!(text.contains(&format!("{bits:o}")), "{text}");
            }
            assert_eq!(mode(&path), bits, "{name}: an existing file keeps its mode");
        }
    }

    #[test]
    fn locations_in_every_accepted_spelling_name_the_same_file() {
        assert_eq!(
            parse_location("sqlite:///var/lib/airisk/audit.db").unwrap(),
            PathBuf::from("/var/lib/airisk/audit.db")
        );
        assert_eq!(
            parse_location("sqlite://data/audit.db?mode=rwc").unwrap(),
            PathBuf::from("data/audit.db")
        );
        assert_eq!(
            parse_location("sqlite:audit.db").unwrap(),
            PathBuf::from("audit.db")
        );
        assert_eq!(
            parse_location("/tmp/x/audit.db").unwrap(),
            PathBuf::from("/tmp/x/audit.db")
        );
    }

    #[test]
    fn in_memory_and_empty_locations_are_refused() {
        for bad in [
            ":memory:",
            "sqlite::memory:",
            "sqlite://",
            "",
            "file:x?mode=memory",
        ] {
            assert!(
                matches!(parse_location(bad), Err(OpenError::InvalidLocation { .. })),
                "{bad}"
            );
        }
    }
}

//! The composition root's store opener: one database URL names the store behind every port.
//!
//! * `sqlite://path` (or `sqlite:path`): the embedded default, one file;
//! * `postgres://…` / `postgresql://…`: PostgreSQL as the application's login (a member of
//!   `airisk_app`; run `airisk migrate` as the schema owner first);
//! * `memory:`: the in-memory store, not durable (dev mode and tests).
//!
//! A database URL may carry a password, as `user:password@` or as a `password=` (or
//! `sslpassword=`) parameter. [`has_password`] finds either, so the command line can refuse such a
//! URL (the process list shows every argument; the environment, `~/.pgpass` or a file do not), and
//! [`redact_url`] is the one function everything that prints a URL goes through.

use std::sync::Arc;

use airisk_core::ports::Clock;
use airisk_server::Stores;
use anyhow::{Context, bail};

/// The URL of the in-memory store.
pub const MEMORY_URL: &str = "memory:";

/// Opens the stores `url` names (one object behind both ports), stamping records with `clock`.
///
/// # Errors
/// An unknown scheme, or a store that cannot be opened (with the reason).
pub async fn open(url: &str, clock: Arc<dyn Clock>) -> anyhow::Result<Stores> {
    if url == MEMORY_URL {
        let store = Arc::new(airisk_store_memory::InMemoryStore::new(clock));
        return Ok(Stores {
            audit: store.clone(),
            governance: store,
        });
    }
    if url.starts_with("sqlite:") {
        let location = url.to_owned();
        let mut options = airisk_store_sqlite::SqliteOptions::default();
        if let Some(bytes) = scan_mmap_bytes(std::env::var(SCAN_MMAP_ENV).ok().as_deref())? {
            options.scan_mmap_bytes = bytes;
        }
        // Opening migrates the file and starts the writer thread: blocking work.
        let store = tokio::task::spawn_blocking(move || {
            airisk_store_sqlite::SqliteStore::open_with(&location, clock, options)
        })
        .await
        .context("the store opener panicked")?
        .with_context(|| format!("could not open the SQLite store at {}", redact_url(url)))?;
        let store = Arc::new(store);
        return Ok(Stores {
            audit: store.clone(),
            governance: store,
        });
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = airisk_store_postgres::PostgresStore::connect(
            url,
            clock,
            airisk_store_postgres::PostgresOptions::default(),
        )
        .await
        .context("could not connect to the PostgreSQL store (as the application's login; run `airisk migrate` as the owner first)")?;
        let store = Arc::new(store);
        return Ok(Stores {
            audit: store.clone(),
            governance: store,
        });
    }
    bail!("unsupported database URL: use sqlite://path, postgres://… or {MEMORY_URL}")
}

/// The environment variable that sets how much of a SQLite file a whole-ledger scan maps into
/// memory ([`airisk_store_sqlite::SqliteOptions::scan_mmap_bytes`]; `0` turns mapping off).
pub const SCAN_MMAP_ENV: &str = "AIRISK_SQLITE_SCAN_MMAP_BYTES";

/// The value of [`SCAN_MMAP_ENV`], if set: a whole number of bytes.
///
/// # Errors
/// Anything but digits (a unit, a sign, an empty value), with the variable's name.
fn scan_mmap_bytes(value: Option<&str>) -> anyhow::Result<Option<u64>> {
    value
        .map(|v| {
            v.trim().parse::<u64>().with_context(|| {
                format!("{SCAN_MMAP_ENV} must be a whole number of bytes (0 turns mapping off), not {v:?}")
            })
        })
        .transpose()
}

/// Whether `url` carries a secret: a password in its user information (`user:password@host`, an
/// empty one included), or a parameter whose name ends in `password` (`password`,
/// `sslpassword`), in any case and percent-encoded or not, in the query string of a URL or in a
/// libpq `key=value` connection string.
///
/// Where a URL is ambiguous (an `@` further on than a well-formed URL would have it), the part
/// before its last `@` counts as user information: better a false alarm than a password let
/// through.
pub fn has_password(url: &str) -> bool {
    match url.split_once("://") {
        Some((_, rest)) => {
            userinfo_end(rest).is_some_and(|at| rest.get(..at).is_some_and(|u| u.contains(':')))
                || query_pairs(rest).any(|(key, _)| is_password_key(key))
        }
        None => keyword_pairs(url).any(|(key, _)| is_password_key(key)),
    }
}

/// `url` with every password replaced by `***`: the password of the user information (the user
/// name stays), and the value of every `…password` parameter. Anything else is unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // A libpq `key=value` string, or something without a scheme (`memory:`, `sqlite:x`).
        let mut out = url.to_owned();
        for (key, value) in keyword_pairs(url).collect::<Vec<_>>().into_iter().rev() {
            if is_password_key(key) {
                out.replace_range(value, "***");
            }
        }
        return out;
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    out.push_str("://");
    let tail = match userinfo_end(rest) {
        Some(at) => {
            let userinfo = rest.get(..at).unwrap_or_default();
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            rest.get(at..).unwrap_or_default()
        }
        None => rest,
    };
    let Some(q) = tail.find('?') else {
        out.push_str(tail);
        return out;
    };
    out.push_str(tail.get(..=q).unwrap_or_default());
    let query = tail.get(q + 1..).unwrap_or_default();
    let (query, fragment) = match query.find('#') {
        Some(h) => (
            query.get(..h).unwrap_or_default(),
            query.get(h..).unwrap_or_default(),
        ),
        None => (query, ""),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_password_key(key) => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    out.push_str(&pairs.join("&"));
    out.push_str(fragment);
    out
}

/// Where the user information of the part after `scheme://` ends: its last `@`.
fn userinfo_end(rest: &str) -> Option<usize> {
    rest.rfind('@')
}

/// The `key=value` pairs of the query string of the part after `scheme://` (the part after the
/// last `@`, so a `?` inside a password is not taken for the query).
fn query_pairs(rest: &str) -> impl Iterator<Item = (&str, &str)> {
    let after_userinfo = userinfo_end(rest).map_or(rest, |at| rest.get(at..).unwrap_or_default());
    let query = after_userinfo
        .split_once('?')
        .map_or("", |(_, q)| q.split('#').next().unwrap_or_default());
    query.split('&').filter_map(|pair| pair.split_once('='))
}

/// The keys and value ranges of a libpq `key = value` connection string (values may be quoted
/// with `'…'`, with `\'` and `\\` escapes).
fn keyword_pairs(s: &str) -> impl Iterator<Item = (&str, std::ops::Range<usize>)> {
    let bytes = s.as_bytes();
    let mut pairs = Vec::new();
    let mut i = 0;
    let skip_spaces = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    loop {
        i = skip_spaces(i);
        let key_start = i;
        while bytes
            .get(i)
            .is_some_and(|b| !b.is_ascii_whitespace() && *b != b'=')
        {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let key = s.get(key_start..i).unwrap_or_default();
        i = skip_spaces(i);
        if bytes.get(i) != Some(&b'=') {
            continue;
        }
        i = skip_spaces(i + 1);
        let value_start = i;
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
            while let Some(b) = bytes.get(i) {
                match b {
                    b'\\' => i += 2,
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
        } else {
            while bytes.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
                i += 1;
            }
        }
        let end = i.min(bytes.len());
        pairs.push((key, value_start..end));
    }
    pairs.into_iter()
}

/// Whether a parameter name (percent-encoded or not, any case) names a password.
fn is_password_key(key: &str) -> bool {
    let mut decoded = Vec::with_capacity(key.len());
    let bytes = key.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                decoded.push(v);
                i += 3;
            }
            (b'+', _) => {
                decoded.push(b' ');
                i += 1;
            }
            _ => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded)
        .trim()
        .to_ascii_lowercase()
        .ends_with("password")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_mapping_size_is_a_plain_byte_count() {
        assert_eq!(scan_mmap_bytes(None).unwrap(), None);
        assert_eq!(scan_mmap_bytes(Some("0")).unwrap(), Some(0));
        assert_eq!(
            scan_mmap_bytes(Some(" 268435456 ")).unwrap(),
            Some(268_435_456)
        );
        for bad in ["", "1GiB", "-1", "1e9", "0x100"] {
            let e = scan_mmap_bytes(Some(bad)).unwrap_err().to_string();
            assert!(
                e.contains(SCAN_MMAP_ENV) && e.contains("whole number"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn passwords_in_user_information_are_found_and_redacted() {
        for (url, redacted) in [
            (
                "postgres://app:s3cret@db:5432/airisk",
                "postgres://app:***@db:5432/airisk",
            ),
            (
                "postgresql://owner:s3cret@db/airisk?sslmode=require",
                "postgresql://owner:***@db/airisk?sslmode=require",
            ),
            ("postgres://app:@db/airisk", "postgres://app:***@db/airisk"),
            // A password holding `@`, `/`, `?` or `:` is still taken whole.
            (
                "postgres://app:p@ss/w?rd:x@db/airisk",
                "postgres://app:***@db/airisk",
            ),
        ] {
            assert!(has_password(url), "{url}");
            assert_eq!(redact_url(url), redacted);
        }
    }

    #[test]
    fn password_parameters_are_found_and_redacted_in_any_case() {
        for (url, redacted) in [
            (
                "postgres://app@db/airisk?password=s3cret",
                "postgres://app@db/airisk?password=***",
            ),
            (
                "postgres://db/airisk?sslmode=require&PassWord=s3cret&application_name=x",
                "postgres://db/airisk?sslmode=require&PassWord=***&application_name=x",
            ),
            (
                "postgres://db/airisk?pass%77ord=s3cret#frag",
                "postgres://db/airisk?pass%77ord=***#frag",
            ),
            (
                "postgres://db/airisk?sslpassword=s3cret",
                "postgres://db/airisk?sslpassword=***",
            ),
            (
                "sqlite://x.db?password=s3cret",
                "sqlite://x.db?password=***",
            ),
            (
                "host=db user=app password=s3cret dbname=airisk",
                "host=db user=app password=*** dbname=airisk",
            ),
            (
                "host=db PASSWORD = 's3 cr\\'et' dbname=airisk",
                "host=db PASSWORD = *** dbname=airisk",
            ),
        ] {
            assert!(has_password(url), "{url}");
            assert_eq!(redact_url(url), redacted, "{url}");
            assert!(!redact_url(url).contains("s3"), "{url}");
        }
    }

    #[test]
    fn urls_without_a_password_pass_unchanged() {
        for url in [
            "postgres://owner@db:5432/airisk",
            "postgres://db/airisk?options=a:b",
            "postgres:///airisk",
            "postgres://db/airisk?passfile=/run/secrets/pgpass",
            "sqlite://airisk-data/a.db",
            "sqlite:airisk.db",
            "memory:",
            "host=db user=app dbname=airisk",
        ] {
            assert!(!has_password(url), "{url}");
            assert_eq!(redact_url(url), url);
        }
    }
}

//! One module per top-level command.

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};

pub mod audit;
pub mod auth;
pub mod crypto;
pub mod hsm;
pub mod integrations;
pub mod keys;
pub mod migrate;
pub mod serve;
pub mod tenant;
pub mod token;

/// Arguments that carry secrets, with their environment variable. They may come from the
/// environment only: on the command line every user of the machine could read them in the process
/// list.
const SECRET_ARGS: &[(&str, &str)] = &[
    ("keys", "AIRISK_ENCRYPTION_KEYS"),
    ("signing_key", "AIRISK_LEDGER_SIGNING_KEY"),
    ("jwt_secret", "AIRISK_JWT_SECRET"),
    ("token", "AIRISK_TOKEN"),
];

/// Arguments that take a database URL, with the environment variable that may carry it. A URL
/// with a password (`user:password@`, or a `password=` parameter) is refused on the command line;
/// from the environment, a configuration file or `~/.pgpass` it is accepted.
const DATABASE_URL_ARGS: &[&str] = &["database_url"];

/// Fails with a usage error (exit code 2) if a secret argument, or a database URL carrying a
/// password, was given on the command line, at any level of subcommands.
pub fn refuse_secrets_on_command_line(matches: &ArgMatches) -> Result<(), clap::Error> {
    let root = crate::Cli::command();
    let mut current = Some((matches, Some(&root)));
    while let Some((m, command)) = current {
        for (id, var) in SECRET_ARGS {
            // `try_contains_id`, not `ids()`: a global argument can be listed where it is not
            // defined, and asking for its source there panics.
            let present = matches!(m.try_contains_id(id), Ok(true));
            if present && m.value_source(id) == Some(ValueSource::CommandLine) {
                return Err(crate::Cli::command().error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "--{} is not accepted on the command line, where other users can read it \
                         in the process list; set {var} in the environment instead",
                        id.replace('_', "-")
                    ),
                ));
            }
        }
        if let Some((id, url)) = database_url_with_password(m) {
            // The variable the command itself reads this URL from (`migrate`: the owner's).
            let var = command
                .and_then(|c| c.get_arguments().find(|a| a.get_id() == id))
                .and_then(|a| a.get_env())
                .map_or_else(
                    || "AIRISK_DATABASE_URL".to_owned(),
                    |v| v.to_string_lossy().into_owned(),
                );
            return Err(crate::Cli::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "--database-url {} holds a password, which other users can read in the \
                     process list; pass the URL through {var} (or a configuration file), or the \
                     password through PGPASSWORD or ~/.pgpass",
                    crate::store::redact_url(&url)
                ),
            ));
        }
        current = m
            .subcommand()
            .map(|(name, sub)| (sub, command.and_then(|c| c.find_subcommand(name))));
    }
    Ok(())
}

/// A database URL given on the command line (any argument named `database_url`) that carries a
/// password: the argument's id and the URL.
fn database_url_with_password(m: &ArgMatches) -> Option<(&'static str, String)> {
    for id in DATABASE_URL_ARGS {
        if !matches!(m.try_contains_id(id), Ok(true))
            || m.value_source(id) != Some(ValueSource::CommandLine)
        {
            continue;
        }
        let url = m
            .get_raw(id)
            .into_iter()
            .flatten()
            .map(|v| v.to_string_lossy().into_owned())
            .find(|url| crate::store::has_password(url));
        if let Some(url) = url {
            return Some((id, url));
        }
    }
    None
}

/// The runtime an offline command (`audit`, `keys`, `tenant`) runs its store work on: two
/// worker threads, I/O and timers enabled.
///
/// # Errors
/// The OS refusing the threads.
pub(crate) fn store_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start the async runtime")
}

//! One module per top-level command.

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};

pub mod audit;
pub mod crypto;
pub mod integrations;
pub mod keys;
pub mod migrate;
pub mod serve;
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

/// Fails with a usage error (exit code 2) if a secret argument was given on the command line, at
/// any level of subcommands.
pub fn refuse_secrets_on_command_line(matches: &ArgMatches) -> Result<(), clap::Error> {
    let mut current = Some(matches);
    while let Some(m) = current {
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
        current = m.subcommand().map(|(_, sub)| sub);
    }
    Ok(())
}

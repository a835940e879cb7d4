//! `airisk`: the operator's command line. This file only parses and dispatches; each command lives
//! in its own module under `cmd/`.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod cmd;
mod store;
mod telemetry;

/// ai-risk-engine: governance and security kernel for AI risk platforms.
#[derive(Debug, Parser)]
#[command(name = "airisk", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service (`--dev` for a one-command local start).
    Serve(cmd::serve::ServeArgs),
    /// Mint bearer tokens for the HTTP service, or make its Ed25519 signing key and JWKS.
    Token(cmd::token::TokenArgs),
    /// Generate keys.
    Keys(cmd::keys::KeysArgs),
    /// Encrypt, decrypt and rewrap values with the keyring in AIRISK_ENCRYPTION_KEYS.
    Crypto(cmd::crypto::CryptoArgs),
    /// Apply the PostgreSQL store's schema migrations (as the schema owner).
    Migrate(cmd::migrate::MigrateArgs),
    /// Append to, verify, export and prove the tamper-evident audit ledger.
    Audit(cmd::audit::AuditArgs),
    /// Govern external registries (MLflow): connect, list, disconnect, reconcile.
    Integrations(cmd::integrations::IntegrationsArgs),
    /// Check authentication: `airisk auth check` explains why a token is or is not accepted.
    Auth(cmd::auth::AuthArgs),
    /// Tenant maintenance: `shred` destroys a tenant's data keys (crypto-shredding).
    Tenant(cmd::tenant::TenantArgs),
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        // Usage errors print clap's message and exit with 2; --help and --version exit with 0.
        Err(err) => err.exit(),
    };
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Token(args) => cmd::token::run(args),
        Command::Keys(args) => cmd::keys::run(args),
        Command::Crypto(args) => cmd::crypto::run(args),
        Command::Migrate(args) => cmd::migrate::run(args),
        Command::Audit(args) => cmd::audit::run(args),
        Command::Integrations(args) => cmd::integrations::run(args),
        Command::Auth(args) => cmd::auth::run(args),
        Command::Tenant(args) => cmd::tenant::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the context chain on one line: "line 3: ciphertext could not be …".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse() -> Result<Cli, clap::Error> {
    let mut matches = Cli::command().try_get_matches()?;
    cmd::refuse_secrets_on_command_line(&matches)?;
    Cli::from_arg_matches_mut(&mut matches)
}

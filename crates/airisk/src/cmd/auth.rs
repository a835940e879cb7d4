//! `airisk auth check`: explains why a token is or is not accepted under the configuration
//! `airisk serve` would use (the same flags, environment and `--config` file).
//!
//! The token is read from the environment variable `AIRISK_TOKEN`, or else from standard input:
//! never from the command line, where every user of the machine can read it in the process list.
//! Nothing of the token beyond its header and claims is printed.

use std::io::Read as _;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Args, Subcommand};

use super::serve::{ServeArgs, configured_verifier};

/// The environment variable `airisk auth check` reads the token from.
pub const TOKEN_ENV: &str = "AIRISK_TOKEN";

/// `airisk auth`.
#[derive(Debug, Args)]
pub struct AuthArgs {
    #[command(subcommand)]
    command: AuthCommand,
}

#[derive(Debug, Subcommand)]
enum AuthCommand {
    /// Explain whether a token is accepted, and why not. The token comes from AIRISK_TOKEN or
    /// standard input (never the command line); the configuration from the same flags,
    /// environment and --config file as `airisk serve`. Exit status 0: accepted; 1: refused.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    serve: ServeArgs,
}

/// Runs `airisk auth`.
///
/// # Errors
/// A bad configuration, no token, or a refused token (after the explanation is printed).
pub fn run(args: AuthArgs) -> anyhow::Result<()> {
    match args.command {
        AuthCommand::Check(a) => check(&a),
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let token = match std::env::var(TOKEN_ENV) {
        Ok(t) if !t.trim().is_empty() => zeroize::Zeroizing::new(t),
        _ => {
            let mut t = zeroize::Zeroizing::new(String::new());
            std::io::stdin()
                .read_to_string(&mut t)
                .context("could not read the token from standard input")?;
            t
        }
    };
    let token = token.trim();
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
    if token.is_empty() {
        bail!("no token: set {TOKEN_ENV} or pipe the token to standard input");
    }
    let verifier = configured_verifier(&args.serve)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the runtime")?;
    runtime.block_on(async {
        for oidc in verifier.oidc_sources() {
            match oidc.refresh().await {
                Ok(n) => println!(
                    "provider   {}: {n} signing key(s): {}",
                    oidc.issuer(),
                    oidc.key_ids().join(", ")
                ),
                Err(e) => println!("provider   {}: UNREACHABLE: {e}", oidc.issuer()),
            }
        }
        describe(token);
        let result = verifier.verify_claims_fresh(token).await;
        match result.and_then(|c| c.principal().map(|p| (c, p))) {
            Ok((claims, p)) => {
                println!(
                    "ACCEPTED   actor {} in tenant {} as {} ({:?}); expires at {} (unix)",
                    p.actor(),
                    p.tenant(),
                    p.role(),
                    p.kind(),
                    claims.exp
                );
                Ok(())
            }
            Err(e) => {
                println!("REFUSED    {e}");
                bail!("the token is not accepted: {e}")
            }
        }
    })
}

/// Prints the token's header and registered claims (unverified), so a refusal can be read
/// against them.
fn describe(token: &str) {
    let part = |i: usize| {
        token
            .split('.')
            .nth(i)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    };
    let Some(header) = part(0) else {
        println!("token      not a JWT (the header does not decode)");
        return;
    };
    let field = |name: &str| {
        header
            .get(name)
            .map_or_else(|| "(none)".to_owned(), ToString::to_string)
    };
    println!(
        "header     alg {}, kid {}, typ {}",
        field("alg"),
        field("kid"),
        field("typ")
    );
    let Some(claims) = part(1) else {
        println!("claims     do not decode");
        return;
    };
    let now = airisk_server::auth::now_secs();
    for name in ["iss", "aud", "sub", "exp", "nbf", "iat"] {
        if let Some(v) = claims.get(name) {
            let when = match (name, v.as_u64()) {
                ("exp" | "nbf" | "iat", Some(t)) if t >= now => format!(" (in {} s)", t - now),
                ("exp" | "nbf" | "iat", Some(t)) => format!(" ({} s ago)", now - t),
                _ => String::new(),
            };
            println!("claim      {name} = {v}{when}");
        }
    }
    let others: Vec<&String> = claims
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|k| !["iss", "aud", "sub", "exp", "nbf", "iat"].contains(&k.as_str()))
                .collect()
        })
        .unwrap_or_default();
    println!(
        "claims     also present: {}",
        others
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

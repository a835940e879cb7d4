//! `airisk token`: mint bearer tokens for the HTTP service, and make the Ed25519 key pair (and
//! its JWKS) that production-like deployments sign and verify them with.

use std::io::Write;
use std::path::PathBuf;

use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::{ActorId, TenantId};
use airisk_server::auth::{
    Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER, TokenSigner, generate_ed25519,
};
use anyhow::{Context, bail};
use base64::Engine as _;
use clap::{Args, Subcommand, ValueEnum};
use zeroize::Zeroizing;

/// Arguments of `airisk token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a signed JWT for one principal: EdDSA with the PKCS#8 key in
    /// AIRISK_JWT_PRIVATE_KEY_FILE if set, else HS256 with AIRISK_JWT_SECRET (dev and tests).
    Issue(IssueArgs),
    /// Write a fresh Ed25519 private key (PKCS#8 PEM, mode 0600) and print the JWKS of its public
    /// key, for AIRISK_JWKS_FILE.
    Keygen(KeygenArgs),
}

/// Whether the principal is a person or a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// A person (may approve, if the role allows).
    Human,
    /// An automated caller (never approves).
    Service,
}

#[derive(Debug, Args)]
struct IssueArgs {
    /// The actor (`sub`), e.g. `alice@bank.example`.
    #[arg(long)]
    sub: String,
    /// The tenant the actor acts in.
    #[arg(long)]
    tenant: String,
    /// admin, analyst, approver or viewer.
    #[arg(long)]
    role: String,
    /// human (default) or service.
    #[arg(long, value_enum, default_value_t = Kind::Human)]
    kind: Kind,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// `iss` claim.
    #[arg(long, env = "AIRISK_JWT_ISSUER", default_value = DEFAULT_ISSUER)]
    issuer: String,
    /// `aud` claim.
    #[arg(long, env = "AIRISK_JWT_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    audience: String,
    /// Ed25519 PKCS#8 private key file (PEM or DER) to sign with (EdDSA).
    #[arg(long, env = "AIRISK_JWT_PRIVATE_KEY_FILE", value_name = "FILE")]
    private_key_file: Option<PathBuf>,
    /// HS256 secret. Environment only; never on the command line.
    #[arg(long, env = "AIRISK_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// Where to write the private key (refused if it exists).
    #[arg(long, value_name = "FILE")]
    private_key: PathBuf,
}

/// Runs `airisk token …`.
///
/// # Errors
/// Invalid claims, no signing key, or an unreadable or unwritable key file.
pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    match args.command {
        TokenCommand::Issue(a) => issue(a),
        TokenCommand::Keygen(a) => keygen(a),
    }
}

fn issue(args: IssueArgs) -> anyhow::Result<()> {
    // Check the claims here, so a typo fails now rather than as a 401 later.
    ActorId::parse(&args.sub)
        .with_context(|| format!("--sub {:?} is not a valid actor", args.sub))?;
    TenantId::parse(&args.tenant)
        .with_context(|| format!("--tenant {:?} is not a valid tenant", args.tenant))?;
    let role: Role = args.role.parse()?;
    let signer = match (&args.private_key_file, &args.jwt_secret) {
        (Some(path), _) => {
            let bytes =
                Zeroizing::new(std::fs::read(path).with_context(|| {
                    format!("could not read the private key {}", path.display())
                })?);
            TokenSigner::ed25519_from_pkcs8(&bytes)
                .with_context(|| format!("{} is not an Ed25519 PKCS#8 key", path.display()))?
        }
        (None, Some(secret)) => {
            TokenSigner::Hs256(Zeroizing::new(secret.trim().as_bytes().to_vec()))
        }
        (None, None) => bail!(
            "no signing key: set AIRISK_JWT_PRIVATE_KEY_FILE to a key from `airisk token keygen`, or AIRISK_JWT_SECRET (HS256, dev and tests)"
        ),
    };
    let mut claims = Claims::new(&args.sub, &args.tenant, role, args.ttl);
    // Always explicit: a token that does not say `human` is a service principal.
    claims.kind = Some(
        if args.kind == Kind::Service {
            "service"
        } else {
            "human"
        }
        .to_owned(),
    );
    claims.iss = args.issuer;
    claims.aud = args.audience;
    let token = signer.sign(&claims)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{token}").context("could not write the token")?;
    Ok(())
}

fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let (pkcs8, jwks) = generate_ed25519()?;
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*pkcs8));
    let mut pem = Zeroizing::new(String::from("-----BEGIN PRIVATE KEY-----\n"));
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&args.private_key)
        .with_context(|| format!("could not create {}", args.private_key.display()))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("could not write {}", args.private_key.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{jwks}").context("could not write the JWKS")?;
    Ok(())
}

//! The keys `airisk serve` needs (encryption, ledger signing, token verification), from the
//! environment in production and generated (or kept, see [`super::dev_keys`]) in dev mode, and the
//! token verifier the settings call for (JWKS, OpenID providers, `[[issuers]]`, HS256). With
//! `AIRISK_PKCS11_MODULE` set, the key-encryption key and the ledger signing key are objects in a
//! PKCS#11 token instead, in production and dev mode alike ([`crate::cmd::hsm`]).

use std::path::PathBuf;
use std::sync::Arc;

use airisk_core::ledger::{LedgerSigner, SIGNING_KEY_ENV};
use airisk_core::security::encryption::{ENV_VAR as ENCRYPTION_KEYS_ENV, Encryptor};
use airisk_core::security::envelope::{KeyProvider, KeyringKeyProvider};
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::TenantId;
use airisk_server::auth::{Claims, JwtVerifier, PersonClaim, TokenSigner};
use airisk_server::mapping::{ClaimMapping, TenantSource};
use airisk_server::oidc::{OidcKeys, OidcOptions};
use anyhow::{Context, anyhow, bail};
use zeroize::Zeroizing;

use super::config::{IssuerConfig, Settings};
use super::dev_keys::{DevSecrets, dev_keys_file};
use super::{DEV_TENANT, DEV_TOKEN_TTL_SECS};

/// The keys the service needs, from the environment or (dev mode) freshly generated.
pub(super) struct ServiceKeys {
    pub(super) ledger: Arc<LedgerSigner>,
    /// The key-encryption key: wraps each tenant's data keys, which seal prompt templates
    /// (docs/ENCRYPTION.md, "Envelope encryption"): the keyring, or a key in a PKCS#11 token.
    pub(super) kek: Arc<dyn KeyProvider>,
    pub(super) auth: JwtVerifier,
    /// Dev mode only: the HS256 secret and the tokens minted with it.
    pub(super) dev_tokens: Option<DevTokens>,
}

/// What dev mode prints: its HS256 secret and one token per role of tenant `demo`.
pub(super) struct DevTokens {
    pub(super) secret: Zeroizing<String>,
    pub(super) tokens: Vec<(Role, String)>,
    /// Where the dev keys are kept (a durable dev database), if anywhere.
    pub(super) kept_in: Option<PathBuf>,
}

impl ServiceKeys {
    /// The production keys, from the environment: refuses to start, naming every missing key
    /// and how to make it, unless all are there.
    pub(super) fn production(
        settings: &Settings,
        jwt_secret: Option<&str>,
    ) -> anyhow::Result<ServiceKeys> {
        let mut problems = Vec::new();
        let (kek, ledger) = if crate::cmd::hsm::configured() {
            match token_keys() {
                Ok((kek, ledger)) => (Some(kek), Some(ledger)),
                Err(e) => {
                    problems.push(format!(
                        "the keys in the PKCS#11 token are unusable ({e:#}): check AIRISK_PKCS11_MODULE, AIRISK_PKCS11_TOKEN, AIRISK_PKCS11_PIN, AIRISK_PKCS11_KEK_LABEL and AIRISK_PKCS11_LEDGER_KEY_LABEL, or make the keys with `airisk keys hsm-generate`."
                    ));
                    (None, None)
                }
            }
        } else {
            let kek = match Encryptor::from_env() {
                Ok(e) => {
                    Some(Arc::new(KeyringKeyProvider::new(Arc::new(e))) as Arc<dyn KeyProvider>)
                }
                Err(e) => {
                    problems.push(format!(
                        "{ENCRYPTION_KEYS_ENV} is missing or invalid ({e}): make a key with `airisk keys generate` and export AIRISK_ENCRYPTION_KEYS=<its output> (or keep the key in an HSM: AIRISK_PKCS11_MODULE)."
                    ));
                    None
                }
            };
            let ledger = match LedgerSigner::from_env() {
                Ok(s) => Some(s),
                Err(e) => {
                    problems.push(format!(
                        "{SIGNING_KEY_ENV} is missing or invalid ({e}): make one with `airisk keys generate --ledger` and export the first line it prints as {SIGNING_KEY_ENV}."
                    ));
                    None
                }
            };
            (kek, ledger)
        };
        let auth = match verifier(settings, jwt_secret) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(format!("{e:#}"));
                None
            }
        };
        match (kek, ledger, auth) {
            (Some(kek), Some(ledger), Some(auth)) if problems.is_empty() => Ok(ServiceKeys {
                ledger: Arc::new(ledger),
                kek,
                auth,
                dev_tokens: None,
            }),
            _ => bail!(
                "the service cannot start without its keys:\n  - {}",
                problems.join("\n  - ")
            ),
        }
    }

    /// Dev mode's keys (generated, or kept beside a durable dev database) and its tokens.
    pub(super) fn dev(
        settings: &Settings,
        jwt_secret: Option<&str>,
    ) -> anyhow::Result<ServiceKeys> {
        let keep = dev_keys_file(&settings.database_url);
        let mut secrets = match &keep {
            Some(path) if path.exists() => DevSecrets::load(path)?,
            _ => {
                let fresh = DevSecrets::generate()?;
                if let Some(path) = &keep {
                    fresh.save(path)?;
                }
                fresh
            }
        };
        if let Some(s) = jwt_secret {
            secrets.jwt = Zeroizing::new(s.to_owned());
        }
        let (kek, ledger) = if crate::cmd::hsm::configured() {
            token_keys()?
        } else {
            let encryption = Encryptor::from_env_value(&secrets.encryption)
                .context("the dev encryption key is invalid")?;
            let ledger = LedgerSigner::from_signing_key(secrets.ledger.trim())
                .context("the dev ledger signing key is invalid")?;
            (
                Arc::new(KeyringKeyProvider::new(Arc::new(encryption))) as Arc<dyn KeyProvider>,
                ledger,
            )
        };
        let secret = secrets.jwt;
        // A JWKS or an OpenID provider, if configured, is honoured in dev mode too.
        let auth = if settings.jwks_file.is_some()
            || settings.oidc.is_some()
            || !settings.issuers.is_empty()
        {
            verifier(settings, None)?
        } else {
            JwtVerifier::new(&settings.jwt_issuer, &settings.jwt_audience)
                .with_leeway(settings.jwt_leeway_secs)
        }
        .dangerous_with_hs256_secret(secret.as_bytes())?;
        let signer = TokenSigner::Hs256(Zeroizing::new(secret.as_bytes().to_vec()));
        let mut tokens = Vec::new();
        for role in Role::ALL {
            let mut claims = Claims::new(
                &format!("{}@{DEV_TENANT}", role.as_str()),
                DEV_TENANT,
                role,
                DEV_TOKEN_TTL_SECS,
            );
            claims.iss.clone_from(&settings.jwt_issuer);
            claims.aud.clone_from(&settings.jwt_audience);
            tokens.push((role, signer.sign(&claims)?));
        }
        Ok(ServiceKeys {
            ledger: Arc::new(ledger),
            kek,
            auth,
            dev_tokens: Some(DevTokens {
                secret,
                tokens,
                kept_in: keep,
            }),
        })
    }
}

/// The key-encryption key and the ledger signer from the PKCS#11 token.
fn token_keys() -> anyhow::Result<(Arc<dyn KeyProvider>, LedgerSigner)> {
    let keys = crate::cmd::hsm::token_keys()?;
    tracing::info!(
        token = %keys.kek.token().label(),
        kek_label = %keys.kek.kek_label(),
        ledger_key_id = %keys.ledger.key_id(),
        "keys: the key-encryption key and the ledger signing key are in the PKCS#11 token"
    );
    Ok((keys.kek as Arc<dyn KeyProvider>, keys.ledger))
}

/// The token verifier the settings call for: the JWKS file's keys, plus HS256 if allowed.
pub(super) fn verifier(
    settings: &Settings,
    jwt_secret: Option<&str>,
) -> anyhow::Result<JwtVerifier> {
    let mut v = JwtVerifier::new(&settings.jwt_issuer, &settings.jwt_audience)
        .with_leeway(settings.jwt_leeway_secs);
    if let Some(options) = &settings.oidc {
        v = v.with_oidc(OidcKeys::new(options.clone()).context("oidc_issuer")?);
    }
    for table in &settings.issuers {
        v = v
            .with_issuer(issuer_verifier(settings, table)?)
            .context("[[issuers]]")?;
    }
    if let Some(path) = &settings.jwks_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read the JWKS file {}", path.display()))?;
        v = v
            .with_jwks(&text)
            .with_context(|| format!("the JWKS file {} is unusable", path.display()))?;
    }
    match (jwt_secret, settings.dangerous_allow_hs256) {
        (Some(secret), true) => {
            v = v.dangerous_with_hs256_secret(secret.as_bytes())?;
        }
        (Some(_), false) if !v.has_keys() => bail!(
            "AIRISK_JWT_SECRET is set but HS256 is refused outside dev mode: set AIRISK_JWKS_FILE to the JWKS `airisk token keygen` prints (or, knowingly, AIRISK_DANGEROUS_ALLOW_HS256=true)."
        ),
        (Some(_), false) => tracing::warn!(
            "AIRISK_JWT_SECRET is set but ignored: HS256 is refused outside dev mode unless AIRISK_DANGEROUS_ALLOW_HS256=true"
        ),
        (None, _) => {}
    }
    if !v.has_keys() {
        bail!(
            "no JWT verification key is configured: run `airisk token keygen --private-key jwt.pem > jwks.json` and set AIRISK_JWKS_FILE=jwks.json."
        );
    }
    Ok(v)
}

/// The verifier of one `[[issuers]]` table: the provider's keys and its claim mapping.
fn issuer_verifier(settings: &Settings, table: &IssuerConfig) -> anyhow::Result<JwtVerifier> {
    let what = || format!("[[issuers]] {}", table.issuer);
    let mut options = OidcOptions::new(&table.issuer);
    options.ca_file.clone_from(&table.ca_file);
    if let Some(o) = &settings.oidc {
        options.refresh_every = o.refresh_every;
        options.min_refresh_gap = o.min_refresh_gap;
        options.max_stale = o.max_stale;
    }
    let tenant = match (&table.tenant, &table.tenant_claim) {
        (Some(t), None) => {
            TenantSource::Fixed(TenantId::parse(t).map_err(|e| anyhow!("{}: tenant: {e}", what()))?)
        }
        (None, Some(c)) => TenantSource::Claim(c.clone()),
        _ => bail!("{}: set exactly one of tenant and tenant_claim", what()),
    };
    let mapping = ClaimMapping::new(
        tenant,
        table.role_claim.as_deref().unwrap_or("roles"),
        &table.roles,
        &table.role_precedence,
    )
    .with_context(what)?;
    let person = match &table.person_claim {
        Some(spec) => PersonClaim::parse(spec).with_context(what)?,
        None => settings.person_claim.clone(),
    };
    let mut v = JwtVerifier::new(
        &table.issuer,
        table.audience.as_deref().unwrap_or(&settings.jwt_audience),
    )
    .with_leeway(settings.jwt_leeway_secs)
    .with_oidc(OidcKeys::new(options).with_context(what)?)
    .with_mapping(mapping)
    .with_person_claim(person);
    if let Some(claim) = &table.identity_claim {
        v = v.with_identity_claim(claim).with_context(what)?;
    }
    Ok(v)
}

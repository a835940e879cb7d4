//! Bearer JWT authentication, verified locally (no call to an identity provider per request).
//!
//! # Design
//!
//! * **Who the caller is comes only from the token**: claims `sub` (the actor), `tenant`, `role`
//!   (`admin`, `analyst`, `approver`, `viewer`, parsed exactly) and `kind` (`human` or `service`).
//!   No tenant in paths, no actor in bodies.
//! * **One canonical identity**: `sub` is mapped to its canonical actor id
//!   ([`ActorId::canonical`]: NFKC, lower case, NFKC, then the ASCII actor-id rules), so `ADMIN1`,
//!   `ａｄｍｉｎ１` and `admin¹` are all the person `admin1`, and the four-eyes rule cannot be passed
//!   with a variant spelling of one's own id.
//!   Optionally ([`JwtVerifier::with_identity_claim`]) the actor is taken from an immutable claim
//!   such as the provider's object id `oid` instead of `sub`.
//! * **A person only when the token says so** (fail closed): a principal is human only if the
//!   configured person claim holds the configured value ([`PersonClaim`], default `kind` =
//!   `human`; a claim holding a list counts if the list contains the value). A token that does not
//!   say so (no `kind`, say) is a service principal, and a service principal never approves or
//!   rejects. A token whose `kind` is `service` is a service whatever the person claim says.
//! * **No critical header extensions**: a token whose JOSE header carries `crit` is refused
//!   (RFC 7515 §4.1.11: a recipient must reject extensions it does not understand, and this
//!   service understands none).
//! * **Registered claims**: `exp`, `iss` and `aud` are required and checked; `nbf` is checked when
//!   present; a small leeway (default 30 s) absorbs clock skew.
//! * **Keys**: production verifies EdDSA (Ed25519), RS256 or ES256 (P-256) signatures with public
//!   keys from a JWKS document (`AIRISK_JWKS_FILE`, for air-gapped use) or published by an OpenID
//!   provider (`AIRISK_OIDC_ISSUER`: discovered, cached and refreshed by [`crate::oidc`]). The key fixes the algorithm: a token's `alg` must be the
//!   one its key is for, so an RSA public key can never be used as an HMAC secret, and `alg: none`
//!   is not an algorithm at all. HS256 (a shared secret) is accepted only when the operator opts in
//!   with [`JwtVerifier::dangerous_with_hs256_secret`]: `airisk serve --dev`, or
//!   `AIRISK_JWT_SECRET` together with `AIRISK_DANGEROUS_ALLOW_HS256=true`.
//! * **Minting** ([`TokenSigner`]): `airisk token issue` signs with HS256 (dev and tests) or with
//!   an Ed25519 PKCS#8 private key (`airisk token keygen` makes one and its JWKS).
//!
//! Verification is ring's, through `jsonwebtoken` 9.

use std::collections::HashSet;
use std::fmt;

use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::{ActorId, Principal, TenantId};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Default `iss` the service expects and `airisk token issue` writes.
pub const DEFAULT_ISSUER: &str = "airisk";
/// Default `aud` the service expects and `airisk token issue` writes.
pub const DEFAULT_AUDIENCE: &str = "airisk-api";
/// Default clock-skew leeway, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Longest clock-skew leeway `airisk serve` accepts, in seconds: a longer one keeps expired
/// tokens alive.
pub const MAX_LEEWAY_SECS: u64 = 300;
/// Shortest HS256 secret accepted, in bytes.
pub const MIN_HS256_SECRET_LEN: usize = 32;

/// The claims a token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The actor (an actor id: letters, digits, `. _ - @ : +`).
    pub sub: String,
    /// The tenant the actor acts in (absent in a provider's token whose issuer maps it: see
    /// [`crate::mapping`]; a token without it is otherwise refused).
    #[serde(default)]
    pub tenant: String,
    /// The actor's role (absent in a provider's token whose issuer maps it).
    #[serde(default)]
    pub role: String,
    /// `human` or `service`. After [`JwtVerifier::verify_claims`] it holds the verdict of the
    /// configured person claim; absent means service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Issuer.
    pub iss: String,
    /// Audience (a token's list of audiences is read as the one that is this service).
    #[serde(deserialize_with = "string_or_first")]
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Not before (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Every other claim, kept so a configured person claim (see [`PersonClaim`]) can be read.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Claims {
    /// Claims for the person `sub` (`kind` = `human`) in `tenant` with `role`, valid from now for
    /// `ttl_secs`, for the default issuer and audience.
    pub fn new(sub: &str, tenant: &str, role: Role, ttl_secs: u64) -> Self {
        let now = now_secs();
        Claims {
            sub: sub.to_owned(),
            tenant: tenant.to_owned(),
            role: role.as_str().to_owned(),
            kind: Some("human".to_owned()),
            iss: DEFAULT_ISSUER.to_owned(),
            aud: DEFAULT_AUDIENCE.to_owned(),
            exp: now.saturating_add(ttl_secs),
            nbf: Some(now),
            iat: Some(now),
            extra: serde_json::Map::new(),
        }
    }

    /// The validated principal the claims name: the canonical actor id of `sub`; human only when
    /// `kind` is `human` (absent: a service).
    ///
    /// # Errors
    /// [`AuthError::InvalidClaims`] if the actor, tenant, role or kind is invalid.
    pub fn principal(&self) -> Result<Principal, AuthError> {
        let actor = ActorId::canonical(&self.sub)
            .map_err(|e| AuthError::InvalidClaims(format!("sub: {e}")))?;
        let tenant = TenantId::parse(&self.tenant)
            .map_err(|e| AuthError::InvalidClaims(format!("tenant: {e}")))?;
        let role: Role = self
            .role
            .parse()
            .map_err(|e| AuthError::InvalidClaims(format!("role: {e}")))?;
        match self.kind.as_deref() {
            Some("human") => Ok(Principal::human(actor, tenant, role)),
            None | Some("service") => Ok(Principal::service(actor, tenant, role)),
            Some(_) => Err(AuthError::InvalidClaims(
                "kind must be human or service".to_owned(),
            )),
        }
    }
}

/// A string, or the first string of a list (`aud` may be either, RFC 7519 §4.1.3; the verifier
/// replaces it with its own audience once the validation found that in the list).
fn string_or_first<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => Ok(s),
        OneOrMany::Many(v) => v
            .into_iter()
            .next()
            .ok_or_else(|| serde::de::Error::custom("aud is an empty list")),
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Why a token was refused. Every variant but [`AuthError::NotMapped`] (a 403) is a 401; the
/// message is safe to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("a bearer token is required (Authorization: Bearer <jwt>)")]
    Missing,
    /// Not a JWT, or a header or payload that does not decode.
    #[error("the bearer token is malformed")]
    Malformed,
    /// The token's header names critical extensions (`crit`), which this service does not
    /// understand (RFC 7515 §4.1.11).
    #[error("the token's header names critical extensions (crit), which are not supported")]
    CriticalHeader,
    /// The token's algorithm is not accepted (including `none`), or no configured key matches it.
    #[error("the token's signing algorithm or key is not accepted")]
    UnsupportedAlgorithm,
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token's issuer is not trusted")]
    WrongIssuer,
    /// `aud` is not this service.
    #[error("the token is not for this service (audience)")]
    WrongAudience,
    /// A required claim is missing, or a claim's value is invalid.
    #[error("the token's claims are invalid: {0}")]
    InvalidClaims(String),
    /// The token is genuine but its claims map to no tenant and single role here (see
    /// [`crate::mapping`]): a 403, recorded in the ledger.
    #[error("the token is valid but not mapped to a role here: {reason}")]
    NotMapped {
        /// Why, safe to send.
        reason: String,
        /// The tenant, when the token names one.
        tenant: Option<String>,
        /// The subject (after the identity claim), for the audit record.
        subject: Option<String>,
    },
}

/// Why an authentication configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthConfigError {
    /// The JWKS document is not a JWK set.
    #[error("the JWKS is not a valid JWK set: {0}")]
    InvalidJwks(String),
    /// The JWKS holds no usable key.
    #[error("the JWKS holds no Ed25519 (OKP), RSA or EC P-256 public signing key")]
    NoUsableKey,
    /// The HS256 secret is too short.
    #[error("the HS256 secret must be at least {MIN_HS256_SECRET_LEN} bytes")]
    WeakSecret,
    /// A signing key could not be read.
    #[error("invalid signing key: {0}")]
    InvalidSigningKey(String),
    /// The OpenID provider configuration is invalid (issuer URL, CA file, intervals).
    #[error("invalid OpenID provider configuration: {0}")]
    InvalidOidc(String),
    /// The person claim is not `NAME=VALUE`, or the identity claim name is empty.
    #[error("invalid claim mapping: {0}")]
    InvalidClaimMapping(String),
}

/// How a token asserts that its subject is a person: a claim and the value it must hold.
///
/// The default is `kind` = `human`. An identity provider that marks people differently is
/// configured with, say, `PersonClaim::new("idtyp", "user")` (`--person-claim idtyp=user`). A claim
/// holding a list of strings counts when the list contains the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonClaim {
    name: String,
    value: String,
}

impl Default for PersonClaim {
    fn default() -> Self {
        PersonClaim {
            name: "kind".to_owned(),
            value: "human".to_owned(),
        }
    }
}

impl PersonClaim {
    /// The claim `name` must hold `value`.
    ///
    /// # Errors
    /// [`AuthConfigError::InvalidClaimMapping`] if either is empty.
    pub fn new(name: &str, value: &str) -> Result<Self, AuthConfigError> {
        if name.is_empty() || value.is_empty() {
            return Err(AuthConfigError::InvalidClaimMapping(
                "the claim name and value must not be empty".to_owned(),
            ));
        }
        Ok(PersonClaim {
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }

    /// Parses `name=value`.
    ///
    /// # Errors
    /// [`AuthConfigError::InvalidClaimMapping`] without a `=` or with an empty side.
    pub fn parse(spec: &str) -> Result<Self, AuthConfigError> {
        let (name, value) = spec.split_once('=').ok_or_else(|| {
            AuthConfigError::InvalidClaimMapping(format!("{spec:?} is not NAME=VALUE"))
        })?;
        Self::new(name.trim(), value.trim())
    }

    /// The claim's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value that makes the subject a person.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether `claims` assert a person.
    fn holds(&self, claims: &Claims) -> bool {
        let found = match self.name.as_str() {
            "kind" => claims.kind.clone().map(serde_json::Value::String),
            "sub" | "tenant" | "role" | "iss" | "aud" => None,
            other => claims.extra.get(other).cloned(),
        };
        match found {
            Some(serde_json::Value::String(v)) => v == self.value,
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .any(|i| i.as_str() == Some(self.value.as_str())),
            _ => false,
        }
    }
}

/// One verification key: its id, the one algorithm it verifies, the key.
pub(crate) struct VerifyKey {
    pub(crate) kid: Option<String>,
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

/// Every usable public key of a JWKS document: Ed25519 (`kty: OKP`, EdDSA), RSA (RS256) and
/// EC P-256 (ES256); other keys (encryption keys, other curves) are skipped. A key whose `alg`
/// names another algorithm than the one its type fixes is skipped too.
///
/// # Errors
/// [`AuthConfigError::InvalidJwks`] if the document is not a JWK set or a key does not decode.
pub(crate) fn keys_from_jwks(jwks_json: &str) -> Result<Vec<VerifyKey>, AuthConfigError> {
    let set: JwkSet =
        serde_json::from_str(jwks_json).map_err(|e| AuthConfigError::InvalidJwks(e.to_string()))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
        {
            continue;
        }
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                Algorithm::EdDSA
            }
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            _ => continue,
        };
        // Both enums name the algorithms alike (RS256, ES256, EdDSA).
        if let Some(declared) = jwk.common.key_algorithm
            && format!("{declared:?}") != format!("{algorithm:?}")
        {
            continue;
        }
        let key =
            DecodingKey::from_jwk(jwk).map_err(|e| AuthConfigError::InvalidJwks(e.to_string()))?;
        keys.push(VerifyKey {
            kid: jwk.common.key_id.clone(),
            algorithm,
            key,
        });
    }
    Ok(keys)
}

/// Verifies bearer tokens against the configured keys, issuer and audience.
pub struct JwtVerifier {
    issuer: String,
    audience: String,
    leeway: u64,
    keys: Vec<VerifyKey>,
    person: PersonClaim,
    identity_claim: Option<String>,
    oidc: Option<std::sync::Arc<crate::oidc::OidcKeys>>,
    mapping: Option<crate::mapping::ClaimMapping>,
    others: Vec<JwtVerifier>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("person", &self.person)
            .field("identity_claim", &self.identity_claim)
            .field("oidc", &self.oidc.as_ref().map(|o| o.issuer().to_owned()))
            .field("mapping", &self.mapping)
            .field("others", &self.others)
            .field(
                "keys",
                &self
                    .keys
                    .iter()
                    .map(|k| (k.kid.clone(), k.algorithm))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier with no keys yet (it refuses every token until one is added).
    pub fn new(issuer: &str, audience: &str) -> Self {
        JwtVerifier {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway: DEFAULT_LEEWAY_SECS,
            keys: Vec::new(),
            person: PersonClaim::default(),
            identity_claim: None,
            oidc: None,
            mapping: None,
            others: Vec::new(),
        }
    }

    /// Takes the tenant and role from the claims the provider issues, through `mapping`, instead
    /// of the `tenant` and `role` claims.
    #[must_use]
    pub fn with_mapping(mut self, mapping: crate::mapping::ClaimMapping) -> Self {
        self.mapping = Some(mapping);
        self
    }

    /// Also accepts the tokens of another issuer, verified by `other` alone (its own keys,
    /// audience, identity and person claims, mapping). A token is routed by its (unverified)
    /// `iss`; a token of an issuer no verifier has is refused as [`AuthError::WrongIssuer`].
    ///
    /// # Errors
    /// [`AuthConfigError::InvalidClaimMapping`] when an issuer is configured twice.
    pub fn with_issuer(mut self, other: JwtVerifier) -> Result<Self, AuthConfigError> {
        if other.issuer == self.issuer || self.others.iter().any(|o| o.issuer == other.issuer) {
            return Err(AuthConfigError::InvalidClaimMapping(format!(
                "the issuer {:?} is configured twice",
                other.issuer
            )));
        }
        self.others.push(other);
        Ok(self)
    }

    /// Every OpenID provider whose keys this verifier uses (its own and its other issuers').
    pub fn oidc_sources(&self) -> Vec<std::sync::Arc<crate::oidc::OidcKeys>> {
        self.oidc
            .iter()
            .cloned()
            .chain(self.others.iter().flat_map(|o| o.oidc_sources()))
            .collect()
    }

    /// The verifier for the token's `iss` (read before any check, only to choose); an issuer no
    /// verifier has is refused here, before any key is looked at.
    fn route(&self, token: &str) -> Result<&JwtVerifier, AuthError> {
        if self.others.is_empty() {
            return Ok(self);
        }
        let iss = token
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("iss").and_then(|i| i.as_str()).map(str::to_owned));
        match iss {
            Some(iss) if iss != self.issuer => self
                .others
                .iter()
                .find(|o| o.issuer == iss)
                .ok_or(AuthError::WrongIssuer),
            _ => Ok(self),
        }
    }

    /// Also verifies with the signing keys an OpenID provider publishes (discovered from its
    /// issuer, refreshed on an unknown `kid` and on a schedule: see [`crate::oidc`]). Use
    /// [`JwtVerifier::verify_fresh`] / [`JwtVerifier::verify_claims_fresh`] so that a key the
    /// provider has just rotated in is fetched.
    #[must_use]
    pub fn with_oidc(mut self, keys: std::sync::Arc<crate::oidc::OidcKeys>) -> Self {
        self.oidc = Some(keys);
        self
    }

    /// The OpenID provider's keys, when configured.
    pub fn oidc(&self) -> Option<&std::sync::Arc<crate::oidc::OidcKeys>> {
        self.oidc.as_ref()
    }

    /// `Ok` when tokens can be verified now; else why not (for `/readyz`): an OpenID provider
    /// that has not answered since start-up, or whose keys are older than the staleness bound.
    ///
    /// # Errors
    /// The reason, safe to show to operators.
    pub fn readiness(&self) -> Result<(), String> {
        let reasons: Vec<String> = self
            .oidc_sources()
            .iter()
            .filter_map(|o| o.readiness().err())
            .collect();
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons.join("; "))
        }
    }

    /// Takes the actor from the claim `name` instead of `sub`: for an identity provider whose
    /// `sub` may be reassigned or re-spelled while an immutable id (Entra ID's `oid`, say) stays.
    /// The claim must be a string and is canonicalised like `sub`; a token without it is refused.
    ///
    /// # Errors
    /// [`AuthConfigError::InvalidClaimMapping`] if `name` is empty.
    pub fn with_identity_claim(mut self, name: &str) -> Result<Self, AuthConfigError> {
        if name.trim().is_empty() {
            return Err(AuthConfigError::InvalidClaimMapping(
                "the identity claim name must not be empty".to_owned(),
            ));
        }
        self.identity_claim = Some(name.trim().to_owned()).filter(|n| n != "sub");
        Ok(self)
    }

    /// Sets how a token asserts its subject is a person (default `kind` = `human`).
    #[must_use]
    pub fn with_person_claim(mut self, person: PersonClaim) -> Self {
        self.person = person;
        self
    }

    /// How a token asserts its subject is a person.
    pub fn person_claim(&self) -> &PersonClaim {
        &self.person
    }

    /// Sets the clock-skew leeway.
    #[must_use]
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds;
        self
    }

    /// Adds every Ed25519 (`kty: OKP`, `crv: Ed25519`), RSA and EC P-256 signing key of a JWKS
    /// document; other keys are skipped.
    ///
    /// # Errors
    /// [`AuthConfigError::InvalidJwks`] or [`AuthConfigError::NoUsableKey`].
    pub fn with_jwks(mut self, jwks_json: &str) -> Result<Self, AuthConfigError> {
        let keys = keys_from_jwks(jwks_json)?;
        if keys.is_empty() {
            return Err(AuthConfigError::NoUsableKey);
        }
        self.keys.extend(keys);
        Ok(self)
    }

    /// Accepts HS256 tokens signed with `secret`. Dangerous: anyone holding the secret can mint
    /// any identity in any tenant, and every verifier holds it. For dev mode and tests, or a
    /// deliberate operator choice.
    ///
    /// # Errors
    /// [`AuthConfigError::WeakSecret`] below 32 bytes.
    pub fn dangerous_with_hs256_secret(mut self, secret: &[u8]) -> Result<Self, AuthConfigError> {
        if secret.len() < MIN_HS256_SECRET_LEN {
            return Err(AuthConfigError::WeakSecret);
        }
        self.keys.push(VerifyKey {
            kid: None,
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
        });
        Ok(self)
    }

    /// Whether any key is configured (an OpenID provider counts, whether it has answered yet
    /// or not: see [`JwtVerifier::readiness`]).
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty() || self.oidc.is_some() || self.others.iter().any(Self::has_keys)
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The configured audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Verifies `token` and returns the principal it names.
    ///
    /// # Errors
    /// An [`AuthError`] saying why, safe to send to the caller.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.verify_claims(token)?;
        claims.principal()
    }

    /// [`JwtVerifier::verify`], fetching the OpenID provider's keys again first when the token
    /// names a key id none of the known keys has (at most once per the provider's refresh gap,
    /// however many such tokens arrive: see [`crate::oidc::OidcKeys::refresh_for_unknown_kid`]).
    ///
    /// # Errors
    /// An [`AuthError`] saying why, safe to send to the caller.
    pub async fn verify_fresh(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_claims_fresh(token).await?.principal()
    }

    /// [`JwtVerifier::verify_claims`] with the refresh of [`JwtVerifier::verify_fresh`].
    ///
    /// # Errors
    /// An [`AuthError`] saying why.
    pub async fn verify_claims_fresh(&self, token: &str) -> Result<Claims, AuthError> {
        self.route(token)?.fresh_here(token, None).await
    }

    /// Verifies an OpenID Connect ID token that the provider `issuer` issued to the client
    /// `client_id` (the console's sign-in): routed by its `iss` like an access token, the
    /// routed verifier must be `issuer`'s, and then every check of
    /// [`JwtVerifier::verify_claims_fresh`] applies (signature with the provider's keys, `iss`,
    /// `exp`, `nbf` with the leeway, `sub`, the identity claim, the claim mapping, the person
    /// claim) with `aud` required to be `client_id` instead of the API's audience. The caller
    /// checks `nonce` and `azp`.
    ///
    /// # Errors
    /// An [`AuthError`] saying why ([`AuthError::WrongIssuer`] for another issuer's token,
    /// [`AuthError::WrongAudience`] for a token of another client, [`AuthError::NotMapped`]
    /// for a genuine token that maps to no role here).
    pub async fn verify_id_token(
        &self,
        token: &str,
        issuer: &str,
        client_id: &str,
    ) -> Result<Claims, AuthError> {
        let routed = self.route(token)?;
        if routed.issuer != issuer {
            return Err(AuthError::WrongIssuer);
        }
        routed.fresh_here(token, Some(client_id)).await
    }

    async fn fresh_here(&self, token: &str, audience: Option<&str>) -> Result<Claims, AuthError> {
        match self.verify_here(token, audience) {
            Err(AuthError::UnsupportedAlgorithm) => {
                let Some(oidc) = &self.oidc else {
                    return Err(AuthError::UnsupportedAlgorithm);
                };
                let header = jsonwebtoken::decode_header(token)
                    .map_err(|_| AuthError::UnsupportedAlgorithm)?;
                let known = |kid: &str| {
                    self.keys.iter().any(|k| k.kid.as_deref() == Some(kid)) || oidc.knows_kid(kid)
                };
                match header.kid.as_deref() {
                    Some(kid)
                        if matches!(
                            header.alg,
                            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
                        ) && !known(kid) =>
                    {
                        if oidc.refresh_for_unknown_kid().await {
                            self.verify_here(token, audience)
                        } else {
                            Err(AuthError::UnsupportedAlgorithm)
                        }
                    }
                    _ => Err(AuthError::UnsupportedAlgorithm),
                }
            }
            other => other,
        }
    }

    /// Verifies `token` and returns its claims, with `kind` set to the verdict of the configured
    /// person claim: `human` only when the token asserts a person, else `service`.
    ///
    /// # Errors
    /// An [`AuthError`] saying why.
    pub fn verify_claims(&self, token: &str) -> Result<Claims, AuthError> {
        self.route(token)?.verify_here(token, None)
    }

    fn verify_here(&self, token: &str, audience: Option<&str>) -> Result<Claims, AuthError> {
        refuse_critical_header(token)?;
        let mut claims = self.verify_signed_claims(token, audience.unwrap_or(&self.audience))?;
        match claims.kind.as_deref() {
            None | Some("human" | "service") => {}
            Some(_) => {
                return Err(AuthError::InvalidClaims(
                    "kind must be human or service".to_owned(),
                ));
            }
        }
        if let Some(name) = &self.identity_claim {
            let id = claims
                .extra
                .get(name)
                .and_then(serde_json::Value::as_str)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    AuthError::InvalidClaims(format!("{name} (the identity claim) is required"))
                })?;
            claims.sub = id.to_owned();
        }
        match &self.mapping {
            Some(mapping) => mapping.apply(&mut claims)?,
            None if claims.tenant.is_empty() || claims.role.is_empty() => {
                return Err(AuthError::InvalidClaims(
                    "sub, tenant and role are required".to_owned(),
                ));
            }
            None => {}
        }
        let person = claims.kind.as_deref() != Some("service") && self.person.holds(&claims);
        claims.kind = Some(if person { "human" } else { "service" }.to_owned());
        Ok(claims)
    }

    fn verify_signed_claims(&self, token: &str, audience: &str) -> Result<Claims, AuthError> {
        // `decode_header` fails on any `alg` jsonwebtoken does not know, `none` included.
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithmName | ErrorKind::InvalidAlgorithm => {
                AuthError::UnsupportedAlgorithm
            }
            _ => AuthError::Malformed,
        })?;
        let published = self.oidc.as_ref().and_then(|o| o.current());
        let candidates: Vec<&VerifyKey> = self
            .keys
            .iter()
            .chain(published.iter().flat_map(|k| k.iter()))
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| match (&header.kid, &k.kid) {
                (Some(wanted), Some(have)) => wanted == have,
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.required_spec_claims = ["exp", "iss", "aud", "sub"]
            .into_iter()
            .map(str::to_owned)
            .collect::<HashSet<_>>();
        let mut last = AuthError::BadSignature;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    let mut claims = data.claims;
                    // `aud` may be a list; the validation above found the audience in it.
                    claims.aud = audience.to_owned();
                    return Ok(claims);
                }
                Err(e) => {
                    last = match e.kind() {
                        ErrorKind::InvalidSignature => AuthError::BadSignature,
                        ErrorKind::ExpiredSignature => AuthError::Expired,
                        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                        ErrorKind::InvalidAudience => AuthError::WrongAudience,
                        ErrorKind::MissingRequiredClaim(c) => {
                            AuthError::InvalidClaims(format!("{c} is required"))
                        }
                        ErrorKind::InvalidAlgorithm => AuthError::UnsupportedAlgorithm,
                        ErrorKind::Json(_) => {
                            AuthError::InvalidClaims("sub, tenant and role are required".into())
                        }
                        _ => AuthError::Malformed,
                    };
                    // Only a bad signature is worth trying the next key for.
                    if last != AuthError::BadSignature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

/// Refuses a token whose JOSE header has a `crit` member (RFC 7515 §4.1.11). `jsonwebtoken` 9
/// ignores the member, so the raw header is read here.
fn refuse_critical_header(token: &str) -> Result<(), AuthError> {
    let header = token.split('.').next().ok_or(AuthError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed)?;
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
    if object.contains_key("crit") {
        return Err(AuthError::CriticalHeader);
    }
    Ok(())
}

/// Signs tokens: for `airisk token issue`, dev mode and tests.
pub enum TokenSigner {
    /// HMAC-SHA256 with a shared secret.
    Hs256(Zeroizing<Vec<u8>>),
    /// Ed25519 with a PKCS#8 private key, and the key id to put in the header.
    EdDsa {
        /// The PKCS#8 v1 or v2 DER bytes.
        pkcs8: Zeroizing<Vec<u8>>,
        /// `kid` of the matching public JWK.
        kid: String,
    },
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSigner::Hs256(_) => f.write_str("TokenSigner::Hs256(<redacted>)"),
            TokenSigner::EdDsa { kid, .. } => write!(f, "TokenSigner::EdDsa {{ kid: {kid:?} }}"),
        }
    }
}

impl TokenSigner {
    /// An Ed25519 signer from a PKCS#8 document, DER or PEM (`-----BEGIN PRIVATE KEY-----`).
    /// The key id is derived from the public key (see [`ed25519_kid`]).
    ///
    /// # Errors
    /// [`AuthConfigError::InvalidSigningKey`] if it is not an Ed25519 PKCS#8 key.
    pub fn ed25519_from_pkcs8(bytes: &[u8]) -> Result<Self, AuthConfigError> {
        let der = pem_or_der(bytes)?;
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|e| AuthConfigError::InvalidSigningKey(e.to_string()))?;
        let public = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec();
        Ok(TokenSigner::EdDsa {
            pkcs8: der,
            kid: ed25519_kid(&public),
        })
    }

    /// Signs `claims` (normally a [`Claims`]; any JSON object for tests of malformed tokens).
    ///
    /// # Errors
    /// [`AuthConfigError::InvalidSigningKey`] if the key is unusable.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, AuthConfigError> {
        let (header, key) = match self {
            TokenSigner::Hs256(secret) => (
                Header::new(Algorithm::HS256),
                EncodingKey::from_secret(secret),
            ),
            TokenSigner::EdDsa { pkcs8, kid } => {
                let mut header = Header::new(Algorithm::EdDSA);
                header.kid = Some(kid.clone());
                (header, EncodingKey::from_ed_der(pkcs8))
            }
        };
        jsonwebtoken::encode(&header, claims, &key)
            .map_err(|e| AuthConfigError::InvalidSigningKey(e.to_string()))
    }
}

/// The key id of an Ed25519 public key: the first 8 bytes of its SHA-256, base64url.
pub fn ed25519_kid(public_key: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public_key);
    URL_SAFE_NO_PAD.encode(digest.as_ref().get(..8).unwrap_or_default())
}

/// A fresh Ed25519 key: its PKCS#8 DER private key and the JWKS (JSON) of its public key.
///
/// # Errors
/// [`AuthConfigError::InvalidSigningKey`] if the system random generator fails.
pub fn generate_ed25519() -> Result<(Zeroizing<Vec<u8>>, String), AuthConfigError> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| AuthConfigError::InvalidSigningKey("random generator failed".into()))?;
    let der = Zeroizing::new(pkcs8.as_ref().to_vec());
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&der)
        .map_err(|e| AuthConfigError::InvalidSigningKey(e.to_string()))?;
    let public = ring::signature::KeyPair::public_key(&pair)
        .as_ref()
        .to_vec();
    Ok((der, jwks_for_ed25519(&public)))
}

/// The JWKS document (JSON) of one Ed25519 public key.
pub fn jwks_for_ed25519(public_key: &[u8]) -> String {
    serde_json::json!({
        "keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": ed25519_kid(public_key),
            "x": URL_SAFE_NO_PAD.encode(public_key),
        }]
    })
    .to_string()
}

fn pem_or_der(bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, AuthConfigError> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(Zeroizing::new(bytes.to_vec()));
    };
    let text = text.trim();
    let Some(body) = text
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|t| t.strip_suffix("-----END PRIVATE KEY-----"))
    else {
        return Ok(Zeroizing::new(bytes.to_vec()));
    };
    let b64: Zeroizing<String> = Zeroizing::new(body.split_whitespace().collect());
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| AuthConfigError::InvalidSigningKey("the PEM body is not base64".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use airisk_core::security::tenant_context::PrincipalKind;

    fn secret() -> Vec<u8> {
        vec![7u8; 32]
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(DEFAULT_ISSUER, DEFAULT_AUDIENCE)
            .dangerous_with_hs256_secret(&secret())
            .unwrap()
    }

    #[test]
    fn a_fresh_hs256_token_verifies_to_its_principal() {
        let signer = TokenSigner::Hs256(Zeroizing::new(secret()));
        let token = signer
            .sign(&Claims::new("alice", "acme", Role::Analyst, 60))
            .unwrap();
        let p = verifier().verify(&token).unwrap();
        assert_eq!(p.actor().as_str(), "alice");
        assert_eq!(p.tenant().as_str(), "acme");
        assert_eq!(p.role(), Role::Analyst);
    }

    #[test]
    fn an_eddsa_token_verifies_against_its_jwks_and_not_as_hs256() {
        let (pkcs8, jwks) = generate_ed25519().unwrap();
        let signer = TokenSigner::ed25519_from_pkcs8(&pkcs8).unwrap();
        let token = signer
            .sign(&Claims::new("bob", "acme", Role::Approver, 60))
            .unwrap();
        let v = JwtVerifier::new(DEFAULT_ISSUER, DEFAULT_AUDIENCE)
            .with_jwks(&jwks)
            .unwrap();
        assert_eq!(v.verify(&token).unwrap().role(), Role::Approver);
        assert_eq!(
            verifier().verify(&token),
            Err(AuthError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn unknown_role_and_kind_are_refused() {
        let signer = TokenSigner::Hs256(Zeroizing::new(secret()));
        let mut claims = Claims::new("alice", "acme", Role::Viewer, 60);
        claims.role = "root".into();
        let token = signer.sign(&claims).unwrap();
        assert!(matches!(
            verifier().verify(&token),
            Err(AuthError::InvalidClaims(_))
        ));
        let mut claims = Claims::new("alice", "acme", Role::Viewer, 60);
        claims.kind = Some("robot".into());
        let token = signer.sign(&claims).unwrap();
        assert!(matches!(
            verifier().verify(&token),
            Err(AuthError::InvalidClaims(_))
        ));
    }

    #[test]
    fn only_a_positive_person_claim_makes_a_human() {
        let signer = TokenSigner::Hs256(Zeroizing::new(secret()));
        let kind = |k: Option<&str>| {
            let mut c = Claims::new("alice", "acme", Role::Approver, 60);
            c.kind = k.map(str::to_owned);
            signer.sign(&c).unwrap()
        };
        let v = verifier();
        assert_eq!(
            v.verify(&kind(Some("human"))).unwrap().kind(),
            PrincipalKind::Human
        );
        for k in [None, Some("service")] {
            assert_eq!(
                v.verify(&kind(k)).unwrap().kind(),
                PrincipalKind::Service,
                "{k:?}"
            );
        }
        // A provider that marks people with another claim, as a string or in a list.
        let v = verifier().with_person_claim(PersonClaim::parse("idtyp=user").unwrap());
        let with = |value: serde_json::Value, k: Option<&str>| {
            let mut c = Claims::new("alice", "acme", Role::Approver, 60);
            c.kind = k.map(str::to_owned);
            c.extra.insert("idtyp".into(), value);
            signer.sign(&c).unwrap()
        };
        let person = |t: &str| v.verify(t).unwrap().kind() == PrincipalKind::Human;
        assert!(person(&with(serde_json::json!("user"), None)));
        assert!(person(&with(serde_json::json!(["app", "user"]), None)));
        assert!(!person(&with(serde_json::json!("app"), None)));
        assert!(!person(&with(serde_json::json!("USER"), None)));
        assert!(!person(&with(serde_json::json!(true), None)));
        // `kind: human` alone says nothing under this configuration; `kind: service` always wins.
        assert!(!person(&kind(Some("human"))));
        assert!(!person(&with(serde_json::json!("user"), Some("service"))));
        for bad in ["", "idtyp", "=user", "idtyp="] {
            assert!(PersonClaim::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_configured_identity_claim_replaces_sub_and_is_required() {
        let signer = TokenSigner::Hs256(Zeroizing::new(secret()));
        let v = verifier().with_identity_claim("oid").unwrap();
        let mut c = Claims::new("Alice.Renamed", "acme", Role::Approver, 60);
        c.extra
            .insert("oid".into(), "6F1C2A4E-0000-4000-8000-00000000A11C".into());
        let p = v.verify(&signer.sign(&c).unwrap()).unwrap();
        assert_eq!(p.actor().as_str(), "6f1c2a4e-0000-4000-8000-00000000a11c");
        c.extra.clear();
        assert!(matches!(
            v.verify(&signer.sign(&c).unwrap()),
            Err(AuthError::InvalidClaims(_))
        ));
        assert!(verifier().with_identity_claim(" ").is_err());
    }

    #[test]
    fn a_header_with_crit_is_refused_whatever_it_lists() {
        let claims = Claims::new("alice", "acme", Role::Viewer, 60);
        for header in [
            serde_json::json!({"alg": "HS256", "crit": ["exp"]}),
            serde_json::json!({"alg": "HS256", "crit": []}),
            serde_json::json!({"alg": "HS256", "crit": null}),
        ] {
            let h = URL_SAFE_NO_PAD.encode(header.to_string());
            let c = URL_SAFE_NO_PAD.encode(serde_json::to_string(&claims).unwrap());
            let input = format!("{h}.{c}");
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret());
            let sig = URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, input.as_bytes()));
            let token = format!("{input}.{sig}");
            assert_eq!(
                verifier().verify(&token),
                Err(AuthError::CriticalHeader),
                "{header}"
            );
        }
    }

    #[test]
    fn the_actor_is_the_canonical_form_of_sub() {
        let signer = TokenSigner::Hs256(Zeroizing::new(secret()));
        for sub in [
            "Alice",
            "ALICE",
            "\u{ff41}lice",
            "\u{ff21}\u{ff2c}\u{ff29}\u{ff23}\u{ff25}",
        ] {
            let token = signer
                .sign(&Claims::new(sub, "acme", Role::Viewer, 60))
                .unwrap();
            assert_eq!(verifier().verify(&token).unwrap().actor().as_str(), "alice");
        }
    }

    #[test]
    fn an_rs256_token_verifies_against_its_jwk_and_the_rsa_key_is_no_hmac_secret() {
        // A fresh 2048-bit key for this run (ring cannot generate RSA keys; the openssl command
        // line can), as PKCS#1 DER: no key material lives in the repository.
        let pem = std::process::Command::new("openssl")
            .args(["genrsa", "-traditional", "2048"])
            .output()
            .expect("the openssl command line makes the RSA test key");
        assert!(pem.status.success(), "openssl genrsa failed");
        let mut to_der = std::process::Command::new("openssl")
            .args(["rsa", "-traditional", "-outform", "DER"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut to_der.stdin.take().unwrap(), &pem.stdout).unwrap();
        let der_out = to_der.wait_with_output().unwrap();
        assert!(der_out.status.success(), "openssl rsa -outform DER failed");
        let der: &[u8] = &der_out.stdout;
        let pair = ring::signature::RsaKeyPair::from_der(der).unwrap();
        let public: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
        let (n, e) = (public.n, public.e);
        let jwks = serde_json::json!({"keys": [{
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": "rsa-1",
            "n": URL_SAFE_NO_PAD.encode(&n), "e": URL_SAFE_NO_PAD.encode(&e),
        }]})
        .to_string();
        let verifier = JwtVerifier::new(DEFAULT_ISSUER, DEFAULT_AUDIENCE)
            .with_jwks(&jwks)
            .unwrap();
        let claims = Claims::new("carol", "acme", Role::Approver, 60);
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-1".into());
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_der(der)).unwrap();
        assert_eq!(verifier.verify(&token).unwrap().role(), Role::Approver);
        // The classic confusion: HS256 keyed with the public key. No HS256 key is configured.
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&n),
        )
        .unwrap();
        assert_eq!(
            verifier.verify(&forged),
            Err(AuthError::UnsupportedAlgorithm)
        );
    }
}

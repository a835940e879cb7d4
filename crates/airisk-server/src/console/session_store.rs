//! Console sessions of people signed in through the OpenID provider: a sealed cookie, ended
//! everywhere by a record in the tenant's ledger.
//!
//! # Design
//!
//! * **The session id** is 256 random bits, drawn at every sign-in (a new id each time: no
//!   session fixation). The browser holds it inside the session cookie; the service never stores
//!   it and never logs it. What is stored and recorded is its SHA-256 ("the session's hash").
//! * **The cookie** holds the session (id, tenant, canonical actor, role, person or not, issuer,
//!   display name, when it started, when it was last used, the ledger position of its sign-in
//!   record, and the ID token for the provider's sign-out) sealed with AES-256-GCM (ring) under
//!   a key derived (HKDF-SHA256) from the configured session secret
//!   (`AIRISK_CONSOLE_SESSION_SECRET`), with its purpose as associated data: a cookie cannot be
//!   read, changed or forged without the secret, and a sign-in flow cookie is no session. Every
//!   replica holding the secret reads every session: no sticky sessions.
//! * **Timeouts**: idle (default 30 minutes since the last request) and absolute (default 8 hours
//!   since sign-in), on the service clock (injectable). Each request re-seals the cookie with the
//!   new "last used" time. A session past either is over: the cookie is cleared and an
//!   `auth.session_expired` record is written (once: not when the ledger already ends it).
//! * **Ending it everywhere**: sign-out writes `auth.sign_out` with the session's hash as its
//!   resource id to the tenant's ledger, which every replica shares. Every request with a session
//!   looks for such a record (or `auth.session_expired`) after the session's sign-in record, so a
//!   copy of the cookie kept by anyone stops working at once on every replica. The ledger is the
//!   server-side revocation record: durable, tenant-scoped, tamper-evident, nothing to prune.
//! * **Records**: `auth.sign_in`, `auth.sign_out`, `auth.session_expired`, and
//!   `auth.sign_in_refused` (denied: bad state, bad nonce, a refused ID token, a provider error) in
//!   the tenant's ledger; a refusal before any tenant is known (a bad `state`, a provider error)
//!   goes to the system ledger (tenant `system`, see [`crate::mapping::SYSTEM_TENANT`]). An
//!   unmapped person is `auth.refused`, like on the API.

use std::time::Duration;

use airisk_core::governance::audit_record::{AuditEvent, AuditEventInput, Outcome};
use airisk_core::ports::AuditQuery;
use airisk_core::security::tenant_context::{ActorId, Principal, TenantId};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{aead, hkdf, hmac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::mapping::SYSTEM_TENANT;
use crate::state::AppState;

/// Default idle timeout: a session unused this long is over.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default absolute timeout: a session this old is over, however busy.
pub const DEFAULT_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(8 * 60 * 60);
/// Shortest session secret accepted, in bytes.
pub const MIN_SESSION_SECRET_LEN: usize = 32;
/// The resource type of the session records.
pub(crate) const SESSION_RESOURCE: &str = "console_session";

/// The secret the console's session and sign-in cookies are sealed with, and its CSRF tokens
/// derived from. Every replica behind one load balancer must hold the same. Zeroized on drop,
/// redacted in `Debug`.
#[derive(Clone)]
pub struct SessionSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

impl SessionSecret {
    /// A secret of at least [`MIN_SESSION_SECRET_LEN`] bytes (e.g. `openssl rand -base64 48`).
    ///
    /// # Errors
    /// A message (without the secret) when it is shorter.
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_SESSION_SECRET_LEN {
            return Err(format!(
                "the console session secret must be at least {MIN_SESSION_SECRET_LEN} bytes"
            ));
        }
        Ok(SessionSecret(Zeroizing::new(secret.to_vec())))
    }

    /// A random secret, for one process (dev mode, tests): sessions end when it stops.
    ///
    /// # Errors
    /// A message if the system random generator fails.
    pub fn generate() -> Result<Self, String> {
        let mut bytes = Zeroizing::new(vec![0u8; 32]);
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| "the system random generator failed".to_owned())?;
        Ok(SessionSecret(bytes))
    }
}

/// How long console sessions last, and what seals them.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The sealing secret. `None` (the default): a random one drawn at start-up, so sessions end
    /// at a restart and another replica cannot read them (dev mode, tests).
    pub secret: Option<SessionSecret>,
    /// A session unused this long is over (default [`DEFAULT_IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
    /// A session this old is over (default [`DEFAULT_ABSOLUTE_TIMEOUT`]).
    pub absolute_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            secret: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            absolute_timeout: DEFAULT_ABSOLUTE_TIMEOUT,
        }
    }
}

/// The keys derived from the session secret.
pub(crate) struct SealKeys {
    seal: aead::LessSafeKey,
    /// The CSRF MAC key (shared by replicas holding the same secret).
    pub(crate) csrf: hmac::Key,
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl SealKeys {
    /// Derives the sealing key and the CSRF key from `secret` (HKDF-SHA256, one label each).
    pub(crate) fn derive(secret: &SessionSecret) -> Option<Self> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"airisk-console/v1").extract(&secret.0);
        let mut seal = Zeroizing::new([0u8; 32]);
        prk.expand(&[b"session-seal".as_slice()], Len(32))
            .ok()?
            .fill(&mut seal[..])
            .ok()?;
        let mut csrf = Zeroizing::new([0u8; 32]);
        prk.expand(&[b"csrf-mac".as_slice()], Len(32))
            .ok()?
            .fill(&mut csrf[..])
            .ok()?;
        Some(SealKeys {
            seal: aead::LessSafeKey::new(
                aead::UnboundKey::new(&aead::AES_256_GCM, &seal[..]).ok()?,
            ),
            csrf: hmac::Key::new(hmac::HMAC_SHA256, &csrf[..]),
        })
    }

    /// `v1.` + base64url(nonce ‖ AES-256-GCM(JSON of `value`) ‖ tag), with `purpose` as the
    /// associated data.
    pub(crate) fn seal<T: Serialize>(&self, purpose: &str, value: &T) -> Option<String> {
        let mut buf = Zeroizing::new(serde_json::to_vec(value).ok()?);
        let mut nonce = [0u8; aead::NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        self.seal
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(purpose.as_bytes()),
                &mut *buf,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Some(format!("v1.{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// The value sealed in `text` for `purpose`; `None` for anything else (tampered, another
    /// secret, another purpose, not a sealed value).
    pub(crate) fn open<T: DeserializeOwned>(&self, purpose: &str, text: &str) -> Option<T> {
        let bytes = URL_SAFE_NO_PAD.decode(text.strip_prefix("v1.")?).ok()?;
        if bytes.len() < aead::NONCE_LEN + aead::AES_256_GCM.tag_len() {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(aead::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain = self
            .seal
            .open_in_place(nonce, aead::Aad::from(purpose.as_bytes()), &mut buf)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

/// The purpose (associated data) of a session cookie.
pub(crate) const SESSION_PURPOSE: &str = "airisk-console/session";
/// The purpose (associated data) of a sign-in flow cookie.
pub(crate) const FLOW_PURPOSE: &str = "airisk-console/sign-in-flow";

/// A session, as sealed in its cookie.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SessionData {
    /// The session id (256 random bits, base64url). Never logged, never stored.
    pub(crate) sid: String,
    pub(crate) tenant: String,
    /// The canonical actor id.
    pub(crate) actor: String,
    pub(crate) role: String,
    /// Whether the ID token said the subject is a person.
    pub(crate) person: bool,
    /// The provider (its issuer URL).
    pub(crate) issuer: String,
    /// A name to show (the provider's `name` or `preferred_username`); never an identity.
    pub(crate) name: Option<String>,
    /// Signed in at (service clock, seconds since the epoch).
    pub(crate) created: u64,
    /// Last used at.
    pub(crate) seen: u64,
    /// The seq of the `auth.sign_in` record in the tenant's ledger.
    pub(crate) since: u64,
    /// The ID token, for the provider's end-session endpoint (`id_token_hint`); left out when
    /// the cookie would be too large.
    pub(crate) id_token: Option<String>,
}

impl std::fmt::Debug for SessionData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionData")
            .field("sid", &"<redacted>")
            .field("tenant", &self.tenant)
            .field("actor", &self.actor)
            .field("role", &self.role)
            .field("issuer", &self.issuer)
            .field("created", &self.created)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl SessionData {
    /// The principal the session acts as.
    pub(crate) fn principal(&self) -> Option<Principal> {
        let actor = ActorId::canonical(&self.actor).ok()?;
        let tenant = TenantId::parse(&self.tenant).ok()?;
        let role = self.role.parse().ok()?;
        Some(if self.person {
            Principal::human(actor, tenant, role)
        } else {
            Principal::service(actor, tenant, role)
        })
    }

    /// Whether (and why) the session is over at `now`.
    pub(crate) fn expired(&self, config: &SessionConfig, now: u64) -> Option<&'static str> {
        if now
            >= self
                .created
                .saturating_add(config.absolute_timeout.as_secs())
        {
            Some("absolute")
        } else if now >= self.seen.saturating_add(config.idle_timeout.as_secs()) {
            Some("idle")
        } else {
            None
        }
    }

    /// When the session ends if unused from `now` on.
    pub(crate) fn ends_at(&self, config: &SessionConfig) -> u64 {
        self.seen.saturating_add(config.idle_timeout.as_secs()).min(
            self.created
                .saturating_add(config.absolute_timeout.as_secs()),
        )
    }
}

/// A sign-in in progress, as sealed in the flow cookie.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct FlowData {
    pub(crate) state: String,
    pub(crate) nonce: String,
    /// The PKCE code verifier (RFC 7636).
    pub(crate) verifier: String,
    /// Where to go after signing in (a console path).
    pub(crate) next: String,
    /// Started at (service clock).
    pub(crate) created: u64,
}

/// 256 random bits, base64url.
pub(crate) fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `a` and `b` are equal, in time independent of where they differ (the state and
/// nonce checks: an attacker must not learn a prefix from timing).
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SHA-256 of `value`, lower-case hex: what the ledger holds of a session id.
pub(crate) fn hash_hex(value: &str) -> String {
    use std::fmt::Write as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The service clock, in seconds since the epoch.
pub(crate) fn now(app: &AppState) -> u64 {
    u64::try_from(app.clock().now().timestamp()).unwrap_or(0)
}

/// One session record.
pub(crate) struct Record<'a> {
    pub(crate) tenant: Option<&'a str>,
    pub(crate) actor: Option<&'a str>,
    pub(crate) action: &'a str,
    pub(crate) outcome: Outcome,
    /// The session's hash (or, for a refusal, the presented state's).
    pub(crate) resource_id: &'a str,
    pub(crate) reason: Option<String>,
    pub(crate) metadata: Option<serde_json::Value>,
}

/// Appends `record` to the tenant's ledger (the system ledger when no valid tenant is given);
/// returns its seq.
///
/// # Errors
/// Why it could not be recorded (the caller refuses the sign-in or sign-out then: no session
/// without its record).
pub(crate) async fn record(app: &AppState, record: Record<'_>) -> Result<u64, String> {
    let tenant = record
        .tenant
        .and_then(|t| TenantId::parse(t).ok())
        .map_or_else(|| SYSTEM_TENANT.to_owned(), |t| t.as_str().to_owned());
    let actor = record
        .actor
        .and_then(|a| ActorId::canonical(a).ok())
        .map_or_else(|| "unknown".to_owned(), |a| a.as_str().to_owned());
    let input = AuditEventInput {
        actor,
        tenant_id: tenant,
        action: record.action.to_owned(),
        resource_type: SESSION_RESOURCE.to_owned(),
        resource_id: record.resource_id.to_owned(),
        reason: record.reason,
        correlation_id: crate::context::correlation_id(),
        metadata: record.metadata,
    };
    let event =
        AuditEvent::parse(app.ids().new_id(), record.outcome, input).map_err(|e| e.to_string())?;
    let receipts = app
        .audit()
        .append(vec![event])
        .await
        .map_err(|e| e.to_string())?;
    receipts
        .first()
        .map(|r| r.seq)
        .ok_or_else(|| "the ledger returned no receipt".to_owned())
}

/// Whether the tenant's ledger holds a record ending the session (`auth.sign_out` or
/// `auth.session_expired` with its hash) after its sign-in record.
///
/// # Errors
/// The ledger could not be read (the caller fails closed).
pub(crate) async fn ended(app: &AppState, session: &SessionData) -> Result<bool, String> {
    let tenant = TenantId::parse(&session.tenant).map_err(|e| e.to_string())?;
    let query = AuditQuery {
        action: Some("auth.".to_owned()),
        resource_type: Some(SESSION_RESOURCE.to_owned()),
        resource_id: Some(hash_hex(&session.sid)),
        cursor: Some(session.since),
        ..AuditQuery::default()
    };
    let found = app
        .audit()
        .repository()
        .search(&tenant, &query, 8)
        .await
        .map_err(|e| e.to_string())?;
    Ok(found.iter().any(|entry| {
        airisk_core::governance::audit_record::AuditRecord::from_leaf_bytes(&entry.leaf)
            .is_ok_and(|r| matches!(r.event().action(), "auth.sign_out" | "auth.session_expired"))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SealKeys {
        SealKeys::derive(&SessionSecret::generate().unwrap()).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_purpose_and_untouched() {
        let k = keys();
        let sealed = k.seal("p", &vec!["a".to_owned()]).unwrap();
        assert_eq!(k.open::<Vec<String>>("p", &sealed).unwrap(), vec!["a"]);
        assert!(k.open::<Vec<String>>("q", &sealed).is_none());
        assert!(keys().open::<Vec<String>>("p", &sealed).is_none());
        let body = sealed.strip_prefix("v1.").unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(body).unwrap();
        for i in [0, 12, bytes.len() - 1] {
            bytes[i] ^= 1;
            let tampered = format!("v1.{}", URL_SAFE_NO_PAD.encode(&bytes));
            assert!(k.open::<Vec<String>>("p", &tampered).is_none(), "byte {i}");
            bytes[i] ^= 1;
        }
        for junk in ["", "v1.", "v1.AAAA", "v2.x", "eyJhbGciOi.x.y"] {
            assert!(k.open::<Vec<String>>("p", junk).is_none(), "{junk}");
        }
        // The same secret gives the same keys (another replica reads the cookie).
        let secret = SessionSecret::new(&[9u8; 40]).unwrap();
        let a = SealKeys::derive(&secret).unwrap();
        let b = SealKeys::derive(&secret).unwrap();
        let sealed = a.seal("p", &1u8).unwrap();
        assert_eq!(b.open::<u8>("p", &sealed), Some(1));
        assert!(SessionSecret::new(&[1u8; 31]).is_err());
        assert_eq!(format!("{secret:?}"), "SessionSecret(<redacted>)");
    }

    #[test]
    fn sessions_expire_when_idle_or_old() {
        let config = SessionConfig {
            secret: None,
            idle_timeout: Duration::from_secs(100),
            absolute_timeout: Duration::from_secs(1000),
        };
        let s = SessionData {
            sid: "x".into(),
            tenant: "acme".into(),
            actor: "alice".into(),
            role: "approver".into(),
            person: true,
            issuer: "i".into(),
            name: None,
            created: 10_000,
            seen: 10_500,
            since: 0,
            id_token: None,
        };
        assert_eq!(s.expired(&config, 10_599), None);
        assert_eq!(s.expired(&config, 10_600), Some("idle"));
        assert_eq!(s.ends_at(&config), 10_600);
        let busy = SessionData {
            seen: 10_990,
            ..s.clone()
        };
        assert_eq!(busy.expired(&config, 10_999), None);
        assert_eq!(busy.expired(&config, 11_000), Some("absolute"));
        assert_eq!(busy.ends_at(&config), 11_000);
        assert!(!format!("{s:?}").contains("\"x\""));
    }

    #[test]
    fn the_session_hash_is_sha256_hex() {
        assert_eq!(
            hash_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

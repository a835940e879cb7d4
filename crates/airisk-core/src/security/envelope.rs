//! Envelope encryption: per-tenant data keys (DEKs) sealed by a key-encryption key (KEK).
//!
//! * The kernel generates each tenant's DEKs (32 bytes from the OS CSPRNG). A DEK is stored only
//!   *wrapped* by the KEK, in the store's `data_keys` table ([`WrappedDataKey`]); the KEK lives
//!   behind the [`KeyProvider`] port (today [`KeyringKeyProvider`]: the `AIRISK_ENCRYPTION_KEYS`
//!   keyring).
//! * A value is sealed with the tenant's newest DEK in the ordinary `v1.<kid>.<payload>` format
//!   (the kid is the DEK's id), with associated data binding tenant, purpose and row identity
//!   ([`EncryptionContext::with_row`]), so a ciphertext moved to another row, column or tenant
//!   does not open.
//! * Rotating the KEK rewraps only the DEKs ([`KeyProvider::rewrap`]); rows are not touched.
//! * Shredding a tenant erases the wrapped DEKs and leaves a tombstone (`wrapped = None`); a value
//!   whose DEK is a tombstone opens as [`Opened::Erased`], a clear state and not an error.
//! * A value about one data subject ([`super::data_subject`]) is sealed under a DEK of its own
//!   (tenant, subject), kid `s…`, whose row names the subject only by its pseudonym; the AAD of
//!   such a value binds that pseudonym too. A per-tenant pseudonym key (kid `h…`, never used to
//!   seal) computes the pseudonyms. Tenant DEKs have kids `d…`. The kind is read from the kid,
//!   which the wrapping binds, so a row cannot be turned into another kind of key.
//! * Rotating a tenant's DEK adds a newer one ([`crate::security::key_custody::rotate_data_key`]):
//!   new values are sealed under the newest, old ones still open under theirs (the kid is in every
//!   ciphertext).
//! * Unwrapped DEKs are cached in memory ([`Envelope::new`]'s capacity bounds it), as
//!   [`Zeroizing`] buffers that are wiped when evicted or dropped. The cache is keyed by the wrapped
//!   text too, and every operation reads the tenant's key list from the store first, so a shred
//!   committed by another process takes effect at the next operation of this one.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::data_subject::{DataSubject, SubjectPseudonym};
use super::encryption::{
    EncryptionContext, EncryptionError, EncryptionKeyId, Encryptor, KEY_LEN, Keyring, Purpose,
    key_id_of,
};
use super::tenant_context::TenantId;

/// The purpose bound into the AAD of a wrapped DEK (the row is the DEK's id).
pub const DEK_WRAP_PURPOSE: &str = "airisk.dek";
/// The purpose bound into the AAD of a prompt template body (the row is `name@version`).
pub const PROMPT_TEMPLATE_PURPOSE: &str = "prompt.template";
/// The purpose bound into the AAD of a model version's sensitive metadata value (the row is
/// `name@version/key`).
pub const MODEL_METADATA_PURPOSE: &str = "model.metadata";
/// Default bound of the unwrapped-DEK cache, in keys.
pub const DEFAULT_DEK_CACHE: usize = 1024;

/// One data key of a tenant as the store keeps it: wrapped by the KEK, or erased.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedDataKey {
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Its id: the kid written in every value it seals.
    pub kid: EncryptionKeyId,
    /// The DEK wrapped by the KEK (`v1.<kek-kid>.…`); `None` once shredded.
    pub wrapped: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// For a data subject's key (kid `s…`): the subject's pseudonym. `None` for tenant and
    /// pseudonym keys, and for every tombstone (a shred clears it, so an erased subject's row no
    /// longer names anyone).
    #[serde(default)]
    pub subject: Option<SubjectPseudonym>,
}

/// What a data key is for, read from the first letter of its id (which the wrapping binds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKeyKind {
    /// The tenant's data key (kid `d…`, and any kid not starting with `s` or `h`).
    Tenant,
    /// One data subject's data key (kid `s…`).
    Subject,
    /// The tenant's pseudonym key (kid `h…`): computes subject pseudonyms, never seals.
    Pseudonym,
}

impl DataKeyKind {
    /// The first letter of the ids of this kind of key.
    pub const fn prefix(self) -> char {
        match self {
            DataKeyKind::Tenant => 'd',
            DataKeyKind::Subject => 's',
            DataKeyKind::Pseudonym => 'h',
        }
    }

    /// The kind of the key `kid`.
    pub fn of(kid: &EncryptionKeyId) -> Self {
        match kid.as_str().as_bytes().first() {
            Some(b's') => DataKeyKind::Subject,
            Some(b'h') => DataKeyKind::Pseudonym,
            _ => DataKeyKind::Tenant,
        }
    }
}

impl WrappedDataKey {
    /// What the key is for.
    pub fn kind(&self) -> DataKeyKind {
        DataKeyKind::of(&self.kid)
    }

    /// Whether the key is live (not shredded).
    pub fn is_live(&self) -> bool {
        self.wrapped.is_some()
    }
}

impl fmt::Debug for WrappedDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedDataKey")
            .field("tenant_id", &self.tenant_id)
            .field("kid", &self.kid)
            .field("shredded", &self.wrapped.is_none())
            .field("created_at", &self.created_at)
            .field("subject", &self.subject)
            .finish()
    }
}

/// Custody of the key-encryption key: wraps and unwraps DEKs without handing the KEK out.
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// Wraps `dek` for `tenant` under the current KEK, bound to the DEK's id.
    ///
    /// # Errors
    /// [`EncryptionError`] if the provider cannot seal.
    fn wrap(
        &self,
        tenant: &TenantId,
        kid: &EncryptionKeyId,
        dek: &[u8; KEY_LEN],
    ) -> Result<String, EncryptionError>;

    /// Unwraps a DEK wrapped by [`KeyProvider::wrap`] for the same tenant and id.
    ///
    /// # Errors
    /// [`EncryptionError::DecryptionFailed`] (wrong tenant, id, KEK, or tampered),
    /// [`EncryptionError::UnknownKeyId`] if the KEK that wrapped it is gone.
    fn unwrap(
        &self,
        tenant: &TenantId,
        kid: &EncryptionKeyId,
        wrapped: &str,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, EncryptionError>;

    /// Rewraps a wrapped DEK under the current KEK (KEK rotation); the DEK never leaves.
    ///
    /// # Errors
    /// As [`KeyProvider::unwrap`].
    fn rewrap(
        &self,
        tenant: &TenantId,
        kid: &EncryptionKeyId,
        wrapped: &str,
    ) -> Result<String, EncryptionError>;

    /// Whether the provider can wrap and unwrap now, cheaply checked (for readiness probes):
    /// `Err` names why not. A keyring in memory is always ready.
    ///
    /// # Errors
    /// A short reason, free of key material and credentials.
    fn readiness(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The KEK is the environment keyring (`AIRISK_ENCRYPTION_KEYS`): its primary key wraps, every key
/// in it unwraps.
#[derive(Debug, Clone)]
pub struct KeyringKeyProvider {
    kek: Arc<Encryptor>,
}

impl KeyringKeyProvider {
    /// A provider over `kek`.
    pub fn new(kek: Arc<Encryptor>) -> Self {
        KeyringKeyProvider { kek }
    }
}

fn wrap_context(
    tenant: &TenantId,
    kid: &EncryptionKeyId,
) -> Result<EncryptionContext, EncryptionError> {
    let purpose = Purpose::parse(DEK_WRAP_PURPOSE).map_err(|_| EncryptionError::KeyMissing)?;
    EncryptionContext::new(tenant.clone(), purpose).with_row(kid.as_str())
}

impl KeyProvider for KeyringKeyProvider {
    fn wrap(
        &self,
        tenant: &TenantId,
        kid: &EncryptionKeyId,
        dek: &[u8; KEY_LEN],
    ) -> Result<String, EncryptionError> {
        self.kek
            .encrypt_bytes(dek, Some(&wrap_context(tenant, kid)?))
    }

    fn unwrap(
        &self,
        tenant: &TenantId,
        kid: &EncryptionKeyId,
        wrapped: &str,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, EncryptionError> {
        let raw = self
            .kek
            .decrypt_bytes(wrapped, Some(&wrap_context(tenant, kid)?))?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if raw.len() != KEY_LEN {
            return Err(EncryptionError::DecryptionFailed);
        }
        key.copy_from_slice(&raw);
        Ok(key)
    }

    fn rewrap(
        &self,
        tenant: &TenantId,
        kid: &EncryptionKeyId,
        wrapped: &str,
    ) -> Result<String, EncryptionError> {
        self.kek.rewrap(wrapped, Some(&wrap_context(tenant, kid)?))
    }
}

/// What opening a sealed value gave.
#[derive(Clone, PartialEq, Eq)]
pub enum Opened {
    /// The plaintext.
    Plain(String),
    /// The value's data key was shredded: the value is erased for good.
    Erased,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Opened::Plain(_) => f.write_str("Plain(<redacted>)"),
            Opened::Erased => f.write_str("Erased"),
        }
    }
}

/// A cached unwrapped DEK: (tenant, kid, wrapped text) → key bytes, wiped on eviction.
struct CachedKey {
    tenant: TenantId,
    kid: EncryptionKeyId,
    wrapped: String,
    key: Zeroizing<[u8; KEY_LEN]>,
}

/// Seals and opens tenant values with their data keys. `Send + Sync`; share behind an `Arc`.
pub struct Envelope {
    provider: Arc<dyn KeyProvider>,
    capacity: usize,
    cache: Mutex<VecDeque<CachedKey>>,
    rng: SystemRandom,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("provider", &self.provider)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Envelope {
    /// An envelope whose KEK is `provider`, caching at most `capacity` unwrapped DEKs (at least 1).
    pub fn new(provider: Arc<dyn KeyProvider>, capacity: usize) -> Self {
        Envelope {
            provider,
            capacity: capacity.max(1),
            cache: Mutex::new(VecDeque::new()),
            rng: SystemRandom::new(),
        }
    }

    /// The key provider (for KEK rotation).
    pub fn provider(&self) -> &Arc<dyn KeyProvider> {
        &self.provider
    }

    /// How many unwrapped DEKs are cached now.
    pub fn cached_keys(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Wipes every cached DEK of `tenant` (after a shred in this process).
    pub fn forget_tenant(&self, tenant: &TenantId) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|c| &c.tenant != tenant);
        }
    }

    /// Wipes the cached DEKs `kids` of `tenant` (after a subject shred in this process).
    pub fn forget_keys(&self, tenant: &TenantId, kids: &[EncryptionKeyId]) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|c| &c.tenant != tenant || !kids.contains(&c.kid));
        }
    }

    /// A new DEK for `tenant`, wrapped; the caller stores it in the same transaction as the first
    /// value it seals. Not cached until stored.
    ///
    /// # Errors
    /// [`EncryptionError::RandomUnavailable`], or the provider's error.
    pub fn new_data_key(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<(WrappedDataKey, Zeroizing<[u8; KEY_LEN]>), EncryptionError> {
        self.new_key(DataKeyKind::Tenant, tenant, None, now)
    }

    /// A new key of `kind` for `tenant` (for a subject's key, `subject` is its pseudonym), wrapped
    /// by the KEK; the caller stores it. Its id is the kind's letter and 30 random hex digits.
    ///
    /// # Errors
    /// [`EncryptionError::RandomUnavailable`], or the provider's error.
    pub fn new_key(
        &self,
        kind: DataKeyKind,
        tenant: &TenantId,
        subject: Option<SubjectPseudonym>,
        now: DateTime<Utc>,
    ) -> Result<(WrappedDataKey, Zeroizing<[u8; KEY_LEN]>), EncryptionError> {
        let mut id = [0u8; 15];
        self.rng
            .fill(&mut id)
            .map_err(|_| EncryptionError::RandomUnavailable)?;
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let kid = EncryptionKeyId::parse(&format!("{}{hex}", kind.prefix()))
            .map_err(|_| EncryptionError::KeyMissing)?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        self.rng
            .fill(key.as_mut())
            .map_err(|_| EncryptionError::RandomUnavailable)?;
        let wrapped = self.provider.wrap(tenant, &kid, &key)?;
        Ok((
            WrappedDataKey {
                tenant_id: tenant.clone(),
                kid,
                wrapped: Some(wrapped),
                created_at: now,
                subject: if kind == DataKeyKind::Subject {
                    subject
                } else {
                    None
                },
            },
            key,
        ))
    }

    /// The pseudonyms of `subject` under every live pseudonym key of the tenant among `keys`,
    /// the oldest key's first (the one new subject keys are made with). Empty if the tenant has
    /// no live pseudonym key (it never sealed a subject's value, or it was shredded). Two keys
    /// exist only if two processes made the tenant's first one at once; a subject shred matches
    /// every pseudonym, so no subject key escapes it.
    ///
    /// # Errors
    /// The provider's errors.
    pub fn pseudonyms(
        &self,
        keys: &[WrappedDataKey],
        tenant: &TenantId,
        subject: &DataSubject,
    ) -> Result<Vec<SubjectPseudonym>, EncryptionError> {
        let mut live: Vec<(&WrappedDataKey, &str)> = keys
            .iter()
            .filter(|k| &k.tenant_id == tenant && k.kind() == DataKeyKind::Pseudonym)
            .filter_map(|k| k.wrapped.as_deref().map(|w| (k, w)))
            .collect();
        live.sort_by(|(a, _), (b, _)| {
            (a.created_at, a.kid.as_str()).cmp(&(b.created_at, b.kid.as_str()))
        });
        live.into_iter()
            .map(|(k, w)| {
                let key = self.unwrapped(tenant, &k.kid, w)?;
                Ok(SubjectPseudonym::compute(&key, subject))
            })
            .collect()
    }

    /// Seals `plaintext` for `ctx` under the newest live key of the data subject whose pseudonym
    /// is `subject`, binding the pseudonym into the AAD. `None` if the subject has no live key
    /// among `keys` (the caller makes one first; see
    /// [`crate::security::key_custody::seal_sensitive_metadata`]).
    ///
    /// # Errors
    /// The provider's and the cipher's errors.
    pub fn seal_for_subject(
        &self,
        keys: &[WrappedDataKey],
        ctx: &EncryptionContext,
        subject: &SubjectPseudonym,
        plaintext: &str,
    ) -> Result<Option<String>, EncryptionError> {
        let newest = keys
            .iter()
            .filter(|k| k.tenant_id == ctx.tenant && k.kind() == DataKeyKind::Subject)
            .filter(|k| k.subject.as_ref() == Some(subject))
            .filter_map(|k| k.wrapped.as_deref().map(|w| (k, w)))
            .max_by_key(|(k, _)| k.created_at);
        let Some((k, wrapped)) = newest else {
            return Ok(None);
        };
        let key = self.unwrapped(&ctx.tenant, &k.kid, wrapped)?;
        let ctx = ctx.clone().with_subject(subject.as_str())?;
        let sealer = Encryptor::new(Keyring::from_raw_keys(&[(k.kid.clone(), &key)])?);
        Ok(Some(sealer.encrypt_with_context(plaintext, &ctx)?))
    }

    /// Seals `plaintext` for `ctx` with the newest live tenant DEK among `keys` (the tenant's keys
    /// as the store holds them; subject and pseudonym keys are never used here). If the tenant has no live DEK, makes one and returns it: the caller
    /// must store it with the sealed value, in one transaction.
    ///
    /// # Errors
    /// The provider's and the cipher's errors.
    pub fn seal(
        &self,
        keys: &[WrappedDataKey],
        ctx: &EncryptionContext,
        plaintext: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, Option<WrappedDataKey>), EncryptionError> {
        let newest = keys
            .iter()
            .filter(|k| k.tenant_id == ctx.tenant && k.kind() == DataKeyKind::Tenant)
            .filter_map(|k| k.wrapped.as_deref().map(|w| (k, w)))
            .max_by_key(|(k, _)| k.created_at);
        let (kid, key, fresh) = match newest {
            Some((k, wrapped)) => (
                k.kid.clone(),
                self.unwrapped(&ctx.tenant, &k.kid, wrapped)?,
                None,
            ),
            None => {
                let (dek, key) = self.new_data_key(&ctx.tenant, now)?;
                (dek.kid.clone(), key, Some(dek))
            }
        };
        let sealer = Encryptor::new(Keyring::from_raw_keys(&[(kid, &key)])?);
        Ok((sealer.encrypt_with_context(plaintext, ctx)?, fresh))
    }

    /// Opens `sealed` for `ctx` with the DEK it names among `keys`. A DEK that was shredded gives
    /// [`Opened::Erased`]. A value sealed under a data subject's key is opened with that key's
    /// subject pseudonym bound into the AAD (the caller need not know the subject).
    ///
    /// # Errors
    /// [`EncryptionError::UnknownKeyId`] if the named DEK never existed for the tenant (a corrupt
    /// or foreign value) or is the pseudonym key, and the cipher's errors (tampered, wrong row,
    /// tenant, purpose or subject).
    pub fn open(
        &self,
        keys: &[WrappedDataKey],
        ctx: &EncryptionContext,
        sealed: &str,
    ) -> Result<Opened, EncryptionError> {
        let kid = key_id_of(sealed)?;
        let Some(entry) = keys
            .iter()
            .find(|k| k.tenant_id == ctx.tenant && k.kid == kid)
        else {
            return Err(EncryptionError::UnknownKeyId { kid });
        };
        let Some(wrapped) = entry.wrapped.as_deref() else {
            return Ok(Opened::Erased);
        };
        let ctx = match entry.kind() {
            DataKeyKind::Tenant => ctx.clone(),
            // A live subject key always names its subject; one that does not was tampered with.
            DataKeyKind::Subject => match &entry.subject {
                Some(subject) => ctx.clone().with_subject(subject.as_str())?,
                None => return Err(EncryptionError::DecryptionFailed),
            },
            DataKeyKind::Pseudonym => return Err(EncryptionError::UnknownKeyId { kid }),
        };
        let key = self.unwrapped(&ctx.tenant, &kid, wrapped)?;
        let opener = Encryptor::new(Keyring::from_raw_keys(&[(kid, &key)])?);
        opener.decrypt_with_context(sealed, &ctx).map(Opened::Plain)
    }

    /// Rewraps every live key of `keys` under the provider's current KEK (KEK rotation): returns
    /// the keys whose wrapped text changed.
    ///
    /// # Errors
    /// The provider's errors; nothing is returned for a partial run.
    pub fn rewrap_keys(
        &self,
        keys: &[WrappedDataKey],
    ) -> Result<Vec<WrappedDataKey>, EncryptionError> {
        let mut changed = Vec::new();
        for k in keys {
            if let Some(w) = k.wrapped.as_deref() {
                let new = self.provider.rewrap(&k.tenant_id, &k.kid, w)?;
                if new != w {
                    changed.push(WrappedDataKey {
                        wrapped: Some(new),
                        ..k.clone()
                    });
                }
            }
        }
        Ok(changed)
    }

    /// The unwrapped DEK, from the cache or the provider (then cached, evicting the oldest).
    fn unwrapped(
        &self,
        tenant: &TenantId,
        kid: &EncryptionKeyId,
        wrapped: &str,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, EncryptionError> {
        if let Ok(mut cache) = self.cache.lock()
            && let Some(pos) = cache
                .iter()
                .position(|c| &c.tenant == tenant && &c.kid == kid && c.wrapped == wrapped)
            && let Some(hit) = cache.remove(pos)
        {
            let key = hit.key.clone();
            cache.push_back(hit);
            return Ok(key);
        }
        let key = self.provider.unwrap(tenant, kid, wrapped)?;
        if let Ok(mut cache) = self.cache.lock() {
            while cache.len() >= self.capacity {
                // Dropping the entry wipes its key bytes (Zeroizing).
                drop(cache.pop_front());
            }
            cache.push_back(CachedKey {
                tenant: tenant.clone(),
                kid: kid.clone(),
                wrapped: wrapped.to_owned(),
                key: key.clone(),
            });
        }
        Ok(key)
    }
}

/// The context a prompt template body is sealed under: tenant, [`PROMPT_TEMPLATE_PURPOSE`], row
/// `name@version`.
///
/// # Errors
/// [`EncryptionError::RowTooLong`] (cannot happen for a valid prompt name).
pub fn prompt_template_context(
    tenant: &TenantId,
    name: &str,
    version: u32,
) -> Result<EncryptionContext, EncryptionError> {
    let purpose =
        Purpose::parse(PROMPT_TEMPLATE_PURPOSE).map_err(|_| EncryptionError::KeyMissing)?;
    EncryptionContext::new(tenant.clone(), purpose).with_row(format!("{name}@{version}"))
}

/// The context a model version's sensitive metadata value is sealed under: tenant,
/// [`MODEL_METADATA_PURPOSE`], row `name@version/key`. A model name and version hold neither `@`
/// nor `/`, so the row names exactly one (model, version, key).
///
/// # Errors
/// [`EncryptionError::RowTooLong`] for a row past 1024 bytes (a key longer than the registry
/// allows).
pub fn model_metadata_context(
    tenant: &TenantId,
    name: &str,
    version: &str,
    key: &str,
) -> Result<EncryptionContext, EncryptionError> {
    let purpose =
        Purpose::parse(MODEL_METADATA_PURPOSE).map_err(|_| EncryptionError::KeyMissing)?;
    EncryptionContext::new(tenant.clone(), purpose).with_row(format!("{name}@{version}/{key}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)] // tests: a failure should stop loudly
mod tests {
    use super::*;

    fn envelope(capacity: usize) -> Envelope {
        let kek =
            Encryptor::from_env_value("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        Envelope::new(Arc::new(KeyringKeyProvider::new(Arc::new(kek))), capacity)
    }

    #[test]
    fn the_unwrapped_key_cache_is_bounded_and_forgets_a_tenant() {
        let env = envelope(2);
        let now = Utc::now();
        let mut stored = Vec::new();
        for t in ["a", "b", "c"] {
            let tenant = TenantId::parse(t).unwrap();
            let ctx = prompt_template_context(&tenant, "p", 1).unwrap();
            let (sealed, fresh) = env.seal(&[], &ctx, "secret", now).unwrap();
            let keys = vec![fresh.unwrap()];
            assert_eq!(
                env.open(&keys, &ctx, &sealed).unwrap(),
                Opened::Plain("secret".into())
            );
            stored.push((tenant, ctx, sealed, keys));
        }
        assert_eq!(
            env.cached_keys(),
            2,
            "at most `capacity` keys, oldest evicted"
        );
        // An evicted key is unwrapped again from its wrapped form.
        let (_, ctx, sealed, keys) = &stored[0];
        assert_eq!(
            env.open(keys, ctx, sealed).unwrap(),
            Opened::Plain("secret".into())
        );
        env.forget_tenant(&stored[0].0);
        assert_eq!(env.cached_keys(), 1);
    }

    #[test]
    fn debug_never_shows_keys_wrapped_keys_or_plaintext() {
        let env = envelope(4);
        let tenant = TenantId::parse("acme").unwrap();
        let (dek, key) = env.new_data_key(&tenant, Utc::now()).unwrap();
        let wrapped = dek.wrapped.clone().unwrap();
        let shown = format!("{dek:?} {env:?} {:?}", Opened::Plain("CANARY".into()));
        assert!(!shown.contains(&wrapped), "{shown}");
        assert!(!shown.contains("CANARY"), "{shown}");
        assert!(!shown.contains(&format!("{:?}", key.as_slice())), "{shown}");
        assert!(shown.contains("shredded: false"));
    }

    #[test]
    fn a_wrapped_key_opens_only_for_its_tenant_and_id() {
        let env = envelope(4);
        let acme = TenantId::parse("acme").unwrap();
        let (dek, key) = env.new_data_key(&acme, Utc::now()).unwrap();
        let wrapped = dek.wrapped.as_deref().unwrap();
        let provider = env.provider();
        assert_eq!(*provider.unwrap(&acme, &dek.kid, wrapped).unwrap(), *key);
        let other = TenantId::parse("globex").unwrap();
        assert!(provider.unwrap(&other, &dek.kid, wrapped).is_err());
        let other_id = EncryptionKeyId::parse("dother").unwrap();
        assert!(provider.unwrap(&acme, &other_id, wrapped).is_err());
    }
}

//! The denial throttle: a principal that keeps being refused is answered `429 Too Many Requests`
//! before it can grow its tenant's ledger without bound.
//!
//! # Design
//!
//! * Every refusal stays recorded (a denial record in the ledger); what is bounded is how fast one
//!   principal can cause them. Each principal has a token bucket of [`DenialThrottleConfig::burst`]
//!   tokens, refilled at [`DenialThrottleConfig::per_minute`] tokens a minute. A refused write
//!   (`403`, `404` or `409` to a non-`GET` request: the answers whose refusal the services record
//!   as a denial) takes one token. A principal whose bucket is empty gets `429` with `Retry-After`
//!   (seconds until one token is back) for every `/v1` request, before any service runs, so the
//!   throttled request itself writes nothing. Counted in `airisk_denials_throttled_total`.
//! * The key is `(tenant, canonical actor)` of a verified token: nothing a client controls before
//!   authentication becomes a key. The map holds at most [`DenialThrottleConfig::max_principals`]
//!   buckets; inserting into a full map first drops the buckets that have refilled completely
//!   (they are the same as absent), then the least recently charged one. Memory is bounded whatever
//!   the callers do.
//! * Per process: with several instances behind a load balancer each applies its own bucket.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use airisk_core::security::tenant_context::{ActorId, Principal, TenantId};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// Default refill rate: 30 refusals a minute.
pub const DEFAULT_DENIALS_PER_MINUTE: u32 = 30;
/// Default bucket size: 60 refusals in a burst.
pub const DEFAULT_DENIAL_BURST: u32 = 60;
/// Default most principals tracked at once.
pub const DEFAULT_MAX_PRINCIPALS: usize = 10_000;

/// How fast refusals are allowed per principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenialThrottleConfig {
    /// Tokens added per minute (sustained refusals a minute). 0 turns the throttle off.
    pub per_minute: u32,
    /// Bucket size: refusals allowed in a burst before throttling starts.
    pub burst: u32,
    /// Most principals tracked at once (the map's bound).
    pub max_principals: usize,
}

impl Default for DenialThrottleConfig {
    fn default() -> Self {
        DenialThrottleConfig {
            per_minute: DEFAULT_DENIALS_PER_MINUTE,
            burst: DEFAULT_DENIAL_BURST,
            max_principals: DEFAULT_MAX_PRINCIPALS,
        }
    }
}

/// Who a bucket belongs to: a verified token's tenant and canonical actor.
pub(crate) type PrincipalKey = (TenantId, ActorId);

/// The key of `principal`.
pub(crate) fn key_of(principal: &Principal) -> PrincipalKey {
    (principal.tenant().clone(), principal.actor().to_canonical())
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The per-principal token buckets. Cheap to share; one lock, held for a map operation only.
#[derive(Debug)]
pub struct DenialThrottle {
    config: DenialThrottleConfig,
    buckets: Mutex<HashMap<PrincipalKey, Bucket>>,
    throttled: AtomicU64,
}

impl DenialThrottle {
    /// A throttle with `config`.
    pub fn new(config: DenialThrottleConfig) -> Self {
        DenialThrottle {
            config,
            buckets: Mutex::new(HashMap::new()),
            throttled: AtomicU64::new(0),
        }
    }

    fn enabled(&self) -> bool {
        self.config.per_minute > 0 && self.config.burst > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PrincipalKey, Bucket>> {
        // A poisoned lock only means a panic elsewhere mid-update of plain numbers.
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let per_sec = f64::from(self.config.per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(f64::from(self.config.burst));
        bucket.updated = now;
    }

    /// `Err(retry_after)` when `key` has no token left (and counts the throttled request).
    pub(crate) fn check(&self, key: &PrincipalKey) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.lock();
        let Some(bucket) = buckets.get_mut(key) else {
            return Ok(());
        };
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            return Ok(());
        }
        let per_sec = f64::from(self.config.per_minute) / 60.0;
        let wait = ((1.0 - bucket.tokens) / per_sec).ceil().max(1.0);
        drop(buckets);
        self.throttled.fetch_add(1, Ordering::Relaxed);
        Err(Duration::from_secs_f64(wait))
    }

    /// Takes one token from `key`'s bucket: a refusal was answered.
    pub(crate) fn charge(&self, key: PrincipalKey) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let burst = f64::from(self.config.burst);
        let mut buckets = self.lock();
        if !buckets.contains_key(&key) && buckets.len() >= self.config.max_principals.max(1) {
            self.evict(&mut buckets, now);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        self.refill(bucket, now);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }

    /// Makes room for one bucket: drops every full one, or else the least recently charged.
    fn evict(&self, buckets: &mut HashMap<PrincipalKey, Bucket>, now: Instant) {
        let burst = f64::from(self.config.burst);
        let per_sec = f64::from(self.config.per_minute) / 60.0;
        buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
            b.tokens + elapsed * per_sec < burst
        });
        if buckets.len() >= self.config.max_principals.max(1) {
            let oldest = buckets
                .iter()
                .min_by_key(|(_, b)| b.updated)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                buckets.remove(&k);
            }
        }
    }

    /// How many principals are tracked now.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    /// Requests answered 429 so far.
    pub fn throttled_total(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// The throttle's metrics, Prometheus text format.
    pub fn render(&self) -> String {
        format!(
            "# HELP airisk_denials_throttled_total Requests answered 429 because their principal kept being refused.\n\
             # TYPE airisk_denials_throttled_total counter\n\
             airisk_denials_throttled_total {}\n\
             # HELP airisk_denial_throttle_principals Principals with a denial bucket now (bounded).\n\
             # TYPE airisk_denial_throttle_principals gauge\n\
             airisk_denial_throttle_principals {}\n",
            self.throttled_total(),
            self.tracked()
        )
    }
}

/// Where the [`crate::extract::Caller`] extractor leaves the verified principal's key for
/// [`charge_refusals`] to read once the response is known.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallerSlot(std::sync::Arc<Mutex<Option<PrincipalKey>>>);

impl CallerSlot {
    /// Records the request's principal.
    pub(crate) fn set(&self, key: PrincipalKey) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(key);
        }
    }

    fn take(&self) -> Option<PrincipalKey> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

/// Middleware around every route: after the response, charges the caller's bucket when a write
/// was refused (`403`, `404`, `409`), the answers whose refusal the services record as a denial.
pub(crate) async fn charge_refusals(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let write = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let response = next.run(request).await;
    if write
        && matches!(response.status().as_u16(), 403 | 404 | 409)
        && let Some(key) = slot.take()
    {
        state.denials().charge(key);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed step should stop the test loudly
    use super::*;

    fn key(actor: &str) -> PrincipalKey {
        (
            TenantId::parse("acme").unwrap(),
            ActorId::parse(actor).unwrap(),
        )
    }

    #[test]
    fn a_bucket_empties_after_burst_refusals_and_says_when_to_retry() {
        let t = DenialThrottle::new(DenialThrottleConfig {
            per_minute: 1,
            burst: 3,
            max_principals: 10,
        });
        for _ in 0..3 {
            assert!(t.check(&key("eve")).is_ok());
            t.charge(key("eve"));
        }
        let wait = t.check(&key("eve")).unwrap_err();
        // One token a minute: the next is (almost) a minute away.
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        assert_eq!(t.throttled_total(), 1);
        // Someone else is not affected.
        assert!(t.check(&key("bob")).is_ok());
    }

    #[test]
    fn the_map_never_holds_more_than_its_bound() {
        let t = DenialThrottle::new(DenialThrottleConfig {
            per_minute: 1,
            burst: 2,
            max_principals: 100,
        });
        for i in 0..1000 {
            t.charge(key(&format!("user{i}")));
            assert!(t.tracked() <= 100);
        }
        assert_eq!(t.tracked(), 100);
    }

    #[test]
    fn a_zero_rate_turns_the_throttle_off() {
        let t = DenialThrottle::new(DenialThrottleConfig {
            per_minute: 0,
            burst: 1,
            max_principals: 10,
        });
        for _ in 0..10 {
            t.charge(key("eve"));
        }
        assert!(t.check(&key("eve")).is_ok());
        assert_eq!(t.tracked(), 0);
    }
}

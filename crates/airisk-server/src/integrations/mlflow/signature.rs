//! MLflow's webhook signature (OSS 3.x, `mlflow/webhooks/delivery.py`): headers
//! `X-MLflow-Delivery-Id`, `X-MLflow-Timestamp` (Unix seconds) and `X-MLflow-Signature`
//! = `v1,` + base64(HMAC-SHA256(secret, `"<delivery id>.<timestamp>.<body>"`)), and the replay
//! window that goes with it, whose memory of delivery ids lives in the governance database.

use std::sync::Arc;

use airisk_core::ports::{DeliveryClaim, GovernanceStore};
use airisk_core::security::tenant_context::TenantId;
use chrono::{DateTime, Utc};

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

/// Header with the delivery's unique id.
pub const DELIVERY_ID_HEADER: &str = "x-mlflow-delivery-id";
/// Header with the delivery's Unix timestamp in seconds.
pub const TIMESTAMP_HEADER: &str = "x-mlflow-timestamp";
/// Header with `v1,<base64 HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "x-mlflow-signature";

/// Oldest delivery accepted, in seconds before now.
pub const MAX_AGE_SECS: i64 = 300;
/// Furthest in the future a delivery's timestamp may be (clock skew), in seconds.
pub const MAX_SKEW_SECS: i64 = 60;

/// Why a delivery was refused before its payload was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A signature header is missing or not in the `v1,<base64>` form (401).
    #[error("the delivery is not signed: {0}")]
    Unsigned(&'static str),
    /// The signature does not match the body under this instance's secret (401).
    #[error("the delivery's signature does not verify")]
    BadSignature,
    /// The timestamp is outside the accepted window (401).
    #[error(
        "the delivery's timestamp is {age} s from now; at most {MAX_AGE_SECS} s old and {MAX_SKEW_SECS} s ahead are accepted"
    )]
    Stale {
        /// Now minus the timestamp, in seconds.
        age: i64,
    },
    /// This delivery id was already processed, or is being processed, by a process on this
    /// database (409).
    #[error("delivery {0} was already received")]
    Replayed(String),
    /// The shared replay memory (the governance database) did not answer (503; the sender
    /// retries).
    #[error("the replay memory is unavailable: {0}")]
    MemoryUnavailable(String),
}

/// A delivery whose signature and timestamp verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Its delivery id.
    pub delivery_id: String,
    /// Its timestamp (Unix seconds).
    pub timestamp: i64,
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, Refusal> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(Refusal::Unsigned(name))
}

/// Checks a delivery's signature (constant-time) and timestamp against `secret` at `now`
/// (Unix seconds). The body is the exact bytes received.
///
/// # Errors
/// [`Refusal::Unsigned`], [`Refusal::BadSignature`], [`Refusal::Stale`].
pub fn verify(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<Verified, Refusal> {
    let delivery_id = header(headers, DELIVERY_ID_HEADER)?;
    let timestamp_text = header(headers, TIMESTAMP_HEADER)?;
    let signature = header(headers, SIGNATURE_HEADER)?;
    if delivery_id.len() > 128 || !delivery_id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Refusal::Unsigned(DELIVERY_ID_HEADER));
    }
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| Refusal::Unsigned(TIMESTAMP_HEADER))?;
    // MLflow may in time add more signatures separated by spaces; any one v1 that verifies will do.
    let mut message = Vec::with_capacity(delivery_id.len() + timestamp_text.len() + body.len() + 2);
    message.extend_from_slice(delivery_id.as_bytes());
    message.push(b'.');
    message.extend_from_slice(timestamp_text.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut any_v1 = false;
    let mut verified = false;
    for candidate in signature.split(' ') {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        any_v1 = true;
        let Ok(tag) = STANDARD.decode(encoded) else {
            continue;
        };
        // ring compares in constant time.
        if hmac::verify(&key, &message, &tag).is_ok() {
            verified = true;
        }
    }
    if !any_v1 {
        return Err(Refusal::Unsigned(SIGNATURE_HEADER));
    }
    if !verified {
        return Err(Refusal::BadSignature);
    }
    // Checked after the signature, so an unauthenticated sender learns nothing about our clock.
    let age = now.saturating_sub(timestamp);
    if !(-MAX_SKEW_SECS..=MAX_AGE_SECS).contains(&age) {
        return Err(Refusal::Stale { age });
    }
    Ok(Verified {
        delivery_id: delivery_id.to_owned(),
        timestamp,
    })
}

/// Signs like MLflow does (for tests and for documentation by example).
pub fn sign(secret: &[u8], delivery_id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(delivery_id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("v1,{}", STANDARD.encode(ctx.sign().as_ref()))
}

/// How long a delivery being processed holds its claim before it is settled (or released on a
/// failure). A process that dies mid-delivery leaves a claim that lapses after this long.
pub const IN_FLIGHT_LEASE_SECS: i64 = 120;

/// The replay memory of one instance's deliveries, kept in the governance database
/// ([`GovernanceStore::claim_delivery`]) so that every `airisk serve` on the same database refuses a
/// delivery any of them processed. A delivery whose timestamp is outside the window is refused by
/// [`verify`] anyway, so a claim is kept for the window (plus the skew) and then pruned.
#[derive(Debug, Clone)]
pub struct ReplayMemory {
    store: Arc<dyn GovernanceStore>,
    tenant: TenantId,
    source: String,
}

impl ReplayMemory {
    /// The memory of `source` (e.g. `mlflow:risk`) of `tenant` in `store`.
    pub fn new(store: Arc<dyn GovernanceStore>, tenant: TenantId, source: String) -> Self {
        ReplayMemory {
            store,
            tenant,
            source,
        }
    }

    fn claim(&self, delivery: &Verified, until: i64) -> DeliveryClaim {
        DeliveryClaim {
            tenant: self.tenant.clone(),
            source: self.source.clone(),
            delivery_id: delivery.delivery_id.clone(),
            until: DateTime::from_timestamp(until, 0).unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// Claims `delivery` for processing at `now` (Unix seconds), for [`IN_FLIGHT_LEASE_SECS`].
    ///
    /// # Errors
    /// [`Refusal::Replayed`] when a process on this database claimed it already (being processed
    /// or processed within the window); [`Refusal::MemoryUnavailable`] when the store cannot
    /// answer (the delivery is refused rather than processed without replay protection).
    pub async fn begin(&self, delivery: &Verified, now: i64) -> Result<(), Refusal> {
        let claim = self.claim(delivery, now.saturating_add(IN_FLIGHT_LEASE_SECS));
        let at = DateTime::from_timestamp(now, 0).unwrap_or(DateTime::<Utc>::MAX_UTC);
        match self.store.claim_delivery(&claim, at).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::Replayed(delivery.delivery_id.clone())),
            Err(e) => Err(Refusal::MemoryUnavailable(e.to_string())),
        }
    }

    /// Marks a claimed delivery processed: it is a replay until its timestamp leaves the window.
    pub async fn complete(&self, delivery: &Verified, now: i64) {
        let until = delivery
            .timestamp
            .saturating_add(MAX_AGE_SECS + MAX_SKEW_SECS)
            .max(now.saturating_add(IN_FLIGHT_LEASE_SECS));
        if let Err(e) = self
            .store
            .settle_delivery(&self.claim(delivery, until))
            .await
        {
            // The in-flight claim still refuses the delivery for its lease; past it a replay is
            // processed again, which is idempotent.
            tracing::warn!(source = %self.source, error = %e, "could not settle a webhook delivery's claim");
        }
    }

    /// Releases a claimed delivery that failed, so the sender's retry (same id) is processed.
    pub async fn abandon(&self, delivery: &Verified) {
        if let Err(e) = self.store.release_delivery(&self.claim(delivery, 0)).await {
            tracing::warn!(source = %self.source, error = %e, "could not release a webhook delivery's claim; its retry waits for the lease");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(DELIVERY_ID_HEADER, HeaderValue::from_str(id).unwrap());
        h.insert(
            TIMESTAMP_HEADER,
            HeaderValue::from_str(&ts.to_string()).unwrap(),
        );
        h.insert(SIGNATURE_HEADER, HeaderValue::from_str(sig).unwrap());
        h
    }

    #[test]
    fn a_signature_computed_by_mlflow_verifies() {
        // Captured from MLflow 3.4.0 (secret "s3cret-s3cret-s3cret"), see docs/MLFLOW.md.
        let body = br#"{"entity": "model_version_alias", "action": "created", "timestamp": "2026-11-29T22:05:09.721849+00:00", "data": {"name": "credit", "alias": "production", "version": "1"}}"#;
        let h = headers(
            "e299df88-aef6-4f55-b089-a8ee04f958fb",
            1795989909,
            "v1,f+zjxaeK6K/kGTmg50iXS8KyWIsaHAtMfLp5sPzGR98=",
        );
        let v = verify(b"s3cret-s3cret-s3cret", &h, body, 1795989910).unwrap();
        assert_eq!(v.delivery_id, "e299df88-aef6-4f55-b089-a8ee04f958fb");
        assert_eq!(
            sign(b"s3cret-s3cret-s3cret", &v.delivery_id, v.timestamp, body),
            "v1,f+zjxaeK6K/kGTmg50iXS8KyWIsaHAtMfLp5sPzGR98="
        );
    }

    #[test]
    fn a_changed_body_a_wrong_secret_or_an_old_timestamp_is_refused() {
        let body = b"{}";
        let sig = sign(b"k", "d1", 1000, body);
        let h = headers("d1", 1000, &sig);
        assert!(verify(b"k", &h, body, 1000).is_ok());
        assert_eq!(verify(b"k", &h, b"{ }", 1000), Err(Refusal::BadSignature));
        assert_eq!(verify(b"x", &h, body, 1000), Err(Refusal::BadSignature));
        assert_eq!(
            verify(b"k", &h, body, 1000 + MAX_AGE_SECS + 1),
            Err(Refusal::Stale {
                age: MAX_AGE_SECS + 1
            })
        );
        assert!(matches!(
            verify(b"k", &headers("d1", 1000, "v2,abc"), body, 1000),
            Err(Refusal::Unsigned(_))
        ));
    }

    #[tokio::test]
    async fn a_processed_delivery_is_a_replay_and_a_failed_one_may_be_retried() {
        let clock = Arc::new(airisk_testkit::fixtures::ManualClock::new());
        let store: Arc<dyn GovernanceStore> = Arc::new(airisk_testkit::InMemoryStore::new(clock));
        let acme = TenantId::parse("acme").unwrap();
        let g = ReplayMemory::new(store.clone(), acme.clone(), "mlflow:i".into());
        let d = Verified {
            delivery_id: "d".into(),
            timestamp: 1_000,
        };
        g.begin(&d, 1_000).await.unwrap();
        // Being processed: a second claim (another process) is refused.
        assert_eq!(g.begin(&d, 1_001).await, Err(Refusal::Replayed("d".into())));
        g.abandon(&d).await;
        g.begin(&d, 1_002).await.unwrap();
        g.complete(&d, 1_002).await;
        let end = 1_000 + MAX_AGE_SECS + MAX_SKEW_SECS;
        assert_eq!(g.begin(&d, end).await, Err(Refusal::Replayed("d".into())));
        // Past the window the claim is pruned (and `verify` refuses such a timestamp anyway).
        g.begin(&d, end + 1).await.unwrap();
        // Another instance's delivery ids are its own.
        let j = ReplayMemory::new(store, acme, "mlflow:j".into());
        j.begin(&d, 1_000).await.unwrap();
    }
}

//! Admission control of `/v1` requests: a bounded number in flight, taken only by authenticated
//! callers, with a per-tenant share so one tenant cannot take every slot.
//!
//! A request is admitted once its bearer token verified (the [`crate::Caller`] extractor; for
//! the console, the session guard once the person's token verified), before its body is read. It first takes a slot of its tenant's share, waiting in its tenant's own line
//! if the tenant is at its share, then a slot of the global limit. So:
//!
//! * unauthenticated requests never hold a slot (they are answered 401 before);
//! * one tenant holds at most `max_in_flight_per_tenant` slots; the others stay free for other
//!   tenants, whatever that tenant's requests do (slow bodies included);
//! * a slot is held at most for the request timeout (and a slow body for the body read timeout).
//!
//! The per-tenant lines exist only while a tenant has requests in flight or waiting, so their
//! number is bounded by the requests in flight, never by the tenants ever seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// The admission control: the global limit and the per-tenant lines.
#[derive(Debug)]
pub(crate) struct Admission {
    global: Option<Arc<Semaphore>>,
    /// Slots per tenant; 0: no per-tenant limit.
    share: usize,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Why a request could not be admitted.
#[derive(Debug, thiserror::Error)]
#[error("admission control is shut down")]
pub(crate) struct Closed;

impl Admission {
    /// `max` slots in all (0: unlimited), at most `share` per tenant (0: no per-tenant limit).
    pub(crate) fn new(max: usize, share: usize) -> Self {
        let share = if max > 0 && share > max { max } else { share };
        Admission {
            global: (max > 0).then(|| Arc::new(Semaphore::new(max))),
            share,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a slot for a request of `tenant`: first the tenant's, then the global one.
    /// Dropping the future gives up the wait; dropping the [`Slot`] frees the slot.
    ///
    /// # Errors
    /// [`Closed`] if a semaphore was closed (never, in practice).
    pub(crate) async fn admit(
        self: &Arc<Self>,
        tenant: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Slot, Closed> {
        let line = (self.share > 0).then(|| TenantLine::join(self, tenant));
        let waiting = Waiting::start(metrics.clone());
        let tenant_permit = match &line {
            Some(l) => Some(
                l.semaphore
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Closed)?,
            ),
            None => None,
        };
        let global_permit = match &self.global {
            Some(g) => Some(g.clone().acquire_owned().await.map_err(|_| Closed)?),
            None => None,
        };
        drop(waiting);
        metrics.admitted(1);
        Ok(Slot {
            _global: global_permit,
            _tenant: tenant_permit,
            _line: line,
            metrics,
        })
    }

    /// How many tenants have a line now (requests in flight or waiting).
    #[cfg(test)]
    fn lines(&self) -> usize {
        self.tenants.lock().map(|t| t.len()).unwrap_or_default()
    }
}

/// An admitted request's slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    // Field order is drop order: the permits go back before the line is left.
    _global: Option<OwnedSemaphorePermit>,
    _tenant: Option<OwnedSemaphorePermit>,
    _line: Option<TenantLine>,
    metrics: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.admitted(-1);
    }
}

/// Counts a request waiting for a slot until dropped (admitted, or given up).
struct Waiting(Arc<Metrics>);

impl Waiting {
    fn start(metrics: Arc<Metrics>) -> Self {
        metrics.waiting(1);
        Waiting(metrics)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting(-1);
    }
}

/// A request's place in its tenant's line; the line is removed when its last request leaves.
#[derive(Debug)]
struct TenantLine {
    admission: Arc<Admission>,
    tenant: String,
    semaphore: Arc<Semaphore>,
}

impl TenantLine {
    fn join(admission: &Arc<Admission>, tenant: &str) -> Self {
        let semaphore = match admission.tenants.lock() {
            Ok(mut lines) => lines
                .entry(tenant.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(admission.share)))
                .clone(),
            // A poisoned map: a private line of the tenant's share still bounds this request.
            Err(_) => Arc::new(Semaphore::new(admission.share)),
        };
        TenantLine {
            admission: admission.clone(),
            tenant: tenant.to_owned(),
            semaphore,
        }
    }
}

impl Drop for TenantLine {
    fn drop(&mut self) {
        let Ok(mut lines) = self.admission.tenants.lock() else {
            return;
        };
        // Every holder of the line clones it under this lock; the map's copy and ours are the
        // last two when nobody else is in the line. (Our permit was dropped before us.)
        if lines
            .get(&self.tenant)
            .is_some_and(|s| Arc::ptr_eq(s, &self.semaphore) && Arc::strong_count(s) == 2)
        {
            lines.remove(&self.tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tenant_at_its_share_waits_while_another_tenant_is_admitted() {
        let metrics = Arc::new(Metrics::new());
        let admission = Arc::new(Admission::new(4, 2));
        let a1 = admission.admit("a", metrics.clone()).await.unwrap();
        let a2 = admission.admit("a", metrics.clone()).await.unwrap();
        // A third request of tenant a waits; tenant b is admitted meanwhile.
        let waiting = tokio::spawn({
            let admission = admission.clone();
            let metrics = metrics.clone();
            async move { admission.admit("a", metrics).await.map(|_| ()) }
        });
        while !metrics
            .render()
            .contains("airisk_http_requests_waiting 1\n")
        {
            tokio::task::yield_now().await;
        }
        let b = admission.admit("b", metrics.clone()).await.unwrap();
        assert!(!waiting.is_finished());
        assert!(
            metrics
                .render()
                .contains("airisk_http_requests_admitted 3\n")
        );
        drop(a1);
        waiting.await.unwrap().unwrap();
        drop((a2, b));
        // Every line is gone once nobody is in it.
        assert_eq!(admission.lines(), 0);
        assert!(
            metrics
                .render()
                .contains("airisk_http_requests_admitted 0\n")
        );
        assert!(
            metrics
                .render()
                .contains("airisk_http_requests_waiting 0\n")
        );
    }

    #[test]
    fn a_share_larger_than_the_limit_is_the_limit() {
        assert_eq!(Admission::new(2, 8).share, 2);
        assert_eq!(Admission::new(0, 8).share, 8);
    }
}

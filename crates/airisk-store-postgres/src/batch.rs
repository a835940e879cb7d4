//! Group commit within a process: one queue per tenant, drained by one task at a time.
//!
//! A caller puts its request on its tenant's queue. If no task is draining that queue, the caller
//! spawns one; the drainer takes everything queued (up to the event budget), commits it as one
//! transaction (see [`crate::write`]), answers each caller, and loops until the queue is empty.
//! While a batch's `COMMIT` waits for the WAL flush, new requests pile up and form the next
//! batch: under load one flush carries many callers. The drainer keeps the head its last batch
//! committed and leaves it for the tenant's next drainer ([`crate::write::Known`]), so a batch
//! need not lock and read it first. Tenants drain independently, in parallel, up to the pool's
//! size. The drainer is a spawned task, not the caller, so a caller that stops
//! waiting (its future dropped) strands nobody.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use airisk_core::governance::audit_record::AuditReceipt;
use airisk_core::ports::{Clock, StoreError};
use airisk_core::security::tenant_context::TenantId;
use sqlx::PgPool;
use tokio::sync::oneshot;

use crate::write::{Known, Work, commit_batch};

type Reply = oneshot::Sender<Result<Vec<AuditReceipt>, StoreError>>;

/// A queued request.
#[derive(Debug)]
struct Request {
    work: Work,
    reply: Reply,
}

/// The per-store state shared with drainer tasks.
#[derive(Debug)]
pub(crate) struct Batcher {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    max_batch_events: usize,
    state: Mutex<State>,
}

/// The queues, and what each tenant's last drainer knew of its head.
#[derive(Debug, Default)]
struct State {
    /// A tenant is present while a drainer owns it; its queue may be empty meanwhile.
    queues: HashMap<TenantId, VecDeque<Request>>,
    /// Left by a drainer when it released its tenant, taken by the next one. One entry per tenant
    /// written by this process (a size and at most 64 hashes each).
    heads: HashMap<TenantId, Known>,
}

impl Batcher {
    pub(crate) fn new(pool: PgPool, clock: Arc<dyn Clock>, max_batch_events: usize) -> Self {
        Batcher {
            pool,
            clock,
            max_batch_events: max_batch_events.max(1),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `work` for `tenant` and waits for its outcome.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        tenant: TenantId,
        work: Work,
    ) -> Result<Vec<AuditReceipt>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = Request { work, reply };
        let spawn = {
            let mut state = self.state();
            match state.queues.entry(tenant.clone()) {
                Entry::Occupied(mut queue) => {
                    queue.get_mut().push_back(request);
                    false
                }
                Entry::Vacant(slot) => {
                    slot.insert(VecDeque::from([request]));
                    true
                }
            }
        };
        if spawn {
            let batcher = Arc::clone(self);
            tokio::spawn(async move { batcher.drain(tenant).await });
        }
        answer.await.map_err(|_| StoreError::Unavailable {
            message: "the postgres batch writer stopped before answering".to_owned(),
        })?
    }

    /// Takes the next batch of `tenant`, or releases the tenant if its queue is empty, leaving
    /// `known` for its next drainer (in the same critical section, so that one finds it).
    fn next_batch(&self, tenant: &TenantId, known: &mut Known) -> Option<Vec<Request>> {
        let mut state = self.state();
        let state = &mut *state;
        let queue = state.queues.get_mut(tenant)?;
        if queue.is_empty() {
            state.queues.remove(tenant);
            state.heads.insert(tenant.clone(), std::mem::take(known));
            return None;
        }
        let take = batch_len(queue.iter().map(|r| r.work.weight()), self.max_batch_events);
        Some(queue.drain(..take).collect())
    }

    async fn drain(self: Arc<Self>, tenant: TenantId) {
        // If this task dies (runtime shut down mid-batch), the guard releases the tenant and
        // answers whoever is still queued, so nobody waits forever.
        let mut guard = DrainGuard {
            batcher: &self,
            tenant: &tenant,
            armed: true,
        };
        let mut known = self.state().heads.remove(&tenant).unwrap_or_default();
        while let Some(batch) = self.next_batch(&tenant, &mut known) {
            let (works, replies): (Vec<Work>, Vec<Reply>) =
                batch.into_iter().map(|r| (r.work, r.reply)).unzip();
            let results =
                commit_batch(&self.pool, self.clock.as_ref(), &tenant, works, &mut known).await;
            for (reply, result) in replies.into_iter().zip(results) {
                // A dropped receiver means the caller stopped waiting; the outcome stands.
                let _ = reply.send(result);
            }
        }
        guard.armed = false;
    }
}

/// How many requests from the front of a queue whose requests weigh `weights` form the next
/// batch: as many as fit in `max` events together, and always the first (a request heavier than
/// the whole budget goes alone rather than never).
fn batch_len(weights: impl IntoIterator<Item = usize>, max: usize) -> usize {
    let mut budget = 0;
    let mut taken = 0;
    for weight in weights {
        if taken > 0 && budget + weight > max {
            break;
        }
        budget += weight;
        taken += 1;
    }
    taken
}

struct DrainGuard<'a> {
    batcher: &'a Batcher,
    tenant: &'a TenantId,
    armed: bool,
}

impl Drop for DrainGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let stranded = self.batcher.state().queues.remove(self.tenant);
        for request in stranded.into_iter().flatten() {
            let _ = request.reply.send(Err(StoreError::Unavailable {
                message: "the postgres batch writer stopped".to_owned(),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::batch_len;

    #[test]
    fn a_batch_takes_what_fits_in_its_budget_and_always_one() {
        // (weights of the queued requests, budget, requests taken), worked out by hand.
        let cases: &[(&[usize], usize, usize)] = &[
            (&[], 4, 0),
            (&[1, 1, 1], 2, 2),
            (&[1, 1, 1], 3, 3),
            (&[1, 1, 1], 4, 3),
            (&[2, 2, 1], 4, 2),
            (&[2, 3], 4, 1),
            (&[5], 4, 1),
            (&[5, 1], 4, 1),
            (&[1, 5], 4, 1),
            (&[3, 1, 1], 4, 2),
            (&[1; 10], 1, 1),
        ];
        for &(weights, max, taken) in cases {
            assert_eq!(
                batch_len(weights.iter().copied(), max),
                taken,
                "weights {weights:?}, budget {max}"
            );
        }
    }
}

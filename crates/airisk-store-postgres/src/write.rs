//! The write path: one transaction per batch, serialised per tenant by the tenant's head row.
//!
//! A batch transaction:
//!
//! 1. `BEGIN`; `set_config('airisk.tenant_id', $tenant, true)` (transaction-local: it ends with
//!    the transaction, so a pooled connection never carries a tenant into the next use), in one
//!    round trip;
//! 2. takes the tenant's head: the one its drainer's last batch committed, when nobody else was
//!    seen writing the tenant ([`Known`]), else locked and read (`SELECT … FOR UPDATE`; on first
//!    use the row is inserted with `ON CONFLICT DO NOTHING` and locked). Every writer of the
//!    tenant, in this process or another, queues on that row, so seqs stay gapless and there is
//!    one tree;
//! 3. per request: seals its events at the next seqs (in memory), and prepares its mutations
//!    (approval and model rows as column arrays, [`Bulk`]; other kinds, or a batch that writes one
//!    row twice, are applied one statement each, under the lock, with the same checks);
//! 4. in ONE statement (data-modifying CTEs over `unnest` of column arrays): moves the head with a
//!    compare-and-set against the head of step 2, and, gated on it, inserts every entry and the
//!    perfect subtree nodes they complete and applies the bulk mutations with their optimistic
//!    checks (`… WHERE version = $expected`). If the head had moved, nothing is written and the
//!    batch runs again under the lock; if a mutation's check failed, the batch runs again one
//!    mutation at a time, which answers the culprit with its conflict and the others as usual;
//! 5. `COMMIT`, which returns once the WAL is flushed (`synchronous_commit` is never `off` on the
//!    store's connections). Only then are the callers answered.
//!
//! So a batch of any size costs three round trips (`BEGIN`, the statement, `COMMIT`) when its
//! tenant has one writer, four when the head must be locked, plus one when it carries idempotency
//! keys (looked up before the statement).
//!
//! If anything but a request's own mutation fails, the transaction is rolled back and every
//! request of the batch gets the error: nothing of the batch was stored.

use std::collections::{BTreeMap, HashSet};

use airisk_core::governance::audit_record::{AuditEvent, AuditReceipt};
use airisk_core::ledger::{Frontier, leaf_hash};
use airisk_core::ports::{
    Clock, Mutation, StoreError, idempotency_conflict, idempotent_correlations,
};
use airisk_core::security::tenant_context::TenantId;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::error::{corrupt, map, to_i64, to_u64};
use crate::governance::Bulk;

/// One caller's writes: a governance change set (mutations and events) or a plain append.
#[derive(Debug)]
pub(crate) struct Work {
    pub(crate) mutations: Vec<Mutation>,
    pub(crate) events: Vec<AuditEvent>,
}

impl Work {
    /// Its share of a batch's budget (at least 1).
    pub(crate) fn weight(&self) -> usize {
        (self.events.len() + self.mutations.len()).max(1)
    }
}

/// Starts a transaction scoped to `tenant`, in one round trip: `BEGIN` and `set_config` go
/// together as one simple-protocol query.
///
/// That query carries the tenant id as a literal rather than a bind parameter (the simple protocol
/// has none). It is safe because a [`TenantId`] holds only `a-z 0-9 - _` (checked again here, so
/// a future relaxation of the newtype cannot turn into SQL injection); quotes would be doubled in
/// any case.
pub(crate) async fn begin_for(
    pool: &PgPool,
    tenant: &TenantId,
    read_only: bool,
) -> Result<Transaction<'static, Postgres>, StoreError> {
    let id = tenant_literal(tenant)?;
    let begin = if read_only {
        "BEGIN READ ONLY"
    } else {
        "BEGIN"
    };
    begin_whole(
        pool,
        format!("{begin}; SELECT set_config('airisk.tenant_id', {id}, true)"),
    )
    .await
}

/// `pool.begin_with(sql)`, run to its end even if the caller stops waiting.
///
/// sqlx 0.8 queues no `ROLLBACK` for a `begin` that is cancelled (a request dropped by its
/// client) after its `BEGIN` was sent: the pool would hand the connection out again inside that
/// transaction, and the next batch would commit into it, or fail in it when it was read-only. The
/// store used to prefix every transaction with a `ROLLBACK` for this, which costs nothing on the
/// wire but makes the server log a warning ("there is no transaction in progress") for every read
/// and every batch: hundreds of lines a second in the database's log under load. Here the `begin`
/// runs in a task of its own instead: if the caller goes away, the task still receives the
/// transaction and drops it, and sqlx then queues its `ROLLBACK` like for any dropped transaction.
async fn begin_whole(
    pool: &PgPool,
    sql: String,
) -> Result<Transaction<'static, Postgres>, StoreError> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.begin_with(sql).await })
        .await
        .map_err(|e| StoreError::Unavailable {
            message: format!("beginning a transaction stopped: {e}"),
        })?
        .map_err(|e| map(&e))
}

/// `tenant`'s id as a quoted SQL literal, for the simple-protocol queries that start a tenant's
/// transaction. Safe because a [`TenantId`] holds only `a-z 0-9 - _`, checked again here (so a
/// future relaxation of the newtype cannot turn into SQL injection); quotes would be doubled in
/// any case.
pub(crate) fn tenant_literal(tenant: &TenantId) -> Result<String, StoreError> {
    let id = tenant.as_str();
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(StoreError::Refused {
            message: "tenant id outside a-z 0-9 - _".to_owned(),
        });
    }
    Ok(format!("'{}'", id.replace('\'', "''")))
}

/// Ends a read-only transaction without waiting for the server: dropping it makes sqlx queue a
/// `ROLLBACK`, which goes out with the check the pool runs when the connection is returned, before
/// anyone else can use it. A read-only transaction changed nothing, so rolling it back and
/// committing it are the same, and the reader is answered one round trip sooner.
pub(crate) fn end_read(tx: Transaction<'static, Postgres>) {
    drop(tx);
}

/// Names the tenant whose rows the rest of the transaction may see and write.
pub(crate) async fn set_tenant(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<(), StoreError> {
    sqlx::query("SELECT set_config('airisk.tenant_id', $1, true)")
        .bind(tenant.as_str())
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| map(&e))
}

/// A tenant's head as locked at the start of a transaction, or as a batch left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) frontier: Frontier,
    pub(crate) writes: u64,
}

/// What the batch writer of a tenant knows of the tenant's head between batches.
///
/// A batch needs the head (size, frontier, write count) before it can seal its records. Reading it
/// with `SELECT … FOR UPDATE` costs a round trip while the batch holds the tenant's lock. The
/// drainer of a tenant therefore remembers the head its last batch wrote, and the next batch
/// seals against it and moves the head with a compare-and-set (`UPDATE audit_heads … WHERE size =
/// $old AND writes = $old AND frontier = $old`) in the same statement that inserts its rows, whose
/// every part is gated on that update: if another writer (another process, or a multi-tenant
/// append) moved the head meanwhile, the statement writes nothing, the transaction is rolled back
/// and the batch runs again under the lock. Seqs stay gapless and the tree one, whoever writes.
#[derive(Debug, Clone, Default)]
pub(crate) enum Known {
    /// Nothing known (first batch, or the last one failed): lock and read.
    #[default]
    Unknown,
    /// The head the last batch committed; nobody else was seen writing: compare-and-set.
    Trusted(Head),
    /// The head the last batch committed, but another writer moved it before: lock and read,
    /// and trust it again once a locked read finds it unchanged.
    Contended(Head),
}

/// Locks `tenant`'s head row for the rest of the transaction, creating it on first use.
async fn lock_head(conn: &mut PgConnection, tenant: &TenantId) -> Result<Head, StoreError> {
    const SELECT: &str =
        "SELECT size, frontier, writes FROM audit_heads WHERE tenant_id = $1 FOR UPDATE";
    for _ in 0..2 {
        let row = sqlx::query(SELECT)
            .bind(tenant.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| map(&e))?;
        if let Some(row) = row {
            let size: i64 = row.try_get(0).map_err(|e| map(&e))?;
            let bytes: Vec<u8> = row.try_get(1).map_err(|e| map(&e))?;
            let writes: i64 = row.try_get(2).map_err(|e| map(&e))?;
            return Ok(Head {
                frontier: decode_frontier(tenant, size, &bytes)?,
                writes: to_u64(writes, "write count")?,
            });
        }
        // First write of the tenant. Another transaction may insert the same row meanwhile: then
        // this one waits for it and does nothing, and the SELECT above locks the winner's row.
        sqlx::query(
            "INSERT INTO audit_heads (tenant_id, size, frontier, writes) VALUES ($1, 0, $2, 0) \
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(Frontier::new().to_bytes())
        .execute(&mut *conn)
        .await
        .map_err(|e| map(&e))?;
    }
    Err(corrupt(format!(
        "the tree head of tenant {tenant} cannot be created or read"
    )))
}

/// Which of the idempotent correlation ids `keys` the tenant's ledger already holds. Called with
/// the tenant's head locked, so no other writer of the tenant can add one meanwhile: a write whose
/// id is found here is refused (the `AuditRepository` contract), and of two writes with one id,
/// whichever locks the head second sees the first one's entries. One indexed round trip, only
/// for batches that carry such ids.
async fn used_keys(
    conn: &mut PgConnection,
    tenant: &TenantId,
    keys: Vec<String>,
) -> Result<HashSet<String>, StoreError> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = sqlx::query(
        "SELECT DISTINCT correlation_id FROM audit_entries \
         WHERE tenant_id = $1 AND correlation_id = ANY($2::text[])",
    )
    .bind(tenant.as_str())
    .bind(keys)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| map(&e))?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).map_err(|e| map(&e)))
        .collect()
}

/// Parses a stored head and checks it against its size column.
pub(crate) fn decode_frontier(
    tenant: &TenantId,
    size: i64,
    bytes: &[u8],
) -> Result<Frontier, StoreError> {
    let frontier = Frontier::from_bytes(bytes)
        .map_err(|e| corrupt(format!("tree head of tenant {tenant}: {e}")))?;
    if i64::try_from(frontier.size()).ok() != Some(size) {
        return Err(corrupt(format!(
            "tree head of tenant {tenant}: size column {size} but frontier of {}",
            frontier.size()
        )));
    }
    Ok(frontier)
}

/// The rows a batch adds to one tenant's ledger, as column arrays for one `unnest` insert each.
#[derive(Debug, Default)]
struct Rows {
    seq: Vec<i64>,
    leaf: Vec<Vec<u8>>,
    leaf_hash: Vec<Vec<u8>>,
    actor: Vec<String>,
    action: Vec<String>,
    outcome: Vec<String>,
    resource_type: Vec<String>,
    resource_id: Vec<String>,
    correlation_id: Vec<String>,
    node_level: Vec<i16>,
    node_idx: Vec<i64>,
    node_hash: Vec<Vec<u8>>,
}

/// Seals `events` at the next seqs of `frontier` (advancing it), adding their rows to `rows`.
fn seal_into(
    events: Vec<AuditEvent>,
    now: DateTime<Utc>,
    frontier: &mut Frontier,
    rows: &mut Rows,
    receipts: &mut Vec<AuditReceipt>,
) -> Result<(), StoreError> {
    for event in events {
        let seq = frontier.size();
        let record = event.seal(seq, now).map_err(|e| StoreError::Refused {
            message: e.to_string(),
        })?;
        let hash = leaf_hash(record.leaf_bytes());
        let completed = frontier.append(hash).map_err(|e| StoreError::Refused {
            message: e.to_string(),
        })?;
        for (id, node) in completed.into_iter().filter(|(id, _)| id.level > 0) {
            rows.node_level.push(i16::from(id.level));
            rows.node_idx.push(to_i64(id.index, "node index")?);
            rows.node_hash.push(node.as_bytes().to_vec());
        }
        let e = record.event();
        rows.seq.push(to_i64(seq, "seq")?);
        rows.leaf_hash.push(hash.as_bytes().to_vec());
        rows.actor.push(e.actor().as_str().to_owned());
        rows.action.push(e.action().to_owned());
        rows.outcome.push(e.outcome().as_str().to_owned());
        rows.resource_type.push(e.resource_type().to_owned());
        rows.resource_id.push(e.resource_id().to_owned());
        rows.correlation_id
            .push(e.correlation_id().as_str().to_owned());
        receipts.push(AuditReceipt {
            id: e.id(),
            tenant_id: e.tenant_id().clone(),
            seq,
            leaf_hash: hash.to_hex(),
            recorded_at: record.recorded_at(),
        });
        rows.leaf.push(record.into_leaf_bytes());
    }
    Ok(())
}

impl Rows {
    /// Takes `other`'s rows after this one's.
    fn extend(&mut self, other: Rows) {
        self.seq.extend(other.seq);
        self.leaf.extend(other.leaf);
        self.leaf_hash.extend(other.leaf_hash);
        self.actor.extend(other.actor);
        self.action.extend(other.action);
        self.outcome.extend(other.outcome);
        self.resource_type.extend(other.resource_type);
        self.resource_id.extend(other.resource_id);
        self.correlation_id.extend(other.correlation_id);
        self.node_level.extend(other.node_level);
        self.node_idx.extend(other.node_idx);
        self.node_hash.extend(other.node_hash);
    }
}

macro_rules! flush_head_and_rows {
    () => {
        "\
WITH head AS ( \
  UPDATE audit_heads SET size = $15, frontier = $16, writes = $17 \
  WHERE tenant_id = $1 AND size = $19 AND writes = $20 AND frontier = $21 \
  RETURNING 1 \
), entries AS ( \
  INSERT INTO audit_entries (tenant_id, seq, leaf, leaf_hash, recorded_at, actor, action, \
                             outcome, resource_type, resource_id, correlation_id) \
  SELECT $1, e.seq, e.leaf, e.leaf_hash, $2, e.actor, e.action, e.outcome, \
         e.resource_type, e.resource_id, e.correlation_id \
  FROM unnest($3::bigint[], $4::bytea[], $5::bytea[], $6::text[], $7::text[], \
              $8::text[], $9::text[], $10::text[], $11::text[]) \
       AS e(seq, leaf, leaf_hash, actor, action, outcome, resource_type, resource_id, \
            correlation_id) \
  WHERE EXISTS (SELECT 1 FROM head) \
), nodes AS ( \
  INSERT INTO audit_nodes (tenant_id, level, idx, hash) \
  SELECT $1, n.level, n.idx, n.hash \
  FROM unnest($12::smallint[], $13::bigint[], $14::bytea[]) AS n(level, idx, hash) \
  WHERE EXISTS (SELECT 1 FROM head) \
), directory AS ( \
  INSERT INTO audit_tenants (tenant_id) SELECT $1 WHERE $18 AND EXISTS (SELECT 1 FROM head) \
  ON CONFLICT DO NOTHING \
)"
    };
}

/// [`FLUSH`] for a batch without bulk mutations (plain appends, or mutations applied one by one):
/// the head and the ledger rows only, so an append batch does not plan the governance parts.
const FLUSH_ROWS: &str = concat!(
    flush_head_and_rows!(),
    " SELECT (SELECT count(*) FROM head), 0::bigint, 0::bigint, 0::bigint, 0::bigint"
);

/// The statement that stores a batch: every part is gated on `head`, the compare-and-set of the
/// tenant's head (`$19`–`$21`: the head the batch sealed against), so when the head moved nothing
/// is written; `head` runs first (the gates are one-time filters on it), so its row lock is the
/// first lock the statement takes, as with `SELECT … FOR UPDATE` at the start of a locked batch.
const FLUSH: &str = concat!(
    flush_head_and_rows!(),
    ", approval_ins AS ( \
  INSERT INTO approval_requests (tenant_id, id, ord, version, status, subject, requested_by, body) \
  SELECT $1, a.id, a.ord, a.version, a.status, a.subject, a.requested_by, a.body::json \
  FROM unnest($22::uuid[], $23::bigint[], $24::bigint[], $25::text[], $26::text[], $27::text[], \
              $28::text[]) AS a(id, ord, version, status, subject, requested_by, body) \
  WHERE EXISTS (SELECT 1 FROM head) \
  RETURNING 1 \
), approval_upd AS ( \
  UPDATE approval_requests r SET version = u.version, status = u.status, body = u.body::json \
  FROM unnest($29::uuid[], $30::bigint[], $31::bigint[], $32::text[], $33::text[]) \
       AS u(id, expected, version, status, body) \
  WHERE r.tenant_id = $1 AND r.id = u.id AND r.version = u.expected \
    AND EXISTS (SELECT 1 FROM head) \
  RETURNING 1 \
), model_ins AS ( \
  INSERT INTO model_versions (tenant_id, name, version, ord, row_version, body) \
  SELECT $1, m.name, m.version, m.ord, m.row_version, m.body::json \
  FROM unnest($34::text[], $35::text[], $36::bigint[], $37::bigint[], $38::text[]) \
       AS m(name, version, ord, row_version, body) \
  WHERE EXISTS (SELECT 1 FROM head) \
  RETURNING 1 \
), model_upd AS ( \
  UPDATE model_versions v SET row_version = u.row_version, body = u.body::json \
  FROM unnest($39::text[], $40::text[], $41::bigint[], $42::bigint[], $43::text[]) \
       AS u(name, version, expected, row_version, body) \
  WHERE v.tenant_id = $1 AND v.name = u.name AND v.version = u.version \
    AND v.row_version = u.expected AND EXISTS (SELECT 1 FROM head) \
  RETURNING 1 \
) \
SELECT (SELECT count(*) FROM head), (SELECT count(*) FROM approval_ins), \
       (SELECT count(*) FROM approval_upd), (SELECT count(*) FROM model_ins), \
       (SELECT count(*) FROM model_upd)"
);

/// What the batch statement did.
#[derive(Debug, PartialEq, Eq)]
enum Flushed {
    /// Everything was written.
    Done,
    /// The head was not where the batch sealed against: nothing was written.
    HeadMoved,
    /// A bulk mutation's check failed (a version clash, an existing key): the batch must run
    /// again one mutation at a time to find whose.
    MutationFailed,
}

/// Stores a tenant's new rows, applies the batch's bulk mutations, and moves its head from `old`
/// to (`frontier`, `writes`), in one statement ([`FLUSH`], or [`FLUSH_ROWS`] without bulk
/// mutations: one round trip while the head is held), and lists the tenant in `audit_tenants` on its first entry. The transaction's tenant
/// must be `tenant`.
#[allow(clippy::too_many_arguments)] // the parts of one statement
async fn flush(
    conn: &mut PgConnection,
    tenant: &TenantId,
    old: &Head,
    frontier: &Frontier,
    writes: u64,
    rows: Rows,
    bulk: Bulk,
    now: DateTime<Utc>,
) -> Result<Flushed, StoreError> {
    if rows.seq.is_empty() && writes == old.writes && bulk.is_empty() {
        return Ok(Flushed::Done);
    }
    let first_entries = old.frontier.size() == 0 && frontier.size() > 0;
    let expected = bulk.expected();
    let has_bulk = !bulk.is_empty();
    let query = sqlx::query(if has_bulk { FLUSH } else { FLUSH_ROWS })
        .bind(tenant.as_str())
        .bind(now)
        .bind(rows.seq)
        .bind(rows.leaf)
        .bind(rows.leaf_hash)
        .bind(rows.actor)
        .bind(rows.action)
        .bind(rows.outcome)
        .bind(rows.resource_type)
        .bind(rows.resource_id)
        .bind(rows.correlation_id)
        .bind(rows.node_level)
        .bind(rows.node_idx)
        .bind(rows.node_hash)
        .bind(to_i64(frontier.size(), "tree size")?)
        .bind(frontier.to_bytes())
        .bind(to_i64(writes, "write count")?)
        .bind(first_entries)
        .bind(to_i64(old.frontier.size(), "tree size")?)
        .bind(to_i64(old.writes, "write count")?)
        .bind(old.frontier.to_bytes());
    let query = if has_bulk {
        let Bulk {
            approval_ins: ai,
            approval_upd: au,
            model_ins: mi,
            model_upd: mu,
        } = bulk;
        query
            .bind(ai.id)
            .bind(ai.ord)
            .bind(ai.version)
            .bind(ai.status)
            .bind(ai.subject)
            .bind(ai.requested_by)
            .bind(ai.body)
            .bind(au.id)
            .bind(au.expected)
            .bind(au.version)
            .bind(au.status)
            .bind(au.body)
            .bind(mi.name)
            .bind(mi.version)
            .bind(mi.ord)
            .bind(mi.row_version)
            .bind(mi.body)
            .bind(mu.name)
            .bind(mu.version)
            .bind(mu.expected)
            .bind(mu.row_version)
            .bind(mu.body)
    } else {
        query
    };
    let row = query.fetch_one(conn).await;
    let row = match row {
        Ok(row) => row,
        Err(e) => {
            let e = map(&e);
            // A bulk mutation the database refused (a unique violation, a check): whose it was
            // is found by running the batch again one mutation at a time.
            return if has_bulk && !matches!(e, StoreError::Unavailable { .. }) {
                Ok(Flushed::MutationFailed)
            } else {
                Err(e)
            };
        }
    };
    let count = |i: usize| row.try_get::<i64, _>(i).map_err(|e| map(&e));
    if count(0)? != 1 {
        return Ok(Flushed::HeadMoved);
    }
    let done = [count(1)?, count(2)?, count(3)?, count(4)?];
    Ok(if done == expected {
        Flushed::Done
    } else {
        Flushed::MutationFailed
    })
}

/// Commits a batch of one tenant's requests in one transaction; one result per request, in order.
/// `known` is what the tenant's drainer knows of the head ([`Known`]); it is updated.
///
/// Requests run without savepoints (a savepoint and its release are two more round trips per
/// request while the tenant's head is locked). If a request's mutation fails — a version clash,
/// a unique violation, a refusal — the whole transaction is rolled back, that request is answered
/// with its error, and the batch is run again without it. Conflicts are rare outside races, and a
/// race of `n` requests costs at most `n` attempts, each under the same lock. A batch whose
/// mutations all went into its one statement ([`Bulk`]) and one of them failed runs again one
/// mutation at a time, to find whose.
pub(crate) async fn commit_batch(
    pool: &PgPool,
    clock: &dyn Clock,
    tenant: &TenantId,
    works: Vec<Work>,
    known: &mut Known,
) -> Vec<Result<Vec<AuditReceipt>, StoreError>> {
    let mut answers: Vec<Option<Result<Vec<AuditReceipt>, StoreError>>> =
        works.iter().map(|_| None).collect();
    let mut bulk_allowed = true;
    loop {
        let active: Vec<usize> = (0..works.len())
            .filter(|i| answers.get(*i).is_some_and(Option::is_none))
            .collect();
        if active.is_empty() {
            break;
        }
        let mode = Mode {
            bulk: bulk_allowed
                && Bulk::fits(
                    tenant,
                    active
                        .iter()
                        .filter_map(|&i| works.get(i))
                        .flat_map(|w| &w.mutations),
                ),
            sealed_against: match known {
                Known::Trusted(head) => Some(head.clone()),
                Known::Unknown | Known::Contended(_) => None,
            },
        };
        // Only a batch whose every write is in its one statement may skip the lock: one that
        // applies mutations one by one must hold the head first, so that every writer of the
        // tenant takes the head row before any other row (no lock-order deadlock between them).
        let mode = if mode.bulk {
            mode
        } else {
            Mode {
                sealed_against: None,
                ..mode
            }
        };
        let unlocked = mode.sealed_against.is_some();
        match attempt(pool, clock, tenant, &works, &active, mode).await {
            Ok((results, locked, head)) => {
                *known = match (locked, &*known) {
                    // Locked and found elsewhere than this writer left it: someone else writes
                    // this tenant too, so keep locking until a locked read finds it unchanged.
                    (Some(found), Known::Contended(mine) | Known::Trusted(mine))
                        if &found != mine =>
                    {
                        Known::Contended(head)
                    }
                    _ => Known::Trusted(head),
                };
                for (i, result) in active.into_iter().zip(results) {
                    if let Some(slot) = answers.get_mut(i) {
                        *slot = Some(result);
                    }
                }
                break;
            }
            Err(Failure::Request(i, e)) => {
                // Rolled back; try the others again without it.
                if let Some(slot) = answers.get_mut(i) {
                    *slot = Some(Err(e));
                }
            }
            Err(Failure::HeadMoved) if unlocked => {
                // Another writer moved the head: rolled back, run again under the lock.
                if let Known::Trusted(head) = std::mem::take(known) {
                    *known = Known::Contended(head);
                }
            }
            Err(Failure::MutationFailed) if bulk_allowed => {
                bulk_allowed = false;
            }
            Err(Failure::HeadMoved | Failure::MutationFailed) => {
                // Cannot happen under the lock with one mutation at a time; never loop on it.
                *known = Known::Unknown;
                let e = corrupt(format!(
                    "the tree head of tenant {tenant} moved while it was locked"
                ));
                for i in active {
                    if let Some(slot) = answers.get_mut(i) {
                        *slot = Some(Err(e.clone()));
                    }
                }
                break;
            }
            Err(Failure::Batch(e)) => {
                // Rolled back (dropping the transaction does that), or the outcome of COMMIT is
                // unknown: either way nothing is known of the head any more.
                *known = Known::Unknown;
                for i in active {
                    if let Some(slot) = answers.get_mut(i) {
                        *slot = Some(Err(e.clone()));
                    }
                }
                break;
            }
        }
    }
    answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Err(StoreError::Unavailable {
                    message: "the batch ended without an answer".to_owned(),
                })
            })
        })
        .collect()
}

/// How an attempt runs.
#[derive(Debug)]
struct Mode {
    /// Apply every mutation in the batch statement ([`Bulk`]) rather than one at a time.
    bulk: bool,
    /// Seal against this head and move it with a compare-and-set, without locking it first.
    /// Only with `bulk`.
    sealed_against: Option<Head>,
}

/// Why an attempt at a batch was rolled back.
enum Failure {
    /// The request at this index failed; the others may be tried again.
    Request(usize, StoreError),
    /// The head was not the one the batch sealed against; nothing was written.
    HeadMoved,
    /// A mutation of the bulk statement failed; run again one mutation at a time.
    MutationFailed,
    /// The transaction itself failed; every request gets the error.
    Batch(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Batch(e)
    }
}

/// The results of an attempt, one per active request; the head as locked (`None` when the attempt
/// sealed against a remembered head); the head it committed.
type Attempted = (
    Vec<Result<Vec<AuditReceipt>, StoreError>>,
    Option<Head>,
    Head,
);

/// One transaction over the `active` requests of `works`. A request whose events cannot be sealed
/// is answered without touching the database and does not stop the others.
async fn attempt(
    pool: &PgPool,
    clock: &dyn Clock,
    tenant: &TenantId,
    works: &[Work],
    active: &[usize],
    mode: Mode,
) -> Result<Attempted, Failure> {
    let mut tx = begin_for(pool, tenant, false).await?;
    let (head, locked) = match mode.sealed_against {
        Some(head) => (head, None),
        None => {
            let head = lock_head(&mut tx, tenant).await?;
            (head.clone(), Some(head))
        }
    };
    // One reading of the clock per batch, taken under the lock (or, unlocked, before the
    // compare-and-set that fails if anyone wrote since): records of one tenant are stamped in seq
    // order (as far as the clocks of its writers agree).
    let now = clock.now();
    let mut frontier = head.frontier.clone();
    let mut writes = head.writes;
    let mut rows = Rows::default();
    let mut bulk = Bulk::default();
    let mut results = Vec::with_capacity(active.len());
    let keys: Vec<String> = active
        .iter()
        .filter_map(|&i| works.get(i))
        .flat_map(|w| idempotent_correlations(&w.events))
        .map(str::to_owned)
        .collect();
    // Unlocked, this reads a snapshot older than the compare-and-set; any write since that could
    // have added one of the keys moved the head too, which fails the compare-and-set.
    let mut used = used_keys(&mut tx, tenant, keys).await?;
    for &i in active {
        let Some(work) = works.get(i) else {
            continue;
        };
        // A retried idempotent write whose first attempt committed (here or in an earlier
        // request of this batch) changes nothing.
        let ids = idempotent_correlations(&work.events);
        if ids.iter().any(|id| used.contains(*id)) {
            results.push(Err(idempotency_conflict()));
            continue;
        }
        // Seal first, in memory: a request whose events cannot be sealed changes nothing.
        let mut tentative = frontier.clone();
        let mut request_rows = Rows::default();
        let mut receipts = Vec::with_capacity(work.events.len());
        if let Err(e) = seal_into(
            work.events.clone(),
            now,
            &mut tentative,
            &mut request_rows,
            &mut receipts,
        ) {
            results.push(Err(e));
            continue;
        }
        for m in &work.mutations {
            let applied = if mode.bulk {
                bulk.add(m, &mut writes)
            } else {
                crate::governance::apply(&mut tx, tenant, m, &mut writes).await
            };
            match applied {
                Ok(()) => {}
                // The connection or the server failed: not this request's doing.
                Err(e @ StoreError::Unavailable { .. }) => return Err(Failure::Batch(e)),
                Err(e) => return Err(Failure::Request(i, e)),
            }
        }
        frontier = tentative;
        rows.extend(request_rows);
        used.extend(ids.into_iter().map(str::to_owned));
        results.push(Ok(receipts));
    }
    match flush(&mut tx, tenant, &head, &frontier, writes, rows, bulk, now).await? {
        Flushed::Done => {}
        Flushed::HeadMoved => return Err(Failure::HeadMoved),
        Flushed::MutationFailed => return Err(Failure::MutationFailed),
    }
    tx.commit().await.map_err(|e| commit_failed(&e))?;
    Ok((results, locked, Head { frontier, writes }))
}

/// A failed `COMMIT`. If the server refused it, nothing was stored. If the connection broke
/// while it was in flight (the server crashed, a failover, a network cut), the server may have
/// committed: the outcome is unknown, so it is never reported as success and never retried here
/// (a blind retry could store the records twice). The caller gets `Unavailable` (HTTP 503) and
/// may retry with the same idempotency key, which finds the first attempt if it committed.
///
/// The server refusing the commit itself (integrity, serialization, a trigger: SQLSTATE classes
/// 23, 40, 42, P0) rolled it back. Anything else, including the server ending the session while
/// it waits for the synchronous standby ("the transaction has already committed locally"), is
/// unknown.
fn commit_failed(e: &sqlx::Error) -> StoreError {
    let refused = match e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| ["23", "40", "42", "P0"].iter().any(|p| c.starts_with(p))),
        _ => false,
    };
    match e {
        _ if refused => map(e),
        other => StoreError::Unavailable {
            message: format!(
                "COMMIT did not complete, so its outcome is unknown ({other}); \
                 retry with the same idempotency key"
            ),
        },
    }
}

/// Appends events of several tenants atomically (the rare cross-tenant call of
/// `AuditRepository::append`): locks every head in tenant order (so two such calls cannot
/// deadlock), seals in call order, stores per tenant.
pub(crate) async fn append_across_tenants(
    pool: &PgPool,
    clock: &dyn Clock,
    events: Vec<AuditEvent>,
) -> Result<Vec<AuditReceipt>, StoreError> {
    let mut heads: BTreeMap<TenantId, (Head, Frontier, Rows)> = BTreeMap::new();
    for e in &events {
        heads.entry(e.tenant_id().clone()).or_insert_with(|| {
            (
                Head {
                    frontier: Frontier::new(),
                    writes: 0,
                },
                Frontier::new(),
                Rows::default(),
            )
        });
    }
    let mut tx = begin_whole(pool, "BEGIN".to_owned()).await?;
    for (tenant, (head, frontier, _)) in &mut heads {
        set_tenant(&mut tx, tenant).await?;
        *head = lock_head(&mut tx, tenant).await?;
        *frontier = head.frontier.clone();
        let mine: Vec<AuditEvent> = events
            .iter()
            .filter(|e| e.tenant_id() == tenant)
            .cloned()
            .collect();
        let keys = idempotent_correlations(&mine)
            .into_iter()
            .map(str::to_owned)
            .collect();
        if !used_keys(&mut tx, tenant, keys).await?.is_empty() {
            return Err(idempotency_conflict());
        }
    }
    let now = clock.now();
    let mut receipts = Vec::with_capacity(events.len());
    for event in events {
        let (_, frontier, rows) = heads
            .get_mut(event.tenant_id())
            .ok_or_else(|| corrupt("a tenant vanished from the batch"))?;
        seal_into(vec![event], now, frontier, rows, &mut receipts)?;
    }
    for (tenant, (head, frontier, rows)) in heads {
        set_tenant(&mut tx, &tenant).await?;
        let writes = head.writes;
        // Every head is locked, so the compare-and-set holds and there are no mutations.
        if flush(
            &mut tx,
            &tenant,
            &head,
            &frontier,
            writes,
            rows,
            Bulk::default(),
            now,
        )
        .await?
            != Flushed::Done
        {
            return Err(corrupt(format!(
                "the tree head of tenant {tenant} moved while it was locked"
            )));
        }
    }
    tx.commit().await.map_err(|e| commit_failed(&e))?;
    Ok(receipts)
}

#[cfg(test)]
mod tests {
    use airisk_core::governance::audit_record::{AuditEvent, AuditEventInput, Outcome};
    use airisk_core::security::tenant_context::TenantId;

    use super::{Work, tenant_literal};

    fn event(n: u32) -> AuditEvent {
        AuditEvent::parse(
            uuid::Uuid::now_v7(),
            Outcome::Success,
            AuditEventInput {
                actor: "alice@bank.example".into(),
                tenant_id: "acme".into(),
                action: "app.payment".into(),
                resource_type: "payment".into(),
                resource_id: format!("p-{n}"),
                reason: None,
                correlation_id: format!("req-{n}"),
                metadata: None,
            },
        )
        .unwrap()
    }

    /// A request weighs its events plus its mutations, and at least 1 (what the batch budget
    /// counts).
    #[test]
    fn a_request_weighs_its_writes_and_at_least_one() {
        let work = |events: u32| Work {
            mutations: Vec::new(),
            events: (0..events).map(event).collect(),
        };
        assert_eq!(work(0).weight(), 1);
        assert_eq!(work(1).weight(), 1);
        assert_eq!(work(3).weight(), 3);
    }

    /// Every tenant id (a-z, 0-9, `-`, `_`) is quoted as it is.
    #[test]
    fn tenant_ids_of_every_allowed_character_are_quoted() {
        for id in ["acme", "risk-team_2", "a_b-c", "9lives"] {
            let tenant = TenantId::parse(id).unwrap();
            assert_eq!(tenant_literal(&tenant).unwrap(), format!("'{id}'"));
        }
    }
}

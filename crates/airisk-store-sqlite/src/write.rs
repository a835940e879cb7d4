//! The writer: one OS thread owns the only write connection and group-commits every request
//! queued while the previous commit was being made durable.
//!
//! A batch is one `BEGIN IMMEDIATE … COMMIT`, so one fsync of the WAL however many requests it
//! carries. It is applied whole first; if a request fails, the batch is rolled back and applied
//! again with each request under its own `SAVEPOINT`, so the failing request is rolled back alone
//! (and answered with its error) while the others commit. Replies are sent only after `COMMIT`
//! returns, so a receipt means the record is on disk.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use airisk_core::governance::audit_record::{AuditEvent, AuditReceipt, format_timestamp};
use airisk_core::ledger::{Frontier, leaf_hash};
use airisk_core::ports::{
    ChangeSet, Clock, IDEMPOTENT_CORRELATION_PREFIX, StoreError, StoredCheckpoint,
    idempotency_conflict,
};
use airisk_core::security::tenant_context::TenantId;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::error::{corrupt, from_sql_int, map_sqlite, to_sql_int};

/// A reply channel for one request.
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write request sent to the writer thread.
#[derive(Debug)]
pub(crate) enum Command {
    /// Append these events atomically.
    Append {
        /// The events, in order.
        events: Vec<AuditEvent>,
        /// Where the receipts go.
        reply: Reply<Vec<AuditReceipt>>,
    },
    /// Apply a governance change set: its mutations, then its audit events, atomically.
    Commit {
        /// The change set (its tenant was checked by the caller).
        change: ChangeSet,
        /// Where the receipts go.
        reply: Reply<Vec<AuditReceipt>>,
    },
    /// Claim, settle or release a webhook delivery (the shared replay memory).
    Delivery {
        /// What to do.
        op: crate::deliveries::DeliveryOp,
        /// Where the outcome goes (`true`: a claim was inserted).
        reply: Reply<bool>,
    },
    /// Store a signed checkpoint.
    Checkpoint {
        /// Whose.
        tenant: TenantId,
        /// What.
        checkpoint: StoredCheckpoint,
        /// Where the outcome goes.
        reply: Reply<()>,
    },
}

impl Command {
    /// How much of a batch's budget the command uses (at least 1).
    fn weight(&self) -> usize {
        match self {
            Command::Append { events, .. } => events.len().max(1),
            Command::Commit { change, .. } => (change.audit.len() + change.mutations.len()).max(1),
            Command::Checkpoint { .. } | Command::Delivery { .. } => 1,
        }
    }

    /// Answers with an error (used when the whole batch failed).
    fn fail(self, error: StoreError) {
        // A dropped receiver means the caller stopped waiting; nothing to tell it.
        match self {
            Command::Append { reply, .. } | Command::Commit { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Command::Checkpoint { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Command::Delivery { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// How a request's writes are kept apart from the rest of its batch's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// Not at all: if it fails, the whole transaction is rolled back (a lone request, or the
    /// first pass over a batch).
    Transaction,
    /// Its own savepoint, rolled back alone if it fails.
    Savepoint,
}

/// What applying one request gave, before the batch commits.
#[derive(Debug)]
enum Outcome {
    /// An append's or a governance commit's receipts.
    Receipts(Result<Vec<AuditReceipt>, StoreError>),
    /// A checkpoint stored.
    Stored(Result<(), StoreError>),
    /// A delivery operation's outcome.
    Delivery(Result<bool, StoreError>),
}

impl Outcome {
    fn is_err(&self) -> bool {
        match self {
            Outcome::Receipts(r) => r.is_err(),
            Outcome::Stored(r) => r.is_err(),
            Outcome::Delivery(r) => r.is_err(),
        }
    }
}

impl Command {
    /// Pairs the command's reply with its outcome. `Writer::apply` gives every command an
    /// outcome of its own kind; another would be a bug here, answered as an error (the writer
    /// thread never panics on it).
    fn answer(self, outcome: Outcome) -> Answer {
        match (self, outcome) {
            (
                Command::Append { reply, .. } | Command::Commit { reply, .. },
                Outcome::Receipts(result),
            ) => Answer::Append(reply, result),
            (Command::Checkpoint { reply, .. }, Outcome::Stored(result)) => {
                Answer::Checkpoint(reply, result)
            }
            (Command::Delivery { reply, .. }, Outcome::Delivery(result)) => {
                Answer::Delivery(reply, result)
            }
            (command, outcome) => {
                command.fail(StoreError::Unavailable {
                    message: format!("the sqlite writer paired a request with {outcome:?}"),
                });
                Answer::Sent
            }
        }
    }
}

/// A request's outcome, held until the batch has committed.
enum Answer {
    Append(
        Reply<Vec<AuditReceipt>>,
        Result<Vec<AuditReceipt>, StoreError>,
    ),
    Checkpoint(Reply<()>, Result<(), StoreError>),
    Delivery(Reply<bool>, Result<bool, StoreError>),
    /// Already answered.
    Sent,
}

impl Answer {
    fn send(self, commit: &Result<(), StoreError>) {
        match self {
            Answer::Sent => {}
            Answer::Append(reply, result) => {
                let _ = reply.send(commit.clone().and(result));
            }
            Answer::Checkpoint(reply, result) => {
                let _ = reply.send(commit.clone().and(result));
            }
            Answer::Delivery(reply, result) => {
                let _ = reply.send(commit.clone().and(result));
            }
        }
    }
}

const SQL_INSERT_ENTRY: &str =
    "INSERT INTO audit_entries (tenant_id, seq, leaf, leaf_hash) VALUES (?1, ?2, ?3, ?4)";
const SQL_INSERT_NODE: &str = "INSERT INTO audit_nodes (tenant_id, last_leaf, level, idx, hash)
     VALUES (?1, ?2, ?3, ?4, ?5)";
const SQL_SELECT_HEAD: &str = "SELECT size, frontier FROM audit_heads WHERE tenant_id = ?1";
const SQL_UPDATE_HEAD: &str =
    "UPDATE audit_heads SET size = ?2, frontier = ?3 WHERE tenant_id = ?1";
/// Claims an idempotent correlation id for the write being stored (a second claim violates the
/// primary key: the write is refused, the `AuditRepository` contract).
const SQL_INSERT_IDEMPOTENCY_KEY: &str =
    "INSERT INTO idempotency_keys (tenant_id, correlation_id, seq) VALUES (?1, ?2, ?3)";
const SQL_INSERT_HEAD: &str =
    "INSERT INTO audit_heads (tenant_id, size, frontier) VALUES (?1, ?2, ?3)";

/// Most tree heads the writer keeps cached (each is at most 64 hashes); beyond it the cache is
/// dropped after the batch and refilled from `audit_heads` as tenants append again.
const MAX_CACHED_HEADS: usize = 10_000;

/// The writer thread's state.
pub(crate) struct Writer {
    conn: Connection,
    clock: Arc<dyn Clock>,
    /// Each tenant's committed tree head (plus, during a batch, what the batch has added).
    heads: HashMap<TenantId, Frontier>,
    /// Tenants whose head changed in the current batch.
    dirty: Vec<TenantId>,
    /// `PRAGMA data_version` when `heads` was last known to match the file. Another connection's
    /// commit (another process appending to the same file) changes it, and the cache is dropped.
    data_version: Option<i64>,
    /// Most events per batch.
    max_batch_events: usize,
    /// Batches applied a second time under savepoints because a request failed (for tests).
    savepoint_passes: u64,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("cached_heads", &self.heads.len())
            .field("max_batch_events", &self.max_batch_events)
            .finish_non_exhaustive()
    }
}

impl Writer {
    pub(crate) fn new(conn: Connection, clock: Arc<dyn Clock>, max_batch_events: usize) -> Self {
        Writer {
            conn,
            clock,
            heads: HashMap::new(),
            dirty: Vec::new(),
            data_version: None,
            max_batch_events: max_batch_events.max(1),
            savepoint_passes: 0,
        }
    }

    /// Serves requests until every sender is gone, then closes the connection.
    pub(crate) fn run(mut self, rx: &Receiver<Command>) {
        let mut carried: Option<Command> = None;
        loop {
            let first = match carried.take() {
                Some(command) => command,
                None => match rx.recv() {
                    Ok(command) => command,
                    Err(_) => break,
                },
            };
            let mut budget = first.weight();
            let mut batch = vec![first];
            // Group commit: everything that queued up while the last batch was being fsynced.
            while budget < self.max_batch_events {
                match rx.try_recv() {
                    Ok(command) if budget + command.weight() > self.max_batch_events => {
                        carried = Some(command);
                        break;
                    }
                    Ok(command) => {
                        budget += command.weight();
                        batch.push(command);
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.process(batch);
        }
        if let Err((_, e)) = self.conn.close() {
            tracing::warn!(error = %e, "closing the sqlite writer connection failed");
        }
    }

    /// Applies a batch in one transaction and answers every request in it.
    ///
    /// A batch of several requests is first applied whole, without a savepoint per request (each
    /// costs a `SAVEPOINT` and a `RELEASE` statement and copies the pages it touches to a
    /// sub-journal; 64-caller appends were 10-16% slower with them). If every request succeeds,
    /// that is the batch. If one fails, the transaction is rolled back, the cached heads are
    /// dropped (they reload from the file) and the batch is applied again from its start, each
    /// request under its own savepoint, so the failing one is rolled back alone and the others
    /// commit exactly as if it had never come. A failing request thus costs its batch a second
    /// pass, never a wrong answer.
    pub(crate) fn process(&mut self, batch: Vec<Command>) {
        if let Err(e) = self.begin() {
            tracing::error!(error = %e, "could not begin an audit batch");
            for command in batch {
                command.fail(e.clone());
            }
            return;
        }
        let now = self.clock.now();
        // A lone request needs no savepoint: if it fails, the whole transaction is rolled back.
        let alone = batch.len() == 1;
        let mut outcomes = Vec::with_capacity(batch.len());
        for command in &batch {
            let outcome = self.apply(command, now, Isolation::Transaction);
            let failed = outcome.is_err();
            outcomes.push(outcome);
            if failed {
                break;
            }
        }
        let failed = outcomes.iter().any(Outcome::is_err);
        if failed && !alone {
            outcomes.clear();
            self.savepoint_passes += 1;
            self.forget_batch();
            if let Err(e) = self.begin() {
                tracing::error!(error = %e, "could not begin an audit batch again");
                for command in batch {
                    command.fail(e.clone());
                }
                return;
            }
            for command in &batch {
                outcomes.push(self.apply(command, now, Isolation::Savepoint));
            }
        }
        let failed_alone = alone && failed;
        let answers: Vec<Answer> = batch
            .into_iter()
            .zip(outcomes)
            .map(|(command, outcome)| command.answer(outcome))
            .collect();
        if failed_alone {
            // The only request failed (and answers with its own error): keep nothing of it.
            if let Err(e) = self.exec("ROLLBACK") {
                tracing::error!(error = %e, "could not roll back a failed audit request");
                self.heads.clear();
                self.data_version = None;
            }
            self.dirty.clear();
            for answer in answers {
                answer.send(&Ok(()));
            }
            return;
        }
        let committed = self.write_heads().and_then(|()| self.commit());
        if let Err(e) = &committed {
            tracing::error!(error = %e, requests = answers.len(), "audit batch failed to commit");
            // Whatever state the transaction is in, end it; then forget every cached head.
            let _ = self.conn.execute_batch("ROLLBACK");
            self.heads.clear();
            self.data_version = None;
        }
        self.dirty.clear();
        if self.heads.len() > MAX_CACHED_HEADS {
            // A cache, not the truth: heads reload from the file on the next use.
            self.heads.clear();
        }
        for answer in answers {
            answer.send(&committed);
        }
    }

    /// Applies one request inside the batch's transaction, isolated as `isolation` says.
    fn apply(&mut self, command: &Command, now: DateTime<Utc>, isolation: Isolation) -> Outcome {
        match command {
            Command::Append { events, .. } => {
                Outcome::Receipts(self.isolated(isolation, |w, saved| w.append(events, now, saved)))
            }
            Command::Commit { change, .. } => {
                Outcome::Receipts(self.isolated(isolation, |w, saved| {
                    for mutation in &change.mutations {
                        crate::governance::apply(&w.conn, mutation)?;
                    }
                    w.append(&change.audit, now, saved)
                }))
            }
            Command::Checkpoint {
                tenant, checkpoint, ..
            } => Outcome::Stored(
                self.isolated(isolation, |w, _| w.add_checkpoint(tenant, checkpoint)),
            ),
            Command::Delivery { op, .. } => Outcome::Delivery(
                self.isolated(isolation, |w, _| crate::deliveries::apply(&w.conn, op)),
            ),
        }
    }

    /// Rolls the batch's transaction back and forgets what it did to the cached heads (they
    /// reload from the file on their next use).
    fn forget_batch(&mut self) {
        if let Err(e) = self.exec("ROLLBACK") {
            tracing::error!(error = %e, "could not roll back an audit batch to apply it again");
        }
        self.heads.clear();
        self.data_version = None;
        self.dirty.clear();
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .map_err(|e| map_sqlite(&e))?;
        let version: Result<i64, StoreError> = self
            .conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(|e| map_sqlite(&e));
        match version {
            Ok(version) => {
                if self.data_version != Some(version) {
                    // Someone else committed (or we never looked): the cached heads may be stale.
                    self.heads.clear();
                    self.data_version = Some(version);
                }
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(|e| map_sqlite(&e))
    }

    /// Runs one request so that its failure undoes exactly its own writes. With
    /// [`Isolation::Transaction`] the caller rolls the whole transaction back on failure; with
    /// [`Isolation::Savepoint`] it runs under a savepoint, which is rolled back on failure. Either
    /// way the cached heads it touched are restored.
    fn isolated<T>(
        &mut self,
        isolation: Isolation,
        f: impl FnOnce(&mut Self, &mut Vec<(TenantId, Frontier)>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut saved: Vec<(TenantId, Frontier)> = Vec::new();
        if isolation == Isolation::Transaction {
            let result = f(self, &mut saved);
            if result.is_err() {
                for (tenant, frontier) in saved {
                    self.heads.insert(tenant, frontier);
                }
            }
            return result;
        }
        self.exec("SAVEPOINT request")?;
        match f(self, &mut saved) {
            Ok(value) => match self.exec("RELEASE request") {
                Ok(()) => Ok(value),
                Err(e) => {
                    self.undo(saved);
                    Err(e)
                }
            },
            Err(e) => {
                self.undo(saved);
                Err(e)
            }
        }
    }

    fn undo(&mut self, saved: Vec<(TenantId, Frontier)>) {
        if let Err(e) = self
            .exec("ROLLBACK TO request")
            .and_then(|()| self.exec("RELEASE request"))
        {
            // The batch's COMMIT will fail too, and reset everything.
            tracing::error!(error = %e, "could not roll back a failed audit request");
        }
        for (tenant, frontier) in saved {
            self.heads.insert(tenant, frontier);
        }
    }

    fn exec(&self, sql: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(|e| map_sqlite(&e))
    }

    /// The append of one request: seal each event at its tenant's next seq, store the entry and
    /// the perfect nodes it completes, and advance the cached head.
    fn append(
        &mut self,
        events: &[AuditEvent],
        now: DateTime<Utc>,
        saved: &mut Vec<(TenantId, Frontier)>,
    ) -> Result<Vec<AuditReceipt>, StoreError> {
        let mut receipts = Vec::with_capacity(events.len());
        let mut claimed: Vec<(TenantId, String)> = Vec::new();
        for event in events {
            let tenant = event.tenant_id().clone();
            self.load_head(&tenant)?;
            let correlation = event.correlation_id().as_str();
            if correlation.starts_with(IDEMPOTENT_CORRELATION_PREFIX)
                && !claimed
                    .iter()
                    .any(|(t, c)| t == &tenant && c == correlation)
            {
                let seq = self
                    .heads
                    .get(&tenant)
                    .ok_or_else(|| corrupt("tree head vanished from the writer's cache"))?
                    .size();
                let seq = to_sql_int(seq, "seq")?;
                self.conn
                    .prepare_cached(SQL_INSERT_IDEMPOTENCY_KEY)
                    .and_then(|mut s| s.execute(params![tenant.as_str(), correlation, seq]))
                    .map_err(|e| match e.sqlite_error_code() {
                        Some(rusqlite::ErrorCode::ConstraintViolation) => idempotency_conflict(),
                        _ => map_sqlite(&e),
                    })?;
                claimed.push((tenant.clone(), correlation.to_owned()));
            }
            let Writer {
                conn, heads, dirty, ..
            } = self;
            let frontier = heads
                .get_mut(&tenant)
                .ok_or_else(|| corrupt("tree head vanished from the writer's cache"))?;
            if !saved.iter().any(|(t, _)| t == &tenant) {
                saved.push((tenant.clone(), frontier.clone()));
                if !dirty.contains(&tenant) {
                    dirty.push(tenant.clone());
                }
            }
            let seq = frontier.size();
            let (leaf, recorded_at) = event.leaf_at(seq, now).map_err(|e| StoreError::Refused {
                message: e.to_string(),
            })?;
            let hash = leaf_hash(&leaf);
            let seq_sql = to_sql_int(seq, "seq")?;
            conn.prepare_cached(SQL_INSERT_ENTRY)
                .and_then(|mut s| {
                    s.execute(params![tenant.as_str(), seq_sql, leaf, hash.as_bytes()])
                })
                .map_err(|e| append_error(&e, &tenant, seq))?;
            let completed = frontier.append(hash).map_err(|e| StoreError::Refused {
                message: e.to_string(),
            })?;
            // Below `LOWEST_STORED_LEVEL` a node is recomputed from the entries' leaf hashes when
            // read (level 0 is the leaf hash just stored with the entry). Most appends complete
            // no stored node at all.
            let mut stored = completed
                .iter()
                .filter(|(id, _)| id.level >= crate::read::LOWEST_STORED_LEVEL)
                .peekable();
            if stored.peek().is_some() {
                let mut insert_node = conn
                    .prepare_cached(SQL_INSERT_NODE)
                    .map_err(|e| map_sqlite(&e))?;
                for (id, node_hash) in stored {
                    insert_node
                        .execute(params![
                            tenant.as_str(),
                            seq_sql,
                            id.level,
                            to_sql_int(id.index, "node index")?,
                            node_hash.as_bytes()
                        ])
                        .map_err(|e| append_error(&e, &tenant, seq))?;
                }
            }
            receipts.push(AuditReceipt {
                id: event.id(),
                tenant_id: tenant,
                seq,
                leaf_hash: hash.to_hex(),
                recorded_at,
            });
        }
        Ok(receipts)
    }

    /// Makes sure `tenant`'s committed head is in the cache.
    fn load_head(&mut self, tenant: &TenantId) -> Result<(), StoreError> {
        if self.heads.contains_key(tenant) {
            return Ok(());
        }
        let row: Option<(i64, Vec<u8>)> = self
            .conn
            .prepare_cached(SQL_SELECT_HEAD)
            .and_then(|mut s| {
                s.query_row([tenant.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(|e| map_sqlite(&e))?;
        let frontier = match row {
            None => Frontier::new(),
            Some((size, bytes)) => decode_head(tenant, size, &bytes)?,
        };
        self.heads.insert(tenant.clone(), frontier);
        Ok(())
    }

    /// Persists the head of every tenant the batch touched.
    fn write_heads(&mut self) -> Result<(), StoreError> {
        for tenant in &self.dirty {
            let Some(frontier) = self.heads.get(tenant) else {
                continue;
            };
            let size = to_sql_int(frontier.size(), "tree size")?;
            let bytes = frontier.to_bytes();
            let updated = self
                .conn
                .prepare_cached(SQL_UPDATE_HEAD)
                .and_then(|mut s| s.execute(params![tenant.as_str(), size, bytes]))
                .map_err(|e| map_sqlite(&e))?;
            if updated == 0 && frontier.size() > 0 {
                self.conn
                    .prepare_cached(SQL_INSERT_HEAD)
                    .and_then(|mut s| s.execute(params![tenant.as_str(), size, bytes]))
                    .map_err(|e| map_sqlite(&e))?;
            }
        }
        Ok(())
    }

    fn add_checkpoint(
        &mut self,
        tenant: &TenantId,
        checkpoint: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        let size = to_sql_int(checkpoint.size, "checkpoint size")?;
        let exists = self
            .conn
            .prepare_cached("SELECT 1 FROM audit_checkpoints WHERE tenant_id = ?1 AND size = ?2")
            .and_then(|mut s| s.exists(params![tenant.as_str(), size]))
            .map_err(|e| map_sqlite(&e))?;
        if exists {
            return Err(StoreError::Conflict {
                what: format!("checkpoint of size {} exists", checkpoint.size),
            });
        }
        self.conn
            .prepare_cached(
                "INSERT INTO audit_checkpoints (tenant_id, size, root, note, signed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    tenant.as_str(),
                    size,
                    checkpoint.root.as_bytes(),
                    checkpoint.note,
                    format_timestamp(&checkpoint.signed_at)
                ])
            })
            .map(|_| ())
            .map_err(|e| map_sqlite(&e))
    }
}

/// A stored head: its size column and its frontier must agree.
pub(crate) fn decode_head(
    tenant: &TenantId,
    size: i64,
    bytes: &[u8],
) -> Result<Frontier, StoreError> {
    let size = from_sql_int(size, "tree size")?;
    let frontier = Frontier::from_bytes(bytes)
        .map_err(|e| corrupt(format!("tree head of tenant {tenant}: {e}")))?;
    if frontier.size() != size {
        return Err(corrupt(format!(
            "tree head of tenant {tenant} says size {size} but its frontier has {}",
            frontier.size()
        )));
    }
    Ok(frontier)
}

/// An insert of an entry or node that clashes with a stored row means rows exist beyond the stored
/// head: the file was altered, or written without its head.
fn append_error(e: &rusqlite::Error, tenant: &TenantId, seq: u64) -> StoreError {
    match map_sqlite(e) {
        StoreError::Conflict { .. } | StoreError::Refused { .. } => corrupt(format!(
            "tenant {tenant}: rows already exist at seq {seq}, beyond the stored tree head"
        )),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use airisk_core::governance::audit_record::Outcome;
    use airisk_core::ports::SystemClock;
    use airisk_core::request::CorrelationId;
    use airisk_core::security::tenant_context::ActorId;

    use super::*;
    use crate::connection::{migrate, open_writer};

    /// A temporary directory, removed when dropped.
    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn fixture(name: &str) -> (Writer, Dir) {
        let dir = std::env::temp_dir().join(format!(
            "airisk-sqlite-writer-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut conn =
            open_writer(&dir.join("audit.db"), std::time::Duration::from_secs(5)).unwrap();
        migrate(&mut conn, "2026-01-01T00:00:00.000000Z").unwrap();
        (Writer::new(conn, Arc::new(SystemClock), 4096), Dir(dir))
    }

    fn event(tenant: &str, n: u64) -> AuditEvent {
        AuditEvent::new(
            uuid::Uuid::now_v7(),
            TenantId::parse(tenant).unwrap(),
            ActorId::parse("alice@bank.example").unwrap(),
            "model.approve",
            Outcome::Success,
            "model",
            &format!("m-{n}"),
            None,
            CorrelationId::generate(),
            None,
        )
        .unwrap()
    }

    type Answer = oneshot::Receiver<Result<Vec<AuditReceipt>, StoreError>>;

    fn append(events: Vec<AuditEvent>) -> (Command, Answer) {
        let (reply, answer) = oneshot::channel();
        (Command::Append { events, reply }, answer)
    }

    fn seqs(answer: &mut Answer) -> Result<Vec<u64>, StoreError> {
        answer
            .try_recv()
            .unwrap()
            .map(|r| r.iter().map(|r| r.seq).collect())
    }

    fn stored(w: &Writer, tenant: &str) -> i64 {
        w.conn
            .query_row(
                "SELECT count(*) FROM audit_entries WHERE tenant_id = ?1",
                [tenant],
                |row| row.get(0),
            )
            .unwrap()
    }

    /// Stores a row the store did not write, where tenant "poisoned" would put its seq 0: an
    /// append of a "poisoned" event then fails.
    fn poison(writer: &Writer) {
        writer
            .conn
            .execute(
                "INSERT INTO audit_entries (tenant_id, seq, leaf, leaf_hash)
                 VALUES ('poisoned', 0, x'7b7d', zeroblob(32))",
                [],
            )
            .unwrap();
    }

    #[test]
    fn in_one_batch_a_failing_request_is_rolled_back_alone() {
        let (mut writer, _dir) = fixture("savepoint");
        poison(&writer);
        let (a, mut answer_a) = append(vec![event("acme", 0), event("acme", 1)]);
        let (bad, mut answer_bad) = append(vec![event("acme", 2), event("poisoned", 0)]);
        let (c, mut answer_c) = append(vec![event("acme", 3), event("globex", 0)]);
        writer.process(vec![a, bad, c]);
        // Applied whole first; the failure sent the batch through the savepoint pass once.
        assert_eq!(writer.savepoint_passes, 1);

        assert_eq!(seqs(&mut answer_a).unwrap(), vec![0, 1]);
        assert!(matches!(
            seqs(&mut answer_bad),
            Err(StoreError::Corrupt { .. })
        ));
        // The failed request's acme event left no gap: the next request got seq 2.
        assert_eq!(seqs(&mut answer_c).unwrap(), vec![2, 0]);
        assert_eq!(stored(&writer, "acme"), 3);
        assert_eq!(stored(&writer, "poisoned"), 1);
        let head_size: i64 = writer
            .conn
            .query_row(
                "SELECT size FROM audit_heads WHERE tenant_id = 'acme'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(head_size, 3);
        // The failed request changed nothing of "poisoned": not even an empty head row.
        let poisoned_heads: i64 = writer
            .conn
            .query_row(
                "SELECT count(*) FROM audit_heads WHERE tenant_id = 'poisoned'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(poisoned_heads, 0);
    }

    #[test]
    fn a_batch_without_failures_commits_in_one_pass_and_a_failure_anywhere_is_undone_alone() {
        // No failure: one pass, no savepoint; every event stored as its receipt says.
        let (mut writer, _dir) = fixture("one-pass");
        let (a, mut answer_a) = append(vec![event("acme", 0), event("globex", 0)]);
        let (b, mut answer_b) = append(vec![event("acme", 1)]);
        let (c, mut answer_c) = append(vec![event("acme", 2), event("acme", 3)]);
        writer.process(vec![a, b, c]);
        assert_eq!(writer.savepoint_passes, 0);
        let mut receipts = Vec::new();
        for answer in [&mut answer_a, &mut answer_b, &mut answer_c] {
            receipts.extend(answer.try_recv().unwrap().unwrap());
        }
        let places: Vec<(&str, u64)> = receipts
            .iter()
            .map(|r| (r.tenant_id.as_str(), r.seq))
            .collect();
        assert_eq!(
            places,
            vec![
                ("acme", 0),
                ("globex", 0),
                ("acme", 1),
                ("acme", 2),
                ("acme", 3)
            ]
        );
        for receipt in &receipts {
            let leaf: Vec<u8> = writer
                .conn
                .query_row(
                    "SELECT leaf FROM audit_entries WHERE tenant_id = ?1 AND seq = ?2",
                    params![receipt.tenant_id.as_str(), receipt.seq as i64],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(leaf_hash(&leaf).to_hex(), receipt.leaf_hash);
        }

        // The failing request first, in the middle or last of four: the other three commit
        // with the seqs they would have had without it, and nothing of it is kept.
        for bad_at in 0..4 {
            let (mut writer, _dir) = fixture(&format!("fail-at-{bad_at}"));
            poison(&writer);
            let mut commands = Vec::new();
            let mut answers = Vec::new();
            let mut good = 0;
            for i in 0..4 {
                let (command, answer) = if i == bad_at {
                    append(vec![event("acme", 90), event("poisoned", 0)])
                } else {
                    good += 1;
                    append(vec![event("acme", good)])
                };
                commands.push(command);
                answers.push(answer);
            }
            writer.process(commands);
            assert_eq!(writer.savepoint_passes, 1, "bad at {bad_at}");
            let mut next = 0;
            for (i, answer) in answers.iter_mut().enumerate() {
                if i == bad_at {
                    assert!(matches!(seqs(answer), Err(StoreError::Corrupt { .. })));
                } else {
                    assert_eq!(seqs(answer).unwrap(), vec![next], "bad at {bad_at}");
                    next += 1;
                }
            }
            assert_eq!(stored(&writer, "acme"), 3, "bad at {bad_at}");
            assert_eq!(stored(&writer, "poisoned"), 1, "bad at {bad_at}");
            // The next batch starts where the committed head ends.
            let (d, mut answer_d) = append(vec![event("acme", 9)]);
            let (e, mut answer_e) = append(vec![event("acme", 10)]);
            writer.process(vec![d, e]);
            assert_eq!(seqs(&mut answer_d).unwrap(), vec![3]);
            assert_eq!(seqs(&mut answer_e).unwrap(), vec![4]);
        }
    }

    #[test]
    fn a_lone_failing_request_keeps_nothing_and_the_next_one_starts_where_it_should() {
        let (mut writer, _dir) = fixture("alone");
        poison(&writer);
        let (bad, mut answer_bad) = append(vec![event("acme", 0), event("poisoned", 0)]);
        writer.process(vec![bad]);
        assert!(matches!(
            seqs(&mut answer_bad),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(writer.conn.is_autocommit(), "the transaction was ended");
        assert_eq!(stored(&writer, "acme"), 0);

        let (good, mut answer_good) = append(vec![event("acme", 1)]);
        writer.process(vec![good]);
        assert_eq!(seqs(&mut answer_good).unwrap(), vec![0]);
    }

    #[test]
    fn when_commit_fails_every_request_fails_and_the_heads_are_reloaded() {
        let (mut writer, _dir) = fixture("commit");
        // A deferred foreign key is checked only at COMMIT: an insert for tenant "doomed" plants a
        // dangling child row, so the whole batch's COMMIT fails.
        writer
            .conn
            .execute_batch(
                "CREATE TABLE parent (id INTEGER PRIMARY KEY);
                 CREATE TABLE child (
                     parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED
                 );
                 CREATE TEMP TRIGGER doom AFTER INSERT ON main.audit_entries
                 WHEN NEW.tenant_id = 'doomed'
                 BEGIN INSERT INTO child (parent_id) VALUES (42); END;",
            )
            .unwrap();
        let (a, mut answer_a) = append(vec![event("acme", 0)]);
        let (doomed, mut answer_doomed) = append(vec![event("doomed", 0)]);
        writer.process(vec![a, doomed]);
        assert!(matches!(
            seqs(&mut answer_a),
            Err(StoreError::Refused { .. })
        ));
        assert!(seqs(&mut answer_doomed).is_err());
        assert_eq!(stored(&writer, "acme"), 0);
        assert!(
            writer.conn.is_autocommit(),
            "the failed transaction was ended"
        );

        // Nothing was kept, so acme starts again at 0.
        let (a, mut answer_a) = append(vec![event("acme", 0)]);
        writer.process(vec![a]);
        assert_eq!(seqs(&mut answer_a).unwrap(), vec![0]);
    }

    #[test]
    fn a_batch_takes_what_is_queued_up_to_its_budget() {
        let (mut writer, _dir) = fixture("budget");
        writer.max_batch_events = 3;
        let (tx, rx) = std::sync::mpsc::channel();
        let mut answers = Vec::new();
        for n in 0..5 {
            let (command, answer) = append(vec![event("acme", n), event("acme", n + 100)]);
            tx.send(command).unwrap();
            answers.push(answer);
        }
        drop(tx);
        writer.run(&rx);
        let mut all = Vec::new();
        for answer in &mut answers {
            all.extend(seqs(answer).unwrap());
        }
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    /// A clock one second later at each reading. The writer reads it once per batch and stamps
    /// every record of the batch with it, so a receipt's `recorded_at` says which batch stored it.
    #[derive(Debug)]
    struct BatchCounter {
        start: DateTime<Utc>,
        readings: std::sync::atomic::AtomicI64,
    }

    impl Clock for BatchCounter {
        fn now(&self) -> DateTime<Utc> {
            let n = self
                .readings
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.start + chrono::Duration::seconds(n)
        }
    }

    /// One queued command: an append of `events` events, or a change set with that many audit
    /// events and no mutation.
    #[derive(Clone, Copy)]
    enum Queued {
        Append(u64),
        Change(u64),
    }

    /// Queues the commands, runs the writer over them with a budget of `max` events per batch,
    /// and returns which commands shared a batch (by their index in `queued`).
    fn batches_of(max: usize, queued: &[Queued]) -> Vec<Vec<usize>> {
        let (writer, _dir) = fixture("batches");
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut writer = Writer {
            clock: Arc::new(BatchCounter {
                start,
                readings: 0.into(),
            }),
            ..writer
        };
        writer.max_batch_events = max;
        let (tx, rx) = std::sync::mpsc::channel();
        let mut answers = Vec::new();
        let mut n = 0;
        for q in queued {
            let (count, change) = match *q {
                Queued::Append(count) => (count, false),
                Queued::Change(count) => (count, true),
            };
            let events: Vec<AuditEvent> = (n..n + count).map(|i| event("acme", i)).collect();
            n += count;
            let (reply, answer) = oneshot::channel();
            let command = if change {
                Command::Commit {
                    change: ChangeSet {
                        tenant: TenantId::parse("acme").unwrap(),
                        mutations: Vec::new(),
                        audit: events,
                    },
                    reply,
                }
            } else {
                Command::Append { events, reply }
            };
            tx.send(command).unwrap();
            answers.push(answer);
        }
        drop(tx);
        writer.run(&rx);
        let mut batches: Vec<Vec<usize>> = Vec::new();
        for (i, answer) in answers.iter_mut().enumerate() {
            let receipts = answer.try_recv().unwrap().unwrap();
            let batch = (receipts[0].recorded_at - start).num_seconds();
            assert!(
                receipts
                    .iter()
                    .all(|r| r.recorded_at == receipts[0].recorded_at)
            );
            let batch = usize::try_from(batch).unwrap();
            if batches.len() <= batch {
                batches.resize(batch + 1, Vec::new());
            }
            batches[batch].push(i);
        }
        batches
    }

    #[test]
    fn a_batch_holds_queued_commands_while_their_events_fit_its_budget() {
        use Queued::{Append, Change};
        // Worked out by hand: a command joins the batch while the events so far plus its own
        // are at most the budget; the first that would exceed it starts the next batch.
        assert_eq!(
            batches_of(3, &[Append(1); 7]),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
        );
        assert_eq!(
            batches_of(3, &[Append(2); 3]),
            vec![vec![0], vec![1], vec![2]]
        );
        // Exactly at the budget still fits.
        assert_eq!(
            batches_of(5, &[Append(3), Append(2), Append(1)]),
            vec![vec![0, 1], vec![2]]
        );
        // A change set weighs its audit events as appends do.
        assert_eq!(
            batches_of(3, &[Change(2), Change(2)]),
            vec![vec![0], vec![1]]
        );
        // A command larger than the budget is a batch of its own.
        assert_eq!(
            batches_of(2, &[Append(1), Append(5), Append(1)]),
            vec![vec![0], vec![1], vec![2]]
        );
    }

    #[test]
    fn a_batch_whose_begin_fails_answers_every_request_with_that_error() {
        let (mut writer, dir) = fixture("begin");
        writer
            .conn
            .busy_timeout(std::time::Duration::from_millis(1))
            .unwrap();
        // Another connection holds the write lock, so BEGIN IMMEDIATE is refused.
        let other = Connection::open(dir.0.join("audit.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let (a, mut answer_a) = append(vec![event("acme", 0)]);
        let (b, mut answer_b) = append(vec![event("globex", 0)]);
        writer.process(vec![a, b]);
        for answer in [&mut answer_a, &mut answer_b] {
            let answered = answer.try_recv().expect("answered, not dropped");
            assert!(
                matches!(&answered, Err(StoreError::Unavailable { message }) if message.contains("lock")),
                "{answered:?}"
            );
        }
        other.execute_batch("ROLLBACK").unwrap();
        assert_eq!(stored(&writer, "acme"), 0);
        let (a, mut answer_a) = append(vec![event("acme", 0)]);
        writer.process(vec![a]);
        assert_eq!(seqs(&mut answer_a).unwrap(), vec![0]);
    }

    #[test]
    fn the_head_cache_is_dropped_once_it_holds_more_than_its_bound() {
        let (mut writer, _dir) = fixture("cache");
        assert!(
            format!("{writer:?}").contains("cached_heads: 0"),
            "{writer:?}"
        );
        let (full, mut answer) = append(
            (0..MAX_CACHED_HEADS)
                .map(|n| event(&format!("t{n}"), 0))
                .collect(),
        );
        writer.process(vec![full]);
        assert_eq!(seqs(&mut answer).unwrap().len(), MAX_CACHED_HEADS);
        // At the bound the cache is kept...
        let kept = format!("cached_heads: {MAX_CACHED_HEADS}");
        assert!(format!("{writer:?}").contains(&kept), "{writer:?}");
        // ...one more tenant and it is dropped after the batch, to be refilled from the file.
        let (one_more, mut answer) = append(vec![event("one-more", 0)]);
        writer.process(vec![one_more]);
        assert_eq!(seqs(&mut answer).unwrap(), vec![0]);
        assert!(
            format!("{writer:?}").contains("cached_heads: 0"),
            "{writer:?}"
        );
        // Refilled from the file: t0 continues at seq 1.
        let (again, mut answer) = append(vec![event("t0", 1)]);
        writer.process(vec![again]);
        assert_eq!(seqs(&mut answer).unwrap(), vec![1]);
    }
}

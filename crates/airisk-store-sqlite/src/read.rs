//! Reads: a small pool of read-only connections, each query in one read transaction (one
//! snapshot), run on tokio's blocking threads.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use airisk_core::ledger::{Hash, NodeId, root_from_leaf_hashes};
use airisk_core::ports::{EntryPage, StoreError, StoredCheckpoint, StoredEntry, TreeHead};
use airisk_core::security::tenant_context::TenantId;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::connection::{ConnectionSettings, open_reader, read_settings};
use crate::error::{corrupt, from_sql_int, map_sqlite};
use crate::write::decode_head;

/// Read-only connections, reused. When all are busy another is opened; at most `max_idle` are
/// kept afterwards.
#[derive(Debug)]
pub(crate) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
    busy_timeout: Duration,
    /// `PRAGMA mmap_size` while a scan reads (0: scans read like any other read).
    scan_mmap_bytes: i64,
    /// The distinct settings read back from every reader connection opened so far (for tests;
    /// bounded: reader settings never vary unless the code is wrong).
    settings_seen: Mutex<Vec<ConnectionSettings>>,
}

impl ReadPool {
    pub(crate) fn new(
        path: PathBuf,
        max_idle: usize,
        busy_timeout: Duration,
        scan_mmap_bytes: u64,
    ) -> Self {
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
            max_idle,
            busy_timeout,
            scan_mmap_bytes: i64::try_from(scan_mmap_bytes).unwrap_or(i64::MAX),
            settings_seen: Mutex::new(Vec::new()),
        }
    }

    /// The distinct settings of the reader connections opened so far.
    pub(crate) fn settings_seen(&self) -> Vec<ConnectionSettings> {
        self.settings_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let conn = open_reader(&self.path, self.busy_timeout).map_err(|e| map_sqlite(&e))?;
        let settings = read_settings(&conn, "reader").map_err(|e| map_sqlite(&e))?;
        let mut seen = self
            .settings_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !seen.contains(&settings) {
            seen.push(settings);
        }
        Ok(conn)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Connection>> {
        // The vector is only pushed and popped; a panic elsewhere cannot leave it inconsistent.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Closes every idle connection.
    pub(crate) fn close_idle(&self) {
        self.lock().clear();
    }

    /// Runs `f` inside one read transaction on a pooled connection, on a blocking thread.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || pool.read_blocking(f))
            .await
            .map_err(|e| StoreError::Unavailable {
                message: format!("sqlite read task failed: {e}"),
            })?
    }

    /// [`ReadPool::read`] for a scan that reads a long run of pages once (a verification page):
    /// the file is mapped into memory while it reads (up to `scan_mmap_bytes`), so SQLite uses
    /// the pages where the kernel holds them instead of copying each in with `pread`. The
    /// mapping is released before the connection goes back to the pool.
    pub(crate) async fn scan<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || pool.read_mapped(pool.scan_mmap_bytes, f))
            .await
            .map_err(|e| StoreError::Unavailable {
                message: format!("sqlite read task failed: {e}"),
            })?
    }

    /// The same as [`ReadPool::read`], on the calling thread.
    pub(crate) fn read_blocking<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.read_mapped(0, f)
    }

    /// Runs `f` in one read transaction with `PRAGMA mmap_size = mmap` (0: not mapped). A
    /// connection whose mapping cannot be released again is closed instead of pooled.
    fn read_mapped<T>(
        &self,
        mmap: i64,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.lock().pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.open()?,
        };
        let set_mmap = |conn: &Connection, bytes: i64| {
            conn.pragma_update(None, "mmap_size", bytes)
                .map_err(|e| map_sqlite(&e))
        };
        let result = (|| {
            if mmap > 0 {
                set_mmap(&conn, mmap)?;
            }
            let tx = conn.transaction().map_err(|e| map_sqlite(&e))?;
            let value = f(&tx)?;
            // Read-only: ending it either way releases the snapshot.
            tx.finish().map_err(|e| map_sqlite(&e))?;
            Ok(value)
        })();
        if mmap > 0 && set_mmap(&conn, 0).is_err() {
            // Still mapped: dropping the connection unmaps the file.
            return result;
        }
        let mut idle = self.lock();
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
        result
    }
}

pub(crate) fn tree_head(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
) -> Result<TreeHead, StoreError> {
    let row: Option<(i64, Vec<u8>)> = tx
        .prepare_cached("SELECT size, frontier FROM audit_heads WHERE tenant_id = ?1")
        .and_then(|mut s| {
            s.query_row([tenant.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(|e| map_sqlite(&e))?;
    Ok(match row {
        None => TreeHead {
            size: 0,
            root: Hash::EMPTY_ROOT,
        },
        Some((size, bytes)) => {
            let frontier = decode_head(tenant, size, &bytes)?;
            TreeHead {
                size: frontier.size(),
                root: frontier.root(),
            }
        }
    })
}

pub(crate) fn entries(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    from_seq: u64,
    limit: usize,
) -> Result<Vec<StoredEntry>, StoreError> {
    let mut out = Vec::with_capacity(limit.min(ENTRIES_RESERVED));
    scan_entries(tx, tenant, from_seq, limit, |seq, leaf, leaf_hash| {
        out.push(StoredEntry {
            seq,
            leaf: leaf.to_vec(),
            leaf_hash,
        });
    })?;
    Ok(out)
}

/// The same entries as [`entries`], packed into one page (no allocation per leaf).
pub(crate) fn entry_page(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    from_seq: u64,
    limit: usize,
) -> Result<EntryPage, StoreError> {
    let reserved = limit.min(ENTRIES_RESERVED);
    let mut page = EntryPage::with_capacity(reserved, reserved.saturating_mul(LEAF_BYTES_GUESS));
    scan_entries(tx, tenant, from_seq, limit, |seq, leaf, leaf_hash| {
        page.push(seq, leaf, leaf_hash);
    })?;
    Ok(page)
}

/// Entries reserved room for up front (a verification page); more grow the vectors.
const ENTRIES_RESERVED: usize = 16_384;

/// Room reserved per leaf in a page: a typical canonical record is 300-600 bytes.
const LEAF_BYTES_GUESS: usize = 512;

/// Calls `each(seq, leaf, leaf_hash)` for up to `limit` entries of `tenant` from `from_seq`, in
/// seq order, with the leaf borrowed from SQLite's row (copied only if `each` keeps it).
fn scan_entries(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    from_seq: u64,
    limit: usize,
    mut each: impl FnMut(u64, &[u8], Hash),
) -> Result<(), StoreError> {
    // Seqs beyond i64::MAX cannot be stored, so nothing lies there.
    let Ok(from) = i64::try_from(from_seq) else {
        return Ok(());
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = tx
        .prepare_cached(
            "SELECT seq, leaf, leaf_hash FROM audit_entries
             WHERE tenant_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
        )
        .map_err(|e| map_sqlite(&e))?;
    let mut rows = stmt
        .query(params![tenant.as_str(), from, limit])
        .map_err(|e| map_sqlite(&e))?;
    while let Some(row) = rows.next().map_err(|e| map_sqlite(&e))? {
        let seq: i64 = row.get(0).map_err(|e| map_sqlite(&e))?;
        let leaf = row
            .get_ref(1)
            .map_err(|e| map_sqlite(&e))?
            .as_blob()
            .map_err(|_| {
                corrupt(format!(
                    "entry {seq} of tenant {tenant}: leaf is not a blob"
                ))
            })?;
        let hash = hash_column(row, 2, || {
            format!("entry {seq} of tenant {tenant}: leaf hash is not 32 bytes")
        })?;
        each(from_sql_int(seq, "seq")?, leaf, hash);
    }
    Ok(())
}

/// The lowest level of the Merkle tree whose nodes are stored in `audit_nodes`. Nodes below it
/// (subtrees of at most `2^(LOWEST_STORED_LEVEL - 1)` = 8 leaves) are recomputed from the
/// entries' stored leaf hashes when read: one short range scan each. Storing every level would
/// cost one node row per entry on average (a node of level `l` completes every `2^l` appends);
/// from level 4 up it is one per eight entries, and the one writer thread, which bounds the
/// store's durable appends, does an eighth as many node inserts. A proof still needs at most
/// three such scans (one per level below this), of 2, 4 and 8 rows.
///
/// Files written with every level stored (before this) read the same: the low levels are
/// recomputed there too, from the same leaf hashes, and give the same hashes.
pub(crate) const LOWEST_STORED_LEVEL: u8 = 4;

/// Every requested node that is stored or can be recomputed from stored leaf hashes, in request
/// order, all read from one snapshot with prepared statements: level 0 is an entry's leaf hash,
/// levels 1 to `LOWEST_STORED_LEVEL - 1` are recomputed from their `2^level` entries' leaf
/// hashes (absent unless every one is stored), higher levels come from the node table.
pub(crate) fn nodes(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    ids: &[NodeId],
) -> Result<Vec<(NodeId, Hash)>, StoreError> {
    let mut leaf = tx
        .prepare_cached("SELECT leaf_hash FROM audit_entries WHERE tenant_id = ?1 AND seq = ?2")
        .map_err(|e| map_sqlite(&e))?;
    let mut node = tx
        .prepare_cached(
            "SELECT hash FROM audit_nodes WHERE tenant_id = ?1 AND last_leaf = ?2 AND level = ?3",
        )
        .map_err(|e| map_sqlite(&e))?;
    let mut span = tx
        .prepare_cached(
            "SELECT leaf_hash FROM audit_entries
             WHERE tenant_id = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
        )
        .map_err(|e| map_sqlite(&e))?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        // A node is stored under the last leaf it covers; one beyond i64::MAX cannot exist.
        let last_leaf = id.leaf_range().and_then(|r| i64::try_from(r.end - 1).ok());
        let Some(last_leaf) = last_leaf else {
            continue;
        };
        if (1..LOWEST_STORED_LEVEL).contains(&id.level) {
            if let Some(hash) = recomputed(&mut span, tenant, *id, last_leaf)? {
                out.push((*id, hash));
            }
            continue;
        }
        let found: Option<Vec<u8>> = if id.level == 0 {
            leaf.query_row(params![tenant.as_str(), last_leaf], |row| row.get(0))
        } else {
            node.query_row(params![tenant.as_str(), last_leaf, id.level], |row| {
                row.get(0)
            })
        }
        .optional()
        .map_err(|e| map_sqlite(&e))?;
        if let Some(bytes) = found {
            let hash = Hash::from_slice(&bytes)
                .map_err(|_| corrupt(format!("node {id} of tenant {tenant} is not 32 bytes")))?;
            out.push((*id, hash));
        }
    }
    Ok(out)
}

/// The hash of node `id` (level 1 to `LOWEST_STORED_LEVEL - 1`, last leaf `last_leaf`) from its
/// entries' stored leaf hashes, or `None` if any of them is missing.
fn recomputed(
    span: &mut rusqlite::CachedStatement<'_>,
    tenant: &TenantId,
    id: NodeId,
    last_leaf: i64,
) -> Result<Option<Hash>, StoreError> {
    let leaves = 1i64 << id.level;
    let first = last_leaf - (leaves - 1);
    let mut rows = span
        .query(params![tenant.as_str(), first, last_leaf])
        .map_err(|e| map_sqlite(&e))?;
    let mut hashes = Vec::with_capacity(1 << id.level);
    while let Some(row) = rows.next().map_err(|e| map_sqlite(&e))? {
        hashes.push(hash_column(row, 0, || {
            format!("a leaf hash of node {id} of tenant {tenant} is not 32 bytes")
        })?);
    }
    // Seqs are unique per tenant, so as many rows as leaves means every one is there.
    Ok((hashes.len() as i64 == leaves).then(|| root_from_leaf_hashes(&hashes)))
}

/// Column `index` of `row` as a stored hash; a value that is not a 32-byte blob is corruption,
/// described by `what`.
fn hash_column(
    row: &rusqlite::Row<'_>,
    index: usize,
    what: impl FnOnce() -> String,
) -> Result<Hash, StoreError> {
    row.get_ref(index)
        .map_err(|e| map_sqlite(&e))?
        .as_blob()
        .ok()
        .and_then(|b| Hash::from_slice(b).ok())
        .ok_or_else(|| corrupt(what()))
}

pub(crate) fn checkpoints(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    latest_only: bool,
) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let sql = if latest_only {
        "SELECT size, root, note, signed_at FROM audit_checkpoints
         WHERE tenant_id = ?1 ORDER BY size DESC LIMIT 1"
    } else {
        "SELECT size, root, note, signed_at FROM audit_checkpoints
         WHERE tenant_id = ?1 ORDER BY size"
    };
    let mut stmt = tx.prepare_cached(sql).map_err(|e| map_sqlite(&e))?;
    let mut rows = stmt.query([tenant.as_str()]).map_err(|e| map_sqlite(&e))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| map_sqlite(&e))? {
        let size: i64 = row.get(0).map_err(|e| map_sqlite(&e))?;
        let size = from_sql_int(size, "checkpoint size")?;
        let root: Vec<u8> = row.get(1).map_err(|e| map_sqlite(&e))?;
        let root = Hash::from_slice(&root).map_err(|_| {
            corrupt(format!(
                "checkpoint {size} of tenant {tenant}: root is not 32 bytes"
            ))
        })?;
        let note: String = row.get(2).map_err(|e| map_sqlite(&e))?;
        let signed_at: String = row.get(3).map_err(|e| map_sqlite(&e))?;
        let signed_at = DateTime::parse_from_rfc3339(&signed_at)
            .map_err(|e| {
                corrupt(format!(
                    "checkpoint {size} of tenant {tenant}: signed_at: {e}"
                ))
            })?
            .with_timezone(&Utc);
        out.push(StoredCheckpoint {
            size,
            root,
            note,
            signed_at,
        });
    }
    Ok(out)
}

/// Tenants with entries, or with a head that says they had some (a ledger whose rows were
/// removed must still be listed, so `verify` of every tenant finds it). The entries are walked
/// with one index seek per tenant, not a scan.
pub(crate) fn tenants(tx: &rusqlite::Transaction<'_>) -> Result<Vec<TenantId>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "WITH RECURSIVE t(id) AS (
                 SELECT min(tenant_id) FROM audit_entries
                 UNION ALL
                 SELECT (SELECT min(tenant_id) FROM audit_entries WHERE tenant_id > t.id)
                 FROM t WHERE t.id IS NOT NULL
             )
             SELECT id FROM t WHERE id IS NOT NULL
             UNION
             SELECT tenant_id FROM audit_heads WHERE size > 0
             ORDER BY 1",
        )
        .map_err(|e| map_sqlite(&e))?;
    let mut rows = stmt.query([]).map_err(|e| map_sqlite(&e))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| map_sqlite(&e))? {
        let id: String = row.get(0).map_err(|e| map_sqlite(&e))?;
        out.push(
            TenantId::parse(&id).map_err(|e| corrupt(format!("stored tenant id {id:?}: {e}")))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{migrate, open_writer};

    /// A migrated database in a temporary directory, removed when dropped.
    struct Db(PathBuf);

    impl Drop for Db {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl Db {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!(
                "airisk-sqlite-read-{}-{}",
                std::process::id(),
                uuid::Uuid::now_v7().simple()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let mut conn = open_writer(&dir.join("audit.db"), Duration::from_secs(5)).unwrap();
            migrate(&mut conn, "2026-01-01T00:00:00.000000Z").unwrap();
            Db(dir)
        }

        fn file(&self) -> PathBuf {
            self.0.join("audit.db")
        }
    }

    fn mmap_size(tx: &rusqlite::Transaction<'_>) -> Result<i64, StoreError> {
        tx.query_row("PRAGMA mmap_size", [], |row| row.get(0))
            .map_err(|e| map_sqlite(&e))
    }

    #[tokio::test]
    async fn a_scan_maps_the_file_and_hands_the_connection_back_unmapped() {
        let db = Db::new();
        let pool = Arc::new(ReadPool::new(db.file(), 1, Duration::from_secs(5), 1 << 20));
        // A plain read is not mapped, a scan is, and the connection it used (the only one the
        // pool keeps) reads unmapped afterwards.
        assert_eq!(pool.read(mmap_size).await.unwrap(), 0);
        assert_eq!(pool.scan(mmap_size).await.unwrap(), 1 << 20);
        assert_eq!(pool.lock().len(), 1);
        assert_eq!(pool.read(mmap_size).await.unwrap(), 0);
        // A scan that fails also leaves its connection unmapped.
        let failed: Result<(), StoreError> =
            pool.scan(|_| Err(corrupt("the scan's own error"))).await;
        assert!(
            matches!(failed, Err(StoreError::Corrupt { .. })),
            "{failed:?}"
        );
        assert_eq!(pool.lock().len(), 1);
        assert_eq!(pool.read(mmap_size).await.unwrap(), 0);

        // Turned off, a scan reads like any other read.
        let off = Arc::new(ReadPool::new(db.file(), 1, Duration::from_secs(5), 0));
        assert_eq!(off.scan(mmap_size).await.unwrap(), 0);
    }
}

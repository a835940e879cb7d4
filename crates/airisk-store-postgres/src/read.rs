//! Ledger reads. Each runs in its own read-only transaction scoped to the tenant (one snapshot).

use airisk_core::ledger::{Frontier, Hash, NodeId};
use airisk_core::ports::{AuditQuery, StoreError, StoredCheckpoint, StoredEntry, TreeHead};
use airisk_core::security::tenant_context::TenantId;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row};

use crate::error::{corrupt, map, to_i64, to_u64};
use crate::write::{begin_for, decode_frontier, end_read};

fn hash(tenant: &TenantId, bytes: &[u8], what: &str) -> Result<Hash, StoreError> {
    Hash::from_slice(bytes).map_err(|e| corrupt(format!("{what} of tenant {tenant}: {e}")))
}

/// A `LIMIT` from a `usize`.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) async fn tree_head(pool: &PgPool, tenant: &TenantId) -> Result<TreeHead, StoreError> {
    let mut tx = begin_for(pool, tenant, true).await?;
    let head = head_in(&mut tx, tenant).await?;
    end_read(tx);
    Ok(head)
}

async fn head_in(conn: &mut PgConnection, tenant: &TenantId) -> Result<TreeHead, StoreError> {
    let row = sqlx::query("SELECT size, frontier FROM audit_heads WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| map(&e))?;
    let frontier = match row {
        None => Frontier::new(),
        Some(row) => {
            let size: i64 = row.try_get(0).map_err(|e| map(&e))?;
            let bytes: Vec<u8> = row.try_get(1).map_err(|e| map(&e))?;
            decode_frontier(tenant, size, &bytes)?
        }
    };
    Ok(TreeHead {
        size: frontier.size(),
        root: frontier.root(),
    })
}

/// The head and every checkpoint of `tenant` in one read-only transaction, checkpoints first: a
/// checkpoint is signed over a head already committed and heads only grow, so the head read
/// second covers every checkpoint read first (under READ COMMITTED each statement has its own
/// snapshot; this order is what makes the pair consistent).
pub(crate) async fn head_and_checkpoints(
    pool: &PgPool,
    tenant: &TenantId,
) -> Result<(TreeHead, Vec<StoredCheckpoint>), StoreError> {
    let mut tx = begin_for(pool, tenant, true).await?;
    let checkpoints = checkpoints_in(&mut tx, tenant, false).await?;
    let head = head_in(&mut tx, tenant).await?;
    end_read(tx);
    Ok((head, checkpoints))
}

fn entry(tenant: &TenantId, row: &PgRow) -> Result<StoredEntry, StoreError> {
    let seq: i64 = row.try_get(0).map_err(|e| map(&e))?;
    let leaf: Vec<u8> = row.try_get(1).map_err(|e| map(&e))?;
    let leaf_hash: Vec<u8> = row.try_get(2).map_err(|e| map(&e))?;
    Ok(StoredEntry {
        seq: to_u64(seq, "seq")?,
        leaf,
        leaf_hash: hash(tenant, &leaf_hash, "leaf hash")?,
    })
}

pub(crate) async fn entries(
    pool: &PgPool,
    tenant: &TenantId,
    from_seq: u64,
    n: usize,
) -> Result<Vec<StoredEntry>, StoreError> {
    let Ok(from) = i64::try_from(from_seq) else {
        return Ok(Vec::new());
    };
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut tx = begin_for(pool, tenant, true).await?;
    let rows = sqlx::query(
        "SELECT seq, leaf, leaf_hash FROM audit_entries WHERE tenant_id = $1 AND seq >= $2 \
         ORDER BY seq LIMIT $3",
    )
    .bind(tenant.as_str())
    .bind(from)
    .bind(limit(n))
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| map(&e))?;
    end_read(tx);
    rows.iter().map(|row| entry(tenant, row)).collect()
}

pub(crate) async fn nodes(
    pool: &PgPool,
    tenant: &TenantId,
    ids: &[NodeId],
) -> Result<Vec<(NodeId, Hash)>, StoreError> {
    // Level 0 is the entries' leaf hashes; ids that cannot be stored are simply absent.
    let mut seqs = Vec::new();
    let mut levels = Vec::new();
    let mut idxs = Vec::new();
    for id in ids {
        let Ok(index) = i64::try_from(id.index) else {
            continue;
        };
        match id.level {
            0 => seqs.push(index),
            1..=63 => {
                levels.push(i16::from(id.level));
                idxs.push(index);
            }
            _ => {}
        }
    }
    if seqs.is_empty() && levels.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = begin_for(pool, tenant, true).await?;
    let rows = sqlx::query(
        "SELECT n.level, n.idx, n.hash FROM audit_nodes n \
         JOIN unnest($2::smallint[], $3::bigint[]) AS q(level, idx) \
           ON n.level = q.level AND n.idx = q.idx \
         WHERE n.tenant_id = $1 \
         UNION ALL \
         SELECT 0::smallint, e.seq, e.leaf_hash FROM audit_entries e \
         WHERE e.tenant_id = $1 AND e.seq = ANY($4::bigint[])",
    )
    .bind(tenant.as_str())
    .bind(levels)
    .bind(idxs)
    .bind(seqs)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| map(&e))?;
    end_read(tx);
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let level: i16 = row.try_get(0).map_err(|e| map(&e))?;
        let index: i64 = row.try_get(1).map_err(|e| map(&e))?;
        let bytes: Vec<u8> = row.try_get(2).map_err(|e| map(&e))?;
        let level =
            u8::try_from(level).map_err(|_| corrupt(format!("stored node level {level}")))?;
        found.insert(
            NodeId::new(level, to_u64(index, "node index")?),
            hash(tenant, &bytes, "node hash")?,
        );
    }
    // In the order asked, each once.
    Ok(ids
        .iter()
        .filter_map(|id| found.remove(id).map(|h| (*id, h)))
        .collect())
}

pub(crate) async fn add_checkpoint(
    pool: &PgPool,
    tenant: &TenantId,
    checkpoint: &StoredCheckpoint,
) -> Result<(), StoreError> {
    let mut tx = begin_for(pool, tenant, false).await?;
    sqlx::query(
        "INSERT INTO audit_checkpoints (tenant_id, size, root, note, signed_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant.as_str())
    .bind(to_i64(checkpoint.size, "checkpoint size")?)
    .bind(checkpoint.root.as_bytes().as_slice())
    .bind(&checkpoint.note)
    .bind(checkpoint.signed_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| map(&e))?;
    tx.commit().await.map_err(|e| map(&e))
}

pub(crate) async fn checkpoints(
    pool: &PgPool,
    tenant: &TenantId,
    latest_only: bool,
) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let mut tx = begin_for(pool, tenant, true).await?;
    let found = checkpoints_in(&mut tx, tenant, latest_only).await?;
    end_read(tx);
    Ok(found)
}

async fn checkpoints_in(
    conn: &mut PgConnection,
    tenant: &TenantId,
    latest_only: bool,
) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let sql = if latest_only {
        "SELECT size, root, note, signed_at FROM audit_checkpoints WHERE tenant_id = $1 \
         ORDER BY size DESC LIMIT 1"
    } else {
        "SELECT size, root, note, signed_at FROM audit_checkpoints WHERE tenant_id = $1 \
         ORDER BY size"
    };
    let rows = sqlx::query(sql)
        .bind(tenant.as_str())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| map(&e))?;
    rows.iter()
        .map(|row| {
            let size: i64 = row.try_get(0).map_err(|e| map(&e))?;
            let root: Vec<u8> = row.try_get(1).map_err(|e| map(&e))?;
            let note: String = row.try_get(2).map_err(|e| map(&e))?;
            let signed_at: DateTime<Utc> = row.try_get(3).map_err(|e| map(&e))?;
            Ok(StoredCheckpoint {
                size: to_u64(size, "checkpoint size")?,
                root: hash(tenant, &root, "checkpoint root")?,
                note,
                signed_at,
            })
        })
        .collect()
}

/// Every tenant with a ledger, from the `audit_tenants` directory. The table itself is under
/// row-level security (the application role sees only its transaction's tenant's row); the list
/// comes from `airisk_ledger_tenants()`, a SECURITY DEFINER function that returns ids only.
pub(crate) async fn tenants(pool: &PgPool) -> Result<Vec<TenantId>, StoreError> {
    let rows = sqlx::query("SELECT t FROM airisk_ledger_tenants() AS t")
        .fetch_all(pool)
        .await
        .map_err(|e| map(&e))?;
    rows.iter()
        .map(|row| {
            let id: String = row.try_get(0).map_err(|e| map(&e))?;
            TenantId::parse(&id).map_err(|e| corrupt(format!("stored tenant id {id:?}: {e}")))
        })
        .collect()
}

/// `AuditRepository::search` as one indexed query over the copied columns.
pub(crate) async fn search(
    pool: &PgPool,
    tenant: &TenantId,
    query: &AuditQuery,
    n: usize,
) -> Result<Vec<StoredEntry>, StoreError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut q: QueryBuilder<'_, Postgres> =
        QueryBuilder::new("SELECT seq, leaf, leaf_hash FROM audit_entries WHERE tenant_id = ");
    q.push_bind(tenant.as_str().to_owned());
    if let Some(actor) = &query.actor {
        q.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(action) = &query.action {
        match action.strip_suffix('.') {
            // `model.` matches every action starting with it: in byte order (the column's "C"
            // collation) that is the range ['model.', 'model/'), '/' being the byte after '.'.
            Some(stem) => {
                q.push(" AND action >= ")
                    .push_bind(action.clone())
                    .push(" AND action < ")
                    .push_bind(format!("{stem}/"));
            }
            None => {
                q.push(" AND action = ").push_bind(action.clone());
            }
        }
    }
    if let Some(rt) = &query.resource_type {
        q.push(" AND resource_type = ").push_bind(rt.clone());
    }
    if let Some(rid) = &query.resource_id {
        q.push(" AND resource_id = ").push_bind(rid.clone());
    }
    if let Some(c) = &query.correlation_id {
        q.push(" AND correlation_id = ").push_bind(c.clone());
    }
    if let Some(o) = query.outcome {
        q.push(" AND outcome = ").push_bind(o.as_str());
    }
    if let Some(from) = query.from {
        q.push(" AND recorded_at >= ").push_bind(from);
    }
    if let Some(to) = query.to {
        q.push(" AND recorded_at < ").push_bind(to);
    }
    if let Some(cursor) = query.cursor {
        let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
        q.push(if query.newest_first {
            " AND seq < "
        } else {
            " AND seq > "
        })
        .push_bind(cursor);
    }
    q.push(if query.newest_first {
        " ORDER BY seq DESC LIMIT "
    } else {
        " ORDER BY seq LIMIT "
    })
    .push_bind(limit(n));
    let mut tx = begin_for(pool, tenant, true).await?;
    let rows = q.build().fetch_all(&mut *tx).await.map_err(|e| map(&e))?;
    end_read(tx);
    rows.iter().map(|row| entry(tenant, row)).collect()
}

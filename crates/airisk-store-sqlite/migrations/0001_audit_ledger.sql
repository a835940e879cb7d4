-- The audit ledger: one RFC 6962 Merkle tree per tenant.
--
-- Every table is keyed by tenant_id first, so each tenant's ledger is an independent range of
-- every index (and the same layout shards by tenant_id in PostgreSQL). Only portable SQL here,
-- apart from WITHOUT ROWID, a storage hint SQLite alone reads.

-- One row per record: the exact canonical leaf bytes and their RFC 6962 leaf hash.
-- A rowid table on purpose: rows are ~0.5 KB, too large for a WITHOUT ROWID b-tree (whose interior
-- pages would carry whole rows); the primary key index stays small and appends at each tenant's end.
CREATE TABLE audit_entries (
    tenant_id TEXT    NOT NULL,
    seq       INTEGER NOT NULL CHECK (seq >= 0),
    leaf      BLOB    NOT NULL,
    leaf_hash BLOB    NOT NULL CHECK (length(leaf_hash) = 32),
    PRIMARY KEY (tenant_id, seq)
);

-- Every perfect subtree above the leaves (level >= 1): what inclusion and consistency proofs read,
-- so no proof rehashes the log. Level 0 nodes are the leaf hashes of audit_entries and are not
-- stored twice. Keyed by the last leaf each node covers (the entry whose append completed it), so
-- every insert lands at the tenant's end of the b-tree, like the entries; a lookup by (level, idx)
-- computes that leaf: ((idx + 1) << level) - 1.
CREATE TABLE audit_nodes (
    tenant_id TEXT    NOT NULL,
    last_leaf INTEGER NOT NULL,
    level     INTEGER NOT NULL CHECK (level BETWEEN 1 AND 62),
    idx       INTEGER NOT NULL CHECK (idx >= 0),
    hash      BLOB    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (tenant_id, last_leaf, level),
    CHECK (last_leaf = ((idx + 1) << level) - 1)
) WITHOUT ROWID;

-- The tree head of each tenant: its size and its frontier (the right edge of the tree, one hash
-- per set bit of the size), from which the root follows. The only row of the ledger that changes.
CREATE TABLE audit_heads (
    tenant_id TEXT    NOT NULL PRIMARY KEY,
    size      INTEGER NOT NULL CHECK (size >= 0),
    frontier  BLOB    NOT NULL
) WITHOUT ROWID;

-- Signed checkpoints (C2SP tlog-checkpoint signed notes), at most one per tree size.
CREATE TABLE audit_checkpoints (
    tenant_id TEXT    NOT NULL,
    size      INTEGER NOT NULL CHECK (size >= 0),
    root      BLOB    NOT NULL CHECK (length(root) = 32),
    note      TEXT    NOT NULL,
    signed_at TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, size)
);

-- The trigger wall: history cannot be changed through SQL. It stops mistakes and honest software;
-- it does not stop someone who holds the file (they can drop a trigger), which is why the ledger
-- is hashed and its roots signed.
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit ledger is append-only');
END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit ledger is append-only');
END;
CREATE TRIGGER audit_nodes_no_update BEFORE UPDATE ON audit_nodes
BEGIN
    SELECT RAISE(ABORT, 'audit ledger is append-only');
END;
CREATE TRIGGER audit_nodes_no_delete BEFORE DELETE ON audit_nodes
BEGIN
    SELECT RAISE(ABORT, 'audit ledger is append-only');
END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit ledger is append-only');
END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit ledger is append-only');
END;
-- INSERT OR REPLACE deletes the clashing row without firing DELETE triggers (unless the connection
-- enabled recursive_triggers), so an insert over an existing key is refused before it happens.
CREATE TRIGGER audit_entries_no_replace BEFORE INSERT ON audit_entries
WHEN EXISTS (SELECT 1 FROM audit_entries WHERE tenant_id = NEW.tenant_id AND seq = NEW.seq)
BEGIN
    SELECT RAISE(ABORT, 'audit ledger is append-only');
END;
CREATE TRIGGER audit_nodes_no_replace BEFORE INSERT ON audit_nodes
WHEN EXISTS (SELECT 1 FROM audit_nodes
             WHERE tenant_id = NEW.tenant_id AND last_leaf = NEW.last_leaf AND level = NEW.level)
BEGIN
    SELECT RAISE(ABORT, 'audit ledger is append-only');
END;
CREATE TRIGGER audit_checkpoints_no_replace BEFORE INSERT ON audit_checkpoints
WHEN EXISTS (SELECT 1 FROM audit_checkpoints WHERE tenant_id = NEW.tenant_id AND size = NEW.size)
BEGIN
    SELECT RAISE(ABORT, 'audit ledger is append-only');
END;
CREATE TRIGGER audit_heads_no_replace BEFORE INSERT ON audit_heads
WHEN EXISTS (SELECT 1 FROM audit_heads WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'audit ledger is append-only');
END;
-- A head may only grow (or be rewritten unchanged), and never disappears.
CREATE TRIGGER audit_heads_only_grow BEFORE UPDATE ON audit_heads
WHEN NEW.tenant_id IS NOT OLD.tenant_id
  OR NEW.size < OLD.size
  OR (NEW.size = OLD.size AND NEW.frontier IS NOT OLD.frontier)
BEGIN
    SELECT RAISE(ABORT, 'audit ledger is append-only');
END;
CREATE TRIGGER audit_heads_no_delete BEFORE DELETE ON audit_heads
BEGIN
    SELECT RAISE(ABORT, 'audit ledger is append-only');
END;

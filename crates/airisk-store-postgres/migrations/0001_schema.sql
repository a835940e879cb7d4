-- ai-risk-engine PostgreSQL schema: the audit ledger (one RFC 6962 tree per tenant) and the
-- governance state, every table keyed by tenant_id first.
--
-- Three walls, all in the database:
--   1. row-level security (ENABLED and FORCED) on every tenant table: a session sees and writes
--      only the rows of the tenant named by the transaction-local setting airisk.tenant_id;
--   2. grants: the application role airisk_app may INSERT and SELECT history, UPDATE only the
--      tree heads and the governance state rows, and DELETE or TRUNCATE nothing;
--   3. triggers: UPDATE, DELETE and TRUNCATE of history raise for every role, superusers included,
--      unless the table owner opens a maintenance window (SET LOCAL airisk.maintenance = 'on',
--      docs/OPERATIONS.md).
--
-- Portable SQL only (no sequences, no extensions): each tenant's ledger is an independent range
-- of every index, so the schema distributes by tenant_id (docs/SCALE_OUT.md).

-- The application role. NOLOGIN: an operator provisions a LOGIN user that is a member of it
-- (docs/OPERATIONS.md). Roles are cluster-wide, so an existing one is kept, unless it could
-- bypass row-level security.
DO $$
BEGIN
    CREATE ROLE airisk_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    -- Created meanwhile by another database's migration: fine.
    NULL;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles
               WHERE rolname = 'airisk_app' AND (rolsuper OR rolbypassrls)) THEN
        RAISE EXCEPTION 'role airisk_app exists with SUPERUSER or BYPASSRLS; row-level security would not apply to it';
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The audit ledger
-- ---------------------------------------------------------------------------------------------

-- One row per record: the exact canonical leaf bytes, their RFC 6962 leaf hash, and copies of the
-- searchable fields (written from the sealed record in the same INSERT, never updated), so
-- AuditRepository::search is an index range scan instead of a decode of every leaf.
CREATE TABLE audit_entries (
    tenant_id      text        NOT NULL CHECK (tenant_id <> ''),
    seq            bigint      NOT NULL CHECK (seq >= 0),
    leaf           bytea       NOT NULL,
    leaf_hash      bytea       NOT NULL CHECK (octet_length(leaf_hash) = 32),
    recorded_at    timestamptz NOT NULL,
    actor          text        NOT NULL,
    -- "C": byte order, so the prefix search `model.` is the range ['model.', 'model/').
    action         text        COLLATE "C" NOT NULL,
    outcome        text        NOT NULL,
    resource_type  text        NOT NULL,
    resource_id    text        NOT NULL,
    correlation_id text        NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX audit_entries_actor ON audit_entries (tenant_id, actor, seq);
CREATE INDEX audit_entries_action ON audit_entries (tenant_id, action, seq);
CREATE INDEX audit_entries_resource ON audit_entries (tenant_id, resource_type, resource_id, seq);
CREATE INDEX audit_entries_correlation ON audit_entries (tenant_id, correlation_id, seq);
CREATE INDEX audit_entries_recorded_at ON audit_entries (tenant_id, recorded_at, seq);

-- Every perfect subtree above the leaves (level >= 1): what inclusion and consistency proofs read.
-- Level 0 nodes are the leaf hashes of audit_entries and are not stored twice.
CREATE TABLE audit_nodes (
    tenant_id text     NOT NULL CHECK (tenant_id <> ''),
    level     smallint NOT NULL CHECK (level BETWEEN 1 AND 63),
    idx       bigint   NOT NULL CHECK (idx >= 0),
    hash      bytea    NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (tenant_id, level, idx)
);

-- The head of each tenant: tree size and frontier (Frontier::to_bytes), from which the root
-- follows, plus `writes`, the count of governance rows the tenant has inserted (their creation
-- order). Every write of a tenant locks this row first (SELECT ... FOR UPDATE), which serialises
-- the tenant's ledger across connections and processes. The only ledger row that changes, and
-- only forwards.
CREATE TABLE audit_heads (
    tenant_id text   NOT NULL PRIMARY KEY CHECK (tenant_id <> ''),
    size      bigint NOT NULL CHECK (size >= 0),
    frontier  bytea  NOT NULL,
    writes    bigint NOT NULL DEFAULT 0 CHECK (writes >= 0)
);

-- Signed checkpoints (C2SP tlog-checkpoint signed notes), at most one per tree size.
CREATE TABLE audit_checkpoints (
    tenant_id text        NOT NULL CHECK (tenant_id <> ''),
    size      bigint      NOT NULL CHECK (size >= 0),
    root      bytea       NOT NULL CHECK (octet_length(root) = 32),
    note      text        NOT NULL,
    signed_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, size)
);

-- The directory of tenants that have a ledger: the one deliberate cross-tenant read
-- (AuditRepository::tenants, for `airisk audit verify --all`). It holds tenant ids and nothing
-- else, so it has no row-level security; a row is inserted in the transaction that appends the
-- tenant's first entry, and never changes.
CREATE TABLE audit_tenants (
    tenant_id text NOT NULL PRIMARY KEY CHECK (tenant_id <> '')
);

-- ---------------------------------------------------------------------------------------------
-- Governance state. Each value is stored whole as `body` (serde JSON; type json, which keeps the
-- text exactly as written, so it reads back equal), next to the key and filter columns.
-- `ord` is the creation order within the tenant (from audit_heads.writes, under the head lock):
-- listings are "oldest first" without a global sequence.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE approval_requests (
    tenant_id    text   NOT NULL CHECK (tenant_id <> ''),
    id           uuid   NOT NULL,
    ord          bigint NOT NULL,
    version      bigint NOT NULL CHECK (version >= 0),
    status       text   NOT NULL,
    -- The subject as serde JSON text ({"kind":…,"name":…,…}, fields in declaration order): the
    -- equality key of ApprovalFilter::subject.
    subject      text   NOT NULL,
    requested_by text   NOT NULL,
    body         json   NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX approval_requests_ord ON approval_requests (tenant_id, ord);
CREATE INDEX approval_requests_status ON approval_requests (tenant_id, status, ord);
CREATE INDEX approval_requests_subject ON approval_requests (tenant_id, subject, ord);

CREATE TABLE model_versions (
    tenant_id   text   NOT NULL CHECK (tenant_id <> ''),
    name        text   NOT NULL,
    version     text   NOT NULL,
    ord         bigint NOT NULL,
    row_version bigint NOT NULL CHECK (row_version >= 0),
    body        json   NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);
CREATE INDEX model_versions_ord ON model_versions (tenant_id, name, ord);

-- Immutable once written.
CREATE TABLE prompt_versions (
    tenant_id text    NOT NULL CHECK (tenant_id <> ''),
    name      text    NOT NULL,
    version   bigint  NOT NULL CHECK (version >= 0),
    body      json    NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);

-- Where each label points now (the one mutable part of prompts).
CREATE TABLE prompt_labels (
    tenant_id text    NOT NULL CHECK (tenant_id <> ''),
    name      text    NOT NULL,
    label     text    NOT NULL,
    version   bigint  NOT NULL CHECK (version >= 0),
    PRIMARY KEY (tenant_id, name, label)
);

-- Every label move, append-only.
CREATE TABLE label_moves (
    tenant_id text   NOT NULL CHECK (tenant_id <> ''),
    id        uuid   NOT NULL,
    name      text   NOT NULL,
    ord       bigint NOT NULL,
    body      json   NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX label_moves_ord ON label_moves (tenant_id, name, ord);

-- ---------------------------------------------------------------------------------------------
-- Wall 1: row-level security, forced (the table owner is subject to it too; only superusers and
-- BYPASSRLS roles are not, and airisk_app is neither). With no tenant set, current_setting(…,
-- true) is NULL (or '' once a transaction-local value has ended), which equals no tenant_id.
-- ---------------------------------------------------------------------------------------------

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['audit_entries', 'audit_nodes', 'audit_heads', 'audit_checkpoints',
                             'approval_requests', 'model_versions', 'prompt_versions',
                             'prompt_labels', 'label_moves']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = current_setting(''airisk.tenant_id'', true)) '
            'WITH CHECK (tenant_id = current_setting(''airisk.tenant_id'', true))', t);
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Wall 2: grants. Nothing for PUBLIC; for airisk_app exactly what the store does.
-- ---------------------------------------------------------------------------------------------

REVOKE ALL ON audit_entries, audit_nodes, audit_heads, audit_checkpoints, audit_tenants,
              approval_requests, model_versions, prompt_versions, prompt_labels, label_moves
    FROM PUBLIC;

GRANT SELECT, INSERT ON audit_entries, audit_nodes, audit_checkpoints, audit_tenants,
                        prompt_versions, label_moves
    TO airisk_app;
GRANT SELECT, INSERT ON audit_heads, approval_requests, model_versions, prompt_labels
    TO airisk_app;
GRANT UPDATE (size, frontier, writes) ON audit_heads TO airisk_app;
GRANT UPDATE (version, status, body) ON approval_requests TO airisk_app;
GRANT UPDATE (row_version, body) ON model_versions TO airisk_app;
GRANT UPDATE (version) ON prompt_labels TO airisk_app;

-- ---------------------------------------------------------------------------------------------
-- Wall 3: triggers. History cannot be rewritten through SQL by any role, superusers included,
-- outside a maintenance window: a transaction in which a member of the table's owner role ran
-- SET LOCAL airisk.maintenance = 'on'. (A superuser can still drop a trigger; that is why the
-- ledger is hashed and its roots signed, and why `airisk audit verify` checks a kept checkpoint.)
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION airisk_refuse_history_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $$
BEGIN
    IF coalesce(current_setting('airisk.maintenance', true), '') = 'on'
       AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER')
    THEN
        IF TG_LEVEL = 'STATEMENT' THEN
            RETURN NULL;
        ELSIF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING HINT = 'history changes need a maintenance window, see docs/OPERATIONS.md';
END
$$;

-- A head may only grow (or be rewritten unchanged), and never disappears.
CREATE FUNCTION airisk_head_only_grows() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $$
BEGIN
    IF coalesce(current_setting('airisk.maintenance', true), '') = 'on'
       AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER')
    THEN
        RETURN NEW;
    END IF;
    IF NEW.tenant_id IS DISTINCT FROM OLD.tenant_id
       OR NEW.size < OLD.size
       OR (NEW.size = OLD.size AND NEW.frontier IS DISTINCT FROM OLD.frontier)
       OR NEW.writes < OLD.writes THEN
        RAISE EXCEPTION 'audit ledger is append-only: a tree head may only grow'
            USING HINT = 'history changes need a maintenance window, see docs/OPERATIONS.md';
    END IF;
    RETURN NEW;
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['audit_entries', 'audit_nodes', 'audit_checkpoints', 'audit_tenants',
                             'prompt_versions', 'label_moves']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW '
                       'EXECUTE FUNCTION airisk_refuse_history_change()', t || '_append_only', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT '
                       'EXECUTE FUNCTION airisk_refuse_history_change()', t || '_no_truncate', t);
    END LOOP;
END
$$;

CREATE TRIGGER audit_heads_only_grow BEFORE UPDATE ON audit_heads
    FOR EACH ROW EXECUTE FUNCTION airisk_head_only_grows();
CREATE TRIGGER audit_heads_no_delete BEFORE DELETE ON audit_heads
    FOR EACH ROW EXECUTE FUNCTION airisk_refuse_history_change();
CREATE TRIGGER audit_heads_no_truncate BEFORE TRUNCATE ON audit_heads
    FOR EACH STATEMENT EXECUTE FUNCTION airisk_refuse_history_change();

-- Governance state: approval requests, model versions, prompt versions, labels and label moves.
--
-- Every table is keyed by tenant_id first. Each row keeps the domain value as canonical JSON in
-- `body` (what the store returns, exactly as written) next to the columns that queries filter and
-- order on. `version` / `row_version` carry optimistic concurrency: an update names the version it
-- read and changes nothing if another writer got there first.

CREATE TABLE approval_requests (
    tenant_id     TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    subject_type  TEXT    NOT NULL,
    subject_id    TEXT    NOT NULL,
    requested_by  TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    version       INTEGER NOT NULL CHECK (version >= 1),
    body          TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX approval_requests_by_status ON approval_requests (tenant_id, status, created_at);
CREATE INDEX approval_requests_by_subject ON approval_requests (tenant_id, subject_type, subject_id);

CREATE TABLE model_versions (
    tenant_id     TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    row_version   INTEGER NOT NULL CHECK (row_version >= 1),
    body          TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);

-- Prompt versions never change once written.
CREATE TABLE prompt_versions (
    tenant_id     TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    version       INTEGER NOT NULL CHECK (version >= 1),
    body          TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);
CREATE TRIGGER prompt_versions_no_update BEFORE UPDATE ON prompt_versions
BEGIN
    SELECT RAISE(ABORT, 'prompt versions are immutable');
END;
CREATE TRIGGER prompt_versions_no_delete BEFORE DELETE ON prompt_versions
BEGIN
    SELECT RAISE(ABORT, 'prompt versions are immutable');
END;

-- Where each label points now: the only prompt row that changes.
CREATE TABLE prompt_labels (
    tenant_id     TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    label         TEXT    NOT NULL,
    version       INTEGER NOT NULL CHECK (version >= 1),
    PRIMARY KEY (tenant_id, name, label)
);

-- Every label move, kept forever.
CREATE TABLE prompt_label_moves (
    tenant_id     TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, name, id)
);
CREATE TRIGGER prompt_label_moves_no_update BEFORE UPDATE ON prompt_label_moves
BEGIN
    SELECT RAISE(ABORT, 'label history is append-only');
END;
CREATE TRIGGER prompt_label_moves_no_delete BEFORE DELETE ON prompt_label_moves
BEGIN
    SELECT RAISE(ABORT, 'label history is append-only');
END;

-- INSERT OR REPLACE deletes a clashing row without firing DELETE triggers: refuse the insert
-- over an existing key before it happens, as the audit tables do.
CREATE TRIGGER prompt_versions_no_replace BEFORE INSERT ON prompt_versions
WHEN EXISTS (SELECT 1 FROM prompt_versions
             WHERE tenant_id = NEW.tenant_id AND name = NEW.name AND version = NEW.version)
BEGIN
    SELECT RAISE(ABORT, 'prompt versions are immutable');
END;
CREATE TRIGGER prompt_label_moves_no_replace BEFORE INSERT ON prompt_label_moves
WHEN EXISTS (SELECT 1 FROM prompt_label_moves
             WHERE tenant_id = NEW.tenant_id AND name = NEW.name AND id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'label history is append-only');
END;

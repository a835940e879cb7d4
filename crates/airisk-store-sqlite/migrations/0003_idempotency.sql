-- Idempotent writes: one row per idempotent correlation id (airisk_core::ports::
-- IDEMPOTENT_CORRELATION_PREFIX, derived by the HTTP layer from an Idempotency-Key), inserted in
-- the write's own transaction with the seq of its first record. The primary key is what refuses
-- a second write with the same id; the row also finds the write's records without scanning the
-- ledger. Rows are history, like the entries they point at.
CREATE TABLE idempotency_keys (
    tenant_id      TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    seq            INTEGER NOT NULL CHECK (seq >= 0),
    PRIMARY KEY (tenant_id, correlation_id)
) WITHOUT ROWID;

CREATE TRIGGER idempotency_keys_no_update BEFORE UPDATE ON idempotency_keys
BEGIN
    SELECT RAISE(ABORT, 'audit ledger is append-only');
END;
CREATE TRIGGER idempotency_keys_no_delete BEFORE DELETE ON idempotency_keys
BEGIN
    SELECT RAISE(ABORT, 'audit ledger is append-only');
END;
-- INSERT OR REPLACE would delete a claim without firing the DELETE trigger: refuse it too. (A plain
-- INSERT of a used id fails here as well; the writer reports either as the id being used.)
CREATE TRIGGER idempotency_keys_no_replace BEFORE INSERT ON idempotency_keys
WHEN EXISTS (SELECT 1 FROM idempotency_keys
             WHERE tenant_id = NEW.tenant_id AND correlation_id = NEW.correlation_id)
BEGIN
    SELECT RAISE(ABORT, 'audit ledger is append-only');
END;

-- Envelope encryption: each tenant's data keys (DEKs), stored ONLY wrapped by the key-encryption
-- key (see docs/ENCRYPTION.md). Shredding a tenant sets `wrapped` to NULL and keeps the row as a
-- tombstone, so values sealed under the key read as "erased" rather than as corrupt.
CREATE TABLE data_keys (
    tenant_id     TEXT    NOT NULL,
    kid           TEXT    NOT NULL,
    wrapped       TEXT,
    created_at    TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, kid)
);
-- A shredded key never comes back: no UPDATE may set `wrapped` again once it is NULL, and no
-- row is deleted (the tombstone is what tells "erased" from "corrupt").
CREATE TRIGGER data_keys_no_unshred BEFORE UPDATE ON data_keys
WHEN OLD.wrapped IS NULL AND NEW.wrapped IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a shredded data key cannot be restored');
END;
CREATE TRIGGER data_keys_no_delete BEFORE DELETE ON data_keys
BEGIN
    SELECT RAISE(ABORT, 'data keys are shredded, never deleted');
END;

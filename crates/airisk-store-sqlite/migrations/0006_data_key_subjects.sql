-- Per-data-subject keys (docs/ENCRYPTION.md, "Per-subject keys"): a data key whose id starts
-- with `s` belongs to one data subject of its tenant, named here only by its pseudonym (64 hex
-- digits of an HMAC under the tenant's pseudonym key, itself a row with an id starting with `h`).
-- NULL for tenant keys, for the pseudonym key and for every tombstone: a shred clears the
-- pseudonym with the wrapped key, so an erased subject's row names nobody.
ALTER TABLE data_keys ADD COLUMN subject TEXT;
CREATE INDEX data_keys_by_subject ON data_keys (tenant_id, subject) WHERE subject IS NOT NULL;
-- A key's subject is set when the key is made and never changes; it is only cleared, and only by
-- the shred that erases the key.
CREATE TRIGGER data_keys_subject_fixed BEFORE UPDATE OF subject ON data_keys
WHEN (NEW.subject IS NOT NULL AND NEW.subject IS NOT OLD.subject)
  OR (NEW.subject IS NULL AND OLD.subject IS NOT NULL AND NEW.wrapped IS NOT NULL)
BEGIN
    SELECT RAISE(ABORT, 'a data key''s subject never changes; only a shred clears it');
END;

-- Per-data-subject keys (docs/ENCRYPTION.md, "Per-subject keys"): a data key whose id starts
-- with `s` belongs to one data subject of its tenant, named here only by its pseudonym (64 hex
-- digits of an HMAC under the tenant's pseudonym key, itself a row with an id starting with `h`).
-- NULL for tenant keys, for the pseudonym key and for every tombstone: a shred clears the
-- pseudonym with the wrapped key, so an erased subject's row names nobody.
--
-- The store may clear `subject` (a shred), never set or change it: the trigger below refuses,
-- even to the table's owner.

ALTER TABLE data_keys ADD COLUMN subject text;
CREATE INDEX data_keys_by_subject ON data_keys (tenant_id, subject) WHERE subject IS NOT NULL;

CREATE FUNCTION airisk_data_keys_subject_fixed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF NEW.subject IS NOT NULL AND NEW.subject IS DISTINCT FROM OLD.subject THEN
        RAISE EXCEPTION 'a data key''s subject never changes; only a shred clears it'
            USING ERRCODE = 'P0001';
    END IF;
    IF NEW.subject IS NULL AND OLD.subject IS NOT NULL AND NEW.wrapped IS NOT NULL THEN
        RAISE EXCEPTION 'a data key''s subject never changes; only a shred clears it'
            USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER data_keys_subject_fixed BEFORE UPDATE ON data_keys
    FOR EACH ROW EXECUTE FUNCTION airisk_data_keys_subject_fixed();

GRANT UPDATE (subject) ON data_keys TO airisk_app;

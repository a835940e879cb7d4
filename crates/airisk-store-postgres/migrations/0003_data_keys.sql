-- Envelope encryption: each tenant's data keys (DEKs), stored ONLY wrapped by the key-encryption
-- key (docs/ENCRYPTION.md). Shredding sets `wrapped` to NULL and keeps the row as a tombstone, so
-- values sealed under the key read as "erased" rather than as corrupt.
--
-- Under row-level security like every tenant table (forced, policy on airisk.tenant_id), and
-- granted to airisk_app for exactly what the store does: read, insert, and update `wrapped` (KEK
-- rotation, shredding). No DELETE grant; a trigger refuses to bring a shredded key back.

CREATE TABLE data_keys (
    tenant_id   text NOT NULL,
    kid         text NOT NULL,
    wrapped     text,
    created_at  text NOT NULL,
    PRIMARY KEY (tenant_id, kid)
);

ALTER TABLE data_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE data_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON data_keys
    USING (tenant_id = current_setting('airisk.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('airisk.tenant_id', true));

CREATE FUNCTION airisk_data_keys_no_unshred() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF OLD.wrapped IS NULL AND NEW.wrapped IS NOT NULL THEN
        RAISE EXCEPTION 'a shredded data key cannot be restored' USING ERRCODE = 'P0001';
    END IF;
    IF NEW.tenant_id <> OLD.tenant_id OR NEW.kid <> OLD.kid OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'a data key''s identity never changes' USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER data_keys_no_unshred BEFORE UPDATE ON data_keys
    FOR EACH ROW EXECUTE FUNCTION airisk_data_keys_no_unshred();

REVOKE ALL ON data_keys FROM PUBLIC;
GRANT SELECT, INSERT ON data_keys TO airisk_app;
GRANT UPDATE (wrapped) ON data_keys TO airisk_app;

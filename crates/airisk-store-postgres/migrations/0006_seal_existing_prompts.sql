-- Sealing existing rows in place (`airisk keys seal-existing`, docs/ENCRYPTION.md): a database
-- written before prompt templates were sealed holds them in plaintext. Prompt versions stay
-- immutable, for every role including superusers, except for exactly one change: a row whose
-- template is plaintext may get that template replaced by a `v1.` ciphertext and "sealed": true
-- added, every other key and value of the body and every column unchanged. That the ciphertext
-- holds the same template (its SHA-256 equals the row's template_sha256) is checked by the store
-- and the command in the same transaction (PostgreSQL does not hold the keys). Everything else
-- still needs the owner's maintenance window, as before.

CREATE FUNCTION airisk_prompt_versions_seal_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND NEW.tenant_id = OLD.tenant_id AND NEW.name = OLD.name AND NEW.version = OLD.version
       AND coalesce(OLD.body::jsonb -> 'sealed', 'false'::jsonb) = 'false'::jsonb
       AND jsonb_typeof(NEW.body::jsonb -> 'template') = 'string'
       AND (NEW.body::jsonb ->> 'template') LIKE 'v1.%'
       AND NEW.body::jsonb = OLD.body::jsonb
           || jsonb_build_object('template', NEW.body::jsonb ->> 'template', 'sealed', true)
    THEN
        RETURN NEW;
    END IF;
    IF coalesce(current_setting('airisk.maintenance', true), '') = 'on'
       AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER')
    THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'prompt versions are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING HINT = 'only sealing a plaintext template in place is allowed, see docs/ENCRYPTION.md';
END
$$;

DROP TRIGGER prompt_versions_append_only ON prompt_versions;
CREATE TRIGGER prompt_versions_append_only BEFORE UPDATE OR DELETE ON prompt_versions
    FOR EACH ROW EXECUTE FUNCTION airisk_prompt_versions_seal_only();

GRANT UPDATE (body) ON prompt_versions TO airisk_app;

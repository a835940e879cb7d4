-- Sealing existing rows in place (`airisk keys seal-existing`, docs/ENCRYPTION.md): a database
-- written before prompt templates were sealed holds them in plaintext. Prompt versions stay
-- immutable except for exactly one change: a row whose template is plaintext may get that
-- template replaced by a `v1.` ciphertext and `"sealed":true` added, everything else in the row
-- unchanged. The new body must be exactly json_patch(old body, {template: <ciphertext>, sealed:
-- true}), which the store's UPDATE writes, so no other field, key or value can change with it.
-- That the ciphertext holds the same template (its SHA-256 equals the row's template_sha256) is
-- checked by the store and the command inside the same write transaction: SQLite has no AES.
DROP TRIGGER prompt_versions_no_update;
CREATE TRIGGER prompt_versions_no_update BEFORE UPDATE ON prompt_versions
WHEN NOT (
        NEW.tenant_id = OLD.tenant_id AND NEW.name = OLD.name AND NEW.version = OLD.version
    AND json_valid(OLD.body) AND json_valid(NEW.body)
    AND json_extract(OLD.body, '$.sealed') IS NOT 1
    AND json_type(NEW.body, '$.template') = 'text'
    AND json_extract(NEW.body, '$.template') LIKE 'v1.%'
    AND NEW.body = json_patch(OLD.body, json_object('template', json_extract(NEW.body, '$.template'),
                                                    'sealed', json('true')))
)
BEGIN
    SELECT RAISE(ABORT, 'prompt versions are immutable');
END;

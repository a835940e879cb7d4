-- The tenant directory gets row-level security like every other tenant table.
--
-- Before this migration `audit_tenants` had no policy, so the application role could insert any
-- tenant id from any transaction (a tenant row for a tenant that has no ledger, or for another
-- tenant) and read every id. Now:
--
-- * airisk_app sees and inserts only the row of its transaction's tenant
--   (`set_config('airisk.tenant_id', …, true)`, as for every table): a row outside that tenant's
--   transaction is refused by the database ("new row violates row-level security policy");
-- * the one cross-tenant read, the list of tenants with a ledger (`AuditRepository::tenants`, for
--   `airisk audit verify --all`), goes through `airisk_ledger_tenants()`, a SECURITY DEFINER
--   function owned by the tables' owner that returns tenant ids and nothing else. airisk_app may
--   call it; it cannot read the table around it.
--
-- Forced like the others; the owner (and only members of the owner role, which the store refuses
-- to connect as) may read the whole directory, which is what the function relies on.

ALTER TABLE audit_tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_tenants FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON audit_tenants
    USING (tenant_id = current_setting('airisk.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('airisk.tenant_id', true));

CREATE POLICY owner_reads_directory ON audit_tenants FOR SELECT
    USING (pg_catalog.pg_has_role(
        current_user,
        (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = 'audit_tenants'::regclass),
        'MEMBER'));

-- The table's schema is named explicitly, and pg_temp searched last, so nobody can slip another
-- `audit_tenants` in front of the function's owner.
DO $$
DECLARE
    schema_name text;
BEGIN
    SELECT n.nspname INTO STRICT schema_name
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = 'audit_tenants'::regclass;
    EXECUTE format(
        'CREATE FUNCTION airisk_ledger_tenants() RETURNS SETOF text '
        'LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, %I, pg_temp '
        'AS $f$ SELECT tenant_id FROM %I.audit_tenants ORDER BY tenant_id $f$',
        schema_name, schema_name);
END
$$;

REVOKE ALL ON FUNCTION airisk_ledger_tenants() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION airisk_ledger_tenants() TO airisk_app;

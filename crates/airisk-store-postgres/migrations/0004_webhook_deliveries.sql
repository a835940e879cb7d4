-- Replay memory of signed webhook deliveries (the MLflow integration, docs/MLFLOW.md): one row per
-- delivery id a sender's delivery claimed, shared by every `airisk serve` on this database, so a
-- delivery replayed to another instance is refused too. Not history: a row is deleted once its
-- `until_ms` (Unix milliseconds) has passed, when the sender's timestamp window refuses the
-- delivery anyway, and when its processing failed (so the sender's retry is processed).
--
-- Under row-level security like every tenant table (forced, policy on airisk.tenant_id), and
-- granted to airisk_app for exactly what the store does: read, insert, update `until_ms`, delete.

CREATE TABLE webhook_deliveries (
    tenant_id    text   NOT NULL,
    source       text   NOT NULL CHECK (length(source) BETWEEN 1 AND 128),
    delivery_id  text   NOT NULL CHECK (length(delivery_id) BETWEEN 1 AND 128),
    until_ms     bigint NOT NULL,
    PRIMARY KEY (tenant_id, source, delivery_id)
);

CREATE INDEX webhook_deliveries_expiry ON webhook_deliveries (tenant_id, until_ms);

ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_deliveries
    USING (tenant_id = current_setting('airisk.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('airisk.tenant_id', true));

REVOKE ALL ON webhook_deliveries FROM PUBLIC;
GRANT SELECT, INSERT, DELETE ON webhook_deliveries TO airisk_app;
GRANT UPDATE (until_ms) ON webhook_deliveries TO airisk_app;

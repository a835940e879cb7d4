-- Replay memory of signed webhook deliveries (the MLflow integration, docs/MLFLOW.md): one row per
-- delivery id a sender's delivery claimed, shared by every process on this database so a delivery
-- replayed to another `airisk serve` is refused too. Not history: a row is deleted once its
-- `until_ms` (Unix milliseconds) has passed, when the sender's timestamp window refuses the
-- delivery anyway, and when its processing failed (so the sender's retry is processed).
CREATE TABLE webhook_deliveries (
    tenant_id    TEXT    NOT NULL,
    source       TEXT    NOT NULL CHECK (length(source) BETWEEN 1 AND 128),
    delivery_id  TEXT    NOT NULL CHECK (length(delivery_id) BETWEEN 1 AND 128),
    until_ms     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, source, delivery_id)
) WITHOUT ROWID;

CREATE INDEX webhook_deliveries_expiry ON webhook_deliveries (tenant_id, until_ms);

-- Per-tenant send rate limits held in PostgreSQL, so that every node enforces one cluster-wide budget:
-- messages accepted per tenant per one-minute window. UNLOGGED: the counts are worth nothing after a crash
-- (a restart at worst grants one extra minute's budget), and the table is written on every accept.
CREATE UNLOGGED TABLE tenant_send_counts (
    tenant_id     uuid NOT NULL,
    window_start  timestamptz NOT NULL,
    count         integer NOT NULL,
    PRIMARY KEY (tenant_id, window_start)
);

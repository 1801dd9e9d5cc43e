-- The per-tenant suppression list: addresses Relay does not attempt (issue 5). Matching ignores case (the
-- whole address is compared lower-cased, as the big providers treat local parts). An entry with expires_at in
-- the past no longer suppresses.
CREATE TABLE suppressions (
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email_lower        text NOT NULL CHECK (email_lower = lower(email_lower)),
    email              text NOT NULL,                  -- as first given
    reason             text NOT NULL,                  -- hard_bounce, complaint, unsubscribed, manual, …
    source_message_id  uuid,                           -- the message whose bounce or complaint added it
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz,
    PRIMARY KEY (tenant_id, email_lower)
);
-- The list API pages newest first.
CREATE INDEX suppressions_tenant_created ON suppressions (tenant_id, created_at DESC, email_lower DESC);

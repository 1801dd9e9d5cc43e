-- Signed webhooks: a tenant's endpoints, a durable outbox (one row per event × endpoint) and the log of every
-- HTTP attempt. The outbox is fed by a trigger on `events`, so the outbox row commits in the same transaction as
-- the event whatever code path wrote it (delivery worker, accept-time suppression, inbound bounces/complaints).

CREATE TABLE webhook_endpoints (
    id                          uuid PRIMARY KEY,
    tenant_id                   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url                         text NOT NULL,
    events                      text[] NOT NULL DEFAULT '{}',   -- empty: every event type
    secret                      text NOT NULL,                  -- whsec_<base64>; needed in clear to sign
    previous_secret             text,                           -- still signed with until it expires (rotation)
    previous_secret_expires_at  timestamptz,
    enabled                     boolean NOT NULL DEFAULT true,
    disabled_reason             text,                           -- gone_410, failure_streak
    failure_streak              integer NOT NULL DEFAULT 0,     -- failed attempts since the last success
    failure_streak_since        timestamptz,                    -- when the current streak began
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);
-- The trigger's probe (a tenant without endpoints costs one index probe) and the list API, newest first.
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at DESC, id DESC);

-- One row per event and endpoint. Message events point at their `events` row and are rendered on the first
-- attempt (the body is then stored, so every retry sends the same bytes); other events carry their data.
CREATE TABLE webhook_outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- webhook-id is msg_<id>
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    tenant_id        uuid NOT NULL,
    event_type       text NOT NULL,
    message_id       uuid,                 -- message events: the events row is (message_id, event_id, event_at)
    event_id         bigint,
    event_at         timestamptz,
    data             jsonb,                -- other events (tenant.paused, webhook.test): the payload's data
    payload          text,                 -- the rendered body, fixed at the first attempt
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'succeeded', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    due_at           timestamptz NOT NULL DEFAULT now(),   -- next attempt; while claimed, the lease expiry
    lease_owner      uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (due_at) WHERE state = 'pending';
CREATE INDEX webhook_outbox_endpoint_pending ON webhook_outbox (endpoint_id) WHERE state = 'pending';
CREATE INDEX webhook_outbox_finished ON webhook_outbox (finished_at) WHERE state <> 'pending';

-- One row per HTTP attempt (or per attempt refused before connecting, e.g. by the private-address guard).
CREATE TABLE webhook_deliveries (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id      bigint NOT NULL,
    endpoint_id    uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type     text NOT NULL,
    attempt        integer NOT NULL,
    status         text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    response_code  integer,
    error          text,
    latency_ms     integer NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz                          -- a failed attempt that will be retried: when
);
CREATE INDEX webhook_deliveries_endpoint_at ON webhook_deliveries (endpoint_id, at DESC, id DESC);
CREATE INDEX webhook_deliveries_at ON webhook_deliveries (at);

-- Queues a message event for every enabled endpoint of the tenant that subscribes to its type. Accepted events
-- are not sent (the WHEN clause skips them without calling the function).
CREATE FUNCTION relay_webhook_outbox_for_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_outbox (endpoint_id, tenant_id, event_type, message_id, event_id, event_at)
    SELECT e.id, NEW.tenant_id, NEW.type, NEW.message_id, NEW.id, NEW.at
    FROM webhook_endpoints e
    WHERE e.tenant_id = NEW.tenant_id AND e.enabled AND (cardinality(e.events) = 0 OR NEW.type = ANY (e.events));
    RETURN NULL;
END $$;

-- Row triggers on a partitioned table are cloned onto every partition, present and future (PostgreSQL 13+).
CREATE TRIGGER events_webhook_outbox AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.type <> 'accepted') EXECUTE FUNCTION relay_webhook_outbox_for_event();

-- Queues an event that concerns no message (e.g. tenant.paused with its rates) for every enabled endpoint of the
-- tenant that subscribes to it. Returns how many rows were queued. Call it inside the transaction that makes the
-- change, so the notification commits (or not) with it.
CREATE FUNCTION relay_enqueue_webhook_event(p_tenant uuid, p_type text, p_data jsonb)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    queued integer;
BEGIN
    INSERT INTO webhook_outbox (endpoint_id, tenant_id, event_type, data)
    SELECT e.id, p_tenant, p_type, COALESCE(p_data, '{}'::jsonb)
    FROM webhook_endpoints e
    WHERE e.tenant_id = p_tenant AND e.enabled AND (cardinality(e.events) = 0 OR p_type = ANY (e.events));
    GET DIAGNOSTICS queued = ROW_COUNT;
    RETURN queued;
END $$;

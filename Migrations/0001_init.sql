-- Relay schema, version 1: tenants, API keys, sender domains, messages, per-recipient state,
-- the hot delivery queue, and the event history.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a key is stored; the key itself is shown once at creation.
CREATE TABLE api_keys (
    key_hash    bytea PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_prefix  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- Sender domains a tenant may send from (DKIM keys and DNS verification are later work).
CREATE TABLE domains (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name = lower(name)),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

-- One row per accepted message: what the API shows, not what the queue needs.
CREATE TABLE messages (
    id                uuid PRIMARY KEY,            -- time-ordered (UUIDv7)
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    mail_from         text NOT NULL,               -- envelope sender (RFC 5321 reverse-path)
    from_header       text NOT NULL,
    subject           text NOT NULL DEFAULT '',
    message_id_header text NOT NULL,
    tags              text[] NOT NULL DEFAULT '{}',
    metadata          jsonb NOT NULL DEFAULT '{}',
    size_bytes        integer NOT NULL,
    smtputf8          boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL
);
CREATE INDEX messages_tenant_created ON messages (tenant_id, created_at DESC, id DESC);

-- The composed message, written once at accept and read at delivery. Kept apart from `messages` so the
-- rows scanned by queries stay small.
CREATE TABLE message_bodies (
    message_id  uuid PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    body        bytea NOT NULL
);

-- Per-recipient delivery state, as the API shows it.
CREATE TABLE recipients (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id       uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    tenant_id        uuid NOT NULL,
    email            text NOT NULL,
    domain           text NOT NULL,               -- lowercased recipient domain
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued','deferred','delivered','bounced','failed','suppressed','canceled')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    last_code        integer,
    last_enhanced    text,
    last_text        text,
    last_mx          text,
    reason           text,
    updated_at       timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 80);
CREATE INDEX recipients_message ON recipients (message_id);

-- The hot queue: one narrow row per recipient still in flight, deleted when the recipient reaches a final
-- state, so its size tracks the work in flight rather than all work ever done.
--   due_at       when the row may next be claimed: the next attempt time while waiting, and the lease
--                expiry while claimed; a crashed node's rows therefore become due again by themselves.
--   lease_owner  the node that holds the claim, NULL while waiting.
CREATE TABLE queue (
    recipient_id  bigint PRIMARY KEY REFERENCES recipients (id) ON DELETE CASCADE,
    message_id    uuid NOT NULL,
    domain        text NOT NULL,
    due_at        timestamptz NOT NULL,
    lease_owner   uuid
) WITH (fillfactor = 70,
        autovacuum_vacuum_scale_factor = 0.0,
        autovacuum_vacuum_threshold = 5000,
        autovacuum_vacuum_cost_delay = 0,
        autovacuum_analyze_scale_factor = 0.02);
CREATE INDEX queue_due ON queue (due_at);
CREATE INDEX queue_lease_owner ON queue (lease_owner) WHERE lease_owner IS NOT NULL;

-- Append-only history of what happened to each recipient.
CREATE TABLE events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    message_id     uuid NOT NULL,
    recipient_id   bigint NOT NULL,
    type           text NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    attempt        integer NOT NULL DEFAULT 0,
    mx             text,
    reply_code     integer,
    reply_enhanced text,
    reply_text     text,
    duration_ms    integer
);
CREATE INDEX events_message ON events (message_id, id);

-- Idempotency-Key replay: the first response per (tenant, key) for 24 hours.
CREATE TABLE idempotency_keys (
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    status_code   integer,
    response      text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

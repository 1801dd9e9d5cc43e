-- Asynchronous bounces, complaints and the reputation guard (issue 5).

-- Cluster-wide secrets, generated once here so that every node agrees without configuration. `verp` keys the
-- HMAC of bounce addresses (RelayCore.ReturnPath). gen_random_uuid() draws from pg_strong_random: two of them
-- give 244 random bits.
CREATE TABLE relay_secrets (
    name        text PRIMARY KEY,
    value       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO relay_secrets (name, value)
VALUES ('verp', decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

-- The reputation guard pauses a tenant's sending; paused_* say when and why (shown on the dashboard and in
-- /v1/stats) until an admin resumes it.
ALTER TABLE tenants
    ADD COLUMN paused_at             timestamptz,
    ADD COLUMN paused_reason         text,
    ADD COLUMN paused_bounce_rate    double precision,
    ADD COLUMN paused_complaint_rate double precision;

-- Consecutive soft bounces per address (reset by a window: an address that soft-bounces `threshold` times
-- within it is suppressed for a while, see RELAY_SOFT_BOUNCE_SUPPRESSION).
CREATE TABLE soft_bounce_streaks (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email_lower  text NOT NULL,
    count        integer NOT NULL,
    first_at     timestamptz NOT NULL,
    last_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, email_lower)
);

-- Mail received by the inbound listener (DSNs, complaints, auto-replies) and what was made of it, for the
-- operator who wants to see why a report was or was not applied. Kept as long as the logs.
CREATE TABLE inbound_reports (
    id            uuid NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    tenant_id     uuid,
    message_id    uuid,
    recipient_id  bigint,
    kind          text NOT NULL,          -- bounce, delay, complaint, auto_reply, not_a_report
    mail_from     text NOT NULL,
    rcpt_to       text NOT NULL,
    remote_ip     text NOT NULL,
    outcome       text NOT NULL,          -- what was applied, for humans
    size_bytes    integer NOT NULL
);
CREATE INDEX inbound_reports_received ON inbound_reports (received_at);
CREATE INDEX inbound_reports_message ON inbound_reports (message_id) WHERE message_id IS NOT NULL;

-- A complaint (feedback report) after delivery turns the recipient `complained`. NOT VALID: existing rows
-- satisfy the wider rule anyway, and a large table is not scanned while the migration holds its lock.
ALTER TABLE recipients DROP CONSTRAINT recipients_status_check;
ALTER TABLE recipients ADD CONSTRAINT recipients_status_check
    CHECK (status IN ('queued','deferred','delivered','bounced','failed','suppressed','canceled','complained')) NOT VALID;

-- After an admin resumes a tenant, the guard judges only the hours from `reputation_since` on.
ALTER TABLE tenants ADD COLUMN reputation_since timestamptz;

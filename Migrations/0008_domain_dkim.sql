-- Sender domains gain DKIM keys and DNS verification; messages may ask for Relay-hosted one-click unsubscribe.

-- dkim_verified: an active DKIM key's TXT record was found in DNS at the last check; with
-- RELAY_REQUIRE_VERIFIED_DOMAINS (default on) only such domains may send. dns_checks holds the last check's
-- per-record results for SPF, the return path and DMARC ({"spf": {"status": …, "found": …}, …}).
ALTER TABLE domains
    ADD COLUMN dkim_verified  boolean NOT NULL DEFAULT false,
    ADD COLUMN dns_checks     jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN checked_at     timestamptz;
-- The periodic re-check takes the domains checked longest ago first.
CREATE INDEX domains_checked_at ON domains (checked_at NULLS FIRST);

-- Each domain's DKIM keys. A key is `pending` from rotation until its record verifies, then `active` (signs);
-- the key it replaces becomes `retiring` (still listed for publishing, no longer signing) until retire_at.
CREATE TABLE dkim_keys (
    tenant_id      uuid NOT NULL,
    domain         text NOT NULL,
    selector       text NOT NULL,
    algorithm      text NOT NULL CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),
    private_key    bytea NOT NULL,          -- AES-GCM sealed, never returned by the API
    sealed_with    text NOT NULL,           -- which key sealed it: a fingerprint of RELAY_SECRET_KEY, or 'database'
    public_record  text NOT NULL,           -- the TXT value to publish at <selector>._domainkey.<domain>
    state          text NOT NULL CHECK (state IN ('pending', 'active', 'retiring')),
    dns_status     text NOT NULL DEFAULT 'pending'
                   CHECK (dns_status IN ('pending', 'verified', 'not_found', 'mismatch', 'error')),
    dns_found      text,
    checked_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    activated_at   timestamptz,
    retire_at      timestamptz,
    PRIMARY KEY (tenant_id, domain, selector),
    FOREIGN KEY (tenant_id, domain) REFERENCES domains (tenant_id, name) ON DELETE CASCADE
);

-- Relay-hosted one-click unsubscribe (RFC 8058): the worker adds a per-recipient List-Unsubscribe at delivery.
ALTER TABLE messages ADD COLUMN hosted_unsubscribe boolean NOT NULL DEFAULT false;

-- 'database': the key that seals DKIM private keys when RELAY_SECRET_KEY is not set (it then protects nothing
-- against a database leak; production sets RELAY_SECRET_KEY). 'unsubscribe': the HMAC key of unsubscribe links.
INSERT INTO relay_secrets (name, value)
VALUES ('dkim-database', decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex')),
       ('unsubscribe', decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

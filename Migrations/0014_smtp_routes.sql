-- Smarthost routes: recipient domains whose mail is handed to an upstream SMTP server instead of their MX hosts
-- (POST /admin/routes), for clouds that block outbound port 25. Every worker node reads the table every few
-- seconds, so a change applies across the cluster without a restart.
-- domain_pattern: 'example.org' (that domain), '*.example.org' (its subdomains, not itself) or '*', lower case.
CREATE TABLE smtp_routes (
    id                  uuid PRIMARY KEY,
    domain_pattern      text NOT NULL UNIQUE,
    host                text NOT NULL,
    port                integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    username            text,
    password            bytea,                 -- AES-GCM sealed like DKIM private keys, never returned by the API
    sealed_with         text,                  -- which key sealed it: a fingerprint of RELAY_SECRET_KEY, or 'database'
    tls                 text NOT NULL DEFAULT 'starttls' CHECK (tls IN ('starttls', 'implicit', 'none')),
    verify_certificate  boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((username IS NULL) = (password IS NULL)),
    CHECK ((password IS NULL) = (sealed_with IS NULL)),
    -- Credentials go only over TLS.
    CHECK (password IS NULL OR tls <> 'none')
);

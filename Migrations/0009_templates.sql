-- Stored Mustache templates, per tenant, addressed by name (POST/GET/PUT/DELETE /v1/templates). The API compiles
-- each part before saving, so a stored template always parses. text or html (or both) is non-null.

CREATE TABLE templates (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,                 -- 1–64 of [A-Za-z0-9_.-], case-sensitive
    subject     text NOT NULL DEFAULT '',
    text        text,
    html        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name),
    CHECK (text IS NOT NULL OR html IS NOT NULL)
);

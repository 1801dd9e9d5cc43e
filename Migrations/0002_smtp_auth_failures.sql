-- Failed SMTP AUTH attempts per client IP, so that every node sees the same count
-- (RELAY_SMTP_AUTH_FAILURES within 10 minutes locks the IP out with 421 4.7.0).
CREATE TABLE smtp_auth_failures (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ip          text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX smtp_auth_failures_ip_at ON smtp_auth_failures (ip, at);

-- Cluster-wide limits on connections to one MX host, held in PostgreSQL (no Redis).
--
-- mx_connection_slots: one row per open outbound SMTP connection. A connection may open only if it takes a
-- slot number below the host's limit; the (host, slot) primary key makes two nodes unable to take the same
-- slot. Rows carry a lease renewed by the holding node, so the slots of a node that died free themselves.
-- UNLOGGED: after a crash every connection is gone anyway.
CREATE UNLOGGED TABLE mx_connection_slots (
    host        text NOT NULL,
    slot        integer NOT NULL,
    node_id     uuid NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (host, slot)
);
CREATE INDEX mx_connection_slots_node ON mx_connection_slots (node_id);

-- mx_throttles: a host that answered 421 or a 4.7.x "too many connections / rate" reply gets a lower connection
-- limit until `until`. Logged: a restart must not forget that a host asked us to slow down.
CREATE TABLE mx_throttles (
    host              text PRIMARY KEY,
    connection_limit  integer NOT NULL CHECK (connection_limit >= 1),
    until             timestamptz NOT NULL,
    reply             text NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

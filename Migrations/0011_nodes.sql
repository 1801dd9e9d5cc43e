-- The cluster's nodes: each registers on start, heartbeats, marks itself draining on shutdown and removes its
-- row when it has stopped. A row whose heartbeat is old belongs to a node that died (kill -9, lost machine);
-- GET /admin/nodes lists only live ones, and rows silent for a day are deleted.
CREATE TABLE nodes (
    id            uuid PRIMARY KEY,
    hostname      text NOT NULL,
    roles         text[] NOT NULL,
    version       text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    draining      boolean NOT NULL DEFAULT false
);
CREATE INDEX nodes_heartbeat_at ON nodes (heartbeat_at);

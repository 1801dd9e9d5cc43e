-- Delivery logs and statistics (issue 4):
--   * `events` becomes a table partitioned by day, with the attempt's remote IP, TLS version and attempt id;
--   * `attempts` (also partitioned by day) keeps one row per SMTP attempt with its transcript;
--   * retention drops whole day partitions (relay_maintain_partitions), never DELETEs rows one by one;
--   * statistics are hourly and daily rollups: writers append small deltas to *_pending tables (no hot-row contention
--     on the accept and delivery paths) and relay_fold_stats() moves them into the rollups every few seconds.
--     Readers add the pending rows to the rollups, so figures are exact at any time.

-- Events, partitioned. PostgreSQL 15 does not allow identity columns on partitioned tables: a sequence.
ALTER TABLE events RENAME TO events_legacy;
ALTER INDEX events_message RENAME TO events_legacy_message;
CREATE SEQUENCE event_ids;
SELECT setval('event_ids', COALESCE((SELECT max(id) FROM events_legacy), 0) + 1, false);

CREATE TABLE events (
    id             bigint NOT NULL DEFAULT nextval('event_ids'),
    tenant_id      uuid NOT NULL,
    message_id     uuid NOT NULL,
    recipient_id   bigint NOT NULL,
    type           text NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    attempt        integer NOT NULL DEFAULT 0,
    attempt_id     uuid,                          -- the `attempts` row of this delivery attempt
    mx             text,
    remote_ip      text,
    tls_version    text,                          -- e.g. TLSv1.3; NULL when the session was not encrypted
    reply_code     integer,
    reply_enhanced text,
    reply_text     text,
    duration_ms    integer
) PARTITION BY RANGE (at);
ALTER SEQUENCE event_ids OWNED BY events.id;
-- A message's history; the tenant's stream newest first (optionally by type); one recipient's events.
CREATE INDEX events_message ON events (message_id, id);
CREATE INDEX events_tenant_at ON events (tenant_id, at DESC, id DESC);
CREATE INDEX events_tenant_type_at ON events (tenant_id, type, at DESC, id DESC);
CREATE INDEX events_recipient ON events (recipient_id, at DESC, id DESC);
-- Catches rows outside every day partition (a clock far off, or maintenance that has not run for a week);
-- maintenance moves them into their day partition when it creates it.
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- One row per SMTP attempt (one message to one domain's MX): where it went and the full transcript.
CREATE TABLE attempts (
    id           uuid NOT NULL,
    tenant_id    uuid NOT NULL,
    message_id   uuid NOT NULL,
    started_at   timestamptz NOT NULL,
    domain       text NOT NULL,
    mx           text,
    remote_ip    text,
    tls_version  text,
    duration_ms  integer NOT NULL,
    transcript   jsonb NOT NULL                   -- [{"at","direction":"client|server|info","text"}], no message content
) PARTITION BY RANGE (started_at);
CREATE INDEX attempts_message ON attempts (message_id, started_at);
CREATE TABLE attempts_default PARTITION OF attempts DEFAULT;

-- Day partitions hold one UTC day each and are named <parent>_pYYYYMMDD.
-- Creates the day partitions of `parent` for days from `first_day` to `last_day` that do not exist yet.
-- Rows already sitting in the default partition for such a day are moved into the new partition first
-- (ATTACH would refuse otherwise). Returns the number of partitions created.
CREATE FUNCTION relay_ensure_day_partitions(parent text, key text, first_day date, last_day date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    day date := first_day;
    part text;
    created integer := 0;
BEGIN
    WHILE day <= last_day LOOP
        part := format('%s_p%s', parent, to_char(day, 'YYYYMMDD'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', part, parent);
            EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= %L AND %I < %L RETURNING *)
                            INSERT INTO %I SELECT * FROM moved',
                           parent || '_default', key, day::timestamp AT TIME ZONE 'UTC',
                           key, (day + 1)::timestamp AT TIME ZONE 'UTC', part);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           parent, part, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
            created := created + 1;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN created;
END $$;

-- Drops the day partitions of `parent` that end at or before `cutoff` (and deletes the few default-partition
-- rows that old). Returns the number of partitions dropped.
CREATE FUNCTION relay_drop_day_partitions(parent text, key text, cutoff timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = parent::regclass AND c.relname ~ ('^' || parent || '_p[0-9]{8}$')
          AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= cutoff
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    EXECUTE format('DELETE FROM %I WHERE %I < %L', parent || '_default', key, cutoff);
    RETURN dropped;
END $$;

-- Retention and look-ahead for both log tables, in one call (run by every node hourly; serialised by an
-- advisory lock so that two nodes never create the same partition at once).
CREATE FUNCTION relay_maintain_partitions(retention interval, days_ahead integer DEFAULT 7)
RETURNS TABLE (created integer, dropped integer) LANGUAGE plpgsql AS $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
BEGIN
    PERFORM pg_advisory_xact_lock(7365902);
    created := relay_ensure_day_partitions('events', 'at', today - 1, today + days_ahead)
             + relay_ensure_day_partitions('attempts', 'started_at', today - 1, today + days_ahead);
    dropped := relay_drop_day_partitions('events', 'at', now() - retention)
             + relay_drop_day_partitions('attempts', 'started_at', now() - retention);
    RETURN NEXT;
END $$;

SELECT relay_maintain_partitions(interval '100 years');

-- Carry over the history written before this migration (old rows land in the default partition).
INSERT INTO events (id, tenant_id, message_id, recipient_id, type, at, attempt, mx, reply_code, reply_enhanced,
                    reply_text, duration_ms)
SELECT id, tenant_id, message_id, recipient_id, type, at, attempt, mx, reply_code, reply_enhanced, reply_text,
       duration_ms
FROM events_legacy;
DROP TABLE events_legacy;

-- Hourly rollups. `provider` groups MX hosts (google, microsoft, yahoo, apple, other); bounced_soft counts
-- deferrals that carried a 4xx SMTP reply (a server said "not now"), as opposed to network failures.
CREATE TABLE stats_hourly (
    tenant_id     uuid NOT NULL,
    hour          timestamptz NOT NULL,
    domain        text NOT NULL,
    provider      text NOT NULL,
    accepted      bigint NOT NULL DEFAULT 0,
    delivered     bigint NOT NULL DEFAULT 0,
    deferred      bigint NOT NULL DEFAULT 0,
    bounced_hard  bigint NOT NULL DEFAULT 0,
    bounced_soft  bigint NOT NULL DEFAULT 0,
    failed        bigint NOT NULL DEFAULT 0,
    suppressed    bigint NOT NULL DEFAULT 0,
    complained    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, hour, domain, provider)
);
CREATE INDEX stats_hourly_hour ON stats_hourly (hour);

-- The same per UTC day, so that the domain and provider breakdowns of a month read ~30 rows per domain instead
-- of ~720: whole days come from stats_daily, the partial days at the ends of a range from stats_hourly, and the
-- deltas not folded yet from stats_hourly_pending.
CREATE TABLE stats_daily (LIKE stats_hourly INCLUDING DEFAULTS);
ALTER TABLE stats_daily RENAME COLUMN hour TO day;
ALTER TABLE stats_daily ADD PRIMARY KEY (tenant_id, day, domain, provider);
CREATE INDEX stats_daily_day ON stats_daily (day);

-- Time from accept to delivery, as a histogram: bucket = relay_latency_bucket(milliseconds).
CREATE TABLE stats_latency_hourly (
    tenant_id  uuid NOT NULL,
    hour       timestamptz NOT NULL,
    bucket     smallint NOT NULL,
    count      bigint NOT NULL,
    PRIMARY KEY (tenant_id, hour, bucket)
);
CREATE INDEX stats_latency_hourly_hour ON stats_latency_hourly (hour);

-- SMTP error replies (4xx and 5xx) by reply code and enhanced code ('' when none), with a recent sample text.
CREATE TABLE stats_errors_hourly (
    tenant_id  uuid NOT NULL,
    hour       timestamptz NOT NULL,
    code       integer NOT NULL,
    enhanced   text NOT NULL,
    count      bigint NOT NULL,
    sample     text NOT NULL,
    PRIMARY KEY (tenant_id, hour, code, enhanced)
);
CREATE INDEX stats_errors_hourly_hour ON stats_errors_hourly (hour);

-- Append-only deltas, same columns without keys. Small: folded every few seconds.
CREATE TABLE stats_hourly_pending (LIKE stats_hourly INCLUDING DEFAULTS)
    WITH (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_cost_delay = 0);
CREATE TABLE stats_latency_pending (LIKE stats_latency_hourly INCLUDING DEFAULTS)
    WITH (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_cost_delay = 0);
CREATE TABLE stats_errors_pending (LIKE stats_errors_hourly INCLUDING DEFAULTS)
    WITH (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_cost_delay = 0);

-- Latency buckets grow by 20%: bucket 0 is < 10 ms, bucket b >= 1 holds [10*1.2^(b-1), 10*1.2^b) ms, and
-- bucket 99 everything from 6.6 days on. LatencyHistogram in RelayCore mirrors this (a test checks both).
CREATE FUNCTION relay_latency_bucket(ms double precision) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN ms < 10 THEN 0
                ELSE least(99, 1 + floor(ln(ms / 10.0) / ln(1.2)))::smallint END
$$;

-- Moves every committed delta into the rollups (hourly and daily). DELETE … RETURNING sees exactly the committed deltas, so
-- each is counted once even while writers keep appending. One folder at a time (others return at once).
CREATE FUNCTION relay_fold_stats() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    folded bigint := 0;
    n bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(7365901) THEN
        RETURN 0;
    END IF;
    -- One statement: `d` runs once and feeds both inserts.
    WITH d AS (
        DELETE FROM stats_hourly_pending RETURNING *
    ), hourly AS (
        INSERT INTO stats_hourly AS s (tenant_id, hour, domain, provider, accepted, delivered, deferred, bounced_hard,
                                       bounced_soft, failed, suppressed, complained)
        SELECT tenant_id, hour, domain, provider, sum(accepted), sum(delivered), sum(deferred), sum(bounced_hard),
               sum(bounced_soft), sum(failed), sum(suppressed), sum(complained)
        FROM d GROUP BY tenant_id, hour, domain, provider ORDER BY tenant_id, hour, domain, provider
        ON CONFLICT (tenant_id, hour, domain, provider) DO UPDATE SET
            accepted = s.accepted + excluded.accepted, delivered = s.delivered + excluded.delivered,
            deferred = s.deferred + excluded.deferred, bounced_hard = s.bounced_hard + excluded.bounced_hard,
            bounced_soft = s.bounced_soft + excluded.bounced_soft, failed = s.failed + excluded.failed,
            suppressed = s.suppressed + excluded.suppressed, complained = s.complained + excluded.complained
    )
    INSERT INTO stats_daily AS s (tenant_id, day, domain, provider, accepted, delivered, deferred, bounced_hard,
                                  bounced_soft, failed, suppressed, complained)
    SELECT tenant_id, date_trunc('day', hour, 'UTC') AS day, domain, provider, sum(accepted), sum(delivered),
           sum(deferred), sum(bounced_hard), sum(bounced_soft), sum(failed), sum(suppressed), sum(complained)
    FROM d GROUP BY tenant_id, 2, domain, provider ORDER BY tenant_id, 2, domain, provider
    ON CONFLICT (tenant_id, day, domain, provider) DO UPDATE SET
        accepted = s.accepted + excluded.accepted, delivered = s.delivered + excluded.delivered,
        deferred = s.deferred + excluded.deferred, bounced_hard = s.bounced_hard + excluded.bounced_hard,
        bounced_soft = s.bounced_soft + excluded.bounced_soft, failed = s.failed + excluded.failed,
        suppressed = s.suppressed + excluded.suppressed, complained = s.complained + excluded.complained;
    GET DIAGNOSTICS n = ROW_COUNT;
    folded := folded + n;

    WITH d AS (DELETE FROM stats_latency_pending RETURNING *)
    INSERT INTO stats_latency_hourly AS s (tenant_id, hour, bucket, count)
    SELECT tenant_id, hour, bucket, sum(count) FROM d GROUP BY tenant_id, hour, bucket ORDER BY tenant_id, hour, bucket
    ON CONFLICT (tenant_id, hour, bucket) DO UPDATE SET count = s.count + excluded.count;
    GET DIAGNOSTICS n = ROW_COUNT;
    folded := folded + n;

    WITH d AS (DELETE FROM stats_errors_pending RETURNING *)
    INSERT INTO stats_errors_hourly AS s (tenant_id, hour, code, enhanced, count, sample)
    SELECT tenant_id, hour, code, enhanced, sum(count), max(sample) FROM d
    GROUP BY tenant_id, hour, code, enhanced ORDER BY tenant_id, hour, code, enhanced
    ON CONFLICT (tenant_id, hour, code, enhanced) DO UPDATE SET count = s.count + excluded.count, sample = excluded.sample;
    GET DIAGNOSTICS n = ROW_COUNT;
    folded := folded + n;
    RETURN folded;
END $$;

-- Accepted counts of the history carried over, so the rollups agree with the events they summarise.
INSERT INTO stats_hourly (tenant_id, hour, domain, provider, accepted, delivered, deferred, bounced_hard, bounced_soft, failed)
SELECT e.tenant_id, date_trunc('hour', e.at, 'UTC'), r.domain, 'other',
       count(*) FILTER (WHERE e.type = 'accepted'), count(*) FILTER (WHERE e.type = 'delivered'),
       count(*) FILTER (WHERE e.type = 'deferred'), count(*) FILTER (WHERE e.type = 'bounced'),
       count(*) FILTER (WHERE e.type = 'deferred' AND e.reply_code BETWEEN 400 AND 499),
       count(*) FILTER (WHERE e.type = 'failed')
FROM events e JOIN recipients r ON r.id = e.recipient_id
GROUP BY 1, 2, 3;

INSERT INTO stats_daily (tenant_id, day, domain, provider, accepted, delivered, deferred, bounced_hard, bounced_soft,
                         failed, suppressed, complained)
SELECT tenant_id, date_trunc('day', hour, 'UTC'), domain, provider, sum(accepted), sum(delivered), sum(deferred),
       sum(bounced_hard), sum(bounced_soft), sum(failed), sum(suppressed), sum(complained)
FROM stats_hourly GROUP BY 1, 2, 3, 4;

-- Daily rollups per recipient domain, so that the domain and provider breakdowns of a month read ~30 rows per
-- domain instead of ~720: full days come from stats_daily, the partial days at the ends of a range from
-- stats_hourly, and the deltas not folded yet from stats_hourly_pending.
CREATE TABLE stats_daily (LIKE stats_hourly INCLUDING DEFAULTS);
ALTER TABLE stats_daily RENAME COLUMN hour TO day;
ALTER TABLE stats_daily ADD PRIMARY KEY (tenant_id, day, domain, provider);
CREATE INDEX stats_daily_day ON stats_daily (day);

INSERT INTO stats_daily (tenant_id, day, domain, provider, accepted, delivered, deferred, bounced_hard, bounced_soft,
                         failed, suppressed, complained)
SELECT tenant_id, date_trunc('day', hour, 'UTC'), domain, provider, sum(accepted), sum(delivered), sum(deferred),
       sum(bounced_hard), sum(bounced_soft), sum(failed), sum(suppressed), sum(complained)
FROM stats_hourly GROUP BY 1, 2, 3, 4;

-- Rebuilds one tenant's daily rows from its hourly rows (for bulk loads that write stats_hourly directly, such
-- as `relay dev seed`), under the folding lock so that no fold interleaves.
CREATE FUNCTION relay_rebuild_daily_stats(tenant uuid) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(7365901);
    DELETE FROM stats_daily WHERE tenant_id = tenant;
    INSERT INTO stats_daily (tenant_id, day, domain, provider, accepted, delivered, deferred, bounced_hard, bounced_soft,
                             failed, suppressed, complained)
    SELECT tenant_id, date_trunc('day', hour, 'UTC'), domain, provider, sum(accepted), sum(delivered), sum(deferred),
           sum(bounced_hard), sum(bounced_soft), sum(failed), sum(suppressed), sum(complained)
    FROM stats_hourly WHERE tenant_id = tenant GROUP BY 1, 2, 3, 4;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- The fold now feeds both granularities from the same deltas.
CREATE OR REPLACE FUNCTION relay_fold_stats() RETURNS bigint LANGUAGE plpgsql AS $$
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

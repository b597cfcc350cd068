-- Continuous aggregates of the readings hypertable, per (tenant, machine, metric): `readings_1m` (1-minute
-- buckets, from the raw rows) and `readings_1h` (1-hour buckets, from readings_1m). Each bucket holds
-- min, max, sum, count, the last value and its time, from which any wider bucket that is a whole number
-- of them is computed exactly (the API's bucketed query does; see api/src/routes/readings.rs).
--
-- Real-time aggregation is on: a query sees the materialized buckets below the watermark plus the raw rows
-- above it, aggregated on the fly, so the newest readings count at once. Refresh policies materialize the
-- 1-minute buckets every minute and the hourly ones every 10 minutes over the whole history
-- (start_offset NULL): a refresh recomputes only the ranges that changed, so readings delivered late and
-- the retention sweep's deletions reach the aggregates at the next run (the sweep also refreshes at once).
-- A run refreshes in one transaction (buckets_per_batch 0): TimescaleDB's batched refresh, newest batch
-- first, moves the watermark before the older batches are materialized, and queries miss those meanwhile
-- (seen after converting a table with rows: a day of hourly buckets was absent until the run finished).
-- The aggregates keep the raw table's longest retention (3650 days).
--
-- Without TimescaleDB (natively partitioned readings) there are no aggregates and queries read raw rows.

-- A refresh policy over the whole history, in one pass per run where TimescaleDB batches refreshes (recent
-- releases; the Docker Compose file's image may predate that).
CREATE FUNCTION haltless_add_refresh_policy(p_view regclass, p_end interval, p_schedule interval)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'add_continuous_aggregate_policy'
               AND 'buckets_per_batch' = ANY (proargnames)) THEN
        EXECUTE 'SELECT add_continuous_aggregate_policy($1, start_offset => NULL, end_offset => $2,
                     schedule_interval => $3, buckets_per_batch => 0)'
            USING p_view, p_end, p_schedule;
    ELSE
        PERFORM add_continuous_aggregate_policy(p_view, start_offset => NULL, end_offset => p_end,
                                                schedule_interval => p_schedule);
    END IF;
END
$$;

CREATE FUNCTION haltless_readings_aggregates() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass('_timescaledb_catalog.hypertable') IS NULL THEN
        RETURN false;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM _timescaledb_catalog.hypertable
                   WHERE schema_name = 'public' AND table_name = 'readings') THEN
        RETURN false;
    END IF;
    IF to_regclass('readings_1m') IS NULL THEN
        CREATE MATERIALIZED VIEW readings_1m
        WITH (timescaledb.continuous, timescaledb.materialized_only = false,
              timescaledb.create_group_indexes = false) AS
        SELECT tenant_id, machine_id, metric, time_bucket(interval '1 minute', ts) AS bucket,
               min(value) AS min, max(value) AS max, sum(value) AS sum, count(*) AS count,
               last(value, ts) AS last, max(ts) AS last_ts
        FROM readings
        GROUP BY tenant_id, machine_id, metric, time_bucket(interval '1 minute', ts)
        WITH NO DATA;
        CREATE INDEX readings_1m_series ON readings_1m (tenant_id, machine_id, metric, bucket);
        PERFORM haltless_add_refresh_policy('readings_1m', interval '1 minute', interval '1 minute');
        PERFORM add_retention_policy('readings_1m', interval '3650 days');
    END IF;
    IF to_regclass('readings_1h') IS NULL THEN
        CREATE MATERIALIZED VIEW readings_1h
        WITH (timescaledb.continuous, timescaledb.materialized_only = false,
              timescaledb.create_group_indexes = false) AS
        SELECT tenant_id, machine_id, metric, time_bucket(interval '1 hour', bucket) AS bucket,
               min(min) AS min, max(max) AS max, sum(sum) AS sum, sum(count)::bigint AS count,
               last(last, last_ts) AS last, max(last_ts) AS last_ts
        FROM readings_1m
        GROUP BY tenant_id, machine_id, metric, time_bucket(interval '1 hour', bucket)
        WITH NO DATA;
        CREATE INDEX readings_1h_series ON readings_1h (tenant_id, machine_id, metric, bucket);
        PERFORM haltless_add_refresh_policy('readings_1h', interval '1 hour', interval '10 minutes');
        PERFORM add_retention_policy('readings_1h', interval '3650 days');
    END IF;
    RETURN true;
END
$$;

COMMENT ON FUNCTION haltless_readings_aggregates() IS
    'Creates the continuous aggregates readings_1m and readings_1h when readings is a hypertable; returns '
    'whether they exist. Run after haltless_readings_storage() made readings a hypertable.';

SELECT haltless_readings_aggregates();

-- Readings on TimescaleDB wherever the extension is available, including databases made before it was:
-- a natively partitioned `readings` with rows becomes a hypertable with the same rows. Without the
-- extension (or with `haltless.readings_storage = 'partitions'` set on the database, as the storage tests
-- do) `readings` stays, or becomes, natively partitioned by month.
--
-- The hypertable's choices, made for the queries the API serves (every one filters by tenant and machine,
-- most by metric, and reads a time range ordered by time, or the newest row of each metric):
-- - chunks of 1 day: a dashboard's last hours or day touch one or two chunks, a month 30; the chunk being
--   written, with its primary-key index, stays small enough to live in memory (a machine sending 5 metrics
--   at 1 Hz adds 432,000 rows, about 60 MB with its index, a day), and old data leaves a day at a time;
-- - compressed once a chunk is 3 days old: the live dashboards' window and the readings an edge agent
--   delivers late after an outage land in plain chunks, everything older shrinks about tenfold;
-- - segment by (tenant_id, machine_id, metric), order by ts: a query reads only its machine's (and metric's)
--   batches, each batch's min/max ts skips those outside the range, rows come out in time order;
-- - indexes: the primary key (tenant_id, machine_id, metric, ts) only;
-- - retention: chunks go whole once older than the longest tier's retention (Enterprise, 3650 days);
--   shorter tiers are trimmed per tenant by the retention sweep with `DELETE ... WHERE tenant_id = $1 AND ts
--   < $2`, which TimescaleDB applies to compressed chunks too (it decompresses only the tenant's batches
--   that the range reaches, and the compression policy compresses what is left again).

CREATE FUNCTION haltless_readings_storage() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    want_timescale boolean := EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
        AND coalesce(current_setting('haltless.readings_storage', true), '') <> 'partitions';
    is_hypertable boolean := false;
    first_ts timestamptz;
    last_ts timestamptz;
BEGIN
    -- The new table takes the old one's columns and checks, and the primary key alone (whose name the old
    -- table hands over first).
    IF to_regclass('timescaledb_information.hypertables') IS NOT NULL THEN
        EXECUTE $q$SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                                  WHERE hypertable_schema = 'public' AND hypertable_name = 'readings')$q$
            INTO is_hypertable;
    END IF;

    IF want_timescale AND NOT is_hypertable THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        ALTER TABLE readings RENAME TO readings_before_timescaledb;
        ALTER TABLE readings_before_timescaledb RENAME CONSTRAINT readings_pkey TO readings_before_timescaledb_pkey;
        CREATE TABLE readings (LIKE readings_before_timescaledb INCLUDING CONSTRAINTS,
                               PRIMARY KEY (tenant_id, machine_id, metric, ts));
        PERFORM create_hypertable('readings', 'ts', chunk_time_interval => interval '1 day');
        INSERT INTO readings SELECT tenant_id, machine_id, metric, ts, value, quality, ingested_at
                             FROM readings_before_timescaledb;
        DROP TABLE readings_before_timescaledb;
        is_hypertable := true;
    ELSIF NOT want_timescale AND is_hypertable THEN
        DROP MATERIALIZED VIEW IF EXISTS readings_1h CASCADE;
        DROP MATERIALIZED VIEW IF EXISTS readings_1m CASCADE;
        ALTER TABLE readings RENAME TO readings_before_partitions;
        ALTER TABLE readings_before_partitions RENAME CONSTRAINT readings_pkey TO readings_before_partitions_pkey;
        CREATE TABLE readings (LIKE readings_before_partitions INCLUDING CONSTRAINTS,
                               PRIMARY KEY (tenant_id, machine_id, metric, ts)) PARTITION BY RANGE (ts);
        CREATE TABLE readings_default PARTITION OF readings DEFAULT;
        SELECT min(ts), max(ts) INTO first_ts, last_ts FROM readings_before_partitions;
        PERFORM haltless_ensure_readings_partitions(least(first_ts, now() - interval '1 month'),
                                                    greatest(last_ts, now() + interval '2 months'));
        INSERT INTO readings SELECT tenant_id, machine_id, metric, ts, value, quality, ingested_at
                             FROM readings_before_partitions;
        DROP TABLE readings_before_partitions;
        RETURN 'partitions';
    END IF;

    IF NOT is_hypertable THEN
        RETURN 'partitions';
    END IF;
    PERFORM set_chunk_time_interval('readings', interval '1 day');
    -- create_hypertable's own index on ts alone serves no query of ours (each filters by tenant and
    -- machine first, which the primary key serves) and costs a fifth of the disk and of every insert.
    DROP INDEX IF EXISTS readings_ts_idx;
    -- Compression settings can only change while no chunk is compressed (a database that ran 0001's
    -- hypertable for more than a week already has these same settings).
    IF NOT EXISTS (SELECT 1 FROM chunk_compression_stats('readings') WHERE compression_status = 'Compressed') THEN
        ALTER TABLE readings SET (
            timescaledb.compress,
            timescaledb.compress_segmentby = 'tenant_id, machine_id, metric',
            timescaledb.compress_orderby = 'ts'
        );
    END IF;
    PERFORM remove_compression_policy('readings', if_exists => true);
    PERFORM add_compression_policy('readings', interval '3 days');
    PERFORM remove_retention_policy('readings', if_exists => true);
    PERFORM add_retention_policy('readings', interval '3650 days');
    RETURN 'timescaledb';
END
$$;

COMMENT ON FUNCTION haltless_readings_storage() IS
    'Makes readings a TimescaleDB hypertable when the extension is available and the database does not say '
    'haltless.readings_storage = partitions, else a natively partitioned table, moving its rows; '
    'returns the storage in use. Run again after installing TimescaleDB into an existing installation.';

SELECT haltless_readings_storage();

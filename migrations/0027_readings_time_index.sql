-- A BRIN index on readings(ts), for the queries that range over time alone: the continuous aggregates'
-- refresh above all. Every query the API serves filters by tenant and machine, which the primary key
-- serves; the refresh aggregates a time range of every series, and without an index on time read the whole
-- chunk each minute. Measured on a 1-day chunk holding 82 million rows (a paced benchmark's), aggregating
-- 2.5 hours of them (9 million rows) into 1-minute buckets: the scan took 5.2 s through every row of the
-- chunk, 1.6 s through the index; and the whole-chunk scan grows with the chunk all day long.
--
-- BRIN, not a B-tree: readings arrive in about the order of their time, so a summary (least and greatest
-- time) per range of 128 heap pages keeps the scan to the ranges it needs, for a few kilobytes per chunk and
-- next to nothing per row stored (create_hypertable's B-tree on time cost a fifth of every insert, and was
-- dropped by 0014). Ranges filled since the last vacuum are not summarized yet and are always read: those
-- hold the newest rows, which a refresh reads anyway.
--
-- haltless_readings_storage() (0014) makes a new readings table when the storage changes; it keeps its
-- name and now creates this index on whatever readings it leaves.

CREATE FUNCTION haltless_readings_time_index() RETURNS void LANGUAGE sql AS $$
    CREATE INDEX IF NOT EXISTS readings_ts_brin ON readings USING brin (ts);
$$;

COMMENT ON FUNCTION haltless_readings_time_index() IS
    'Creates the BRIN index on readings(ts) that range scans over time (the continuous aggregates'' '
    'refresh) use, if it is missing.';

ALTER FUNCTION haltless_readings_storage() RENAME TO haltless_readings_storage_table;

COMMENT ON FUNCTION haltless_readings_storage_table() IS
    'The table part of haltless_readings_storage() (migration 0014): moves readings between a hypertable '
    'and native partitions; returns the storage in use.';

CREATE FUNCTION haltless_readings_storage() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    storage text := haltless_readings_storage_table();
BEGIN
    PERFORM haltless_readings_time_index();
    RETURN storage;
END
$$;

COMMENT ON FUNCTION haltless_readings_storage() IS
    'Makes readings a TimescaleDB hypertable when the extension is available and the database does not say '
    'haltless.readings_storage = partitions, else a natively partitioned table, moving its rows, with its '
    'indexes; returns the storage in use. Run again after installing TimescaleDB into an existing installation.';

SELECT haltless_readings_time_index();

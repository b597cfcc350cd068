-- The continuous aggregates' refresh as a job of our own, `haltless_refresh_readings_aggregate`, in place of
-- TimescaleDB's refresh policies (0015): the same window (the whole history, up to the end offset) and
-- schedule, in one pass, with two changes that keep a run's cost to the rows it aggregates. Measured on a
-- 1-day chunk of 27 million readings (100 series), refreshing one hour of them (9 million rows, 6,000
-- buckets): 35.7 s through the policy's path, 4.8 s through this one; in a paced benchmark at 150,000
-- readings/s the policy's minute runs took 25 to 64 s each and grew with the chunk.
--
-- - Before refreshing, the BRIN index on time (0027) of every chunk of readings summarizes its new page
--   ranges. A range filled since the chunk's last vacuum has no summary, and a range without one matches
--   every query: the index handed the refresh the whole chunk written since then (25 of 27 million rows
--   read to keep 1.5 million), and autovacuum of an append-only chunk comes rarely (every fifth of its
--   size). Summarizing reads each new page once. A chunk that another process is vacuuming (which
--   summarizes too) is skipped rather than waited for.
-- - The refresh runs with sorting off. Its query filters the partial view on time_bucket(ts), which has no
--   statistics, so the planner takes a default selectivity (0.5 %), expects a few thousand rows where a
--   minute at 150,000 readings/s holds 9 million, and sorts them on disk for a group aggregate (2.5 s per
--   1.5 million rows, spilled with 32 MB of work_mem). Hash aggregation needs memory for the groups only (a
--   bucket per series and minute: 1.2 MB for 1,000) and still spills to disk if a refresh has millions.
--   The setting lives in the job's own session, which ends with the run.
--
-- The retention sweep's and the tests' own refreshes (refresh_continuous_aggregate on a pooled connection)
-- are unchanged: rare, and a session setting would outlive them on the connection.

CREATE PROCEDURE haltless_refresh_readings_aggregate(job_id integer, config jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    target regclass := (config ->> 'view')::regclass;
    window_end timestamptz := now() - (config ->> 'end_offset')::interval;
    idx regclass;
BEGIN
    SET lock_timeout = '100ms';
    FOR idx IN
        SELECT i.indexrelid::regclass
        FROM pg_inherits h
        JOIN pg_index i ON i.indrelid = h.inhrelid
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_am a ON a.oid = c.relam AND a.amname = 'brin'
        WHERE h.inhparent = 'readings'::regclass
    LOOP
        BEGIN
            PERFORM brin_summarize_new_values(idx);
        EXCEPTION WHEN lock_not_available THEN
            NULL;
        END;
    END LOOP;
    RESET lock_timeout;
    COMMIT;

    SET enable_sort = off;
    -- One pass (TimescaleDB's batched refresh, newest batch first, moves the watermark before the older
    -- batches are materialized, and queries miss those meanwhile); releases before batching have no options.
    IF EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'refresh_continuous_aggregate'
               AND 'options' = ANY (proargnames)) THEN
        CALL refresh_continuous_aggregate(target, NULL, window_end, options => '{"buckets_per_batch": 0}');
    ELSE
        CALL refresh_continuous_aggregate(target, NULL, window_end);
    END IF;
    RESET enable_sort;
END
$$;

COMMENT ON PROCEDURE haltless_refresh_readings_aggregate(integer, jsonb) IS
    'The refresh job of a continuous aggregate of readings (config: view, end_offset): summarizes the new '
    'page ranges of the BRIN indexes on time, then refreshes the whole history up to now() - end_offset in '
    'one pass, hash-aggregating. See migration 0028.';

-- Replaces 0015's helper: aggregates made from now on (haltless_readings_aggregates(), when readings becomes
-- a hypertable) get the job instead of TimescaleDB's policy.
CREATE OR REPLACE FUNCTION haltless_add_refresh_policy(p_view regclass, p_end interval, p_schedule interval)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM remove_continuous_aggregate_policy(p_view, if_exists => true);
    PERFORM delete_job(job_id) FROM timescaledb_information.jobs
        WHERE proc_name = 'haltless_refresh_readings_aggregate' AND config ->> 'view' = p_view::text;
    PERFORM add_job('haltless_refresh_readings_aggregate', p_schedule,
                    config => jsonb_build_object('view', p_view::text, 'end_offset', p_end::text));
END
$$;

COMMENT ON FUNCTION haltless_add_refresh_policy(regclass, interval, interval) IS
    'Schedules haltless_refresh_readings_aggregate for a continuous aggregate every p_schedule, up to '
    'now() - p_end, replacing any refresh policy or job it had.';

DO $$
BEGIN
    IF to_regclass('readings_1m') IS NOT NULL THEN
        PERFORM haltless_add_refresh_policy('readings_1m', interval '1 minute', interval '1 minute');
    END IF;
    IF to_regclass('readings_1h') IS NOT NULL THEN
        PERFORM haltless_add_refresh_policy('readings_1h', interval '1 hour', interval '10 minutes');
    END IF;
END
$$;

-- A move back to native partitions (haltless_readings_storage_table(), 0014) drops the aggregates, which
-- takes TimescaleDB's policies along but not a job of our own: the storage function now removes the jobs
-- whose aggregate is gone.
CREATE OR REPLACE FUNCTION haltless_readings_storage() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    storage text := haltless_readings_storage_table();
BEGIN
    PERFORM haltless_readings_time_index();
    IF to_regclass('timescaledb_information.jobs') IS NOT NULL THEN
        PERFORM delete_job(job_id) FROM timescaledb_information.jobs
            WHERE proc_name = 'haltless_refresh_readings_aggregate' AND to_regclass(config ->> 'view') IS NULL;
    END IF;
    RETURN storage;
END
$$;

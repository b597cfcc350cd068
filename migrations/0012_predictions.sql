-- Remaining-useful-life predictions, projected from haltless.predictions.v1: one row per machine cycle.
-- A TimescaleDB hypertable (chunks of 7 days) where the extension is available, like `readings`; a plain
-- table otherwise. Every query filters by tenant and machine and reads by time, or takes each machine's
-- newest row (the fleet ranking), which the primary key serves.
CREATE TABLE predictions (
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    machine_id     uuid NOT NULL,
    ts             timestamptz NOT NULL,
    cycle          bigint NOT NULL,
    rul            double precision NOT NULL,
    rul_lower      double precision NOT NULL,
    rul_upper      double precision NOT NULL,
    interval       double precision NOT NULL,
    health         double precision NOT NULL CHECK (health BETWEEN 0 AND 1),
    model_id       uuid NOT NULL,
    model_version  text NOT NULL,
    contributors   jsonb NOT NULL,
    PRIMARY KEY (tenant_id, machine_id, ts)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('predictions', 'ts', chunk_time_interval => interval '7 days');
    END IF;
END
$$;

-- Tenants, users, API keys, machines, readings and projection offsets.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    tier        text NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'pro', 'enterprise')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email          text NOT NULL CHECK (email = lower(email) AND position('@' IN email) > 1),
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email)
);
CREATE INDEX users_tenant_idx ON users (tenant_id);

-- Only a SHA-256 of the secret is stored; the prefix lets people tell keys apart.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         text NOT NULL,
    prefix       text NOT NULL,
    key_hash     bytea NOT NULL UNIQUE,
    scopes       text[] NOT NULL CHECK (scopes <@ ARRAY['ingest', 'read']::text[] AND cardinality(scopes) > 0),
    machine_ids  uuid[],
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

CREATE TABLE machines (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT machines_tenant_name_key UNIQUE (tenant_id, name)
);

-- Where each projection stands in each topic partition; written in the same transaction as its rows.
CREATE TABLE projection_offsets (
    projection   text NOT NULL,
    topic        text NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);

-- Readings: a TimescaleDB hypertable when the extension is installed, else a table partitioned by month.
-- The primary key makes a redelivered reading a no-op; queries use only SQL that works on both.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        CREATE TABLE readings (
            tenant_id    uuid NOT NULL,
            machine_id   uuid NOT NULL,
            metric       text NOT NULL,
            ts           timestamptz NOT NULL,
            value        double precision NOT NULL,
            quality      text CHECK (quality IN ('good', 'uncertain', 'bad')),
            ingested_at  timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, machine_id, metric, ts)
        );
        PERFORM create_hypertable('readings', 'ts', chunk_time_interval => interval '1 day');
        ALTER TABLE readings SET (
            timescaledb.compress,
            timescaledb.compress_segmentby = 'tenant_id, machine_id, metric',
            timescaledb.compress_orderby = 'ts'
        );
        PERFORM add_compression_policy('readings', interval '7 days');
        -- The longest tier's retention; shorter tiers are trimmed per tenant.
        PERFORM add_retention_policy('readings', interval '3650 days');
    ELSE
        CREATE TABLE readings (
            tenant_id    uuid NOT NULL,
            machine_id   uuid NOT NULL,
            metric       text NOT NULL,
            ts           timestamptz NOT NULL,
            value        double precision NOT NULL,
            quality      text CHECK (quality IN ('good', 'uncertain', 'bad')),
            ingested_at  timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, machine_id, metric, ts)
        ) PARTITION BY RANGE (ts);
        CREATE TABLE readings_default PARTITION OF readings DEFAULT;
    END IF;
END
$$;

-- Creates the monthly partitions covering [from_ts, to_ts] on a natively partitioned `readings`.
-- A no-op on a hypertable. A month whose rows already sit in the default partition is left there.
CREATE FUNCTION haltless_ensure_readings_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    month   timestamptz := date_trunc('month', from_ts, 'UTC');
    name    text;
    created integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
                   WHERE c.relname = 'readings' AND c.relnamespace = 'public'::regnamespace) THEN
        RETURN 0;
    END IF;
    WHILE month <= to_ts LOOP
        name := 'readings_' || to_char(month AT TIME ZONE 'UTC', 'YYYYMM');
        IF to_regclass(name) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
                               name, month, month + interval '1 month');
                created := created + 1;
            EXCEPTION WHEN check_violation OR duplicate_table THEN
                NULL; -- rows of that month already live in the default partition, or a peer created it
            END;
        END IF;
        month := month + interval '1 month';
    END LOOP;
    RETURN created;
END
$$;

SELECT haltless_ensure_readings_partitions(now() - interval '1 month', now() + interval '2 months');

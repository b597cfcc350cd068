-- Ingest sources (OPC-UA and Modbus TCP devices the platform polls), their health, and the leases that
-- give each enabled source to exactly one `haltless connectors` instance.

CREATE TABLE ingest_sources (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
    protocol    text NOT NULL CHECK (protocol IN ('opcua', 'modbus_tcp')),
    -- The validated definition: endpoint, intervals, OPC-UA settings and the point map.
    definition  jsonb NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    -- Bumped on every change, so that pollers restart a source whose definition changed.
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ingest_sources_tenant_name_key UNIQUE (tenant_id, name)
);
CREATE INDEX ingest_sources_enabled_idx ON ingest_sources (id) WHERE enabled;

-- Written by the instance polling the source.
CREATE TABLE ingest_source_status (
    source_id            uuid PRIMARY KEY REFERENCES ingest_sources (id) ON DELETE CASCADE,
    version              bigint NOT NULL,
    healthy              boolean NOT NULL,
    last_success_at      timestamptz,
    last_error           text,
    last_error_at        timestamptz,
    readings_per_minute  bigint NOT NULL DEFAULT 0,
    polled_by            text NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Live `haltless connectors` instances: a fair share of the sources is computed from their number.
CREATE TABLE connector_instances (
    id            text PRIMARY KEY,
    heartbeat_at  timestamptz NOT NULL
);

-- Who polls a source until when; an expired lease may be taken by any instance.
CREATE TABLE ingest_source_leases (
    source_id   uuid PRIMARY KEY REFERENCES ingest_sources (id) ON DELETE CASCADE,
    owner       text NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX ingest_source_leases_owner_idx ON ingest_source_leases (owner);

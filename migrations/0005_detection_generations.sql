-- Generations of detection: a replay reprocesses history into a new generation (its own detector state,
-- alert topic and alert rows) while the active one goes on, then makes it active in one step. Rows of every
-- generation live side by side; the API reads the active one.

CREATE TABLE detection_generations (
    generation    integer PRIMARY KEY,
    status        text NOT NULL CHECK (status IN ('building', 'active', 'retired', 'abandoned', 'inspect')),
    replay_from   timestamptz,
    replay_to     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    activated_at  timestamptz
);
-- At most one generation is active.
CREATE UNIQUE INDEX detection_generations_one_active ON detection_generations ((true)) WHERE status = 'active';
INSERT INTO detection_generations (generation, status, activated_at) VALUES (1, 'active', now());

CREATE FUNCTION active_generation() RETURNS integer LANGUAGE sql STABLE AS
    $$ SELECT generation FROM detection_generations WHERE status = 'active' $$;

ALTER TABLE alerts ADD COLUMN generation integer NOT NULL DEFAULT 1;
ALTER TABLE alerts DROP CONSTRAINT alerts_pkey, ADD PRIMARY KEY (generation, id);
DROP INDEX alerts_tenant_raised_idx;
DROP INDEX alerts_tenant_machine_idx;
CREATE INDEX alerts_tenant_raised_idx ON alerts (generation, tenant_id, raised_at DESC, id);
CREATE INDEX alerts_tenant_machine_idx ON alerts (generation, tenant_id, machine_id, raised_at DESC);

ALTER TABLE alert_events ADD COLUMN generation integer NOT NULL DEFAULT 1;
ALTER TABLE alert_events DROP CONSTRAINT alert_events_pkey,
    ADD PRIMARY KEY (generation, topic, partition, "offset", alert_id);
DROP INDEX alert_events_alert_idx;
CREATE INDEX alert_events_alert_idx ON alert_events (generation, tenant_id, alert_id, at);

-- Alerts with their full history (projected from haltless.alerts.v1 and the alert actions topic), and the
-- rules as the API last wrote them (the rules topic is the record the detectors read).

CREATE TABLE alerts (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    machine_id     uuid NOT NULL,
    machine        text NOT NULL,
    rule_id        text NOT NULL,
    rule_name      text NOT NULL,
    severity       text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    detector       text NOT NULL,
    metric         text NOT NULL,
    state          text NOT NULL CHECK (state IN ('open', 'resolved')),
    observed       double precision NOT NULL,
    expected       double precision NOT NULL,
    score          double precision NOT NULL,
    score_limit    double precision NOT NULL,
    raised_at      timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    resolved_at    timestamptz,
    acked_at       timestamptz,
    acked_by       text,
    snoozed_until  timestamptz
);
CREATE INDEX alerts_tenant_raised_idx ON alerts (tenant_id, raised_at DESC, id);
CREATE INDEX alerts_tenant_machine_idx ON alerts (tenant_id, machine_id, raised_at DESC);

-- Every transition and action, in order; (topic, partition, offset) makes a redelivery a no-op.
CREATE TABLE alert_events (
    tenant_id   uuid NOT NULL,
    alert_id    uuid NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('raised', 'updated', 'resolved', 'acked', 'snoozed')),
    at          timestamptz NOT NULL,
    details     jsonb NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint NOT NULL,
    PRIMARY KEY (topic, partition, "offset", alert_id)
);
CREATE INDEX alert_events_alert_idx ON alert_events (tenant_id, alert_id, at);

CREATE TABLE rules (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          text NOT NULL,
    version     bigint NOT NULL,
    definition  jsonb NOT NULL,
    machines    text[] NOT NULL DEFAULT '{}',
    deleted     boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- The alert engine: notification channels, escalation policies, silences, inhibition rules, each alert's
-- escalation, and
-- every notification with each attempt to deliver it.

-- Channel kinds are registered in code (processors/src/alerting/channels); the secret fields of a
-- channel's configuration are stored apart, sealed.
CREATE TABLE notification_channels (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind             text NOT NULL,
    config           jsonb NOT NULL,
    secret           text NOT NULL,
    max_concurrency  integer NOT NULL DEFAULT 4 CHECK (max_concurrency BETWEEN 1 AND 32),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notification_channels_tenant_name_key UNIQUE (tenant_id, name)
);

-- `spec` is the policy as the API takes it (matchers, steps, repeat, grouping); the first policy in
-- (position, created_at) order whose matchers hold takes an alert.
CREATE TABLE escalation_policies (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    position    integer NOT NULL DEFAULT 0,
    spec        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT escalation_policies_tenant_name_key UNIQUE (tenant_id, name)
);
CREATE INDEX escalation_policies_order_idx ON escalation_policies (tenant_id, position, created_at);

CREATE TABLE silences (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    matchers    jsonb NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL CHECK (ends_at > starts_at),
    comment     text NOT NULL DEFAULT '' CHECK (length(comment) <= 1000),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX silences_tenant_idx ON silences (tenant_id, ends_at);

-- While an open alert meets `spec.source`, alerts meeting `spec.target` that share `spec.equal` with it
-- notify nobody.
CREATE TABLE inhibition_rules (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    spec        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT inhibition_rules_tenant_name_key UNIQUE (tenant_id, name)
);

-- From when the engine takes in a generation's alerts: alerts written before it (history a replay
-- rebuilt, or alerts older than the engine) are recorded, not notified.
CREATE TABLE alerting_generations (
    generation  integer PRIMARY KEY,
    since       timestamptz NOT NULL
);

-- One row per alert the engine took in, whatever its generation: the same alert id (a replay of the
-- same history) is never escalated twice.
CREATE TABLE alert_escalations (
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    alert_id         uuid NOT NULL,
    generation       integer NOT NULL,
    machine_id       uuid NOT NULL,
    policy_id        uuid REFERENCES escalation_policies (id) ON DELETE SET NULL,
    group_key        text NOT NULL DEFAULT '',
    summary          jsonb NOT NULL,
    state            text NOT NULL CHECK (state IN
                         ('escalating', 'done', 'acked', 'snoozed', 'resolved', 'unrouted', 'history')),
    firings          integer NOT NULL DEFAULT 0,
    next_at          timestamptz,
    snoozed_until    timestamptz,
    muted_by         jsonb,
    resolved_notice  boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, alert_id)
);
CREATE INDEX alert_escalations_due_idx ON alert_escalations (next_at) WHERE state = 'escalating';
CREATE INDEX alert_escalations_snoozed_idx ON alert_escalations (snoozed_until) WHERE state = 'snoozed';
CREATE INDEX alert_escalations_resolved_idx ON alert_escalations (tenant_id) WHERE resolved_notice;
CREATE INDEX alert_escalations_group_idx ON alert_escalations (tenant_id, policy_id, group_key, next_at)
    WHERE state = 'escalating' AND firings = 0;

-- Every notification due, recorded before it is sent; its id is the Idempotency-Key receivers see.
CREATE TABLE notifications (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_id       uuid NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('alert', 'resolved', 'test')),
    step             integer,
    alert_ids        uuid[] NOT NULL DEFAULT '{}',
    message          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX notifications_tenant_idx ON notifications (tenant_id, created_at DESC, id);
CREATE INDEX notifications_alerts_idx ON notifications USING gin (alert_ids);

-- (alert, firing, channel) is notified at most once; firing -1 is the resolution notice.
CREATE TABLE notification_keys (
    tenant_id        uuid NOT NULL,
    alert_id         uuid NOT NULL,
    firing           integer NOT NULL,
    channel_id       uuid NOT NULL,
    notification_id  uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    PRIMARY KEY (tenant_id, alert_id, firing, channel_id)
);
CREATE INDEX notification_keys_notification_idx ON notification_keys (notification_id);

CREATE TABLE notification_attempts (
    notification_id  uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt          integer NOT NULL,
    at               timestamptz NOT NULL DEFAULT now(),
    outcome          text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    status_code      integer,
    error            text,
    duration_ms      integer NOT NULL,
    PRIMARY KEY (notification_id, attempt)
);

-- The alert engine reaches people: users register their browsers' Web Push subscriptions with a push
-- channel, and escalation steps name users and roles; groups that already notified wait their
-- `group_interval_secs` before telling of alerts that joined; silent machines raise connectivity alerts.

-- A browser's subscription (the W3C PushSubscription: endpoint, p256dh and auth keys) made with a push
-- channel's VAPID public key; a push service that answers 404 or 410 ended it, and it is deleted.
CREATE TABLE push_subscriptions (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel_id  uuid NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    endpoint    text NOT NULL CHECK (length(endpoint) BETWEEN 1 AND 2000),
    p256dh      text NOT NULL,
    auth        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT push_subscriptions_endpoint_key UNIQUE (channel_id, endpoint)
);
CREATE INDEX push_subscriptions_user_idx ON push_subscriptions (tenant_id, user_id);

-- A notification to one person's browser names the subscription it goes to; the key of what was
-- notified gains the recipient (the nil id for channels without one).
ALTER TABLE notifications ADD COLUMN recipient uuid;
ALTER TABLE notification_keys ADD COLUMN recipient uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE notification_keys DROP CONSTRAINT notification_keys_pkey;
ALTER TABLE notification_keys ADD PRIMARY KEY (tenant_id, alert_id, firing, channel_id, recipient);

-- When an escalation last notified: an alert joining its group within the policy's group interval
-- waits for the interval's end, with the others that joined.
ALTER TABLE alert_escalations ADD COLUMN fired_at timestamptz;
CREATE INDEX alert_escalations_fired_idx ON alert_escalations (tenant_id, policy_id, group_key, fired_at)
    WHERE fired_at IS NOT NULL;

-- When readings of a machine last arrived (the gateway's time), kept by the readings projection.
CREATE TABLE machine_heartbeats (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    machine_id  uuid NOT NULL,
    heard_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, machine_id)
);

-- The connectivity watchdog's open alerts: one per silent machine, until its readings come back.
CREATE TABLE connectivity_alerts (
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    machine_id    uuid NOT NULL,
    alert_id      uuid NOT NULL,
    silent_since  timestamptz NOT NULL,
    raised_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, machine_id)
);

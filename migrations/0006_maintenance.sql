-- Machines' descriptive fields and retirement; maintenance events, work orders with their history,
-- compliance sign-offs, and each tenant's settings.

ALTER TABLE machines
    ADD COLUMN tags         text[] NOT NULL DEFAULT '{}',
    ADD COLUMN site         text CHECK (length(site) BETWEEN 1 AND 200),
    ADD COLUMN description  text CHECK (length(description) <= 2000),
    ADD COLUMN status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    ADD COLUMN retired_at   timestamptz,
    ADD COLUMN updated_at   timestamptz NOT NULL DEFAULT now();
CREATE INDEX machines_tags_idx ON machines USING gin (tags);

-- What was done to a machine, when and by whom.
CREATE TABLE maintenance_events (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    machine_id    uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('inspection', 'repair', 'replacement', 'calibration',
                                                'lubrication', 'cleaning', 'other')),
    notes         text NOT NULL DEFAULT '' CHECK (length(notes) <= 10000),
    performed_at  timestamptz NOT NULL,
    performed_by  text NOT NULL,
    recorded_by   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX maintenance_events_tenant_idx ON maintenance_events (tenant_id, performed_at DESC, id);

-- open → in_progress → done | cancelled (open → cancelled too); the API enforces the transitions.
CREATE TABLE work_orders (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '',
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'done', 'cancelled')),
    assignee     uuid REFERENCES users (id) ON DELETE SET NULL,
    due_date     date,
    machine_ids  uuid[] NOT NULL DEFAULT '{}',
    alert_ids    uuid[] NOT NULL DEFAULT '{}',
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    closed_at    timestamptz
);
CREATE INDEX work_orders_tenant_idx ON work_orders (tenant_id, created_at DESC, id);

-- Every change of a work order, in order.
CREATE TABLE work_order_history (
    seq            bigserial PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    work_order_id  uuid NOT NULL REFERENCES work_orders (id) ON DELETE CASCADE,
    at             timestamptz NOT NULL DEFAULT now(),
    by             text NOT NULL,
    change         jsonb NOT NULL
);
CREATE INDEX work_order_history_idx ON work_order_history (tenant_id, work_order_id, seq);

-- Compliance sign-offs: drafts may change; once signed a row never changes again (the trigger holds that
-- even against direct SQL).
CREATE TABLE signoffs (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    machine_id  uuid REFERENCES machines (id),
    checklist   text NOT NULL CHECK (length(checklist) BETWEEN 1 AND 200),
    items       jsonb NOT NULL,
    notes       text NOT NULL DEFAULT '',
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    signed_by   text,
    signed_at   timestamptz,
    CHECK ((signed_by IS NULL) = (signed_at IS NULL))
);
CREATE INDEX signoffs_tenant_idx ON signoffs (tenant_id, created_at DESC, id);

CREATE FUNCTION haltless_signoffs_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.signed_at IS NOT NULL THEN
        RAISE EXCEPTION 'signoff % is signed and immutable', OLD.id USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER signoffs_immutable BEFORE UPDATE ON signoffs
    FOR EACH ROW EXECUTE FUNCTION haltless_signoffs_immutable();

-- A tenant's detection defaults and fleet settings, as a validated JSON document (absent = defaults).
CREATE TABLE tenant_settings (
    tenant_id   uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    settings    jsonb NOT NULL,
    updated_by  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The newest reading of each metric of a machine, by event time: one index probe per metric (a skip scan
-- over the primary key), so it costs the same whether the machine has a thousand readings or a billion.
CREATE FUNCTION haltless_latest_readings(p_tenant uuid, p_machine uuid)
RETURNS TABLE (metric text, ts timestamptz, value double precision, quality text)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE metrics(name) AS (
        (SELECT r.metric FROM readings r
         WHERE r.tenant_id = p_tenant AND r.machine_id = p_machine ORDER BY r.metric LIMIT 1)
        UNION ALL
        SELECT (SELECT r.metric FROM readings r
                WHERE r.tenant_id = p_tenant AND r.machine_id = p_machine AND r.metric > metrics.name
                ORDER BY r.metric LIMIT 1)
        FROM metrics WHERE metrics.name IS NOT NULL
    )
    SELECT l.metric, l.ts, l.value, l.quality
    FROM metrics, LATERAL (
        SELECT r.metric, r.ts, r.value, r.quality FROM readings r
        WHERE r.tenant_id = p_tenant AND r.machine_id = p_machine AND r.metric = metrics.name
        ORDER BY r.ts DESC LIMIT 1
    ) l
    WHERE metrics.name IS NOT NULL
$$;

-- Each tenant's remaining-useful-life models. A row is also the training job: `training` until the model
-- is fitted (`ready`) or training refused its data (`failed`, with the reason). The model itself (JSON) is
-- kept for activation, which publishes it to the models topic that the predictor reads.
CREATE TABLE rul_models (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    source         text NOT NULL CHECK (source IN ('upload', 'history', 'demo')),
    status         text NOT NULL CHECK (status IN ('training', 'ready', 'failed')),
    error          text,
    version        text,
    sensors        text[] NOT NULL DEFAULT '{}',
    units          integer NOT NULL,
    cycles         integer NOT NULL,
    metrics        jsonb,
    train_seconds  double precision,
    model          text,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
CREATE INDEX rul_models_tenant_idx ON rul_models (tenant_id, created_at DESC);

-- Which machines a model was activated for (names, as resolved from the names and tags asked for; empty:
-- every machine of the tenant). The newest activation of a model is in force.
CREATE TABLE rul_model_activations (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    model_id      uuid NOT NULL REFERENCES rul_models (id) ON DELETE CASCADE,
    machines      text[] NOT NULL,
    tags          text[] NOT NULL DEFAULT '{}',
    activated_by  text NOT NULL,
    activated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rul_model_activations_model_idx ON rul_model_activations (tenant_id, model_id, activated_at DESC);

-- Accounts: per-tenant limit overrides, invitations, login sessions with rotating refresh tokens.

-- NULL means "the tier's figure"; platform operators set these with `haltless tenant set-limits`.
ALTER TABLE tenants
    ADD COLUMN max_machines       integer CHECK (max_machines >= 0),
    ADD COLUMN writes_per_minute  integer CHECK (writes_per_minute > 0),
    ADD COLUMN reads_per_minute   integer CHECK (reads_per_minute > 0);

-- An invited user has no usable password until the invitation (stored as a SHA-256) is accepted.
ALTER TABLE users
    ADD COLUMN invite_hash        bytea UNIQUE,
    ADD COLUMN invite_expires_at  timestamptz,
    ADD COLUMN deactivated_at     timestamptz,
    ADD COLUMN updated_at         timestamptz NOT NULL DEFAULT now();

ALTER TABLE api_keys
    ADD COLUMN created_by  uuid REFERENCES users (id) ON DELETE SET NULL;

-- One login: a family of refresh tokens, each usable once. Reusing a spent one revokes the family.
CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text CHECK (revoked_reason IN ('logout', 'revoked', 'reuse', 'deactivated')),
    user_agent      text,
    address         text
);
CREATE INDEX sessions_user_idx ON sessions (tenant_id, user_id, created_at DESC);

CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

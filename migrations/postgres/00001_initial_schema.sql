-- +goose Up
-- The whole Gatehouse schema (DESIGN.md §4–§6). Times are stored in UTC.

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL DEFAULT '',
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    name           TEXT NOT NULL DEFAULT '',
    avatar_url     TEXT NOT NULL DEFAULT '',
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    default_org_id TEXT,
    last_login_at  TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_users_email ON users (email);

CREATE TABLE identities (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider       TEXT NOT NULL,
    subject        TEXT NOT NULL,
    email          TEXT NOT NULL DEFAULT '',
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    name           TEXT NOT NULL DEFAULT '',
    avatar_url     TEXT NOT NULL DEFAULT '',
    raw_claims     TEXT NOT NULL DEFAULT '{}',
    last_login_at  TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX idx_identities_provider_subject ON identities (provider, subject);
CREATE INDEX idx_identities_user ON identities (user_id);
CREATE INDEX idx_identities_email ON identities (email);

CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    slug       TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX idx_organizations_slug ON organizations (slug);

CREATE TABLE organization_external_ids (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    provider        TEXT NOT NULL,
    external_id     TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX idx_org_external_ids_provider_external ON organization_external_ids (provider, external_id);
CREATE INDEX idx_org_external_ids_org ON organization_external_ids (organization_id);

CREATE TABLE roles (
    id              TEXT PRIMARY KEY,
    organization_id TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    level           INTEGER NOT NULL DEFAULT 0,
    system          BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX idx_roles_org_name ON roles (organization_id, name) WHERE organization_id IS NOT NULL;
CREATE UNIQUE INDEX idx_roles_system_name ON roles (name) WHERE organization_id IS NULL;

CREATE TABLE permissions (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX idx_permissions_name ON permissions (name);

CREATE TABLE role_permissions (
    role_id       TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission_id TEXT NOT NULL REFERENCES permissions (id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission_id)
);
CREATE INDEX idx_role_permissions_permission ON role_permissions (permission_id);

CREATE TABLE memberships (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    role_id         TEXT NOT NULL REFERENCES roles (id),
    status          TEXT NOT NULL DEFAULT 'active',
    source          TEXT NOT NULL DEFAULT 'manual',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX idx_memberships_user_org ON memberships (user_id, organization_id);
CREATE INDEX idx_memberships_org ON memberships (organization_id);

CREATE TABLE invitations (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email           TEXT NOT NULL,
    role_id         TEXT NOT NULL REFERENCES roles (id),
    invited_by      TEXT REFERENCES users (id) ON DELETE SET NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    expires_at      TIMESTAMPTZ NOT NULL,
    accepted_at     TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_invitations_email_status ON invitations (email, status);
CREATE INDEX idx_invitations_org ON invitations (organization_id);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id     TEXT NOT NULL,
    provider      TEXT NOT NULL DEFAULT '',
    active_org_id TEXT REFERENCES organizations (id) ON DELETE SET NULL,
    scope         TEXT NOT NULL DEFAULT '',
    amr           TEXT NOT NULL DEFAULT '',
    auth_time     TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    revoke_reason TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_sessions_user ON sessions (user_id);
CREATE INDEX idx_sessions_expires ON sessions (expires_at);

CREATE TABLE refresh_tokens (
    id           TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    rotated_at   TIMESTAMPTZ,
    replaced_by  TEXT,
    revoked_at   TIMESTAMPTZ
);
CREATE UNIQUE INDEX idx_refresh_tokens_hash ON refresh_tokens (token_hash);
CREATE INDEX idx_refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE authorization_codes (
    id                    TEXT PRIMARY KEY,
    code_hash             TEXT NOT NULL,
    client_id             TEXT NOT NULL,
    user_id               TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id            TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    redirect_uri          TEXT NOT NULL,
    scope                 TEXT NOT NULL DEFAULT '',
    nonce                 TEXT NOT NULL DEFAULT '',
    code_challenge        TEXT NOT NULL DEFAULT '',
    code_challenge_method TEXT NOT NULL DEFAULT '',
    created_at            TIMESTAMPTZ NOT NULL,
    expires_at            TIMESTAMPTZ NOT NULL,
    used_at               TIMESTAMPTZ
);
CREATE UNIQUE INDEX idx_authorization_codes_hash ON authorization_codes (code_hash);
CREATE INDEX idx_authorization_codes_expires ON authorization_codes (expires_at);

CREATE TABLE signing_keys (
    id                    TEXT PRIMARY KEY,
    algorithm             TEXT NOT NULL,
    public_jwk            TEXT NOT NULL,
    private_key_encrypted BYTEA NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    activates_at          TIMESTAMPTZ NOT NULL,
    retired_at            TIMESTAMPTZ,
    delete_after          TIMESTAMPTZ
);
CREATE INDEX idx_signing_keys_activates ON signing_keys (activates_at);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL DEFAULT '',
    prefix          TEXT NOT NULL,
    key_hash        TEXT NOT NULL,
    permissions     TEXT NOT NULL DEFAULT '[]',
    created_by      TEXT REFERENCES users (id) ON DELETE SET NULL,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at      TIMESTAMPTZ,
    last_used_at    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX idx_api_keys_prefix ON api_keys (prefix);
CREATE UNIQUE INDEX idx_api_keys_hash ON api_keys (key_hash);
CREATE INDEX idx_api_keys_org ON api_keys (organization_id);

CREATE TABLE audit_events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at     TIMESTAMPTZ NOT NULL,
    type            TEXT NOT NULL,
    outcome         TEXT NOT NULL DEFAULT 'success',
    actor_user_id   TEXT,
    subject_user_id TEXT,
    organization_id TEXT,
    client_id       TEXT NOT NULL DEFAULT '',
    provider        TEXT NOT NULL DEFAULT '',
    ip              TEXT NOT NULL DEFAULT '',
    request_id      TEXT NOT NULL DEFAULT '',
    details         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX idx_audit_events_occurred ON audit_events (occurred_at);
CREATE INDEX idx_audit_events_type ON audit_events (type, occurred_at);
CREATE INDEX idx_audit_events_actor ON audit_events (actor_user_id, occurred_at);
CREATE INDEX idx_audit_events_subject ON audit_events (subject_user_id, occurred_at);
CREATE INDEX idx_audit_events_org ON audit_events (organization_id, occurred_at);

CREATE TABLE saml_replays (
    provider     TEXT NOT NULL,
    assertion_id TEXT NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, assertion_id)
);
CREATE INDEX idx_saml_replays_expires ON saml_replays (expires_at);

-- +goose Down
DROP TABLE saml_replays;
DROP TABLE audit_events;
DROP TABLE api_keys;
DROP TABLE signing_keys;
DROP TABLE authorization_codes;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE invitations;
DROP TABLE memberships;
DROP TABLE role_permissions;
DROP TABLE permissions;
DROP TABLE roles;
DROP TABLE organization_external_ids;
DROP TABLE organizations;
DROP TABLE identities;
DROP TABLE users;

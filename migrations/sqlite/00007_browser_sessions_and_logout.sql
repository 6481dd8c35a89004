-- +goose Up
-- Single sign-on and logout that reaches every app (issue 14).
--
-- A browser session is Gatehouse's own sign-in in one browser: the cookie
-- holds a random token stored here only as its SHA-256 (token_hash). The
-- app sessions (sessions) opened under it name it, so a logout ends them
-- all. Idle expiry is last_used_at plus GATEHOUSE_SSO_IDLE_TTL, checked at
-- read time; expires_at is the absolute expiry.
CREATE TABLE browser_sessions (
    id              TEXT PRIMARY KEY,
    token_hash      TEXT NOT NULL UNIQUE,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    identity_id     TEXT REFERENCES identities (id) ON DELETE SET NULL,
    provider        TEXT NOT NULL,
    auth_time       DATETIME NOT NULL,
    amr             TEXT NOT NULL DEFAULT '',
    acr             TEXT NOT NULL DEFAULT '',
    upstream_logout TEXT NOT NULL DEFAULT '',
    ip              TEXT NOT NULL DEFAULT '',
    user_agent      TEXT NOT NULL DEFAULT '',
    created_at      DATETIME NOT NULL,
    last_used_at    DATETIME NOT NULL,
    expires_at      DATETIME NOT NULL,
    revoked_at      DATETIME,
    revoke_reason   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX idx_browser_sessions_user ON browser_sessions (user_id);
CREATE INDEX idx_browser_sessions_expires ON browser_sessions (expires_at);

ALTER TABLE sessions ADD COLUMN browser_session_id TEXT REFERENCES browser_sessions (id) ON DELETE SET NULL;
ALTER TABLE sessions ADD COLUMN acr TEXT NOT NULL DEFAULT '';
CREATE INDEX idx_sessions_browser_session ON sessions (browser_session_id);

-- The back-channel logout outbox: one row per app session that ended
-- before its expiry (a session already expired was over for its client),
-- written by the trigger below in the transaction that ends it, so no code
-- path (logout, admin revocation, refresh-token reuse, a disabled user)
-- can forget to notify and a restart loses nothing. The dispatcher drops
-- the rows of clients without a backchannel_logout_uri, delivers the
-- others and deletes them, or reschedules them with backoff
-- (next_attempt_at doubles as the lease of the replica delivering it).
CREATE TABLE logout_deliveries (
    session_id      TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    created_at      DATETIME NOT NULL,
    next_attempt_at DATETIME NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX idx_logout_deliveries_due ON logout_deliveries (next_attempt_at);

-- +goose StatementBegin
CREATE TRIGGER session_revoked_queues_logout
AFTER UPDATE OF revoked_at ON sessions
WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL AND NEW.expires_at > NEW.revoked_at
BEGIN
    INSERT INTO logout_deliveries (session_id, client_id, user_id, reason, created_at, next_attempt_at)
    VALUES (NEW.id, NEW.client_id, NEW.user_id, NEW.revoke_reason, NEW.revoked_at, NEW.revoked_at)
    ON CONFLICT (session_id) DO NOTHING;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER session_revoked_queues_logout;
DROP TABLE logout_deliveries;
DROP INDEX idx_sessions_browser_session;
ALTER TABLE sessions DROP COLUMN acr;
ALTER TABLE sessions DROP COLUMN browser_session_id;
DROP TABLE browser_sessions;

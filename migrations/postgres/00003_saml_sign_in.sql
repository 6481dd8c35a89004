-- +goose Up
-- SAML sign-in (issue 7).
--
-- pending_logins: server-side login state for providers whose upstream
-- answers with a cross-site form POST (SAML's ACS). The browser's
-- SameSite=Lax login cookie does not arrive with that POST, so the ACS finds
-- the sign-in here by the SHA-256 of its state (the RelayState), records the
-- identity it accepted, and the browser finishes at the callback URL, where
-- the cookie proves it is the browser that started the sign-in.
CREATE TABLE pending_logins (
    id          TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    client_id   TEXT NOT NULL DEFAULT '',
    saved       TEXT NOT NULL DEFAULT '',
    identity    TEXT NOT NULL DEFAULT '',
    answered_at TIMESTAMPTZ,
    consumed_at TIMESTAMPTZ,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_pending_logins_expires ON pending_logins (expires_at);

-- provider_secrets: key material a provider generated for itself (a SAML
-- service provider's key and certificate), encrypted under a key derived
-- from GATEHOUSE_SECRET_KEY.
CREATE TABLE provider_secrets (
    provider        TEXT NOT NULL,
    name            TEXT NOT NULL,
    value_encrypted BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, name)
);

-- +goose Down
DROP TABLE provider_secrets;
DROP TABLE pending_logins;

-- +goose Up
-- Device authorization grant (RFC 8628): one row per authorization a
-- device asked for at /auth/device. The device code and the user code
-- are stored only as hashes (SHA-256 of the device code, an HMAC of the
-- normalized user code) and looked up by them. status moves from
-- pending to approved or denied at /device, and from approved to
-- redeemed once, when the device's poll takes the tokens.
CREATE TABLE device_authorizations (
    id               TEXT PRIMARY KEY,
    device_code_hash TEXT NOT NULL,
    user_code_hash   TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    scope            TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL,
    interval_seconds INTEGER NOT NULL,
    last_polled_at   TIMESTAMPTZ,
    user_id          TEXT REFERENCES users (id) ON DELETE CASCADE,
    session_id       TEXT REFERENCES sessions (id) ON DELETE CASCADE,
    ip               TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    decided_at       TIMESTAMPTZ
);
CREATE UNIQUE INDEX idx_device_authorizations_device_code ON device_authorizations (device_code_hash);
CREATE UNIQUE INDEX idx_device_authorizations_user_code ON device_authorizations (user_code_hash);
CREATE INDEX idx_device_authorizations_expires ON device_authorizations (expires_at);

-- +goose Down
DROP TABLE device_authorizations;

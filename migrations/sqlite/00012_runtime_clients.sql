-- +goose Up
-- Clients managed at runtime (issue 17): created through the admin API,
-- the console (gatehouse clients) or Dynamic Client Registration, next to
-- the YAML file's clients, which stay authoritative. settings is the
-- client as a JSON object with the YAML file's field names, without its
-- secret; secrets are SHA-256 hex digests of generated random secrets.
-- previous_secret_hash stays valid until previous_secret_expires_at (a
-- rotation's overlap). registration_token_hash is the RFC 7592
-- registration access token of a client registered through DCR.
CREATE TABLE clients (
    id                         TEXT PRIMARY KEY,
    settings                   TEXT NOT NULL,
    secret_hash                TEXT NOT NULL DEFAULT '',
    previous_secret_hash       TEXT NOT NULL DEFAULT '',
    previous_secret_expires_at DATETIME,
    registration_token_hash    TEXT NOT NULL DEFAULT '',
    origin                     TEXT NOT NULL DEFAULT 'admin',
    created_at                 DATETIME NOT NULL,
    updated_at                 DATETIME NOT NULL
);

-- One row whose version every change of clients increments in the same
-- transaction: each replica polls it and reloads the clients when it
-- moved (works the same on SQLite and PostgreSQL).
CREATE TABLE clients_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO clients_version (id, version) VALUES (1, 0);

-- +goose Down
DROP TABLE clients_version;
DROP TABLE clients;

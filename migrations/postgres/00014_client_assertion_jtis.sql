-- +goose Up
-- The jti of every client assertion (RFC 7523 private_key_jwt) accepted,
-- kept until the assertion has expired: a second use of the same jti by
-- the same client is a replay. The primary key decides between
-- concurrent uses (insert-if-absent: the first insert wins). The jti is
-- stored as its SHA-256 (hex), so the table holds nothing a client sent
-- verbatim.
CREATE TABLE client_assertion_jtis (
    client_id  TEXT NOT NULL,
    jti_hash   TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (client_id, jti_hash)
);
CREATE INDEX idx_client_assertion_jtis_expires ON client_assertion_jtis (expires_at);

-- +goose Down
DROP TABLE client_assertion_jtis;

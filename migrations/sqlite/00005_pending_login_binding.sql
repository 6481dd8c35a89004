-- +goose Up
-- The SAML ACS binds an answer to the browser that started the sign-in
-- before it validates it, and completes the sign-in in that same request
-- (issue 12): no identity is stored for a later request to collect, and a
-- pending login is consumed by its first answer, accepted or not.
ALTER TABLE pending_logins DROP COLUMN identity;
ALTER TABLE pending_logins DROP COLUMN answered_at;

-- +goose Down
ALTER TABLE pending_logins ADD COLUMN identity TEXT NOT NULL DEFAULT '';
ALTER TABLE pending_logins ADD COLUMN answered_at DATETIME;

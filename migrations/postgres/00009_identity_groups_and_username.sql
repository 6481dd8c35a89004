-- +goose Up
-- Groups and usernames downstream (issue 15).
--
-- An identity keeps what its upstream said at the last sign-in about the
-- person's groups (upstream_groups: a JSON array of typed strings such as
-- "github:team:acme/eng", "oidc:group:Engineering", "saml:group:admins")
-- and their username there (username: the GitHub login, the OIDC
-- preferred_username claim, the SAML attribute mapped to it). Tokens read
-- them from the identity the session came through (sessions.identity_id),
-- filtered per client, as the `groups` and `preferred_username` claims.
ALTER TABLE identities ADD COLUMN upstream_groups TEXT NOT NULL DEFAULT '[]';
ALTER TABLE identities ADD COLUMN username TEXT NOT NULL DEFAULT '';

-- The identity an app session came through: the sign-in's, or the
-- browser session's for single sign-on. NULL once the identity is
-- unlinked (its sessions end then anyway), or for sessions no identity
-- opened. Sessions opened before this column name the identity of their
-- user at their provider that signed in last.
ALTER TABLE sessions ADD COLUMN identity_id TEXT REFERENCES identities (id) ON DELETE SET NULL;
UPDATE sessions SET identity_id = (
    SELECT i.id FROM identities i
    WHERE i.user_id = sessions.user_id AND i.provider = sessions.provider
    ORDER BY i.last_login_at IS NULL, i.last_login_at DESC, i.id LIMIT 1);

-- +goose Down
ALTER TABLE sessions DROP COLUMN identity_id;
ALTER TABLE identities DROP COLUMN username;
ALTER TABLE identities DROP COLUMN upstream_groups;

-- +goose Up
-- gatehouse: compatible-with-previous-release
-- Sessions and browser sessions are looked up by the identity they came
-- through: an upstream re-check that finds the person gone ends every
-- one of them (EndIdentitySessions), a refresh refused by
-- max_session_age or recheck_max_staleness ends the identity's browser
-- sessions, and ON DELETE SET NULL visits them when an identity is
-- unlinked or its user deleted. Without these indexes each of those
-- reads the whole table.
CREATE INDEX idx_sessions_identity ON sessions (identity_id);
CREATE INDEX idx_browser_sessions_identity ON browser_sessions (identity_id);

-- +goose Down
DROP INDEX idx_browser_sessions_identity;
DROP INDEX idx_sessions_identity;

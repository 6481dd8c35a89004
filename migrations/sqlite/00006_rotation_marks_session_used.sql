-- +goose Up
-- A refresh rotates in one statement (issue 16): SQLite has no
-- data-modifying CTE, so one INSERT … ON CONFLICT DO UPDATE inserts the
-- successor and marks the old token rotated, and this trigger marks the
-- session used in the same statement (models.Store.RotateRefreshToken).
-- PostgreSQL updates the session in the rotation's CTE instead.
-- +goose StatementBegin
CREATE TRIGGER refresh_token_rotated_marks_session_used
AFTER UPDATE OF rotated_at ON refresh_tokens
WHEN OLD.rotated_at IS NULL AND NEW.rotated_at IS NOT NULL
BEGIN
    UPDATE sessions SET last_used_at = NEW.rotated_at WHERE id = NEW.session_id;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER refresh_token_rotated_marks_session_used;

-- +goose Up
-- A refresh rotates in one statement (issue 16). On PostgreSQL that
-- statement's CTE marks the session used itself, taking the session's row
-- lock first (models.Store.RotateRefreshToken); the SQLite migration of
-- this number adds a trigger for it. Nothing to change here: the number
-- keeps both dialects at the same version.
SELECT 1;

-- +goose Down
SELECT 1;

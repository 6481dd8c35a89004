-- +goose Up
-- Deleting a user (an erasure request, issue 15). Their sessions end
-- before their rows go, so the back-channel logout outbox holds one row
-- per session, with the user id that the logout token's sub must carry
-- (logout_deliveries has no foreign key: the rows outlive the session).
-- The audit events of those deliveries must not name the deleted person
-- again: audit_subject, when set, is the reference they carry instead
-- (the deleted user's pseudonym).
ALTER TABLE logout_deliveries ADD COLUMN audit_subject TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE logout_deliveries DROP COLUMN audit_subject;

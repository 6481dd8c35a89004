-- +goose Up
-- Upstream re-checks (issue 15).
--
-- What re-checking an identity at its upstream needs, one row per
-- identity, written at every sign-in through it: saved is what the
-- provider kind keeps for a re-check (an upstream refresh token, a GitHub
-- access token), sealed with a key derived from GATEHOUSE_SECRET_KEY and
-- bound to the identity id, base64url; '' when the kind keeps nothing.
-- checked_at is the last time the upstream vouched for the person (the
-- sign-in, or a re-check that succeeded); a refresh re-checks when it is
-- older than the provider's recheck_interval, and SAML sessions end once
-- it is older than max_session_age. claimed_at is when a re-check was
-- last started: one conditional UPDATE claims it, so concurrent refreshes
-- call the upstream once (a rotating upstream refresh token is spent
-- once), and it spaces out attempts while the upstream is unreachable.
CREATE TABLE upstream_checks (
    identity_id TEXT PRIMARY KEY REFERENCES identities (id) ON DELETE CASCADE,
    saved       TEXT NOT NULL DEFAULT '',
    checked_at  TIMESTAMPTZ NOT NULL,
    claimed_at  TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE upstream_checks;

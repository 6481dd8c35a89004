-- +goose Up
-- org_sync_bindings: the organization a literal org_sync target (a rule's
-- `org: finance`) stands for, by id. Sync records it when it first creates
-- or finds the organization for that target, and from then on resolves the
-- target by the binding, whatever slugs organizations have later: renaming
-- another organization to `finance` cannot capture the rule's members. An
-- organization's deletion removes its bindings; the next sign-in that needs
-- the target finds or creates an organization again.
CREATE TABLE org_sync_bindings (
    target          TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_org_sync_bindings_org ON org_sync_bindings (organization_id);

-- +goose Down
DROP TABLE org_sync_bindings;

-- +goose Up
-- Provisioning (DESIGN.md §4, §6): the seeded system roles every
-- organization shares, and at most one pending invitation per email and
-- organization. The ids are fixed so code and docs can name them.

INSERT INTO permissions (id, name, description, created_at) VALUES
    ('perm-all',       '*',       'Every action on every resource', strftime('%Y-%m-%d %H:%M:%S+00:00', 'now')),
    ('perm-all-read',  '*:read',  'Read every resource', strftime('%Y-%m-%d %H:%M:%S+00:00', 'now')),
    ('perm-all-write', '*:write', 'Create and change every resource', strftime('%Y-%m-%d %H:%M:%S+00:00', 'now'));

-- Levels order the roles: an actor never grants a role above their own,
-- and owner-only actions require the owner level (100).
INSERT INTO roles (id, organization_id, name, description, level, system, created_at, updated_at) VALUES
    ('role-owner',  NULL, 'owner',  'Full control, including owner-only actions', 100, TRUE, strftime('%Y-%m-%d %H:%M:%S+00:00', 'now'), strftime('%Y-%m-%d %H:%M:%S+00:00', 'now')),
    ('role-admin',  NULL, 'admin',  'Full control except owner-only actions',      80, TRUE, strftime('%Y-%m-%d %H:%M:%S+00:00', 'now'), strftime('%Y-%m-%d %H:%M:%S+00:00', 'now')),
    ('role-member', NULL, 'member', 'Read and write every resource',               50, TRUE, strftime('%Y-%m-%d %H:%M:%S+00:00', 'now'), strftime('%Y-%m-%d %H:%M:%S+00:00', 'now')),
    ('role-viewer', NULL, 'viewer', 'Read every resource',                         10, TRUE, strftime('%Y-%m-%d %H:%M:%S+00:00', 'now'), strftime('%Y-%m-%d %H:%M:%S+00:00', 'now'));

INSERT INTO role_permissions (role_id, permission_id) VALUES
    ('role-owner',  'perm-all'),
    ('role-admin',  'perm-all'),
    ('role-member', 'perm-all-read'),
    ('role-member', 'perm-all-write'),
    ('role-viewer', 'perm-all-read');

-- Inviting the same address to the same organization twice is a conflict
-- while the first invitation is pending.
CREATE UNIQUE INDEX idx_invitations_pending ON invitations (organization_id, email) WHERE status = 'pending';

-- +goose Down
-- Fails, deleting nothing, while memberships or invitations still use a
-- system role: roll those back first.
DROP INDEX idx_invitations_pending;
DELETE FROM role_permissions WHERE role_id IN ('role-owner', 'role-admin', 'role-member', 'role-viewer');
DELETE FROM roles WHERE id IN ('role-owner', 'role-admin', 'role-member', 'role-viewer');
DELETE FROM permissions WHERE id IN ('perm-all', 'perm-all-read', 'perm-all-write')
    AND NOT EXISTS (SELECT 1 FROM role_permissions WHERE role_permissions.permission_id = permissions.id);

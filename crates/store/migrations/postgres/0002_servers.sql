-- Servers an organization registers, and the tool access rules that decide who may use their
-- tools (S6, S7). Every row belongs to one organization and goes with it.

CREATE TABLE servers (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    transport TEXT NOT NULL CHECK (transport IN ('stdio', 'streamable_http')),
    command TEXT,
    -- A JSON array of strings.
    args TEXT,
    working_dir TEXT,
    url TEXT,
    exposure TEXT NOT NULL CHECK (exposure IN ('prefixed', 'unprefixed')),
    -- Flags are 0 or 1 (BIGINT, like times) so both backends and sqlx's Any driver agree.
    enabled BIGINT NOT NULL CHECK (enabled IN (0, 1)),
    -- 1: the admin allows this remote server on a private or loopback address.
    internal BIGINT NOT NULL CHECK (internal IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- Bumped on every update, so the data plane can tell a changed server from a stale one.
    revision BIGINT NOT NULL,
    UNIQUE (org_id, name),
    CHECK ((transport = 'stdio' AND command IS NOT NULL AND args IS NOT NULL AND url IS NULL)
        OR (transport = 'streamable_http' AND url IS NOT NULL AND command IS NULL AND args IS NULL
            AND working_dir IS NULL))
);

CREATE TABLE tool_rules (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('role', 'member')),
    role TEXT CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    user_id TEXT,
    effect TEXT NOT NULL CHECK (effect IN ('allow', 'deny')),
    pattern TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- A member's rules go with the membership (a role rule has no user, so this does not apply).
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE,
    CHECK ((subject_kind = 'role' AND role IS NOT NULL AND user_id IS NULL)
        OR (subject_kind = 'member' AND user_id IS NOT NULL AND role IS NULL))
);

-- One rule per subject, effect and pattern; NULLs would otherwise compare as distinct.
CREATE UNIQUE INDEX tool_rules_unique
    ON tool_rules (org_id, subject_kind, COALESCE(role, ''), COALESCE(user_id, ''), effect, pattern);

CREATE INDEX tool_rules_by_member ON tool_rules (org_id, user_id);

-- Nothing is allowed by default (auth::tool_access): existing organizations get the same
-- `allow *` rules for owners, admins and members that new ones get in create_organization.
INSERT INTO tool_rules (id, org_id, subject_kind, role, user_id, effect, pattern, created_at)
SELECT gen_random_uuid()::text, o.id, 'role', r.role, NULL, 'allow', '*', CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)
FROM organizations o
CROSS JOIN (SELECT 'owner' AS role UNION ALL SELECT 'admin' UNION ALL SELECT 'member') r;

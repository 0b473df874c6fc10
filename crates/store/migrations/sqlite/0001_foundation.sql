-- Foundation: organizations, users, memberships, personal access tokens, sealed variables, and the
-- deployment's key-check record. Times are Unix seconds (BIGINT) so both backends agree.

CREATE TABLE deployment_meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);

CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE access_tokens (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    lookup_key TEXT NOT NULL UNIQUE,
    token_digest BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT,
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);

CREATE INDEX access_tokens_by_member ON access_tokens (org_id, user_id);

CREATE TABLE variables (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('string', 'password')),
    value_text TEXT,
    value_sealed BLOB,
    -- The last-4 preview of a long password, sealed on its own so listing never opens the secret.
    preview_sealed BLOB,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, name),
    CHECK ((kind = 'string' AND value_text IS NOT NULL AND value_sealed IS NULL AND preview_sealed IS NULL)
        OR (kind = 'password' AND value_sealed IS NOT NULL AND value_text IS NULL))
);

-- Server secrets (issue 5): variables belong to one server and go with it (S19). A variable is a
-- string (readable), a password or a file (both sealed, S9); a file also names the path the
-- server sees it at. Servers gain `env` (stdio) and `headers` (remote): JSON objects whose values
-- may reference the server's variables as ${NAME}.

-- Organization-wide variables were only ever written through the store library (no API or
-- command wrote them) and have no server to belong to. Refuse to migrate rather than drop one.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM variables) THEN
        RAISE EXCEPTION 'migration 0004: organization-wide variables exist; they have no server to move to. Export and delete them first.';
    END IF;
END
$$;
DROP TABLE variables;

CREATE TABLE variables (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    server_id TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('string', 'password', 'file')),
    value_text TEXT,
    value_sealed BYTEA,
    -- The last-4 preview of a long password, sealed on its own so listing never opens the secret.
    preview_sealed BYTEA,
    -- Where a file variable appears inside the server's sandbox.
    file_path TEXT,
    size_bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (server_id, name),
    CHECK ((kind = 'string' AND value_text IS NOT NULL AND value_sealed IS NULL AND preview_sealed IS NULL AND file_path IS NULL)
        OR (kind = 'password' AND value_sealed IS NOT NULL AND value_text IS NULL AND file_path IS NULL)
        OR (kind = 'file' AND value_sealed IS NOT NULL AND value_text IS NULL AND preview_sealed IS NULL AND file_path IS NOT NULL))
);

CREATE INDEX variables_by_org ON variables (org_id);
-- Two files of one server can't share a path.
CREATE UNIQUE INDEX variables_file_paths ON variables (server_id, file_path) WHERE file_path IS NOT NULL;

-- JSON objects of name → template; NULL on servers saved before this migration means none.
ALTER TABLE servers ADD COLUMN env TEXT;
ALTER TABLE servers ADD COLUMN headers TEXT;

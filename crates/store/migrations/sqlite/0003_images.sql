-- Install images (issue 4): a stdio server may name the package its program comes from, which
-- the gateway installs once, per generation, into a read-only image every session mounts.

ALTER TABLE servers ADD COLUMN package_kind TEXT CHECK (package_kind IN ('npm', 'pypi', 'binary'));
-- A kind needs a spec and the reverse; only stdio servers have one. (SQLite cannot add a table
-- constraint, so this column constraint names the other columns.)
ALTER TABLE servers ADD COLUMN package_spec TEXT
    CHECK ((package_kind IS NULL) = (package_spec IS NULL) AND (package_spec IS NULL OR transport = 'stdio'));
-- Goes up with every install requested for the server (created with a package, package changed,
-- reinstall) and never down, so an image directory is never reused by another install.
ALTER TABLE servers ADD COLUMN image_generation BIGINT NOT NULL DEFAULT 0;

-- The state of a server's current image generation; one row while the server has a package.
CREATE TABLE server_images (
    server_id TEXT PRIMARY KEY REFERENCES servers (id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    generation BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'installing', 'ready', 'failed')),
    phase TEXT NOT NULL,
    progress BIGINT NOT NULL CHECK (progress BETWEEN 0 AND 100),
    -- Why an install failed, in the installer's words; installs are given no secret.
    error TEXT,
    size_bytes BIGINT,
    installed_at BIGINT,
    updated_at BIGINT NOT NULL,
    CHECK ((state = 'ready') = (installed_at IS NOT NULL AND size_bytes IS NOT NULL)),
    CHECK (state = 'failed' OR error IS NULL)
);

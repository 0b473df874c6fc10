-- The operator's log buffer (issue 6): lines a server's sandbox produced (its stderr, already
-- redacted; sandbox lifecycle; egress decisions), per server and session, bounded in bytes by the
-- gateway's per-batch trim and kept for a retention period by its periodic sweep (S6, S19, S20).

CREATE TABLE server_logs (
    -- Increases with every line written (an identity: never reused after a trim), so it is
    -- the paging cursor and the order lines are shown in.
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    server_id TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    -- The session's short, non-secret tag (never the Mcp-Session-Id itself).
    session TEXT NOT NULL,
    stream TEXT NOT NULL CHECK (stream IN ('stderr', 'sandbox', 'egress', 'gateway')),
    level TEXT NOT NULL CHECK (level IN ('error', 'warn', 'info', 'debug')),
    text TEXT NOT NULL,
    -- Unix milliseconds.
    at BIGINT NOT NULL,
    -- What the line counts against the byte bounds.
    bytes BIGINT NOT NULL CHECK (bytes >= 0)
);
CREATE INDEX server_logs_by_server ON server_logs (org_id, server_id, id);
CREATE INDEX server_logs_by_session ON server_logs (org_id, server_id, session, id);
CREATE INDEX server_logs_by_time ON server_logs (at);

-- The audit trail (S6): one row per tools/call, resources/read and prompts/get the data plane
-- answered, allowed or not. Rows go with their organization (S20) and with their server (S19);
-- a call that named no known server has no server_id. Argument values and result content are
-- never stored; a resource URI is kept without its query and fragment.
-- (Versions 4 to 6 are taken by other changes; sqlx applies whichever versions are missing.)

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    server_id TEXT REFERENCES servers (id) ON DELETE CASCADE,
    -- The member's user id; no foreign key, so the trail outlives a membership.
    user_id TEXT NOT NULL,
    -- The session's short log tag, never its id (which the client holds as a bearer secret).
    session TEXT NOT NULL,
    method TEXT NOT NULL CHECK (method IN ('tools/call', 'resources/read', 'prompts/get')),
    -- The tool or prompt name as called, or the resource URI.
    target TEXT NOT NULL,
    outcome TEXT NOT NULL
        CHECK (outcome IN ('ok', 'error', 'denied', 'unknown', 'failed', 'cancelled')),
    -- The gateway's own words, never the server's.
    reason TEXT,
    latency_us BIGINT NOT NULL,
    request_bytes BIGINT NOT NULL,
    response_bytes BIGINT NOT NULL,
    -- Unix milliseconds.
    at BIGINT NOT NULL
);

-- Newest first per organization, and each filter of the API.
CREATE INDEX audit_events_by_time ON audit_events (org_id, at, id);
CREATE INDEX audit_events_by_member ON audit_events (org_id, user_id, at);
CREATE INDEX audit_events_by_target ON audit_events (org_id, target, at);
CREATE INDEX audit_events_by_outcome ON audit_events (org_id, outcome, at);
-- Server ids are unique across organizations: this serves the filter and the cascade.
CREATE INDEX audit_events_by_server ON audit_events (server_id, at);
-- The retention sweep, across organizations.
CREATE INDEX audit_events_by_age ON audit_events (at);

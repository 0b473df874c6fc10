-- Remote servers protected by OAuth, where the gateway is the OAuth client (S6, S9, S19, S20).
-- Every secret column is sealed by the vault with its own row as associated data, and listed in
-- store::sealed::SEALED_COLUMNS so key rotation reaches it.

-- One row per remote server an admin put behind OAuth: how credentials are held (one for the
-- organization, or one per member), what the admin configured, and what discovery and client
-- registration found at the authorization server.
CREATE TABLE server_oauth (
    server_id TEXT PRIMARY KEY REFERENCES servers (id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    mode TEXT NOT NULL CHECK (mode IN ('organization', 'member')),
    -- Space-separated scopes to ask for; empty: let the authorization server decide.
    scopes TEXT NOT NULL,
    -- A client the admin registered by hand; its secret is write-only.
    admin_client_id TEXT,
    admin_client_secret_sealed BLOB,
    -- What discovery found (RFC 9728, RFC 8414); NULL until the first authorization.
    issuer TEXT,
    authorization_endpoint TEXT,
    token_endpoint TEXT,
    revocation_endpoint TEXT,
    -- 1: the authorization server promised the RFC 9207 `iss` parameter on every answer.
    iss_parameter_supported BIGINT NOT NULL CHECK (iss_parameter_supported IN (0, 1)),
    -- The client identity in use with that issuer: the admin's, a client ID metadata document
    -- URL, or one from dynamic registration (RFC 7591), whose secret is sealed.
    client_id TEXT,
    client_secret_sealed BLOB,
    redirect_uri TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK (admin_client_secret_sealed IS NULL OR admin_client_id IS NOT NULL)
);

CREATE INDEX server_oauth_by_org ON server_oauth (org_id);

-- Tokens the gateway holds: the organization's (user_id NULL) or one member's. A member's go
-- with their membership; everyone's go with the server's OAuth configuration.
CREATE TABLE upstream_oauth_tokens (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    server_id TEXT NOT NULL REFERENCES server_oauth (server_id) ON DELETE CASCADE,
    user_id TEXT,
    access_token_sealed BLOB NOT NULL,
    refresh_token_sealed BLOB,
    -- Unix seconds; NULL when the authorization server gave no lifetime.
    expires_at BIGINT,
    scope TEXT,
    -- The server URL the tokens were issued for (RFC 8707): never sent anywhere else, so an
    -- admin changing the server's URL cannot redirect members' tokens to another host.
    resource TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);

-- One connection per server and member (or for the organization); NULLs would compare distinct.
CREATE UNIQUE INDEX upstream_oauth_tokens_unique
    ON upstream_oauth_tokens (server_id, COALESCE(user_id, ''));

CREATE INDEX upstream_oauth_tokens_by_member ON upstream_oauth_tokens (org_id, user_id);

-- Authorizations under way: keyed by the SHA-256 of their `state`, so the database never holds a
-- usable state value; single use, expiring after ten minutes.
CREATE TABLE upstream_oauth_pending (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    server_id TEXT NOT NULL REFERENCES server_oauth (server_id) ON DELETE CASCADE,
    -- Who started it; the tokens land on this member, or on the organization when for_member is 0.
    user_id TEXT NOT NULL,
    for_member BIGINT NOT NULL CHECK (for_member IN (0, 1)),
    verifier_sealed BLOB NOT NULL,
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    -- The server URL the code is requested for.
    resource TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);

// A local OAuth-protected MCP resource and its authorization server, for the upstream OAuth
// tests (crates/mcp-hero/tests/upstream_oauth.rs). The authorization server is the npm package
// oauth2-mock-server (pinned in scripts/tools.sh); this script adds what it lacks:
//
// - RFC 8414 metadata with `registration_endpoint` and
//   `authorization_response_iss_parameter_supported`, and the RFC 9207 `iss` on every redirect;
// - RFC 7591 dynamic registration (`POST /register`) and RFC 7009 revocation that remembers;
// - refresh tokens that are really checked: single use (rotated), refused once revoked;
// - a protected resource at `/mcp` answering 401 with `resource_metadata` (RFC 9728) unless the
//   bearer token is one this server issued, unexpired and unrevoked; then it answers the token's
//   subject, so tests can tell whose token the gateway sent;
// - `POST /control` to script the next authorization (subject, denial, wrong issuer) and token
//   lifetimes, and `GET /control/log` for what the gateway sent (never used outside tests).
//
// Usage: node oauth-upstream.mjs <dir holding node_modules/oauth2-mock-server>
// Prints one JSON line {"port": N} once listening on 127.0.0.1.

import http from "node:http";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { pathToFileURL } from "node:url";

const packageDir = process.argv[2];
if (!packageDir) {
  console.error("usage: oauth-upstream.mjs <dir holding node_modules/oauth2-mock-server>");
  process.exit(2);
}
const entry = path.join(packageDir, "node_modules", "oauth2-mock-server", "dist", "index.mjs");
const { OAuth2Issuer, OAuth2Service } = await import(pathToFileURL(entry).href);

const issuer = new OAuth2Issuer();
await issuer.keys.generate("RS256");
const service = new OAuth2Service(issuer);

const control = { subject: "johndoe", deny: false, wrongIssuer: false, expiresIn: 3600 };
const log = { authorize: [], token: [], registrations: 0, revoked: 0 };
const codeSubject = new Map();
const refreshTokens = new Map(); // refresh token -> subject
const accessTokens = new Map(); // access token -> { sub, exp }
const revoked = new Set();
const now = () => Math.floor(Date.now() / 1000);

service.on("beforeAuthorizeRedirect", (redirect, req) => {
  log.authorize.push({
    client_id: req.query.client_id,
    resource: req.query.resource,
    scope: req.query.scope,
    code_challenge_method: req.query.code_challenge_method,
    redirect_uri: req.query.redirect_uri,
  });
  const url = redirect.url;
  const code = url.searchParams.get("code");
  if (control.deny) {
    control.deny = false;
    url.searchParams.delete("code");
    url.searchParams.set("error", "access_denied");
    url.searchParams.set("error_description", "The user said no");
  } else if (code) {
    codeSubject.set(code, control.subject);
  }
  url.searchParams.set("iss", control.wrongIssuer ? "http://evil.example" : issuer.url);
  control.wrongIssuer = false;
});

service.on("beforeTokenSigning", (token, req) => {
  const body = req.body ?? {};
  const subject =
    body.grant_type === "refresh_token"
      ? refreshTokens.get(body.refresh_token)
      : codeSubject.get(body.code);
  token.payload.sub = subject ?? "unknown";
  token.payload.jti = randomUUID();
  token.payload.exp = token.payload.iat + control.expiresIn;
});

service.on("beforeResponse", (response, req) => {
  const body = req.body ?? {};
  log.token.push({ grant_type: body.grant_type, resource: body.resource, client_id: body.client_id });
  let subject;
  if (body.grant_type === "refresh_token") {
    subject = refreshTokens.get(body.refresh_token);
    if (subject === undefined || revoked.has(body.refresh_token)) {
      response.statusCode = 400;
      response.body = { error: "invalid_grant", error_description: "unknown or revoked refresh token" };
      return;
    }
    refreshTokens.delete(body.refresh_token);
  } else if (body.grant_type === "authorization_code") {
    subject = codeSubject.get(body.code);
    codeSubject.delete(body.code);
    if (subject === undefined) {
      response.statusCode = 400;
      response.body = { error: "invalid_grant", error_description: "unknown code" };
      return;
    }
  } else {
    return;
  }
  response.body.expires_in = control.expiresIn;
  delete response.body.id_token;
  accessTokens.set(response.body.access_token, { sub: subject, exp: now() + control.expiresIn });
  refreshTokens.set(response.body.refresh_token, subject);
});

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function json(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

function authorizationServerMetadata() {
  const base = issuer.url;
  return {
    issuer: base,
    authorization_endpoint: `${base}/authorize`,
    token_endpoint: `${base}/token`,
    registration_endpoint: `${base}/register`,
    revocation_endpoint: `${base}/revoke`,
    response_types_supported: ["code"],
    grant_types_supported: ["authorization_code", "refresh_token"],
    token_endpoint_auth_methods_supported: ["none"],
    code_challenge_methods_supported: ["S256"],
    authorization_response_iss_parameter_supported: true,
  };
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, issuer.url);
  const base = issuer.url;
  try {
    if (req.method === "GET" && url.pathname === "/.well-known/oauth-authorization-server") {
      return json(res, 200, authorizationServerMetadata());
    }
    if (req.method === "GET" && url.pathname === "/.well-known/oauth-protected-resource/mcp") {
      return json(res, 200, {
        resource: `${base}/mcp`,
        authorization_servers: [base],
        scopes_supported: ["mcp:tools"],
      });
    }
    if (url.pathname === "/mcp") {
      const header = req.headers.authorization ?? "";
      const token = header.startsWith("Bearer ") ? header.slice(7) : undefined;
      const known = token && accessTokens.get(token);
      if (!known || known.exp <= now() || revoked.has(token)) {
        res.writeHead(401, {
          "www-authenticate": `Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"`,
        });
        return res.end();
      }
      return answerMcp(req, res, known.sub);
    }
    if (req.method === "POST" && url.pathname === "/register") {
      const body = JSON.parse(await readBody(req));
      log.registrations += 1;
      return json(res, 201, {
        client_id: `client-${randomUUID()}`,
        client_id_issued_at: now(),
        redirect_uris: body.redirect_uris,
        grant_types: body.grant_types,
        token_endpoint_auth_method: "none",
      });
    }
    if (req.method === "POST" && url.pathname === "/revoke") {
      const token = new URLSearchParams(await readBody(req)).get("token");
      if (token) {
        revoked.add(token);
        log.revoked += 1;
      }
      res.writeHead(200);
      return res.end();
    }
    if (req.method === "POST" && url.pathname === "/control") {
      Object.assign(control, JSON.parse(await readBody(req)));
      return json(res, 200, control);
    }
    if (req.method === "GET" && url.pathname === "/control/log") {
      return json(res, 200, log);
    }
    if (req.method === "POST" && url.pathname === "/control/expire") {
      // Expires every access token now, as if time had passed.
      for (const value of accessTokens.values()) value.exp = now() - 1;
      return json(res, 200, {});
    }
    return service.requestHandler(req, res);
  } catch (error) {
    return json(res, 500, { error: "server_error", error_description: String(error) });
  }
});

// The protected resource as a minimal MCP server (Streamable HTTP, JSON answers) with one tool,
// `whoami`, answering with the subject of the token that called it; a POST without a body
// answers `{sub}` so tests can ask whose a token is.
async function answerMcp(req, res, sub) {
  if (req.method === "GET") {
    res.writeHead(405);
    return res.end();
  }
  if (req.method === "DELETE") {
    res.writeHead(200);
    return res.end();
  }
  const body = await readBody(req);
  if (!body) return json(res, 200, { sub });
  const message = JSON.parse(body);
  if (message.id === undefined) {
    res.writeHead(202);
    return res.end();
  }
  const reply = (result) => json(res, 200, { jsonrpc: "2.0", id: message.id, result });
  switch (message.method) {
    case "initialize":
      return reply({
        protocolVersion: "2025-06-18",
        capabilities: { tools: {} },
        serverInfo: { name: "oauth-upstream", version: "1.0.0" },
      });
    case "tools/list":
      return reply({ tools: [{ name: "whoami", inputSchema: { type: "object" } }] });
    case "tools/call":
      return reply({ content: [{ type: "text", text: sub }] });
    default:
      return json(res, 200, {
        jsonrpc: "2.0",
        id: message.id,
        error: { code: -32601, message: "method not found" },
      });
  }
}

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  issuer.url = `http://127.0.0.1:${port}`;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));

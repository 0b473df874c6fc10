// A loopback reverse proxy that adds `Authorization: Bearer $MCP_HERO_TOKEN` to every request.
//
// The conformance CLI cannot send a bearer token, and the gateway never serves MCP without one,
// so conformance runs go through this proxy. Everything else passes unchanged, streamed both
// ways (SSE included): method, path, headers (Host and Origin too, so the DNS rebinding checks
// still see the client's values) and body.
//
// Usage: MCP_HERO_TOKEN=... node bearer-proxy.mjs LISTEN_PORT UPSTREAM_PORT
// Prints "proxy listening on PORT" once it accepts connections.
import http from "node:http";

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
const token = process.env.MCP_HERO_TOKEN;
if (!token || !listenPort || !upstreamPort) {
  console.error("usage: MCP_HERO_TOKEN=... node bearer-proxy.mjs LISTEN_PORT UPSTREAM_PORT");
  process.exit(2);
}

const agent = new http.Agent({ keepAlive: true });
const server = http.createServer((request, response) => {
  const headers = { ...request.headers, authorization: `Bearer ${token}` };
  const upstream = http.request(
    { host: "127.0.0.1", port: upstreamPort, method: request.method, path: request.url, headers, agent },
    (answer) => {
      response.writeHead(answer.statusCode, answer.headers);
      answer.pipe(response);
    },
  );
  upstream.on("error", (error) => {
    if (!response.headersSent) {
      response.writeHead(502, { "content-type": "text/plain" });
    }
    response.end(`proxy: ${error.message}`);
  });
  response.on("close", () => upstream.destroy());
  request.pipe(upstream);
});
server.listen(listenPort, "127.0.0.1", () => console.log(`proxy listening on ${listenPort}`));

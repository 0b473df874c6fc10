#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance, active suite and
# --suite all) THROUGH the gateway: a fresh store, one organization whose only server is the
# fixture over stdio, unprefixed, and the suite as the organization's MCP client.
#
# The suite cannot send a bearer token, so it talks to a loopback proxy that adds one
# (scripts/lib/bearer-proxy.mjs); the gateway's authentication stays on. Ends with one line
# "N passed, M failed" counting scenarios over both runs; exits non-zero if any failed.
#
# The fixture runs in the real sandbox (bubblewrap, seccomp, cgroups, a pooled uid), one per
# session, as in production. Without root or bubblewrap (a developer machine) it falls back to
# --insecure-no-sandbox and says so; under CI=true that is an error.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

cargo build --locked -p mcp-hero -p mcp-fixture
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
gateway="$target_dir/debug/mcp-hero"
fixture="$target_dir/debug/mcp-fixture"

# shellcheck source=scripts/tools.sh
source "$root/scripts/tools.sh"
# shellcheck source=scripts/lib/conformance-count.sh
source "$root/scripts/lib/conformance-count.sh"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until FILE has a line matching PATTERN while PID lives; fails naming WHAT otherwise.
wait_for_line() {
    local file="$1" pattern="$2" pid="$3" what="$4"
    for _ in $(seq 200); do
        grep -q "$pattern" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "conformance: $what did not start:" >&2
    cat "$file" >&2
    return 1
}

export MCP_HERO_ROOT_SECRET
MCP_HERO_ROOT_SECRET=$("$gateway" secret generate)
data="$work/data"
"$gateway" admin --data-dir "$data" org create --slug conformance --owner conformance@example.com >/dev/null
token=$("$gateway" admin --data-dir "$data" token create --org conformance \
    --email conformance@example.com --name conformance 2>/dev/null | head -n 1)

gateway_port=$(free_port)
# The suite opens a session per scenario and never ends them; a generous cap keeps them all.
cat >"$work/config.toml" <<TOML
[mcp]
max_sessions_per_member = 1000

[sandbox]
# The fixture lives in the build directory: make it visible (read-only) inside sandboxes.
ro_binds = ["$fixture"]
grace = 1

[sandbox.caps]
global = 1000
per_org = 1000
per_server = 1000
TOML
sandbox_flags=()
if [[ $(id -u) -ne 0 || ! -x /usr/bin/bwrap ]]; then
    if [[ ${CI:-} == true ]]; then
        echo "conformance: CI=true but the sandbox can't run here (needs root and /usr/bin/bwrap)" >&2
        exit 1
    fi
    echo "conformance: no root or no bubblewrap: running the fixture WITHOUT a sandbox (--insecure-no-sandbox)" >&2
    sandbox_flags=(--insecure-no-sandbox)
fi
MCP_HERO_LOG=info "$gateway" serve --data-dir "$data" --config "$work/config.toml" \
    --listen "127.0.0.1:$gateway_port" "${sandbox_flags[@]}" >"$work/gateway.log" 2>&1 &
pids+=($!)
wait_for_line "$work/gateway.log" "listening on" "${pids[-1]}" "the gateway"

server=$(printf '{"name":"fixture","exposure":"unprefixed","transport":{"type":"stdio","command":"%s","args":["stdio"]}}' "$fixture")
# The token goes to curl in a file, not on its command line, where `ps` would show it.
(umask 077 && printf 'Authorization: Bearer %s\n' "$token" >"$work/auth.header")
status=$(curl -s -o "$work/server.json" -w '%{http_code}' \
    -H @"$work/auth.header" -H 'Content-Type: application/json' \
    -d "$server" "http://127.0.0.1:$gateway_port/api/v1/servers")
if [ "$status" != 201 ]; then
    echo "conformance: registering the fixture failed (HTTP $status): $(cat "$work/server.json")" >&2
    exit 1
fi

proxy_port=$(free_port)
MCP_HERO_TOKEN="$token" "$MCP_HERO_NODE" "$root/scripts/lib/bearer-proxy.mjs" "$proxy_port" "$gateway_port" \
    >"$work/proxy.log" 2>&1 &
pids+=($!)
wait_for_line "$work/proxy.log" "proxy listening" "${pids[-1]}" "the bearer proxy"

url="http://localhost:$proxy_port/o/conformance/mcp"
echo "gateway on 127.0.0.1:$gateway_port, conformance client via $url"
log_dir="${CONFORMANCE_LOG_DIR:-$work/logs}"
conformance_run_suites "$url" "$log_dir" active all
if [ "$CONFORMANCE_FAILED" -gt 0 ]; then
    grep -h -B2 -A6 "FAILURE\|✗" "$log_dir"/*.log >&2 || true
    echo "--- gateway log (last 40 lines) ---" >&2
    tail -n 40 "$work/gateway.log" >&2
fi

echo "$CONFORMANCE_PASSED passed, $CONFORMANCE_FAILED failed"
[ "$CONFORMANCE_FAILED" -eq 0 ]

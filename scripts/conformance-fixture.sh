#!/usr/bin/env bash
# Runs the MCP conformance suite (active suite, then --suite all) directly against the
# fixture server's Streamable HTTP mode. Ends with one line "N passed, M failed" counting
# scenarios over both runs; exits non-zero if any scenario failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

cargo build --locked -p mcp-fixture
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
fixture="$target_dir/debug/mcp-fixture"

# shellcheck source=scripts/tools.sh
source "$root/scripts/tools.sh"
# shellcheck source=scripts/lib/conformance-count.sh
source "$root/scripts/lib/conformance-count.sh"

work=$(mktemp -d)
fixture_pid=""
cleanup() {
    if [ -n "$fixture_pid" ]; then
        kill "$fixture_pid" 2>/dev/null || true
        wait "$fixture_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$fixture" http --listen 127.0.0.1:0 >"$work/fixture.out" 2>"$work/fixture.err" &
fixture_pid=$!
url=""
for _ in $(seq 100); do
    url=$(sed -n 's/^listening on //p' "$work/fixture.out")
    [ -n "$url" ] && break
    kill -0 "$fixture_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$url" ]; then
    echo "conformance-fixture: the fixture did not start" >&2
    cat "$work/fixture.err" >&2
    exit 1
fi
echo "fixture listening on $url"

# Logs are kept under the (git-ignored) target directory for a look after a failure.
log_dir="${CONFORMANCE_LOG_DIR:-$target_dir/conformance-fixture}"
conformance_run_suites "$url" "$log_dir" active all

echo "$CONFORMANCE_PASSED passed, $CONFORMANCE_FAILED failed"
[ "$CONFORMANCE_FAILED" -eq 0 ]

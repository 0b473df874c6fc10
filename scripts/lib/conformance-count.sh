#!/usr/bin/env bash
# Scenario counting for runs of the MCP conformance CLI (`conformance server ...`), shared by
# scripts/conformance-fixture.sh and the gateway's conformance script. Source it.
#
# The CLI (0.1.16) ends a suite run with a block like:
#   === SUMMARY ===
#   ✓ server-initialize: 1 passed, 0 failed
#   ✗ tools-call-sampling: 0 passed, 1 failed
#   Total: 39 passed, 0 failed
# A scenario passes when its line starts with ✓. A run that died before its summary counts as
# one failed scenario, so a crash can never look like a pass.

# conformance_count_scenarios LOG: prints "PASSED FAILED" for one run's output.
conformance_count_scenarios() {
    local log="$1"
    awk '
        /^=== SUMMARY ===/ { summary = 1; next }
        summary && /^✓ [^ ]+: / { passed++ }
        summary && /^✗ [^ ]+: / { failed++ }
        END {
            if (!summary) { passed = 0; failed = 1 }
            printf "%d %d\n", passed, failed
        }
    ' "$log"
}

# conformance_failed_scenarios LOG: prints the names of the failed scenarios, one a line.
conformance_failed_scenarios() {
    local log="$1"
    awk '
        /^=== SUMMARY ===/ { summary = 1; next }
        summary && /^✗ [^ ]+: / { name = $2; sub(/:$/, "", name); print name }
    ' "$log"
}

# conformance_run_suites URL LOG_DIR [SUITE...]: runs each suite (default: active, then all)
# against URL with $MCP_HERO_CONFORMANCE, saves LOG_DIR/SUITE.log, prints one line per suite,
# and sets CONFORMANCE_PASSED and CONFORMANCE_FAILED to the totals over all runs.
conformance_run_suites() {
    local url="$1" log_dir="$2"
    shift 2
    local suites=("$@")
    [ ${#suites[@]} -gt 0 ] || suites=(active all)
    CONFORMANCE_PASSED=0
    CONFORMANCE_FAILED=0
    local suite log counts passed failed
    mkdir -p "$log_dir"
    for suite in "${suites[@]}"; do
        log="$log_dir/$suite.log"
        # The CLI exits non-zero on a failed check; the summary, not the exit code, is counted.
        # shellcheck disable=SC2086 # MCP_HERO_CONFORMANCE is "node path/to/index.js".
        $MCP_HERO_CONFORMANCE server --url "$url" --suite "$suite" >"$log" 2>&1 || true
        counts=$(conformance_count_scenarios "$log")
        passed=${counts% *}
        failed=${counts#* }
        echo "suite $suite: $passed scenarios passed, $failed failed (log: $log)"
        if [ "$failed" -gt 0 ]; then
            conformance_failed_scenarios "$log" | sed 's/^/  failed: /'
        fi
        CONFORMANCE_PASSED=$((CONFORMANCE_PASSED + passed))
        CONFORMANCE_FAILED=$((CONFORMANCE_FAILED + failed))
    done
}

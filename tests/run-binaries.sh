#!/usr/bin/env bash
# Runs the workspace's compiled test binaries two at a time, each from its package's
# directory as `cargo test` would, and prints each binary's output whole once it ends.
# Most of the suite's time is spent waiting on child processes, servers, databases and
# Flink, so two binaries at once fit two cores; binaries named in $SOLO (timing-sensitive
# ones: health probes, a browser) run afterwards, alone (once $QUIET_BEFORE_SOLO, if
# set, has ended). Usage:
#   tests/run-binaries.sh LIST RESULTS
# LIST: lines "manifest-path executable" (from `cargo test --no-run --message-format=json`);
# RESULTS: a file each binary's output is appended to, for the suite's closing count.
set -uo pipefail
list=$1
results=$2
lanes=${SHOAL_TEST_LANES:-2}
SOLO=${SOLO:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO=${CARGO:-$(command -v cargo)}

# One binary: run it, then print its output under a lock so outputs do not interleave.
one() {
  local manifest=$1 exe=$2 name log rc start
  name=$(basename "$exe")
  log="$work/$name.log"
  start=$(date +%s)
  (cd "$(dirname "$manifest")" && "$exe") >"$log" 2>&1
  rc=$?
  {
    flock 9
    printf '\n     Running %s (%ss, exit %s)\n' "$name" "$(($(date +%s) - start))" "$rc"
    cat "$log"
    cat "$log" >>"$results"
    [ "$rc" = 0 ] || echo "$name" >>"$work/failed"
  } 9>"$work/print.lock"
}
export -f one
export work results

solo_re='^$'
[ -n "$SOLO" ] && solo_re="/($(echo "$SOLO" | tr ' ' '|'))-[0-9a-f]+\$"
# Heaviest first, so the two lanes end close together.
grep -Ev "$solo_re" "$list" | xargs -P "$lanes" -L 1 bash -c 'one "$0" "$1"'
# The solo part waits for $QUIET_BEFORE_SOLO (a background job's pid, the
# instruction-count guard) to end: sharing a core with it made a master miss its lease.
if [ -n "${QUIET_BEFORE_SOLO:-}" ]; then
  while kill -0 "$QUIET_BEFORE_SOLO" 2>/dev/null; do sleep 1; done
fi
grep -E "$solo_re" "$list" | grep -v '^$' | while read -r manifest exe; do one "$manifest" "$exe"; done
if [ -s "$work/failed" ]; then
  echo "failed test binaries: $(tr '\n' ' ' <"$work/failed")" >&2
  exit 1
fi

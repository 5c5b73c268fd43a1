#!/usr/bin/env bash
# Instruction-count guard for the engine's hot path (issue 15): instructions per task of
# a noop fan-out, counted by callgrind — repeatable on these noisy machines, unlike
# wall-clock. Two fan-outs (100 and 300 tasks) are counted and their difference divided
# by 200, so start-up and the plugin's compilation cancel out. Fails when the figure
# grows more than MARGIN_PCT (default 5; two runs here differed by 1.3%) over the
# committed baseline.
#
#   tests/perf/instructions.sh            check (tests/run.sh runs this)
#   tests/perf/instructions.sh --update   write the current figure as the baseline
#
# The baseline is for the debug build tests/run.sh makes (dependencies at opt-level 3,
# see Cargo.toml) with the pinned toolchain; SHOAL_BIN names another binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${SHOAL_BIN:-target/debug/shoal}
baseline_file=tests/perf/fanout-instructions-per-task
margin=${MARGIN_PCT:-5}

count() {
  local dir out
  dir=$(mktemp -d)
  out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$bin" --data-dir "$dir" bench fanout --tasks "$1" 2>&1 >/dev/null)
  rm -rf "$dir"
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' <<<"$out"
}

small=$(count 100)
large=$(count 300)
[ -n "$small" ] && [ -n "$large" ] || { echo "callgrind printed no count" >&2; exit 1; }
per_task=$(((large - small) / 200))
echo "fan-out: $per_task instructions per task (callgrind: $small for 100 tasks, $large for 300)"

if [ "${1:-}" = --update ]; then
  echo "$per_task" >"$baseline_file"
  echo "baseline written to $baseline_file"
  exit 0
fi
baseline=$(cat "$baseline_file")
limit=$((baseline + baseline * margin / 100))
echo "baseline $baseline, limit $limit (+$margin%)"
if [ "$per_task" -gt "$limit" ]; then
  echo "the hot path grew: $per_task instructions per task > $limit; find the cause (callgrind_annotate), or if it is wanted, run tests/perf/instructions.sh --update and say why in the commit" >&2
  exit 1
fi

#!/usr/bin/env bash
# The distributed-mode soak: N rounds (default 20) of the mixed workflow on a real
# cluster (2 masters, 3 workers, PostgreSQL on 127.0.0.1:5432), each with one kill or
# pause at a random moment. Prints one line per round and the failover times at the end.
#
#   tests/soak.sh 20
#   SHOAL_SOAK_SEED=1234 tests/soak.sh 5     # replay a seed a failing run printed
#   SHOAL_SOAK_ONLY=master-kill tests/soak.sh 12   # one disruption every round
#                                             # (worker-kill, master-kill, master-pause)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-20}"
cargo build --workspace --bins
SHOAL_SOAK_ROUNDS="$rounds" cargo test -p shoal-tests --test cluster soak -- --ignored --nocapture 2>&1 |
  grep -E '^(soak|round|test |thread|assertion)|panicked'

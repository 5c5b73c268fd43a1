#!/usr/bin/env bash
# The whole test suite, as the README and CI run it. Needs only rustup: the toolchain
# and the wasm32-wasip2 target come from rust-toolchain.toml (the build adds the target
# if rustup did not), and every plugin is compiled to wasm by the build itself.
set -euo pipefail
cd "$(dirname "$0")/.."

results=$(mktemp)
trap 'rm -f "$results"' EXIT
step() { printf '\n==> %s\n' "$*"; }
# Run a test command, keeping its output for the summary.
tests() { "$@" 2>&1 | tee -a "$results"; }

pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

# PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth). Tests create a fresh
# database per run and drop it. Under CI a missing server is started (installed if
# need be); on a laptop without one, the PostgreSQL half is skipped, loudly.
ensure_postgres() {
  pg_up && return 0
  if [ "${CI:-}" != true ]; then
    return 1
  fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    step "installing PostgreSQL"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/' "$hba"
    done
  fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  for _ in $(seq 1 30); do pg_up && return 0; sleep 1; done
  echo "PostgreSQL did not come up on 127.0.0.1:5432; under CI this is a failure" >&2
  exit 1
}

# bubblewrap confines every process a task starts; the sandbox tests need it, and the
# tenant and cgroup checks need root. Installed here when this machine lets us.
ensure_bubblewrap() {
  command -v bwrap >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing bubblewrap (the process sandbox)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) || true
  fi
  command -v bwrap >/dev/null 2>&1 && return 0
  if [ "${CI:-}" = true ]; then
    echo "bubblewrap (bwrap) is missing and could not be installed; under CI this is a failure" >&2
    exit 1
  fi
  printf '\n%s\n%s\n%s\n\n' \
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" \
    "!! bubblewrap (bwrap) is not installed: the sandbox tests WILL FAIL; install it" \
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
}
ensure_bubblewrap

pg_skipped=""
if ! ensure_postgres; then
  pg_skipped="yes"
  printf '\n%s\n%s\n%s\n\n' \
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" \
    "!! SKIPPING the PostgreSQL half of the store tests: nothing on 127.0.0.1:5432" \
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
fi

step "formatting"
cargo fmt --all -- --check
(cd plugins && cargo fmt --all -- --check)

step "building shoal (compiles the built-in plugins to wasm)"
cargo build --workspace --bins

step "host crates and end-to-end tests"
tests cargo test --workspace

step "plugin and SDK unit tests (native)"
(cd plugins && tests cargo test --workspace --target-dir ../target/plugins-native)
# The SDK is the plugins' dependency, not a member of their workspace: test it on its own.
(cd sdk && tests cargo test --target-dir ../target/plugins-native)

if [ -n "$pg_skipped" ]; then
  echo "!! PostgreSQL tests were SKIPPED (no server on 127.0.0.1:5432); SQLite ran." >&2
fi
# One closing line for the whole suite.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "\ntotal: %d passed, %d failed\n", p, f }' "$results"

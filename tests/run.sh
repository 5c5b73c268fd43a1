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

step "formatting"
cargo fmt --all -- --check
(cd plugins && cargo fmt --all -- --check)

step "building shoal (compiles the built-in plugins to wasm)"
cargo build --workspace --bins

step "host crates and end-to-end tests"
tests cargo test --workspace

step "plugin and SDK unit tests (native)"
(cd plugins && tests cargo test --workspace --target-dir ../target/plugins-native)

# One closing line for the whole suite.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "\ntotal: %d passed, %d failed\n", p, f }' "$results"

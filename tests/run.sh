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

mysql_up() { (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null; }

# MariaDB on 127.0.0.1:3306 (root, empty password) for the SQL task's MySQL-family
# datasource tests, which create a database each and drop it. Under CI a missing server
# is started (installed if need be); on a laptop without one those tests are skipped,
# loudly.
ensure_mariadb() {
  mysql_up && return 0
  if [ "${CI:-}" != true ]; then
    return 1
  fi
  if ! command -v mariadbd >/dev/null 2>&1 && ! command -v mysqld >/dev/null 2>&1; then
    step "installing MariaDB"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
  fi
  (service mariadb start || service mysql start) >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do mysql_up && break; sleep 1; done
  if ! mysql_up; then
    echo "MariaDB did not come up on 127.0.0.1:3306; under CI this is a failure" >&2
    exit 1
  fi
  # A fresh Debian install lets root in by unix socket only; the tests connect by TCP.
  mysql -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('')" 2>/dev/null || true
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

mysql_skipped=""
if ! ensure_mariadb; then
  mysql_skipped="yes"
  printf '\n%s\n%s\n%s\n\n' \
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" \
    "!! SKIPPING the MariaDB datasource tests: nothing on 127.0.0.1:3306" \
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
fi

# schemathesis (Python, from PyPI) fuzzes the REST API against its own OpenAPI document
# in tests/e2e/openapi_fuzz.rs. Installed once, pinned, into a venv under target/; the
# test finds its `st` through SHOAL_SCHEMATHESIS. Under CI a failed install is a
# failure; on a laptop without Python the fuzz test is skipped, loudly.
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
  local venv="$PWD/target/venv-schemathesis"
  local installed
  installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)
  if [ "$installed" != "$SCHEMATHESIS_VERSION" ]; then
    if ! command -v python3 >/dev/null 2>&1 && [ "${CI:-}" = true ] && command -v apt-get >/dev/null 2>&1; then
      step "installing Python (for schemathesis)"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null) || true
    fi
    if command -v python3 >/dev/null 2>&1; then
      step "installing schemathesis $SCHEMATHESIS_VERSION into target/venv-schemathesis"
      rm -rf "$venv"
      if python3 -m venv "$venv" &&
        "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"; then
        installed=$SCHEMATHESIS_VERSION
      fi
    fi
  fi
  if [ "$installed" = "$SCHEMATHESIS_VERSION" ] && [ -x "$venv/bin/st" ]; then
    export SHOAL_SCHEMATHESIS="$venv/bin/st"
    return 0
  fi
  if [ "${CI:-}" = true ]; then
    echo "schemathesis $SCHEMATHESIS_VERSION could not be installed into $venv; under CI this is a failure" >&2
    exit 1
  fi
  printf '\n%s\n%s\n%s\n\n' \
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" \
    "!! SKIPPING the schemathesis run against the OpenAPI document: no Python 3 venv + pip here" \
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
}
ensure_schemathesis

# The official Python MCP SDK (PyPI `mcp`) drives Shoal's MCP server in
# tests/e2e/proxy/mcp.rs, as an agent nobody here wrote. Same rules as schemathesis.
MCP_SDK_VERSION=2.3.0
ensure_mcp_sdk() {
  local venv="$PWD/target/venv-mcp"
  local installed
  installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null || true)
  if [ "$installed" != "$MCP_SDK_VERSION" ] && command -v python3 >/dev/null 2>&1; then
    step "installing the MCP Python SDK $MCP_SDK_VERSION into target/venv-mcp"
    rm -rf "$venv"
    if python3 -m venv "$venv" &&
      "$venv/bin/pip" install -q --disable-pip-version-check "mcp==$MCP_SDK_VERSION"; then
      installed=$MCP_SDK_VERSION
    fi
  fi
  if [ "$installed" = "$MCP_SDK_VERSION" ]; then
    export SHOAL_MCP_PYTHON="$venv/bin/python"
    return 0
  fi
  if [ "${CI:-}" = true ]; then
    echo "the MCP Python SDK $MCP_SDK_VERSION could not be installed into $venv; under CI this is a failure" >&2
    exit 1
  fi
  printf '\n%s\n%s\n%s\n\n' \
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" \
    "!! SKIPPING the MCP client tests: no Python 3 venv + pip here" \
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
}
ensure_mcp_sdk

# A real Flink cluster (tests/flink/cluster.sh): Flink from PyPI into a cached venv, the
# test jobs compiled with javac, one JobManager and one TaskManager on loopback for the
# whole run, stopped at exit. Under CI a missing Java is installed; without Java or
# Python on a laptop the Flink tests are skipped, loudly.
source tests/flink/cluster.sh
trap 'flink_stop; rm -f "$results"' EXIT
flink_skipped=""
ensure_flink() {
  if [ "${CI:-}" = true ] && command -v apt-get >/dev/null 2>&1; then
    if ! command -v javac >/dev/null 2>&1; then
      step "installing a JDK (for the Flink tests)"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jdk-headless >/dev/null) || true
    fi
    if ! python3 -m venv --help >/dev/null 2>&1; then
      step "installing Python's venv (for Flink from PyPI)"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null) || true
    fi
  fi
  step "starting a Flink cluster on loopback"
  flink_install && flink_jobs && flink_start
}
if ! ensure_flink; then
  if [ "${CI:-}" = true ]; then
    echo "the Flink cluster could not be installed or started; under CI this is a failure" >&2
    exit 1
  fi
  flink_skipped="yes"
  unset SHOAL_FLINK_URL
  printf '\n%s\n%s\n%s\n\n' \
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" \
    "!! SKIPPING the Flink and Flink CDC tests: no Java / Python venv to run Flink here" \
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
fi

# The web UI (ui/): its built assets are committed (ui/dist) and embedded in the binary,
# so building Shoal needs no Node. Here the sources are rebuilt from the lockfile and
# must give exactly what is committed; then the browser tests (tests/e2e/ui.rs) drive
# Debian's Chromium through playwright-core. Under CI missing Node or Chromium are
# installed; on a laptop without them the UI checks are skipped, loudly.
ui_skipped=""
ensure_ui() {
  if [ "${CI:-}" = true ] && command -v apt-get >/dev/null 2>&1; then
    if ! command -v npm >/dev/null 2>&1; then
      step "installing Node.js and npm (for the web UI)"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null) || true
    fi
    if ! command -v chromium >/dev/null 2>&1; then
      step "installing Chromium (for the browser tests)"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || true
    fi
  fi
  command -v npm >/dev/null 2>&1 || return 1
  step "web UI: npm ci, rebuild ui/dist from the lockfile, compare with the committed build"
  (cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build >/dev/null) || return 1
  if [ -n "$(git status --porcelain -- ui/dist)" ]; then
    git status --short -- ui/dist >&2
    echo "ui/dist differs from a build of ui/ from its lockfile: run 'npm ci && npm run build' in ui/ and commit ui/dist" >&2
    exit 1
  fi
  command -v chromium >/dev/null 2>&1 || return 1
  export SHOAL_CHROMIUM
  SHOAL_CHROMIUM=$(command -v chromium)
}
if ! ensure_ui; then
  if [ "${CI:-}" = true ]; then
    echo "Node.js/npm or Chromium could not be installed, or the UI build failed; under CI this is a failure" >&2
    exit 1
  fi
  ui_skipped="yes"
  printf '\n%s\n%s\n%s\n\n' \
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" \
    "!! SKIPPING the web UI rebuild check and/or browser tests: no npm or Chromium here" \
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
fi

step "formatting"
cargo fmt --all -- --check
(cd plugins && cargo fmt --all -- --check)

step "architecture: the master side does not link wasmtime"
for crate in shoal-protocol shoal-master shoal-scheduler shoal-api shoal-api-types shoal-rpc shoal-proxy shoal-mcp; do
  if cargo tree -p "$crate" -e normal --prefix none | grep -q '^wasmtime '; then
    echo "$crate links wasmtime: only the runtime, the TaskEngine and the nodes that run tasks may" >&2
    exit 1
  fi
done

step "building shoal (compiles the built-in plugins to wasm)"
cargo build --workspace --bins

step "compiling the host crates' and end-to-end tests"
binaries=$(mktemp)
cargo test --workspace --no-run --message-format=json-render-diagnostics |
  sed -n -E 's/.*"manifest_path":"([^"]*)".*"executable":"([^"]*)".*/\1 \2/p' >"$binaries"
# The longest first, so the two lanes end close together.
heavy='/(authz|cli|engine|flink|openapi_fuzz|server|scheduler|workflows|sql_python|registry)-[0-9a-f]+$'
{ grep -E "$heavy" "$binaries"; grep -Ev "$heavy" "$binaries"; } >"$binaries.sorted"

# The hot path's instruction count against its committed baseline (callgrind counts
# instructions, so it is stable where wall-clock is not, and a loaded machine does not
# change it): it runs on one core beside the tests and is checked after them.
step "instruction-count guard (tests/perf/instructions.sh), in the background"
if ! command -v valgrind >/dev/null 2>&1 && [ "${CI:-}" = true ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null) || true
fi
guard_log=$(mktemp)
guard_pid=""
if command -v valgrind >/dev/null 2>&1; then
  tests/perf/instructions.sh >"$guard_log" 2>&1 &
  guard_pid=$!
elif [ "${CI:-}" = true ]; then
  echo "valgrind is missing and could not be installed; under CI this is a failure" >&2
  exit 1
else
  echo "!! SKIPPING the instruction-count guard: no valgrind here" >&2
fi

# Two test binaries at a time (they mostly wait on processes, servers and databases);
# those whose tests time health probes, failovers or a browser run alone afterwards.
step "host crates and end-to-end tests"
suite_failed=""
SOLO="cluster proxy ui pressure" QUIET_BEFORE_SOLO="$guard_pid" tests/run-binaries.sh "$binaries.sorted" "$results" || suite_failed=1
rm -f "$binaries" "$binaries.sorted"
tests cargo test --workspace --doc

if [ -n "$guard_pid" ]; then
  step "instruction-count guard: result"
  guard_rc=0
  wait "$guard_pid" || guard_rc=$?
  cat "$guard_log"
  [ "$guard_rc" = 0 ] || exit "$guard_rc"
fi
[ -z "$suite_failed" ] || { echo "some test binaries failed (listed above)" >&2; exit 1; }

step "plugin and SDK unit tests (native)"
(cd plugins && tests cargo test --workspace --target-dir ../target/plugins-native)
# The SDK is the plugins' dependency, not a member of their workspace: test it on its own.
(cd sdk && tests cargo test --target-dir ../target/plugins-native)

if [ -n "$pg_skipped" ]; then
  echo "!! PostgreSQL tests were SKIPPED (no server on 127.0.0.1:5432); SQLite ran." >&2
fi
if [ -n "$mysql_skipped" ]; then
  echo "!! MariaDB datasource tests were SKIPPED (no server on 127.0.0.1:3306)." >&2
fi
if [ -n "$ui_skipped" ]; then
  echo "!! The web UI rebuild check and/or browser tests were SKIPPED (no npm or Chromium)." >&2
fi
if [ -n "$flink_skipped" ]; then
  echo "!! Flink and Flink CDC tests were SKIPPED (no Java / Python to run a Flink cluster)." >&2
fi
# One closing line for the whole suite.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "\ntotal: %d passed, %d failed\n", p, f }' "$results"

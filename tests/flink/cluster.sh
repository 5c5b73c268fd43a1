# shellcheck shell=bash
# A real Apache Flink cluster for Shoal's tests, on loopback only.
#
# Sourced by tests/run.sh (set -euo pipefail is fine); run from the repository root, since
# everything lives under $PWD/target. It defines:
#
#   flink_install  Flink 2.3.0 from PyPI (apache-flink --no-deps + apache-flink-libraries) in
#                  a cached venv, target/venv-flink; exports FLINK_HOME (the pyflink folder).
#                  Returns non-zero when java/javac/jar or python3 is missing or pip fails; the
#                  caller decides (skip loudly on a laptop, fail under CI).
#   flink_jobs     Compiles tests/flink/jobs/ against Flink's lib/ into two jars in
#                  target/flink-jobs/: shoal-test-job.jar (shoal.testjob.TestJob) and
#                  flink-cdc-dist-standin.jar (org.apache.flink.cdc.cli.CliExecutor). Only
#                  rebuilds when a source is newer than a jar.
#   flink_start    Starts one JobManager and one TaskManager (4 slots) as child processes,
#                  with config, logs, temp files, checkpoints and savepoints in a fresh folder
#                  target/flink-run/run-XXXXXX, on free ports of 127.0.0.1. Waits until the
#                  TaskManager's slots are registered, then exports
#                    SHOAL_FLINK_URL         http://127.0.0.1:<rest port>
#                    SHOAL_FLINK_JOBS        the absolute target/flink-jobs folder
#                    SHOAL_FLINK_SAVEPOINTS  the savepoint folder, an absolute path
#                    SHOAL_FLINK_RUN_DIR     the run folder (logs are in its log/)
#                  A watchdog stops the cluster if the sourcing shell dies without flink_stop.
#                  SHOAL_FLINK_EXTRA_CONFIG, if set, is appended to the generated config.yaml.
#                  Returns non-zero (after printing the log tails) if the cluster is not up
#                  within 90 s; start-up takes 10-17 s on 2 cores.
#   flink_stop     Stops both JVMs (TERM, then KILL after 5 s). Safe to call twice, or when
#                  nothing was started; meant for an EXIT trap.
#
# Executed rather than sourced, `bash tests/flink/cluster.sh selftest` runs all four plus a
# smoke check (upload the test jar, run a bounded job to FINISHED).

FLINK_VERSION=2.3.0
_FLINK_SH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_FLINK_JM_PID=""
_FLINK_TM_PID=""
_FLINK_WATCH_PID=""

_flink_say() { printf '[flink] %s\n' "$*"; }
_flink_err() { printf '[flink] %s\n' "$*" >&2; }

flink_install() {
  local tool venv="$PWD/target/venv-flink"
  for tool in java javac jar python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      _flink_err "$tool is not installed (Flink needs a JDK 11+ and python3)"
      return 1
    fi
  done
  if [ ! -x "$venv/bin/python" ]; then
    mkdir -p "$PWD/target"
    python3 -m venv "$venv" || { _flink_err "python3 -m venv $venv failed"; return 1; }
  fi
  if ! "$venv/bin/python" - "$FLINK_VERSION" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version
ok = all(version(p) == sys.argv[1] for p in ("apache-flink", "apache-flink-libraries"))
sys.exit(0 if ok else 1)
PY
    _flink_say "installing Flink $FLINK_VERSION from PyPI into $venv"
    if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
        "apache-flink==$FLINK_VERSION" "apache-flink-libraries==$FLINK_VERSION"; then
      _flink_err "pip could not install apache-flink==$FLINK_VERSION"
      return 1
    fi
  fi
  FLINK_HOME=$("$venv/bin/python" -c 'import os, pyflink; print(os.path.dirname(pyflink.__file__))') \
    || { _flink_err "pyflink is not importable from $venv"; return 1; }
  if [ ! -x "$FLINK_HOME/bin/jobmanager.sh" ] || [ ! -f "$FLINK_HOME/lib/flink-dist-$FLINK_VERSION.jar" ]; then
    _flink_err "$FLINK_HOME is not a complete Flink $FLINK_VERSION distribution"
    return 1
  fi
  export FLINK_HOME
}

flink_jobs() {
  local src="$_FLINK_SH_DIR/jobs" out="$PWD/target/flink-jobs"
  local test_jar="$out/shoal-test-job.jar" cdc_jar="$out/flink-cdc-dist-standin.jar"
  if [ -z "${FLINK_HOME:-}" ]; then
    _flink_err "FLINK_HOME is not set; call flink_install first"
    return 1
  fi
  if [ -f "$test_jar" ] && [ -f "$cdc_jar" ] \
      && [ -z "$(find "$src" -name '*.java' \( -newer "$test_jar" -o -newer "$cdc_jar" \) -print -quit)" ]; then
    return 0
  fi
  _flink_say "compiling the test jobs into $out"
  mkdir -p "$out" || return 1
  rm -rf "$out/classes"
  local sources=()
  mapfile -t sources < <(find "$src" -name '*.java' | sort)
  if [ "${#sources[@]}" -eq 0 ]; then
    _flink_err "no Java sources under $src"
    return 1
  fi
  javac -nowarn -Xlint:none --release 17 -cp "$FLINK_HOME/lib/*" -d "$out/classes" "${sources[@]}" \
    || { _flink_err "javac failed"; return 1; }
  jar --create --file "$test_jar.tmp" --main-class shoal.testjob.TestJob -C "$out/classes" shoal \
    && jar --create --file "$cdc_jar.tmp" --main-class org.apache.flink.cdc.cli.CliExecutor -C "$out/classes" org \
    && mv -f "$test_jar.tmp" "$test_jar" && mv -f "$cdc_jar.tmp" "$cdc_jar" \
    || { _flink_err "packing the jars failed"; rm -f "$test_jar.tmp" "$cdc_jar.tmp"; return 1; }
  rm -rf "$out/classes"
}

# Prints N distinct ports that are free on 127.0.0.1 right now, one a line. They are taken
# below the kernel's ephemeral range, so outgoing connections cannot grab them in the
# seconds before the JVMs bind them.
_flink_free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except Exception:
    low = 32768
span = range(20000, low) if low > 21000 else range(low // 2, low)
picked = []
for port in random.sample(span, min(len(span), 400)):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    picked.append(port)
    if len(picked) == int(sys.argv[1]):
        break
print("\n".join(map(str, picked)))
PY
}

# Prints the slots-available of GET /overview once the TaskManager is registered, else fails.
_flink_slots() {
  local body
  body=$(curl -sf --noproxy '*' --max-time 2 "$1/overview" 2>/dev/null) || return 1
  case "$body" in *'"taskmanagers":1,'*) ;; *) return 1 ;; esac
  body=${body#*\"slots-available\":}
  printf '%s\n' "${body%%[,\}]*}"
}

_flink_log_tail() {
  local f
  for f in "$1"/log/*.log "$1"/log/*.out "$1"/*.console; do
    [ -s "$f" ] || continue
    printf '%s\n' "----- tail of $f" >&2
    tail -n 40 "$f" >&2 || true
  done
}

flink_start() {
  if [ -z "${FLINK_HOME:-}" ]; then
    _flink_err "FLINK_HOME is not set; call flink_install first"
    return 1
  fi
  if [ -n "$_FLINK_JM_PID$_FLINK_TM_PID" ]; then
    _flink_err "a Flink cluster is already running (flink_stop first)"
    return 1
  fi
  mkdir -p "$PWD/target/flink-run" || return 1
  # Keep the folders (and logs) of the last few runs only.
  local old
  while IFS= read -r old; do
    rm -rf "$old"
  done < <(ls -1dt "$PWD"/target/flink-run/run-* 2>/dev/null | tail -n +4)
  # A JVM that exits during start-up (say, a port taken meanwhile) gets one more try.
  local attempt rc
  for attempt in 1 2; do
    rc=0
    _flink_start_once "$attempt" || rc=$?
    if [ "$rc" -eq 3 ] && [ "$attempt" -eq 1 ]; then
      continue
    fi
    return "$rc"
  done
}

# One start attempt: 0 up, 1 setup failed, 2 timed out, 3 a JVM exited (worth a retry).
_flink_start_once() {
  local attempt=$1 slots=4 timeout_s=90 dir
  dir=$(mktemp -d "$PWD/target/flink-run/run-XXXXXX") || return 1
  mkdir -p "$dir/conf" "$dir/log" "$dir/tmp" "$dir/web" "$dir/savepoints" "$dir/checkpoints" || return 1
  cp "$FLINK_HOME"/conf/log4j*.properties "$FLINK_HOME"/conf/logback*.xml "$dir/conf/" 2>/dev/null || true

  local ports=()
  mapfile -t ports < <(_flink_free_ports 5)
  if [ "${#ports[@]}" -ne 5 ]; then
    _flink_err "could not find free ports on 127.0.0.1"
    return 1
  fi
  local rest=${ports[0]} rpc=${ports[1]} blob=${ports[2]} tm_rpc=${ports[3]} tm_data=${ports[4]}

  # The stock JVM options (--add-exports/--add-opens); C1-only JIT and the serial GC (start-up
  # takes a third less on 2 cores); a temp dir of our own.
  local java_opts
  java_opts=$(sed -n -E 's/^[[:space:]]+all:[[:space:]]*(--add-.*)$/\1/p' "$FLINK_HOME/conf/config.yaml" | head -n 1)
  java_opts="$java_opts -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.io.tmpdir=$dir/tmp"

  # Flat keys are fine in Flink 2's config.yaml. execution.checkpointing.dir and
  # execution.checkpointing.savepoint-dir are the 2.x names of state.checkpoints.dir and
  # state.savepoints.dir. web.refresh-interval stays at its default (3 s), which is also how
  # long GET /jobs/<id> may serve a stale state; /jobs/overview is always current.
  cat >"$dir/conf/config.yaml" <<EOF
# Written by tests/flink/cluster.sh for one test run.
env.java.opts.all: "$java_opts"
env.log.dir: "$dir/log"
env.pid.dir: "$dir"
jobmanager.bind-host: 127.0.0.1
jobmanager.rpc.address: 127.0.0.1
jobmanager.rpc.port: $rpc
jobmanager.memory.process.size: 1024m
jobmanager.execution.failover-strategy: region
blob.server.port: $blob
taskmanager.bind-host: 127.0.0.1
taskmanager.host: 127.0.0.1
taskmanager.rpc.port: $tm_rpc
taskmanager.data.port: $tm_data
taskmanager.numberOfTaskSlots: $slots
taskmanager.memory.process.size: 1536m
taskmanager.memory.managed.size: 128m
parallelism.default: 1
rest.address: 127.0.0.1
rest.bind-address: 127.0.0.1
rest.port: $rest
io.tmp.dirs: "$dir/tmp"
web.tmpdir: "$dir/web"
execution.checkpointing.dir: "file://$dir/checkpoints"
execution.checkpointing.savepoint-dir: "file://$dir/savepoints"
cluster.registration.error-delay: 500ms
cluster.registration.max-timeout: 2s
EOF
  # Extra config.yaml lines for a run, e.g. SHOAL_FLINK_EXTRA_CONFIG='web.refresh-interval: 500'.
  # Only keys not set above: a key given twice makes Flink reject the file.
  if [ -n "${SHOAL_FLINK_EXTRA_CONFIG:-}" ]; then
    printf '%s\n' "$SHOAL_FLINK_EXTRA_CONFIG" >>"$dir/conf/config.yaml"
  fi

  _flink_say "starting Flink $FLINK_VERSION on http://127.0.0.1:$rest (files in $dir)"
  local started=$SECONDS
  # Both scripts exec into java, so these PIDs are the JVMs.
  FLINK_CONF_DIR="$dir/conf" FLINK_LOG_DIR="$dir/log" FLINK_PID_DIR="$dir" \
    "$FLINK_HOME/bin/jobmanager.sh" start-foreground </dev/null >"$dir/jobmanager.console" 2>&1 &
  _FLINK_JM_PID=$!
  FLINK_CONF_DIR="$dir/conf" FLINK_LOG_DIR="$dir/log" FLINK_PID_DIR="$dir" \
    "$FLINK_HOME/bin/taskmanager.sh" start-foreground </dev/null >"$dir/taskmanager.console" 2>&1 &
  _FLINK_TM_PID=$!
  # If the shell that sourced this dies without calling flink_stop, stop the JVMs anyway.
  (
    trap '' INT
    while kill -0 "$$" 2>/dev/null; do sleep 2; done
    kill -TERM "$_FLINK_JM_PID" "$_FLINK_TM_PID" 2>/dev/null
    sleep 5
    kill -KILL "$_FLINK_JM_PID" "$_FLINK_TM_PID" 2>/dev/null
  ) </dev/null >/dev/null 2>&1 &
  _FLINK_WATCH_PID=$!

  local url="http://127.0.0.1:$rest" free=""
  while :; do
    free=$(_flink_slots "$url") || free=""
    if [ -n "$free" ] && [ "$free" -ge "$slots" ] 2>/dev/null; then
      break
    fi
    if ! kill -0 "$_FLINK_JM_PID" 2>/dev/null || ! kill -0 "$_FLINK_TM_PID" 2>/dev/null; then
      _flink_err "a Flink process exited during start-up (attempt $attempt of 2)"
      _flink_log_tail "$dir"
      flink_stop
      return 3
    fi
    if [ $((SECONDS - started)) -ge "$timeout_s" ]; then
      _flink_err "Flink did not register $slots slots within ${timeout_s}s"
      _flink_log_tail "$dir"
      flink_stop
      return 2
    fi
    sleep 0.5
  done
  _flink_say "Flink is up after $((SECONDS - started))s ($slots slots)"
  export SHOAL_FLINK_URL="$url"
  export SHOAL_FLINK_JOBS="$PWD/target/flink-jobs"
  export SHOAL_FLINK_SAVEPOINTS="$dir/savepoints"
  export SHOAL_FLINK_RUN_DIR="$dir"
}

_flink_any_alive() {
  local pid
  for pid in "$@"; do
    kill -0 "$pid" 2>/dev/null && return 0
  done
  return 1
}

flink_stop() {
  local pids=() pid i
  if [ -n "${_FLINK_WATCH_PID:-}" ]; then
    kill -KILL "$_FLINK_WATCH_PID" 2>/dev/null || true
    wait "$_FLINK_WATCH_PID" 2>/dev/null || true
    _FLINK_WATCH_PID=""
  fi
  for pid in "${_FLINK_JM_PID:-}" "${_FLINK_TM_PID:-}"; do
    [ -n "$pid" ] && pids+=("$pid")
  done
  _FLINK_JM_PID=""
  _FLINK_TM_PID=""
  unset SHOAL_FLINK_URL
  [ "${#pids[@]}" -gt 0 ] || return 0
  _flink_say "stopping Flink"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for i in $(seq 1 50); do
    _flink_any_alive "${pids[@]}" || break
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  return 0
}

# A smoke check against a started cluster: upload the test jar, run a bounded job to FINISHED.
_flink_smoke() {
  local url=$SHOAL_FLINK_URL body jar jid state i
  body=$(curl -sf --noproxy '*' -X POST -H 'Expect:' \
    -F "jarfile=@$SHOAL_FLINK_JOBS/shoal-test-job.jar" "$url/jars/upload") \
    || { _flink_err "jar upload failed"; return 1; }
  jar=${body#*\"filename\":\"}; jar=${jar%%\"*}; jar=${jar##*/}
  body=$(curl -sf --noproxy '*' -X POST -H 'Content-Type: application/json' \
    -d '{"entryClass":"shoal.testjob.TestJob","programArgsList":["--mode","bounded","--count","100","--name","smoke"]}' \
    "$url/jars/$jar/run") || { _flink_err "job submission failed"; return 1; }
  jid=${body#*\"jobid\":\"}; jid=${jid%%\"*}
  for i in $(seq 1 60); do
    body=$(curl -sf --noproxy '*' "$url/jobs/$jid") || body=""
    state=${body#*\"state\":\"}; state=${state%%\"*}
    [ "$state" = FINISHED ] && { _flink_say "smoke job $jid FINISHED"; return 0; }
    sleep 0.5
  done
  _flink_err "smoke job $jid did not finish (last state: ${state:-?})"
  return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    selftest)
      trap flink_stop EXIT
      flink_install
      flink_jobs
      flink_start
      _flink_smoke
      flink_stop
      _flink_say "selftest passed"
      ;;
    *)
      echo "usage: bash tests/flink/cluster.sh selftest   (or source it and call flink_install," \
        "flink_jobs, flink_start, flink_stop)" >&2
      exit 2
      ;;
  esac
fi

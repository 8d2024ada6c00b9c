#!/usr/bin/env bash
# End-to-end check of `tokentrace watch` with a REAL agent: pi 0.73.1 from npm (the recording rig in
# ../shared/rig/pi), run against the rig's mock LLM while `tokentrace watch` is up, must show up at an OTLP
# collector with the same totals as `tokentrace report`, span for span equal to what `sync --dry-run` sends.
#
#   1. copies the tokentrace binary to a temp dir (the developer may rebuild meanwhile)
#   2. installs pi into target/rig/pi-$PI_VERSION once (later runs reuse it); everything else lives in one
#      mktemp -d dir removed at exit (HOME, XDG dirs, npm cache, stores, logs): nothing is written to $HOME
#   3. starts the mock LLM and a python OTLP/HTTP collector (scripts/rig_watch_collector.py), both on free
#      ports, and `tokentrace watch --path AGENT_DIR/sessions` before that folder exists (watch waits for it),
#      sending OTLP/JSON (OTEL_EXPORTER_OTLP_PROTOCOL=http/json) to the collector
#   4. runs three real pi sessions: print mode with a bash tool call (rig scenario 01), RPC with two prompts +
#      manual compaction + session name (06), RPC with prompt, bash command, label, custom message, switch to
#      the Anthropic mock (cache writes) and a second prompt (10)
#   5. waits (at most WAIT_S, default 30 s) until the collector's latest span versions stop changing and equal
#      the dry run's, then SIGTERMs watch (it must exit 0)
#   6. compares: the collector's latest version of every span (traceId+spanId) summed over generations, the
#      dry run's spans, and `report session --json --no-import` on watch's store; prints a table and
#      PASS / FAIL: ... (exit 1 on any mismatch). The mock's own record is shown as a fourth column.
#
# Usage: scripts/rig-watch.sh
# Env:   TOKENTRACE  binary to test (default target/release/tokentrace if present, else target/debug/tokentrace)
#        SHARED      the shared folder holding rig/ (default ../shared next to the repo)
#        PI_VERSION  pi to install (default 0.73.1; @mariozechner/pi-coding-agent, node >= 20)
#        TOKENTRACE_FLUSH_MS  watch's flush interval (default here 300)
#        WAIT_S      seconds to wait for the collector to settle (default 30)
#        KEEP=1      keep the temp dir (its path is printed) instead of removing it
# Needs: node >= 20 + npm (npm only for the first install), python3, curl.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RIG=${SHARED:-$REPO/../shared}/rig
[[ -f $RIG/pi/mock_llm.py ]] || { echo "no recording rig at $RIG (set SHARED)" >&2; exit 2; }
RIG=$(cd "$RIG" && pwd)
HELPER=$REPO/scripts/rig_watch_collector.py
PI_PKG=@mariozechner/pi-coding-agent
PI_VERSION=${PI_VERSION:-0.73.1}
WAIT_S=${WAIT_S:-30}
for tool in node npm python3 curl; do
  command -v $tool >/dev/null || { echo "$tool is needed" >&2; exit 2; }
done
start_time=$SECONDS

if [[ -z ${TOKENTRACE:-} ]]; then
  TOKENTRACE=$REPO/target/release/tokentrace
  [[ -x $TOKENTRACE ]] || TOKENTRACE=$REPO/target/debug/tokentrace
fi
[[ -x $TOKENTRACE ]] || { echo "no tokentrace binary at $TOKENTRACE (cargo build, or set TOKENTRACE)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/rig-watch.XXXXXX")
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ ${KEEP:-} == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. our own copy of the binary
mkdir -p "$work/bin" "$work/home" "$work/tmp" "$work/logs" "$work/collector" "$work/mock"
cp "$TOKENTRACE" "$work/bin/tokentrace"
TT=$work/bin/tokentrace

# A clean environment for everything we start: scratch HOME / XDG dirs, no backend or config variables
# from the caller's environment.
ENVV=(env -i PATH="$PATH" HOME="$work/home" TMPDIR="$work/tmp" LANG=C.UTF-8 TZ=UTC
  XDG_CONFIG_HOME="$work/home/.config" XDG_DATA_HOME="$work/home/.local/share"
  XDG_CACHE_HOME="$work/home/.cache" XDG_STATE_HOME="$work/home/.local/state")
echo "tokentrace: $("${ENVV[@]}" "$TT" --version) (copied from $TOKENTRACE)"
"${ENVV[@]}" "$TT" watch --help >/dev/null 2>&1 ||
  { echo "$TOKENTRACE has no watch command (a stale build?); set TOKENTRACE=target/debug/tokentrace" >&2; exit 2; }

# 2. pi, installed once into target/rig/ (into a temp folder first, so an interrupted install is not reused)
PI_HOME=$REPO/target/rig/pi-$PI_VERSION
PI=$PI_HOME/node_modules/.bin/pi
if [[ ! -x $PI ]]; then
  echo "installing $PI_PKG@$PI_VERSION into target/rig/pi-$PI_VERSION ..."
  mkdir -p "$REPO/target/rig"
  staging=$(mktemp -d "$REPO/target/rig/.pi-install.XXXXXX")
  # npm keeps the caller's environment (proxy, CA variables) and reads, never writes, the caller's
  # ~/.npmrc (registry, cafile); its HOME and cache are scratch.
  userconfig=()
  [[ -f ${HOME:-/nonexistent}/.npmrc ]] && userconfig=(--userconfig "$HOME/.npmrc")
  if ! HOME=$work/home npm install --prefix "$staging" "${userconfig[@]}" --cache "$work/npm-cache" --no-audit \
      --no-fund --no-update-notifier --loglevel=error "$PI_PKG@$PI_VERSION" >"$work/logs/npm.log" 2>&1; then
    cat "$work/logs/npm.log" >&2; rm -rf "$staging"; exit 2
  fi
  rm -rf "$PI_HOME"; mv "$staging" "$PI_HOME"
fi
echo "pi: $("${ENVV[@]}" "$PI" --version 2>&1 | tail -1) ($PI)"

# 3a. collector (it picks a free port and writes it down)
"${ENVV[@]}" python3 "$HELPER" serve "$work/collector" 2>"$work/logs/collector.log" &
PIDS+=($!)
for _ in $(seq 100); do [[ -s $work/collector/port ]] && break; sleep 0.1; done
[[ -s $work/collector/port ]] || { echo "collector did not start" >&2; cat "$work/logs/collector.log" >&2; exit 1; }
COLLECTOR_PORT=$(cat "$work/collector/port")

# 3b. mock LLM on a free port (asked from the kernel; retried should another process take it meanwhile)
MOCK_PORT=
for _ in 1 2 3; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${ENVV[@]}" MOCK_LOG="$work/mock/mock_requests.jsonl" python3 "$RIG/pi/mock_llm.py" "$port" \
    2>>"$work/logs/mock.log" &
  pid=$!
  for _ in $(seq 50); do
    if curl -sf "127.0.0.1:$port/v1/models" >/dev/null; then MOCK_PORT=$port; break; fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  if [[ -n $MOCK_PORT ]]; then PIDS+=($pid); break; fi
  kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
done
[[ -n $MOCK_PORT ]] || { echo "mock LLM did not start" >&2; cat "$work/logs/mock.log" >&2; exit 1; }

# pi's agent dir: the rig's models.json (mock port) and settings.json; no sessions/ folder yet
AGENT=$work/agent
mkdir -p "$AGENT"
sed "s/8765/$MOCK_PORT/g" "$RIG/pi/agent/models.json" >"$AGENT/models.json"
cp "$RIG/pi/agent/settings.json" "$AGENT/settings.json"
PIENV=("${ENVV[@]}" PI_CODING_AGENT_DIR="$AGENT" PI_OFFLINE=1)

# 3c. watch, before pi has created the sessions folder
[[ ! -e $AGENT/sessions ]]
"${ENVV[@]}" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$COLLECTOR_PORT" OTEL_EXPORTER_OTLP_PROTOCOL=http/json \
  TOKENTRACE_FLUSH_MS="${TOKENTRACE_FLUSH_MS:-300}" \
  "$TT" watch -v --path "$AGENT/sessions" --data-dir "$work/data" --status-interval 5 >"$work/logs/watch.log" 2>&1 &
WATCH_PID=$!
PIDS+=($WATCH_PID)
sleep 1
kill -0 $WATCH_PID 2>/dev/null || { echo "watch exited at once:" >&2; cat "$work/logs/watch.log" >&2; exit 1; }
echo "collector :$COLLECTOR_PORT, mock LLM :$MOCK_PORT, watch pid $WATCH_PID (sessions folder not there yet)"

# 4. real pi sessions against the mock, while watch runs
new_cwd() { local d=$work/proj-$1; mkdir -p "$d"; echo "hello from rig-watch" >"$d/notes.txt"; echo "$d"; }
run() {  # run NAME CMD...: in a fresh project dir, output to logs/NAME.*
  local name=$1; shift
  local d; d=$(new_cwd "$name")
  local t0=$SECONDS
  if ! (cd "$d" && "$@" >"$work/logs/$name.out" 2>"$work/logs/$name.err"); then
    echo "FAIL: pi session $name failed:" >&2; tail -20 "$work/logs/$name.err" >&2; exit 1
  fi
  echo "pi session $name done ($((SECONDS - t0)) s; collector has $(ls "$work/collector" | grep -c '\.body$') request(s) so far)"
}
run 01-print "${PIENV[@]}" "$PI" --provider mock-openai --model mock-gpt -p "List the files in the current directory"
run 06-rpc-compact "${PIENV[@]}" python3 "$RIG/pi/rpc_driver.py" "$work/logs/06-rpc-transcript.jsonl" --scenario compact \
  -- "$PI" --model mock-openai/mock-gpt --mode rpc
run 10-rpc-bash-model "${PIENV[@]}" python3 "$RIG/pi/rpc_driver.py" "$work/logs/10-rpc-transcript.jsonl" --scenario bash \
  -- "$PI" -e "$RIG/pi/rig-commands.ts" --model mock-openai/mock-gpt --mode rpc
nfiles=$(find "$AGENT/sessions" -name '*.jsonl' | wc -l)
[[ $nfiles -eq 3 ]] || { echo "FAIL: expected 3 session files, found $nfiles" >&2; exit 1; }

# What should arrive: sync --dry-run over the same (now finished) files, in a fresh store
"${ENVV[@]}" "$TT" sync --path "$AGENT/sessions" --data-dir "$work/dry-data" --dry-run "$work/dry-out" \
  >"$work/logs/dry-run.log" 2>&1 || { echo "FAIL: sync --dry-run failed" >&2; cat "$work/logs/dry-run.log" >&2; exit 1; }
# The mock's own record of what it sent (rig's normalizer)
python3 "$RIG/normalize_ground_truth.py" pi "$work/mock" >"$work/mock/ground_truth.jsonl"

# 5. wait until the collector's latest span versions equal the dry run's and stop changing
t0=$SECONDS; last=; settled=0
while (( SECONDS - t0 < WAIT_S )); do
  now=$(python3 "$HELPER" state "$work/collector")
  if [[ $now == "$last" ]] && python3 "$HELPER" matches "$work/collector" "$work/dry-out"; then
    settled=1; break
  fi
  last=$now; sleep 1
done
echo "collector $( ((settled)) && echo settled || echo 'did NOT settle') after $((SECONDS - t0)) s: $now"
kill -TERM $WATCH_PID
watch_rc=timeout
for _ in $(seq 150); do
  if ! kill -0 $WATCH_PID 2>/dev/null; then watch_rc=0; wait $WATCH_PID || watch_rc=$?; break; fi
  sleep 0.1
done
echo "watch exit status after SIGTERM: $watch_rc"
if [[ ${VERBOSE:-} == 1 || $watch_rc != 0 || $settled != 1 ]]; then
  echo "--- watch log (tail)"; tail -30 "$work/logs/watch.log"; echo "---"
fi

# 6. report on watch's store, then the comparison
"${ENVV[@]}" "$TT" report session --json --no-import --data-dir "$work/data" >"$work/report.json" \
  2>"$work/logs/report.log" || { echo "FAIL: report failed" >&2; cat "$work/logs/report.log" >&2; exit 1; }
set +e
python3 "$HELPER" compare --collector "$work/collector" --dry-run "$work/dry-out" --report "$work/report.json" \
  --ground-truth "$work/mock/ground_truth.jsonl" --models "$AGENT/models.json" --watch-exit "$watch_rc"
rc=$?
set -e
echo "took $((SECONDS - start_time)) s"
exit $rc

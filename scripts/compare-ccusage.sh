#!/usr/bin/env bash
# Side-by-side check of tokentrace against ccusage (the tool most users come from) on the shared corpus.
#
# For every recorded run `CORPUS/<agent>/<agent>-<version>/<run>/` (its `home/` is a $HOME holding only that
# agent's session files at their default places, and `expected.json` is the ground truth from the mock LLM)
# this runs
#   ccusage <agent> daily --offline --json --timezone UTC       (with that home as $HOME)
#   tokentrace report daily --json --path RUN/home --ephemeral --tz UTC
# and prints, per agent and for every run where the three disagree, input / cache read / cache write /
# output / reasoning / cost next to the expected values. scripts/compare_ccusage.py does the comparing
# and says which mapping of ccusage's JSON fields it used. docs/ccusage.md shows a run of it and explains
# the differences.
#
# Usage: scripts/compare-ccusage.sh [CORPUS]        (default: ../shared/corpus)
# Env:   TOKENTRACE  the binary to compare (default target/release/tokentrace, else target/debug/tokentrace)
#        CCUSAGE     a ccusage to use instead of the pinned one installed into target/ccusage
# Needs: node + npm (only to install ccusage the first time), python3.
set -euo pipefail
# A corpus given as an argument is relative to where the script was called from; the rest to the repo root.
if [[ $# -gt 0 ]]; then
  [[ -d $1 ]] || { echo "no corpus at $1" >&2; exit 2; }
  corpus=$(cd "$1" && pwd)
fi
cd "$(dirname "$0")/.."
command -v python3 >/dev/null || { echo "python3 is needed (scripts/compare_ccusage.py makes the tables)" >&2; exit 2; }

CCUSAGE_VERSION=20.0.24
corpus=${corpus:-../shared/corpus}
[[ -d $corpus ]] || { echo "no corpus at $corpus (give its path as the first argument)" >&2; exit 2; }
corpus=$(cd "$corpus" && pwd)

if [[ -z ${TOKENTRACE:-} ]]; then
  TOKENTRACE=target/release/tokentrace
  [[ -x $TOKENTRACE ]] || TOKENTRACE=target/debug/tokentrace
fi
[[ -x $TOKENTRACE ]] || { echo "no tokentrace binary at $TOKENTRACE (cargo build, or set TOKENTRACE)" >&2; exit 2; }
TOKENTRACE=$(cd "$(dirname "$TOKENTRACE")" && pwd)/$(basename "$TOKENTRACE")

# Everything either tool (or npm) might write goes under one temp dir that is removed on exit, so the
# user's home, caches and tokentrace store stay untouched.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ccusage is pinned: its parsers change often, and docs/ccusage.md quotes numbers of this version. npm gets
# a throwaway cache (not ~/.npm) and no audit/fund/update-notifier calls. The npm package ships the native
# binary as an optional dependency, so no download happens at run time.
if [[ -z ${CCUSAGE:-} ]]; then
  CCUSAGE=$PWD/target/ccusage/node_modules/.bin/ccusage
  if [[ ! -x $CCUSAGE ]] || [[ $(HOME=$work "$CCUSAGE" --version 2>/dev/null) != *"$CCUSAGE_VERSION"* ]]; then
    command -v npm >/dev/null || { echo "npm is needed once, to install ccusage@$CCUSAGE_VERSION" >&2; exit 2; }
    echo "installing ccusage@$CCUSAGE_VERSION into target/ccusage ..." >&2
    mkdir -p target/ccusage
    npm install --prefix target/ccusage --cache "$work/npm-cache" --no-audit --no-fund --no-update-notifier \
      --loglevel=error "ccusage@$CCUSAGE_VERSION" >&2
  fi
fi
ccusage_version=$(HOME=$work "$CCUSAGE" --version 2>/dev/null | tr -d '\n')
tokentrace_version=$(HOME=$work "$TOKENTRACE" --version 2>/dev/null | tr -d '\n')

# Run a command in an empty environment with a scratch $HOME and XDG dirs: any location variable of the
# caller's (CLAUDE_CONFIG_DIR, CODEX_HOME, PI_AGENT_DIR, GEMINI_DATA_DIR, OPENCODE_DATA_DIR, …, TOKENTRACE_*)
# would make a tool read the caller's real sessions or config instead of the run's. The cwd is the temp dir,
# so no project-local ccusage config is picked up either.
isolated() { # isolated HOME CMD...
  local home=$1
  shift
  (cd "$work" && env -i PATH="$PATH" HOME="$home" XDG_CONFIG_HOME="$home/.config" XDG_CACHE_HOME="$home/.cache" \
    XDG_DATA_HOME="$home/.local/share" NO_COLOR=1 "$@")
}

out=$work/out
mkdir -p "$out"
n=0
# A run is any folder with expected.json and home/ (the corpus, or one agent's or version's part of it).
while IFS= read -r expected; do
  run=$(dirname "$expected")
  [[ -d $run/home ]] || continue
  agent=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["agent"])' "$expected")
  n=$((n + 1))
  id=$(printf '%03d' "$n")
  # ccusage gets a writable COPY of the run's home as $HOME: that is where it looks by default
  # (~/.claude, ~/.codex, ~/.pi/agent, ~/.gemini), and the corpus itself may be read-only.
  home=$work/home-$id
  cp -R "$run/home" "$home"
  chmod -R u+w "$home" # the shared corpus may come without write bits; the copy must be removable
  # Shown as <agent>/<agent>-<version>/<run> (the last three parts of its path), whatever part was given.
  printf '%s\n' "$run" >"$out/$id.path"
  printf '%s\n' "$run" | awk -F/ '{ print $(NF-2) "/" $(NF-1) "/" $NF }' >"$out/$id.run"
  printf '%s\n' "$agent" >"$out/$id.agent"
  cp "$run/expected.json" "$out/$id.expected.json"

  # ccusage, per-agent command (the one a user would run for that agent). oh-my-pi has none, so for omp
  # runs the unified report (`ccusage daily`, every source ccusage detects) stands in; `--by-agent` keeps
  # the per-source split visible.
  case $agent in
    claude | codex | pi | gemini) cc_args=("$agent" daily) ;;
    *) cc_args=(daily --by-agent) ;;
  esac
  isolated "$home" "$CCUSAGE" "${cc_args[@]}" --offline --json --timezone UTC >"$out/$id.ccusage.json" 2>"$out/$id.ccusage.err" ||
    echo "ccusage failed on $run (see below)" >&2
  printf '%s\n' "ccusage ${cc_args[*]} --offline --json --timezone UTC" >"$out/$id.ccusage.cmd"

  # oh-my-pi writes pi's session format under ~/.omp/agent/sessions; ccusage's pi reader can be pointed
  # there by hand. Recorded as a second ccusage figure ("ccusage pi --pi-path") to show what it would need.
  if [[ $agent == omp && -d $home/.omp/agent/sessions ]]; then
    isolated "$home" "$CCUSAGE" pi daily --pi-path "$home/.omp/agent/sessions" --offline --json --timezone UTC \
      >"$out/$id.ccusage-pipath.json" 2>>"$out/$id.ccusage.err" || true
  fi

  # tokentrace reads the untouched corpus: --path never writes there, and --ephemeral keeps the store in memory.
  isolated "$home" "$TOKENTRACE" --ephemeral report daily --json --path "$run/home" --tz UTC \
    >"$out/$id.tokentrace.json" 2>"$out/$id.tokentrace.err" || echo "tokentrace failed on $run" >&2
done < <(find "$corpus" -name expected.json -not -path '*/home/*' | sort)
[[ $n -gt 0 ]] || { echo "no runs (RUN/expected.json + RUN/home) under $corpus" >&2; exit 2; }

python3 scripts/compare_ccusage.py "$out" "$ccusage_version" "$tokentrace_version ($TOKENTRACE)" "$corpus"

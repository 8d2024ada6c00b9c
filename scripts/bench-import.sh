#!/usr/bin/env bash
# Import benchmark: builds a synthetic pi history from the real example sessions (each copied N times under a
# fresh session id, like a long-lived user's ~/.pi), then measures with the release binary:
#   cold  `report daily` (full import into an empty store, building the whole trace store)
#   warm  `report daily` with nothing new (the incremental no-op)
#   the share of the cold import spent in the privacy layer (redaction budget: < 20%), on that history and on
#   the whole shared corpus (every agent: pi, oh-my-pi, Claude Code, Codex, Gemini) when ../shared is beside
# and the peak RSS of the cold run. Prints MB/s and lines/s. Usage: scripts/bench-import.sh [COPIES] (default 400)
set -euo pipefail
cd "$(dirname "$0")/.."
copies=${1:-400}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet
bin=target/release/tokentrace

python3 - "$copies" "$work/history" <<'PY'
import os, sys, uuid, json
copies, out = int(sys.argv[1]), sys.argv[2]
files = sorted(os.path.join(d, f) for d, _, fs in os.walk("examples") for f in fs if f.endswith(".jsonl"))
for i in range(copies):
    for f in files:
        text = open(f, encoding="utf-8").read()
        # new session id in the header (line 1, or line 2 after oh-my-pi's title slot)
        lines = text.split("\n")
        for j, line in enumerate(lines[:2]):
            if '"type":"session"' in line:
                d = json.loads(line); d["id"] = str(uuid.uuid4()); lines[j] = json.dumps(d, separators=(",", ":"))
        d = os.path.join(out, f"copy{i:04d}", f.split(os.sep)[3])
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, os.path.basename(f)), "w", encoding="utf-8").write("\n".join(lines))
PY
bytes=$(du -sb "$work/history" | cut -f1)
lines=$(find "$work/history" -name '*.jsonl' -exec cat {} + | wc -l)
files=$(find "$work/history" -name '*.jsonl' | wc -l)
echo "history: $files files, $lines lines, $((bytes / 1000000)) MB"

measure() { # prints seconds and max RSS KB of one run; the import log goes to $work/log
  /usr/bin/time -f "%e %M" -o "$work/time" "$bin" report daily --path "$work/history" --data-dir "$work/data" --tz UTC -v \
    >/dev/null 2>"$work/log"
  cat "$work/time"
}
read -r cold rss < <(measure)
privacy=$(grep -o 'privacy layer [0-9]* ms ([0-9.]*%)' "$work/log" || echo "privacy layer: n/a")
read -r warm _ < <(measure)
python3 - "$bytes" "$lines" "$cold" "$warm" "$rss" <<'PY'
import sys
b, l, cold, warm, rss = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
print(f"cold import + report: {cold:.2f} s  ({b/1e6/cold:.1f} MB/s, {l/cold:,.0f} lines/s), peak RSS {rss/1024:.0f} MB")
print(f"warm re-run (nothing new): {warm:.2f} s  ({100*warm/cold:.1f}% of cold)")
PY
echo "of the cold import: $privacy (capture policy full: redaction, masking, caps)"
echo "store: $(du -sh "$work/data" | cut -f1)"

corpus=../shared/corpus
if [ -d "$corpus" ]; then
  /usr/bin/time -f "%e" -o "$work/time" "$bin" report daily --path "$corpus" --data-dir "$work/corpus-data" --tz UTC -v \
    >/dev/null 2>"$work/log"
  share=$(grep -o 'privacy layer [0-9]* ms ([0-9.]*%)' "$work/log" || echo "privacy layer: n/a")
  echo "whole shared corpus (every agent, $(du -sh "$corpus" | cut -f1)): cold import + report $(cat "$work/time") s; $share"
fi

#!/usr/bin/env python3
"""Latency and memory of `tokentrace statusline` and `tokentrace status --json`, spawned like status bars do.

    bench/status.py HIST DATA_DIR [-n 1000] [--now 2026-11-30T12:00:00Z] [--ccusage-runs 20]

HIST is a Claude Code history from bench/gen.py (HIST/.claude/projects/...); DATA_DIR a tokentrace store that
holds it (this script imports it first if needed: `tokentrace report --path HIST`). --now pins tokentrace's clock
(TOKENTRACE_NOW) inside the history's window, so "today", the week, the month and the current 5-hour block hold
real spend (the synthetic history ends on 2026-12-01; with today's date they would be empty and cheap).

Each call is one process, as Claude Code's statusLine, tmux and waybar run it: wall time from spawn to exit
(perf_counter around the child) and the child's peak RSS (wait4's ru_maxrss). Scenarios, n calls each:
  statusline, transcript unchanged   Claude Code's stdin JSON naming one transcript of the history
  statusline, transcript grows       one line appended to the transcript before every call (what happens after
                                     each assistant message); the lines are removed at the end
  status --json, watch running       a `tokentrace watch --path HIST` holds the store: status reads it only
  status --json --path HIST          no watch: status first stats every file of the history (the import path)
  ccusage statusline                 ccusage 20.0.24 on the same history and stdin (its 1 s output cache on,
                                     then --no-cache), --ccusage-runs calls each
Prints a table of p50 / p90 / p99 / max wall (ms) and p50 / max RSS (MB).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CCUSAGE = REPO / "target/ccusage/node_modules/@ccusage/ccusage-linux-x64/bin/ccusage"


def spawn(cmd: list[str], stdin: bytes, env: dict[str, str]) -> tuple[float, float, bytes]:
    """Runs cmd once under /usr/bin/time: (wall ms, peak RSS MB, stdout). The RSS is time's %M: a child that
    Python spawns itself inherits the Python process's high-water mark in ru_maxrss (fork or vfork alike),
    time's own child does not. The wall time includes time's exec (~1 ms)."""
    with tempfile.TemporaryFile() as inp, tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile() as rss:
        inp.write(stdin)
        inp.seek(0)
        t0 = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd], stdin=inp, stdout=out,
                       stderr=subprocess.DEVNULL, env=env)
        wall = (time.perf_counter() - t0) * 1000
        out.seek(0)
        return wall, int(open(rss.name).read().split()[-1]) / 1024, out.read()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def row(name: str, walls: list[float], rss: list[float], sample: bytes) -> None:
    print(
        f"| {name} | {len(walls)} | {pct(walls, 50):.1f} | {pct(walls, 90):.1f} | {pct(walls, 99):.1f} | "
        f"{max(walls):.1f} | {statistics.median(rss):.1f} | {max(rss):.1f} |"
    )
    print(f"    sample output: {sample.decode(errors='replace').strip()[:160]}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("hist", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--now", default="2026-11-30T12:00:00Z")
    ap.add_argument("--ccusage-runs", type=int, default=20)
    ap.add_argument("--only", default="", help="run only the scenarios whose name contains this")
    a = ap.parse_args()
    tt = os.environ.get("TOKENTRACE", str(REPO / "target/release/tokentrace"))
    hist, data = a.hist.resolve(), a.data.resolve()
    home = Path(tempfile.mkdtemp())
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TZ": "UTC", "TOKENTRACE_NOW": a.now, "NO_COLOR": "1"}
    base = [tt, "--data-dir", str(data)]
    subprocess.run(base + ["report", "daily", "--path", str(hist)], env=env, stdout=subprocess.DEVNULL, check=True)

    # The transcript with the most model calls: a busy session.
    projects = hist / ".claude/projects"
    transcript = max(projects.glob("*/*.jsonl"), key=lambda p: p.read_bytes().count(b'"type":"assistant"'))
    session_id = transcript.stem
    stdin = json.dumps({
        "hook_event_name": "Status", "session_id": session_id, "transcript_path": str(transcript),
        "cwd": "/work/project", "model": {"id": "claude-opus-4-8", "display_name": "Opus"},
        "workspace": {"current_dir": "/work/project", "project_dir": "/work/project"}, "version": "2.1.332",
        "output_style": {"name": "default"},
        "cost": {"total_cost_usd": 1.0, "total_duration_ms": 60000, "total_api_duration_ms": 20000,
                 "total_lines_added": 10, "total_lines_removed": 2},
        "context_window": {"total_input_tokens": 24000, "total_output_tokens": 1800, "context_window_size": 200000,
                           "used_percentage": 12, "remaining_percentage": 88,
                           "current_usage": {"input_tokens": 1000, "output_tokens": 300,
                                             "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 20000}},
        "exceeds_200k_tokens": False,
    }).encode()
    assistant = next(l for l in transcript.read_bytes().splitlines(keepends=True) if b'"type":"assistant"' in l)

    print(f"tokentrace: {subprocess.run([tt, '--version'], capture_output=True, text=True).stdout.strip()}; "
          f"history {hist} ({sum(1 for _ in projects.rglob('*.jsonl'))} transcripts); transcript {transcript.name} "
          f"({transcript.stat().st_size} bytes); TOKENTRACE_NOW={a.now}", file=sys.stderr)
    print("| scenario | calls | p50 ms | p90 ms | p99 ms | max ms | RSS p50 MB | RSS max MB |")
    print("|---|---|---|---|---|---|---|---|")

    def run(name: str, cmd: list[str], n: int, before=None, run_env=env) -> None:
        if a.only not in name:
            return
        walls, rss, sample = [], [], b""
        for _ in range(n):
            if before:
                before()
            w, r, sample = spawn(cmd, stdin, run_env)
            walls.append(w)
            rss.append(r)
        row(name, walls, rss, sample)

    run("statusline, transcript unchanged", base + ["statusline"], a.n)
    size = transcript.stat().st_size
    try:
        def grow() -> None:
            with open(transcript, "ab") as f:
                f.write(assistant)
        run("statusline, transcript grows a line per call", base + ["statusline"], a.n, before=grow)
    finally:
        os.truncate(transcript, size)
        subprocess.run(base + ["report", "daily", "--path", str(hist)], env=env, stdout=subprocess.DEVNULL)

    log = tempfile.NamedTemporaryFile(prefix="watch-log-")
    if a.only and "watch" not in a.only:
        run("status --json --path HIST (imports: a stat per file)", base + ["status", "--json", "--path", str(hist)],
            a.n)
        return
    watch = subprocess.Popen(base + ["watch", "--path", str(hist)], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        # Measured once the watch has done its first pass over the history (it logs "watching …" then).
        for _ in range(600):
            if b"watching" in Path(log.name).read_bytes():
                break
            time.sleep(0.1)
        time.sleep(1)
        run("status --json, watch running (store only)", base + ["status", "--json"], a.n)
        run("statusline, watch running (store only)", base + ["statusline"], a.n)
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait()
    run("status --json --path HIST (imports: a stat per file)", base + ["status", "--json", "--path", str(hist)], a.n)

    cc = Path(os.environ.get("CCUSAGE", CCUSAGE))
    if cc.exists():
        cc_env = dict(env, CLAUDE_CONFIG_DIR=str(hist / ".claude"))
        run("ccusage statusline (1 s output cache)", [str(cc), "statusline", "--offline"], a.ccusage_runs,
            run_env=cc_env)
        run("ccusage statusline --no-cache", [str(cc), "statusline", "--offline", "--no-cache"], a.ccusage_runs,
            run_env=cc_env)
    else:
        print(f"ccusage not found at {cc} (bench/run.sh installs it; or set CCUSAGE)", file=sys.stderr)


if __name__ == "__main__":
    main()

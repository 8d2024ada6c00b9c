#!/usr/bin/env python3
"""`tokentrace watch` benchmark: delivery delay, bytes sent, idle memory and idle CPU.

    bench/watch.py [--lines 1000] [--model-ms 200-1500] [--tool-ms 20-300] [--rounds 20] [--idle-secs 60]
                   [--corpus DIR] [--skip-delay] [--skip-idle]

1. Delay. A pi session is written line by line into a watched folder (a new prompt every `2 * rounds + 2` lines:
   the user's prompt, then `rounds` model calls with a tool call each and their tool results, then the
   answer) at an agent's pace: a model call (`model-ms`, uniform random) before each assistant line and the
   next prompt, a tool run (`tool-ms`) before each tool result; meanwhile `watch` delivers to a collector in
   this script. Every line
   carries a unique marker in the text the export keeps (prompt -> root span input, answer -> generation
   output, tool result -> tool span output); the delay of a line is the time from its write to the arrival of
   the first request holding its marker. Prints p50 / p90 / p99 / max over all lines, and the bytes received
   against what `sync --dry-run` writes for the finished session (both OTLP/JSON: `watch` is run with
   OTEL_EXPORTER_OTLP_PROTOCOL=http/json, the dry run's files are measured written compactly).
2. Idle. `watch` over the whole shared corpus (`../shared/corpus`, every agent): after the first import, the
   resident memory (VmRSS, and the peak VmHWM) and the CPU time used over `idle-secs` seconds of nothing
   happening.

TOKENTRACE (default target/release/tokentrace) is the binary measured; TOKENTRACE_FLUSH_MS is left at its
default (1000 ms) unless set.
"""

import argparse
import gzip
import http.server
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("TOKENTRACE", os.path.join(REPO, "target/release/tokentrace"))


class Collector:
    """An OTLP/HTTP endpoint on 127.0.0.1 that records (arrival time, body) and answers 200."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(n)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with outer.lock:
                    outer.requests.append((time.monotonic(), body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def now_iso():
    t = datetime.now(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def pi_session(lines, rounds):
    """Yields (marker or None, what precedes the line: "model" or "tool", line) for a pi session of `lines`
    marked lines, produced as they are written (timestamps are the time of writing)."""
    sid = str(uuid.uuid4())
    yield None, "tool", {"type": "session", "version": 3, "id": sid, "timestamp": now_iso(), "cwd": "/tmp/bench-watch"}
    parent = None
    n = 0

    def entry(message):
        nonlocal parent
        eid = uuid.uuid4().hex[:8]
        e = {"type": "message", "id": eid, "parentId": parent, "timestamp": now_iso(), "message": message}
        parent = eid
        return e

    usage = {"input": 200, "output": 40, "cacheRead": 1000, "cacheWrite": 0, "totalTokens": 1240,
             "cost": {"input": 0.0006, "output": 0.0006, "cacheRead": 0.0003, "cacheWrite": 0, "total": 0.0015}}
    while n < lines:
        marker = f"lat-{n:06d}"
        n += 1
        yield marker, "model", entry({"role": "user", "content": [{"type": "text", "text": f"Do step {n} {marker}"}],
                             "timestamp": int(time.time() * 1000)})
        for r in range(rounds):
            if n >= lines:
                break
            call = f"call_{uuid.uuid4().hex[:12]}"
            marker = f"lat-{n:06d}"
            n += 1
            yield marker, "model", entry({"role": "assistant",
                                 "content": [{"type": "text", "text": f"Running it {marker}"},
                                             {"type": "toolCall", "id": call, "name": "bash",
                                              "arguments": {"command": f"echo {r}"}}],
                                 "api": "openai-completions", "provider": "openai", "model": "gpt-4.1",
                                 "usage": usage, "stopReason": "toolUse", "timestamp": int(time.time() * 1000)})
            if n >= lines:
                break
            marker = f"lat-{n:06d}"
            n += 1
            yield marker, "tool", entry({"role": "toolResult", "toolCallId": call, "toolName": "bash",
                                 "content": [{"type": "text", "text": f"{r}\n{marker}\n"}], "isError": False,
                                 "timestamp": int(time.time() * 1000)})
        if n >= lines:
            break
        marker = f"lat-{n:06d}"
        n += 1
        yield marker, "model", entry({"role": "assistant", "content": [{"type": "text", "text": f"Done {marker}"}],
                             "api": "openai-completions", "provider": "openai", "model": "gpt-4.1",
                             "usage": usage, "stopReason": "stop", "timestamp": int(time.time() * 1000)})


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def json_size(requests_json):
    """Bytes of OTLP/JSON requests written compactly, as `watch` sends them (the dry run writes them pretty)."""
    return sum(len(json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode()) for r in requests_json)


def start_watch(path, data, env_extra, log):
    env = dict(os.environ, HOME=data, **env_extra)
    env.pop("LANGFUSE_PUBLIC_KEY", None)
    return subprocess.Popen([BIN, "watch", "--path", path, "--data-dir", data, "--status-interval", "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=log)


def wait_log(log_path, text, limit=600):
    until = time.time() + limit
    while time.time() < until:
        with open(log_path, errors="replace") as f:
            if text in f.read():
                return True
        time.sleep(0.1)
    return False


def delay_bench(args):
    collector = Collector()
    tmp = tempfile.mkdtemp(prefix="tt-watch-bench-")
    sessions = os.path.join(tmp, "sessions")
    os.makedirs(sessions)
    data = os.path.join(tmp, "data")
    log_path = os.path.join(tmp, "watch.log")
    with open(log_path, "w") as log:
        proc = start_watch(sessions, data, {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}",
                                            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, log)
    if not wait_log(log_path, "watching"):
        sys.exit(f"watch did not start: {open(log_path).read()}")
    pace = {k: tuple(int(x) for x in v.split("-")) for k, v in (("model", args.model_ms), ("tool", args.tool_ms))}
    rng = random.Random(42)
    path = os.path.join(sessions, "--tmp-bench-watch--", "session.jsonl")
    os.makedirs(os.path.dirname(path))
    written = {}
    with open(path, "ab", buffering=0) as f:
        for marker, before, line in pi_session(args.lines, args.rounds):
            time.sleep(rng.uniform(*pace[before]) / 1000)
            f.write((json.dumps(line) + "\n").encode())
            if marker:
                written[marker] = time.monotonic()
    # Wait for the last markers (at most 30 s).
    until = time.time() + 30
    arrivals = {}
    while time.time() < until:
        with collector.lock:
            reqs = list(collector.requests)
        arrivals = {}
        for at, body in reqs:
            text = body.decode("utf-8", "replace")
            start = 0
            while True:
                i = text.find("lat-", start)
                if i < 0:
                    break
                m = text[i:i + 10]
                arrivals.setdefault(m, at)
                start = i + 10
        if all(m in arrivals for m in written):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    delays = [(arrivals[m] - t) * 1000 for m, t in written.items() if m in arrivals]
    missing = [m for m in written if m not in arrivals]
    received = sum(len(b) for _, b in collector.requests)
    # What a dry run of the finished session sends (same protocol: OTLP/JSON, compact).
    out = os.path.join(tmp, "dry")
    subprocess.run([BIN, "sync", "--path", sessions, "--data-dir", os.path.join(tmp, "dry-data"),
                    "--dry-run", out], env=dict(os.environ, HOME=tmp), check=True,
                   stdout=subprocess.DEVNULL)
    dry = []
    for name in sorted(os.listdir(os.path.join(out, "otlp"))):
        with open(os.path.join(out, "otlp", name)) as f:
            dry.append(json.load(f))
    dry_bytes = json_size(dry)
    spans = sum(len(ss["spans"]) for r in dry for rs in r["resourceSpans"] for ss in rs["scopeSpans"])
    print(f"delay over {len(delays)} lines (model calls {args.model_ms} ms, tools {args.tool_ms} ms, "
          f"{args.rounds} tool rounds per prompt, "
          f"{spans} spans; flush interval {os.environ.get('TOKENTRACE_FLUSH_MS', '1000')} ms):")
    print(f"  p50 {percentile(delays, 50):.0f} ms, p90 {percentile(delays, 90):.0f} ms, "
          f"p99 {percentile(delays, 99):.0f} ms, max {max(delays):.0f} ms; {len(missing)} line(s) never arrived")
    print(f"  {len(collector.requests)} requests, {received} bytes received (OTLP/JSON bodies) for a dry run of "
          f"{dry_bytes} bytes: {received / dry_bytes:.2f}x")


def rss_cpu(pid):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024, cpu


def idle_bench(args):
    corpus = os.path.abspath(args.corpus)
    tmp = tempfile.mkdtemp(prefix="tt-watch-idle-")
    log_path = os.path.join(tmp, "watch.log")
    with open(log_path, "w") as log:
        proc = start_watch(corpus, os.path.join(tmp, "data"), {}, log)
    if not wait_log(log_path, "watching"):
        sys.exit(f"watch did not start: {open(log_path).read()}")
    time.sleep(2)
    rss0, hwm0, cpu0 = rss_cpu(proc.pid)
    time.sleep(args.idle_secs)
    rss1, hwm1, cpu1 = rss_cpu(proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    files = sum(1 for _, _, fs in os.walk(corpus) for f in fs if f.endswith((".jsonl", ".json")))
    print(f"idle over {corpus} ({files} .jsonl/.json files):")
    print(f"  RSS {rss0:.1f} MB after the first import, {rss1:.1f} MB after {args.idle_secs} s idle "
          f"(peak {hwm1:.1f} MB); CPU {1000 * (cpu1 - cpu0):.0f} ms over {args.idle_secs} s idle")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=1000)
    p.add_argument("--model-ms", default="200-1500", help="pause before an assistant line or prompt")
    p.add_argument("--tool-ms", default="20-300", help="pause before a tool result")
    p.add_argument("--rounds", type=int, default=20, help="tool rounds per prompt")
    p.add_argument("--idle-secs", type=int, default=60)
    p.add_argument("--corpus", default=os.path.join(REPO, "../shared/corpus"))
    p.add_argument("--skip-idle", action="store_true")
    p.add_argument("--skip-delay", action="store_true")
    args = p.parse_args()
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN}: build it first (cargo build --release) or set TOKENTRACE")
    print(f"binary: {BIN}")
    if not args.skip_delay:
        delay_bench(args)
    if not args.skip_idle:
        idle_bench(args)


if __name__ == "__main__":
    main()

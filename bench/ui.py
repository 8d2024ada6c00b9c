#!/usr/bin/env python3
"""Response times of `tokentrace ui` on a store (the 1 GB benchmark's: bench/gen.py, then `report --path`).

    bench/ui.py DATA_DIR [-n 20]

Starts `tokentrace ui --no-import` on DATA_DIR, then for each view asks once right after start (cold: the answer
is computed) and n more times (warm: the store has not changed, the kept answer is sent), and prints a table of
cold ms and warm p50 / p99 ms with the answer's size. Views: the overview, the first and the 100th page of
sessions sorted by cost, the session page of the session with the most model calls, the models page.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def fetch(url: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url) as r:
        body = r.read()
    return (time.perf_counter() - t0) * 1000, body


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("-n", type=int, default=20)
    a = ap.parse_args()
    tt = os.environ.get("TOKENTRACE", str(REPO / "target/release/tokentrace"))
    ui = subprocess.Popen([tt, "ui", "--no-import", "--listen", "127.0.0.1:0", "--data-dir", str(a.data)],
                          stderr=subprocess.PIPE, text=True)
    try:
        for line in ui.stderr:
            if "dashboard at http://" in line:
                base = line.split("dashboard at ")[1].split()[0].rstrip("/")
                break
        else:
            sys.exit("ui did not start")
        _, body = fetch(f"{base}/api/sessions?sort=generations&per=1")
        top = json.loads(body)["rows"][0]
        # A fresh server for the cold figures: nothing kept yet.
        views = [
            ("overview", "/api/overview"),
            ("sessions, page 1 by cost", "/api/sessions?sort=cost&per=50"),
            ("sessions, page 100 by cost", "/api/sessions?sort=cost&per=50&page=100"),
            (f"session ({top['generations']} model calls)", "/api/session/" + urllib.parse.quote(top["key"], safe="")),
            ("models", "/api/models"),
        ]
        print(f"store {a.data}; {json.loads(fetch(base + '/api/sessions?per=1')[1])['total']} sessions", file=sys.stderr)
        print("| view | cold ms | warm p50 ms | warm p99 ms | bytes |")
        print("|---|---|---|---|---|")
        for name, path in views:
            cold, body = fetch(base + path)
            warm = sorted(fetch(base + path)[0] for _ in range(a.n))
            p = lambda q: warm[min(len(warm) - 1, int(round(q * (len(warm) - 1))))]
            print(f"| {name} | {cold:.1f} | {p(0.5):.1f} | {p(0.99):.1f} | {len(body)} |")
    finally:
        ui.terminate()
        ui.wait()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""One pi session with N tool-calling turns (N + 1 model calls), for the dashboard's session-page benchmark.

    bench/long_session.py OUT_DIR N

Clones the entries of the recorded pi 1.6.0 run `02-json-openai` (tests/fixtures/recorded/pi): its header,
model and system entries and its prompt, then N copies of its tool-calling assistant message and tool result
(fresh entry and call ids, each entry the child of the one before, one second apart), then its closing answer.
OUT_DIR is usable as $HOME (`.pi/agent/sessions/...`). Prints the file written and its model calls.
"""
from __future__ import annotations

import json
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "tests/fixtures/recorded/pi/pi-1.6.0/02-json-openai/home"


def main() -> None:
    out, n = Path(sys.argv[1]), int(sys.argv[2])
    src = next(RUN.rglob("*.jsonl"))
    entries = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    head = [e for e in entries if e["type"] != "message" or e["message"]["role"] in ("system", "user")]
    calls = [e for e in entries if e["type"] == "message" and e["message"]["role"] == "assistant"]
    tool = next(e for e in entries if e["type"] == "message" and e["message"]["role"] == "toolResult")
    call, answer = calls[0], calls[-1]
    session = str(uuid.uuid4())
    start = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
    t = [start]

    def stamp() -> str:
        t[0] += timedelta(seconds=1)
        return t[0].strftime("%Y-%m-%dT%H:%M:%S.000Z")

    lines, parent, seq = [], None, 0

    def add(entry: dict) -> None:
        nonlocal parent, seq
        e = json.loads(json.dumps(entry))
        seq += 1
        if e["type"] == "session":
            e["id"], e["timestamp"] = session, stamp()
        else:
            e["id"], e["parentId"], e["timestamp"] = f"{seq:08x}", parent, stamp()
            parent = e["id"]
        lines.append(json.dumps(e))
        return e

    for e in head:
        add(e)
    for k in range(n):
        c = json.loads(json.dumps(call))
        for part in c["message"]["content"]:
            if part.get("type") == "toolCall":
                part["id"] = f"call_long_{k}"
        if "timestamp" in c["message"]:
            c["message"]["timestamp"] = int(t[0].timestamp() * 1000) + 1000
        add(c)
        r = json.loads(json.dumps(tool))
        r["message"]["toolCallId"] = f"call_long_{k}"
        add(r)
    add(answer)
    folder = out / ".pi/agent/sessions/--tmp-long-session--"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{start.strftime('%Y-%m-%dT%H-%M-%S-000Z')}_{session}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    print(f"{path} ({n + 1} model calls)")


if __name__ == "__main__":
    main()

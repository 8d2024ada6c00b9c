#!/usr/bin/env python3
"""Synthetic agent histories for benchmarks, cloned from the REAL recorded sessions.

    bench/gen.py AGENT SIZE OUT_DIR [--seed N] [--days 90] [--end 2026-12-01] [--big-share 0.1] [--runs REGEX]
    bench/gen.py append HIST [--fraction 0.01] [--seed N] [--manifest FILE]
    bench/gen.py add    HIST [--fraction 0.01] [--seed N] [--manifest FILE]
    bench/gen.py undo   HIST --manifest FILE

AGENT is claude, codex or pi; SIZE is a byte count with an optional decimal suffix (100M = 100e6 bytes,
1G, 4G). The sources are every recorded run of that agent under ../shared/corpus/<agent>/ and
tests/fixtures/recorded/<agent>/ (each run's `home/` holds the session files at the agent's default
place, and its `expected.json` the exact totals a correct parser reports for them).

Generation copies whole runs ("copies") until the size is reached:
- every copy gets fresh ids, consistently in all of its files and file names: UUIDs (sessionId, uuid,
  parentUuid, promptId, Codex thread/turn ids, pi session id), prefixed ids (msg_, req_, toolu_, resp_,
  call_, fc_, rs_, chatcmpl-: so Claude's (message.id, requestId) de-duplication never merges copies),
  Claude subagent ids (a + 16 hex) and pi entry ids (8 hex, unique within the copy);
- every copy is moved in time (whole seconds, so the fractional part is kept): ISO timestamps, epoch-ms and
  epoch-s values, and the date parts of Codex / pi file names, so that its start lands uniformly in the
  --days window ending at --end: daily reports get many rows;
- size mix: the runs with multi-MB tool outputs (a file > 1 MB) make up --big-share of the bytes, the
  other runs are drawn uniformly; Claude files also get the line types real histories are full of and the
  recordings have few of: a `file-history-snapshot` line before every typed prompt and `progress` lines
  (hook_progress for every tool call, growing bash_progress for Bash) after every tool_use.
  These carry no usage, so they change no total.
OUT_DIR is usable as $HOME (`.claude/projects/...`, `.codex/sessions/...`, `.pi/agent/sessions/...`).
OUT_DIR/expected.json: the totals the history must report (each run's expected.json x its copies:
sessions, prompts, generations, generation_errors, tool_calls, tool_errors, subagents, tokens), the bytes,
files and lines written, and the copies per run.

`append` appends ~FRACTION of the history's lines to existing session files (one block per chosen file:
a copy of one model call of that file with the lines that follow it, fresh call ids, 60 s after the file's
last line); `add` writes ~FRACTION of the copies again as new sessions on the window's last day. Both
update HIST/expected.json (generations and tokens exactly; for `append` the other counters are left as
they were and listed under "unchecked") and record what they did in the manifest, which `undo` reverts
(truncates the appended files, deletes the added ones, restores expected.json). Only for a COPY of a
history: bench/run.sh does so.
"""
from __future__ import annotations

import argparse
import calendar
import json
import os
import random
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE_ROOTS = [REPO.parent / "shared" / "corpus", REPO / "tests" / "fixtures" / "recorded"]
AGENTS = {"claude": ".claude", "codex": ".codex", "pi": ".pi"}
COUNTERS = ["sessions", "prompts", "generations", "generation_errors", "tool_calls", "tool_errors", "subagents"]
TOKENS = ["input", "cache_read", "cache_write", "output", "reasoning"]
BIG_FILE_BYTES = 1_000_000  # a run with a file this big has a multi-MB tool output

# One scan finds every slot a copy rewrites. Group name = slot kind.
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SLOT_PATTERNS = [
    ("u", UUID),
    # prefixed ids; not `msg_<uuid>` (its uuid is a slot of its own) and only with a digit in the body, so
    # that keys such as "call_id" are left alone
    ("p", r"(?<![A-Za-z0-9_])(?:msg|req|toolu|srvtoolu|resp|call|fc|fco|rs)_(?![0-9a-f]{8}-)"
          r"(?=[A-Za-z_]*[0-9])[A-Za-z0-9_]{6,}|chatcmpl-[A-Za-z0-9-]+"),
    ("a", r"(?<![A-Za-z0-9])a[0-9a-f]{16}(?![A-Za-z0-9])"),  # Claude subagent id (agent-<id>.jsonl, agentId)
    ("t", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"),  # ISO timestamp up to the seconds
    ("f", r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d"),  # the same in a file name (Codex rollout-…, pi …Z_<id>)
    ("m", r'(?<=":)1[6-9]\d{11}(?![0-9.])'),  # epoch ms (sentAtMs, pi message.timestamp, started_at_ms)
    ("s", r'(?<=":)1[6-9]\d{8}(?![0-9.])'),  # epoch s
]
PI_ENTRY = ("e", r'(?<=")[0-9a-f]{8}(?=")')  # pi entry ids (id, parentId, fromId, targetId, …)


def slot_regex(agent: str) -> re.Pattern:
    pats = SLOT_PATTERNS + ([PI_ENTRY] if agent == "pi" else [])
    return re.compile("|".join(f"(?P<{k}>{p})" for k, p in pats))


CODEX_DAY_DIR = re.compile(r"sessions/\d{4}/\d\d/\d\d/")


class Template:
    """A text cut into literals and slots; `render` fills the slots from a per-copy mapping."""

    __slots__ = ("lits", "keys")

    def __init__(self, text: str, rx: re.Pattern):
        lits, keys, pos = [], [], 0
        for m in rx.finditer(text):
            lits.append(text[pos:m.start()])
            keys.append((m.lastgroup, m.group()))
            pos = m.end()
        lits.append(text[pos:])
        self.lits, self.keys = lits, keys

    def render(self, mapping: dict) -> str:
        vals = [mapping[k] for k in self.keys]
        out = [None] * (len(self.lits) + len(vals))
        out[::2] = self.lits
        out[1::2] = vals
        return "".join(out)


def iso_to_epoch(s: str) -> int:
    return calendar.timegm((int(s[0:4]), int(s[5:7]), int(s[8:10]), int(s[11:13]), int(s[14:16]), int(s[17:19])))


class Mapper:
    """Fresh values for one copy: new random ids (pi entry ids unique within the copy), times moved by `off` s."""

    def __init__(self, rng: random.Random, off: int):
        self.rng, self.off, self.seen = rng, off, set()

    def hexs(self, n: int) -> str:
        return "%0*x" % (n, self.rng.getrandbits(4 * n))

    def value(self, kind: str, s: str) -> str:
        if kind == "u":
            h = self.hexs(32)
            return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
        if kind == "p":
            cut = s.index("-") + 1 if s.startswith("chatcmpl-") else s.index("_") + 1
            return s[:cut] + self.hexs(max(len(s) - cut, 16))
        if kind == "a":
            return "a" + self.hexs(16)
        if kind == "e":
            while True:
                v = self.hexs(8)
                if v not in self.seen:
                    self.seen.add(v)
                    return v
        if kind == "t":
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(iso_to_epoch(s) + self.off))
        if kind == "f":
            t = iso_to_epoch(s[:13] + ":" + s[14:16] + ":" + s[17:19])
            return time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(t + self.off))
        if kind == "m":
            return str(int(s) + self.off * 1000)
        if kind == "s":
            return str(int(s) + self.off)
        raise ValueError(kind)

    def mapping(self, keys) -> dict:
        return {k: self.value(*k) for k in keys}


# ---------------------------------------------------------------------------------------------- Claude extras

def claude_extras(text: str, rng: random.Random) -> str:
    """Adds what real Claude Code histories have and the recordings have few of: a file-history-snapshot line
    before every typed prompt, progress lines after every tool_use. Original lines stay byte for byte."""
    out = []
    for line in text.splitlines(keepends=True):
        try:
            d = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        if not isinstance(d, dict):
            out.append(line)
            continue
        msg = d.get("message") if isinstance(d.get("message"), dict) else {}
        ts = d.get("timestamp") or "2026-11-23T00:00:00.000Z"
        if (d.get("type") == "user" and isinstance(msg.get("content"), str) and not d.get("isMeta")
                and not d.get("isCompactSummary") and d.get("uuid")):
            files = {
                f"src/{rng.choice(['lib', 'cli', 'store', 'report', 'sources'])}/mod_{i}.rs": {
                    "backupFileName": f"{rng.getrandbits(64):016x}@v{v}", "version": v, "backupTime": ts}
                for i in range(rng.randint(0, 40)) for v in [rng.randint(1, 9)]}
            snap = {"type": "file-history-snapshot", "messageId": d["uuid"],
                    "snapshot": {"messageId": d["uuid"], "trackedFileBackups": files, "timestamp": ts},
                    "isSnapshotUpdate": False}
            out.append(json.dumps(snap, separators=(",", ":")) + "\n")
        out.append(line)
        if d.get("type") != "assistant" or not isinstance(msg.get("content"), list):
            continue
        common = {k: d[k] for k in ("isSidechain", "userType", "cwd", "sessionId", "version", "gitBranch", "agentId")
                  if k in d}
        for block in msg["content"]:
            if not isinstance(block, dict) or block.get("type") != "tool_use":
                continue
            name, tid = block.get("name", "Tool"), block.get("id", "toolu_x")
            datas = [{"type": "hook_progress", "hookEvent": "PreToolUse", "hookName": f"PreToolUse:{name}",
                      "command": "callback"}]
            if name == "Bash":
                full = ""
                for step in range(rng.randint(2, 8)):
                    chunk = "".join(f"[{step}:{i}] Compiling crate_{rng.randint(1, 400)} v0.{rng.randint(0, 40)}.{i}"
                                    f" (/home/user/project/crates/c{i})\n" for i in range(rng.randint(3, 25)))
                    full += chunk
                    datas.append({"type": "bash_progress", "output": chunk[-2000:], "fullOutput": full,
                                  "elapsedTimeSeconds": step + 1, "totalLines": full.count("\n")})
            datas.append({"type": "hook_progress", "hookEvent": "PostToolUse", "hookName": f"PostToolUse:{name}",
                          "command": "callback"})
            for i, data in enumerate(datas):
                p = {"parentUuid": d.get("uuid"), **common, "type": "progress", "data": data,
                     "toolUseID": f"bash-progress-{i}" if data["type"] == "bash_progress" else tid,
                     "parentToolUseID": tid, "uuid": str(_uuid(rng)), "timestamp": ts}
                out.append(json.dumps(p, separators=(",", ":"), ensure_ascii=False) + "\n")
    return "".join(out)


def _uuid(rng: random.Random) -> str:
    h = "%032x" % rng.getrandbits(128)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


# ---------------------------------------------------------------------------------------------- sources

class Run:
    def __init__(self, agent: str, root: Path, rel: str, rng: random.Random):
        self.name = rel
        self.expected = json.loads((root / "expected.json").read_text())
        rx = slot_regex(agent)
        home = root / "home"
        self.files = []  # (path template, content template)
        self.bytes = self.lines = self.biggest = 0
        keys = set()
        t0 = None
        for p in sorted(home.rglob("*")):
            if not p.is_file():
                continue
            relp = p.relative_to(home).as_posix()
            text = p.read_text(encoding="utf-8")
            if agent == "claude" and p.suffix == ".jsonl":
                text = claude_extras(text, rng)
            pt, ct = Template(relp, rx), Template(text, rx)
            self.files.append((pt, ct))
            keys.update(pt.keys)
            keys.update(ct.keys)
            self.bytes += len(text.encode("utf-8"))
            self.biggest = max(self.biggest, len(text))
            if p.suffix == ".jsonl":
                self.lines += text.count("\n")
            for k, v in ct.keys:
                if k == "t":
                    e = iso_to_epoch(v)
                    t0 = e if t0 is None else min(t0, e)
        self.keys = sorted(keys)
        self.start = t0 or 0
        self.end = max((iso_to_epoch(v) for k, v in self.keys if k == "t"), default=self.start)

    def write_copy(self, out: Path, mapper: Mapper) -> tuple[int, list[str]]:
        mapping = mapper.mapping(self.keys)
        n, written = 0, []
        for pt, ct in self.files:
            rel = pt.render(mapping)
            if "/sessions/" in rel and rel.startswith(".codex/"):
                # Codex keeps rollouts under sessions/YYYY/MM/DD/ of their (moved) start
                m = re.search(r"rollout-(\d{4})-(\d\d)-(\d\d)T", rel)
                if m:
                    rel = CODEX_DAY_DIR.sub(f"sessions/{m[1]}/{m[2]}/{m[3]}/", rel)
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            data = ct.render(mapping).encode("utf-8")
            with open(dest, "wb") as f:
                f.write(data)
            n += len(data)
            written.append(rel)
        return n, written


def load_runs(agent: str, seed: int, only: str | None = None) -> list[Run]:
    rng = random.Random(seed)
    runs = []
    for base in SOURCE_ROOTS:
        d = base / agent
        if not d.is_dir():
            continue
        for exp in sorted(d.glob("*/*/expected.json")):
            root = exp.parent
            name = f"{base.name}/{root.relative_to(base).as_posix()}"
            if only and not re.search(only, name):
                continue
            if (root / "home" / AGENTS[agent]).is_dir():
                runs.append(Run(agent, root, f"{base.name}/{root.relative_to(base).as_posix()}", rng))
    if not runs:
        sys.exit(f"no recorded {agent} runs under {', '.join(map(str, SOURCE_ROOTS))}")
    return runs


def parse_size(s: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgGtT]?)B?", s)
    if not m:
        sys.exit(f"bad size {s!r} (e.g. 100M, 1G, 4G)")
    return int(float(m[1]) * 1000 ** " kmgt".index((m[2] or " ").lower()))


def empty_totals() -> dict:
    return {**{c: 0 for c in COUNTERS}, "tokens": {t: 0 for t in TOKENS}}


def add_totals(tot: dict, exp: dict, times: int = 1) -> None:
    for c in COUNTERS:
        tot[c] += (exp.get(c) or 0) * times
    for t in TOKENS:
        tot["tokens"][t] += (exp.get("tokens", {}).get(t) or 0) * times


def generate(agent, runs, out: Path, target: int, rng: random.Random, window: tuple[int, int],
             big_share: float, copy_base: int = 0):
    """Writes copies into `out` until `target` bytes; returns (totals, bytes, files, lines, copies per run, paths)."""
    big = [r for r in runs if r.biggest > BIG_FILE_BYTES]
    small = [r for r in runs if r.biggest <= BIG_FILE_BYTES] or runs
    big_target = target * big_share if big else 0
    totals, nbytes, nfiles, nlines, copies, paths = empty_totals(), 0, 0, 0, {}, []
    big_bytes = small_bytes = 0
    lo, hi = window
    while nbytes < target:
        # the big runs keep their share of the bytes written so far (at least one copy of one of them)
        if big and (big_bytes < big_target and (big_bytes == 0 or big_bytes < big_share * nbytes)):
            run = rng.choice(big)
        else:
            run = rng.choice(small)
        span = max(run.end - run.start, 0)
        start = rng.randint(lo, max(lo, hi - span))
        n, written = run.write_copy(out, Mapper(rng, start - run.start))
        if run in big:
            big_bytes += n
        else:
            small_bytes += n
        nbytes += n
        nfiles += len(written)
        nlines += run.lines
        paths += written
        copies[run.name] = copies.get(run.name, 0) + 1
        add_totals(totals, run.expected)
    return totals, nbytes, nfiles, nlines, copies, paths


def window_of(end: str, days: int) -> tuple[int, int]:
    hi = iso_to_epoch(end + "T00:00:00") if len(end) == 10 else iso_to_epoch(end)
    return hi - days * 86400, hi


def cmd_generate(a):
    out = Path(a.out_dir)
    if out.exists() and any(out.iterdir()):
        sys.exit(f"{out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    runs = load_runs(a.agent, a.seed, a.runs)
    rng = random.Random(a.seed)
    window = window_of(a.end, a.days)
    totals, nbytes, nfiles, nlines, copies, _ = generate(a.agent, runs, out, parse_size(a.size), rng, window,
                                                         a.big_share)
    doc = {
        "agent": a.agent, "generator": "bench/gen.py", "seed": a.seed, "runs_filter": a.runs,
        "target_bytes": parse_size(a.size),
        "bytes": nbytes, "files": nfiles, "lines": nlines, "copies": sum(copies.values()),
        "window": {"start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(window[0])),
                   "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(window[1]))},
        **totals,
        "copies_per_run": dict(sorted(copies.items())),
        "source_runs": {r.name: {"bytes": r.bytes, "lines": r.lines} for r in runs},
        "notes": "totals = sum over source runs of expected.json x copies (counters and tokens in the corpus' "
                 "normalized meaning: input excludes cache, output includes reasoning). The extra Claude lines "
                 "(file-history-snapshot, progress) carry no usage.",
    }
    (out / "expected.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{a.agent}: {doc['copies']} copies of {len(runs)} runs, {nfiles} files, {nlines} lines, "
          f"{nbytes / 1e6:.1f} MB in {time.time() - t:.1f} s -> {out}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- append / add

def detect_agent(hist: Path) -> str:
    return json.loads((hist / "expected.json").read_text())["agent"]


def session_files(hist: Path, agent: str) -> list[Path]:
    if agent == "claude":  # main transcripts only: .claude/projects/<project>/<session>.jsonl
        return sorted(p for p in (hist / ".claude" / "projects").glob("*/*.jsonl"))
    if agent == "codex":
        return sorted((hist / ".codex" / "sessions").rglob("*.jsonl"))
    return sorted((hist / ".pi" / "agent" / "sessions").rglob("*.jsonl"))


def _usage_claude(d) -> dict:
    u = (d.get("message") or {}).get("usage") or {}
    return {"input": u.get("input_tokens") or 0, "cache_read": u.get("cache_read_input_tokens") or 0,
            "cache_write": u.get("cache_creation_input_tokens") or 0, "output": u.get("output_tokens") or 0,
            "reasoning": (u.get("output_tokens_details") or {}).get("thinking_tokens") or 0}


def _usage_codex(d) -> dict:
    u = (d.get("payload") or {}).get("usage") or {}
    return {"input": (u.get("input_tokens") or 0) - (u.get("cached_input_tokens") or 0),
            "cache_read": u.get("cached_input_tokens") or 0, "cache_write": u.get("cache_write_input_tokens") or 0,
            "output": u.get("output_tokens") or 0, "reasoning": u.get("reasoning_output_tokens") or 0}


def _usage_pi(d) -> dict:
    u = (d.get("message") or {}).get("usage") or {}
    return {"input": u.get("input") or 0, "cache_read": u.get("cacheRead") or 0,
            "cache_write": u.get("cacheWrite") or 0, "output": u.get("output") or 0,
            "reasoning": u.get("reasoning") or 0}


def pick_block(agent: str, docs: list, rng: random.Random):
    """A block of lines around ONE model call whose generation and tokens are certain: (start, end, usage)."""
    cands = []
    if agent == "claude":
        for i, d in enumerate(docs):
            if (d.get("type") == "assistant" and not d.get("isApiErrorMessage") and not d.get("isSidechain")
                    and (i == 0 or docs[i - 1].get("type") != "assistant"
                         or (docs[i - 1].get("message") or {}).get("id") != (d.get("message") or {}).get("id"))):
                key = ((d.get("message") or {}).get("id"), d.get("requestId"))
                if not key[0] or not key[1]:
                    continue
                j, last = i, d
                while j + 1 < len(docs) and not (docs[j + 1].get("type") == "assistant"
                                                 and ((docs[j + 1].get("message") or {}).get("id"),
                                                      docs[j + 1].get("requestId")) != key):
                    j += 1
                    if docs[j].get("type") == "assistant":
                        last = docs[j]
                block = docs[i:j + 1]
                if any(b.get("type") in ("system", "summary", "cost-state") or b.get("isCompactSummary")
                       or (b.get("type") == "user" and isinstance((b.get("message") or {}).get("content"), str))
                       for b in block):
                    continue
                u = _usage_claude(last)
                if sum(u.values()):
                    cands.append((i, j + 1, u))
    elif agent == "codex":
        counts = [i for i, d in enumerate(docs)
                  if d.get("type") == "event_msg" and (d.get("payload") or {}).get("type") == "token_count"]
        for a, b in zip(counts, counts[1:]):
            block = docs[a + 1:b + 1]
            recs = [d for d in block if d.get("type") == "token_usage_record"]
            ok = all(d.get("type") in ("response_item", "token_usage_record")
                     or (d.get("type") == "event_msg"
                         and (d.get("payload") or {}).get("type") in ("item_completed", "token_count"))
                     for d in block)
            if len(recs) == 1 and ok:
                cands.append((a + 1, b + 1, _usage_codex(recs[0])))
    else:
        for i, d in enumerate(docs):
            m = d.get("message") or {}
            if d.get("type") == "message" and m.get("role") == "assistant" and m.get("stopReason") in ("toolUse", "stop"):
                j = i + 1
                while j < len(docs) and docs[j].get("type") == "message" and (docs[j].get("message") or {}).get(
                        "role") == "toolResult":
                    j += 1
                cands.append((i, j, _usage_pi(d)))
    return rng.choice(cands) if cands else None


def cmd_append(a):
    hist = Path(a.hist)
    agent = detect_agent(hist)
    exp_path = hist / "expected.json"
    exp = json.loads(exp_path.read_text())
    manifest = {"expected": exp, "truncate": {}, "remove": []}
    # a seed of its own: the generator's sequence again would repeat the ids of the first copies
    rng = random.Random(f"append:{a.seed}:{exp.get('seed')}")
    files = session_files(hist, agent)
    target = max(1, int(exp["lines"] * a.fraction))
    rx = slot_regex(agent)
    added_lines, gens, tok, touched = 0, 0, {t: 0 for t in TOKENS}, 0
    order = rng.sample(files, len(files))
    for p in order:
        if added_lines >= target:
            break
        raw = p.read_bytes()
        lines = raw.decode("utf-8").splitlines(keepends=True)
        try:
            docs = [json.loads(l) for l in lines]
        except ValueError:
            continue
        blk = pick_block(agent, docs, rng)
        if not blk:
            continue
        i, j, usage = blk
        text = "".join(lines[i:j])
        if not text.endswith("\n"):
            text += "\n"
        last_ts = max((iso_to_epoch(m.group()) for m in re.finditer(SLOT_PATTERNS[3][1], lines[-1])), default=None)
        first = re.search(SLOT_PATTERNS[3][1], text)
        off = (last_ts - iso_to_epoch(first.group()) + 60) if (last_ts and first) else 60
        # fresh ids for what identifies the call (message / request / response / tool ids, line uuids, pi
        # entry ids); the session's own ids and the subagent ids stay
        keep = {p.stem, p.stem[-36:]}
        if agent == "claude":
            keep |= {d.get("sessionId") for d in docs[:3]}
        mapper = Mapper(rng, off)
        t = Template(text, rx)
        mapping = {}
        for k in set(t.keys):
            kind, s = k
            if kind == "a" or s in keep or (agent == "codex" and kind == "u"):
                mapping[k] = mapper.value(kind, s) if kind in "tmsf" else s
            else:
                mapping[k] = mapper.value(kind, s)
        new = t.render(mapping).splitlines(keepends=True)
        # hang the block under the file's last entry
        try:
            d0, dl = json.loads(new[0]), docs[-1]
            if agent == "claude" and "parentUuid" in d0 and dl.get("uuid"):
                d0["parentUuid"] = dl["uuid"]
            elif agent == "pi" and "parentId" in d0 and dl.get("id"):
                d0["parentId"] = dl["id"]
            new[0] = json.dumps(d0, separators=(",", ":"), ensure_ascii=False) + "\n"
        except ValueError:
            pass
        manifest["truncate"][str(p)] = len(raw)
        with open(p, "ab") as f:
            if not raw.endswith(b"\n"):
                f.write(b"\n")
            f.write("".join(new).encode("utf-8"))
        added_lines += len(new)
        gens += 1
        touched += 1
        for k in TOKENS:
            tok[k] += usage[k]
    new_exp = json.loads(json.dumps(exp))
    new_exp["generations"] += gens
    for k in TOKENS:
        new_exp["tokens"][k] += tok[k]
    new_exp["lines"] += added_lines
    new_exp.setdefault("unchecked", [])
    for c in ("prompts", "tool_calls", "tool_errors"):
        if c not in new_exp["unchecked"]:
            new_exp["unchecked"].append(c)
    new_exp["append"] = {"files": touched, "lines": added_lines, "generations": gens, "tokens": tok}
    exp_path.write_text(json.dumps(new_exp, indent=1) + "\n")
    Path(a.manifest).write_text(json.dumps(manifest))
    print(f"appended {added_lines} lines ({gens} model calls) to {touched} files", file=sys.stderr)


def cmd_add(a):
    hist = Path(a.hist)
    exp_path = hist / "expected.json"
    exp = json.loads(exp_path.read_text())
    agent = exp["agent"]
    manifest = {"expected": exp, "truncate": {}, "remove": []}
    runs = load_runs(agent, exp.get("seed", 1), exp.get("runs_filter"))
    rng = random.Random(f"add:{a.seed}:{exp.get('seed')}")  # not the generator's sequence: fresh ids
    end = iso_to_epoch(exp["window"]["end"][:19])
    target = max(1, int(exp["bytes"] * a.fraction))
    totals, nbytes, nfiles, nlines, copies, paths = generate(agent, runs, hist, target, rng, (end - 86400, end), 0.0)
    new_exp = json.loads(json.dumps(exp))
    for c in COUNTERS:
        new_exp[c] += totals[c]
    for t in TOKENS:
        new_exp["tokens"][t] += totals["tokens"][t]
    new_exp["bytes"] += nbytes
    new_exp["files"] += nfiles
    new_exp["lines"] += nlines
    new_exp["add"] = {"copies": sum(copies.values()), "files": nfiles, "bytes": nbytes}
    manifest["remove"] = paths
    exp_path.write_text(json.dumps(new_exp, indent=1) + "\n")
    Path(a.manifest).write_text(json.dumps(manifest))
    print(f"added {nfiles} files ({sum(copies.values())} copies, {nbytes / 1e6:.1f} MB)", file=sys.stderr)


def cmd_undo(a):
    hist = Path(a.hist)
    m = json.loads(Path(a.manifest).read_text())
    for p, size in m["truncate"].items():
        os.truncate(p, size)
    for rel in m["remove"]:
        (hist / rel).unlink(missing_ok=True)
    (hist / "expected.json").write_text(json.dumps(m["expected"], indent=1) + "\n")


def main():
    argv = sys.argv[1:]
    if argv and argv[0] in ("append", "add", "undo"):
        ap = argparse.ArgumentParser(prog=f"gen.py {argv[0]}")
        ap.add_argument("hist")
        ap.add_argument("--fraction", type=float, default=0.01)
        ap.add_argument("--seed", type=int, default=2)
        ap.add_argument("--manifest", required=True)
        a = ap.parse_args(argv[1:])
        {"append": cmd_append, "add": cmd_add, "undo": cmd_undo}[argv[0]](a)
        return
    ap = argparse.ArgumentParser(prog="gen.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("agent", choices=sorted(AGENTS))
    ap.add_argument("size", help="100M, 1G, 4G (decimal)")
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--end", default="2026-12-01", help="window end (UTC date)")
    ap.add_argument("--runs", metavar="REGEX", help="only the source runs whose name matches "
                    "(e.g. 'corpus/' for the shared corpus only, 'claude-2.1.332')")
    ap.add_argument("--big-share", type=float, default=0.1,
                    help="share of the bytes from the runs with multi-MB tool outputs (default 0.1)")
    cmd_generate(ap.parse_args(argv))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Helper of scripts/rig-watch.sh (python stdlib only): an OTLP/HTTP collector, and the comparison.

  rig_watch_collector.py serve OUT_DIR
      Listen on 127.0.0.1 (a free port, written to OUT_DIR/port once listening). Every POST to /v1/traces is
      stored as OUT_DIR/NNNN.body (gunzipped when Content-Encoding is gzip) plus a line in OUT_DIR/index.jsonl
      ({n, content_type, encoding, bytes}); the answer is 200 `{}`. Other paths get 404. Stops on SIGTERM.

  rig_watch_collector.py state OUT_DIR
      One line that changes whenever the collector's latest span versions change (for polling).

  rig_watch_collector.py matches OUT_DIR DRY_RUN_DIR
      Exit 0 when the collector's latest span versions equal the dry run's spans, else 1.

  rig_watch_collector.py compare --collector OUT_DIR --dry-run DIR --report FILE [--watch-exit N]
                                 [--ground-truth FILE --models MODELS_JSON]
      Prints both sides' totals and PASS, or FAIL: ... (exit 1).
        collector : the LATEST version of every span (key traceId+spanId; a later request replaces an earlier
                    one), summed over generation spans (langfuse.observation.type = generation)
        dry run   : the OTLP/JSON requests `tokentrace sync --dry-run` wrote for the same files (fresh store);
                    span ids and every span (attributes as a map) must equal the collector's latest versions
        report    : `tokentrace report session --json --no-import` on watch's store (its `totals`)
        mock      : the mock LLM's own record of its responses (rig normalize_ground_truth.py), minus pi's
                    compaction calls (pi 0.73.1 records no usage for them), cost at models.json prices
      Every row must be equal on every side (traces vs prompts too: these scenarios make no model call
      outside a prompt); cost to 1e-9 USD.
      Input tokens: gen_ai.usage.input_tokens is the WHOLE prompt (uncached + cache read + cache write, see
      src/sinks/encode.rs observation_attributes / Usage::prompt_tokens), report's `input` is the uncached
      part only; the table shows the uncached part on both sides (OTLP: input_tokens - cache_read -
      cache_creation) and also checks the whole prompt.
"""
import gzip
import hashlib
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# ---------------------------------------------------------------------------------------------- collector
def serve(out):
    os.makedirs(out, exist_ok=True)
    lock = threading.Lock()
    counter = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def _answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.split("?", 1)[0] != "/v1/traces":
                self._answer(404, {"error": f"unknown path {self.path}"})
                return
            enc = (self.headers.get("Content-Encoding") or "").lower()
            body = gzip.decompress(raw) if enc == "gzip" else raw
            with lock:
                counter[0] += 1
                n = counter[0]
                tmp = os.path.join(out, f"{n:04d}.body.tmp")
                with open(tmp, "wb") as f:
                    f.write(body)
                os.replace(tmp, os.path.join(out, f"{n:04d}.body"))
                with open(os.path.join(out, "index.jsonl"), "a") as f:
                    f.write(json.dumps({"n": n, "content_type": self.headers.get("Content-Type"),
                                        "encoding": enc or None, "bytes": len(raw)}) + "\n")
            self._answer(200, {})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    with open(os.path.join(out, "port.tmp"), "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(os.path.join(out, "port.tmp"), os.path.join(out, "port"))
    server.serve_forever()


# ---------------------------------------------------------------------------------------------- spans
def _value(v):
    """OTLP/JSON AnyValue -> a comparable python value."""
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])  # OTLP/JSON writes int64 as a string
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return tuple(_value(x) for x in v["arrayValue"].get("values", []))
    if "kvlistValue" in v:
        return tuple(sorted((kv["key"], _value(kv.get("value", {}))) for kv in v["kvlistValue"].get("values", [])))
    return json.dumps(v, sort_keys=True)


def _attrs(kvs):
    out = {}
    for kv in kvs or []:
        if kv["key"] in out:
            raise ValueError(f"attribute {kv['key']} twice")
        out[kv["key"]] = _value(kv.get("value", {}))
    return out


def spans_of_request(doc):
    """(key, span) for every span of one OTLP/JSON request; span = dict with attributes as a map."""
    for rs in doc.get("resourceSpans", []):
        res = _attrs((rs.get("resource") or {}).get("attributes"))
        for ss in rs.get("scopeSpans", []):
            scope = ss.get("scope") or {}
            for sp in ss.get("spans", []):
                s = dict(sp)
                s["attributes"] = _attrs(sp.get("attributes"))
                if "events" in s:
                    s["events"] = [dict(e, attributes=_attrs(e.get("attributes"))) for e in s["events"]]
                s["_resource"] = res
                s["_scope"] = (scope.get("name"), scope.get("version"))
                yield (sp["traceId"].lower(), sp["spanId"].lower()), s


def latest_spans(bodies):
    """bodies: list of (name, bytes) in request order -> ({key: latest span}, total spans seen)."""
    latest, seen = {}, 0
    for name, data in bodies:
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise SystemExit(f"FAIL: {name} is not OTLP/JSON ({e}); was OTEL_EXPORTER_OTLP_PROTOCOL=http/json honoured?")
        for key, s in spans_of_request(doc):
            latest[key] = s
            seen += 1
    return latest, seen


def collector_bodies(out):
    names = sorted(f for f in os.listdir(out) if f.endswith(".body"))
    return [(n, open(os.path.join(out, n), "rb").read()) for n in names]


def dry_run_bodies(top):
    files = []
    for root, _, names in os.walk(top):
        files += [os.path.join(root, n) for n in names if n.startswith("request-") and n.endswith(".json")]
    files.sort()
    return [(os.path.relpath(f, top), open(f, "rb").read()) for f in files]


def state(out):
    latest, seen = latest_spans(collector_bodies(out))
    digest = hashlib.sha256(json.dumps(sorted((k, json.dumps(v, sort_keys=True, default=str))
                                              for k, v in latest.items())).encode()).hexdigest()[:16]
    print(f"{len(latest)} {seen} {digest}")


def matches(out, top):
    """Exit 0 when the collector's latest span versions equal the dry run's spans."""
    latest, _ = latest_spans(collector_bodies(out))
    dry, _ = latest_spans(dry_run_bodies(top))
    return 0 if latest == dry else 1


# ---------------------------------------------------------------------------------------------- totals
def otlp_totals(latest):
    t = dict(sessions=len({s["attributes"].get("session.id") for s in latest.values()} - {None}),
             traces=len({k[0] for k in latest}), spans=len(latest), generations=0, prompt=0, input=0,
             cache_read=0, cache_write=0, output=0, reasoning=0, cost_usd=0.0)
    for s in latest.values():
        a = s["attributes"]
        if a.get("langfuse.observation.type") != "generation":
            continue
        t["generations"] += 1
        prompt = a.get("gen_ai.usage.input_tokens", 0)
        cr = a.get("gen_ai.usage.cache_read.input_tokens", 0)
        cw = a.get("gen_ai.usage.cache_creation.input_tokens", 0)
        t["prompt"] += prompt
        t["input"] += prompt - cr - cw
        t["cache_read"] += cr
        t["cache_write"] += cw
        t["output"] += a.get("gen_ai.usage.output_tokens", 0)
        t["reasoning"] += a.get("gen_ai.usage.reasoning.output_tokens", 0)
        t["cost_usd"] += a.get("llm.cost.total", 0.0)
    return t


def report_totals(path):
    doc = json.load(open(path))
    tot = doc["totals"]
    tk = tot["tokens"]
    return dict(sessions=tot["sessions"], prompts=tot["prompts"], generations=tot["generations"],
                input=tk["input"], cache_read=tk["cache_read"], cache_write=tk["cache_write"],
                output=tk["output"], reasoning=tk["reasoning"],
                prompt=tk["input"] + tk["cache_read"] + tk["cache_write"], cost_usd=tot["cost_usd"],
                rows=len(doc["rows"]))


def ground_truth_totals(path, models_json):
    """The mock's own record (rig normalize_ground_truth.py: one line per response it sent) WITHOUT the
    compaction calls: pi before 0.81 (0.73.1 here) writes no usage for its compaction summaries, so no session
    file and no tokentrace output can hold them. Cost from the rig's models.json prices (USD per Mtok)."""
    prices = {}
    for prov in json.load(open(models_json))["providers"].values():
        for m in prov["models"]:
            prices[m["id"]] = m["cost"]
    rows = [json.loads(l) for l in open(path) if l.strip()]
    t = dict(responses=0, input=0, cache_read=0, cache_write=0, output=0, reasoning=0, cost_usd=0.0, kinds={})
    for r in rows:
        t["kinds"][r["kind"]] = t["kinds"].get(r["kind"], 0) + 1
        if r["kind"] == "compaction":
            continue
        t["responses"] += 1
        for k in ("input", "cache_read", "cache_write", "output", "reasoning"):
            t[k] += r.get(k) or 0
        p = prices[r["model"]]
        t["cost_usd"] += (r["input"] * p["input"] + r["output"] * p["output"] + r["cache_read"] * p["cacheRead"]
                          + r["cache_write"] * p["cacheWrite"]) / 1e6
    t["prompt"] = t["input"] + t["cache_read"] + t["cache_write"]
    return t


def _diff_span(a, b):
    """Names of the fields in which two spans differ (attributes key by key)."""
    out = []
    for k in sorted(set(a) | set(b)):
        if k == "attributes":
            aa, bb = a.get(k, {}), b.get(k, {})
            for ak in sorted(set(aa) | set(bb)):
                if aa.get(ak, "<absent>") != bb.get(ak, "<absent>"):
                    out.append(f"attribute {ak}: collector {str(aa.get(ak, '<absent>'))[:80]!r} "
                               f"vs dry run {str(bb.get(ak, '<absent>'))[:80]!r}")
        elif a.get(k) != b.get(k):
            out.append(f"{k}: collector {str(a.get(k))[:80]!r} vs dry run {str(b.get(k))[:80]!r}")
    return out


def compare(args):
    failures = []
    bodies = collector_bodies(args["collector"])
    latest, seen = latest_spans(bodies)
    dry, dry_seen = latest_spans(dry_run_bodies(args["dry_run"]))
    col, dr = otlp_totals(latest), otlp_totals(dry)
    rep = report_totals(args["report"])
    gt = ground_truth_totals(args["ground_truth"], args["models"]) if args.get("ground_truth") else None

    print(f"collector: {len(bodies)} requests, {seen} span versions, {len(latest)} distinct spans; "
          f"dry run: {dry_seen} spans in {len(dry_run_bodies(args['dry_run']))} requests")
    rows = [
        # label, collector, dry run, report, mock (None: not compared)
        ("sessions (session.id)", col["sessions"], dr["sessions"], rep["sessions"], None),
        ("traces (OTLP) / prompts (report)", col["traces"], dr["traces"], rep["prompts"], None),
        ("generations", col["generations"], dr["generations"], rep["generations"], "responses"),
        ("input, uncached", col["input"], dr["input"], rep["input"], "input"),
        ("cache read", col["cache_read"], dr["cache_read"], rep["cache_read"], "cache_read"),
        ("cache write", col["cache_write"], dr["cache_write"], rep["cache_write"], "cache_write"),
        ("input+cache (OTLP gen_ai.usage.input_tokens)", col["prompt"], dr["prompt"], rep["prompt"], "prompt"),
        ("output", col["output"], dr["output"], rep["output"], "output"),
        ("reasoning", col["reasoning"], dr["reasoning"], rep["reasoning"], "reasoning"),
        ("cost USD (llm.cost.total / cost_usd)", col["cost_usd"], dr["cost_usd"], rep["cost_usd"], "cost_usd"),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"{'':{w}} {'collector':>11} {'dry run':>11} {'report':>11}" + (f" {'mock':>11}" if gt else ""))
    for label, c, d, r, g in rows:
        m = gt[g] if gt and g else None
        if isinstance(r, float):
            cell = lambda x: f"{x:11.7f}"
            same = lambda x, y: abs(x - y) <= 1e-9
        else:
            cell = lambda x: f"{x:11d}"
            same = lambda x, y: x == y
        line = f"{label:{w}} {cell(c)} {cell(d)} {cell(r)}"
        if gt:
            line += f" {cell(m)}" if m is not None else f" {'':>11}"
        print(line)
        if not (same(c, d) and same(c, r) and (m is None or same(c, m))):
            failures.append(f"{label}: collector {c!r}, dry run {d!r}, report {r!r}"
                            + (f", mock {m!r}" if m is not None else ""))
    if gt:
        print(f"mock = the mock LLM's responses {gt['kinds']} minus the compaction calls (pi 0.73.1 writes no "
              f"usage for them), cost at the rig's models.json prices")

    # the span-by-span check: collector's latest versions == dry run
    only_c = sorted(set(latest) - set(dry))
    only_d = sorted(set(dry) - set(latest))
    if only_c:
        failures.append(f"{len(only_c)} spans only at the collector, e.g. {only_c[:3]}")
    if only_d:
        failures.append(f"{len(only_d)} spans only in the dry run, e.g. {only_d[:3]}")
    differing = []
    for k in sorted(set(latest) & set(dry)):
        if latest[k] != dry[k]:
            differing.append((k, _diff_span(latest[k], dry[k])))
    if differing:
        k, d = differing[0]
        failures.append(f"{len(differing)} of {len(latest)} spans differ from the dry run, e.g. {k[0]}/{k[1]} "
                        f"({latest[k].get('name')}): " + "; ".join(d[:5]))
    elif not only_c and not only_d:
        print(f"spans: {len(set(latest) & set(dry))} ids equal on both sides, every span (name, times, parent, "
              f"status, attributes, resource) equal to the dry run's")
    if args.get("watch_exit") not in (None, "0"):
        failures.append(f"watch exited {args['watch_exit']} after SIGTERM, not 0")
    if col["generations"] == 0 or col["traces"] < 2:
        failures.append(f"too little arrived: {col['traces']} traces, {col['generations']} generations")
    if failures:
        print("FAIL: " + "\n      ".join(failures))
        return 1
    print("PASS")
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "serve":
        serve(argv[2])
        return 0
    if len(argv) >= 3 and argv[1] == "state":
        state(argv[2])
        return 0
    if len(argv) >= 4 and argv[1] == "matches":
        return matches(argv[2], argv[3])
    if len(argv) >= 2 and argv[1] == "compare":
        opts, it = {}, iter(argv[2:])
        for flag in it:
            opts[flag.lstrip("-").replace("-", "_")] = next(it)
        return compare(opts)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Tabulates what scripts/compare-ccusage.sh collected: ccusage vs tokentrace vs the corpus ground truth.

Input: a directory with, per run NNN, `NNN.run` (its name, agent/agent-version/run), `NNN.path`, `NNN.agent`, `NNN.expected.json`,
`NNN.ccusage.json` (+ `.cmd`, `.err`), optionally `NNN.ccusage-pipath.json` (oh-my-pi runs) and
`NNN.tokentrace.json`. Output: Markdown tables (readable as plain text too) on stdout.

Only the standard library: the script must run wherever python3 does.
"""
import json
import os
import sys
from collections import OrderedDict

FIELDS = ["input", "cache_read", "cache_write", "output", "reasoning"]
HEAD = ["input", "cache read", "cache write", "output", "reasoning", "cost USD"]

# How ccusage's JSON `totals` map onto tokentrace's (and expected.json's) meaning. Checked on the corpus
# against the raw session fields, agent by agent (docs/ccusage.md shows the evidence):
#   inputTokens          -> input        ccusage already subtracts the cached part where the agent's raw
#                                        field includes it (Codex input_tokens, Gemini input), so as is
#   cacheReadTokens      -> cache_read
#   cacheCreationTokens  -> cache_write
#   outputTokens         -> output       as is: for Codex it includes reasoning (like tokentrace); for
#                                        Gemini it EXCLUDES thoughts (tokentrace includes them)
#   reasoningOutputTokens-> reasoning    only the Codex reports have it; elsewhere ccusage shows none ("-")
#   totalCost / costUSD  -> cost USD
#   totalTokens - (input + cache read + cache write + output) -> column "ccusage hidden": tokens ccusage
#                                        counts in its total but in none of its columns (Gemini thoughts)
MAPPING = (
    "ccusage JSON `totals` -> tokentrace meaning: inputTokens -> input (uncached; ccusage already subtracts "
    "cached tokens for Codex and Gemini), cacheReadTokens -> cache read, cacheCreationTokens -> cache write, "
    "outputTokens -> output (taken as is: includes reasoning for Codex, EXCLUDES thoughts for Gemini), "
    "reasoningOutputTokens -> reasoning (Codex only; '-' = ccusage reports none), totalCost|costUSD -> cost. "
    "'ccusage hidden' = totalTokens - (input + cache read + cache write + output): tokens in ccusage's total "
    "that none of its columns shows. tokentrace: `totals.tokens.*` and `totals.cost_usd` as printed "
    "(input excludes cache, output includes reasoning). expected: the run's expected.json."
)


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def from_ccusage(doc):
    """Normalised figures from a ccusage report (any subcommand: the shape of `totals` is shared)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("totals"), dict):
        return None
    t = doc["totals"]
    v = {
        "input": t.get("inputTokens", 0),
        "cache_read": t.get("cacheReadTokens", 0),
        "cache_write": t.get("cacheCreationTokens", 0),
        "output": t.get("outputTokens", 0),
        "reasoning": t.get("reasoningOutputTokens"),  # None: ccusage has no such column for this agent
        "cost": t.get("totalCost", t.get("costUSD")),
    }
    if v["cost"] is not None:
        v["cost"] += 0.0  # ccusage prints -0.0 for runs whose calls all cost nothing
    v["hidden"] = t.get("totalTokens", 0) - sum(v[k] for k in ("input", "cache_read", "cache_write", "output"))
    return v


def from_tokentrace(doc):
    if not isinstance(doc, dict) or not isinstance(doc.get("totals"), dict):
        return None
    t = doc["totals"]
    v = {k: t.get("tokens", {}).get(k, 0) for k in FIELDS}
    v["cost"] = t.get("cost_usd")
    return v


def from_expected(doc):
    v = {k: doc.get("tokens", {}).get(k, 0) for k in FIELDS}
    v["cost"] = doc.get("cost_usd")  # recorded by the agent (pi, omp); null where the files hold no cost
    return v


def add(a, b):
    if a is None or b is None:
        return None
    out = {}
    for k in set(a) | set(b):
        x, y = a.get(k), b.get(k)
        out[k] = None if x is None or y is None else x + y
    return out


def same_cost(a, b):
    return a is not None and b is not None and abs(a - b) <= max(1e-9, 1e-6 * abs(b))


def cells(v, ref, cost_ref):
    """Table cells of one source; a trailing * marks a figure that differs from the reference."""
    if v is None:
        return ["(no output)"] * len(HEAD)
    out = []
    for k in FIELDS:
        x = v.get(k)
        if x is None:  # this tool reports no such figure
            out.append("-" + ("*" if ref and ref.get(k) else ""))
        else:
            out.append(f"{x}" + ("*" if ref is not None and ref.get(k) != x else ""))
    c = v.get("cost")
    if c is None:
        out.append("-")
    else:
        out.append(f"{c:.6f}" + ("*" if cost_ref is not None and not same_cost(c, cost_ref) else ""))
    return out


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def rows_for(label, exp, tt, cc, cc_pipath):
    """Rows expected / tokentrace / ccusage (/ ccusage --pi-path) for one run or one agent's sum."""
    # Costs: compared with expected where the agent recorded one (pi, omp); elsewhere the ground truth has
    # no cost, and ccusage's cost is compared with tokentrace's (both price the tokens from LiteLLM tables).
    exp_cost = exp.get("cost")
    rows = [[label, "expected"] + cells(exp, None, None) + [""]]
    rows.append([label, "tokentrace"] + cells(tt, exp, exp_cost) + [""])
    cost_ref = exp_cost if exp_cost is not None else (tt or {}).get("cost")
    rows.append([label, "ccusage"] + cells(cc, exp, cost_ref) + [str(cc["hidden"]) if cc else ""])
    if cc_pipath is not None:
        rows.append([label, "ccusage pi --pi-path"] + cells(cc_pipath, exp, cost_ref) + [str(cc_pipath["hidden"])])
    return rows


def differs(exp, v, cost_ref):
    if v is None:
        return True
    for k in FIELDS:
        if v.get(k) is None:
            if exp.get(k):
                return True
        elif v.get(k) != exp.get(k):
            return True
    return v.get("cost") is not None and cost_ref is not None and not same_cost(v["cost"], cost_ref)


# --- Reasons, checked on the run's own files -------------------------------------------------------------
# Each check explains a ccusage difference only when the numbers add up exactly; anything else is reported as
# unexplained. They look for the causes found on the shared corpus (docs/ccusage.md); a new corpus may show
# others.


def jsonl(path):
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    yield json.loads(line)
                except ValueError:
                    pass
    except OSError:
        return


def files(root, suffix=".jsonl"):
    for d, _, fs in os.walk(root):
        for f in sorted(fs):
            if f.endswith(suffix):
                yield os.path.join(d, f)


def gap(exp, cc):
    """expected - ccusage per token field (None where ccusage has no such figure)."""
    return {k: (exp[k] - cc[k]) if cc.get(k) is not None else None for k in FIELDS}


def equal_gap(g, usage):
    return all(g[k] is None or g[k] == usage.get(k, 0) for k in FIELDS) and any(usage.values())


def codex_fork_usage(home):
    """Per-call usage recorded in Codex rollouts whose session_meta has a forked_from_id."""
    total = dict.fromkeys(FIELDS, 0)
    forks = 0
    for f in files(os.path.join(home, ".codex")):
        lines = list(jsonl(f))
        meta = next((d.get("payload") or {} for d in lines if d.get("type") == "session_meta"), {})
        if not meta.get("forked_from_id"):
            continue
        forks += 1
        calls = [(d.get("payload") or {}).get("usage") for d in lines if d.get("type") == "token_usage_record"]
        if not any(calls):  # older rollouts: the per-call figure of each token_count event
            calls = [((d.get("payload") or {}).get("info") or {}).get("last_token_usage") for d in lines
                     if (d.get("payload") or {}).get("type") == "token_count"]
        for u in filter(None, calls):
            total["input"] += u.get("input_tokens", 0) - u.get("cached_input_tokens", 0)
            total["cache_read"] += u.get("cached_input_tokens", 0)
            total["cache_write"] += u.get("cache_write_input_tokens", 0)
            total["output"] += u.get("output_tokens", 0)
            total["reasoning"] += u.get("reasoning_output_tokens", 0)
    return forks, total


def pi_side_usage(home):
    """Usage that pi >= 0.81 / oh-my-pi record outside assistant messages (branch_summary, compaction)."""
    total = dict.fromkeys(FIELDS, 0)
    kinds = set()
    for sub in (".pi", ".omp"):
        for f in files(os.path.join(home, sub)):
            for d in jsonl(f):
                u = d.get("usage")
                if d.get("type") in ("branch_summary", "compaction") and isinstance(u, dict):
                    kinds.add(d["type"])
                    total["input"] += u.get("input", 0)
                    total["cache_read"] += u.get("cacheRead", 0)
                    total["cache_write"] += u.get("cacheWrite", 0)
                    total["output"] += u.get("output", 0)
                    total["reasoning"] += u.get("reasoning", 0) or 0
    return kinds, total


def explain(r, home):
    """Why ccusage's figures differ from expected for run r, as far as the checks can tell."""
    exp, cc = r["exp"], r["cc"]
    if cc is None:
        return "ccusage printed no report"
    g = gap(exp, cc)
    reasons = []
    if not any(cc[k] for k in ("input", "cache_read", "cache_write", "output")) and any(exp[k] for k in FIELDS):
        why = "ccusage found no usage at all"
        if os.path.isdir(os.path.join(home, ".omp")):
            why += " (the home holds oh-my-pi sessions, ~/.omp/agent/sessions, and ccusage has no oh-my-pi source"
            pp = r["cc_pipath"]
            if pp is not None and not differs(exp, pp, exp.get("cost")):
                why += "; `ccusage pi --pi-path ~/.omp/agent/sessions` reads them and matches expected"
            why += ")"
        return why
    forks, fork_usage = codex_fork_usage(home)
    if forks and equal_gap(g, fork_usage):
        reasons.append(f"the gap equals exactly the usage recorded in the {forks} forked Codex rollout(s) "
                       "(session_meta.forked_from_id set): ccusage counted none of the fork's own model calls")
    kinds, side = pi_side_usage(home)
    if kinds and equal_gap(g, side):
        reasons.append("the gap equals exactly the usage on the " + "/".join(sorted(kinds)) +
                       " entries: ccusage did not count them")
    if (exp["reasoning"] and cc.get("reasoning") is None and g["output"] == exp["reasoning"] == cc["hidden"]
            and all(g[k] == 0 for k in ("input", "cache_read", "cache_write"))):
        cost = "" if r["tt"] is None or not same_cost(cc["cost"], r["tt"]["cost"]) else \
            "; its cost equals tokentrace's (which prices them as output)"
        reasons.append(f"ccusage's output leaves out the {exp['reasoning']} reasoning (thoughts) tokens, and shows "
                       f"no reasoning column; its totalTokens still counts them ('ccusage hidden'){cost}")
    if not reasons and not differs(exp, cc, None):
        reasons.append("tokens match; only the cost differs")
    return "; ".join(reasons) or "not explained by the checks in scripts/compare_ccusage.py"


def main():
    out, cc_version, tt_version, corpus = sys.argv[1:5]
    ids = sorted(f[: -len(".run")] for f in os.listdir(out) if f.endswith(".run"))
    runs = []
    for i in ids:
        p = lambda suffix: os.path.join(out, i + suffix)
        name = open(p(".run"), encoding="utf-8").read().strip()
        exp = load(p(".expected.json"))
        runs.append(
            {
                "name": name,
                "path": open(p(".path"), encoding="utf-8").read().strip(),
                "agent": open(p(".agent"), encoding="utf-8").read().strip(),
                "version": exp.get("agent_version", "?"),
                "exp": from_expected(exp),
                "tt": from_tokentrace(load(p(".tokentrace.json"))),
                "cc": from_ccusage(load(p(".ccusage.json"))),
                "cc_pipath": from_ccusage(load(p(".ccusage-pipath.json"))) if os.path.exists(p(".ccusage-pipath.json")) else None,
                "cmd": open(p(".ccusage.cmd"), encoding="utf-8").read().strip(),
                "err": (open(p(".ccusage.err"), encoding="utf-8").read().strip() if os.path.exists(p(".ccusage.err")) else ""),
            }
        )

    print(f"# ccusage vs tokentrace on the shared corpus\n")
    print(f"- versions: {cc_version}; {tt_version}")
    print(f"- corpus: {corpus} ({len(runs)} runs); days grouped in UTC")
    print("- per run: `ccusage <agent> daily --offline --json --timezone UTC` with the run's home as $HOME "
          "(oh-my-pi: `ccusage daily --by-agent ...`, as ccusage has no oh-my-pi source, plus "
          "`ccusage pi daily --pi-path ~/.omp/agent/sessions ...`), and "
          "`tokentrace --ephemeral report daily --json --path RUN/home --tz UTC`")
    print(f"- mapping: {MAPPING}")
    print("- `*` = differs from expected (cost: from the agent-recorded cost where there is one, "
          "else ccusage's cost from tokentrace's); `-` = the tool reports no such figure\n")

    header = ["agent", "source"] + HEAD + ["ccusage hidden"]

    # Per agent: sums over its runs (all versions).
    agents = OrderedDict()
    for r in runs:
        agents.setdefault(r["agent"], []).append(r)
    print("## Per agent (sum over its runs)\n")
    rows = []
    for agent, rs in agents.items():
        versions = sorted({r["version"] for r in rs})
        label = f"{agent} ({len(rs)} runs)"
        exp = tt = cc = None
        pp = None
        have_pp = any(r["cc_pipath"] is not None for r in rs)
        for r in rs:
            exp = r["exp"] if exp is None else add(exp, r["exp"])
            tt = r["tt"] if tt is None else add(tt, r["tt"])
            cc = r["cc"] if cc is None else add(cc, r["cc"])
            if have_pp:
                pp = r["cc_pipath"] if pp is None else add(pp, r["cc_pipath"])
        if any(r["exp"]["cost"] is None for r in rs):
            exp["cost"] = None
        rows += rows_for(label, exp, tt, cc, pp)
    table(header, rows)

    # Per run, only where a tool disagrees with the ground truth (or ccusage's cost with tokentrace's).
    print("\n## Runs where a figure differs\n")
    rows = []
    for r in runs:
        cost_ref = r["exp"]["cost"] if r["exp"]["cost"] is not None else (r["tt"] or {}).get("cost")
        if (
            differs(r["exp"], r["tt"], r["exp"]["cost"])
            or differs(r["exp"], r["cc"], cost_ref)
            or (r["cc_pipath"] is not None and differs(r["exp"], r["cc_pipath"], cost_ref))
        ):
            rows += rows_for(r["name"], r["exp"], r["tt"], r["cc"], r["cc_pipath"])
    if rows:
        table(["run", "source"] + HEAD + ["ccusage hidden"], rows)
    else:
        print("(none)")

    # Reasons, per run where ccusage disagrees with the ground truth.
    why = []
    for r in runs:
        cost_ref = r["exp"]["cost"] if r["exp"]["cost"] is not None else (r["tt"] or {}).get("cost")
        if differs(r["exp"], r["cc"], cost_ref):
            why.append(f"- {r['name']}: {explain(r, os.path.join(r['path'], 'home'))}")
        if differs(r["exp"], r["tt"], r["exp"]["cost"]):
            why.append(f"- {r['name']}: tokentrace differs from expected")
    if why:
        print("\n## Why ccusage differs (checked against the run's session files)\n")
        print("\n".join(why))

    errs = [r for r in runs if r["err"]]
    if errs:
        print("\n## ccusage stderr\n")
        for r in errs:
            print(f"- {r['name']}: {r['err'][:300]}")


if __name__ == "__main__":
    main()

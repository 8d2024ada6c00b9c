#!/usr/bin/env python3
"""Writes data/prices/compact.json: what tokentrace reads of LiteLLM's price table, nothing else.

    scripts/compact-prices.py [FULL_JSON] [OUT_JSON]

Keeps, for every entry with a numeric `input_cost_per_token` (the entries pricing can use), its numeric fields
whose name contains "cost" (base, tier and cache prices) and `litellm_provider`; drops everything else (context
sizes, capabilities, regions, docs links) and `sample_spec`. The binary embeds this file instead of the full
3 MB one: parsing it is what a short-lived command (`statusline`) spent half its time on. A unit test
(`pricing::table::tests::compact_table_prices_like_the_full_one`) checks both parse to the same table.
"""
import json
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
full = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "data/prices/model_prices_and_context_window.json"
out = Path(sys.argv[2]) if len(sys.argv) > 2 else root / "data/prices/compact.json"
table = json.loads(full.read_text())
compact = {}
for key, entry in table.items():
    if key == "sample_spec" or not isinstance(entry, dict):
        continue
    cost = entry.get("input_cost_per_token")
    if not isinstance(cost, (int, float)) or isinstance(cost, bool):
        continue
    kept = {}
    if isinstance(entry.get("litellm_provider"), str):
        kept["litellm_provider"] = entry["litellm_provider"]
    for k, v in entry.items():
        if "cost" in k and isinstance(v, (int, float)) and not isinstance(v, bool):
            kept[k] = v
    compact[key] = kept
out.write_text(json.dumps(compact, separators=(",", ":"), sort_keys=True) + "\n")
print(f"{out}: {len(compact)} entries, {out.stat().st_size} bytes (from {full.stat().st_size})", file=sys.stderr)

#!/usr/bin/env bash
# Refresh the bundled LiteLLM model price table.
#
# Usage: scripts/refresh-prices.sh [LITELLM_VERSION]
#
# Downloads the `litellm` wheel from PyPI (latest release when no version is
# given), extracts litellm/model_prices_and_context_window_backup.json from it
# byte for byte, validates it, and writes:
#   data/prices/model_prices_and_context_window.json
#   data/prices/compact.json   (the price fields the binary embeds: scripts/compact-prices.py)
#   data/prices/SOURCE.md
#
# Environment overrides:
#   LITELLM_WHEEL_PLATFORM  wheel platform tag to fetch (default manylinux_2_28_x86_64).
#                           Pinned so the same version always yields the same wheel
#                           file and sha256 on any host, and pip never falls back to
#                           building the sdist (litellm >= 1.10x is a maturin build).
#                           The JSON inside is the same on every platform.
#   LITELLM_WHEEL_PYTHON    python version for wheel selection (default 3.12).
#   REFRESH_DATE            date recorded in SOURCE.md (default: today, UTC).
#   PYTHON                  python interpreter (default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="$ROOT/data/prices"
OUT_JSON="$OUT_DIR/model_prices_and_context_window.json"
OUT_SOURCE="$OUT_DIR/SOURCE.md"
MEMBER="litellm/model_prices_and_context_window_backup.json"
MIN_ENTRIES=1000

VERSION="${1:-}"
PLATFORM="${LITELLM_WHEEL_PLATFORM:-manylinux_2_28_x86_64}"
PYVER="${LITELLM_WHEEL_PYTHON:-3.12}"
DATE="${REFRESH_DATE:-$(date -u +%Y-%m-%d)}"
PY="${PYTHON:-python3}"

if [[ -n "$VERSION" && ! "$VERSION" =~ ^[0-9A-Za-z.+!-]+$ ]]; then
    echo "error: invalid version '$VERSION'" >&2
    exit 2
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/refresh-prices.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

if [[ -n "$VERSION" ]]; then
    REQ="litellm==$VERSION"
else
    REQ="litellm"
fi

echo "downloading $REQ (platform $PLATFORM, python $PYVER) ..." >&2
"$PY" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform "$PLATFORM" --python-version "$PYVER" --implementation cp \
    -d "$TMP/dl" "$REQ" >&2

shopt -s nullglob
wheels=("$TMP"/dl/litellm-*.whl)
shopt -u nullglob
if [[ ${#wheels[@]} -ne 1 ]]; then
    echo "error: expected exactly one litellm wheel in $TMP/dl, found ${#wheels[@]}" >&2
    exit 1
fi
WHEEL="${wheels[0]}"

# Extract, validate, and describe the JSON. Prints "key=value" lines.
META="$("$PY" - "$WHEEL" "$MEMBER" "$TMP/prices.json" "$MIN_ENTRIES" <<'PYEOF'
import hashlib, json, os, sys, zipfile

wheel, member, out, min_entries = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
name = os.path.basename(wheel)
# Wheel file names are {dist}-{version}(-{build})?-{py}-{abi}-{plat}.whl
version = name.split("-")[1]

with open(wheel, "rb") as f:
    wheel_sha = hashlib.sha256(f.read()).hexdigest()
with zipfile.ZipFile(wheel) as z:
    try:
        data = z.read(member)
    except KeyError:
        sys.exit(f"error: {member} not found in {name}")

try:
    table = json.loads(data)
except ValueError as e:
    sys.exit(f"error: {member} is not valid JSON: {e}")
if not isinstance(table, dict):
    sys.exit("error: price table is not a JSON object")

# Top-level keys that are not models: the documentation stub `sample_spec`
# and any entry without a litellm_provider (e.g. `fallback_generalizations`).
non_models = sorted(
    k for k, v in table.items()
    if k == "sample_spec" or not isinstance(v, dict) or "litellm_provider" not in v
)
models = len(table) - len(non_models)
if models <= min_entries:
    sys.exit(f"error: only {models} model entries (need > {min_entries})")

with open(out, "wb") as f:
    f.write(data)

print(f"version={version}")
print(f"wheel={name}")
print(f"wheel_sha256={wheel_sha}")
print(f"json_sha256={hashlib.sha256(data).hexdigest()}")
print(f"json_bytes={len(data)}")
print(f"top_level_keys={len(table)}")
print(f"models={models}")
print(f"non_models={', '.join('`' + k + '`' for k in non_models) or 'none'}")
PYEOF
)"

get() { printf '%s\n' "$META" | sed -n "s/^$1=//p"; }
V="$(get version)"
W="$(get wheel)"
WSHA="$(get wheel_sha256)"
JSHA="$(get json_sha256)"
JBYTES="$(get json_bytes)"
TOP="$(get top_level_keys)"
MODELS="$(get models)"
NONMODELS="$(get non_models)"

if [[ -n "$VERSION" && "$V" != "$VERSION" ]]; then
    echo "error: asked for $VERSION but got wheel $W" >&2
    exit 1
fi

mkdir -p "$OUT_DIR"
cat > "$TMP/SOURCE.md" <<MD
# Bundled model price table

\`model_prices_and_context_window.json\` is an unmodified (byte-for-byte) copy of
\`$MEMBER\` from the \`litellm\` wheel on PyPI.

| Field | Value |
|---|---|
| litellm version | $V |
| Wheel file | \`$W\` |
| Wheel sha256 | \`$WSHA\` |
| JSON sha256 | \`$JSHA\` |
| JSON size | $JBYTES bytes |
| Retrieved | $DATE |
| Model entries | $MODELS ($TOP top-level keys; not models: $NONMODELS) |

## License

LiteLLM is MIT licensed. The JSON comes from BerriAI/litellm
(<https://github.com/BerriAI/litellm>, file \`model_prices_and_context_window.json\`),
and is redistributed here under the MIT license ("Copyright (c) 2023 Berri AI").
The wheel's LICENSE carves out only the repository's \`enterprise/\` directory,
which this file is not part of.

\`compact.json\` is derived from it by \`scripts/compact-prices.py\`: every entry with a per-token input price,
reduced to its \`…cost…\` fields and \`litellm_provider\`. It is what the binary embeds; a unit test checks that
both files give the same prices.

## Refreshing

Run \`scripts/refresh-prices.sh [VERSION]\` from anywhere (no argument = latest
release on PyPI). It downloads the wheel with pip, extracts the JSON with
python3's zipfile, checks it parses and has more than $MIN_ENTRIES model entries,
and rewrites this directory.
MD

mv "$TMP/prices.json" "$OUT_JSON"
# What the binary embeds: the price fields only.
"$PY" "$ROOT/scripts/compact-prices.py" "$OUT_JSON" "$OUT_DIR/compact.json"
mv "$TMP/SOURCE.md" "$OUT_SOURCE"
echo "wrote $OUT_JSON (litellm $V, $MODELS model entries, $JBYTES bytes)" >&2

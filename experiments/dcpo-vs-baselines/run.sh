#!/usr/bin/env bash
# DCPO against prefix-only and per-turn training, SmolLM2-135M on `multiobjective`.
# Run from the repository root:   experiments/dcpo-vs-baselines/run.sh
#
# Two SFT warm starts on oracle demonstrations (the pruning oracle for the dcpo and per_turn arms;
# for prefix_only, the same oracle in the environment without a context tool, where the context
# only grows), then one RL run per arm from its warm start, same seed, same rollout budget.
# Re-running skips finished runs and resumes interrupted ones. MEMRL overrides the binary; SEEDS
# the seeds (default 0); OUT the run folder (default runs/dcpo-vs-baselines, git-ignored).
set -euo pipefail
HERE=experiments/dcpo-vs-baselines
MEMRL=${MEMRL:-"cargo run --release -q -p memrl-trainer --bin memrl --"}
OUT=${OUT:-runs/dcpo-vs-baselines}
SEEDS=${SEEDS:-0}
mkdir -p "$OUT"

# Runs `memrl <cmd> CONFIG --set ...` into $OUT/$name: skipped when finished ($OUT/$name.json,
# the run's JSON summary, written only on success), resumed when a checkpoint exists, started
# fresh otherwise.
run() {
  local cmd=$1 name=$2
  shift 2
  local dir="$OUT/$name"
  if [ -f "$dir.json" ]; then
    echo "== $name: done"
  elif [ -d "$dir/checkpoints" ] && ls "$dir/checkpoints" | grep -q '^step-[0-9]*$'; then
    echo "== $name: resuming"
    $MEMRL "$cmd" --resume "$dir" --quiet --json > "$dir.json.tmp"
  else
    echo "== $name"
    $MEMRL "$cmd" "$HERE/config.toml" --overwrite --quiet --json --set "run.dir=$dir" "$@" > "$dir.json.tmp"
  fi
  [ -f "$dir.json.tmp" ] && mv "$dir.json.tmp" "$dir.json" || true
}

for seed in $SEEDS; do
  run sft "sft-prune-s$seed" --set "run.seed=$seed"
  run sft "sft-noedit-s$seed" --set "run.seed=$seed" --set env.options.context_tool=none
  prune_ckpt="$OUT/sft-prune-s$seed/checkpoints/step-0"
  noedit_ckpt="$OUT/sft-noedit-s$seed/checkpoints/step-0"
  for mode in dcpo per_turn; do
    run train "$mode-s$seed" --set "run.seed=$seed" --set sft.enabled=false \
      --set "policy.model=$prune_ckpt" --set "algorithm.segmentation=$mode"
  done
  run train "prefix_only-s$seed" --set "run.seed=$seed" --set sft.enabled=false \
    --set "policy.model=$noedit_ckpt" --set algorithm.segmentation=prefix_only --set env.options.context_tool=none
done
python3 "$HERE/summarize.py" "$OUT"
# One figure per metric, a line per arm (seed 0).
$MEMRL plot "$OUT/dcpo-s0" "$OUT/per_turn-s0" "$OUT/prefix_only-s0" --out "$HERE/plots" \
  --metric eval/reward --metric reward/mean --metric rollout/context_tokens_mean --metric learner/positions --metric time/step_s

#!/usr/bin/env bash
# SmolLM2-135M before and after memrl training on LoCoMo (train split: conv-26), evaluated on the
# test split exactly as experiments/locomo-baselines/ evaluates its rows (conv-41, its first 50
# questions, greedy, 4096-token window, 96 new tokens per agent turn).
# Run from the repository root:  experiments/locomo-smollm2/run.sh
# MEMRL overrides the binary (default: cargo run --release); OUT the result folder.
set -euo pipefail
MEMRL=${MEMRL:-"cargo run --release -q -p memrl-trainer --bin memrl --"}
RUN=${RUN:-runs/locomo-smollm2}
OUT=${OUT:-experiments/locomo-smollm2/out}
LIMIT=${LIMIT:-50}
STEPS=${STEPS:-2}
COMMON=(--bench locomo --split test --limit "$LIMIT" --set 'conversations=["conv-41"]' --no-progress
        --policy model --max-context 4096 --max-new-tokens 96)
mkdir -p "$OUT"

# Train: SFT warm start on oracle demonstrations, then GRPO (DCPO segments); resumes if stopped.
if [ ! -f "$RUN/checkpoints/step-$STEPS/COMPLETE" ]; then
  if [ -d "$RUN/checkpoints" ]; then
    $MEMRL train --resume "$RUN" --quiet --json
  else
    $MEMRL train experiments/locomo-smollm2/config.toml --set run.dir="$RUN" --set run.steps="$STEPS" --quiet --json
  fi
fi
# Evaluate after RL (the last step) and after SFT only (step 0) on the test conversation.
for step in "$STEPS" 0; do
  [ -f "$OUT/agent-step-$step.json" ] && continue
  $MEMRL eval "${COMMON[@]}" --checkpoint "$RUN/checkpoints/step-$step" \
    --out "$OUT/agent-step-$step.json" > "$OUT/agent-step-$step.txt"
done
python3 experiments/locomo-smollm2/summarize.py

#!/usr/bin/env bash
# Round 3's RL runs (README, "Round 3"): from round 2's p8 SFT checkpoint, a short second SFT on
# a noisy heuristic teacher, then 60 GRPO / DCPO steps with round2.toml's settings; ops.py then
# prints the skip and eviction rates per saved rollout step.
# Run from the repository root:  experiments/rl-beats-teacher/round3-rl.sh [r3a|r3b|r3c|r3d ...]
# It runs probe r2-p8 first when runs/rl-beats-teacher/r2-p8-isolated-4k-answers3 is missing.
# MEMRL overrides the binary (default: cargo run --release); PYTHON the interpreter with pyarrow.
set -euo pipefail
MEMRL=${MEMRL:-"cargo run --release -q -p memrl-trainer --bin memrl --"}
PYTHON=${PYTHON:-.venv-ci/bin/python}
here=experiments/rl-beats-teacher
p8=runs/rl-beats-teacher/r2-p8-isolated-4k-answers3
[ -d "$p8/checkpoints/step-0" ] || MEMRL="$MEMRL" "$here/probe.sh" r2-p8-isolated-4k-answers3
# The checkpoint brings its own (isolated-space) tokenizer; `attached` only lifts round2.toml's
# `isolated`, which applies to tiny presets.
FROM="--set policy.model=$p8/checkpoints/step-0 --set policy.tokenizer_spaces=attached --set sft.episodes=512 --set run.steps=60"
NOISE="--set env.options.heuristic_eviction=random --set env.options.heuristic_skip=0.2"
declare -A RUNS=(
  [r3a]="$NOISE"
  [r3b]="$NOISE --set env.options.penalties.malformed=0"
  [r3c]="--set env.options.heuristic_eviction=random"
  [r3d]="$NOISE --set env.options.penalties.malformed=0 --set algorithm.advantage=dr_grpo --set algorithm.loss_agg=dr_grpo"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(r3a r3b r3c)
for name in "${names[@]}"; do
  dir="runs/rl-beats-teacher/$name"
  # shellcheck disable=SC2086
  $MEMRL train "$here/round2.toml" --set run.dir="$dir" $FROM ${RUNS[$name]} --overwrite --quiet --json >/dev/null
  "$PYTHON" "$here/ops.py" "$dir"
  python3 -c "import json,sys; print([(d['step'], d['eval/task_score']) for d in map(json.loads, open(sys.argv[1])) if 'eval/task_score' in d])" "$dir/metrics.jsonl"
done

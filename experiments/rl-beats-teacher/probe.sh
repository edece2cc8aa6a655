#!/usr/bin/env bash
# SFT-only probes behind experiments/rl-beats-teacher/README.md: can a random-init tiny preset,
# imitating the heuristic manager on `facts`, learn to copy names and values into its tool
# calls within a CPU budget? Each probe runs round1-quickstart.toml (the quickstart config of
# rounds 1-3) with `run.steps = 0` (SFT,
# then the held-out evaluation at step 0) and prints the SFT NLL of its last 32 optimizer steps
# and the held-out task score.
# Run from the repository root:  experiments/rl-beats-teacher/probe.sh [NAME...]
# MEMRL overrides the binary (default: cargo run --release).
set -euo pipefail
MEMRL=${MEMRL:-"cargo run --release -q -p memrl-trainer --bin memrl --"}
R2="--set env.options.chunk_size=1 --set rollout.max_turns=12 --set env.options.prompt=terse --set env.options.questions_per_turn=1 --set sft.batch_size=4 --set sft.lr=5e-3 --set sft.epochs=1"
ISO="--set policy.tokenizer_spaces=isolated"
# Round 3: four facts about two tracked people and two distractors, one attribute (README, "Round 3").
R3="$R2 $ISO --set rollout.max_turns=12 --set env.options.entities=2 --set env.options.distractor_entities=2 --set env.options.attributes=1 --set env.options.updates_per_key=0 --set sft.episodes=2048 --set sft.final_segments=2 --set sft.final_segment_copies=2"
declare -A PROBES=(
  [chunk3-4l128]="--set policy.model=tiny-4l-128d --set sft.lr=3e-3"
  [chunk1-2l64]="--set env.options.chunk_size=1 --set rollout.max_turns=12"
  [chunk1-2l64-long]="--set env.options.chunk_size=1 --set rollout.max_turns=12 --set sft.episodes=512 --set sft.epochs=3"
  [chunk1-2l64-batch4]="--set env.options.chunk_size=1 --set rollout.max_turns=12 --set sft.batch_size=4 --set sft.lr=5e-3"
  [chunk1-2l64-batch4-long]="--set env.options.chunk_size=1 --set rollout.max_turns=12 --set sft.batch_size=4 --set sft.lr=5e-3 --set sft.episodes=512 --set sft.epochs=4"
  # Round 2: terse prompt, one question per answer turn (README, "Round 2").
  [r2-p1-attached]="$R2 --set sft.episodes=2048"
  [r2-p2-attached-4k]="$R2 --set sft.episodes=4096"
  [r2-p3-attached-4k-3l]="$R2 --set sft.episodes=4096 --set policy.model=tiny-3l-64d-4h-2kv"
  [r2-p4-isolated]="$R2 $ISO --set sft.episodes=2048"
  [r2-p5-isolated-4k]="$R2 $ISO --set sft.episodes=4096"
  [r2-p6-isolated-128d]="$R2 $ISO --set sft.episodes=2048 --set policy.model=tiny-2l-128d-4h"
  [r2-p7-isolated-8k]="$R2 $ISO --set sft.episodes=8192"
  [r2-p8-isolated-4k-answers3]="$R2 $ISO --set sft.episodes=4096 --set sft.final_segments=2 --set sft.final_segment_copies=3"
  [r3-e1]="$R3"
  [r3-e2-updates]="$R3 --set env.options.updates_per_key=1"
  [r3-e3-names8]="$R3 --set env.options.name_pool=8"
  [r3-e4-names8-lr1e-2]="$R3 --set env.options.name_pool=8 --set sft.lr=1e-2"
  [r3-e5-4h]="$R3 --set policy.model=tiny-2l-64d-4h"
  [r3-e6-8h]="$R3 --set policy.model=tiny-2l-64d-8h"
  [r3-e7-8h-names8]="$R3 --set policy.model=tiny-2l-64d-8h --set env.options.name_pool=8"
  [r3-e8-3l-8h]="$R3 --set policy.model=tiny-3l-64d-8h"
  [r3-e9-8h-rope100]="$R3 --set policy.model=tiny-2l-64d-8h-rope100"
  [r3-e10-8h-rope100-seed1]="$R3 --set policy.model=tiny-2l-64d-8h-rope100 --set run.seed=1"
  [r3-f1-8h-echo8k]="$R3 --set policy.model=tiny-2l-64d-8h --set sft.echo_segments=8192"
  [r3-f2-echo8k]="$R3 --set sft.echo_segments=8192"
  [r3-f3-8h-echo-only]="$R3 --set policy.model=tiny-2l-64d-8h --set sft.episodes=64 --set sft.echo_segments=32768 --set sft.batch_size=16"
  [chunk6-fullcontext]="--set env.options.chunk_size=6 --set sft.source=full-context --set sft.episodes=512 --set eval.episodes=4"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${!PROBES[@]}")
for name in "${names[@]}"; do
  dir="runs/rl-beats-teacher/$name"
  # shellcheck disable=SC2086
  $MEMRL train experiments/rl-beats-teacher/round1-quickstart.toml --set run.dir="$dir" --set run.steps=0 ${PROBES[$name]} --overwrite --quiet --json >/dev/null
  python3 - "$dir" "$name" <<'PY'
import json, sys
d, name = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(f"{d}/sft_metrics.jsonl")]
tail = rows[-32:]
ev = json.load(open(f"{d}/eval/facts-step-0.json"))
print(f"{name}: {len(rows)} SFT steps, NLL (last 32) {sum(r['sft/nll'] for r in tail) / len(tail):.3f}, "
      f"held-out task score {ev['task_score_mean']:.3f} on {ev['episodes']} tasks")
PY
done

#!/usr/bin/env bash
# The facts lr × group-size sweep: one SFT warm start (seed 0), then 12 RL-only trials.
# Run from the repository root:  experiments/facts-lr-groupsize-sweep/run.sh
# MEMRL overrides the binary (default: cargo run --release); JOBS the trials run at once.
set -euo pipefail
MEMRL=${MEMRL:-"cargo run --release -q -p memrl-trainer --bin memrl --"}
JOBS=${JOBS:-2}
if [ ! -f runs/quickstart-sft/checkpoints/step-0/COMPLETE ]; then
  $MEMRL sft experiments/rl-beats-teacher/round1-quickstart.toml --set run.dir=runs/quickstart-sft --quiet --json
fi
$MEMRL sweep experiments/facts-lr-groupsize-sweep/sweep.toml -j "$JOBS"

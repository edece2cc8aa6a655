#!/usr/bin/env bash
# LoCoMo baselines with SmolLM2-135M-Instruct as the reader (and as the untrained agent).
# Run from the repository root:  experiments/locomo-baselines/run.sh
# MEMRL overrides the binary (default: cargo run --release); OUT the result folder.
set -euo pipefail
MEMRL=${MEMRL:-"cargo run --release -q -p memrl-trainer --bin memrl --"}
MODEL=${MODEL:-.cache/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf}
OUT=${OUT:-experiments/locomo-baselines/out}
LIMIT=${LIMIT:-50}
COMMON=(--bench locomo --split test --limit "$LIMIT" --set 'conversations=["conv-41"]' --no-progress)
mkdir -p "$OUT"

# Model-free references: the scripted policy also answers (oracle: the gold answer).
for p in oracle heuristic; do
  $MEMRL eval "${COMMON[@]}" --policy "$p" --out "$OUT/scripted-$p.json" > "$OUT/scripted-$p.txt"
done
# Reader baselines: model-free memory (or raw history), SmolLM2 writes every answer.
for p in no-memory oracle heuristic bm25-rag full-context; do
  $MEMRL eval "${COMMON[@]}" --policy "$p" --checkpoint "$MODEL" --max-context 2048 --out "$OUT/reader-$p.json" > "$OUT/reader-$p.txt"
done
# J on one row, judged by SmolLM2 itself (a demonstration of the judge path, not a comparable J).
$MEMRL eval "${COMMON[@]}" --policy bm25-rag --checkpoint "$MODEL" --max-context 2048 --judge-model "$MODEL" \
  --out "$OUT/reader-bm25-rag-judged.json" > "$OUT/reader-bm25-rag-judged.txt"
# The untrained model as the memory agent (tool calls for memory and answers).
$MEMRL eval "${COMMON[@]}" --policy model --checkpoint "$MODEL" --max-context 4096 --max-new-tokens 96 \
  --out "$OUT/agent-untrained.json" > "$OUT/agent-untrained.txt"

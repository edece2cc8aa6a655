#!/usr/bin/env bash
# Issue 8, part 4: memrl's libtorch backend on a GPU next to PyTorch / transformers on the same
# GPU in the same run, then one end-to-end GRPO step on `facts`. Builds nothing: it runs a
# `memrl` built elsewhere with `--features tch` (see README.md) against this machine's PyTorch.
#
#   experiments/gpu-bench/run.sh [PART ...]      PART: env bench grpo report (default: all four)
#
# Environment:
#   OUT        results folder (default experiments/gpu-bench/results)
#   STAGE      where stage.sh's files are (default experiments/gpu-bench/carry)
#   MEMRL_BIN  the memrl binary (default $STAGE/memrl, unpacked from $STAGE/memrl.gz; else target/release/memrl)
#   PYTHON     interpreter with torch 2.11 + transformers (default python3); its torch/lib is the
#              libtorch the binary loads
#   DEVICE     cuda:0 (default), DTYPE bf16 (default)
#   MODELS     models to bench (default "random:smollm2-135m random:qwen2.5-0.5b": random-init
#              models of the two shapes, so neither side needs a download or the GGUF; throughput
#              does not depend on the weights' values)
#   GRPO_MODEL the policy of the GRPO step (default: the SmolLM2 GGUF under .cache, or
#              $STAGE/SmolLM2-135M-Instruct.Q4_1.gguf put together from stage.sh's parts)
#   SMOKE=1    CPU dry run with tiny sizes: every step of the script except CUDA itself
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
OUT="${OUT:-$here/results}"
PYTHON="${PYTHON:-python3}"
SMOKE="${SMOKE:-0}"
mkdir -p "$OUT"

# STAGE: where stage.sh's files are (default carry/; a device session may gather them elsewhere).
STAGE="${STAGE:-$here/carry}"
if [ -z "${MEMRL_BIN:-}" ]; then
  if [ -f "$STAGE/memrl.gz" ] && [ ! -x "$STAGE/memrl" ]; then gzip -dc "$STAGE/memrl.gz" > "$STAGE/memrl"; chmod +x "$STAGE/memrl"; fi
  if [ -x "$STAGE/memrl" ]; then MEMRL_BIN="$STAGE/memrl"; else MEMRL_BIN="target/release/memrl"; fi
fi
[ -x "$MEMRL_BIN" ] || { echo "run.sh: no memrl binary at $MEMRL_BIN (build it: see README.md)" >&2; exit 1; }
torch_lib="$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export MEMRL_PYTHON="$PYTHON"

gguf_default=".cache/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$gguf_default" ] && [ ! -f "$STAGE/SmolLM2-135M-Instruct.Q4_1.gguf" ] && ls "$STAGE"/gguf.part-* >/dev/null 2>&1; then
  # stage.sh splits the GGUF so each part fits one device call's 64 MiB; put it back together.
  cat "$STAGE"/gguf.part-* > "$STAGE/SmolLM2-135M-Instruct.Q4_1.gguf"
  (cd "$STAGE" && sha256sum -c gguf.sha256)
fi
[ -f "$gguf_default" ] || gguf_default="$STAGE/SmolLM2-135M-Instruct.Q4_1.gguf"

if [ "$SMOKE" = 1 ]; then
  DEVICE="${DEVICE:-cpu}" DTYPE="${DTYPE:-bf16}"
  MODELS="${MODELS:-random:tiny-qwen2 random:smollm2-135m}"
  bench_sizes=(--learner-batch 1 --seq-len 16 --learner-steps 1 --decode-batches 1,2 --prompt-tokens 8 --new-tokens 8 --peak-tflops 1)
  GRPO_MODEL="${GRPO_MODEL:-tiny-2l-64d}"
  grpo_sizes=(--set rollout.batch_size=2 --set rollout.group_size=2 --set rollout.max_new_tokens=12 --set rollout.max_context_tokens=512)
else
  DEVICE="${DEVICE:-cuda:0}" DTYPE="${DTYPE:-bf16}"
  MODELS="${MODELS:-random:smollm2-135m random:qwen2.5-0.5b}"
  # Learner 8 × 1024 tokens per step (5 timed); decode 128-token prompts + 128 new at 1, 32, 128.
  bench_sizes=(--learner-batch 8 --seq-len 1024 --learner-steps 5 --decode-batches 1,32,128 --prompt-tokens 128 --new-tokens 128)
  GRPO_MODEL="${GRPO_MODEL:-$gguf_default}"
  # One GRPO step: 8 tasks × 8 samples.
  grpo_sizes=(--set rollout.batch_size=8 --set rollout.group_size=8)
fi

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(env bench grpo report)

for part in "${parts[@]}"; do
  case "$part" in
    env)
      {
        echo "date: $(date -u +%FT%TZ)"
        echo "git: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
        echo "memrl: $MEMRL_BIN"
        echo "python: $PYTHON"
        "$PYTHON" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available()); print("transformers", transformers.__version__)'
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || echo "nvidia-smi: not available"
        echo "cpus: $(nproc)"
      } | tee "$OUT/env.txt"
      ;;
    bench)
      for model in $MODELS; do
        name="${model#random:}"
        echo "== bench $model on $DEVICE ($DTYPE)" >&2
        "$MEMRL_BIN" bench policy --backend tch --device "$DEVICE" --dtype "$DTYPE" --model "$model" \
          --python "$PYTHON" "${bench_sizes[@]}" --json > "$OUT/bench-$name.json"
        "$PYTHON" "$here/report.py" --table "$OUT/bench-$name.json" >&2
      done
      ;;
    grpo)
      echo "== one GRPO step on facts: $GRPO_MODEL on $DEVICE ($DTYPE)" >&2
      start=$(date +%s.%N)
      "$MEMRL_BIN" train configs/smollm2-facts.toml --quiet --json --overwrite \
        --set run.name=gpu-grpo --set "run.dir=$OUT/grpo-run" --set run.steps=1 --set sft.enabled=false \
        --set "policy.model=$GRPO_MODEL" --set policy.backend=tch --set "policy.device=$DEVICE" \
        --set "policy.dtype=$DTYPE" --set run.plot_every=0 "${grpo_sizes[@]}" > "$OUT/grpo-summary.json"
      end=$(date +%s.%N)
      cp "$OUT/grpo-run/metrics.jsonl" "$OUT/grpo-metrics.jsonl"
      "$PYTHON" -c "import json,sys; s=json.load(open(sys.argv[1])); s['process_wall_s']=float(sys.argv[3])-float(sys.argv[2]); json.dump(s, open(sys.argv[1],'w'))" "$OUT/grpo-summary.json" "$start" "$end"
      rm -rf "$OUT/grpo-run"
      ;;
    report)
      "$PYTHON" "$here/report.py" --out "$OUT/results.md" "$OUT"
      echo "wrote $OUT/results.md" >&2
      ;;
    *) echo "run.sh: unknown part $part (expected env, bench, grpo or report)" >&2; exit 2 ;;
  esac
done

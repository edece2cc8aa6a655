#!/usr/bin/env python3
"""Decode throughput of HF transformers' `generate` on SmolLM2-135M-Instruct (the same GGUF the
Rust engine loads), for comparison with `cargo run --release -p memrl-policies --example bench_generate`.

Creates `.venv` at the repository root on first use (torch + transformers + gguf from PyPI; torch is a
large CUDA wheel, a few minutes) and re-runs itself inside it, unless `--no-venv` is given (then the
running interpreter must have them: `memrl bench policy` runs it so). Prints one JSON object.

    python3 scripts/reference/hf_generate_bench.py [--gguf PATH | --model DIR | --random NAME]
        [--device cpu|cuda:N] [--dtype f32|bf16] [--threads 2] [--new-tokens 64] [--prompt-tokens 64]
        [--batches 1,8] [--repeats 3] [--no-venv]

--random NAME: a random-init model of a shape in random_shapes.json (torch seed 0, no download;
see torch_learner_bench.py) with random prompt ids. --dtype bf16 loads the model in bf16.
On CUDA every timing ends with torch.cuda.synchronize().

Measured: greedy decoding with `min_new_tokens = max_new_tokens` so every row produces exactly N tokens.
prefill_s is the time of `generate(max_new_tokens=1)`; decode tokens/s = batch * (N - 1) / (total - prefill).
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VENV = os.path.join(ROOT, ".venv")
DEFAULT_GGUF = os.path.join(ROOT, ".cache/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
PACKAGES = ["torch", "transformers", "gguf", "accelerate", "numpy"]


def ensure_venv():
    """Re-exec inside .venv, creating it and installing the packages if needed."""
    py = os.path.join(VENV, "bin", "python3")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    probe = subprocess.run([py, "-c", "import torch, transformers, gguf, accelerate"], capture_output=True)
    if probe.returncode != 0:
        subprocess.check_call([py, "-m", "pip", "install", "-q", *PACKAGES])
    os.execv(py, [py, *sys.argv])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.environ.get("MEMRL_SMOLLM2_GGUF", DEFAULT_GGUF))
    ap.add_argument("--model", help="an HF model directory instead of the GGUF")
    ap.add_argument("--random", help="a random-init model of a shape in random_shapes.json (e.g. qwen2.5-0.5b)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda:N")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-venv", action="store_true", help="use the running interpreter as is")
    args = ap.parse_args()
    if not args.no_venv:
        ensure_venv()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_learner_bench import random_model

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.manual_seed(0)
    if args.random:
        tok = None
        model = random_model(args.random, dtype)
    elif args.model:
        tok = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    else:
        d, f = os.path.split(os.path.abspath(args.gguf))
        tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=dtype)
    model.to(device).eval()
    max_batch = max(int(b) for b in args.batches.split(","))
    if tok is None:
        # Random prompts, one distinct row per batch slot (seeded).
        g = torch.Generator().manual_seed(7)
        prompt_rows = torch.randint(0, model.config.vocab_size, (max_batch, args.prompt_tokens), generator=g).tolist()
        pad_id = 0
    else:
        text = ("Memory lets an agent keep what matters across a long conversation: names, dates, plans, "
                "preferences and corrections. A good agent writes short notes, updates them when facts change, "
                "and deletes the ones that are no longer true, so that later questions can be answered quickly. ") * 4
        base = tok(text)["input_ids"]
        while len(base) < args.prompt_tokens + max_batch:
            base = base + base
        prompt_rows = [base[i : i + args.prompt_tokens] for i in range(max_batch)]
        pad_id = tok.eos_token_id or 0

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    results = {"library": "transformers", "torch": torch.__version__, "threads": args.threads,
               "device": str(device), "dtype": args.dtype,
               "model": f"random:{args.random}" if args.random else (args.model or args.gguf),
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
               "new_tokens": args.new_tokens, "prompt_tokens": args.prompt_tokens, "runs": []}
    import transformers
    results["transformers"] = transformers.__version__
    for batch in [int(b) for b in args.batches.split(",")]:
        # Equal-length prompts (different content per row) so no padding is involved.
        ids = torch.tensor(prompt_rows[:batch], device=device)
        attn = torch.ones_like(ids)
        common = dict(do_sample=False, pad_token_id=pad_id)
        with torch.inference_mode():
            model.generate(ids, attention_mask=attn, max_new_tokens=4, min_new_tokens=4, **common)  # warm-up
            prefill, total = [], []
            for _ in range(args.repeats):
                sync()
                t0 = time.perf_counter()
                model.generate(ids, attention_mask=attn, max_new_tokens=1, min_new_tokens=1, **common)
                sync()
                prefill.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                out = model.generate(ids, attention_mask=attn, max_new_tokens=args.new_tokens,
                                     min_new_tokens=args.new_tokens, **common)
                sync()
                total.append(time.perf_counter() - t0)
                assert out.shape[1] == args.prompt_tokens + args.new_tokens
        p, t = min(prefill), min(total)
        results["runs"].append({
            "batch": batch, "prefill_s": round(p, 4), "total_s": round(t, 4),
            "decode_tokens_per_s": round(batch * (args.new_tokens - 1) / (t - p), 2),
            "end_to_end_tokens_per_s": round(batch * args.new_tokens / t, 2),
        })
    print(json.dumps(results))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Learner throughput of PyTorch + transformers on SmolLM2-135M (the same GGUF memrl loads), for
comparison with `memrl_policies::train::bench::learner_throughput` (same shapes, same loss,
same clipping and optimizer).

One step: forward over `batch x seq` random token ids, loss = -mean log p(x[t] | x[..t]) over
every predicted position, backward, clip_grad_norm_(1.0), AdamW (PyTorch defaults, weight
decay 0.01). Tokens/s = batch * seq / median step time (on CUDA the clock is read after
torch.cuda.synchronize()). Prints one JSON object.

    python3 scripts/reference/torch_learner_bench.py [--gguf PATH | --model DIR | --random NAME]
        [--device cpu|cuda:N] [--dtype f32|bf16] [--threads 2]
        [--batch 4] [--seq 256] [--warmup 1] [--steps 3] [--lr 1e-5]

--random NAME builds a randomly initialised model of a shape in random_shapes.json (beside this
script; the same table `memrl bench policy --model random:NAME` uses) with torch.manual_seed(0):
no download. --dtype bf16 is mixed precision as memrl's tch backend does it: the model and AdamW
stay f32 and the forward + loss run under torch.autocast(dtype=torch.bfloat16).

Needs torch, transformers, gguf and accelerate (transformers wants it for GGUF files) in the
running interpreter, e.g. a venv made with
`python3 -m venv .venv-torch && .venv-torch/bin/pip install torch transformers gguf accelerate`.
"""
import argparse
import json
import os
import resource
import statistics
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHAPES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "random_shapes.json")
DEFAULT_GGUF = os.path.join(ROOT, ".cache/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")


def rss_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024.0
    return None


def random_model(name, dtype):
    """A model of shape `name` from random_shapes.json, initialised from torch's seed 0."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with open(SHAPES) as f:
        table = json.load(f)
    if name.startswith("_") or name not in table:
        raise SystemExit(f"--random {name}: unknown shape; expected one of {sorted(k for k in table if not k.startswith('_'))}")
    fields = dict(table[name])
    fields.pop("architectures", None)
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=dtype)


def load_model(args, dtype):
    """The model --gguf / --model / --random names, in `dtype`, on the CPU."""
    import torch
    from transformers import AutoModelForCausalLM

    if args.random:
        return random_model(args.random, dtype)
    if args.model:
        return AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    d, f = os.path.split(os.path.abspath(args.gguf))
    return AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=dtype)


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.environ.get("MEMRL_SMOLLM2_GGUF", DEFAULT_GGUF))
    ap.add_argument("--model", help="an HF model directory instead of the GGUF")
    ap.add_argument("--random", help="a random-init model of a shape in random_shapes.json (e.g. qwen2.5-0.5b)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda:N")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-5)
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = load_model(args, torch.float32).to(device)
    model.train()
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (args.batch, args.seq)).to(device)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr)  # betas (0.9, 0.999), eps 1e-8, weight_decay 0.01
    rss_before = rss_mib("VmRSS:")
    steps, loss_value = [], float("nan")
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass
        if i == args.warmup and device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sync(device)
        t0 = time.perf_counter()
        c0 = time.process_time()
        with autocast:
            logits = model(input_ids=ids, use_cache=False).logits[:, :-1]
            # log_softmax runs in f32 under autocast, as in memrl's tch backend.
            logp = torch.log_softmax(logits, dim=-1)
            loss = -logp.gather(2, ids[:, 1:, None]).mean()
        loss_value = loss.item()
        t1 = time.perf_counter()
        loss.backward()
        sync(device)
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        t3 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        t4 = time.perf_counter()
        del logits, logp, loss
        if i >= args.warmup:
            steps.append({"forward_s": t1 - t0, "backward_s": t2 - t1, "clip_s": t3 - t2,
                          "optimizer_s": t4 - t3, "total_s": t4 - t0, "cpu_s": time.process_time() - c0})
    tokens = args.batch * args.seq
    print(json.dumps({
        "library": "torch", "torch": torch.__version__, "transformers": transformers.__version__,
        "device": str(device), "dtype": args.dtype, "model": f"random:{args.random}" if args.random else (args.model or args.gguf),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "peak_gpu_mem_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "threads": args.threads, "batch": args.batch, "seq": args.seq,
        "trainable_parameters": sum(p.numel() for p in params), "tokens_per_step": tokens,
        "steps": steps, "tokens_per_s": tokens / statistics.median(s["total_s"] for s in steps),
        "tokens_per_cpu_s": tokens / statistics.median(s["cpu_s"] for s in steps),
        "last_loss": loss_value, "rss_before_mib": rss_before, "peak_rss_mib": rss_mib("VmHWM:"),
    }))


if __name__ == "__main__":
    main()

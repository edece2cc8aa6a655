#!/usr/bin/env python3
"""Checks that transformers loads a memrl checkpoint and computes the logits memrl computed.

    python3 scripts/check_checkpoint.py CHECKPOINT_DIR [--tol 1e-4]

Loads the directory with AutoModelForCausalLM.from_pretrained + AutoTokenizer.from_pretrained,
re-tokenizes the prompt stored in `reference_logits.json` (written by memrl's save_checkpoint
with a reference prompt) and compares token ids, the stored logits of every position (leading
vocabulary ids) and the whole last row. A LoRA checkpoint saved unmerged (adapter_config.json +
adapter_model.safetensors) is merged here as PEFT does: W += (lora_alpha / r) * B @ A.
Prints one JSON object; exits 1 if anything differs.

Needs torch, transformers and safetensors (e.g. .venv-torch).
"""
import argparse
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()

    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = args.checkpoint
    ref = json.load(open(os.path.join(d, "reference_logits.json")))
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    model.eval()
    merged = 0
    adapter_cfg = os.path.join(d, "adapter_config.json")
    if os.path.exists(adapter_cfg):
        cfg = json.load(open(adapter_cfg))
        scale = cfg["lora_alpha"] / cfg["r"]
        adapters = load_file(os.path.join(d, "adapter_model.safetensors"))
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, a in adapters.items():
                if ".lora_A." not in name:
                    continue
                b = adapters[name.replace(".lora_A.", ".lora_B.")]
                target = name.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
                params[target].add_(scale * (b @ a))
                merged += 1

    ids = tok(ref["prompt"], add_special_tokens=False)["input_ids"]
    problems = []
    if ids != ref["input_ids"]:
        problems.append(f"token ids differ: transformers {ids} vs memrl {ref['input_ids']}")
    with torch.no_grad():
        logits = model(torch.tensor([ref["input_ids"]])).logits[0]
    k = ref["leading_ids"]
    lead = torch.tensor(ref["logits_leading"])
    last = torch.tensor(ref["logits_last"])
    d_lead = (logits[:, :k] - lead).abs().max().item()
    d_last = (logits[-1] - last).abs().max().item()
    if max(d_lead, d_last) > args.tol:
        problems.append(f"logits differ by {max(d_lead, d_last):.3e} > {args.tol}")
    messages = [{"role": "user", "content": "hello"}]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    report = {
        "checkpoint": d, "architecture": model.config.architectures, "vocab_size": model.config.vocab_size,
        "positions": len(ref["input_ids"]), "max_abs_diff_leading": d_lead, "max_abs_diff_last_row": d_last,
        "adapters_merged": merged, "chat_template_sample": rendered, "ok": not problems, "problems": problems,
    }
    print(json.dumps(report))
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()

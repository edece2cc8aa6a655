#!/usr/bin/env python3
"""Checks that transformers loads a memrl checkpoint and computes the logits memrl computed.

    python3 scripts/check_checkpoint.py CHECKPOINT_DIR [--tol 1e-4]

Loads the directory with AutoModelForCausalLM.from_pretrained + AutoTokenizer.from_pretrained,
re-tokenizes the prompt stored in `reference_logits.json` (written by memrl's save_checkpoint
with a reference prompt) and compares token ids, the stored logits of every position (leading
vocabulary ids) and the whole last row. A LoRA checkpoint saved unmerged (adapter_config.json +
adapter_model.safetensors beside the frozen base model.safetensors) is loaded three ways, each
of which must give memrl's logits: by `from_pretrained` on the directory (transformers' PEFT
integration attaches the adapter), by the `peft` package's `PeftModel.from_pretrained(base, dir)`
(unmerged), and merged here by hand (W += (lora_alpha / r) * B @ A).
Prints one JSON object; exits 1 if anything differs.

Needs torch, transformers, safetensors and peft (.venv-ci).
"""
import argparse
import json
import os
import sys
import tempfile


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
    ids = tok(ref["prompt"], add_special_tokens=False)["input_ids"]
    problems = []
    if ids != ref["input_ids"]:
        problems.append(f"token ids differ: transformers {ids} vs memrl {ref['input_ids']}")
    k = ref["leading_ids"]
    lead = torch.tensor(ref["logits_leading"])
    last = torch.tensor(ref["logits_last"])

    def differences(m):
        m.eval()
        with torch.no_grad():
            logits = m(torch.tensor([ref["input_ids"]])).logits[0]
        return (logits[:, :k] - lead).abs().max().item(), (logits[-1] - last).abs().max().item()

    def check(what, m):
        diff = max(differences(m))
        if diff > args.tol:
            problems.append(f"{what}: logits differ by {diff:.3e} > {args.tol}")
        return diff

    # As users load it: a plain model, or (peft installed) the base with its adapter attached
    # by transformers' PEFT integration.
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    d_lead, d_last = differences(model)
    if max(d_lead, d_last) > args.tol:
        problems.append(f"logits differ by {max(d_lead, d_last):.3e} > {args.tol}")
    merged, peft_diff = 0, None
    if os.path.exists(os.path.join(d, "adapter_config.json")):
        from peft import PeftModel

        if not getattr(model, "_hf_peft_config_loaded", False):
            problems.append("transformers did not attach the adapter (adapter_config.json present)")
        with tempfile.TemporaryDirectory() as base_dir:
            # The frozen base alone: the checkpoint's files without the adapter's.
            for name in os.listdir(d):
                if not name.startswith("adapter_"):
                    os.symlink(os.path.abspath(os.path.join(d, name)), os.path.join(base_dir, name))
            # 1. Merged by hand, as PEFT's merge_and_unload does.
            base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
            cfg = json.load(open(os.path.join(d, "adapter_config.json")))
            scale = cfg["lora_alpha"] / cfg["r"]
            adapters = load_file(os.path.join(d, "adapter_model.safetensors"))
            params = dict(base.named_parameters())
            with torch.no_grad():
                for name, a in adapters.items():
                    if ".lora_A." not in name:
                        continue
                    b = adapters[name.replace(".lora_A.", ".lora_B.")]
                    target = name.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
                    params[target].add_(scale * (b @ a))
                    merged += 1
            check("merged by hand", base)
            # 2. The peft package's own loader, unmerged.
            adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32), d)
            loaded = sum(1 for n, _ in adapted.named_parameters() if ".lora_A." in n)
            if loaded != merged:
                problems.append(f"peft loaded {loaded} lora_A matrices, the adapter file holds {merged}")
            peft_diff = check("PeftModel.from_pretrained", adapted)
    messages = [{"role": "user", "content": "hello"}]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    report = {
        "checkpoint": d, "architecture": model.config.architectures, "vocab_size": model.config.vocab_size,
        "positions": len(ref["input_ids"]), "max_abs_diff_leading": d_lead, "max_abs_diff_last_row": d_last,
        "adapters_merged": merged, "peft_max_abs_diff": peft_diff, "chat_template_sample": rendered, "ok": not problems, "problems": problems,
    }
    print(json.dumps(report))
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()

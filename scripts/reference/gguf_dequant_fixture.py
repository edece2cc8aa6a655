"""Writes policies/tests/fixtures/gguf_dequant.json: random ggml blocks of each quantised type and
their values as dequantised by the `gguf` Python package (llama.cpp's gguf-py), plus checksums of a
few tensors of SmolLM2-135M-Instruct.Q4_1.gguf. memrl's Rust dequantisers are tested against it.

Usage: python gguf_dequant_fixture.py OUT.json [MODEL.gguf]   (needs: pip install gguf numpy)
"""
import json, sys
import numpy as np
from gguf import GGMLQuantizationType as T, GGUFReader
from gguf.quants import dequantize

rng = np.random.default_rng(1234)
# (type, block bytes, byte offsets of f16 scale fields)
LAYOUTS = {
    "Q4_0": (T.Q4_0, 18, [0]),
    "Q4_1": (T.Q4_1, 20, [0, 2]),
    "Q8_0": (T.Q8_0, 34, [0]),
    "Q4_K": (T.Q4_K, 144, [0, 2]),
    "Q6_K": (T.Q6_K, 210, [208]),
    "F16": (T.F16, 2, [0]),
    "BF16": (T.BF16, 2, []),
}
cases = []
for name, (qt, nbytes, f16_at) in LAYOUTS.items():
    n_blocks = 64 if nbytes <= 2 else 3
    raw = rng.integers(0, 256, size=(n_blocks, nbytes), dtype=np.uint8)
    for b in range(n_blocks):
        for off in f16_at:  # keep scales finite and moderate
            raw[b, off:off + 2] = np.frombuffer(np.float16(rng.uniform(-2, 2)).tobytes(), dtype=np.uint8)
        if name == "BF16":
            raw[b, 1] = rng.integers(0x38, 0x48)  # exponent byte: finite, moderate
    vals = dequantize(raw.reshape(-1), qt).astype(np.float32).reshape(-1)
    cases.append({"type": name, "raw_hex": raw.tobytes().hex(), "values": [float(v) for v in vals]})

out = {"cases": cases, "model": {}}
if len(sys.argv) > 2:
    r = GGUFReader(sys.argv[2])
    for t in r.tensors:
        if t.name in ("token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_norm.weight", "blk.29.ffn_down.weight"):
            v = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1)
            out["model"][t.name] = {"type": t.tensor_type.name, "n": int(v.size), "first": [float(x) for x in v[:8]],
                                    "sum": float(v.sum()), "sum_abs": float(np.abs(v).sum())}
with open(sys.argv[1], "w") as f:
    json.dump(out, f)

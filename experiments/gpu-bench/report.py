#!/usr/bin/env python3
"""Tables for experiments/gpu-bench: reads the `memrl bench policy --json` reports (bench-*.json)
and the GRPO step (grpo-summary.json, grpo-metrics.jsonl) run.sh wrote, and writes results.md.

    report.py --table bench-X.json         one report's table on stdout
    report.py --out results.md RESULTS_DIR all of it, with the issue's targets checked
"""
import argparse
import glob
import json
import os

TARGET_MFU = 0.40  # learner MFU at 0.5B
TARGET_DECODE_RATIO = 2.0  # decode tok/s vs transformers generate


def fmt(v, digits=None):
    if v is None:
        return "–"
    if digits is None:
        digits = 1 if abs(v) >= 10 else 2
    return f"{v:,.{digits}f}"


def table(r):
    lines = [f"**{r['model']}** on {r['backend']} ({r.get('device', '?')}, {r.get('gpu') or 'no GPU'}, dtype {r.get('dtype', '?')})", ""]
    lines += ["| measure | memrl | peer (torch / transformers) | memrl / peer |", "|---|---:|---:|---:|"]
    for row in r["rows"]:
        lines.append(f"| {row['measure']} | {fmt(row['memrl'])} | {fmt(row['peer'])} | {fmt(row['ratio'], 2)} |")
    m = r.get("mfu")
    if m:
        lines += ["", f"MFU: {m['formula']}; FLOPs/token {m['flops_per_token']:.4g}; peak: {m['peak_source']}."]
    for part in ("learner", "decode"):
        p = r.get(part) or {}
        if p.get("peer_error"):
            lines.append(f"\nPeer {part} missing: {p['peer_error']}")
    return "\n".join(lines)


def targets(r):
    """The issue's targets, checked on one report: (what, value, target, met)."""
    out = []
    m = r.get("mfu") or {}
    if "qwen2.5-0.5b" in r["model"] and m.get("memrl") is not None:
        out.append(("learner MFU, Qwen2.5-0.5B shape", f"{m['memrl'] * 100:.1f}%", f">= {TARGET_MFU * 100:.0f}%", m["memrl"] >= TARGET_MFU))
    for row in r["rows"]:
        if row["measure"].startswith("decode tok/s") and row["ratio"] is not None:
            out.append((f"{row['measure']}, {r['model']}", f"{row['ratio']:.2f}x", f">= {TARGET_DECODE_RATIO:.0f}x transformers", row["ratio"] >= TARGET_DECODE_RATIO))
    return out


def grpo(results):
    path = os.path.join(results, "grpo-summary.json")
    if not os.path.exists(path):
        return "GRPO step: not run."
    s = json.load(open(path))
    rows = [json.loads(l) for l in open(os.path.join(results, "grpo-metrics.jsonl")) if l.strip()]
    step = next((r for r in rows if r.get("step") == 1 and "reward/mean" in r), {})
    keys = ["reward/mean", "loss/pg", "grad_norm", "time/step_s"] + sorted(k for k in step if k.startswith("time/") and k != "time/step_s")
    lines = [f"One GRPO step on facts: {s.get('steps')} step(s), process wall {s.get('process_wall_s', float('nan')):.1f} s "
             f"(model load, eval and checkpoint included), run wall {s.get('wall_seconds', float('nan')):.1f} s.", "",
             "| metric | value |", "|---|---:|"]
    lines += [f"| {k} | {step[k]:.4g} |" for k in keys if k in step]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", help="print one bench report's table")
    ap.add_argument("--out", help="write results.md here")
    ap.add_argument("results", nargs="?")
    a = ap.parse_args()
    if a.table:
        print(table(json.load(open(a.table))))
        return
    reports = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(a.results, "bench-*.json")))]
    env = open(os.path.join(a.results, "env.txt")).read() if os.path.exists(os.path.join(a.results, "env.txt")) else "(env not recorded)"
    md = ["# GPU benchmark results", "", "Written by experiments/gpu-bench/report.py from the JSON beside it.", "", "```", env.strip(), "```", ""]
    for r in reports:
        md += [table(r), ""]
    checks = [t for r in reports for t in targets(r)]
    if checks:
        md += ["## Targets (issue 8)", "", "| target | measured | wanted | met |", "|---|---:|---:|---|"]
        md += [f"| {w} | {v} | {t} | {'yes' if ok else 'NO'} |" for w, v, t, ok in checks]
        md.append("")
    md += ["## GRPO step", "", grpo(a.results), ""]
    text = "\n".join(md)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()

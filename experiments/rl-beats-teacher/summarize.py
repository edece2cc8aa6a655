#!/usr/bin/env python3
"""Held-out task score across seeds: mean and 95% t-interval at every evaluation step.

Usage: summarize.py RUN_DIR [RUN_DIR ...]   (run directories of the same config, one per seed)
Reads each run's metrics.jsonl (`eval/task_score`) and eval/facts-baselines.json; prints a
markdown table, then each baseline's mean and interval over the seeds and the final score's
margin over the heuristic teacher. Standard library only.
"""
import json
import math
import signal
import statistics
import sys
from pathlib import Path

# Two-sided 95% Student t critical values by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def interval(xs):
    """Mean and half-width of the 95% t-interval (0 for one value)."""
    m = statistics.fmean(xs)
    if len(xs) < 2:
        return m, 0.0
    t = T95.get(len(xs) - 1, 1.96)
    return m, t * statistics.stdev(xs) / math.sqrt(len(xs))


def main(dirs):
    curves = []
    for d in map(Path, dirs):
        rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
        curves.append({r["step"]: r["eval/task_score"] for r in rows if "eval/task_score" in r})
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    print(f"| step | held-out task score, mean ± 95% CI over {len(dirs)} seeds | per seed |")
    print("|---:|---:|---|")
    for s in steps:
        xs = [c[s] for c in curves]
        m, h = interval(xs)
        print(f"| {s} | {m:.3f} ± {h:.3f} | {', '.join(f'{x:.3f}' for x in xs)} |")
    # The baselines play each run's own episode seeds on the same tasks: one value per seed.
    per_seed = {}
    for d in map(Path, dirs):
        baselines = json.loads((d / "eval" / "facts-baselines.json").read_text())
        rows = baselines.get("baselines", baselines) if isinstance(baselines, dict) else baselines
        for b in rows:
            per_seed.setdefault(b["policy"], []).append(b["task_score"])
    print()
    for policy, xs in per_seed.items():
        m, h = interval(xs)
        print(f"- {policy}: {m:.3f} ± {h:.3f} ({', '.join(f'{x:.3f}' for x in xs)})")
    finals = [c[steps[-1]] for c in curves]
    if "heuristic" in per_seed and len(per_seed["heuristic"]) == len(finals):
        m, h = interval([f - t for f, t in zip(finals, per_seed["heuristic"])])
        print(f"- final − heuristic: {m:+.3f} ± {h:.3f}")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends quietly
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])

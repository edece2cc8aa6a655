#!/usr/bin/env python3
"""Puts the trained agent's LoCoMo results (out/agent-step-N.json, from run.sh) next to the
baseline rows of ../locomo-baselines/summary.json (same conversation, questions and reader) in
results.md and summary.json. Numbers only: questions and predictions stay in the ignored out/."""
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "locomo-baselines"))
from summarize import CATS, fmt, summary_entry  # noqa: E402  (the baselines' helpers)

BASELINES = json.loads((HERE.parent / "locomo-baselines" / "summary.json").read_text())
TRAINED = [
    ("agent-step-0", "SmolLM2 agent after SFT on oracle demonstrations (step 0)"),
    ("agent-step-2", "SmolLM2 agent after SFT + 2 GRPO steps (DCPO)"),
]


def row(label, s):
    t, e = s["locomo"], s["efficiency"]
    by = {c["id"]: c for c in t["categories"]}
    cells = [fmt(by[i]["f1"]) if i in by else "–" for i, _ in CATS]
    return (f"| {label} | " + " | ".join(cells) + f" | {fmt(t['overall']['f1'])} | "
            f"{fmt(t['overall_without_adversarial']['f1'])} ± {fmt(s['f1_without_adversarial_standard_error'])} | "
            f"{s['unanswered']} | {e['tokens_read_per_question']:.0f} | {e['wall_seconds']:.0f} |")


lines = ["| setting | " + " | ".join(n for _, n in CATS) + " | overall | F1 w/o adv. (± s.e.) | unanswered | tokens read / q | wall s |",
         "|---" * (len(CATS) + 6) + "|"]
summary = {}
for stem, label in TRAINED:
    path = HERE / "out" / f"{stem}.json"
    if not path.exists():
        lines.append(f"| {label} | " + " | ".join("not run" for _ in range(len(CATS) + 5)) + " |")
        continue
    summary[stem] = summary_entry(json.loads(path.read_text()), label)
    lines.append(row(f"**{label}**", summary[stem]))
for stem, b in BASELINES.items():
    lines.append(row(b["label"] + " (baseline)", b))
(HERE / "results.md").write_text("\n".join(lines) + "\n")
(HERE / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
print("\n".join(lines))

#!/usr/bin/env python3
"""Collects the `memrl eval` results in out/ into results.md and summary.json (numbers only:
no questions, answers or predictions, which stay in the git-ignored out/ folder). Its helpers
are shared with ../locomo-smollm2/summarize.py."""
import json
import pathlib

HERE = pathlib.Path(__file__).parent
ROWS = [
    ("scripted-oracle", "oracle memory, scripted answers (gold) — scorer ceiling"),
    ("scripted-heuristic", "Mem0-style heuristic memory, scripted answers (top hit verbatim)"),
    ("reader-no-memory", "no memory (question only) + SmolLM2 reader"),
    ("reader-oracle", "oracle memory (evidence turns) + SmolLM2 reader"),
    ("reader-heuristic", "Mem0-style heuristic memory, top-10 search + SmolLM2 reader"),
    ("reader-bm25-rag", "BM25 over turns, top-10 + SmolLM2 reader"),
    ("reader-full-context", "full context, most recent turns in 2048 tokens + SmolLM2 reader"),
    ("agent-untrained", "SmolLM2 as the memory agent (tool calls), before memrl training"),
]
CATS = [(4, "single-hop"), (1, "multi-hop"), (2, "temporal"), (3, "open-domain"), (5, "adversarial")]


def fmt(x):
    return "–" if x is None else f"{x:.3f}"


def stderr(scores):
    """Standard error of the mean (None below two scores)."""
    n = len(scores)
    if n < 2:
        return None
    m = sum(scores) / n
    return (sum((x - m) ** 2 for x in scores) / (n - 1) / n) ** 0.5


def summary_entry(r, label):
    """The numbers of one `memrl eval` result file (no questions or predictions)."""
    return {
        "label": label,
        "protocol": r["protocol"],
        "questions": r["questions"],
        "episodes": r["episodes"],
        "unanswered": sum(1 for q in r["rows"] if q["prediction"] is None),
        "locomo": r["locomo"],
        "judge_model": r.get("judge_model"),
        "f1_without_adversarial_standard_error": stderr([q["score"] for q in r["rows"] if q.get("category_id") != 5]),
        "efficiency": r["efficiency"],
        "settings": r["settings"],
        "knobs": r["knobs"],
        "notes": r["notes"],
    }


def main():
    summary, lines = {}, []
    lines.append("| setting | " + " | ".join(f"{n} ({i})" for i, n in CATS) + " | overall | w/o adv. (± s.e.) | BLEU-1 w/o adv. | tokens read / q | wall s |")
    lines.append("|---" * (len(CATS) + 6) + "|")
    for stem, label in ROWS:
        path = HERE / "out" / f"{stem}.json"
        if not path.exists():
            lines.append(f"| {label} | " + " | ".join("not run" for _ in range(len(CATS) + 5)) + " |")
            continue
        s = summary_entry(json.loads(path.read_text()), label)
        t, e = s["locomo"], s["efficiency"]
        by = {c["id"]: c for c in t["categories"]}
        cells = [f"{fmt(by[i]['f1'])} (n={by[i]['questions']})" if i in by else "–" for i, _ in CATS]
        lines.append(
            f"| {label} | " + " | ".join(cells)
            + f" | {fmt(t['overall']['f1'])} (n={t['overall']['questions']}) | {fmt(t['overall_without_adversarial']['f1'])} ± {fmt(s['f1_without_adversarial_standard_error'])}"
            + f" | {fmt(t['overall_without_adversarial']['bleu1'])} | {e['tokens_read_per_question']:.0f} | {e['wall_seconds']:.0f} |"
        )
        summary[stem] = s
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    (HERE / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

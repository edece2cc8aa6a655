#!/usr/bin/env python3
"""What the policy does with each fact, per saved rollout step: how often it skips (noop) or
stores (memory_add / memory_update) a fact about a tracked person vs the distractor, and which
entry it evicts when the bank is full (the tracked person's or the distractor's); and on the
answer turns, what memory held (a tracked person's fact, only the distractor's, nothing) and
whether the policy answered a value or `unknown`, with how many of those were right.

    python3 ops.py RUN_DIR [RUN_DIR ...]

Reads RUN_DIR/rollouts/step-N.parquet (pyarrow); memory turns only (prompts with "Chunk").
The facts environment's terse prompt is assumed (`Track: A, B.` and one fact per chunk).
"""
import re
import sys
from pathlib import Path

import pyarrow.parquet as pq


def person(line):
    return re.split(r"[ ']", line.strip(), maxsplit=1)[0]


def analyse(path):
    t = pq.read_table(path, columns=["prompt_text", "response_text", "reward", "is_last"]).to_pydict()
    n = {"tracked": 0, "distractor": 0}
    skip = {"tracked": 0, "distractor": 0}
    evict = {"tracked": 0, "distractor": 0}
    answers = {}
    for prompt, response, reward, last in zip(t["prompt_text"], t["response_text"], t["reward"], t["is_last"]):
        user = prompt.rsplit("<|im_start|>user\n", 1)[-1]
        m = re.search(r"Track: ([^\n]*)\.\n", user)
        if m and last and "Questions:" in user:
            tracked = [x.strip() for x in m.group(1).split(",")]
            held = [person(name) for _, name in re.findall(r"\[(m\d+)\] (\S+)", user)]
            state = "T" if any(h in tracked for h in held) else ("D" if held else "empty")
            said = "unknown" if '"unknown"' in response else "value"
            right = answers.setdefault((state, said), [0, 0])
            right[0] += int(reward > 0.5)
            right[1] += 1
        chunk = re.search(r"Chunk \d+ of \d+:\n([^<]*)", user)
        if not m or not chunk:
            continue
        tracked = [x.strip() for x in m.group(1).split(",")]
        facts = [line for line in chunk.group(1).split("\n") if line.strip()]
        if len(facts) != 1:
            continue
        kind = "tracked" if person(facts[0]) in tracked else "distractor"
        n[kind] += 1
        if '"noop"' in response or ("memory_add" not in response and "memory_update" not in response):
            skip[kind] += 1
        entries = dict(re.findall(r"\[(m\d+)\] (\S+)", user))
        for victim in re.findall(r'"id":"(m\d+)"\},"name":"memory_delete"', response):
            if victim in entries:
                evict["tracked" if entries[victim] in tracked else "distractor"] += 1
    return n, skip, evict, answers


def main():
    for run in sys.argv[1:]:
        files = sorted(Path(run, "rollouts").glob("step-*.parquet"), key=lambda p: int(p.stem.split("-")[1]))
        print(f"{run}")
        print("  step | facts T/D | skip T | skip D | evict T | evict D | answers: memory held -> said (right/all)")
        for f in files:
            n, skip, evict, answers = analyse(f)
            said = "  ".join(f"{k[0]}->{k[1]} {v[0]}/{v[1]}" for k, v in sorted(answers.items()))
            rate = lambda a, b: f"{a / b:.2f}" if b else "  - "
            ev = evict["tracked"] + evict["distractor"]
            print(f"  {f.stem.split('-')[1]:>4} | {n['tracked']:>4}/{n['distractor']:<4} | {rate(skip['tracked'], n['tracked'])}   | {rate(skip['distractor'], n['distractor'])}   | {rate(evict['tracked'], ev)}    | {rate(evict['distractor'], ev)}   | {said}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        pass

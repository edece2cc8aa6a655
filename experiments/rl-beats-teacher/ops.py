#!/usr/bin/env python3
"""What the policy does with each fact, per saved rollout step: how often it skips (noop) or
stores (memory_add / memory_update) a fact about a tracked person vs the distractor, and which
entry it evicts when the bank is full (the tracked person's or the distractor's).

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
    t = pq.read_table(path, columns=["prompt_text", "response_text"]).to_pydict()
    n = {"tracked": 0, "distractor": 0}
    skip = {"tracked": 0, "distractor": 0}
    evict = {"tracked": 0, "distractor": 0}
    for prompt, response in zip(t["prompt_text"], t["response_text"]):
        user = prompt.rsplit("<|im_start|>user\n", 1)[-1]
        m = re.search(r"Track: ([^\n]*)\.\n", user)
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
    return n, skip, evict


def main():
    for run in sys.argv[1:]:
        files = sorted(Path(run, "rollouts").glob("step-*.parquet"), key=lambda p: int(p.stem.split("-")[1]))
        print(f"{run}")
        print("  step | facts T/D | skip T | skip D | evict T | evict D")
        for f in files:
            n, skip, evict = analyse(f)
            rate = lambda a, b: f"{a / b:.2f}" if b else "  - "
            ev = evict["tracked"] + evict["distractor"]
            print(f"  {f.stem.split('-')[1]:>4} | {n['tracked']:>4}/{n['distractor']:<4} | {rate(skip['tracked'], n['tracked'])}   | {rate(skip['distractor'], n['distractor'])}   | {rate(evict['tracked'], ev)}    | {rate(evict['distractor'], ev)}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        pass

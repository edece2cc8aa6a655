#!/usr/bin/env python3
"""Collects the study's runs into results.md and summary.json, and copies each arm's raw
metrics into raw/ (numbers only: the runs' rollouts and checkpoints stay in the run folder).

    python3 experiments/dcpo-vs-baselines/summarize.py runs/dcpo-vs-baselines
"""
import json
import pathlib
import shutil
import statistics
import sys

HERE = pathlib.Path(__file__).parent
ARMS = ["dcpo", "per_turn", "prefix_only"]


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def evals(run):
    out = {}
    for f in sorted((run / "eval").glob("*-step-*.json")):
        e = json.loads(f.read_text())
        out[e["step"]] = e
    return out


def arm_summary(run):
    metrics = rows(run / "metrics.jsonl")
    rl = [r for r in metrics if "reward/mean" in r]
    ev = evals(run)
    first, last = (ev[min(ev)], ev[max(ev)]) if ev else (None, None)
    col = lambda k: [r.get(k) for r in rl]
    steps = len(rl)
    return {
        "rl_steps": steps,
        "eval_steps": sorted(ev),
        "eval_reward_start": first and first["reward_mean"],
        "eval_reward_end": last and last["reward_mean"],
        "eval_task_score_start": first and first.get("task_score_mean"),
        "eval_task_score_end": last and last.get("task_score_mean"),
        "train_reward_mean": mean(col("reward/mean")),
        "train_task_score_mean": mean(col("reward/task_score")),
        "context_tokens_mean": mean(col("rollout/context_tokens_mean")),
        "context_tokens_max": max((x for x in col("rollout/context_tokens_max") if x is not None), default=None),
        "fractures_per_trajectory": mean(col("segments/fractures")),
        "segments_per_step": mean(col("segments/count")),
        "learner_positions_per_step": mean(col("learner/positions")),
        "generated_tokens_per_step": mean(col("rollout/generated_tokens")),
        "generate_s_per_step": mean(col("time/generate_s")),
        "learner_s_per_step": mean(col("time/learner_s")),
        "env_s_per_step": mean(col("time/env_s")),
        "step_s": mean(col("time/step_s")),
        "rl_wall_s": sum(x for x in col("time/step_s") if x is not None),
    }


def fmt(x, spec=".3f"):
    return "–" if x is None else format(x, spec)


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "runs/dcpo-vs-baselines")
    summary = {}
    raw = HERE / "raw"
    for run in sorted(out.iterdir()):
        if not run.is_dir() or not (run / "metrics.jsonl").exists():
            continue
        name = run.name
        dest = raw / name
        dest.mkdir(parents=True, exist_ok=True)
        for f in ["metrics.jsonl", "sft_metrics.jsonl", "config.toml"]:
            if (run / f).exists():
                shutil.copy(run / f, dest / f)
        if (run / "eval").exists():
            shutil.copytree(run / "eval", dest / "eval", dirs_exist_ok=True)
        if name.split("-s")[0] in ARMS:
            summary[name] = arm_summary(run)
    (HERE / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    head = ("| arm | eval reward start → end | eval task score start → end | train reward (mean over steps) "
            "| context tokens mean / max | fractures / traj. | segments / step | learner positions / step "
            "| s / step: generate, learner, env | RL wall s |")
    lines = [head, "|---" * 10 + "|"]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {fmt(s['eval_reward_start'])} → {fmt(s['eval_reward_end'])} "
            f"| {fmt(s['eval_task_score_start'])} → {fmt(s['eval_task_score_end'])} "
            f"| {fmt(s['train_reward_mean'])} | {fmt(s['context_tokens_mean'], '.0f')} / {fmt(s['context_tokens_max'], '.0f')} "
            f"| {fmt(s['fractures_per_trajectory'], '.2f')} | {fmt(s['segments_per_step'], '.1f')} "
            f"| {fmt(s['learner_positions_per_step'], '.0f')} "
            f"| {fmt(s['generate_s_per_step'], '.0f')}, {fmt(s['learner_s_per_step'], '.0f')}, {fmt(s['env_s_per_step'], '.2f')} "
            f"| {fmt(s['rl_wall_s'], '.0f')} |"
        )
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

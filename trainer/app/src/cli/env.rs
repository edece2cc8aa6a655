//! `memrl env`: play environments with model-free policies.
//!
//! ```text
//! memrl env play --env facts --policy oracle --episodes 100 --seed 0 [--split validation]
//!                [--set key=value ...] [--trace FILE] [--json] [--counter approx|whitespace]
//! memrl env knobs facts        # default knobs as JSON (every key is settable with --set)
//! memrl env list
//! ```
//! Episodes run in parallel (rayon); each gets its own environment instance, the `i`-th task
//! the training sampler ([`TaskSampler`]) draws from the split with `--seed`, and episode seed
//! `derive_seed([seed, i])`, so results do not depend on the thread count.

use anyhow::{Context, Result, bail};
use memrl_envs::env::{Env, ScriptedKind, Split, Termination};
use memrl_envs::ledger::derive_seed;
use memrl_envs::policy::ScriptedPolicy;
use memrl_envs::registry::{ENV_NAMES, build_env, default_knobs, set_knob};
use memrl_envs::rollout::{EpisodeResult, TraceTurn, run_episode};
use memrl_envs::sampler::{TaskSampler, pool_size};
use memrl_envs::tokens::{ByteApproxCounter, TokenCounter, WhitespaceCounter};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// `memrl env …`.
#[derive(clap::Args, Debug)]
pub struct EnvArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: EnvCommand,
}

/// Subcommands of `memrl env`.
#[derive(clap::Subcommand, Debug)]
pub enum EnvCommand {
    /// Play episodes with a model-free policy and print a summary.
    Play(PlayArgs),
    /// Print an environment's default knobs as JSON.
    Knobs {
        /// Environment name.
        name: String,
    },
    /// List environment names.
    List,
}

/// Arguments of `memrl env play`.
#[derive(clap::Args, Debug, Clone)]
pub struct PlayArgs {
    /// Environment name (facts, multiobjective, locomo, longmemeval).
    #[arg(long)]
    pub env: String,
    /// oracle | heuristic | no-memory | full-context.
    #[arg(long, default_value = "oracle")]
    pub policy: String,
    /// Episodes to play.
    #[arg(long, default_value_t = 100)]
    pub episodes: u64,
    /// Seed of task sampling, episodes and policies.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// train | validation | test.
    #[arg(long, default_value = "validation")]
    pub split: String,
    /// Env knob override, repeatable: `--set capacity=6 --set penalties.malformed=0.1`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Write every turn as JSONL here (written atomically).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Token counter: approx (bytes/4) or whitespace.
    #[arg(long, default_value = "approx")]
    pub counter: String,
}

/// Mean and standard deviation (population).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
}

fn mean_std(xs: impl Iterator<Item = f64>) -> MeanStd {
    let (mean, std) = memrl_rl::stats::mean_std(&xs.collect::<Vec<f64>>());
    MeanStd { mean, std }
}

/// What `memrl env play` reports.
#[derive(Debug, Clone, Serialize)]
pub struct PlaySummary {
    /// Environment.
    pub env: String,
    /// Policy.
    pub policy: String,
    /// Split.
    pub split: String,
    /// Episodes played.
    pub episodes: u64,
    /// Seed.
    pub seed: u64,
    /// Reward (task score − penalties).
    pub reward: MeanStd,
    /// Task score before penalties.
    pub task_score: MeanStd,
    /// Memory operations per episode (add+update+delete+prune+summarize+overwrite).
    pub memory_ops_per_episode: f64,
    /// Mean count per operation kind.
    pub ops_per_episode: BTreeMap<String, f64>,
    /// Fractures per episode (context not an extension of the previous one).
    pub fractures_per_episode: f64,
    /// Budget violations per episode, total and by kind.
    pub violations_per_episode: f64,
    /// By kind.
    pub violations_by_kind: BTreeMap<String, f64>,
    /// Malformed or rejected calls per episode.
    pub format_errors_per_episode: f64,
    /// Turns per episode.
    pub turns_per_episode: f64,
    /// Peak working-context tokens: mean and max over episodes.
    pub peak_context_tokens: MeanStd,
    /// Largest peak.
    pub peak_context_tokens_max: usize,
    /// Working-context budget (0 where the env has none).
    pub context_budget: usize,
    /// Largest number of memory entries held in any episode.
    pub peak_memory_entries_max: usize,
    /// How episodes ended.
    pub terminations: BTreeMap<String, u64>,
}

/// Parses a counter name.
pub fn counter(name: &str) -> Result<Arc<dyn TokenCounter>> {
    match name {
        "approx" => Ok(Arc::new(ByteApproxCounter::default())),
        "whitespace" => Ok(Arc::new(WhitespaceCounter)),
        _ => bail!("unknown --counter {name:?} (expected approx or whitespace)"),
    }
}

/// Builds the knob table from `--set` flags.
pub fn knobs_from_sets(sets: &[String]) -> Result<serde_json::Value> {
    let mut knobs = serde_json::Value::Null;
    for s in sets {
        let (k, v) = s.split_once('=').with_context(|| format!("--set {s:?}: expected KEY=VALUE"))?;
        set_knob(&mut knobs, k.trim(), v.trim())?;
    }
    Ok(knobs)
}

/// Plays the episodes; returns the summary and every episode (with traces if asked).
pub fn play(args: &PlayArgs) -> Result<(PlaySummary, Vec<EpisodeResult>)> {
    if args.episodes == 0 || args.episodes > super::MAX_EPISODES {
        bail!("--episodes {}: expected 1 to {}", args.episodes, super::MAX_EPISODES);
    }
    let kind: ScriptedKind = args.policy.parse().map_err(anyhow::Error::msg)?;
    let split: Split = args.split.parse().map_err(anyhow::Error::msg)?;
    let knobs = knobs_from_sets(&args.set)?;
    let counter = counter(&args.counter)?;
    let probe = build_env(&args.env, knobs.clone(), counter.clone())?;
    let Ok(mut sampler) = TaskSampler::new(pool_size(probe.task_count(split)), args.seed) else {
        bail!("split {split} of {} has no tasks", args.env);
    };
    let tasks = sampler.next_tasks(split, args.episodes as usize);
    let want_trace = args.trace.is_some();
    let results: Vec<Result<EpisodeResult>> = tasks
        .par_iter()
        .enumerate()
        .map_init(
            || build_env(&args.env, knobs.clone(), counter.clone()),
            |env, (i, task)| {
                let env: &mut Box<dyn Env> = env.as_mut().map_err(|e| anyhow::anyhow!(crate::cli::error_text(e)))?;
                let mut policy = ScriptedPolicy::new(kind, derive_seed(&[args.seed, i as u64, 1]));
                Ok(run_episode(env.as_mut(), &mut policy, *task, derive_seed(&[args.seed, i as u64]), want_trace, 10_000)?)
            },
        )
        .collect();
    let results: Vec<EpisodeResult> = results.into_iter().collect::<Result<_>>()?;
    Ok((summarize(args, &results), results))
}

fn summarize(args: &PlayArgs, r: &[EpisodeResult]) -> PlaySummary {
    let n = r.len().max(1) as f64;
    let per = |f: &dyn Fn(&EpisodeResult) -> f64| r.iter().map(f).sum::<f64>() / n;
    let stats = |e: &EpisodeResult| e.end.breakdown.stats.clone();
    let mut ops = BTreeMap::new();
    for (name, f) in [
        ("add", (|s: &memrl_envs::env::OpCounts| s.add) as fn(&memrl_envs::env::OpCounts) -> u32),
        ("update", |s| s.update),
        ("delete", |s| s.delete),
        ("noop", |s| s.noop),
        ("memory_search", |s| s.memory_search),
        ("search", |s| s.search),
        ("prune", |s| s.prune),
        ("summarize", |s| s.summarize),
        ("overwrite", |s| s.overwrite),
        ("answer", |s| s.answer),
    ] {
        ops.insert(name.to_string(), per(&|e| f(&stats(e).ops) as f64));
    }
    let mut violations = BTreeMap::new();
    violations.insert("turn_tokens".into(), per(&|e| stats(e).violations.turn_tokens as f64));
    violations.insert("turns".into(), per(&|e| stats(e).violations.turns as f64));
    violations.insert("context_tokens".into(), per(&|e| stats(e).violations.context_tokens as f64));
    violations.insert("memory".into(), per(&|e| stats(e).violations.memory as f64));
    let mut terminations = BTreeMap::new();
    for e in r {
        let name = match e.end.breakdown.termination {
            Termination::Completed => "completed",
            Termination::TurnLimit => "turn_limit",
            Termination::ContextBudget => "context_budget",
        };
        *terminations.entry(name.to_string()).or_insert(0) += 1;
    }
    PlaySummary {
        env: args.env.clone(),
        policy: args.policy.clone(),
        split: args.split.clone(),
        episodes: r.len() as u64,
        seed: args.seed,
        reward: mean_std(r.iter().map(|e| e.end.reward)),
        task_score: mean_std(r.iter().map(|e| e.end.breakdown.task_score)),
        memory_ops_per_episode: per(&|e| stats(e).ops.memory_ops() as f64),
        ops_per_episode: ops,
        fractures_per_episode: per(&|e| e.fractures as f64),
        violations_per_episode: per(&|e| stats(e).violations.total() as f64),
        violations_by_kind: violations,
        format_errors_per_episode: per(&|e| stats(e).format_errors as f64),
        turns_per_episode: per(&|e| stats(e).turns as f64),
        peak_context_tokens: mean_std(r.iter().map(|e| stats(e).peak_context_tokens as f64)),
        peak_context_tokens_max: r.iter().map(|e| stats(e).peak_context_tokens).max().unwrap_or(0),
        context_budget: r.first().map(|e| stats(e).context_budget).unwrap_or(0),
        peak_memory_entries_max: r.iter().map(|e| stats(e).peak_memory_entries).max().unwrap_or(0),
        terminations,
    }
}

/// One trace line: the episode number plus the turn.
#[derive(Serialize)]
struct TraceLine<'a> {
    episode: usize,
    #[serde(flatten)]
    turn: &'a TraceTurn,
}

/// Writes all traces as JSONL, atomically (temp file in the same folder, then rename).
pub fn write_trace(path: &std::path::Path, results: &[EpisodeResult]) -> Result<()> {
    let mut bytes = Vec::new();
    for (episode, r) in results.iter().enumerate() {
        for turn in &r.trace {
            serde_json::to_writer(&mut bytes, &TraceLine { episode, turn })?;
            bytes.push(b'\n');
        }
    }
    memrl_policies::atomic::write_file_atomic(path, &bytes).with_context(|| format!("writing {}", path.display()))
}

fn print_summary(s: &PlaySummary) {
    outln!("env {}  policy {}  split {}  episodes {}  seed {}", s.env, s.policy, s.split, s.episodes, s.seed);
    outln!("reward          {:.4} ± {:.4}", s.reward.mean, s.reward.std);
    outln!("task score      {:.4} ± {:.4}", s.task_score.mean, s.task_score.std);
    let ops: Vec<String> = s.ops_per_episode.iter().filter(|(_, v)| **v > 0.0).map(|(k, v)| format!("{k} {v:.2}")).collect();
    outln!("memory ops      {:.2} / episode  ({})", s.memory_ops_per_episode, ops.join(", "));
    outln!("fractures       {:.2} / episode", s.fractures_per_episode);
    let v: Vec<String> = s.violations_by_kind.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
    outln!("violations      {:.2} / episode  ({})", s.violations_per_episode, v.join(", "));
    outln!("format errors   {:.2} / episode", s.format_errors_per_episode);
    outln!("turns           {:.2} / episode", s.turns_per_episode);
    let budget = if s.context_budget > 0 { format!("budget {}", s.context_budget) } else { "no budget".into() };
    outln!("peak context    {:.0} ± {:.0} tokens, max {} ({budget})", s.peak_context_tokens.mean, s.peak_context_tokens.std, s.peak_context_tokens_max);
    outln!("peak memory     {} entries", s.peak_memory_entries_max);
    let t: Vec<String> = s.terminations.iter().map(|(k, v)| format!("{k} {v}")).collect();
    outln!("terminations    {}", t.join(", "));
}

/// Runs `memrl env …`.
pub fn run(args: EnvArgs) -> Result<()> {
    match args.command {
        EnvCommand::List => {
            for n in ENV_NAMES {
                outln!("{n}");
            }
            Ok(())
        }
        EnvCommand::Knobs { name } => {
            outln!("{}", serde_json::to_string_pretty(&default_knobs(&name)?)?);
            Ok(())
        }
        EnvCommand::Play(p) => {
            let (summary, results) = play(&p)?;
            if let Some(path) = &p.trace {
                write_trace(path, &results)?;
            }
            if p.json {
                outln!("{}", serde_json::to_string(&summary)?);
            } else {
                print_summary(&summary);
            }
            Ok(())
        }
    }
}

//! `memrl train CONFIG` and `memrl sft CONFIG`.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::config;
use crate::train::run::{StartMode, train};

/// Arguments of `memrl train` and `memrl sft`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The run's TOML config (see `configs/`). With `--resume` it may be left out: the run
    /// directory's saved `config.toml` is used.
    pub config: Option<PathBuf>,
    /// Override a config value, e.g. `--set trainer.lr=2e-6` (repeatable; dotted key paths).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue the run in this directory from its latest complete checkpoint.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "overwrite")]
    pub resume: Option<PathBuf>,
    /// Replace the run directory if it exists (otherwise an existing one is refused).
    #[arg(long)]
    pub overwrite: bool,
    /// Print the final summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Hide the progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `memrl train`: the optional `[sft]` warm start, then RL for `run.steps` steps.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    run_with(args, &[])
}

/// Runs `memrl sft`: the `[sft]` stage alone (it sets `sft.enabled = true` and `run.steps = 0`).
pub fn run_sft(args: TrainArgs) -> anyhow::Result<()> {
    run_with(args, &["sft.enabled=true", "run.steps=0"])
}

fn run_with(args: TrainArgs, forced: &[&str]) -> anyhow::Result<()> {
    let mut overrides = args.set.clone();
    overrides.extend(forced.iter().map(|s| s.to_string()));
    let (path, mode) = match (&args.resume, &args.config) {
        (Some(dir), config) => {
            // The resumed run lives where it is, whatever its config says.
            // String-typed keys take the raw text after `=`, so the path goes in unquoted.
            overrides.push(format!("run.dir={}", dir.display()));
            (config.clone().unwrap_or_else(|| dir.join("config.toml")), StartMode::Resume)
        }
        (None, Some(path)) => (path.clone(), if args.overwrite { StartMode::Overwrite } else { StartMode::Fresh }),
        (None, None) => bail!("give a config file (memrl train CONFIG) or a run to continue (--resume RUN_DIR)"),
    };
    let cfg = config::load(Some(&path), &overrides).with_context(|| format!("loading {}", path.display()))?;
    let summary = train(&cfg, mode, !args.quiet)?;
    if args.json {
        outln!("{}", serde_json::to_string(&summary)?);
    } else {
        let fmt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
        outln!("run directory   {}", summary.run_dir);
        if let Some(step) = summary.resumed_from {
            outln!("resumed from    step {step}");
        }
        if let Some(step) = summary.resumed_from_sft_step {
            outln!("resumed from    sft step {step}");
        }
        if let Some(r) = summary.sft_demo_reward {
            outln!("sft demo reward {r:.4}");
        }
        outln!("rl steps        {}", summary.steps);
        outln!("eval reward     {} -> {}", fmt(summary.eval_reward_start), fmt(summary.eval_reward_end));
        if summary.eval_task_score_end.is_some() {
            outln!();
            outln!("held-out task score ({} tasks of the {} split, the same for every row)", cfg.eval.episodes, cfg.eval.split);
            outln!("  {:<24} {}", "model before RL", fmt(summary.eval_task_score_start));
            outln!("  {:<24} {}", "model after RL", fmt(summary.eval_task_score_end));
            for b in &summary.baselines {
                let name = if b.teacher { format!("{} (teacher)", b.policy) } else { b.policy.clone() };
                outln!("  {:<24} {:.4}", name, b.task_score);
            }
            outln!();
        }
        outln!("wall time       {:.1} s", summary.wall_seconds);
    }
    Ok(())
}

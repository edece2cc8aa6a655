//! `memrl train CONFIG` and `memrl sft CONFIG`.

use std::path::PathBuf;

use anyhow::Context;

use crate::config;
use crate::train::run::{Existing, train};

/// Arguments of `memrl train` and `memrl sft`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The run's TOML config (see `configs/`).
    pub config: PathBuf,
    /// Override a config value, e.g. `--set trainer.lr=2e-6` (repeatable; dotted key paths).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
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
    let cfg = config::load(Some(&args.config), &overrides).with_context(|| format!("loading {}", args.config.display()))?;
    let existing = if args.overwrite { Existing::Overwrite } else { Existing::Refuse };
    let summary = train(&cfg, existing, !args.quiet)?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("run directory   {}", summary.run_dir);
        println!("rl steps        {}", summary.steps);
        let fmt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
        println!("eval reward     {} -> {}", fmt(summary.eval_reward_start), fmt(summary.eval_reward_end));
        println!("wall time       {:.1} s", summary.wall_seconds);
    }
    Ok(())
}

//! `memrl sweep SWEEP.toml [-j N]`: grid / random search over a base config, several seeds.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::sweep::{RunOptions, load_sweep, run_sweep};

/// Arguments of `memrl sweep`.
#[derive(clap::Args, Debug)]
pub struct SweepArgs {
    /// The sweep file (TOML; see trainer/app/src/sweep/spec.rs and experiments/).
    pub file: PathBuf,
    /// Trials run at once (each is a `memrl train` process).
    #[arg(short = 'j', long = "jobs", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: u64,
    /// Output directory (default: the sweep file's `out_dir`, else sweeps/<name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Delete the output directory's earlier trials and start the sweep again (needed when the
    /// sweep file's parameters changed).
    #[arg(long)]
    pub overwrite: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `memrl sweep`. Trials that fail are recorded in the summary; the command then exits
/// with an error naming them (after writing everything), so scripts notice.
pub fn run(args: SweepArgs) -> anyhow::Result<()> {
    let spec = load_sweep(&args.file)?;
    let exe = std::env::current_exe().context("locating the memrl executable to run the trials")?;
    let opts =
        RunOptions { exe, jobs: usize::try_from(args.jobs).unwrap_or(usize::MAX), out_dir: args.out.clone(), overwrite: args.overwrite, progress: !args.quiet };
    let report = run_sweep(&spec, &opts)?;
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        outln!("sweep directory {}", report.out_dir);
        outln!(
            "trials          {} ({} already finished, {} started, {} resumed; {} finished, {} failed)",
            report.trials,
            report.already_finished,
            report.started,
            report.resumed,
            report.finished,
            report.failed.len()
        );
        for s in &report.settings {
            let fmt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
            outln!("  {}  {:<40} {} ± {}  ({} of {} seeds)", s.id, s.label, fmt(s.mean), fmt(s.std), s.finals.len(), s.trials);
        }
        if let Some(b) = &report.best {
            outln!("best            {} ({}): {} {:.4}", b.id, b.label, report.metric, b.mean.unwrap_or(f64::NAN));
        }
        outln!("summary         {} , {}", report.summary_md, report.summary_csv);
        if let Some(p) = &report.plot {
            outln!("plot            {p}");
        }
    }
    if let Some(why) = &report.metric_missing {
        bail!("{why}; see {}/summary.md", report.out_dir);
    }
    if !report.failed.is_empty() {
        bail!(
            "{} of {} trials failed ({}); see {}/summary.md and the stderr tails in {}/logs/; run the same command again to retry them",
            report.failed.len(),
            report.trials,
            report.failed.join(", "),
            report.out_dir,
            report.out_dir
        );
    }
    Ok(())
}

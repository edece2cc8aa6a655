//! `memrl plot`: draws training curves from run directories. One run gives its standard figures
//! (as the run itself draws them); several runs give one figure per metric with a line per run,
//! the comparison a study or a sweep needs.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::metrics::read_metrics;
use crate::plots::{PlotFormat, Series, plot_metrics, plot_series, series_of};

/// Arguments of `memrl plot`.
#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// Run directories (each holds a `metrics.jsonl`).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Metric to compare across runs (repeatable). Default: `eval/reward` and `reward/mean`.
    /// With one run and no metric, its standard figures are drawn instead.
    #[arg(long = "metric", value_name = "NAME")]
    pub metrics: Vec<String>,
    /// Line labels, one per run, in order (default: each run directory's name).
    #[arg(long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
    /// Folder for the figures (default: `plots/` inside the single run; required for several).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write SVG instead of PNG.
    #[arg(long)]
    pub svg: bool,
}

/// Runs `memrl plot`.
pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    let format = if args.svg { PlotFormat::Svg } else { PlotFormat::Png };
    if args.runs.len() == 1 && args.metrics.is_empty() {
        let run = &args.runs[0];
        let out = args.out.clone().unwrap_or_else(|| run.join("plots"));
        for path in plot_metrics(&run.join("metrics.jsonl"), &out, format)? {
            outln!("written: {}", path.display());
        }
        return Ok(());
    }
    let Some(out) = &args.out else {
        bail!("several runs: say where the figures go with --out DIR");
    };
    if !args.labels.is_empty() && args.labels.len() != args.runs.len() {
        bail!("--label given {} times for {} runs: give one per run, in order", args.labels.len(), args.runs.len());
    }
    let metrics = if args.metrics.is_empty() { vec!["eval/reward".to_string(), "reward/mean".to_string()] } else { args.metrics.clone() };
    let mut runs = Vec::with_capacity(args.runs.len());
    for (i, dir) in args.runs.iter().enumerate() {
        let rows = read_metrics(&dir.join("metrics.jsonl")).with_context(|| format!("run {}", dir.display()))?;
        let label = args.labels.get(i).cloned().unwrap_or_else(|| run_name(dir));
        runs.push((label, rows));
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for metric in &metrics {
        let series: Vec<Series> = runs.iter().map(|(label, rows)| (label.clone(), series_of(rows, metric))).filter(|(_, p)| !p.is_empty()).collect();
        if series.is_empty() {
            bail!("no run logged the metric `{metric}` (see a run's metrics.jsonl for the names)");
        }
        let ext = if args.svg { "svg" } else { "png" };
        let path = out.join(format!("{}.{ext}", file_stem(metric)));
        plot_series(&path, metric, metric, &series, format)?;
        outln!("written: {}", path.display());
    }
    Ok(())
}

/// The run directory's last component (`runs/dcpo-s0` → `dcpo-s0`).
fn run_name(dir: &Path) -> String {
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string())
}

/// A metric name as a file name: `eval/reward` → `eval_reward`.
fn file_stem(metric: &str) -> String {
    metric.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

//! Training curves drawn from `metrics.jsonl` with plotters: PNG (default) or SVG.
//!
//! Text is rendered with DejaVu Sans embedded in the binary (the `dejavu` crate) through
//! plotters' pure-Rust `ab_glyph` backend, so plots need no system fonts or fontconfig.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::metrics::{MetricsRow, names, read_metrics};
use crate::run_dir::write_file_atomic;

/// One standard figure: which metrics it draws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlotSpec {
    /// File name without extension.
    pub file_stem: &'static str,
    /// Figure title.
    pub title: &'static str,
    /// Y-axis label.
    pub y_label: &'static str,
    /// Metric names, one line each.
    pub series: &'static [&'static str],
}

/// The figures [`plot_metrics`] draws (each only if at least one of its metrics was logged).
pub const STANDARD_PLOTS: &[PlotSpec] = &[
    PlotSpec { file_stem: "reward", title: "Training reward", y_label: "reward", series: &[names::REWARD_MEAN] },
    PlotSpec { file_stem: "eval_reward", title: "Evaluation reward", y_label: "reward", series: &[names::EVAL_REWARD] },
    PlotSpec {
        file_stem: "task_score",
        title: "Task score (train rollouts, held-out evaluation)",
        y_label: "task score",
        series: &[names::TASK_SCORE, names::EVAL_TASK_SCORE],
    },
    PlotSpec { file_stem: "kl", title: "KL", y_label: "nats", series: &[names::KL_REF, names::KL_APPROX] },
    PlotSpec { file_stem: "entropy", title: "Token entropy", y_label: "nats", series: &[names::ENTROPY] },
    PlotSpec {
        file_stem: "clip_fraction",
        title: "Clip fractions",
        y_label: "fraction of tokens",
        series: &[names::CLIP_LOW, names::CLIP_HIGH, names::CLIP_DUAL],
    },
    PlotSpec { file_stem: "fractures", title: "Trajectory fractures", y_label: "count", series: &[names::FRACTURES] },
    PlotSpec { file_stem: "sft_nll", title: "SFT negative log-likelihood", y_label: "nats per token", series: &["sft/nll"] },
];

/// Output image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlotFormat {
    /// 900×500 PNG.
    #[default]
    Png,
    /// SVG.
    Svg,
}

impl PlotFormat {
    fn extension(self) -> &'static str {
        match self {
            PlotFormat::Png => "png",
            PlotFormat::Svg => "svg",
        }
    }
}

/// Errors from plotting.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The metrics could not be read.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// Drawing failed.
    #[error("drawing {path}: {message}")]
    Draw {
        /// The figure.
        path: PathBuf,
        /// The library's message.
        message: String,
    },
    /// Writing the file failed.
    #[error(transparent)]
    Write(#[from] crate::run_dir::RunDirError),
}

pub(crate) const FONT: &str = "sans-serif";
pub(crate) const SIZE: (u32, u32) = (900, 500);
/// Line colours (the Tableau 10 palette), cycled by series index: ten lines stay distinct.
pub(crate) const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
];

/// Registers the embedded font once per process.
pub(crate) fn ensure_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| "the embedded DejaVu Sans font did not load".to_string())
        })
        .clone()
}

/// A named line: (metric name, points (step, value)).
pub type Series = (String, Vec<(f64, f64)>);

/// Extracts the finite points of `name` from the rows.
pub fn series_of(rows: &[MetricsRow], name: &str) -> Vec<(f64, f64)> {
    rows.iter().filter_map(|r| r.fields.get(name).filter(|v| v.is_finite()).map(|&v| (r.step as f64, v))).collect()
}

/// Axis range covering `values` with 5% padding (a unit range around a single value).
pub(crate) fn padded_range(values: impl Iterator<Item = f64> + Clone) -> std::ops::Range<f64> {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    // A span that overflows f64 (values near ±f64::MAX) would make the axis infinite and its
    // tick search endless: clamp to a quarter of the range, where padding cannot overflow.
    let limit = f64::MAX / 4.0;
    let (lo, hi) = (lo.clamp(-limit, limit), hi.clamp(-limit, limit));
    if hi - lo < 1e-12 {
        let pad = (lo.abs() * 0.1).max(0.5);
        return (lo - pad)..(hi + pad);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad)..(hi + pad)
}

fn draw_chart<DB: DrawingBackend>(root: DrawingArea<DB, plotters::coord::Shift>, title: &str, y_label: &str, series: &[Series]) -> Result<(), String> {
    let points = || series.iter().flat_map(|(_, p)| p.iter());
    let x = padded_range(points().map(|p| p.0));
    let y = padded_range(points().map(|p| p.1));
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(y_label)
        // Steps are integers: label only those (a short run would otherwise get 2.5999999999999996).
        .x_label_formatter(&|x| if x.fract().abs() < 1e-9 { format!("{x:.0}") } else { String::new() })
        .bold_line_style(BLACK.mix(0.2))
        .light_line_style(BLACK.mix(0.06))
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let style = ShapeStyle::from(color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), style))
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        if pts.len() == 1 {
            chart.draw_series(std::iter::once(Circle::new(pts[0], 4, color.filled()))).map_err(|e| e.to_string())?;
        }
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Draws one figure of `series` to `path` (written atomically).
pub fn plot_series(path: &Path, title: &str, y_label: &str, series: &[Series], format: PlotFormat) -> Result<(), PlotError> {
    let draw_err = |message: String| PlotError::Draw { path: path.to_path_buf(), message };
    ensure_font().map_err(draw_err)?;
    match format {
        PlotFormat::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
                draw_chart(root, title, y_label, series).map_err(draw_err)?;
            }
            write_file_atomic(path, svg.as_bytes())?;
        }
        PlotFormat::Png => {
            // Render to a sibling temp file (the encoder picks the format from the extension),
            // then rename over the destination.
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("plot");
            let tmp = path.with_file_name(format!(".{stem}.tmp.png"));
            {
                let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
                draw_chart(root, title, y_label, series).map_err(draw_err)?;
            }
            std::fs::rename(&tmp, path).map_err(|source| crate::run_dir::RunDirError::Io { action: "rename into", path: path.to_path_buf(), source })?;
        }
    }
    Ok(())
}

/// Draws every [`STANDARD_PLOTS`] figure that has data, into `out_dir`. Returns the files written.
pub fn plot_rows(rows: &[MetricsRow], out_dir: &Path, format: PlotFormat) -> Result<Vec<PathBuf>, PlotError> {
    std::fs::create_dir_all(out_dir).map_err(|source| crate::run_dir::RunDirError::Io { action: "create directory", path: out_dir.to_path_buf(), source })?;
    let mut written = Vec::new();
    for spec in STANDARD_PLOTS {
        let series: Vec<Series> = spec.series.iter().map(|name| (name.to_string(), series_of(rows, name))).filter(|(_, pts)| !pts.is_empty()).collect();
        if series.is_empty() {
            continue;
        }
        let path = out_dir.join(format!("{}.{}", spec.file_stem, format.extension()));
        plot_series(&path, spec.title, spec.y_label, &series, format)?;
        written.push(path);
    }
    Ok(written)
}

/// Reads `metrics_path` and draws the standard figures into `out_dir`.
pub fn plot_metrics(metrics_path: &Path, out_dir: &Path, format: PlotFormat) -> Result<Vec<PathBuf>, PlotError> {
    plot_rows(&read_metrics(metrics_path)?, out_dir, format)
}

/// [`plot_metrics`] for a training run, where plots are cosmetic: a figure that cannot be drawn
/// or written (a full disk, a blocked path) is a warning on stderr and the run carries on.
pub fn plot_metrics_or_warn(metrics_path: &Path, out_dir: &Path) {
    if let Err(e) = plot_metrics(metrics_path, out_dir, PlotFormat::Png) {
        eprintln!("warning: plots in {} not updated (training carries on): {}", out_dir.display(), crate::cli::error_text(&e));
    }
}

//! Plots: the standard figures are drawn from metrics.jsonl as real PNG and SVG files.

use memrl_trainer::metrics::{MetricsLogger, names};
use memrl_trainer::plots::{PlotFormat, plot_metrics};

#[test]
fn standard_plots_are_drawn_for_logged_metrics_only() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.jsonl");
    let mut log = MetricsLogger::open(&metrics).unwrap();
    for step in 0..30u64 {
        let s = step as f64;
        let mut fields = vec![
            (names::REWARD_MEAN, 0.1 + 0.02 * s),
            (names::KL_APPROX, 0.001 * s),
            (names::KL_REF, f64::NAN), // never finite: drawn from the other series only
            (names::ENTROPY, 2.0 - 0.03 * s),
            (names::CLIP_LOW, 0.01),
            (names::CLIP_HIGH, 0.02 + 0.001 * s),
            (names::FRACTURES, (step % 4) as f64),
        ];
        if step % 10 == 0 {
            fields.push((names::EVAL_REWARD, 0.05 * s));
        }
        log.log(step, fields).unwrap();
    }
    drop(log);

    let png_dir = dir.path().join("plots");
    let written = plot_metrics(&metrics, &png_dir, PlotFormat::Png).unwrap();
    let stems: Vec<String> = written.iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(stems, ["reward", "eval_reward", "kl", "entropy", "clip_fraction", "fractures"]);
    for p in &written {
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", p.display());
        assert!(bytes.len() > 5_000, "{} is suspiciously small", p.display());
    }
    // No temporaries left behind.
    assert_eq!(std::fs::read_dir(&png_dir).unwrap().count(), written.len());

    let svg_dir = dir.path().join("svg");
    let written = plot_metrics(&metrics, &svg_dir, PlotFormat::Svg).unwrap();
    let svg = std::fs::read_to_string(svg_dir.join("reward.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("Training reward") && svg.contains("reward/mean"));
    assert_eq!(written.len(), 6);
}

#[test]
fn no_metrics_no_plots() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.jsonl");
    let mut log = MetricsLogger::open(&metrics).unwrap();
    log.log(0, [("custom/thing", 1.0)]).unwrap();
    assert!(plot_metrics(&metrics, &dir.path().join("plots"), PlotFormat::Png).unwrap().is_empty());
    assert!(plot_metrics(&dir.path().join("missing.jsonl"), dir.path(), PlotFormat::Png).is_err());
}

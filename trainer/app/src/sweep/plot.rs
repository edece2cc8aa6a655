//! `final_metric.png`: the final metric of every setting, one dot per seed, with the mean and a
//! ±1 std error bar. Uses the run plots' embedded font and palette (`crate::plots`).

use std::path::Path;

use plotters::prelude::*;

use super::SweepError;
use super::summary::SettingRow;
use crate::plots::{COLORS, FONT, PlotError, SIZE, ensure_font, padded_range};

/// Draws the per-setting plot to `path` (PNG, replaced atomically); `params` names the varied
/// keys (short names) for the x-axis title, each tick shows a setting's values. Returns false,
/// drawing nothing, when no setting has a final value.
pub fn plot_settings(path: &Path, metric: &str, params: &[String], settings: &[SettingRow]) -> Result<bool, SweepError> {
    if settings.iter().all(|s| s.finals.is_empty()) {
        return Ok(false);
    }
    let draw_err = |message: String| PlotError::Draw { path: path.to_path_buf(), message };
    ensure_font().map_err(draw_err)?;
    // The bitmap encoder picks the format from the extension: draw into a sibling temp file.
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("plot");
    let tmp = path.with_file_name(format!(".{stem}.tmp.png"));
    let size = (SIZE.0.max(110 * settings.len() as u32 + 140), SIZE.1);
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        draw(root, metric, params, settings).map_err(draw_err)?;
    }
    std::fs::rename(&tmp, path).map_err(super::io_err("rename into", path))?;
    Ok(true)
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, plotters::coord::Shift>, metric: &str, params: &[String], settings: &[SettingRow]) -> Result<(), String> {
    let spread = |s: &SettingRow| s.mean.map(|m| (m, s.std.unwrap_or(0.0)));
    let values = settings.iter().flat_map(|s| s.finals.iter().copied().chain(spread(s).into_iter().flat_map(|(m, d)| [m - d, m + d])));
    let y = padded_range(values);
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Final {metric} per setting (mean ± std over seeds)"), (FONT, 22))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d((0..settings.len().saturating_sub(1)).into_segmented(), y) // plotters' integer ranges are inclusive
        .map_err(|e| e.to_string())?;
    let label = |x: &SegmentValue<usize>| match x {
        SegmentValue::CenterOf(i) => settings.get(*i).map_or(String::new(), |s| s.values.join(", ")),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .x_desc(if params.is_empty() { "setting".to_string() } else { format!("setting ({})", params.join(", ")) })
        .y_desc(metric)
        .x_labels(settings.len())
        .x_label_formatter(&label)
        .disable_x_mesh()
        .bold_line_style(BLACK.mix(0.2))
        .light_line_style(BLACK.mix(0.06))
        .label_style((FONT, 13))
        .draw()
        .map_err(|e| e.to_string())?;

    let seed_color = RGBColor(120, 120, 120);
    chart
        .draw_series(
            settings
                .iter()
                .enumerate()
                .flat_map(|(i, s)| s.finals.iter().map(move |&v| Circle::new((SegmentValue::CenterOf(i), v), 4, seed_color.mix(0.7).filled()))),
        )
        .map_err(|e| e.to_string())?
        .label("one seed")
        .legend(move |(x, y)| Circle::new((x + 10, y), 4, seed_color.filled()));
    let mean_color = COLORS[0];
    let bars = settings.iter().enumerate().filter_map(|(i, s)| {
        spread(s).map(|(m, d)| ErrorBar::new_vertical(SegmentValue::CenterOf(i), m - d, m, m + d, ShapeStyle::from(mean_color).stroke_width(2), 16))
    });
    chart
        .draw_series(bars)
        .map_err(|e| e.to_string())?
        .label("mean ± std")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], ShapeStyle::from(mean_color).stroke_width(2)));
    chart
        .draw_series(
            settings
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.mean.map(|m| Cross::new((SegmentValue::CenterOf(i), m), 7, ShapeStyle::from(mean_color).stroke_width(2)))),
        )
        .map_err(|e| e.to_string())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(id: &str, finals: Vec<f64>) -> SettingRow {
        let (mean, std) = crate::sweep::summary::mean_std(&finals);
        SettingRow {
            id: id.into(),
            label: format!("lr={id}"),
            values: vec![format!("{id}-value")],
            trials: finals.len(),
            finals,
            mean,
            std,
            start_mean: None,
            wall_mean: None,
        }
    }

    #[test]
    fn draws_a_png_or_nothing_without_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("final_metric.png");
        assert!(!plot_settings(&path, "eval/reward", &["lr".into()], &[setting("s00", vec![])]).unwrap());
        assert!(!path.exists());
        let settings = [setting("s00", vec![0.2, 0.4]), setting("s01", vec![0.5]), setting("s02", vec![])];
        assert!(plot_settings(&path, "eval/reward", &["lr".into()], &settings).unwrap());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 5_000, "a drawn chart, not a blank image: {} bytes", bytes.len());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }
}

//! The sweep's tables: one row per trial and one per setting (mean ± std of the final metric
//! over seeds), written as `summary.csv` and `summary.md`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::SweepError;
use super::plan::{TrialList, format_value};
use super::results::{TrialResult, TrialStatus};
use super::spec::Goal;
use crate::metrics::{MetricsRow, read_metrics};
use crate::run_dir::write_file_atomic;

/// The metric's first and last logged values in one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Endpoints {
    /// The first finite value (for `eval/reward`: step 0, before RL).
    pub start: f64,
    /// The step of the last finite value.
    pub final_step: u64,
    /// The last finite value.
    pub final_value: f64,
}

/// The first and last finite values of `metric` (None when it was never logged).
pub fn endpoints(rows: &[MetricsRow], metric: &str) -> Option<Endpoints> {
    let mut logged = rows.iter().filter_map(|r| r.fields.get(metric).filter(|v| v.is_finite()).map(|&v| (r.step, v)));
    let (_, start) = logged.next()?;
    let (final_step, final_value) =
        rows.iter().rev().find_map(|r| r.fields.get(metric).filter(|v| v.is_finite()).map(|&v| (r.step, v))).expect("a first value implies a last one");
    Some(Endpoints { start, final_step, final_value })
}

/// One trial's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialRow {
    /// Trial id.
    pub id: String,
    /// Index of its setting.
    pub setting: usize,
    /// Its seed.
    pub seed: u64,
    /// `finished`, `failed`, or `not run`.
    pub status: String,
    /// The metric's endpoints (None when not finished or never logged).
    pub metric: Option<Endpoints>,
    /// Wall time over the attempts the sweep recorded, seconds.
    pub wall_seconds: Option<f64>,
    /// Why it is not finished, or why it has no metric.
    pub error: Option<String>,
}

/// Builds a trial's row from its results file and its run's metrics (a metrics file that
/// cannot be read becomes the row's error).
pub fn trial_row(list: &TrialList, index: usize, out_dir: &Path, result: Option<&TrialResult>) -> TrialRow {
    let trial = &list.trials[index];
    let mut row = TrialRow {
        id: trial.id.clone(),
        setting: trial.setting,
        seed: trial.seed,
        status: "not run".into(),
        metric: None,
        wall_seconds: result.and_then(TrialResult::wall_seconds),
        error: None,
    };
    match result {
        None => {}
        Some(r) if r.status == TrialStatus::Failed => {
            row.status = "failed".into();
            row.error = r.last_error();
        }
        Some(_) => {
            row.status = "finished".into();
            let path = out_dir.join(&trial.run_dir).join("metrics.jsonl");
            match read_metrics(&path) {
                Ok(rows) => {
                    row.metric = endpoints(&rows, &list.metric);
                    if row.metric.is_none() {
                        let logged: std::collections::BTreeSet<&str> = rows.iter().flat_map(|r| r.fields.keys().map(String::as_str)).collect();
                        let logged = logged.into_iter().collect::<Vec<_>>().join(", ");
                        row.error = Some(format!("`{}` was never logged in {} (it logged: {logged})", list.metric, path.display()));
                    }
                }
                Err(e) => row.error = Some(crate::cli::error_text(&e)),
            }
        }
    }
    row
}

/// One setting's row: the final metric aggregated over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettingRow {
    /// Setting id.
    pub id: String,
    /// Its values, e.g. `lr=1e-4 group_size=4`.
    pub label: String,
    /// Its values, formatted, in the list's `params` order.
    pub values: Vec<String>,
    /// Trials (seeds) of the setting.
    pub trials: usize,
    /// The final values of its finished trials that logged the metric.
    pub finals: Vec<f64>,
    /// Mean of `finals`.
    pub mean: Option<f64>,
    /// Sample standard deviation of `finals` (n − 1; None below two values).
    pub std: Option<f64>,
    /// Mean start value over the same trials.
    pub start_mean: Option<f64>,
    /// Mean wall time over the same trials, seconds.
    pub wall_mean: Option<f64>,
}

/// Mean and sample standard deviation (n − 1): (None, None) for no values, std None for one.
pub fn mean_std(xs: &[f64]) -> (Option<f64>, Option<f64>) {
    if xs.is_empty() {
        return (None, None);
    }
    (Some(memrl_rl::stats::mean_std(xs).0), memrl_rl::stats::sample_std(xs))
}

/// Aggregates the trial rows per setting.
pub fn setting_rows(list: &TrialList, trials: &[TrialRow]) -> Vec<SettingRow> {
    list.settings
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let mine: Vec<&TrialRow> = trials.iter().filter(|t| t.setting == index).collect();
            let done: Vec<(&TrialRow, Endpoints)> = mine.iter().filter_map(|t| t.metric.map(|m| (*t, m))).collect();
            let finals: Vec<f64> = done.iter().map(|(_, m)| m.final_value).collect();
            let starts: Vec<f64> = done.iter().map(|(_, m)| m.start).collect();
            let walls: Vec<f64> = done.iter().filter_map(|(t, _)| t.wall_seconds).collect();
            let (mean, std) = mean_std(&finals);
            SettingRow {
                id: s.id.clone(),
                label: s.label.clone(),
                values: s.values.iter().map(|p| format_value(&p.value)).collect(),
                trials: mine.len(),
                finals,
                mean,
                std,
                start_mean: mean_std(&starts).0,
                wall_mean: mean_std(&walls).0,
            }
        })
        .collect()
}

/// Why the sweep's summary is empty although trials finished: no finished trial logged the
/// metric (the first such trial's explanation, which lists what it did log). None when some
/// trial logged it, or none finished.
pub fn metric_never_logged(list: &TrialList, trials: &[TrialRow]) -> Option<String> {
    let finished: Vec<&TrialRow> = trials.iter().filter(|t| t.status == "finished").collect();
    if finished.is_empty() || finished.iter().any(|t| t.metric.is_some()) {
        return None;
    }
    let detail = finished.iter().find_map(|t| t.error.clone()).unwrap_or_default();
    Some(format!("no finished trial logged the sweep's metric `{}` (`metric` in the sweep file): {detail}", list.metric))
}

/// The best setting by mean final value (None when no setting has one).
pub fn best_setting(settings: &[SettingRow], goal: Goal) -> Option<&SettingRow> {
    let mut best: Option<&SettingRow> = None;
    for s in settings {
        if let Some(m) = s.mean
            && best.and_then(|b| b.mean).is_none_or(|b| goal.better(m, b))
        {
            best = Some(s);
        }
    }
    best
}

fn num(x: Option<f64>) -> String {
    x.map_or(String::new(), |v| format!("{v}"))
}

/// Writes `path` as CSV: a `row` column (`setting` or `trial`), the ids, one column per varied
/// key, then status, n (values aggregated), metric, final_mean, final_std, start_mean,
/// final_step, wall_seconds, error. Setting rows come first.
pub fn write_csv(path: &Path, list: &TrialList, settings: &[SettingRow], trials: &[TrialRow]) -> Result<(), SweepError> {
    let csv_err = |e: csv::Error| SweepError::Csv { path: path.to_path_buf(), message: e.to_string() };
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = ["row", "id", "setting", "seed"].map(String::from).to_vec();
    header.extend(list.params.iter().cloned());
    header.extend(["status", "n", "metric", "final_mean", "final_std", "start_mean", "final_step", "wall_seconds", "error"].map(String::from));
    w.write_record(&header).map_err(csv_err)?;
    for s in settings {
        let finished = s.finals.len();
        let mut rec = vec!["setting".to_string(), s.id.clone(), s.id.clone(), String::new()];
        rec.extend(s.values.iter().cloned());
        rec.extend([
            format!("{finished}/{} finished", s.trials),
            finished.to_string(),
            list.metric.clone(),
            num(s.mean),
            num(s.std),
            num(s.start_mean),
            String::new(),
            num(s.wall_mean),
            String::new(),
        ]);
        w.write_record(&rec).map_err(csv_err)?;
    }
    for t in trials {
        let setting = &list.settings[t.setting];
        let mut rec = vec!["trial".to_string(), t.id.clone(), setting.id.clone(), t.seed.to_string()];
        rec.extend(setting.values.iter().map(|p| format_value(&p.value)));
        rec.extend([
            t.status.clone(),
            usize::from(t.metric.is_some()).to_string(),
            list.metric.clone(),
            num(t.metric.map(|m| m.final_value)),
            String::new(),
            num(t.metric.map(|m| m.start)),
            t.metric.map_or(String::new(), |m| m.final_step.to_string()),
            num(t.wall_seconds),
            t.error.clone().unwrap_or_default(),
        ]);
        w.write_record(&rec).map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| SweepError::Csv { path: path.to_path_buf(), message: e.to_string() })?;
    write_file_atomic(path, &bytes)?;
    Ok(())
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn fixed(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// A markdown table row: `| a | b |`.
fn table_row(md: &mut String, cells: &[String]) {
    md.push_str(&format!("| {} |\n", cells.join(" | ")));
}

/// A markdown table's header row and its separator, one column per cell.
fn table_head(md: &mut String, cells: &[String]) {
    table_row(md, cells);
    md.push_str(&format!("|{}\n", "---|".repeat(cells.len())));
}

/// The markdown summary: a header line, the settings table (mean ± std over seeds) and the
/// trials table.
pub fn markdown(list: &TrialList, goal: Goal, settings: &[SettingRow], trials: &[TrialRow]) -> String {
    let metric = &list.metric;
    let finished = trials.iter().filter(|t| t.status == "finished").count();
    let failed = trials.iter().filter(|t| t.status == "failed").count();
    let mut md = format!("# Sweep `{}`: final `{metric}`\n\n", list.name);
    md.push_str(&format!(
        "Base config `{}`; {} settings × seeds = {} trials: {finished} finished, {failed} failed, {} not run. \
         Final = the metric at the last step that logged it; start = its first logged value.\n\n",
        list.base,
        settings.len(),
        trials.len(),
        trials.len() - finished - failed,
    ));
    if let Some(b) = best_setting(settings, goal) {
        let goal_word = if goal == Goal::Max { "highest" } else { "lowest" };
        md.push_str(&format!(
            "Best ({goal_word} mean): **{}** ({}): {} ± {} over {} seed(s).\n\n",
            b.id,
            if b.label.is_empty() { "the base config".to_string() } else { format!("`{}`", b.label) },
            fixed(b.mean, 4),
            fixed(b.std, 4),
            b.finals.len()
        ));
    }
    let params: Vec<String> = list.params.iter().map(|p| format!("`{}`", cell(p))).collect();
    md.push_str("## Settings (mean ± std over seeds)\n\n");
    let mut header = vec!["setting".to_string()];
    header.extend(params.iter().cloned());
    header.extend(["finished".into(), format!("final {metric}"), "start".into(), "wall s".into()]);
    table_head(&mut md, &header);
    for s in settings {
        let mut row = vec![s.id.clone()];
        row.extend(s.values.iter().map(|v| cell(v)));
        row.extend([
            format!("{}/{}", s.finals.len(), s.trials),
            format!("{} ± {}", fixed(s.mean, 4), fixed(s.std, 4)),
            fixed(s.start_mean, 4),
            fixed(s.wall_mean, 1),
        ]);
        table_row(&mut md, &row);
    }
    md.push_str("\n## Trials\n\n");
    let mut header = vec!["trial".to_string()];
    header.extend(params.iter().cloned());
    header.extend(["seed", "status", &format!("final {metric}"), "at step", "start", "wall s", "error"].map(String::from));
    table_head(&mut md, &header);
    for t in trials {
        let setting = &list.settings[t.setting];
        let mut row = vec![t.id.clone()];
        row.extend(setting.values.iter().map(|p| cell(&format_value(&p.value))));
        row.extend([
            t.seed.to_string(),
            t.status.clone(),
            fixed(t.metric.map(|m| m.final_value), 4),
            t.metric.map_or("-".into(), |m| m.final_step.to_string()),
            fixed(t.metric.map(|m| m.start), 4),
            fixed(t.wall_seconds, 1),
            cell(t.error.as_deref().unwrap_or("")),
        ]);
        table_row(&mut md, &row);
    }
    md
}

/// The summary files of an output directory.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryFiles {
    /// `summary.csv`.
    pub csv: PathBuf,
    /// `summary.md`.
    pub markdown: PathBuf,
}

/// Writes `summary.csv` and `summary.md` into `out_dir`.
pub fn write_summary(out_dir: &Path, list: &TrialList, goal: Goal, settings: &[SettingRow], trials: &[TrialRow]) -> Result<SummaryFiles, SweepError> {
    let files = SummaryFiles { csv: out_dir.join("summary.csv"), markdown: out_dir.join("summary.md") };
    write_csv(&files.csv, list, settings, trials)?;
    write_file_atomic(&files.markdown, markdown(list, goal, settings, trials).as_bytes())?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::plan::{ParamValue, Setting, TRIAL_LIST_VERSION, Trial};
    use std::collections::BTreeMap;

    fn row(step: u64, fields: &[(&str, f64)]) -> MetricsRow {
        MetricsRow { step, wall_time: 0.0, fields: fields.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>() }
    }

    #[test]
    fn endpoints_skip_rows_without_the_metric() {
        let rows = [
            row(0, &[("eval/reward", 0.25)]),
            row(1, &[("reward/mean", 0.1), ("eval/reward", f64::NAN)]),
            row(2, &[("reward/mean", 0.3), ("eval/reward", 0.5)]),
            row(3, &[("reward/mean", 0.4)]),
        ];
        assert_eq!(endpoints(&rows, "eval/reward"), Some(Endpoints { start: 0.25, final_step: 2, final_value: 0.5 }));
        assert_eq!(endpoints(&rows, "reward/mean"), Some(Endpoints { start: 0.1, final_step: 3, final_value: 0.4 }));
        assert_eq!(endpoints(&rows, "kl/ref"), None);
    }

    #[test]
    fn mean_and_sample_std() {
        assert_eq!(mean_std(&[]), (None, None));
        assert_eq!(mean_std(&[2.0]), (Some(2.0), None));
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, Some(2.5));
        assert!((s.unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    fn list() -> TrialList {
        let setting = |i: usize, lr: f64| Setting {
            id: format!("s0{i}"),
            label: format!("lr={lr}"),
            values: vec![ParamValue { key: "trainer.lr".into(), value: toml::Value::Float(lr) }],
        };
        let trial = |s: usize, seed: u64| Trial {
            id: format!("s0{s}-seed{seed}"),
            setting: s,
            seed,
            overrides: vec![],
            run_dir: format!("runs/s0{s}-seed{seed}"),
            steps: 2,
        };
        TrialList {
            version: TRIAL_LIST_VERSION,
            name: "t".into(),
            sweep_file: "sweep.toml".into(),
            base: "base.toml".into(),
            base_config: String::new(),
            metric: "eval/reward".into(),
            params: vec!["trainer.lr".into()],
            settings: vec![setting(0, 0.001), setting(1, 0.002)],
            trials: vec![trial(0, 0), trial(0, 1), trial(1, 0), trial(1, 1)],
        }
    }

    fn trial_rows() -> Vec<TrialRow> {
        let done = |id: &str, setting: usize, seed: u64, v: f64| TrialRow {
            id: id.into(),
            setting,
            seed,
            status: "finished".into(),
            metric: Some(Endpoints { start: 0.0, final_step: 2, final_value: v }),
            wall_seconds: Some(10.0),
            error: None,
        };
        vec![
            done("s00-seed0", 0, 0, 0.2),
            done("s00-seed1", 0, 1, 0.4),
            done("s01-seed0", 1, 0, 0.5),
            TrialRow {
                id: "s01-seed1".into(),
                setting: 1,
                seed: 1,
                status: "failed".into(),
                metric: None,
                wall_seconds: Some(1.0),
                error: Some("error: a|b".into()),
            },
        ]
    }

    #[test]
    fn settings_aggregate_finished_trials_only() {
        let l = list();
        let s = setting_rows(&l, &trial_rows());
        assert_eq!(s.len(), 2);
        assert!((s[0].mean.unwrap() - 0.3).abs() < 1e-12);
        assert!((s[0].std.unwrap() - 0.02f64.sqrt()).abs() < 1e-12);
        assert_eq!((s[1].mean, s[1].std, s[1].trials, s[1].finals.len()), (Some(0.5), None, 2, 1));
        assert_eq!(s[1].wall_mean, Some(10.0), "the failed trial's time is not in the mean");
        assert_eq!(best_setting(&s, Goal::Max).unwrap().id, "s01");
        assert_eq!(best_setting(&s, Goal::Min).unwrap().id, "s00");
    }

    #[test]
    fn csv_and_markdown_have_a_row_per_trial_and_setting() {
        let dir = tempfile::tempdir().unwrap();
        let l = list();
        let trials = trial_rows();
        let settings = setting_rows(&l, &trials);
        let files = write_summary(dir.path(), &l, Goal::Max, &settings, &trials).unwrap();
        let mut reader = csv::Reader::from_path(&files.csv).unwrap();
        let headers = reader.headers().unwrap().clone();
        assert_eq!(&headers[4], "trainer.lr");
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.iter().filter(|r| &r[0] == "setting").count(), 2);
        assert_eq!(records.iter().filter(|r| &r[0] == "trial").count(), 4);
        let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
        assert_eq!(&records[0][col("final_mean")], "0.30000000000000004");
        assert_eq!(&records[5][col("status")], "failed");
        assert_eq!(&records[5][col("error")], "error: a|b", "commas and bars survive CSV quoting");
        let md = std::fs::read_to_string(&files.markdown).unwrap();
        assert!(md.contains("| s00 | 0.001 | 2/2 | 0.3000 ± 0.1414 | 0.0000 | 10.0 |"), "{md}");
        assert!(md.contains("**s01**"), "{md}");
        assert!(md.contains("error: a\\|b"), "{md}");
    }

    /// Every row of every markdown table has as many cells as its header.
    fn assert_tables_are_rectangular(md: &str) {
        let cells = |line: &str| line.trim().trim_matches('|').replace("\\|", "").split('|').count();
        let mut width = None;
        for line in md.lines() {
            if !line.starts_with('|') {
                width = None;
                continue;
            }
            let w = *width.get_or_insert(cells(line));
            assert_eq!(cells(line), w, "{line:?} in\n{md}");
        }
    }

    #[test]
    fn a_sweep_without_a_grid_still_writes_valid_tables() {
        let mut l = list();
        assert_tables_are_rectangular(&markdown(&l, Goal::Max, &setting_rows(&l, &trial_rows()), &trial_rows()));
        l.params.clear();
        l.settings.truncate(1);
        l.settings[0].values.clear();
        l.settings[0].label.clear();
        l.trials.truncate(2);
        let trials: Vec<TrialRow> = trial_rows().into_iter().take(2).collect();
        let md = markdown(&l, Goal::Max, &setting_rows(&l, &trials), &trials);
        assert_tables_are_rectangular(&md);
        assert!(md.contains("| setting | finished |") && md.contains("(the base config)"), "{md}");
        assert!(!md.contains("``"), "{md}");
    }

    #[test]
    fn a_metric_no_finished_trial_logged_is_reported() {
        let l = list();
        assert_eq!(metric_never_logged(&l, &trial_rows()), None);
        let mut trials = trial_rows();
        for t in &mut trials {
            t.metric = None;
            t.error = Some("`eval/reward` was never logged in m.jsonl (it logged: reward/mean)".into());
        }
        let why = metric_never_logged(&l, &trials).unwrap();
        assert!(why.contains("`eval/reward`") && why.contains("it logged: reward/mean"), "{why}");
        trials.iter_mut().for_each(|t| t.status = "failed".into());
        assert_eq!(metric_never_logged(&l, &trials), None, "failed trials are reported as failures");
    }
}

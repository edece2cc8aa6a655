//! Running a sweep: the output directory (`trials.json` first), each trial as a `memrl train`
//! child process (at most `jobs` at once), results and stderr tails, progress, and the summary.
//!
//! Output directory layout:
//!
//! ```text
//! trials.json                 the resolved trial list, written before any trial starts
//! runs/<trial id>/            each trial's run directory (config, metrics, checkpoints, plots)
//! results/<trial id>.json     status, attempts, the child's JSON summary
//! logs/<trial id>.attempt-K.stderr.txt   the last lines of an attempt's stderr
//! summary.csv, summary.md     one row per setting (mean ± std over seeds) and per trial
//! final_metric.png            the final metric per setting, with the spread over seeds
//! ```

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::plan::{SweepPlan, TRIAL_LIST_VERSION, TrialList, launch_overrides, plan_sweep, short_names};
use super::results::{Attempt, StartKind, TrialResult, TrialStart, TrialStatus, classify, read_result, write_result};
use super::spec::{Goal, SweepSpec};
use super::summary::{SettingRow, TrialRow, best_setting, metric_never_logged, setting_rows, trial_row, write_summary};
use super::{SweepError, io_err};
use crate::owned_dir::DirLock;
use crate::run_dir::write_file_atomic;

/// Lines of a child's stderr kept in its tail file.
const STDERR_TAIL_LINES: usize = 60;
/// Bytes of a child's stderr kept at most (the end of the stream).
const STDERR_TAIL_BYTES: u64 = 16 * 1024;

/// How to run a sweep.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The `memrl` executable the trials run (`std::env::current_exe()` from the CLI).
    pub exe: PathBuf,
    /// Trials run at once (>= 1).
    pub jobs: usize,
    /// Output directory (None: the sweep file's `out_dir`, else `sweeps/<name>`).
    pub out_dir: Option<PathBuf>,
    /// Delete an existing output directory and start every trial again.
    pub overwrite: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// What a sweep invocation did, and where its summary is.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    /// The output directory.
    pub out_dir: String,
    /// The summarised metric.
    pub metric: String,
    /// Trials in the sweep.
    pub trials: usize,
    /// Trials found finished and skipped.
    pub already_finished: usize,
    /// Trials started from scratch in this invocation.
    pub started: usize,
    /// Trials resumed from a checkpoint in this invocation.
    pub resumed: usize,
    /// Trials finished now (including the skipped ones).
    pub finished: usize,
    /// Ids of the trials whose last attempt failed.
    pub failed: Vec<String>,
    /// `summary.csv`.
    pub summary_csv: String,
    /// `summary.md`.
    pub summary_md: String,
    /// `final_metric.png` (None when no trial logged the metric).
    pub plot: Option<String>,
    /// The best setting by mean final metric.
    pub best: Option<SettingRow>,
    /// Every setting's row.
    pub settings: Vec<SettingRow>,
    /// Set when trials finished but none logged the metric: why (and what they logged).
    pub metric_missing: Option<String>,
}

/// Plans the sweep, prepares its output directory, runs every trial that has not finished
/// (resuming those with a checkpoint), and writes the summary. A failed trial is recorded, not
/// fatal: the report lists it. Errors are about the sweep itself (file, output directory, I/O).
pub fn run_sweep(spec: &SweepSpec, opts: &RunOptions) -> Result<SweepReport, SweepError> {
    let out = spec.output_dir(opts.out_dir.as_deref());
    let out_abs = std::path::absolute(&out).map_err(io_err("resolve", &out))?;
    let plan = plan_sweep(spec, &out_abs)?;
    let _lock = prepare_out_dir(&out, &plan.list, spec, opts.overwrite)?;
    let list = &plan.list;
    super::child::catch_stop_signals();

    let mut pending = VecDeque::new();
    let mut already_finished = 0;
    for (index, trial) in list.trials.iter().enumerate() {
        let result = read_result(&out, &trial.id)?;
        match classify(trial, &out.join(&trial.run_dir), result.as_ref())? {
            TrialStart::Finished => {
                already_finished += 1;
                if result.as_ref().is_none_or(|r| r.status != TrialStatus::Finished) {
                    // The run finished but the sweep stopped before recording it.
                    let mut r = result.unwrap_or(TrialResult { id: trial.id.clone(), status: TrialStatus::Finished, attempts: vec![], summary: None });
                    r.status = TrialStatus::Finished;
                    write_result(&out, &r)?;
                }
            }
            start => pending.push_back((index, start, result)),
        }
    }
    let started = pending.iter().filter(|(_, s, _)| *s == TrialStart::Fresh).count();
    let resumed = pending.len() - started;

    let bar = progress_bar(opts.progress, list.trials.len() as u64, already_finished as u64);
    let mut best = BestSoFar::new(spec.goal, list.metric.clone());
    for (index, trial) in list.trials.iter().enumerate() {
        if let Some(r) = read_result(&out, &trial.id)?.filter(|r| r.status == TrialStatus::Finished) {
            best.offer(&trial_row(list, index, &out, Some(&r)));
        }
    }
    write_outputs(&out, list, spec.goal)?;

    let jobs = opts.jobs.max(1).min(pending.len().max(1));
    let waiting = pending.len();
    let queue = Mutex::new(pending);
    let (tx, rx) = mpsc::channel::<Finished>();
    let outcome = std::thread::scope(|scope| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (queue, plan, out_abs, exe) = (&queue, &plan, &out_abs, &opts.exe);
            scope.spawn(move || {
                loop {
                    if super::child::stop_requested().is_some() {
                        break;
                    }
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                    let Some((index, start, prior)) = next else { break };
                    let args = child_args(spec, plan, index, start, out_abs);
                    let stderr_path = out_abs.join("logs").join(format!("{}.running.stderr", plan.list.trials[index].id));
                    let child = run_child(exe, &args, &stderr_path);
                    if child.stopped {
                        // Stopped by the sweep's own stop signal: not a trial failure; a re-run resumes it.
                        break;
                    }
                    if tx.send(Finished { index, start, prior, child }).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut remaining = waiting;
        bar.set_message(best.message(remaining.min(jobs)));
        for done in rx {
            remaining -= 1;
            let index = done.index;
            let result = record(&out, list, done)?;
            best.offer(&trial_row(list, index, &out, Some(&result)));
            if result.status == TrialStatus::Failed {
                best.failed += 1;
                bar.println(format!("trial {} failed: {}", result.id, result.last_error().unwrap_or_default()));
            }
            bar.inc(1);
            bar.set_message(best.message(remaining.min(jobs)));
            write_outputs(&out, list, spec.goal)?;
        }
        Ok::<(), SweepError>(())
    });
    bar.finish_and_clear();
    outcome?;
    if let Some(signal) = super::child::stop_requested() {
        return Err(SweepError::Stopped { signal, dir: out.clone() });
    }

    let Outputs { trials, settings, files, plot } = write_outputs(&out, list, spec.goal)?;
    let failed: Vec<String> = trials.iter().filter(|t| t.status != "finished").map(|t| t.id.clone()).collect();
    Ok(SweepReport {
        out_dir: out.display().to_string(),
        metric: list.metric.clone(),
        trials: list.trials.len(),
        already_finished,
        started,
        resumed,
        finished: trials.len() - failed.len(),
        failed,
        summary_csv: files.csv.display().to_string(),
        summary_md: files.markdown.display().to_string(),
        plot: plot.map(|p| p.display().to_string()),
        best: best_setting(&settings, spec.goal).cloned(),
        settings,
        metric_missing: metric_never_logged(list, &trials),
    })
}

/// A trial's child process, ended.
struct Finished {
    index: usize,
    start: TrialStart,
    prior: Option<TrialResult>,
    child: ChildOutcome,
}

/// Checks an existing output directory against the planned trials (or, with `overwrite`, moves
/// it aside as [`crate::owned_dir::move_aside`] does), writes `trials.json`, and returns the
/// directory's lock, held while the sweep runs.
fn prepare_out_dir(out: &Path, list: &TrialList, spec: &SweepSpec, overwrite: bool) -> Result<DirLock, SweepError> {
    let trials_path = out.join("trials.json");
    if trials_path.is_file() {
        if overwrite {
            let aside = crate::owned_dir::move_aside(out)?;
            eprintln!("overwrite: moved the previous sweep to {} (delete it when you no longer need it)", aside.display());
        } else {
            let text = std::fs::read_to_string(&trials_path).map_err(io_err("read", &trials_path))?;
            let saved: TrialList =
                serde_json::from_str(&text).map_err(|e| SweepError::Corrupt { path: trials_path.clone(), message: format!("not a sweep trial list: {e}") })?;
            let difference = if saved.version != TRIAL_LIST_VERSION {
                Some(format!("trials.json has layout version {}, this memrl writes {TRIAL_LIST_VERSION}", saved.version))
            } else {
                saved.difference(list)
            };
            if let Some(difference) = difference {
                return Err(SweepError::Changed { dir: out.to_path_buf(), file: spec.file.display().to_string(), difference });
            }
        }
    } else if out.exists() {
        let empty = std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !empty {
            return Err(SweepError::NotASweepDir(out.to_path_buf()));
        }
    }
    std::fs::create_dir_all(out).map_err(io_err("create directory", out))?;
    let lock = DirLock::acquire(out)?;
    let text = serde_json::to_string_pretty(list).expect("a trial list serialises");
    write_file_atomic(&trials_path, text.as_bytes())?;
    Ok(lock)
}

/// The `memrl train` arguments of a trial: a fresh start replaces any partial run directory;
/// a resume continues from the run's saved config.
fn child_args(spec: &SweepSpec, plan: &SweepPlan, index: usize, start: TrialStart, out_abs: &Path) -> Vec<OsString> {
    let trial = &plan.list.trials[index];
    let run_dir = out_abs.join(&trial.run_dir);
    let mut args: Vec<OsString> = vec!["train".into()];
    match start {
        TrialStart::Resume(_) => {
            args.push("--resume".into());
            args.push(run_dir.into_os_string());
        }
        _ => {
            args.push(spec.base.clone().into_os_string());
            let placed = launch_overrides(&spec.name, &trial.id, &run_dir);
            for o in trial.overrides.iter().chain(placed.iter()) {
                args.push("--set".into());
                args.push(o.into());
            }
            args.push("--overwrite".into());
        }
    }
    args.push("--quiet".into());
    args.push("--json".into());
    args
}

/// How a child process ended.
struct ChildOutcome {
    success: bool,
    exit: String,
    wall_seconds: f64,
    stdout: String,
    stderr_tail: String,
    /// The sweep stopped it (a forwarded SIGTERM / SIGINT).
    stopped: bool,
}

/// Runs `exe args`, stdout captured, stderr streamed to `stderr_path` (then reduced to its
/// tail and deleted). A child that cannot start is a failed outcome, not an error.
fn run_child(exe: &Path, args: &[OsString], stderr_path: &Path) -> ChildOutcome {
    let started = Instant::now();
    let failed = |exit: String, tail: String| ChildOutcome {
        success: false,
        exit,
        wall_seconds: started.elapsed().as_secs_f64(),
        stdout: String::new(),
        stderr_tail: tail,
        stopped: false,
    };
    if let Some(dir) = stderr_path.parent()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        return failed("not started".into(), format!("cannot create {}: {e}", dir.display()));
    }
    let stderr = match std::fs::File::create(stderr_path) {
        Ok(f) => f,
        Err(e) => return failed("not started".into(), format!("cannot create {}: {e}", stderr_path.display())),
    };
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr);
    super::child::own(&mut cmd);
    let output = cmd.spawn().and_then(super::child::wait);
    let tail = read_tail(stderr_path);
    let _ = std::fs::remove_file(stderr_path);
    match output {
        Err(e) => failed("not started".into(), format!("cannot run {}: {e}", exe.display())),
        Ok(out) => ChildOutcome {
            success: out.status.success(),
            exit: out.status.to_string(),
            wall_seconds: started.elapsed().as_secs_f64(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr_tail: tail,
            stopped: out.stopped_by.is_some(),
        },
    }
}

/// The last [`STDERR_TAIL_LINES`] lines within the last [`STDERR_TAIL_BYTES`] of a file.
fn read_tail(path: &Path) -> String {
    use std::io::{Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else { return String::new() };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(STDERR_TAIL_BYTES);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(from)).and_then(|_| file.read_to_end(&mut bytes)).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let keep = &lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..];
    let mut tail = keep.join("\n");
    if !tail.is_empty() {
        tail.push('\n');
    }
    tail
}

/// Records an attempt in the trial's results file (and its stderr tail in `logs/`).
fn record(out: &Path, list: &TrialList, done: Finished) -> Result<TrialResult, SweepError> {
    let trial = &list.trials[done.index];
    let mut result = done.prior.unwrap_or(TrialResult { id: trial.id.clone(), status: TrialStatus::Failed, attempts: vec![], summary: None });
    let child = done.child;
    let k = result.attempts.len() + 1;
    let stderr_tail = if child.stderr_tail.trim().is_empty() {
        None
    } else {
        let rel = format!("logs/{}.attempt-{k}.stderr.txt", trial.id);
        write_file_atomic(&out.join(&rel), child.stderr_tail.as_bytes())?;
        Some(rel)
    };
    let error = (!child.success).then(|| child.stderr_tail.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_string)).flatten();
    let (start, from_step) = match done.start {
        TrialStart::Resume(step) => (StartKind::Resume, Some(step)),
        _ => (StartKind::Fresh, None),
    };
    result.attempts.push(Attempt { start, from_step, success: child.success, exit: child.exit, wall_seconds: child.wall_seconds, stderr_tail, error });
    if child.success {
        result.status = TrialStatus::Finished;
        result.summary = child.stdout.lines().rev().find_map(|l| serde_json::from_str(l.trim()).ok());
    } else {
        result.status = TrialStatus::Failed;
    }
    write_result(out, &result)?;
    Ok(result)
}

/// What [`write_outputs`] wrote, and the rows it wrote.
struct Outputs {
    trials: Vec<TrialRow>,
    settings: Vec<SettingRow>,
    files: super::summary::SummaryFiles,
    plot: Option<PathBuf>,
}

/// Reads every trial's state and writes `summary.csv`, `summary.md` and `final_metric.png`.
fn write_outputs(out: &Path, list: &TrialList, goal: Goal) -> Result<Outputs, SweepError> {
    let mut trials = Vec::with_capacity(list.trials.len());
    for (index, trial) in list.trials.iter().enumerate() {
        trials.push(trial_row(list, index, out, read_result(out, &trial.id)?.as_ref()));
    }
    let settings = setting_rows(list, &trials);
    let files = write_summary(out, list, goal, &settings, &trials)?;
    let plot_path = out.join("final_metric.png");
    let plot = super::plot::plot_settings(&plot_path, &list.metric, &short_names(&list.params), &settings)?.then_some(plot_path);
    Ok(Outputs { trials, settings, files, plot })
}

/// The best trial so far, for the progress message.
struct BestSoFar {
    goal: Goal,
    metric: String,
    best: Option<(String, f64)>,
    failed: usize,
}

impl BestSoFar {
    fn new(goal: Goal, metric: String) -> Self {
        Self { goal, metric, best: None, failed: 0 }
    }

    fn offer(&mut self, row: &TrialRow) {
        if let Some(m) = row.metric
            && self.best.as_ref().is_none_or(|(_, b)| self.goal.better(m.final_value, *b))
        {
            self.best = Some((row.id.clone(), m.final_value));
        }
    }

    fn message(&self, running: usize) -> String {
        let best = self.best.as_ref().map_or("best -".to_string(), |(id, v)| format!("best {id} {}={v:.4}", self.metric));
        let failed = if self.failed > 0 { format!(" | failed {}", self.failed) } else { String::new() };
        format!("running {running} | {best}{failed}")
    }
}

/// The sweep's progress bar (hidden when `show` is false; indicatif also hides it when stderr
/// is not a terminal).
fn progress_bar(show: bool, total: u64, done: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(ProgressStyle::with_template("sweep [{elapsed_precise}] {bar:30} {pos}/{len} trials {msg}").expect("valid template"));
    bar.set_position(done);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("err");
        let text: String = (0..200).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let tail = read_tail(&path);
        assert_eq!(tail.lines().count(), STDERR_TAIL_LINES);
        assert!(tail.starts_with("line 140\n") && tail.ends_with("line 199\n"), "{tail}");
        assert_eq!(read_tail(&dir.path().join("missing")), "");
    }

    #[test]
    fn a_child_that_cannot_start_is_a_failed_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let outcome = run_child(&dir.path().join("no-such-exe"), &[], &dir.path().join("logs/x.running.stderr"));
        assert!(!outcome.success);
        assert_eq!(outcome.exit, "not started");
        assert!(outcome.stderr_tail.contains("no-such-exe"), "{}", outcome.stderr_tail);
        assert!(!dir.path().join("logs/x.running.stderr").exists());
    }

    #[test]
    fn an_existing_foreign_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.toml"), "").unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let spec = crate::sweep::spec::parse_sweep("name = \"x\"\nbase = \"base.toml\"\n", &dir.path().join("s.toml")).unwrap();
        let plan = plan_sweep(&spec, dir.path()).unwrap();
        let e = prepare_out_dir(dir.path(), &plan.list, &spec, true).unwrap_err();
        assert!(matches!(e, SweepError::NotASweepDir(_)), "{e}");
        assert!(dir.path().join("keep.txt").exists(), "--overwrite never deletes a directory without trials.json");
    }
}

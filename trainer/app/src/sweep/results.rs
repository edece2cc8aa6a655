//! Per-trial bookkeeping in the sweep's output directory: `results/<id>.json` (status, every
//! attempt, the child's JSON summary) and where a trial stands when the sweep (re)starts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SweepError;
use super::plan::Trial;
use crate::metrics::read_metrics;
use crate::run_dir::{latest_complete_checkpoint, write_file_atomic};

/// How a trial ended its last attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialStatus {
    /// The run reached `run.steps`.
    Finished,
    /// The last attempt failed (non-zero exit, signal, or the child could not start).
    Failed,
}

/// How an attempt started the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartKind {
    /// `memrl train BASE --set ... --overwrite`.
    Fresh,
    /// `memrl train --resume RUN_DIR`.
    Resume,
}

/// One child process run for a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Fresh start or resume.
    pub start: StartKind,
    /// For a resume: the checkpoint step it continued from.
    pub from_step: Option<u64>,
    /// Whether the child exited with status 0.
    pub success: bool,
    /// How it exited, e.g. `exit status: 1` or `signal: 9 (SIGKILL)`.
    pub exit: String,
    /// Wall time of the child, seconds.
    pub wall_seconds: f64,
    /// The last lines of its stderr, relative to the output directory (None when it was empty).
    pub stderr_tail: Option<String>,
    /// The last non-empty stderr line of a failed attempt (usually the `error: ...` line).
    pub error: Option<String>,
}

/// `results/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    /// The trial id.
    pub id: String,
    /// Finished or failed.
    pub status: TrialStatus,
    /// Every attempt the sweep recorded, oldest first (an attempt killed with the sweep itself
    /// is not recorded).
    pub attempts: Vec<Attempt>,
    /// The child's `--json` summary of its successful attempt (None when the run was found
    /// finished without one).
    pub summary: Option<serde_json::Value>,
}

impl TrialResult {
    /// Wall time over all recorded attempts (None when none was recorded).
    pub fn wall_seconds(&self) -> Option<f64> {
        (!self.attempts.is_empty()).then(|| self.attempts.iter().map(|a| a.wall_seconds).sum())
    }

    /// The error of the last attempt, if it failed.
    pub fn last_error(&self) -> Option<String> {
        let last = self.attempts.last()?;
        if last.success {
            return None;
        }
        let mut text = last.error.clone().unwrap_or_else(|| last.exit.clone());
        if let Some(tail) = &last.stderr_tail {
            text.push_str(&format!(" (stderr: {tail})"));
        }
        Some(text)
    }
}

/// `<out>/results/<id>.json`.
pub fn result_path(out_dir: &Path, id: &str) -> PathBuf {
    out_dir.join("results").join(format!("{id}.json"))
}

/// Reads a trial's results file; None when it does not exist.
pub fn read_result(out_dir: &Path, id: &str) -> Result<Option<TrialResult>, SweepError> {
    let path = result_path(out_dir, id);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SweepError::Io { action: "read", path, source }),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| SweepError::Corrupt { path, message: format!("not a trial result: {e} (delete it to rerun the trial)") })
}

/// Writes a trial's results file atomically.
pub fn write_result(out_dir: &Path, result: &TrialResult) -> Result<(), SweepError> {
    let text = serde_json::to_string_pretty(result).expect("a trial result serialises");
    write_file_atomic(&result_path(out_dir, &result.id), text.as_bytes())?;
    Ok(())
}

/// Where a trial stands before the sweep runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialStart {
    /// Its run finished: skip it.
    Finished,
    /// It has a complete checkpoint at this step (short of `run.steps`): resume it.
    Resume(u64),
    /// Nothing usable: start it again (replacing any partial run directory).
    Fresh,
}

/// Classifies a trial from its results file and its run directory. A run is finished when its
/// results file says so and its metrics exist, or (the sweep was stopped before recording it)
/// when its newest complete checkpoint is at `run.steps` and its metrics logged that step.
pub fn classify(trial: &Trial, run_dir: &Path, result: Option<&TrialResult>) -> Result<TrialStart, SweepError> {
    let metrics = run_dir.join("metrics.jsonl");
    if result.is_some_and(|r| r.status == TrialStatus::Finished) && metrics.is_file() {
        return Ok(TrialStart::Finished);
    }
    if !run_dir.is_dir() {
        // Missing, or something else in its place: a fresh start (the child reports what is wrong).
        return Ok(TrialStart::Fresh);
    }
    let Some((step, _)) = latest_complete_checkpoint(&run_dir.join("checkpoints"))? else {
        return Ok(TrialStart::Fresh);
    };
    if step >= trial.steps && metrics.is_file() && read_metrics(&metrics)?.iter().any(|r| r.step >= trial.steps) {
        return Ok(TrialStart::Finished);
    }
    if step >= trial.steps {
        // A final checkpoint without the metrics of its step cannot be resumed into a complete run.
        return Ok(TrialStart::Fresh);
    }
    Ok(TrialStart::Resume(step))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(steps: u64) -> Trial {
        Trial { id: "s00-seed0".into(), setting: 0, seed: 0, overrides: vec![], run_dir: "runs/s00-seed0".into(), steps }
    }

    fn checkpoint(run: &Path, step: u64) {
        let dir = run.join("checkpoints").join(format!("step-{step}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("COMPLETE"), "").unwrap();
    }

    #[test]
    fn classification_follows_results_checkpoints_and_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let t = trial(2);
        assert_eq!(classify(&t, &run, None).unwrap(), TrialStart::Fresh);
        std::fs::write(&run, "not a directory").unwrap();
        assert_eq!(classify(&t, &run, None).unwrap(), TrialStart::Fresh);
        std::fs::remove_file(&run).unwrap();
        std::fs::create_dir_all(run.join("checkpoints/step-1.tmp")).unwrap();
        assert_eq!(classify(&t, &run, None).unwrap(), TrialStart::Fresh, "a half-written checkpoint does not count");
        checkpoint(&run, 1);
        assert_eq!(classify(&t, &run, None).unwrap(), TrialStart::Resume(1));
        checkpoint(&run, 2);
        assert_eq!(classify(&t, &run, None).unwrap(), TrialStart::Fresh, "final checkpoint but no metrics");
        std::fs::write(run.join("metrics.jsonl"), "{\"step\":0}\n{\"step\":1}\n").unwrap();
        assert_eq!(classify(&t, &run, None).unwrap(), TrialStart::Fresh);
        std::fs::write(run.join("metrics.jsonl"), "{\"step\":0}\n{\"step\":1}\n{\"step\":2}\n").unwrap();
        assert_eq!(classify(&t, &run, None).unwrap(), TrialStart::Finished);

        let other = dir.path().join("other");
        let mut result = TrialResult { id: t.id.clone(), status: TrialStatus::Finished, attempts: vec![], summary: None };
        assert_eq!(classify(&t, &other, Some(&result)).unwrap(), TrialStart::Fresh, "results without a run directory");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("metrics.jsonl"), "").unwrap();
        assert_eq!(classify(&t, &other, Some(&result)).unwrap(), TrialStart::Finished);
        result.status = TrialStatus::Failed;
        assert_eq!(classify(&t, &other, Some(&result)).unwrap(), TrialStart::Fresh);
    }

    #[test]
    fn results_round_trip_and_report_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_result(dir.path(), "x").unwrap(), None);
        let attempt = |success: bool, secs: f64| Attempt {
            start: StartKind::Fresh,
            from_step: None,
            success,
            exit: if success { "exit status: 0".into() } else { "exit status: 1".into() },
            wall_seconds: secs,
            stderr_tail: (!success).then(|| "logs/x.attempt-1.stderr.txt".into()),
            error: (!success).then(|| "error: boom".into()),
        };
        let r = TrialResult { id: "x".into(), status: TrialStatus::Failed, attempts: vec![attempt(true, 1.5), attempt(false, 2.0)], summary: None };
        write_result(dir.path(), &r).unwrap();
        assert_eq!(read_result(dir.path(), "x").unwrap().as_ref(), Some(&r));
        assert_eq!(r.wall_seconds(), Some(3.5));
        assert_eq!(r.last_error().unwrap(), "error: boom (stderr: logs/x.attempt-1.stderr.txt)");
        std::fs::write(result_path(dir.path(), "x"), "{").unwrap();
        let e = read_result(dir.path(), "x").unwrap_err().to_string();
        assert!(e.contains("x.json") && e.contains("delete it"), "{e}");
    }
}

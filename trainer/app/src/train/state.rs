//! What a run checkpoint holds besides the model and optimizer, and the rules for resuming.
//!
//! A checkpoint `checkpoints/step-N/` is an HF-layout model directory (weights, config,
//! tokenizer, `optimizer.safetensors`) plus `trainer_state.json`: the step counter, the task
//! sampler's position and the evaluation history. Everything else a step draws at random is a
//! pure function of `(run.seed, step)` (rollout seeds, environment seeds, mini-batch shuffles)
//! and the learning rate is a function of the step, so these are the whole RNG and schedule
//! state: a resumed run continues exactly.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::run_dir::write_file_atomic;
use memrl_envs::sampler::SamplerState;

/// File name of the trainer state inside a checkpoint directory.
pub const TRAINER_STATE_FILE: &str = "trainer_state.json";

/// Format version of [`TrainerState`]; bumped on incompatible changes.
pub const TRAINER_STATE_VERSION: u32 = 1;

/// The trainer's own state at a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Format version ([`TRAINER_STATE_VERSION`]).
    pub version: u32,
    /// RL steps completed (0: the checkpoint written right after the SFT stage, or an SFT checkpoint).
    pub step: u64,
    /// SFT optimizer steps completed: all of them in an RL checkpoint (`step-N`), the steps
    /// before it in an SFT checkpoint (`sft-step-K`).
    pub sft_steps: u64,
    /// SFT optimizer steps skipped so far by the non-finite-gradient guard (absent when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sft_skipped: u64,
    /// Where the task sampler stands.
    pub sampler: SamplerState,
    /// Held-out evaluation reward before the first RL step.
    pub eval_reward_start: Option<f64>,
    /// The latest held-out evaluation reward.
    pub eval_reward_last: Option<f64>,
    /// Held-out evaluation task score before the first RL step (absent in older states).
    #[serde(default)]
    pub eval_task_score_start: Option<f64>,
    /// The latest held-out evaluation task score (absent in older states).
    #[serde(default)]
    pub eval_task_score_last: Option<f64>,
    /// Learner steps skipped by the non-finite-gradient guard so far.
    pub skipped_steps: u64,
    /// The step of the last `metrics.jsonl` line (`sft_metrics.jsonl` in an SFT checkpoint)
    /// written and fsynced before this checkpoint; None when none was. A resume from a
    /// checkpoint whose line is missing redoes that step from an earlier checkpoint. (Absent in
    /// older states.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_step: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Errors reading a checkpoint's trainer state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file is missing or unreadable.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a trainer state.
    #[error("{path}: not a valid trainer state: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Written by an incompatible version.
    #[error("{path}: trainer state version {found}, this build reads version {expected}")]
    Version {
        /// The file.
        path: String,
        /// The version found.
        found: u32,
        /// The version this build writes.
        expected: u32,
    },
}

impl TrainerState {
    /// Writes the state into checkpoint directory `dir`, atomically.
    pub fn write(&self, dir: &Path) -> Result<(), crate::run_dir::RunDirError> {
        let text = serde_json::to_string_pretty(self).expect("trainer state serialises");
        write_file_atomic(&dir.join(TRAINER_STATE_FILE), text.as_bytes())
    }

    /// Reads the state of checkpoint directory `dir`.
    pub fn read(dir: &Path) -> Result<TrainerState, StateError> {
        let path = dir.join(TRAINER_STATE_FILE);
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| StateError::Read { path: shown.clone(), source })?;
        let state: TrainerState = serde_json::from_str(&text).map_err(|e| StateError::Parse { path: shown.clone(), message: e.to_string() })?;
        if state.version != TRAINER_STATE_VERSION {
            return Err(StateError::Version { path: shown, found: state.version, expected: TRAINER_STATE_VERSION });
        }
        Ok(state)
    }
}

/// Config keys a resumed run may change: where it lives, how long it runs and how often it
/// logs, evaluates, plots and checkpoints. Anything else changes the experiment and is refused.
pub const RESUME_ALLOWED_KEYS: &[&str] = &[
    "run.name",
    "run.dir",
    "run.steps",
    "run.checkpoint_every",
    "run.keep_checkpoints",
    "run.log_every",
    "run.rollouts_every",
    "run.plot_every",
    "eval.every",
    "sft.checkpoint_every",
];

/// The dotted keys whose values differ between `saved` and `new`, other than
/// [`RESUME_ALLOWED_KEYS`]; empty when the run may resume with `new`.
pub fn resume_conflicts(saved: &Config, new: &Config) -> Vec<String> {
    let a = toml::Value::try_from(saved).expect("config serialises");
    let b = toml::Value::try_from(new).expect("config serialises");
    let mut out = Vec::new();
    diff("", &a, &b, &mut out);
    out.retain(|k| !RESUME_ALLOWED_KEYS.contains(&k.as_str()));
    out
}

fn diff(prefix: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
    match (a, b) {
        (toml::Value::Table(x), toml::Value::Table(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff(&path, u, v, out),
                    _ => out.push(path),
                }
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cadence_changes_may_resume() {
        let saved = Config::default();
        let mut new = saved.clone();
        new.run.steps += 10;
        new.eval.every += 1;
        assert!(resume_conflicts(&saved, &new).is_empty());
        new.trainer.lr *= 2.0;
        new.env.options.insert("capacity".into(), toml::Value::Integer(3));
        assert_eq!(resume_conflicts(&saved, &new), vec!["env.options.capacity".to_string(), "trainer.lr".to_string()]);
    }

    #[test]
    fn state_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let state = TrainerState {
            version: TRAINER_STATE_VERSION,
            step: 7,
            sft_steps: 12,
            sft_skipped: 1,
            sampler: SamplerState { n_tasks: 10, seed: 3, epoch: 1, position: 4 },
            eval_reward_start: Some(0.25),
            eval_reward_last: None,
            eval_task_score_start: None,
            eval_task_score_last: None,
            skipped_steps: 0,
            metrics_step: Some(7),
        };
        state.write(dir.path()).unwrap();
        assert_eq!(TrainerState::read(dir.path()).unwrap(), state);
        std::fs::write(dir.path().join(TRAINER_STATE_FILE), "{\"version\": 1, \"step\": ").unwrap();
        let err = TrainerState::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("trainer_state.json") && err.contains("not a valid trainer state"), "{err}");
    }
}

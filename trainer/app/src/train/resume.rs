//! Where a resumed run continues: the newest usable checkpoint, RL (`step-N`) or, for a run
//! stopped during its SFT stage, SFT (`sft-step-K`), and the loading of its model, optimizer
//! and trainer state.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use memrl_policies::train::checkpoint::load_checkpoint_optimizer;
use memrl_policies::train::optim::AdamW;

use crate::config::Config;
use crate::metrics::{MetricsError, read_metrics, truncate_after};
use crate::run_dir::{RunDir, complete_checkpoints, complete_sft_checkpoints, recover_checkpoints, write_file_atomic};
use crate::train::backend::RunBackend;
use crate::train::policy::{PolicyBundle, load_policy_checkpoint};
use crate::train::state::{TrainerState, resume_conflicts};

/// The stage a checkpoint was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The SFT warm start (`checkpoints/sft-step-K/`): SFT continues after step K.
    Sft,
    /// RL (`checkpoints/step-N/`; step 0 is the model after SFT): RL continues after step N.
    Rl,
}

/// The checkpoint a resumed run continues from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    /// Its stage.
    pub stage: Stage,
    /// The step it follows (an SFT optimizer step for [`Stage::Sft`], an RL step otherwise).
    pub step: u64,
    /// The checkpoint directory.
    pub path: PathBuf,
}

/// The step numbers logged in the metrics file `path` (none when it does not exist).
fn logged_steps(path: &Path) -> anyhow::Result<BTreeSet<u64>> {
    match read_metrics(path) {
        Ok(rows) => Ok(rows.into_iter().map(|r| r.step).collect()),
        Err(MetricsError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(e.into()),
    }
}

/// The newest of `checkpoints` (ascending) whose metrics line (`metrics_step`) is in `logged`:
/// a checkpoint follows the metrics line of its step, and if that line is missing or torn, the
/// step is redone from an earlier checkpoint rather than skipped.
fn newest_with_its_line(checkpoints: Vec<(u64, PathBuf)>, logged: &BTreeSet<u64>, file: &str) -> anyhow::Result<Option<(u64, PathBuf)>> {
    for (step, path) in checkpoints.into_iter().rev() {
        match TrainerState::read(&path)?.metrics_step {
            Some(line) if !logged.contains(&line) => {
                let name = path.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
                eprintln!(
                    "resume: {file} lacks the step {line} line that checkpoint {name} follows: \
                     resuming from an earlier checkpoint to redo it"
                );
            }
            _ => return Ok(Some((step, path))),
        }
    }
    Ok(None)
}

/// The checkpoint a resumed run continues from, after checking the config may resume and
/// cleaning up what an interrupted checkpoint write left. RL checkpoints come first; a run
/// without one continues its SFT stage from the newest SFT checkpoint.
pub fn resume_point(dir: &RunDir, config: &Config) -> anyhow::Result<ResumePoint> {
    let saved_path = dir.config_path();
    let saved_text = std::fs::read_to_string(&saved_path).with_context(|| format!("reading {}", saved_path.display()))?;
    let saved = crate::config::from_toml_str(&saved_text, &saved_path.display().to_string(), &[])?;
    let conflicts = resume_conflicts(&saved, config);
    if !conflicts.is_empty() {
        bail!(
            "cannot resume {}: the config differs from the run's saved config in {} (only run.steps and the \
             logging, evaluation and checkpoint cadences may change on resume)",
            dir.root().display(),
            conflicts.join(", ")
        );
    }
    for removed in recover_checkpoints(&dir.checkpoints_dir())? {
        eprintln!("resume: removed {}, left by a checkpoint write that was cut short", removed.display());
    }
    let rl = complete_checkpoints(&dir.checkpoints_dir())?;
    let sft = complete_sft_checkpoints(&dir.checkpoints_dir())?;
    if rl.is_empty() && sft.is_empty() {
        bail!(
            "cannot resume {}: it has no complete checkpoint (the run stopped before its first one); \
             start it again with --overwrite",
            dir.root().display()
        );
    }
    if !rl.is_empty() {
        if let Some((step, path)) = newest_with_its_line(rl, &logged_steps(&dir.metrics_path())?, "metrics.jsonl")? {
            return Ok(ResumePoint { stage: Stage::Rl, step, path });
        }
    } else if let Some((step, path)) = newest_with_its_line(sft, &logged_steps(&dir.sft_metrics_path())?, "sft_metrics.jsonl")? {
        return Ok(ResumePoint { stage: Stage::Sft, step, path });
    }
    bail!(
        "cannot resume {}: its metrics lack the lines its checkpoints follow, and no earlier checkpoint \
         can redo them; start it again with --overwrite",
        dir.root().display()
    )
}

/// Loads the policy, optimizer and trainer state of `point`, checks they agree with it, and
/// drops the metrics lines logged after it (they are redone).
pub fn load<B: RunBackend>(dir: &RunDir, config: &Config, point: &ResumePoint, backend: B) -> anyhow::Result<(PolicyBundle<B>, AdamW<B::Leaf>, TrainerState)> {
    let ckpt = &point.path;
    let state = TrainerState::read(ckpt)?;
    let (counter, found) = match point.stage {
        Stage::Rl => ("step", state.step),
        Stage::Sft => ("sft_steps", state.sft_steps),
    };
    if found != point.step || (point.stage == Stage::Sft && state.step != 0) {
        bail!("{}: trainer_state.json says {counter} {found} (step {}), the directory name says {}", ckpt.display(), state.step, point.step);
    }
    let policy = load_policy_checkpoint(config, ckpt, backend)?;
    let optimizer = load_checkpoint_optimizer(ckpt, &policy.model).with_context(|| format!("loading the optimizer state of {}", ckpt.display()))?;
    // Lines logged after the checkpoint are redone; at RL step 0 (or during SFT) that includes
    // the first evaluation.
    let mut dropped = if state.step == 0 {
        let n = read_metrics(&dir.metrics_path()).map_or(0, |rows| rows.len());
        write_file_atomic(&dir.metrics_path(), b"")?;
        n
    } else {
        truncate_after(&dir.metrics_path(), state.step)?
    };
    if point.stage == Stage::Sft {
        dropped += truncate_after(&dir.sft_metrics_path(), point.step)?;
    }
    if dropped > 0 {
        eprintln!("resume: dropped {dropped} metrics lines logged after the checkpoint (they are redone)");
    }
    Ok((policy, optimizer, state))
}

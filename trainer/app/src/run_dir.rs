//! The run directory layout and crash-safe writes.
//!
//! ```text
//! runs/<name>/
//!   config.toml              the resolved config
//!   metrics.jsonl            one JSON line per logged step
//!   sft_metrics.jsonl        one JSON line per SFT optimizer step
//!   rollouts/step-N.parquet
//!   checkpoints/step-N/      RL checkpoints (step-0: the model after SFT), with a COMPLETE marker
//!   checkpoints/sft-step-K/  SFT checkpoints (every sft.checkpoint_every steps, until step-0)
//!   plots/  eval/
//!   .memrl-owned             marker: memrl created it; locked while a process writes here
//! ```
//!
//! Files are written to a temporary name in the same directory, fsynced, then renamed, so a reader
//! sees the old content or the new, never half of it. Checkpoint directories go through the one
//! directory writer of the workspace ([`memrl_policies::atomic::write_dir_atomic`]): filled under
//! `<name>.memrl-tmp/`, given a `COMPLETE` marker, fsynced and renamed to `<name>/`;
//! [`complete_checkpoints`] ignores anything else and [`recover_checkpoints`] cleans up what a
//! crash left.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::owned_dir::{DirLock, OwnedDirError};

/// Name of the marker file that makes a checkpoint directory valid.
pub const COMPLETE_MARKER: &str = "COMPLETE";

/// What to do when the run directory already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingRun {
    /// Fail with [`RunDirError::AlreadyExists`] (the default for a new run).
    Refuse,
    /// Reuse it: the run continues from its latest complete checkpoint. It must hold a `config.toml`.
    Resume,
    /// Start afresh: an empty directory is reused; a run directory memrl created (it holds the
    /// [`crate::owned_dir::OWNED_MARKER`] file) and no process is using is moved aside to `<dir>.old-<n>`, never
    /// deleted. Anything else is refused (see [`crate::owned_dir`]).
    Overwrite,
}

/// Errors from the run directory.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// The directory exists and neither resume nor overwrite was asked for.
    #[error("run directory {0} already exists: pass --resume to continue it or --overwrite to replace it")]
    AlreadyExists(PathBuf),
    /// Resume was asked for but there is no run there.
    #[error("cannot resume: {0} is not a run directory (no config.toml)")]
    NothingToResume(PathBuf),
    /// The directory cannot be replaced or locked (not memrl's, protected, or in use).
    #[error(transparent)]
    Owned(#[from] OwnedDirError),
    /// An I/O operation failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl From<memrl_policies::atomic::AtomicIoError> for RunDirError {
    fn from(e: memrl_policies::atomic::AtomicIoError) -> Self {
        RunDirError::Io { action: e.action, path: e.path, source: e.source }
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RunDirError + 'a {
    move |source| RunDirError::Io { action, path: path.to_path_buf(), source }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename,
/// fsync of the directory. Parent directories are created.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunDirError> {
    memrl_policies::atomic::write_file_atomic(path, bytes).map_err(io_err("write", path))
}

/// An open run directory with the standard layout, locked for this process while it or a
/// clone of it lives (a second process opening the same directory gets [`OwnedDirError::InUse`]).
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
    previous: Option<PathBuf>,
    _lock: Arc<DirLock>,
}

impl RunDir {
    /// Opens `root` as a run directory according to `existing`, creating the layout, the
    /// [`crate::owned_dir::OWNED_MARKER`] file and taking the directory's lock.
    pub fn open(root: &Path, existing: ExistingRun) -> Result<RunDir, RunDirError> {
        let mut previous = None;
        let exists = fs::symlink_metadata(root).is_ok();
        if exists {
            let has_config = root.join("config.toml").is_file();
            match existing {
                ExistingRun::Refuse => return Err(RunDirError::AlreadyExists(root.to_path_buf())),
                ExistingRun::Resume if !has_config => return Err(RunDirError::NothingToResume(root.to_path_buf())),
                ExistingRun::Resume => {}
                ExistingRun::Overwrite => {
                    if !crate::owned_dir::is_empty_dir(root)? {
                        previous = Some(crate::owned_dir::move_aside(root)?);
                    }
                }
            }
        } else if existing == ExistingRun::Resume {
            return Err(RunDirError::NothingToResume(root.to_path_buf()));
        }
        if previous.is_some() || !exists {
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
            }
            // `create_dir`, not `create_dir_all`: of two processes starting the same new run, one is refused.
            fs::create_dir(root).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => RunDirError::AlreadyExists(root.to_path_buf()),
                _ => RunDirError::Io { action: "create directory", path: root.to_path_buf(), source: e },
            })?;
        }
        let lock = DirLock::acquire(root)?;
        let dir = RunDir { root: root.to_path_buf(), previous, _lock: Arc::new(lock) };
        for sub in [dir.rollouts_dir(), dir.checkpoints_dir(), dir.plots_dir(), dir.eval_dir()] {
            fs::create_dir_all(&sub).map_err(io_err("create directory", &sub))?;
        }
        Ok(dir)
    }

    /// Where `--overwrite` moved the run that was here before (None if there was none).
    pub fn previous(&self) -> Option<&Path> {
        self.previous.as_deref()
    }

    /// Deletes this run directory, which this process created and still locks: for a start that
    /// failed before any checkpoint, so that trying again needs no `--overwrite`.
    pub fn discard(self) -> Result<(), RunDirError> {
        let root = self.root.clone();
        fs::remove_dir_all(&root).map_err(io_err("remove", &root))?;
        drop(self);
        Ok(())
    }

    /// The run's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`: the resolved configuration.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `sft_metrics.jsonl`: one line per SFT optimizer step.
    pub fn sft_metrics_path(&self) -> PathBuf {
        self.root.join("sft_metrics.jsonl")
    }

    /// `rollouts/`.
    pub fn rollouts_dir(&self) -> PathBuf {
        self.root.join("rollouts")
    }

    /// `rollouts/step-N.parquet`.
    pub fn rollout_path(&self, step: u64) -> PathBuf {
        self.rollouts_dir().join(format!("step-{step}.parquet"))
    }

    /// `checkpoints/`.
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// `plots/`.
    pub fn plots_dir(&self) -> PathBuf {
        self.root.join("plots")
    }

    /// `eval/`.
    pub fn eval_dir(&self) -> PathBuf {
        self.root.join("eval")
    }

    /// `eval/<bench>-step-N.json`.
    pub fn eval_path(&self, bench: &str, step: u64) -> PathBuf {
        self.eval_dir().join(format!("{bench}-step-{step}.json"))
    }

    /// Writes the resolved config (TOML text) atomically.
    pub fn write_config(&self, toml_text: &str) -> Result<(), RunDirError> {
        write_file_atomic(&self.config_path(), toml_text.as_bytes())
    }
}

/// Prefix of an RL checkpoint's directory name (`step-N`).
pub const RL_CHECKPOINT_PREFIX: &str = "step-";

/// Prefix of an SFT checkpoint's directory name (`sft-step-K`, after SFT optimizer step K).
pub const SFT_CHECKPOINT_PREFIX: &str = "sft-step-";

/// `step-N`: the directory name of the RL checkpoint after step N.
pub fn checkpoint_dir_name(step: u64) -> String {
    format!("{RL_CHECKPOINT_PREFIX}{step}")
}

/// `sft-step-K`: the directory name of the SFT checkpoint after SFT optimizer step K.
pub fn sft_checkpoint_dir_name(step: u64) -> String {
    format!("{SFT_CHECKPOINT_PREFIX}{step}")
}

/// Writes the checkpoint directory `dest` atomically: `fill` writes the checkpoint's files into
/// an empty temporary directory, a `COMPLETE` marker is added, and the whole is fsynced and
/// renamed to `dest` ([`memrl_policies::atomic::write_dir_atomic`]). An existing `dest` (a step
/// redone after a resume) is replaced only once the new one is in place. A crash leaves either
/// no `dest` or a complete one, plus at most a temporary directory [`recover_checkpoints`] removes.
pub fn write_checkpoint<E>(dest: &Path, fill: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E>
where
    E: From<RunDirError> + From<memrl_policies::atomic::AtomicIoError>,
{
    memrl_policies::atomic::write_dir_atomic(dest, |tmp| {
        fill(tmp)?;
        let marker = tmp.join(COMPLETE_MARKER);
        File::create(&marker).map_err(io_err("write", &marker))?;
        Ok(())
    })
}

/// Cleans up after checkpoint writes a crash cut short (for a resume): removes memrl's own
/// temporary directories under `checkpoints_dir` (`*.memrl-tmp`; and `step-N.tmp`,
/// `step-N.tmp.tmp`, `step-N.tmp.old`, `step-N.replaced.tmp` from memrl versions before the one
/// directory writer) and puts back a checkpoint that was moved aside to be replaced when its
/// replacement never arrived. Anything else is left alone. Returns the paths removed.
pub fn recover_checkpoints(checkpoints_dir: &Path) -> Result<Vec<PathBuf>, RunDirError> {
    let mut removed = memrl_policies::atomic::recover_dirs(checkpoints_dir)?;
    let legacy = |name: &str| {
        let rest = name.strip_prefix(RL_CHECKPOINT_PREFIX).unwrap_or("");
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && [".tmp", ".tmp.tmp", ".tmp.old", ".replaced.tmp"].contains(&&rest[digits..])
    };
    for entry in fs::read_dir(checkpoints_dir).map_err(io_err("list", checkpoints_dir))? {
        let entry = entry.map_err(io_err("list", checkpoints_dir))?;
        let path = entry.path();
        if entry.file_name().to_str().is_some_and(legacy) && entry.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// The complete checkpoints named `<prefix>N` under `checkpoints_dir` (a directory with a
/// `COMPLETE` marker), ascending by N. A missing directory has none.
fn complete_named(checkpoints_dir: &Path, prefix: &str) -> Result<Vec<(u64, PathBuf)>, RunDirError> {
    let entries = match fs::read_dir(checkpoints_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RunDirError::Io { action: "list", path: checkpoints_dir.to_path_buf(), source: e }),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", checkpoints_dir))?;
        let name = entry.file_name();
        let Some(step) = name.to_str().and_then(|n| n.strip_prefix(prefix)).and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        let path = entry.path();
        if path.is_dir() && path.join(COMPLETE_MARKER).is_file() {
            found.push((step, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Steps of the complete RL checkpoints under `checkpoints_dir` (named `step-N`, a directory,
/// with a `COMPLETE` marker), ascending. A missing directory has none.
pub fn complete_checkpoints(checkpoints_dir: &Path) -> Result<Vec<(u64, PathBuf)>, RunDirError> {
    complete_named(checkpoints_dir, RL_CHECKPOINT_PREFIX)
}

/// SFT steps of the complete SFT checkpoints under `checkpoints_dir` (`sft-step-K`), ascending.
pub fn complete_sft_checkpoints(checkpoints_dir: &Path) -> Result<Vec<(u64, PathBuf)>, RunDirError> {
    complete_named(checkpoints_dir, SFT_CHECKPOINT_PREFIX)
}

/// The newest complete RL checkpoint under `checkpoints_dir`, ignoring half-written ones.
pub fn latest_complete_checkpoint(checkpoints_dir: &Path) -> Result<Option<(u64, PathBuf)>, RunDirError> {
    Ok(complete_checkpoints(checkpoints_dir)?.pop())
}

/// Deletes all but the newest `keep` complete RL checkpoints (0 keeps all). Returns the deleted paths.
pub fn prune_checkpoints(checkpoints_dir: &Path, keep: usize) -> Result<Vec<PathBuf>, RunDirError> {
    let complete = complete_checkpoints(checkpoints_dir)?;
    let excess = if keep == 0 { 0 } else { complete.len().saturating_sub(keep) };
    remove_oldest(complete, excess)
}

/// Deletes all but the newest `keep` complete SFT checkpoints (0 keeps all). Returns the deleted paths.
pub fn prune_sft_checkpoints(checkpoints_dir: &Path, keep: usize) -> Result<Vec<PathBuf>, RunDirError> {
    let complete = complete_sft_checkpoints(checkpoints_dir)?;
    let excess = if keep == 0 { 0 } else { complete.len().saturating_sub(keep) };
    remove_oldest(complete, excess)
}

/// Deletes every SFT checkpoint: once the SFT stage's final checkpoint (`step-0`) is in place
/// they are no longer a resume point. Returns the deleted paths.
pub fn remove_sft_checkpoints(checkpoints_dir: &Path) -> Result<Vec<PathBuf>, RunDirError> {
    let complete = complete_sft_checkpoints(checkpoints_dir)?;
    let all = complete.len();
    remove_oldest(complete, all)
}

/// Deletes the first `count` of `checkpoints` (ascending by step).
fn remove_oldest(checkpoints: Vec<(u64, PathBuf)>, count: usize) -> Result<Vec<PathBuf>, RunDirError> {
    let mut deleted = Vec::new();
    for (_, path) in checkpoints.into_iter().take(count) {
        fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
        deleted.push(path);
    }
    Ok(deleted)
}

//! The run directory layout and crash-safe writes.
//!
//! ```text
//! runs/<name>/
//!   config.toml              the resolved config
//!   metrics.jsonl            one JSON line per logged step
//!   rollouts/step-N.parquet
//!   checkpoints/step-N/      written as step-N.tmp/, then renamed, with a COMPLETE marker
//!   plots/  eval/
//!   .memrl-owned             marker: memrl created it; locked while a process writes here
//! ```
//!
//! Files are written to a temporary name in the same directory, fsynced, then renamed, so a reader
//! sees the old content or the new, never half of it. Checkpoint directories are filled under
//! `step-N.tmp/`, get a `COMPLETE` marker, and are renamed to `step-N/`;
//! [`latest_complete_checkpoint`] ignores anything else.

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
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RunDirError + 'a {
    move |source| RunDirError::Io { action, path: path.to_path_buf(), source }
}

/// Fsyncs a directory so a rename inside it is durable.
fn sync_dir(dir: &Path) -> Result<(), RunDirError> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io_err("fsync directory", dir))
}

/// Fsyncs every file under `dir` (recursively), then the directories themselves.
fn sync_tree(dir: &Path) -> Result<(), RunDirError> {
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let path = entry.map_err(io_err("list", dir))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else if path.is_file() {
            File::open(&path).and_then(|f| f.sync_all()).map_err(io_err("fsync", &path))?;
        }
    }
    sync_dir(dir)
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

/// `step-N` for a complete checkpoint directory.
pub fn checkpoint_dir_name(step: u64) -> String {
    format!("step-{step}")
}

/// A checkpoint being written: fill [`CheckpointWriter::dir`], then [`CheckpointWriter::commit`].
/// Dropping it without committing leaves a `step-N.tmp/` that readers ignore and the next
/// [`CheckpointWriter::begin`] of the same step clears.
#[derive(Debug)]
pub struct CheckpointWriter {
    tmp: PathBuf,
    dest: PathBuf,
}

impl CheckpointWriter {
    /// Starts checkpoint `step` under `checkpoints_dir`: creates an empty `step-N.tmp/`.
    pub fn begin(checkpoints_dir: &Path, step: u64) -> Result<CheckpointWriter, RunDirError> {
        let dest = checkpoints_dir.join(checkpoint_dir_name(step));
        let tmp = checkpoints_dir.join(format!("{}.tmp", checkpoint_dir_name(step)));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err("remove stale", &tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io_err("create directory", &tmp))?;
        Ok(CheckpointWriter { tmp, dest })
    }

    /// The temporary directory to write the checkpoint's files into.
    pub fn dir(&self) -> &Path {
        &self.tmp
    }

    /// Fsyncs everything under it, writes the `COMPLETE` marker, and renames `step-N.tmp/` to `step-N/`.
    /// An existing `step-N/` (a step redone after a resume) is replaced only after the new one is
    /// in place. Returns the final path.
    pub fn commit(self) -> Result<PathBuf, RunDirError> {
        sync_tree(&self.tmp)?;
        let marker = self.tmp.join(COMPLETE_MARKER);
        File::create(&marker).and_then(|f| f.sync_all()).map_err(io_err("write", &marker))?;
        sync_dir(&self.tmp)?;
        let parent = self.dest.parent().expect("checkpoint paths have a parent").to_path_buf();
        let replaced = self.dest.with_extension("replaced.tmp");
        let had_old = self.dest.exists();
        if had_old {
            if replaced.exists() {
                fs::remove_dir_all(&replaced).map_err(io_err("remove stale", &replaced))?;
            }
            fs::rename(&self.dest, &replaced).map_err(io_err("move aside", &self.dest))?;
        }
        fs::rename(&self.tmp, &self.dest).map_err(io_err("rename into", &self.dest))?;
        sync_dir(&parent)?;
        if had_old {
            fs::remove_dir_all(&replaced).map_err(io_err("remove", &replaced))?;
        }
        Ok(self.dest)
    }
}

/// Steps of the complete checkpoints under `checkpoints_dir` (named `step-N`, a directory, with
/// a `COMPLETE` marker), ascending. A missing directory has none.
pub fn complete_checkpoints(checkpoints_dir: &Path) -> Result<Vec<(u64, PathBuf)>, RunDirError> {
    let entries = match fs::read_dir(checkpoints_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RunDirError::Io { action: "list", path: checkpoints_dir.to_path_buf(), source: e }),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", checkpoints_dir))?;
        let name = entry.file_name();
        let Some(step) = name.to_str().and_then(|n| n.strip_prefix("step-")).and_then(|n| n.parse::<u64>().ok())
        else {
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

/// The newest complete checkpoint under `checkpoints_dir`, ignoring half-written ones.
pub fn latest_complete_checkpoint(checkpoints_dir: &Path) -> Result<Option<(u64, PathBuf)>, RunDirError> {
    Ok(complete_checkpoints(checkpoints_dir)?.pop())
}

/// Deletes all but the newest `keep` complete checkpoints (0 keeps all), and any leftover
/// `*.tmp` directories. Returns the deleted paths.
pub fn prune_checkpoints(checkpoints_dir: &Path, keep: usize) -> Result<Vec<PathBuf>, RunDirError> {
    let mut deleted = Vec::new();
    if let Ok(entries) = fs::read_dir(checkpoints_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
                deleted.push(path);
            }
        }
    }
    if keep > 0 {
        let complete = complete_checkpoints(checkpoints_dir)?;
        let excess = complete.len().saturating_sub(keep);
        for (_, path) in complete.into_iter().take(excess) {
            fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
            deleted.push(path);
        }
    }
    Ok(deleted)
}

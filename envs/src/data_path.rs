//! The one data-path resolver: where benchmark files are found.
//!
//! A path is used as given when it exists (relative to the working directory). Otherwise it is
//! looked up in the data directory: `$MEMRL_DATA_DIR`, then [`DEFAULT_DATA_DIR`] (`../shared/data`,
//! relative to the working directory: a checkout run from its root with `shared/` beside it).
//! Nothing is baked in at build time. The environments' `data_path` knobs default to paths
//! inside the data directory (`locomo/locomo10.json`); `memrl data` / `memrl score` resolve their
//! `--data` flag (or, without it, the same default) here too.

use std::path::{Path, PathBuf};

use crate::env::EnvError;

/// The environment variable naming the data directory.
pub const DATA_DIR_VAR: &str = "MEMRL_DATA_DIR";

/// The data directory when `$MEMRL_DATA_DIR` is not set, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "../shared/data";

/// The paths [`resolve`] tries for `path`, in order.
pub fn candidates(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    if path.is_relative() {
        if let Some(dir) = std::env::var_os(DATA_DIR_VAR) {
            out.push(PathBuf::from(dir).join(path));
        }
        out.push(Path::new(DEFAULT_DATA_DIR).join(path));
    }
    out
}

/// The first existing file of [`candidates`], or an error listing what was tried.
pub fn resolve(path: impl AsRef<Path>) -> Result<PathBuf, EnvError> {
    let tried = candidates(path.as_ref());
    if let Some(found) = tried.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(EnvError::Data(format!("data file not found: tried {} (set the env knob data_path, or {DATA_DIR_VAR} to the data directory)", tried.join(", "))))
}

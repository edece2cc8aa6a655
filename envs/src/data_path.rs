//! Finds benchmark data files given a path knob.

use crate::env::EnvError;
use std::path::{Path, PathBuf};

/// Resolves `path`: as given (relative to the working directory), else relative to the
/// workspace root this crate was built in (so `../shared/data/...` works from any
/// directory of a checkout with `shared/` beside it).
pub fn resolve(path: &str) -> Result<PathBuf, EnvError> {
    let given = PathBuf::from(path);
    if given.exists() {
        return Ok(given);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let from_root = root.join(path);
    if given.is_relative() && from_root.exists() {
        return Ok(from_root);
    }
    Err(EnvError::Data(format!(
        "data file not found: tried {} and {} (set the env knob data_path)",
        given.display(),
        from_root.display()
    )))
}

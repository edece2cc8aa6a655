//! Directories memrl owns (run and sweep directories): a marker file says memrl created them,
//! an exclusive lock on that file says a process is writing to them, and replacing one
//! (`--overwrite`) moves it aside instead of deleting it.
//!
//! Replacing is refused for a directory without the marker (memrl did not make it), for one a
//! live process holds, and for `/`, the home directory, the working directory and its ancestors,
//! whatever they hold.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

/// Name of the marker file memrl writes into every run and sweep directory it creates.
pub const OWNED_MARKER: &str = ".memrl-owned";

/// What the marker file says, for a person who finds it.
const MARKER_TEXT: &str = "This directory was created by memrl. `--overwrite` moves aside only directories holding this file;\n\
a running memrl process holds a lock on it.\n";

/// Errors about owned directories.
#[derive(Debug, thiserror::Error)]
pub enum OwnedDirError {
    /// The path is one no command may replace (`/`, home, the working directory or an ancestor).
    #[error("refusing to replace {path}: it is {what}")]
    Protected {
        /// The directory.
        path: PathBuf,
        /// Which protected directory it is.
        what: &'static str,
    },
    /// The directory lacks the marker file memrl writes into what it creates.
    #[error(
        "refusing to replace {0}: it has no {OWNED_MARKER} marker file, so memrl did not create it \
         (or a memrl older than the marker did); move or delete it yourself"
    )]
    NotOwned(PathBuf),
    /// Another process holds the directory's lock.
    #[error("{0} is in use by another memrl process (it holds the directory's lock); wait for it to end or stop it first")]
    InUse(PathBuf),
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

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> OwnedDirError + 'a {
    move |source| OwnedDirError::Io { action, path: path.to_path_buf(), source }
}

/// An exclusive lock on an owned directory, held until dropped (or the process ends, however
/// it ends: the OS releases it).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Writes the marker into `dir` if it is missing, then takes an exclusive lock on it without
    /// waiting: [`OwnedDirError::InUse`] if another process (or another handle) holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, OwnedDirError> {
        let marker = dir.join(OWNED_MARKER);
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&marker).map_err(io_err("open", &marker))?;
        try_lock_exclusive(&file).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => OwnedDirError::InUse(dir.to_path_buf()),
            _ => OwnedDirError::Io { action: "lock", path: marker.clone(), source: e },
        })?;
        if file.metadata().map_err(io_err("stat", &marker))?.len() == 0 {
            use std::io::Write;
            file.write_all(MARKER_TEXT.as_bytes()).and_then(|_| file.sync_all()).map_err(io_err("write", &marker))?;
        }
        Ok(DirLock { _file: file })
    }
}

#[cfg(unix)]
fn try_lock_exclusive(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor this `File` owns; no memory is shared.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(not(unix))]
fn try_lock_exclusive(_file: &File) -> std::io::Result<()> {
    Ok(())
}

/// True if `dir` holds the marker file.
pub fn is_owned(dir: &Path) -> bool {
    dir.join(OWNED_MARKER).is_file()
}

/// Refuses `/`, the home directory, the working directory and any ancestor of it (so `.`,
/// `..` and their spellings), compared after resolving symbolic links.
pub fn refuse_protected(dir: &Path) -> Result<(), OwnedDirError> {
    let resolved = fs::canonicalize(dir).map_err(io_err("resolve", dir))?;
    let protected = |what| Err(OwnedDirError::Protected { path: dir.to_path_buf(), what });
    if resolved.parent().is_none() {
        return protected("the root directory");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()).and_then(|h| fs::canonicalize(h).ok())
        && home == resolved
    {
        return protected("the home directory");
    }
    if let Ok(cwd) = std::env::current_dir().and_then(fs::canonicalize)
        && cwd.starts_with(&resolved)
    {
        return protected(if cwd == resolved { "the working directory" } else { "an ancestor of the working directory" });
    }
    Ok(())
}

/// Moves the owned directory `dir` aside, to the first free sibling `<name>.old-<n>` (n = 1, 2,
/// ...), after checking it is not protected, carries the marker and is not in use. Returns
/// where it went.
pub fn move_aside(dir: &Path) -> Result<PathBuf, OwnedDirError> {
    refuse_protected(dir)?;
    if !is_owned(dir) {
        return Err(OwnedDirError::NotOwned(dir.to_path_buf()));
    }
    let lock = DirLock::acquire(dir)?;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut n = 1u64;
    let aside = loop {
        let candidate = parent.join(format!("{name}.old-{n}"));
        if fs::symlink_metadata(&candidate).is_err() {
            break candidate;
        }
        n += 1;
    };
    fs::rename(dir, &aside).map_err(io_err("move aside", dir))?;
    drop(lock);
    Ok(aside)
}

/// True if `dir` exists and has no entries.
pub fn is_empty_dir(dir: &Path) -> Result<bool, OwnedDirError> {
    Ok(fs::read_dir(dir).map_err(io_err("list", dir))?.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(tmp.path()).unwrap();
        assert!(matches!(DirLock::acquire(tmp.path()), Err(OwnedDirError::InUse(_))));
        assert!(matches!(move_aside(tmp.path()), Err(OwnedDirError::InUse(_))));
        drop(first);
        let again = DirLock::acquire(tmp.path()).unwrap();
        drop(again);
        assert!(fs::read_to_string(tmp.path().join(OWNED_MARKER)).unwrap().contains("memrl"));
    }

    #[test]
    fn moving_aside_picks_a_free_sibling_and_needs_the_marker() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        fs::create_dir(&run).unwrap();
        fs::write(run.join("notes.txt"), "mine").unwrap();
        assert!(matches!(move_aside(&run), Err(OwnedDirError::NotOwned(_))));
        drop(DirLock::acquire(&run).unwrap());
        fs::create_dir(tmp.path().join("run.old-1")).unwrap();
        let aside = move_aside(&run).unwrap();
        assert_eq!(aside, tmp.path().join("run.old-2"));
        assert_eq!(fs::read_to_string(aside.join("notes.txt")).unwrap(), "mine");
        assert!(!run.exists());
    }

    #[test]
    fn root_and_the_working_directory_and_its_ancestors_are_protected() {
        let cwd = std::env::current_dir().unwrap();
        for dir in [PathBuf::from("/"), PathBuf::from("."), PathBuf::from(".."), cwd.clone()] {
            assert!(matches!(refuse_protected(&dir), Err(OwnedDirError::Protected { .. })), "{}", dir.display());
        }
        if let Some(parent) = cwd.parent() {
            assert!(matches!(refuse_protected(parent), Err(OwnedDirError::Protected { .. })));
        }
        let tmp = tempfile::tempdir().unwrap();
        refuse_protected(tmp.path()).unwrap();
    }
}

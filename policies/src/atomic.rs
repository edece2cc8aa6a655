//! The workspace's atomic writers: [`write_file_atomic`] for one file (run directories,
//! reports, traces) and [`write_dir_atomic`] for a directory of files (every checkpoint, RL or
//! SFT, and every saved model), with [`recover_dirs`] to clean up after a write a crash cut short.
//!
//! A directory `<parent>/<name>` is filled under `<parent>/<name>.memrl-tmp/`, every file and
//! the directory fsynced, then renamed into place; an existing `<name>` is first renamed to
//! `<name>.memrl-old/` and removed once the new one is in place. Those two suffixes are the only
//! names [`recover_dirs`] touches.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Suffix of the temporary directory [`write_dir_atomic`] fills beside its target.
pub const TEMP_DIR_SUFFIX: &str = ".memrl-tmp";

/// Suffix a directory [`write_dir_atomic`] replaces is renamed to until the new one is in place.
pub const OLD_DIR_SUFFIX: &str = ".memrl-old";

/// A file-system operation of the atomic writers failed.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}")]
pub struct AtomicIoError {
    /// What was being done (`create directory`, `rename`, `fsync`, ...).
    pub action: &'static str,
    /// On which path.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> AtomicIoError + 'a {
    move |source| AtomicIoError { action, path: path.to_path_buf(), source }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory (created with
/// its parents), written and fsynced, renamed over `path` (`tempfile`'s persist), then the
/// directory fsynced, so a crash leaves either the old file or the new one, never a torn one.
/// The file gets the same mode as one made by [`std::fs::File::create`].
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-").suffix(".tmp");
    // The mode `File::create` gives (0666 less the umask, so 0644 usually), not tempfile's
    // private 0600: a file written atomically looks like every other file memrl writes.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// `<parent>/<name><suffix>` for a directory `<parent>/<name>`.
fn beside(dir: &Path, suffix: &str) -> Result<PathBuf, AtomicIoError> {
    let name = dir.file_name().ok_or_else(|| AtomicIoError {
        action: "write directory",
        path: dir.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path has no final component"),
    })?;
    let mut name = name.to_os_string();
    name.push(suffix);
    Ok(dir.with_file_name(name))
}

fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Fsyncs every file under `dir` (recursively), then the directories themselves.
fn sync_tree(dir: &Path) -> Result<(), AtomicIoError> {
    for entry in std::fs::read_dir(dir).map_err(io_err("list", dir))? {
        let path = entry.map_err(io_err("list", dir))?.path();
        let kind = std::fs::symlink_metadata(&path).map_err(io_err("inspect", &path))?.file_type();
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(io_err("fsync", &path))?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), AtomicIoError> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(io_err("fsync directory", dir))
}

/// Writes directory `dir` atomically: `fill` writes the files into an empty temporary directory
/// beside it (`<dir>.memrl-tmp`, replacing a stale one), which is fsynced with everything in it
/// and renamed to `dir`; an existing `dir` is replaced only once the new one is complete. A
/// reader (or a crash) sees the old directory or the new one, never a mix. If `fill` fails, the
/// temporary directory is removed and its error returned.
pub fn write_dir_atomic<E: From<AtomicIoError>>(dir: &Path, fill: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E> {
    let parent = parent_of(dir);
    std::fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
    let tmp = beside(dir, TEMP_DIR_SUFFIX)?;
    if std::fs::symlink_metadata(&tmp).is_ok() {
        std::fs::remove_dir_all(&tmp).map_err(io_err("remove the stale", &tmp))?;
    }
    std::fs::create_dir(&tmp).map_err(io_err("create directory", &tmp))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    sync_tree(&tmp)?;
    let old = beside(dir, OLD_DIR_SUFFIX)?;
    let had_old = std::fs::symlink_metadata(dir).is_ok();
    if had_old {
        if std::fs::symlink_metadata(&old).is_ok() {
            std::fs::remove_dir_all(&old).map_err(io_err("remove the stale", &old))?;
        }
        std::fs::rename(dir, &old).map_err(io_err("move aside", dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(io_err("rename into", dir))?;
    sync_dir(parent)?;
    if had_old {
        std::fs::remove_dir_all(&old).map_err(io_err("remove", &old))?;
    }
    Ok(())
}

/// Cleans up after [`write_dir_atomic`] calls a crash cut short, in directory `parent`: removes
/// every `*.memrl-tmp` directory (a write that never committed), and for every `*.memrl-old`
/// directory either removes it (its replacement is in place) or, when the crash came between
/// the two renames and its target is missing, renames it back. Nothing else is touched.
/// Returns the paths removed. A missing `parent` has nothing to clean.
pub fn recover_dirs(parent: &Path) -> Result<Vec<PathBuf>, AtomicIoError> {
    let entries = match std::fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", parent)(e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", parent))?;
        let path = entry.path();
        if !entry.file_type().map_err(io_err("inspect", &path))?.is_dir() {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TEMP_DIR_SUFFIX) {
            std::fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
            removed.push(path);
        } else if let Some(target) = name.strip_suffix(OLD_DIR_SUFFIX) {
            let target = parent.join(target);
            if std::fs::symlink_metadata(&target).is_ok() {
                std::fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
                removed.push(path);
            } else {
                std::fs::rename(&path, &target).map_err(io_err("restore", &path))?;
                sync_dir(parent)?;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn an_atomic_file_has_the_mode_of_a_plainly_created_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        let atomic = dir.path().join("atomic");
        write_file_atomic(&atomic, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&plain));
    }
}

#[cfg(test)]
mod dir_tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_directory_is_written_whole_and_replaced_whole() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ckpt/step-1");
        write_dir_atomic::<AtomicIoError>(&dir, |tmp| {
            assert!(tmp.ends_with("step-1.memrl-tmp"), "{}", tmp.display());
            std::fs::write(tmp.join("a"), "one").unwrap();
            std::fs::create_dir(tmp.join("sub")).unwrap();
            std::fs::write(tmp.join("sub/b"), "two").unwrap();
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "two");
        write_dir_atomic::<AtomicIoError>(&dir, |tmp| Ok(std::fs::write(tmp.join("c"), "three").unwrap())).unwrap();
        assert_eq!(names(&dir), ["c"], "the old directory's files are gone");
        assert_eq!(names(dir.parent().unwrap()), ["step-1"], "no temporary left beside it");
        // A failing fill leaves the old directory as it was and no temporary.
        let e = write_dir_atomic(&dir, |tmp| {
            std::fs::write(tmp.join("half"), "x").unwrap();
            Err(io_err("fill", tmp)(std::io::Error::other("disk full")))
        })
        .unwrap_err();
        assert_eq!(e.action, "fill");
        assert_eq!(names(&dir), ["c"]);
        assert_eq!(names(dir.parent().unwrap()), ["step-1"]);
    }

    #[test]
    fn recovery_removes_only_memrl_temporaries_and_restores_a_directory_moved_aside() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        for d in ["step-1", "step-2.memrl-tmp", "step-1.memrl-old", "step-3.memrl-old", "mine.tmp", "notes"] {
            std::fs::create_dir(p.join(d)).unwrap();
            std::fs::write(p.join(d).join("f"), d).unwrap();
        }
        std::fs::write(p.join("x.memrl-tmp"), "a file, not a directory").unwrap();
        let mut removed = recover_dirs(p).unwrap();
        removed.sort();
        assert_eq!(removed, [p.join("step-1.memrl-old"), p.join("step-2.memrl-tmp")]);
        // step-3 was moved aside and its replacement never arrived: it is back.
        assert_eq!(names(p), ["mine.tmp", "notes", "step-1", "step-3", "x.memrl-tmp"]);
        assert_eq!(std::fs::read_to_string(p.join("step-3/f")).unwrap(), "step-3.memrl-old");
        assert!(recover_dirs(&p.join("missing")).unwrap().is_empty());
    }
}

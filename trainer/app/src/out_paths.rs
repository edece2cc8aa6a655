//! Output paths checked against a command's inputs before any work: a command never writes over
//! a file it reads, or into a model directory it reads from (an `--out` inside a checkpoint).
//!
//! Paths are compared after resolving symbolic links, `.` and `..` (an output that does not
//! exist yet is resolved through its nearest existing ancestor), and existing files also by
//! device and inode, so hard links and other spellings of the same file are caught.

use std::path::{Component, Path, PathBuf};

/// An output that would replace or write inside one of the command's inputs.
#[derive(Debug, thiserror::Error)]
#[error("{output_flag} {output} {relation} {input_flag} {input}: choose another output path")]
pub struct OutputClash {
    /// The option naming the output (e.g. `--out`).
    pub output_flag: String,
    /// The output path as given.
    pub output: PathBuf,
    /// `is the same file as` or `is inside`.
    pub relation: &'static str,
    /// The option naming the input.
    pub input_flag: String,
    /// The input path as given.
    pub input: PathBuf,
}

/// `path` made absolute, with symbolic links of its existing part resolved and `.` / `..`
/// of the rest applied.
pub fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            let mut out = real;
            for part in rest.iter().rev() {
                match part {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return out;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

#[cfg(unix)]
fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_inode(_a: &Path, _b: &Path) -> bool {
    false
}

/// Refuses any output (`(flag, path)`) that is the same file as an input, or lies inside an
/// input that is a directory.
pub fn check_outputs(outputs: &[(&str, &Path)], inputs: &[(&str, &Path)]) -> Result<(), OutputClash> {
    for &(output_flag, output) in outputs {
        let out = resolve(output);
        for &(input_flag, input) in inputs {
            let inp = resolve(input);
            let relation = if out == inp || same_inode(output, input) {
                "is the same file as"
            } else if input.is_dir() && out.starts_with(&inp) {
                "is inside"
            } else {
                continue;
            };
            return Err(OutputClash {
                output_flag: output_flag.to_string(),
                output: output.to_path_buf(),
                relation,
                input_flag: input_flag.to_string(),
                input: input.to_path_buf(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_over_or_inside_inputs_are_refused_whatever_the_spelling() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data.json");
        std::fs::write(&data, "{}").unwrap();
        let ckpt = tmp.path().join("ckpt");
        std::fs::create_dir(&ckpt).unwrap();
        let linked = tmp.path().join("hard.json");
        std::fs::hard_link(&data, &linked).unwrap();
        let inputs = [("--data", data.as_path()), ("--checkpoint", ckpt.as_path())];
        for (out, relation) in [
            (data.clone(), "same file"),
            (tmp.path().join("ckpt/../data.json"), "same file"),
            (tmp.path().join("./missing/../data.json"), "same file"),
            (linked.clone(), "same file"),
            (ckpt.join("config.json"), "inside"),
            (ckpt.join("new/deeper.json"), "inside"),
        ] {
            let e = check_outputs(&[("--out", &out)], &inputs).unwrap_err();
            assert!(e.to_string().contains(relation), "{}: {e}", out.display());
        }
        check_outputs(&[("--out", &tmp.path().join("report.json"))], &inputs).unwrap();
        check_outputs(&[("--out", &tmp.path().join("ckpt-report.json"))], &inputs).unwrap();
    }
}

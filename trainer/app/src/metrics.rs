//! `metrics.jsonl`: one JSON object per logged step, appended and flushed.
//!
//! Each line is `{"step": N, "wall_time": unix_seconds, <fields in sorted order>}`; the key
//! order is deterministic so two runs with the same seed diff cleanly (except `wall_time`).
//! Non-finite values are written as `null` and read back as NaN. The standard field names live
//! in [`names`]; plots read them.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::run_dir::write_file_atomic;

pub use memrl_rl::metrics::{advantage_fields, is_timing_key, loss_fields, names};

/// Reserved keys every line has.
const STEP: &str = "step";
const WALL_TIME: &str = "wall_time";

/// Errors from writing or reading metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// An I/O operation failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done (`reading`, `appending to`, `syncing`).
        action: &'static str,
        /// The metrics file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A field uses a reserved name or appears twice.
    #[error("metric field `{0}` is reserved or given twice")]
    BadField(String),
    /// A line is not a metrics object.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The metrics file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Writing back a truncated file failed.
    #[error(transparent)]
    Write(#[from] crate::run_dir::RunDirError),
}

/// Appends one JSON line per call to a metrics file.
#[derive(Debug)]
pub struct MetricsLogger {
    file: File,
    path: PathBuf,
}

impl MetricsLogger {
    /// Opens (creating if needed) `path` for appending.
    pub fn open(path: &Path) -> Result<MetricsLogger, MetricsError> {
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(|source| MetricsError::Io {
            action: "opening",
            path: path.to_path_buf(),
            source,
        })?;
        Ok(MetricsLogger { file, path: path.to_path_buf() })
    }

    /// Appends `{"step", "wall_time", fields...}` as one line (one `write` call) and flushes.
    pub fn log<S: AsRef<str>>(&mut self, step: u64, fields: impl IntoIterator<Item = (S, f64)>) -> Result<(), MetricsError> {
        let wall_time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let line = format_line(step, wall_time, fields)?;
        self.file.write_all(line.as_bytes()).and_then(|_| self.file.flush()).map_err(|source| MetricsError::Io {
            action: "appending to",
            path: self.path.clone(),
            source,
        })
    }
}

impl MetricsLogger {
    /// Fsyncs the lines written so far (before a checkpoint that follows them commits).
    pub fn sync(&self) -> Result<(), MetricsError> {
        self.file.sync_data().map_err(|source| MetricsError::Io { action: "syncing", path: self.path.clone(), source })
    }
}

/// Formats one metrics line (with its trailing newline).
pub fn format_line<S: AsRef<str>>(step: u64, wall_time: f64, fields: impl IntoIterator<Item = (S, f64)>) -> Result<String, MetricsError> {
    let mut sorted: BTreeMap<String, f64> = BTreeMap::new();
    for (k, v) in fields {
        let k = k.as_ref();
        if k == STEP || k == WALL_TIME || sorted.insert(k.to_string(), v).is_some() {
            return Err(MetricsError::BadField(k.to_string()));
        }
    }
    let number = |v: f64| serde_json::Value::from(v).to_string(); // NaN/inf → null
    let mut line = format!("{{\"{STEP}\":{step},\"{WALL_TIME}\":{}", number(wall_time));
    for (k, v) in &sorted {
        line.push(',');
        line.push_str(&serde_json::Value::String(k.clone()).to_string());
        line.push(':');
        line.push_str(&number(*v));
    }
    line.push_str("}\n");
    Ok(line)
}

/// One parsed metrics line.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRow {
    /// The training step.
    pub step: u64,
    /// Unix time in seconds when it was logged.
    pub wall_time: f64,
    /// The named values (null read as NaN).
    pub fields: BTreeMap<String, f64>,
}

/// Reads a metrics file. A final line without a newline that does not parse (a write cut short
/// by a crash) is ignored; any other malformed line is an error naming its line number.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>, MetricsError> {
    let text = std::fs::read_to_string(path).map_err(|source| MetricsError::Io { action: "reading", path: path.to_path_buf(), source })?;
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut rows = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(row) => rows.push(row),
            Err(_) if i + 1 == lines.len() && !complete => break,
            Err(message) => return Err(MetricsError::Malformed { path: path.to_path_buf(), line: i + 1, message }),
        }
    }
    Ok(rows)
}

fn parse_line(line: &str) -> Result<MetricsRow, String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("expected a JSON object".into());
    };
    let step = map.get(STEP).and_then(|v| v.as_u64()).ok_or("missing or non-integer `step`")?;
    let mut wall_time = f64::NAN;
    let mut fields = BTreeMap::new();
    for (k, v) in map {
        if k == STEP {
            continue;
        }
        let x = match &v {
            serde_json::Value::Null => f64::NAN,
            serde_json::Value::Number(n) => n.as_f64().ok_or_else(|| format!("`{k}` is not a number"))?,
            other => return Err(format!("`{k}` is {other}, expected a number or null")),
        };
        if k == WALL_TIME {
            wall_time = x;
        } else {
            fields.insert(k, x);
        }
    }
    Ok(MetricsRow { step, wall_time, fields })
}

/// Rewrites the metrics file keeping only lines with `step <= last_step` (used on resume from a
/// checkpoint at `last_step`, so redone steps are not logged twice). Returns how many lines were
/// dropped. A missing file is left missing.
pub fn truncate_after(path: &Path, last_step: u64) -> Result<usize, MetricsError> {
    if !path.exists() {
        return Ok(0);
    }
    let rows = read_metrics(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| MetricsError::Io { action: "reading", path: path.to_path_buf(), source })?;
    let mut kept = String::new();
    let mut dropped = 0;
    let mut row_iter = rows.iter();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match row_iter.next() {
            Some(row) if row.step <= last_step => {
                kept.push_str(line);
                kept.push('\n');
            }
            _ => dropped += 1,
        }
    }
    write_file_atomic(path, kept.as_bytes())?;
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_a_fixed_key_order_and_null_for_nan() {
        let line = format_line(3, 1.5, [("zeta", 1.0), ("alpha", f64::NAN), ("mid", 0.25)]).unwrap();
        assert_eq!(line, "{\"step\":3,\"wall_time\":1.5,\"alpha\":null,\"mid\":0.25,\"zeta\":1.0}\n");
        assert!(matches!(format_line(0, 0.0, [("step", 1.0)]), Err(MetricsError::BadField(_))));
        assert!(matches!(format_line(0, 0.0, [("a", 1.0), ("a", 2.0)]), Err(MetricsError::BadField(_))));
    }

    #[test]
    fn write_read_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut log = MetricsLogger::open(&path).unwrap();
        for step in 0..5 {
            log.log(step, [(names::REWARD_MEAN, step as f64 * 0.5)]).unwrap();
        }
        drop(log);
        let rows = read_metrics(&path).unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[4].fields[names::REWARD_MEAN], 2.0);
        assert!(rows[0].wall_time > 1.0e9);
        // A torn final line is ignored; a torn middle line is an error with its line number.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"step\":5,\"rew").unwrap();
        assert_eq!(read_metrics(&path).unwrap().len(), 5);
        assert_eq!(truncate_after(&path, 2).unwrap(), 3); // steps 3, 4 and the torn line
        assert_eq!(read_metrics(&path).unwrap().iter().map(|r| r.step).collect::<Vec<_>>(), vec![0, 1, 2]);
        std::fs::write(&path, "{\"step\":0}\nnot json\n{\"step\":1}\n").unwrap();
        let err = read_metrics(&path).unwrap_err();
        assert!(matches!(err, MetricsError::Malformed { line: 2, .. }), "{err}");
        std::fs::write(&path, "{\"step\":0,\"x\":\"text\"}\n").unwrap();
        assert!(read_metrics(&path).unwrap_err().to_string().contains("`x`"));
    }
}

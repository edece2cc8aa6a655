//! Errors of the benchmark loaders: every one names the file and, for content errors,
//! the JSON path and what was expected.

use std::path::{Path, PathBuf};

/// Why a benchmark file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read at all.
    #[error("{path}: cannot read")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The bytes are not valid JSON (malformed or truncated).
    #[error("{path}: not valid JSON: {message}")]
    Syntax {
        /// The file that failed.
        path: PathBuf,
        /// What the parser reports, with line and column.
        message: String,
    },
    /// Valid JSON that does not have the benchmark's schema.
    #[error("{path}: at {json_path}: {message}")]
    Schema {
        /// The file that failed.
        path: PathBuf,
        /// Where in the document, e.g. `$[3].qa[12].category`.
        json_path: String,
        /// What was found and what was expected (with line and column when known).
        message: String,
    },
}

/// Renders a `serde_path_to_error` path as `$`, `$[3]` or `$[3].qa[12].category`.
pub(crate) fn render_json_path(path: &serde_path_to_error::Path) -> String {
    let inner = path.to_string();
    if inner == "." || inner.is_empty() {
        "$".to_string()
    } else if inner.starts_with('[') {
        format!("${inner}")
    } else {
        format!("$.{inner}")
    }
}

/// Deserialises `bytes` as JSON into `T`, turning any failure into a [`LoadError`] that
/// names `path` and the JSON path where the document departs from the schema.
pub(crate) fn from_json_slice<T: serde::de::DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<T, LoadError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| classify(error, path))?;
    deserializer
        .end()
        .map_err(|error| LoadError::Syntax { path: path.to_path_buf(), message: format!("trailing characters after the JSON document ({error})") })?;
    Ok(value)
}

fn classify(error: serde_path_to_error::Error<serde_json::Error>, path: &Path) -> LoadError {
    let json_path = render_json_path(error.path());
    let inner = error.into_inner();
    match inner.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            LoadError::Syntax { path: path.to_path_buf(), message: format!("{inner} (near {json_path})") }
        }
        serde_json::error::Category::Io => LoadError::Syntax { path: path.to_path_buf(), message: inner.to_string() },
        serde_json::error::Category::Data => LoadError::Schema { path: path.to_path_buf(), json_path, message: inner.to_string() },
    }
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Io { path: path.to_path_buf(), source })
}

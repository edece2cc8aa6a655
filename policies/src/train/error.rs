//! Errors of the training path: every message names the parameter, file or field involved and
//! what was expected.

use std::path::PathBuf;

use crate::error::PolicyError;

/// Errors from optimisers, adapters, tokenizer training and checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Loading or building the model failed.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A configuration value is out of range or unknown.
    #[error("invalid {what}: {message}")]
    Config {
        /// Which configuration (e.g. `AdamW`, `LoRA`).
        what: &'static str,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Gradients or optimizer state do not match the model's parameters.
    #[error("parameter {name}: {message}")]
    Parameter {
        /// The parameter's HF name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint file is missing, malformed, or disagrees with the model.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file or directory involved.
        path: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{action} {path}")]
    Io {
        /// What was being done (`reading`, `writing`, ...).
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An atomic file or directory write failed.
    #[error(transparent)]
    Atomic(#[from] crate::atomic::AtomicIoError),
    /// Tokenizer training or serialisation failed.
    #[error("tokenizer training: {0}")]
    Tokenizer(String),
}

/// Result alias for the training path.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    /// Builds a [`TrainError::Config`].
    pub fn config(what: &'static str, message: impl Into<String>) -> Self {
        TrainError::Config { what, message: message.into() }
    }
    /// Builds a [`TrainError::Parameter`].
    pub fn parameter(name: impl Into<String>, message: impl Into<String>) -> Self {
        TrainError::Parameter { name: name.into(), message: message.into() }
    }
    /// Builds a [`TrainError::Checkpoint`].
    pub fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TrainError::Checkpoint { path: path.into(), message: message.into() }
    }
    /// Builds a [`TrainError::Io`]: `action` (`reading`, `writing`, ...) on `path` failed.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io { action, path: path.into(), source }
    }
}

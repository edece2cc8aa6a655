//! The one error type of the policies crate: every failure names the file, field or tensor
//! involved and what was expected, so a bad model directory is diagnosable from the message.

use std::path::PathBuf;

/// Errors from loading, configuring or running a policy model.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file could not be read or written.
    #[error("reading {path}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A JSON file (config.json, tokenizer_config.json, index) is not valid JSON.
    #[error("{path}: invalid JSON")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The parse error (with line and column).
        source: serde_json::Error,
    },
    /// A model configuration is missing a field, has a wrong value, or names an unsupported architecture.
    #[error("model config ({origin}): {message}")]
    Config {
        /// Where the configuration came from (a config.json path or a GGUF file).
        origin: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A weight file is truncated, corrupt, lacks a tensor, or holds a tensor of the wrong shape or dtype.
    #[error("weights {file}: tensor {tensor}: {message}")]
    Weights {
        /// The weight file involved.
        file: PathBuf,
        /// The tensor name (or "-" when the file itself is unreadable).
        tensor: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The tokenizer could not be built or failed to encode/decode.
    #[error("tokenizer ({origin}): {message}")]
    Tokenizer {
        /// Where the tokenizer came from.
        origin: String,
        /// What went wrong.
        message: String,
    },
    /// The chat template failed to compile or render (including `raise_exception` from the template).
    #[error("chat template: {0}")]
    ChatTemplate(String),
    /// A generation request or model input is invalid (empty prompt, context too long, bad sampling settings).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The model path is neither a directory with config.json nor a .gguf file.
    #[error("{path}: {message}")]
    ModelPath {
        /// The path given.
        path: PathBuf,
        /// What was expected there.
        message: String,
    },
    /// An error from the GGUF reader.
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
}

/// Result alias for the policies crate.
pub type Result<T, E = PolicyError> = std::result::Result<T, E>;

impl PolicyError {
    /// Builds a [`PolicyError::Config`].
    pub fn config(origin: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyError::Config { origin: origin.into(), message: message.into() }
    }
    /// Builds a [`PolicyError::Weights`].
    pub fn weights(file: impl Into<PathBuf>, tensor: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyError::Weights { file: file.into(), tensor: tensor.into(), message: message.into() }
    }
    /// Builds a [`PolicyError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PolicyError::Io { path: path.into(), source }
    }
}

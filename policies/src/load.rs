//! Opening a model by path: an HF directory (`config.json`, safetensors, `tokenizer.json`) or a
//! `.gguf` file (config, weights, tokenizer and chat template all from the one file).

use std::path::Path;

use crate::backend::Backend;
use crate::config::LlamaConfig;
use crate::error::{PolicyError, Result};
use crate::gguf::GgufFile;
use crate::model::Llama;
use crate::tokenizer::Tokenizer;
use crate::weights::{GgufSource, SafetensorsSource, build_llama};

/// What kind of model a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// A Hugging Face model directory.
    HfDir,
    /// A single GGUF file.
    Gguf,
}

/// Tells the format of `path`, or explains what was expected there.
pub fn detect_format(path: &Path) -> Result<ModelFormat> {
    if path.is_dir() {
        if path.join("config.json").is_file() {
            return Ok(ModelFormat::HfDir);
        }
        return Err(PolicyError::ModelPath { path: path.into(), message: "directory has no config.json".into() });
    }
    if path.is_file() {
        if path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
            return Ok(ModelFormat::Gguf);
        }
        return Err(PolicyError::ModelPath { path: path.into(), message: "expected a .gguf file or a model directory".into() });
    }
    let message = match std::fs::metadata(path) {
        // A device, FIFO or socket: reading it would block, or give no model.
        Ok(_) => "is not a regular file or directory (a device, FIFO or socket); expected a .gguf file or a model directory".into(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".into(),
        Err(e) => format!("cannot be read: {e}"),
    };
    Err(PolicyError::ModelPath { path: path.into(), message })
}

/// The model configuration at `path`.
pub fn load_config(path: &Path) -> Result<LlamaConfig> {
    match detect_format(path)? {
        ModelFormat::HfDir => LlamaConfig::from_file(&path.join("config.json")),
        ModelFormat::Gguf => {
            let file = GgufFile::open(path)?;
            let value = crate::gguf::llama::hf_config(&file)?;
            LlamaConfig::from_hf_json(&value, &path.display().to_string())
        }
    }
}

/// The tokenizer (with chat template) at `path`.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    match detect_format(path)? {
        ModelFormat::HfDir => Tokenizer::from_hf_dir(path),
        ModelFormat::Gguf => Tokenizer::from_gguf(&GgufFile::open(path)?),
    }
}

/// Loads the decoder at `path` onto `backend`.
pub fn load_model<B: Backend>(backend: B, path: &Path) -> Result<Llama<B>> {
    match detect_format(path)? {
        ModelFormat::HfDir => {
            let config = LlamaConfig::from_file(&path.join("config.json"))?;
            let mut src = SafetensorsSource::open_dir(path)?;
            build_llama(backend, config, &mut src)
        }
        ModelFormat::Gguf => {
            let file = GgufFile::open(path)?;
            let value = crate::gguf::llama::hf_config(&file)?;
            let config = LlamaConfig::from_hf_json(&value, &path.display().to_string())?;
            let mut src = GgufSource::new(&file)?;
            build_llama(backend, config, &mut src)
        }
    }
}

/// Loads both model and tokenizer.
pub fn load_policy<B: Backend>(backend: B, path: &Path) -> Result<(Llama<B>, Tokenizer)> {
    Ok((load_model(backend, path)?, load_tokenizer(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_not_said_to_be_missing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = detect_format(&dir.path().join("none.gguf")).unwrap_err().to_string();
        assert!(missing.contains("does not exist"), "{missing}");
        let null = detect_format(Path::new("/dev/null")).unwrap_err().to_string();
        assert!(null.contains("/dev/null") && null.contains("not a regular file"), "{null}");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(detect_format(&empty).unwrap_err().to_string().contains("no config.json"));
    }
}

//! The model `memrl bench policy` measures: a GGUF file or HF directory, or a random-init model
//! of a named shape (`random:NAME`, table in `scripts/reference/random_shapes.json`).

use anyhow::{Context, Result};
use memrl_policies::train::tiny::{INIT_STD, init_random};
use memrl_policies::{Backend, Llama, LlamaConfig, load_config, load_model};
use std::path::{Path, PathBuf};

use super::flops::random_shape;
use super::policy::resolve_model;

/// The model a run measures.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A GGUF file or HF directory.
    File(PathBuf),
    /// A random-init model of a named shape (seed 0, normal(0, 0.02)).
    Random {
        /// The shape's name in `random_shapes.json`.
        name: String,
        /// Its config.
        config: Box<LlamaConfig>,
    },
}

impl ModelSource {
    /// `random:NAME` or a path resolved as [`resolve_model`] does.
    pub fn from_arg(arg: Option<&Path>) -> Result<ModelSource> {
        if let Some(name) = arg.and_then(|p| p.to_str()).and_then(|s| s.strip_prefix("random:")) {
            return Ok(ModelSource::Random { name: name.to_string(), config: Box::new(random_shape(name)?) });
        }
        Ok(ModelSource::File(resolve_model(arg)?))
    }
    /// How reports name it.
    pub fn display(&self) -> String {
        match self {
            ModelSource::File(p) => p.display().to_string(),
            ModelSource::Random { name, .. } => format!("random:{name}"),
        }
    }
    /// The model's config.
    pub fn config(&self) -> Result<LlamaConfig> {
        match self {
            ModelSource::File(p) => load_config(p).with_context(|| format!("reading the config of {}", p.display())),
            ModelSource::Random { config, .. } => Ok((**config).clone()),
        }
    }
    /// The model on `backend`.
    pub fn load<B: Backend>(&self, backend: B) -> Result<Llama<B>> {
        match self {
            ModelSource::File(p) => load_model(backend, p).with_context(|| format!("loading {}", p.display())),
            ModelSource::Random { name, config } => {
                init_random(backend, (**config).clone(), 0, INIT_STD).with_context(|| format!("initialising random:{name}"))
            }
        }
    }
    /// The peer scripts' flags naming the same model (`--gguf`, `--model DIR` or `--random NAME`).
    pub fn peer_flag(&self) -> (&'static str, String) {
        match self {
            ModelSource::File(p) if p.is_dir() => ("--model", p.display().to_string()),
            ModelSource::File(p) => ("--gguf", p.display().to_string()),
            ModelSource::Random { name, .. } => ("--random", name.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memrl_policies::BurnBackend;

    #[test]
    fn random_models_are_seeded_and_named() {
        let m = ModelSource::from_arg(Some(Path::new("random:tiny-qwen2"))).unwrap();
        assert_eq!(m.display(), "random:tiny-qwen2");
        assert_eq!(m.peer_flag(), ("--random", "tiny-qwen2".to_string()));
        let model = m.load(BurnBackend::flex()).unwrap();
        assert_eq!((model.config.hidden_size, model.config.vocab_size), (64, 512));
        // Seeded: the same weights every time.
        let again = m.load(BurnBackend::flex()).unwrap();
        assert_eq!(model.backend.to_vec(&model.embed_tokens), again.backend.to_vec(&again.embed_tokens));
        assert_eq!(m.config().unwrap(), model.config);
        assert!(ModelSource::from_arg(Some(Path::new("random:nope"))).unwrap_err().to_string().contains("qwen2.5-0.5b"));
    }
}

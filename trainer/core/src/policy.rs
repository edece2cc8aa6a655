//! The policy as the RL core trains it: a model on a [`RunBackend`] (full weights on a plain
//! backend, or LoRA adapters over one), whose trainable leaves live on a [`BaseBackend`] with an
//! inference twin for the rollout engine and the KL reference.

use std::path::Path;

use memrl_policies::BurnBackend;
use memrl_policies::PolicyError;
use memrl_policies::model::Llama;
use memrl_policies::tokenizer::Tokenizer;
use memrl_policies::train::checkpoint::load_lora_checkpoint;
use memrl_policies::train::error::TrainError;
use memrl_policies::train::lora::{Lora, LoraConfig, apply_lora};
use memrl_policies::train::params::{TrainBackend, hf_state_dict, llama_from_hf_tensors};

/// A plain backend (no adapters) the run loop can train on: its trainable leaves live on the
/// backend itself, and it has an inference twin (no autodiff, same device and precision) for the
/// rollout engine and the KL reference.
pub trait BaseBackend: TrainBackend<Leaf = Self> {
    /// The same backend without autodiff.
    fn inference(&self) -> Self;
}

impl BaseBackend for BurnBackend {
    fn inference(&self) -> BurnBackend {
        BurnBackend::flex()
    }
}

#[cfg(feature = "tch")]
impl BaseBackend for memrl_policies::TchBackend {
    fn inference(&self) -> memrl_policies::TchBackend {
        self.with_autodiff(false)
    }
}

/// The backend of the model a run trains: a [`BaseBackend`] itself (every weight trains) or
/// [`Lora`] over one (only the adapters train; the base stays frozen). Either way the optimizer
/// state lives on the base backend ([`TrainBackend::Leaf`]), and the rollout engine and the KL
/// reference run a plain inference model there ([`inference_copy`], adapters merged).
pub trait RunBackend: TrainBackend<Leaf: BaseBackend> {
    /// Turns a model built on the base backend ([`TrainBackend::leaf_backend`]) into the model
    /// this backend trains: itself for a plain backend, with fresh adapters for LoRA.
    fn adapt(&self, base: Llama<Self::Leaf>) -> Result<Llama<Self>, TrainError>;

    /// Loads a checkpoint this backend's models write (for resuming): the HF directory for a
    /// plain backend, the frozen base plus the PEFT adapter files for LoRA.
    fn load_checkpoint(&self, dir: &Path) -> Result<(Llama<Self>, Tokenizer), TrainError>;

    /// The adapter configuration, for a LoRA backend.
    fn lora(&self) -> Option<&LoraConfig>;

    /// Called before each optimizer update with a seed that is a pure function of the run and
    /// the step: LoRA restarts its dropout stream there, so that a resumed run draws the same
    /// masks as an uninterrupted one. Nothing for a plain backend.
    fn begin_update(&self, seed: u64);
}

/// `RunBackend` for a plain backend: the model as built.
macro_rules! full_model_run_backend {
    ($backend:ty) => {
        impl RunBackend for $backend {
            fn adapt(&self, base: Llama<Self>) -> Result<Llama<Self>, TrainError> {
                Ok(base)
            }
            fn load_checkpoint(&self, dir: &Path) -> Result<(Llama<Self>, Tokenizer), TrainError> {
                Ok(memrl_policies::load_policy(self.clone(), dir)?)
            }
            fn lora(&self) -> Option<&LoraConfig> {
                None
            }
            fn begin_update(&self, _seed: u64) {}
        }
    };
}

full_model_run_backend!(BurnBackend);
#[cfg(feature = "tch")]
full_model_run_backend!(memrl_policies::TchBackend);

impl<B: BaseBackend> RunBackend for Lora<B> {
    fn adapt(&self, base: Llama<B>) -> Result<Llama<Self>, TrainError> {
        apply_lora(base, self.config())
    }
    fn load_checkpoint(&self, dir: &Path) -> Result<(Llama<Self>, Tokenizer), TrainError> {
        let (model, tokenizer) = load_lora_checkpoint(self.inner().clone(), dir)?;
        if model.backend.config() != self.config() {
            return Err(TrainError::checkpoint(
                &dir.join("adapter_config.json"),
                format!("its LoRA configuration {:?} differs from the run's {:?}", model.backend.config(), self.config()),
            ));
        }
        Ok((model, tokenizer))
    }
    fn lora(&self) -> Option<&LoraConfig> {
        Some(self.config())
    }
    fn begin_update(&self, seed: u64) {
        self.reseed_dropout(seed);
    }
}

/// A frozen inference copy of the current weights on the base backend's inference twin (no
/// autodiff; LoRA adapters merged into their weights): the rollout engine's model.
/// (Through host memory: simple, and per step a small cost next to the rollout it serves.)
pub fn inference_copy<B: RunBackend>(model: &Llama<B>) -> Result<Llama<B::Leaf>, PolicyError> {
    llama_from_hf_tensors(model.backend.leaf_backend().inference(), model.config.clone(), hf_state_dict(model))
}

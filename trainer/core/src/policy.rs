//! The policy as the RL core trains it: a model on an autodiff backend whose trainable leaves
//! live on the backend itself, with an inference twin for the rollout engine and the KL reference.

use memrl_policies::BurnBackend;
use memrl_policies::PolicyError;
use memrl_policies::model::Llama;
use memrl_policies::train::params::{TrainBackend, hf_state_dict, llama_from_hf_tensors};

/// A backend the run loop can train on: its trainable leaves live on the backend itself (no
/// adapters), and it has an inference twin (no autodiff, same device and precision) for the
/// rollout engine and the KL reference.
pub trait RunBackend: TrainBackend<Leaf = Self> {
    /// The same backend without autodiff.
    fn inference(&self) -> Self;
}

impl RunBackend for BurnBackend {
    fn inference(&self) -> BurnBackend {
        BurnBackend::flex()
    }
}

#[cfg(feature = "tch")]
impl RunBackend for memrl_policies::TchBackend {
    fn inference(&self) -> memrl_policies::TchBackend {
        self.with_autodiff(false)
    }
}

/// A frozen inference copy of the current weights (no autodiff): the rollout engine's model.
/// (Through host memory: simple, and per step a small cost next to the rollout it serves.)
pub fn inference_copy<B: RunBackend>(model: &Llama<B>) -> Result<Llama<B>, PolicyError> {
    llama_from_hf_tensors(model.backend.inference(), model.config.clone(), hf_state_dict(model))
}

//! Tokenizer and chat template, the Llama-family decoder over a small backend seam,
//! weight loading (safetensors, GGUF), batched KV-cache generation and log-probs.
//! Knows tokens and tensors, never environments.

pub mod atomic;
pub mod backend;
pub mod chat;
pub mod config;
pub mod copy_head;
pub mod engine;
pub mod error;
pub mod gguf;
pub mod inspect;
pub mod load;
pub mod model;
pub mod sampling;
pub mod scoring;
pub mod token_match;
pub mod tokenizer;
pub mod train;
pub mod turn_stop;
pub mod weights;

pub use backend::burn_flex::BurnBackend;
#[cfg(feature = "tch")]
pub use backend::tch::TchBackend;
pub use backend::{AttentionMask, Backend, DeviceSpec, Precision};
pub use config::{LlamaConfig, RopeScaling};
pub use engine::{Engine, EngineConfig, FinishReason, Finished, GenerationRequest, RequestId};
pub use error::{PolicyError, Result};
pub use load::{load_config, load_model, load_policy, load_tokenizer};
pub use model::Llama;
pub use sampling::SamplingParams;
pub use tokenizer::Tokenizer;

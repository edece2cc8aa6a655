//! Training the policy: gradients of named parameters, global-norm clipping, AdamW with
//! resumable state, LoRA adapters, tiny random presets with a byte-level BPE tokenizer trained
//! on caller-supplied text, Hugging Face-layout checkpoints, and learner throughput benchmarks.
//!
//! The learner loop itself lives in the trainer crate; it uses this module as
//!
//! ```text
//! let raw = model.backend.backward(&loss);
//! let grads = ModelGrads::from_backward(&model, raw);                         // per micro-batch
//! acc.accumulate(grads)?;                                                        // optional
//! let report = clip_grad_norm(&mut acc, max_norm);                               // pre-clip norm
//! if report.finite { optimizer.step(&mut model, acc, lr)?; }                     // else skip
//! ```
//!
//! Everything that is trained is a [`params::TrainBackend`] model: `Llama<BurnBackend>` trains
//! every parameter; `Llama<Lora<BurnBackend>>` ([`lora`]) trains only the adapters.

pub mod bench;
pub mod bpe;
pub mod checkpoint;
pub mod error;
pub mod grads;
pub mod lora;
pub mod optim;
pub mod params;
pub mod tiny;
pub mod value_head;

pub use bpe::{BpeTrainingConfig, CHATML_TEMPLATE, TrainedTokenizer, chatml_template, train_bpe_tokenizer};
pub use checkpoint::{
    CheckpointOptions, ReferencePrompt, TokenizerFiles, load_checkpoint_optimizer, load_lora_checkpoint, save_checkpoint, write_checkpoint_files,
};
pub use error::{Result, TrainError};
pub use grads::{ClipReport, ModelGrads, clip_grad_norm};
pub use lora::{Lora, LoraConfig, LoraTensor, apply_lora, load_adapters};
pub use optim::{AdamW, AdamWConfig, AdamWScalars, AdamWState, StepReport};
pub use params::{ExportedWeights, TrainBackend, hf_state_dict, llama_from_hf_tensors};
pub use tiny::{TinyPreset, init_random, init_tiny};
pub use value_head::init_value_head;

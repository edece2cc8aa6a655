//! Which tensors of a model are trained, and moving a model's weights to and from the host in
//! Hugging Face layout.
//!
//! [`TrainBackend`] says, per backend, which leaves of a `Llama` the optimizer updates and on
//! which backend those leaves live: a plain backend trains every parameter; the
//! [`Lora`](crate::train::lora::Lora) wrapper trains only its adapters, which live on the wrapped
//! backend.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::backend::Backend;
use crate::backend::burn_flex::BurnBackend;
use crate::config::LlamaConfig;
use crate::error::Result as PolicyResult;
use crate::model::{DecoderLayer, Linear, Llama};
use crate::weights::{HostTensor, TensorSource, build_llama, transpose_host};

/// A backend whose models can be trained by [`crate::train::AdamW`].
pub trait TrainBackend: Backend + Sized {
    /// The backend the trainable leaves (and their gradients and optimizer state) live on.
    type Leaf: Backend;
    /// The leaf backend of this backend value.
    fn leaf_backend(&self) -> &Self::Leaf;
    /// The gradient of trainable leaf `leaf` in a backward result of this backend.
    fn leaf_grad(&self, grads: &Self::Grads, leaf: &<Self::Leaf as Backend>::Tensor) -> Option<<Self::Leaf as Backend>::Tensor>;
    /// The trainable leaves of `model` with their names, in a fixed order.
    fn trainable_leaves(model: &Llama<Self>) -> Vec<(String, &<Self::Leaf as Backend>::Tensor)>;
    /// The same leaves, mutably, in the same order.
    fn trainable_leaves_mut(model: &mut Llama<Self>) -> Vec<(String, &mut <Self::Leaf as Backend>::Tensor)>;
    /// The weights a checkpoint stores: HF-layout model tensors and, for an adapter model not
    /// merged, the adapters (PEFT layout) with their configuration.
    fn export_weights(model: &Llama<Self>, merge_adapters: bool) -> ExportedWeights;
}

/// Host tensors for a checkpoint (see [`TrainBackend::export_weights`]).
pub struct ExportedWeights {
    /// `model.safetensors`: HF names, PyTorch layout.
    pub model: Vec<(String, HostTensor)>,
    /// `adapter_model.safetensors` and its configuration, when adapters are kept separate.
    pub adapter: Option<(crate::train::lora::LoraConfig, Vec<(String, HostTensor)>)>,
}

/// `TrainBackend` for a backend that trains the full model (no adapters): every parameter is a
/// leaf of the backend itself. One body for each backend, so burn and tch cannot drift apart.
macro_rules! full_model_train_backend {
    ($backend:ty) => {
        impl TrainBackend for $backend {
            type Leaf = $backend;
            fn leaf_backend(&self) -> &$backend {
                self
            }
            fn leaf_grad(&self, grads: &Self::Grads, leaf: &<Self as Backend>::Tensor) -> Option<<Self as Backend>::Tensor> {
                self.grad(grads, leaf)
            }
            fn trainable_leaves(model: &Llama<Self>) -> Vec<(String, &<Self as Backend>::Tensor)> {
                model.named_parameters()
            }
            fn trainable_leaves_mut(model: &mut Llama<Self>) -> Vec<(String, &mut <Self as Backend>::Tensor)> {
                model.named_parameters_mut()
            }
            fn export_weights(model: &Llama<Self>, _merge_adapters: bool) -> ExportedWeights {
                ExportedWeights { model: hf_state_dict(model), adapter: None }
            }
        }
    };
}

full_model_train_backend!(BurnBackend);
#[cfg(feature = "tch")]
full_model_train_backend!(crate::backend::tch::TchBackend);

/// The projections of a decoder layer with their HF module names.
pub(crate) fn layer_linears<B: Backend>(l: &DecoderLayer<B>) -> [(&'static str, &Linear<B>); 7] {
    [
        ("self_attn.q_proj", &l.q_proj),
        ("self_attn.k_proj", &l.k_proj),
        ("self_attn.v_proj", &l.v_proj),
        ("self_attn.o_proj", &l.o_proj),
        ("mlp.gate_proj", &l.gate_proj),
        ("mlp.up_proj", &l.up_proj),
        ("mlp.down_proj", &l.down_proj),
    ]
}

/// The projections of a decoder layer, mutably.
pub(crate) fn layer_linears_mut<B: Backend>(l: &mut DecoderLayer<B>) -> [(&'static str, &mut Linear<B>); 7] {
    [
        ("self_attn.q_proj", &mut l.q_proj),
        ("self_attn.k_proj", &mut l.k_proj),
        ("self_attn.v_proj", &mut l.v_proj),
        ("self_attn.o_proj", &mut l.o_proj),
        ("mlp.gate_proj", &mut l.gate_proj),
        ("mlp.up_proj", &mut l.up_proj),
        ("mlp.down_proj", &mut l.down_proj),
    ]
}

impl<B: Backend> Llama<B> {
    /// [`Llama::named_parameters`], mutably and in the same order (for optimisers). With tied
    /// embeddings `lm_head` is `embed_tokens` itself and is not listed; whoever replaces
    /// `embed_tokens` must point it at the new tensor ([`Llama::retie_lm_head`]).
    pub fn named_parameters_mut(&mut self) -> Vec<(String, &mut B::Tensor)> {
        let mut out: Vec<(String, &mut B::Tensor)> = vec![("model.embed_tokens.weight".into(), &mut self.embed_tokens)];
        for (i, l) in self.layers.iter_mut().enumerate() {
            let p = format!("model.layers.{i}");
            out.push((format!("{p}.input_layernorm.weight"), &mut l.input_layernorm));
            let post = &mut l.post_attention_layernorm;
            let linears = [
                ("self_attn.q_proj", &mut l.q_proj),
                ("self_attn.k_proj", &mut l.k_proj),
                ("self_attn.v_proj", &mut l.v_proj),
                ("self_attn.o_proj", &mut l.o_proj),
                ("mlp.gate_proj", &mut l.gate_proj),
                ("mlp.up_proj", &mut l.up_proj),
                ("mlp.down_proj", &mut l.down_proj),
            ];
            for (name, lin) in linears {
                out.push((format!("{p}.{name}.weight"), &mut lin.weight));
                if let Some(bias) = &mut lin.bias {
                    out.push((format!("{p}.{name}.bias"), bias));
                }
            }
            out.push((format!("{p}.post_attention_layernorm.weight"), post));
        }
        out.push(("model.norm.weight".into(), &mut self.norm));
        if !self.config.tie_word_embeddings {
            out.push(("lm_head.weight".into(), &mut self.lm_head));
        }
        if let Some(head) = &mut self.value_head {
            out.push((crate::model::VALUE_HEAD_WEIGHT.into(), &mut head.weight));
            if let Some(bias) = &mut head.bias {
                out.push((crate::model::VALUE_HEAD_BIAS.into(), bias));
            }
        }
        if let Some(head) = &mut self.copy_head {
            out.push((crate::copy_head::COPY_QUERY_WEIGHT.into(), &mut head.query.weight));
            out.push((crate::copy_head::COPY_KEY_WEIGHT.into(), &mut head.key.weight));
            out.push((crate::copy_head::COPY_SENTINEL.into(), &mut head.sentinel));
        }
        if let Some(tm) = &mut self.token_match {
            out.push((crate::token_match::MATCH_BIAS.into(), &mut tm.match_bias));
            out.push((crate::token_match::CANON_WEIGHT.into(), &mut tm.canon));
        }
        out
    }

    /// Points a tied `lm_head` at the current `embed_tokens` (no-op when embeddings are not tied).
    pub fn retie_lm_head(&mut self) {
        if self.config.tie_word_embeddings {
            self.lm_head = self.embed_tokens.clone();
        }
    }
}

/// Whether an HF tensor name is a linear weight stored `[out, in]` by PyTorch and `[in, out]` by
/// the model: the projections, the value head and the pointer head's projections (`lm_head.weight` is kept in PyTorch layout by
/// the model).
pub fn is_transposed_weight(name: &str) -> bool {
    name.ends_with("_proj.weight")
        || name == crate::model::VALUE_HEAD_WEIGHT
        || name == crate::copy_head::COPY_QUERY_WEIGHT
        || name == crate::copy_head::COPY_KEY_WEIGHT
}

/// Every parameter of `model` on the host with its HF name and PyTorch layout (`[out, in]`
/// linear weights), as `model.safetensors` stores it. Tied models omit `lm_head.weight`, as
/// transformers does. On a [`Lora`](crate::train::lora::Lora) model adapted weights come out
/// merged (`W + (alpha/r)·B·A`).
pub fn hf_state_dict<B: Backend>(model: &Llama<B>) -> Vec<(String, HostTensor)> {
    let b = &model.backend;
    model
        .named_parameters()
        .into_iter()
        .map(|(name, t)| {
            let shape = b.shape(t);
            let data = b.to_vec(t);
            let host = if is_transposed_weight(&name) {
                let (rows, cols) = (shape[0], shape[1]);
                HostTensor { shape: vec![cols, rows], data: transpose_host(&data, rows, cols) }
            } else {
                HostTensor { shape, data }
            };
            (name, host)
        })
        .collect()
}

/// Named host tensors as a [`TensorSource`].
pub struct MemorySource {
    tensors: BTreeMap<String, HostTensor>,
}

impl MemorySource {
    /// A source over `(HF name, tensor)` pairs in PyTorch layout.
    pub fn new(tensors: impl IntoIterator<Item = (String, HostTensor)>) -> MemorySource {
        MemorySource { tensors: tensors.into_iter().collect() }
    }
}

impl TensorSource for MemorySource {
    fn take(&mut self, name: &str) -> PolicyResult<Option<HostTensor>> {
        Ok(self.tensors.remove(name))
    }
    fn file_of(&self, _name: &str) -> PathBuf {
        PathBuf::from("<in-memory tensors>")
    }
}

/// Builds a model on `backend` from host tensors in HF names and layout (e.g. from
/// [`hf_state_dict`] of a trained model, to hand merged weights to an inference engine).
pub fn llama_from_hf_tensors<B: Backend>(backend: B, config: LlamaConfig, tensors: Vec<(String, HostTensor)>) -> PolicyResult<Llama<B>> {
    build_llama(backend, config, &mut MemorySource::new(tensors))
}

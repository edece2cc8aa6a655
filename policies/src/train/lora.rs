//! LoRA adapters (PEFT's `LoraLayer` semantics) as a backend wrapper.
//!
//! [`Lora<B>`] is a [`Backend`] that forwards every operation to `B`, except that a linear
//! weight may be a [`LoraTensor::Adapted`] weight: a frozen base `W` plus trainable `A`, `B`.
//! Then `linear(x, w)` computes `x·W + (alpha/r)·dropout(x)·Aᵀ·Bᵀ` exactly as PEFT does, so the
//! decoder in [`crate::model`] runs unchanged as `Llama<Lora<B>>`. Base weights (and norms and
//! embeddings) become constants, so no gradient reaches them; only the adapters are trainable
//! leaves ([`TrainBackend`]).
//!
//! Why a wrapper rather than merging `W + s·B·A` into one weight each step: dropout applies to
//! the adapter's input, which a merged weight cannot express, and the low-rank path costs
//! `tokens·r·(in + out)` instead of an `in × out` temporary per module per step.
//!
//! Layout: adapters are stored as the model stores weights, pre-transposed: `a = Aᵀ` is
//! `[in, r]` and `b = Bᵀ` is `[r, out]` (PEFT's `lora_A.weight` is `[r, in]`, `lora_B.weight` is
//! `[out, r]`); checkpoints convert. Initialisation follows PEFT's default: `A` uniform in
//! `±1/sqrt(in)` (kaiming-uniform with `a = sqrt(5)`), `B = 0`, so the adapted model starts
//! equal to the base model and, at the first step, only `B` receives a non-zero gradient.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backend::{AttentionMask, Backend};
use crate::model::{DecoderLayer, Linear, Llama};
use crate::train::error::{Result, TrainError};
use crate::train::params::{ExportedWeights, TrainBackend, hf_state_dict, layer_linears, layer_linears_mut};

/// Module names LoRA can target (HF names of the decoder's projections).
pub const LORA_TARGETS: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/// LoRA hyper-parameters (PEFT's `LoraConfig` fields of the same names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank `r` of the update.
    pub rank: usize,
    /// Scale numerator: the update is multiplied by `alpha / rank`.
    pub alpha: f64,
    /// Dropout probability on the adapter's input during training (0 disables it).
    pub dropout: f64,
    /// Which projections get adapters, by module name (see [`LORA_TARGETS`]).
    pub target_modules: Vec<String>,
    /// Seed of the adapter initialisation and of the dropout masks.
    pub seed: u64,
}

impl Default for LoraConfig {
    /// Rank 8, alpha 16, no dropout, every projection, seed 0.
    fn default() -> Self {
        LoraConfig { rank: 8, alpha: 16.0, dropout: 0.0, target_modules: LORA_TARGETS.iter().map(|s| s.to_string()).collect(), seed: 0 }
    }
}

impl LoraConfig {
    /// `alpha / rank`.
    pub fn scale(&self) -> f32 {
        (self.alpha / self.rank as f64) as f32
    }

    /// Checks rank > 0, finite alpha, dropout in `[0, 1)`, and known, non-empty targets.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::config("LoRA", m));
        if self.rank == 0 {
            return bad("rank must be positive".into());
        }
        if !self.alpha.is_finite() {
            return bad(format!("alpha must be finite, got {}", self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if self.target_modules.is_empty() {
            return bad("target_modules is empty".into());
        }
        for t in &self.target_modules {
            if !LORA_TARGETS.contains(&t.as_str()) {
                return bad(format!("unknown target module `{t}`; expected some of {LORA_TARGETS:?}"));
            }
        }
        Ok(())
    }

    fn targets(&self, module: &str) -> bool {
        // `module` is e.g. `self_attn.q_proj`.
        let short = module.rsplit('.').next().unwrap_or(module);
        self.target_modules.iter().any(|t| t == short)
    }
}

/// A frozen base weight with its trainable low-rank adapter.
#[derive(Clone, Debug)]
pub struct AdaptedWeight<T> {
    /// The frozen base weight, `[in, out]`.
    pub base: T,
    /// `Aᵀ`, `[in, r]` (trainable).
    pub a: T,
    /// `Bᵀ`, `[r, out]` (trainable).
    pub b: T,
    /// `alpha / r`.
    pub scale: f32,
}

/// A tensor of the [`Lora`] backend: a plain tensor of the wrapped backend, or an adapted weight.
#[derive(Clone, Debug)]
pub enum LoraTensor<T> {
    /// Any tensor of the wrapped backend.
    Plain(T),
    /// A linear weight with an adapter (only meaningful as `linear`'s weight; any other use sees
    /// the merged weight `base + scale·a·b`).
    Adapted(Box<AdaptedWeight<T>>),
}

/// The LoRA backend wrapper (see the module docs). Clones share the dropout stream and the
/// training switch.
#[derive(Clone, Debug)]
pub struct Lora<B: Backend> {
    inner: B,
    config: Arc<LoraConfig>,
    dropout: f32,
    rng: Arc<Mutex<ChaCha8Rng>>,
    training: Arc<AtomicBool>,
}

impl<B: Backend> Lora<B> {
    /// Wraps `inner`; dropout masks are drawn from a ChaCha8 stream seeded with `config.seed`.
    pub fn new(inner: B, config: &LoraConfig) -> Lora<B> {
        // A stream separate from the initialisation's (same seed, different stream).
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(1);
        Lora {
            inner,
            config: Arc::new(config.clone()),
            dropout: config.dropout as f32,
            rng: Arc::new(Mutex::new(rng)),
            training: Arc::new(AtomicBool::new(true)),
        }
    }

    /// The adapter configuration.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Turns adapter dropout on (training, the default) or off (evaluation, reference log-probs).
    pub fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::SeqCst);
    }

    /// Whether dropout is applied.
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::SeqCst)
    }

    /// Restarts the dropout stream at `seed` (the stream [`Lora::new`] starts at `config.seed`):
    /// a trainer that reseeds before each update with a function of its step draws the same masks
    /// whether or not it was resumed in between. Clones share the stream.
    pub fn reseed_dropout(&self, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) = rng;
    }

    /// The wrapped tensor, merging an adapted weight.
    fn plain(&self, t: LoraTensor<B::Tensor>) -> B::Tensor {
        match t {
            LoraTensor::Plain(t) => t,
            LoraTensor::Adapted(w) => self.merged(&w),
        }
    }

    fn plain_ref(&self, t: &LoraTensor<B::Tensor>) -> B::Tensor {
        match t {
            LoraTensor::Plain(t) => t.clone(),
            LoraTensor::Adapted(w) => self.merged(w),
        }
    }

    /// `base + scale · a · b` (differentiable in `a` and `b`).
    fn merged(&self, w: &AdaptedWeight<B::Tensor>) -> B::Tensor {
        let b = &self.inner;
        let delta = b.matmul(w.a.clone(), w.b.clone());
        b.add(w.base.clone(), b.mul_scalar(delta, w.scale))
    }

    /// An inverted-dropout mask shaped like `x` (values 0 or `1/(1-p)`), from the shared stream.
    fn dropout_mask(&self, shape: &[usize]) -> B::Tensor {
        let n: usize = shape.iter().product();
        let keep = 1.0 - self.dropout;
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mask: Vec<f32> = (0..n).map(|_| if rng.random::<f32>() < keep { 1.0 / keep } else { 0.0 }).collect();
        self.inner.tensor(mask, shape)
    }
}

fn p<T>(t: T) -> LoraTensor<T> {
    LoraTensor::Plain(t)
}

impl<B: Backend> Backend for Lora<B> {
    type Tensor = LoraTensor<B::Tensor>;
    type Grads = B::Grads;
    type KvCache = B::KvCache;

    fn name(&self) -> String {
        format!("{}+lora", self.inner.name())
    }
    fn is_autodiff(&self) -> bool {
        self.inner.is_autodiff()
    }
    fn tensor(&self, data: Vec<f32>, shape: &[usize]) -> Self::Tensor {
        p(self.inner.tensor(data, shape))
    }
    fn param(&self, data: Vec<f32>, shape: &[usize]) -> Self::Tensor {
        p(self.inner.param(data, shape))
    }
    fn to_vec(&self, t: &Self::Tensor) -> Vec<f32> {
        match t {
            LoraTensor::Plain(t) => self.inner.to_vec(t),
            LoraTensor::Adapted(w) => self.inner.to_vec(&self.merged(w)),
        }
    }
    fn shape(&self, t: &Self::Tensor) -> Vec<usize> {
        match t {
            LoraTensor::Plain(t) => self.inner.shape(t),
            LoraTensor::Adapted(w) => self.inner.shape(&w.base),
        }
    }
    fn reshape(&self, t: Self::Tensor, shape: &[usize]) -> Self::Tensor {
        p(self.inner.reshape(self.plain(t), shape))
    }
    fn transpose(&self, t: Self::Tensor, a: usize, b: usize) -> Self::Tensor {
        p(self.inner.transpose(self.plain(t), a, b))
    }
    fn narrow(&self, t: Self::Tensor, dim: usize, start: usize, len: usize) -> Self::Tensor {
        p(self.inner.narrow(self.plain(t), dim, start, len))
    }
    fn cat(&self, ts: Vec<Self::Tensor>, dim: usize) -> Self::Tensor {
        p(self.inner.cat(ts.into_iter().map(|t| self.plain(t)).collect(), dim))
    }
    fn add(&self, a: Self::Tensor, b: Self::Tensor) -> Self::Tensor {
        p(self.inner.add(self.plain(a), self.plain(b)))
    }
    fn sub(&self, a: Self::Tensor, b: Self::Tensor) -> Self::Tensor {
        p(self.inner.sub(self.plain(a), self.plain(b)))
    }
    fn mul(&self, a: Self::Tensor, b: Self::Tensor) -> Self::Tensor {
        p(self.inner.mul(self.plain(a), self.plain(b)))
    }
    fn div(&self, a: Self::Tensor, b: Self::Tensor) -> Self::Tensor {
        p(self.inner.div(self.plain(a), self.plain(b)))
    }
    fn minimum(&self, a: Self::Tensor, b: Self::Tensor) -> Self::Tensor {
        p(self.inner.minimum(self.plain(a), self.plain(b)))
    }
    fn mul_scalar(&self, t: Self::Tensor, s: f32) -> Self::Tensor {
        p(self.inner.mul_scalar(self.plain(t), s))
    }
    fn add_scalar(&self, t: Self::Tensor, s: f32) -> Self::Tensor {
        p(self.inner.add_scalar(self.plain(t), s))
    }
    fn exp(&self, t: Self::Tensor) -> Self::Tensor {
        p(self.inner.exp(self.plain(t)))
    }
    fn log(&self, t: Self::Tensor) -> Self::Tensor {
        p(self.inner.log(self.plain(t)))
    }
    fn sqrt(&self, t: Self::Tensor) -> Self::Tensor {
        p(self.inner.sqrt(self.plain(t)))
    }
    fn clamp(&self, t: Self::Tensor, min: f32, max: f32) -> Self::Tensor {
        p(self.inner.clamp(self.plain(t), min, max))
    }
    fn silu(&self, t: Self::Tensor) -> Self::Tensor {
        p(self.inner.silu(self.plain(t)))
    }
    fn sum_dim(&self, t: Self::Tensor, dim: usize) -> Self::Tensor {
        p(self.inner.sum_dim(self.plain(t), dim))
    }
    fn mean_dim(&self, t: Self::Tensor, dim: usize) -> Self::Tensor {
        p(self.inner.mean_dim(self.plain(t), dim))
    }
    fn max_dim(&self, t: Self::Tensor, dim: usize) -> Self::Tensor {
        p(self.inner.max_dim(self.plain(t), dim))
    }
    fn sum_all(&self, t: Self::Tensor) -> Self::Tensor {
        p(self.inner.sum_all(self.plain(t)))
    }
    fn matmul(&self, a: Self::Tensor, b: Self::Tensor) -> Self::Tensor {
        p(self.inner.matmul(self.plain(a), self.plain(b)))
    }

    fn linear(&self, x: Self::Tensor, w: &Self::Tensor, bias: Option<&Self::Tensor>) -> Self::Tensor {
        let b = &self.inner;
        let x = self.plain(x);
        let bias = bias.map(|t| self.plain_ref(t));
        match w {
            LoraTensor::Plain(w) => p(b.linear(x, w, bias.as_ref())),
            LoraTensor::Adapted(ad) => {
                // PEFT: result = base_layer(x) + lora_B(lora_A(dropout(x))) * scaling
                let base = b.linear(x.clone(), &ad.base, bias.as_ref());
                let x_in = if self.dropout > 0.0 && self.is_training() {
                    let mask = self.dropout_mask(&b.shape(&x));
                    b.mul(x, mask)
                } else {
                    x
                };
                let low = b.linear(b.linear(x_in, &ad.a, None), &ad.b, None);
                p(b.add(base, b.mul_scalar(low, ad.scale)))
            }
        }
    }

    fn embedding(&self, weight: &Self::Tensor, ids: &[u32], batch: usize, seq: usize) -> Self::Tensor {
        p(self.inner.embedding(&self.plain_ref(weight), ids, batch, seq))
    }
    fn softmax(&self, t: Self::Tensor, dim: usize) -> Self::Tensor {
        p(self.inner.softmax(self.plain(t), dim))
    }
    fn log_softmax(&self, t: Self::Tensor, dim: usize) -> Self::Tensor {
        p(self.inner.log_softmax(self.plain(t), dim))
    }
    fn gather_last(&self, t: Self::Tensor, ids: &[u32]) -> Self::Tensor {
        p(self.inner.gather_last(self.plain(t), ids))
    }
    fn rms_norm(&self, x: Self::Tensor, weight: &Self::Tensor, eps: f32) -> Self::Tensor {
        p(self.inner.rms_norm(self.plain(x), &self.plain_ref(weight), eps))
    }
    fn rope(&self, x: Self::Tensor, cos: &Self::Tensor, sin: &Self::Tensor) -> Self::Tensor {
        p(self.inner.rope(self.plain(x), &self.plain_ref(cos), &self.plain_ref(sin)))
    }
    fn attention(&self, q: Self::Tensor, k: Self::Tensor, v: Self::Tensor, mask: &AttentionMask) -> Self::Tensor {
        p(self.inner.attention(self.plain(q), self.plain(k), self.plain(v), mask))
    }
    fn kv_cache(&self, layers: usize, slots: usize, kv_heads: usize, capacity: usize, head_dim: usize) -> Self::KvCache {
        self.inner.kv_cache(layers, slots, kv_heads, capacity, head_dim)
    }
    fn kv_write(&self, cache: &mut Self::KvCache, layer: usize, slots: &[usize], positions: &[usize], k: Self::Tensor, v: Self::Tensor) {
        self.inner.kv_write(cache, layer, slots, positions, self.plain(k), self.plain(v))
    }
    fn kv_read(&self, cache: &Self::KvCache, layer: usize, first: usize, n: usize, len: usize) -> (Self::Tensor, Self::Tensor) {
        let (k, v) = self.inner.kv_read(cache, layer, first, n, len);
        (p(k), p(v))
    }
    fn kv_move(&self, cache: &mut Self::KvCache, from: usize, to: usize, len: usize) {
        self.inner.kv_move(cache, from, to, len)
    }
    fn backward(&self, loss: &Self::Tensor) -> Self::Grads {
        self.inner.backward(&self.plain_ref(loss))
    }
    fn grad(&self, grads: &Self::Grads, param: &Self::Tensor) -> Option<Self::Tensor> {
        match param {
            LoraTensor::Plain(t) => self.inner.grad(grads, t).map(p),
            // An adapted weight is not a leaf; its adapters' gradients are read through the
            // leaf backend (`TrainBackend::trainable_leaves`).
            LoraTensor::Adapted(_) => None,
        }
    }
    fn detach(&self, t: Self::Tensor) -> Self::Tensor {
        p(self.inner.detach(self.plain(t)))
    }
    fn adamw_update(
        &self,
        param: Self::Tensor,
        grad: Self::Tensor,
        exp_avg: Option<Self::Tensor>,
        exp_avg_sq: Option<Self::Tensor>,
        scalars: &crate::train::optim::AdamWScalars,
    ) -> (Self::Tensor, Self::Tensor, Self::Tensor) {
        let (a, m, v) =
            self.inner.adamw_update(self.plain(param), self.plain(grad), exp_avg.map(|t| self.plain(t)), exp_avg_sq.map(|t| self.plain(t)), scalars);
        (p(a), p(m), p(v))
    }
}

/// PEFT's name of an adapter matrix: `{module}.lora_A.weight` / `{module}.lora_B.weight`.
fn adapter_names(module: &str) -> (String, String) {
    (format!("{module}.lora_A.weight"), format!("{module}.lora_B.weight"))
}

impl<B: Backend> TrainBackend for Lora<B> {
    type Leaf = B;
    fn leaf_backend(&self) -> &B {
        &self.inner
    }
    fn leaf_grad(&self, grads: &B::Grads, leaf: &B::Tensor) -> Option<B::Tensor> {
        self.inner.grad(grads, leaf)
    }
    fn trainable_leaves(model: &Llama<Self>) -> Vec<(String, &B::Tensor)> {
        let mut out = Vec::new();
        for (i, layer) in model.layers.iter().enumerate() {
            for (name, lin) in layer_linears(layer) {
                if let LoraTensor::Adapted(w) = &lin.weight {
                    let (a, b) = adapter_names(&format!("model.layers.{i}.{name}"));
                    out.push((a, &w.a));
                    out.push((b, &w.b));
                }
            }
        }
        out
    }
    fn trainable_leaves_mut(model: &mut Llama<Self>) -> Vec<(String, &mut B::Tensor)> {
        let mut out = Vec::new();
        for (i, layer) in model.layers.iter_mut().enumerate() {
            for (name, lin) in layer_linears_mut(layer) {
                if let LoraTensor::Adapted(w) = &mut lin.weight {
                    let (a, b) = adapter_names(&format!("model.layers.{i}.{name}"));
                    let w = &mut **w;
                    out.push((a, &mut w.a));
                    out.push((b, &mut w.b));
                }
            }
        }
        out
    }
    fn export_weights(model: &Llama<Self>, merge_adapters: bool) -> ExportedWeights {
        if merge_adapters {
            ExportedWeights { model: hf_state_dict(model), adapter: None }
        } else {
            let config = model.backend.config().clone();
            ExportedWeights { model: base_state_dict(model), adapter: Some((config, adapter_state_dict(model))) }
        }
    }
}

/// Turns `model` into a LoRA model: every parameter becomes a frozen constant (one host copy of
/// each, once), and each targeted projection gets an adapter initialised from `config.seed`
/// (`A` kaiming-uniform, `B` zero). The wrapped backend must be the model's.
pub fn apply_lora<B: Backend>(model: Llama<B>, config: &LoraConfig) -> Result<Llama<Lora<B>>> {
    config.validate()?;
    let inner = model.backend.clone();
    let lora = Lora::new(inner.clone(), config);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let freeze = |t: B::Tensor| -> LoraTensor<B::Tensor> {
        let shape = inner.shape(&t);
        p(inner.tensor(inner.to_vec(&t), &shape))
    };
    let (r, scale) = (config.rank, config.scale());
    let Llama { config: model_config, embed_tokens, layers, norm, lm_head, .. } = model;
    let mut new_layers = Vec::with_capacity(layers.len());
    for layer in layers {
        let mut adapt = |module: &str, lin: Linear<B>| -> Linear<Lora<B>> {
            let bias = lin.bias.map(freeze);
            if !config.targets(module) {
                return Linear { weight: freeze(lin.weight), bias };
            }
            let shape = inner.shape(&lin.weight);
            let (fan_in, fan_out) = (shape[0], shape[1]);
            let bound = 1.0 / (fan_in as f32).sqrt();
            // Drawn in PEFT's [r, in] order, stored transposed as [in, r].
            let a_rows: Vec<f32> = (0..r * fan_in).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * bound).collect();
            let a = crate::weights::transpose_host(&a_rows, r, fan_in);
            let base = inner.tensor(inner.to_vec(&lin.weight), &shape);
            drop(lin.weight);
            let weight = LoraTensor::Adapted(Box::new(AdaptedWeight {
                base,
                a: inner.param(a, &[fan_in, r]),
                b: inner.param(vec![0.0; r * fan_out], &[r, fan_out]),
                scale,
            }));
            Linear { weight, bias }
        };
        let DecoderLayer { input_layernorm, q_proj, k_proj, v_proj, o_proj, post_attention_layernorm, gate_proj, up_proj, down_proj } = layer;
        new_layers.push(DecoderLayer {
            input_layernorm: freeze(input_layernorm),
            q_proj: adapt("self_attn.q_proj", q_proj),
            k_proj: adapt("self_attn.k_proj", k_proj),
            v_proj: adapt("self_attn.v_proj", v_proj),
            o_proj: adapt("self_attn.o_proj", o_proj),
            post_attention_layernorm: freeze(post_attention_layernorm),
            gate_proj: adapt("mlp.gate_proj", gate_proj),
            up_proj: adapt("mlp.up_proj", up_proj),
            down_proj: adapt("mlp.down_proj", down_proj),
        });
    }
    let embed = freeze(embed_tokens);
    let norm = freeze(norm);
    let tied = model_config.tie_word_embeddings;
    let lm_head = if tied { embed.clone() } else { freeze(lm_head) };
    Ok(Llama::new(lora, model_config, embed, new_layers, norm, lm_head))
}

/// PEFT's key prefix for adapter tensors of a causal LM (`PeftModelForCausalLM`).
pub const PEFT_PREFIX: &str = "base_model.model.";

/// The adapters of `model` on the host in PEFT layout and names, as `adapter_model.safetensors`
/// stores them: `base_model.model.model.layers.{i}.{module}.lora_A.weight` (`[r, in]`) and
/// `...lora_B.weight` (`[out, r]`).
pub fn adapter_state_dict<B: Backend>(model: &Llama<Lora<B>>) -> Vec<(String, crate::weights::HostTensor)> {
    let inner = model.backend.inner();
    Lora::<B>::trainable_leaves(model)
        .into_iter()
        .map(|(name, t)| {
            let shape = inner.shape(t);
            let data = crate::weights::transpose_host(&inner.to_vec(t), shape[0], shape[1]);
            (format!("{PEFT_PREFIX}{name}"), crate::weights::HostTensor { shape: vec![shape[1], shape[0]], data })
        })
        .collect()
}

/// The frozen base weights of `model` (adapters not merged) in HF names and layout.
pub fn base_state_dict<B: Backend>(model: &Llama<Lora<B>>) -> Vec<(String, crate::weights::HostTensor)> {
    let inner = model.backend.inner();
    crate::train::params::hf_state_dict(model)
        .into_iter()
        .map(|(name, merged)| {
            // Re-read adapted weights' bases; everything else is already the frozen value.
            let base = find_adapted(model, &name).map(|w| {
                let shape = inner.shape(&w.base);
                let data = crate::weights::transpose_host(&inner.to_vec(&w.base), shape[0], shape[1]);
                crate::weights::HostTensor { shape: vec![shape[1], shape[0]], data }
            });
            (name, base.unwrap_or(merged))
        })
        .collect()
}

/// The adapted weight called `name` (`model.layers.{i}.{module}.weight`), if any.
fn find_adapted<'a, B: Backend>(model: &'a Llama<Lora<B>>, name: &str) -> Option<&'a AdaptedWeight<B::Tensor>> {
    let rest = name.strip_prefix("model.layers.")?;
    let (index, module) = rest.split_once('.')?;
    let layer = model.layers.get(index.parse::<usize>().ok()?)?;
    let module = module.strip_suffix(".weight")?;
    layer_linears(layer).into_iter().find(|(n, _)| *n == module).and_then(|(_, lin)| match &lin.weight {
        LoraTensor::Adapted(w) => Some(&**w),
        LoraTensor::Plain(_) => None,
    })
}

/// Replaces the adapters of `model` with host values in PEFT layout and names (as
/// [`adapter_state_dict`] produces). Every adapter of the model must be present with its shape.
pub fn load_adapters<B: Backend>(model: &mut Llama<Lora<B>>, tensors: Vec<(String, crate::weights::HostTensor)>, origin: &std::path::Path) -> Result<()> {
    let mut by_name: std::collections::BTreeMap<String, crate::weights::HostTensor> = tensors.into_iter().collect();
    let inner = model.backend.inner().clone();
    for (name, leaf) in Lora::<B>::trainable_leaves_mut(model) {
        let key = format!("{PEFT_PREFIX}{name}");
        let shape = inner.shape(leaf);
        let want = vec![shape[1], shape[0]];
        let t = by_name.remove(&key).ok_or_else(|| TrainError::checkpoint(origin, format!("adapter tensor `{key}` is missing (expected shape {want:?})")))?;
        if t.shape != want || t.data.len() != want.iter().product::<usize>() {
            return Err(TrainError::checkpoint(origin, format!("adapter tensor `{key}` has shape {:?}, expected {want:?}", t.shape)));
        }
        *leaf = inner.param(crate::weights::transpose_host(&t.data, want[0], want[1]), &shape);
    }
    if let Some(extra) = by_name.keys().next() {
        return Err(TrainError::checkpoint(origin, format!("adapter tensor `{extra}` matches no adapter of this model (check rank and target_modules)")));
    }
    Ok(())
}

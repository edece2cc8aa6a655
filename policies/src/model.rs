//! The Llama-family decoder, written once over the [`Backend`] seam.
//!
//! Reads against transformers' `models/llama/modeling_llama.py`:
//! `LlamaRMSNorm` → [`Backend::rms_norm`], `LlamaRotaryEmbedding` → [`rope_tables`],
//! `apply_rotary_pos_emb` → [`Backend::rope`], `LlamaMLP` → [`Llama::mlp`],
//! `repeat_kv` + `eager_attention_forward` → [`Backend::attention`] (grouped heads),
//! `LlamaAttention` → [`Llama::self_attention`], `LlamaDecoderLayer` → [`Llama::decoder_layer`],
//! `LlamaModel.forward` → [`Llama::forward`] / [`Llama::forward_cached`],
//! `LlamaForCausalLM.lm_head` → [`Llama::lm_head`]. Qwen2 differs only by the q/k/v bias.
//!
//! Linear weights are stored pre-transposed (`[in, out]`) so `x @ w` needs no transpose per call.

use crate::backend::{AttentionMask, Backend};
use crate::config::LlamaConfig;
use crate::copy_head::{COPY_KEY_WEIGHT, COPY_QUERY_WEIGHT, COPY_SENTINEL, CopyHead};
use crate::token_match::{CANON_WEIGHT, MATCH_BIAS, MatchContext, TokenMatch};

/// A linear projection `y = x @ w + b` with `w` stored as `[in, out]`.
#[derive(Clone, Debug)]
pub struct Linear<B: Backend> {
    /// Weight, `[in, out]` (the transpose of PyTorch's `[out, in]`).
    pub weight: B::Tensor,
    /// Optional bias, `[out]`.
    pub bias: Option<B::Tensor>,
}

/// One decoder layer's parameters (HF names in comments).
#[derive(Clone, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// `input_layernorm.weight`, `[hidden]`.
    pub input_layernorm: B::Tensor,
    /// `self_attn.q_proj`.
    pub q_proj: Linear<B>,
    /// `self_attn.k_proj`.
    pub k_proj: Linear<B>,
    /// `self_attn.v_proj`.
    pub v_proj: Linear<B>,
    /// `self_attn.o_proj`.
    pub o_proj: Linear<B>,
    /// `post_attention_layernorm.weight`, `[hidden]`.
    pub post_attention_layernorm: B::Tensor,
    /// `mlp.gate_proj`.
    pub gate_proj: Linear<B>,
    /// `mlp.up_proj`.
    pub up_proj: Linear<B>,
    /// `mlp.down_proj`.
    pub down_proj: Linear<B>,
}

/// The decoder: configuration, parameters, and the backend they live on.
#[derive(Clone, Debug)]
pub struct Llama<B: Backend> {
    /// The backend (device) the parameters live on.
    pub backend: B,
    /// Shape hyper-parameters.
    pub config: LlamaConfig,
    /// `model.embed_tokens.weight`, `[vocab, hidden]`.
    pub embed_tokens: B::Tensor,
    /// `model.layers.*`.
    pub layers: Vec<DecoderLayer<B>>,
    /// `model.norm.weight`, `[hidden]`.
    pub norm: B::Tensor,
    /// `lm_head.weight`, `[vocab, hidden]` (PyTorch layout, not transposed: logits are computed
    /// as `(W @ h^T)^T`, which measured 2× faster than `h @ W^T` at decode batch 8 on burn-flex);
    /// for tied embeddings this is `embed_tokens` itself (the same parameter).
    pub lm_head: B::Tensor,
    /// `value_head`: PPO's value head, a linear map from the final-normed hidden state to one
    /// number (`weight` `[hidden, 1]`, `bias` `[1]`), present only on models trained with a learned
    /// critic ([`Llama::attach_value_head`]). It shares the trunk and does not touch the logits.
    pub value_head: Option<Linear<B>>,
    /// The pointer head of `…-copy` tiny presets ([`crate::copy_head`]; present exactly when
    /// `config.copy_head`): the next-token distribution is then [`Llama::logits`], not `lm_head` alone.
    pub copy_head: Option<CopyHead<B>>,
    /// The first layer's match bias and canon convolution of `…-match` tiny presets
    /// ([`crate::token_match`]; present exactly when `config.token_match`).
    pub token_match: Option<TokenMatch<B>>,
    /// RoPE inverse frequencies after `rope_scaling`.
    inv_freq: Vec<f32>,
}

/// Cosine and sine tables `[B, 1, S, D]` for RoPE at the given absolute positions
/// (`positions[b] + s`), as `LlamaRotaryEmbedding.forward`: `emb = cat(freqs, freqs)`.
pub fn rope_tables(inv_freq: &[f32], starts: &[usize], seq: usize) -> (Vec<f32>, Vec<f32>) {
    let half = inv_freq.len();
    let d = 2 * half;
    let mut cos = Vec::with_capacity(starts.len() * seq * d);
    let mut sin = Vec::with_capacity(starts.len() * seq * d);
    for &start in starts {
        for s in 0..seq {
            let p = (start + s) as f32;
            for _half in 0..2 {
                for &f in inv_freq {
                    let angle = p * f;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
    }
    (cos, sin)
}

/// Where attention gets its keys and values.
enum KvSource<'a, B: Backend> {
    /// From this call's own projections (full-sequence forward, no cache).
    Direct,
    /// Written into and read back from a cache.
    Cache {
        cache: &'a mut B::KvCache,
        /// First slot of the batch (rows are slots `first .. first + batch`).
        first: usize,
        /// Cached length of each row before this call.
        starts: &'a [usize],
        /// Keys to read back: `max(starts) + seq`.
        read_len: usize,
    },
}

impl<B: Backend> Llama<B> {
    /// Assembles a model from parameters already on `backend` (see `crate::weights` for loading).
    pub fn new(backend: B, config: LlamaConfig, embed_tokens: B::Tensor, layers: Vec<DecoderLayer<B>>, norm: B::Tensor, lm_head: B::Tensor) -> Llama<B> {
        let inv_freq = config.rope_inv_freq();
        Llama { backend, config, embed_tokens, layers, norm, lm_head, value_head: None, copy_head: None, token_match: None, inv_freq }
    }

    /// Gives the model a value head with the given host values (`weight` of length `hidden`,
    /// one `bias`), replacing any it had.
    pub fn attach_value_head(&mut self, weight: Vec<f32>, bias: f32) {
        let d = self.config.hidden_size;
        assert_eq!(weight.len(), d, "attach_value_head: one weight per hidden unit");
        let b = &self.backend;
        self.value_head = Some(Linear { weight: b.param(weight, &[d, 1]), bias: Some(b.param(vec![bias], &[1])) });
    }

    /// The value head's output `[rows]` for final-normed hidden states `[.., hidden]` (all
    /// leading axes flattened, row-major). Panics on a model without a value head.
    pub fn values(&self, hidden: B::Tensor) -> B::Tensor {
        let b = &self.backend;
        let head = self.value_head.as_ref().expect("values: the model has no value head");
        let shape = b.shape(&hidden);
        let d = shape[shape.len() - 1];
        let rows: usize = shape[..shape.len() - 1].iter().product();
        b.reshape(linear(b, b.reshape(hidden, &[rows, d]), head), &[rows])
    }

    /// `LlamaMLP.forward`: `down_proj(silu(gate_proj(x)) * up_proj(x))`.
    fn mlp(&self, layer: &DecoderLayer<B>, x: B::Tensor) -> B::Tensor {
        let b = &self.backend;
        let gate = b.silu(linear(b, x.clone(), &layer.gate_proj));
        let up = linear(b, x, &layer.up_proj);
        linear(b, b.mul(gate, up), &layer.down_proj)
    }

    /// `LlamaAttention.forward` for `x` of shape `[B, S, hidden]`.
    fn self_attention(
        &self,
        layer_index: usize,
        layer: &DecoderLayer<B>,
        x: B::Tensor,
        cos: &B::Tensor,
        sin: &B::Tensor,
        mask: &AttentionMask,
        kv: &mut KvSource<'_, B>,
        bias: Option<B::Tensor>,
    ) -> B::Tensor {
        let b = &self.backend;
        let c = &self.config;
        let shape = b.shape(&x);
        let (batch, seq) = (shape[0], shape[1]);
        let (h, hkv, d) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        // view(hidden_shape).transpose(1, 2): [B, S, H*D] -> [B, H, S, D]
        let split = |t: B::Tensor, heads: usize| b.transpose(b.reshape(t, &[batch, seq, heads, d]), 1, 2);
        let q = split(linear(b, x.clone(), &layer.q_proj), h);
        let k = split(linear(b, x.clone(), &layer.k_proj), hkv);
        let v = split(linear(b, x, &layer.v_proj), hkv);
        // apply_rotary_pos_emb
        let q = b.rope(q, cos, sin);
        let k = b.rope(k, cos, sin);
        // past_key_values.update(...)
        let (k, v) = match kv {
            KvSource::Direct => (k, v),
            KvSource::Cache { cache, first, starts, read_len } => {
                let slots: Vec<usize> = (*first..*first + batch).collect();
                b.kv_write(cache, layer_index, &slots, starts, k, v);
                b.kv_read(cache, layer_index, *first, batch, *read_len)
            }
        };
        // eager_attention_forward (softmax(q k^T / sqrt(d) + mask) v), then reshape + o_proj
        let attn = match bias {
            Some(bias) => b.attention_biased(q, k, v, mask, bias),
            None => b.attention(q, k, v, mask),
        };
        let attn = b.reshape(b.transpose(attn, 1, 2), &[batch, seq, h * d]);
        linear(b, attn, &layer.o_proj)
    }

    /// `LlamaDecoderLayer.forward`: pre-norm attention and MLP, each with a residual. With
    /// token matching, the first layer's normed input goes through the canon convolution and
    /// its attention scores get the match bias ([`crate::token_match`]).
    #[allow(clippy::too_many_arguments)]
    fn decoder_layer(
        &self,
        index: usize,
        x: B::Tensor,
        cos: &B::Tensor,
        sin: &B::Tensor,
        mask: &AttentionMask,
        kv: &mut KvSource<'_, B>,
        matching: Option<&MatchContext<B>>,
    ) -> B::Tensor {
        let b = &self.backend;
        let layer = &self.layers[index];
        let eps = self.config.rms_norm_eps as f32;
        let residual = x.clone();
        let mut h = b.rms_norm(x, &layer.input_layernorm, eps);
        let mut bias = None;
        if let (0, Some(tm), Some(ctx)) = (index, &self.token_match, matching) {
            let batch = b.shape(&h)[0];
            let back = tm.kernel(b) - 1;
            let previous = b.rms_norm(b.embedding(&self.embed_tokens, &ctx.previous_ids, batch, back), &layer.input_layernorm, eps);
            let previous = b.mul(previous, b.tensor(ctx.previous_present.clone(), &[batch, back, 1]));
            h = tm.convolve(b, h, previous);
            bias = Some(tm.bias(b, ctx));
        }
        let h = self.self_attention(index, layer, h, cos, sin, mask, kv, bias);
        let x = b.add(residual, h);
        let residual = x.clone();
        let h = b.rms_norm(x, &layer.post_attention_layernorm, eps);
        let h = self.mlp(layer, h);
        b.add(residual, h)
    }

    /// `LlamaModel.forward` shared by both entry points; returns final-normed hidden states.
    /// `history[r]` holds the ids already cached for row `r` (read only with token matching).
    #[allow(clippy::too_many_arguments)]
    fn run(&self, ids: &[u32], batch: usize, seq: usize, starts: &[usize], mask: &AttentionMask, mut kv: KvSource<'_, B>, history: &[&[u32]]) -> B::Tensor {
        let b = &self.backend;
        let d = self.config.head_dim;
        let (cos, sin) = rope_tables(&self.inv_freq, starts, seq);
        let cos = b.tensor(cos, &[batch, 1, seq, d]);
        let sin = b.tensor(sin, &[batch, 1, seq, d]);
        let matching = self.token_match.as_ref().map(|tm| {
            assert_eq!(history.len(), batch, "token matching needs one history per row");
            for (h, &start) in history.iter().zip(starts) {
                assert_eq!(h.len(), start, "token matching needs every cached id of each row");
            }
            tm.context(b, ids, batch, seq, history)
        });
        let mut x = b.embedding(&self.embed_tokens, ids, batch, seq);
        for i in 0..self.layers.len() {
            x = self.decoder_layer(i, x, &cos, &sin, mask, &mut kv, matching.as_ref());
        }
        b.rms_norm(x, &self.norm, self.config.rms_norm_eps as f32)
    }

    /// Full-sequence forward of a right-padded batch without a cache (training, scoring).
    /// `ids` is `[batch, seq]` row-major; row `r` holds `lengths[r]` real tokens followed by
    /// padding (any id). Returns final-normed hidden states `[batch, seq, hidden]`; positions
    /// past a row's length are garbage and must be masked by the caller.
    pub fn forward(&self, ids: &[u32], batch: usize, seq: usize, lengths: &[usize]) -> B::Tensor {
        assert_eq!(ids.len(), batch * seq, "forward: ids must be batch × seq");
        assert_eq!(lengths.len(), batch, "forward: one length per row");
        let starts = vec![0; batch];
        let mask = AttentionMask { query_start: starts.clone(), key_len: lengths.to_vec() };
        self.run(ids, batch, seq, &starts, &mask, KvSource::Direct, &vec![&[][..]; batch])
    }

    /// Forward of `seq` new tokens for each of `batch` sequences held in cache slots
    /// `first .. first + batch`, where row `r` already has `starts[r]` cached positions. The
    /// new keys/values are written to the cache. Returns hidden states `[batch, seq, hidden]`.
    /// A model with token matching needs the cached ids too: [`Llama::forward_cached_with_history`].
    pub fn forward_cached(&self, cache: &mut B::KvCache, first: usize, ids: &[u32], batch: usize, seq: usize, starts: &[usize]) -> B::Tensor {
        assert!(self.token_match.is_none() || starts.iter().all(|&s| s == 0), "forward_cached: a token-matching model needs forward_cached_with_history");
        self.forward_cached_with_history(cache, first, ids, batch, seq, starts, &vec![&[][..]; batch])
    }

    /// [`Llama::forward_cached`] given, for each row, the ids already in its cache slot
    /// (`history[r].len() == starts[r]`): what a model with token matching
    /// ([`crate::token_match`]) compares the new tokens with. Other models ignore them.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_cached_with_history(
        &self,
        cache: &mut B::KvCache,
        first: usize,
        ids: &[u32],
        batch: usize,
        seq: usize,
        starts: &[usize],
        history: &[&[u32]],
    ) -> B::Tensor {
        assert_eq!(ids.len(), batch * seq, "forward_cached: ids must be batch × seq");
        assert_eq!(starts.len(), batch, "forward_cached: one start per row");
        let read_len = starts.iter().max().copied().unwrap_or(0) + seq;
        let mask = AttentionMask { query_start: starts.to_vec(), key_len: starts.iter().map(|s| s + seq).collect() };
        self.run(ids, batch, seq, starts, &mask, KvSource::Cache { cache, first, starts, read_len }, history)
    }

    /// Whether cached forwards need each row's cached ids ([`Llama::forward_cached_with_history`]).
    pub fn needs_history(&self) -> bool {
        self.token_match.is_some()
    }

    /// `LlamaForCausalLM.lm_head`: logits `[.., vocab]` from final-normed hidden states.
    pub fn lm_head(&self, hidden: B::Tensor) -> B::Tensor {
        let b = &self.backend;
        let shape = b.shape(&hidden);
        let d = shape[shape.len() - 1];
        let rows: usize = shape[..shape.len() - 1].iter().product();
        let h = b.reshape(hidden, &[rows, d]);
        let logits_t = b.matmul(self.lm_head.clone(), b.transpose(h, 0, 1)); // [vocab, rows]
        let mut out = shape.clone();
        *out.last_mut().expect("rank ≥ 1") = self.config.vocab_size;
        b.reshape(b.transpose(logits_t, 0, 1), &out)
    }

    /// The next-token logits `[rows, seq, vocab]` of a right-padded batch from its final-normed
    /// hidden states `[rows, seq, hidden]` ([`Llama::forward`]) and its ids (row-major
    /// `[rows, seq]`): `lm_head`, mixed with the pointer head's copy distribution on a model that
    /// has one (each position sees the tokens up to itself, so padding after a row's length
    /// changes nothing before it).
    pub fn logits(&self, hidden: B::Tensor, ids: &[u32], rows: usize, seq: usize) -> B::Tensor {
        let Some(head) = &self.copy_head else { return self.lm_head(hidden) };
        let b = &self.backend;
        let dim = self.config.hidden_size;
        let flat = b.reshape(hidden, &[rows * seq, dim]);
        let per_row: Vec<B::Tensor> = (0..rows)
            .map(|r| {
                let h = b.narrow(flat.clone(), 0, r * seq, seq);
                let keys = head.keys(b, h.clone());
                head.mix(b, h.clone(), self.lm_head(h), keys, &ids[r * seq..(r + 1) * seq], 0)
            })
            .collect();
        b.reshape(stack_rows(b, per_row), &[rows, seq, self.config.vocab_size])
    }

    /// A zeroed key/value cache for `slots` sequences of up to `capacity` positions.
    pub fn new_cache(&self, slots: usize, capacity: usize) -> B::KvCache {
        let c = &self.config;
        self.backend.kv_cache(c.num_hidden_layers, slots, c.num_key_value_heads, capacity, c.head_dim)
    }

    /// Every parameter with its HF name (for optimisers, checkpoints and gradient checks).
    /// With tied embeddings `lm_head.weight` is not listed separately.
    pub fn named_parameters(&self) -> Vec<(String, &B::Tensor)> {
        let mut out: Vec<(String, &B::Tensor)> = vec![("model.embed_tokens.weight".into(), &self.embed_tokens)];
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            out.push((format!("{p}.input_layernorm.weight"), &l.input_layernorm));
            for (name, lin) in [
                ("self_attn.q_proj", &l.q_proj),
                ("self_attn.k_proj", &l.k_proj),
                ("self_attn.v_proj", &l.v_proj),
                ("self_attn.o_proj", &l.o_proj),
                ("mlp.gate_proj", &l.gate_proj),
                ("mlp.up_proj", &l.up_proj),
                ("mlp.down_proj", &l.down_proj),
            ] {
                out.push((format!("{p}.{name}.weight"), &lin.weight));
                if let Some(bias) = &lin.bias {
                    out.push((format!("{p}.{name}.bias"), bias));
                }
            }
            out.push((format!("{p}.post_attention_layernorm.weight"), &l.post_attention_layernorm));
        }
        out.push(("model.norm.weight".into(), &self.norm));
        if !self.config.tie_word_embeddings {
            out.push(("lm_head.weight".into(), &self.lm_head));
        }
        if let Some(head) = &self.value_head {
            out.push((VALUE_HEAD_WEIGHT.into(), &head.weight));
            if let Some(bias) = &head.bias {
                out.push((VALUE_HEAD_BIAS.into(), bias));
            }
        }
        if let Some(head) = &self.copy_head {
            out.push((COPY_QUERY_WEIGHT.into(), &head.query.weight));
            out.push((COPY_KEY_WEIGHT.into(), &head.key.weight));
            out.push((COPY_SENTINEL.into(), &head.sentinel));
        }
        if let Some(tm) = &self.token_match {
            out.push((MATCH_BIAS.into(), &tm.match_bias));
            out.push((CANON_WEIGHT.into(), &tm.canon));
        }
        out
    }
}

/// HF-style name of the value head's weight (stored `[1, hidden]` in `model.safetensors`).
pub const VALUE_HEAD_WEIGHT: &str = "value_head.weight";
/// HF-style name of the value head's bias (`[1]`).
pub const VALUE_HEAD_BIAS: &str = "value_head.bias";

/// Per-row tensors joined along the first axis (one row is returned as it is, without a copy).
pub(crate) fn stack_rows<B: Backend>(b: &B, rows: Vec<B::Tensor>) -> B::Tensor {
    if rows.len() == 1 { rows.into_iter().next().expect("one row") } else { b.cat(rows, 0) }
}

/// `nn.Linear.forward` with the pre-transposed weight.
fn linear<B: Backend>(b: &B, x: B::Tensor, l: &Linear<B>) -> B::Tensor {
    b.linear(x, &l.weight, l.bias.as_ref())
}

//! The seam between the model/algorithm code and a tensor library.
//!
//! [`Backend`] is the small set of operations the Llama decoder, the generation engine and the
//! RL losses need. The model is written once against it; each tensor library implements it
//! once ([`burn_flex::BurnBackend`]; `tch::TchBackend` with the `tch` feature) without touching
//! model code.
//! Data crosses the seam only as `Vec<f32>` / `&[u32]` / host-side descriptions
//! ([`AttentionMask`]), never as a library's own types.
//!
//! Conventions: tensors are `f32` with rank 1 to 4 and row-major logical shapes; reductions
//! keep the reduced dimension (size 1); binary operations broadcast like NumPy.

pub mod adamw;
pub mod burn_flex;
pub mod device;
pub mod precision;
#[cfg(feature = "tch")]
pub mod tch;

pub use device::{DeviceParseError, DeviceSpec};
pub use precision::{Precision, PrecisionParseError};

use std::fmt::Debug;

/// Which keys each query row may attend to, described on the host so every backend can build
/// its own mask representation.
///
/// Row `b` has queries at absolute positions `query_start[b] .. query_start[b] + S` and keys
/// at positions `0 .. key_len[b]` (the first `key_len[b]` entries of the key tensor; entries
/// beyond are padding). Query `s` of row `b` may attend to key `j` iff
/// `j <= query_start[b] + s` and `j < key_len[b]`. This one description covers prefill
/// (`query_start = 0`), cached decode (`query_start = cached length`) and right-padded
/// training batches (`key_len = row length`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionMask {
    /// Absolute position of each row's first query.
    pub query_start: Vec<usize>,
    /// Number of valid keys of each row.
    pub key_len: Vec<usize>,
}

/// A tensor library the Llama decoder can run on.
///
/// Implementations must be cheap to clone (a device handle). Whether operations record an
/// autodiff graph is a property of the backend value (see [`Backend::is_autodiff`]): the same
/// model code serves inference and training.
pub trait Backend: Clone + Send + Sync + Debug + 'static {
    /// An `f32` tensor of rank 1..=4 living on this backend's device.
    type Tensor: Clone + Send + Sync + Debug;
    /// Gradients produced by [`Backend::backward`].
    type Grads: Send;
    /// A preallocated key/value cache for `layers` layers and `slots` sequences.
    type KvCache: Send;

    /// A short name for logs and benchmark tables, e.g. `burn-flex`.
    fn name(&self) -> String;
    /// Whether tensors created by [`Backend::param`] record gradients.
    fn is_autodiff(&self) -> bool;

    // ---- creation and extraction -------------------------------------------------------
    /// A constant tensor from row-major data. Panics if `data.len()` ≠ product of `shape`
    /// (callers construct both; a mismatch is a programming error, not bad input).
    fn tensor(&self, data: Vec<f32>, shape: &[usize]) -> Self::Tensor;
    /// A trainable parameter (gradients retained when the backend is autodiff).
    fn param(&self, data: Vec<f32>, shape: &[usize]) -> Self::Tensor;
    /// Copies a tensor's values to the host, row-major.
    fn to_vec(&self, t: &Self::Tensor) -> Vec<f32>;
    /// The logical shape.
    fn shape(&self, t: &Self::Tensor) -> Vec<usize>;

    // ---- shape -------------------------------------------------------------------------
    /// Same data, new shape (same element count).
    fn reshape(&self, t: Self::Tensor, shape: &[usize]) -> Self::Tensor;
    /// Swaps two dimensions.
    fn transpose(&self, t: Self::Tensor, dim_a: usize, dim_b: usize) -> Self::Tensor;
    /// `len` entries of dimension `dim` starting at `start`.
    fn narrow(&self, t: Self::Tensor, dim: usize, start: usize, len: usize) -> Self::Tensor;
    /// Concatenates along `dim`.
    fn cat(&self, ts: Vec<Self::Tensor>, dim: usize) -> Self::Tensor;

    // ---- elementwise (broadcasting) ----------------------------------------------------
    /// `a + b`.
    fn add(&self, a: Self::Tensor, b: Self::Tensor) -> Self::Tensor;
    /// `a - b`.
    fn sub(&self, a: Self::Tensor, b: Self::Tensor) -> Self::Tensor;
    /// `a * b`.
    fn mul(&self, a: Self::Tensor, b: Self::Tensor) -> Self::Tensor;
    /// `a / b`.
    fn div(&self, a: Self::Tensor, b: Self::Tensor) -> Self::Tensor;
    /// Elementwise minimum.
    fn minimum(&self, a: Self::Tensor, b: Self::Tensor) -> Self::Tensor;
    /// `t * s`.
    fn mul_scalar(&self, t: Self::Tensor, s: f32) -> Self::Tensor;
    /// `t + s`.
    fn add_scalar(&self, t: Self::Tensor, s: f32) -> Self::Tensor;
    /// `exp(t)`.
    fn exp(&self, t: Self::Tensor) -> Self::Tensor;
    /// `ln(t)`.
    fn log(&self, t: Self::Tensor) -> Self::Tensor;
    /// `sqrt(t)`.
    fn sqrt(&self, t: Self::Tensor) -> Self::Tensor;
    /// Clamps into `[min, max]`.
    fn clamp(&self, t: Self::Tensor, min: f32, max: f32) -> Self::Tensor;
    /// `x * sigmoid(x)`.
    fn silu(&self, t: Self::Tensor) -> Self::Tensor;

    // ---- reductions (keep the reduced dim) ---------------------------------------------
    /// Sum over `dim`.
    fn sum_dim(&self, t: Self::Tensor, dim: usize) -> Self::Tensor;
    /// Mean over `dim`.
    fn mean_dim(&self, t: Self::Tensor, dim: usize) -> Self::Tensor;
    /// Maximum over `dim`.
    fn max_dim(&self, t: Self::Tensor, dim: usize) -> Self::Tensor;
    /// Sum of all elements, shape `[1]`.
    fn sum_all(&self, t: Self::Tensor) -> Self::Tensor;

    // ---- linear algebra and network ops ------------------------------------------------
    /// Batched matrix product over the last two dims (leading dims broadcast).
    fn matmul(&self, a: Self::Tensor, b: Self::Tensor) -> Self::Tensor;
    /// `x @ w + bias` where `x` is `[.., in]`, `w` is `[in, out]` (pre-transposed) and `bias` is `[out]`.
    fn linear(&self, x: Self::Tensor, w: &Self::Tensor, bias: Option<&Self::Tensor>) -> Self::Tensor;
    /// Rows of `weight` (`[vocab, dim]`) for `ids`, shaped `[batch, seq, dim]` with `ids.len() == batch * seq`.
    fn embedding(&self, weight: &Self::Tensor, ids: &[u32], batch: usize, seq: usize) -> Self::Tensor;
    /// Softmax over `dim`.
    fn softmax(&self, t: Self::Tensor, dim: usize) -> Self::Tensor;
    /// Log-softmax over `dim`.
    fn log_softmax(&self, t: Self::Tensor, dim: usize) -> Self::Tensor;
    /// Picks `t[..., ids[i]]` along the last dim: `t` is `[.., V]` with `ids.len()` = product of
    /// the leading dims; the result has shape `[.., 1]`.
    fn gather_last(&self, t: Self::Tensor, ids: &[u32]) -> Self::Tensor;

    /// RMSNorm as in transformers' `LlamaRMSNorm`: `w * x / sqrt(mean(x², -1) + eps)`.
    fn rms_norm(&self, x: Self::Tensor, weight: &Self::Tensor, eps: f32) -> Self::Tensor {
        let last = self.shape(&x).len() - 1;
        let var = self.mean_dim(self.mul(x.clone(), x.clone()), last);
        let inv = self.div(self.tensor(vec![1.0], &[1]), self.sqrt(self.add_scalar(var, eps)));
        self.mul(self.mul(x, inv), weight.clone())
    }

    /// Rotary embedding as transformers' `apply_rotary_pos_emb`: `x * cos + rotate_half(x) * sin`.
    /// `x` is `[B, H, S, D]`; `cos`/`sin` are `[B, 1, S, D]` (both halves repeated).
    fn rope(&self, x: Self::Tensor, cos: &Self::Tensor, sin: &Self::Tensor) -> Self::Tensor {
        let d = self.shape(&x)[3];
        let x1 = self.narrow(x.clone(), 3, 0, d / 2);
        let x2 = self.narrow(x.clone(), 3, d / 2, d / 2);
        let rotated = self.cat(vec![self.mul_scalar(x2, -1.0), x1], 3);
        self.add(self.mul(x, cos.clone()), self.mul(rotated, sin.clone()))
    }

    /// Scaled dot-product attention with grouped-query heads.
    /// `q` is `[B, H, S, D]`, `k`/`v` are `[B, Hkv, L, D]` with `H` a multiple of `Hkv`
    /// (query head `h` uses key/value head `h / (H / Hkv)`, as transformers' `repeat_kv`).
    /// Scale is `1/sqrt(D)`. Returns `[B, H, S, D]`.
    fn attention(&self, q: Self::Tensor, k: Self::Tensor, v: Self::Tensor, mask: &AttentionMask) -> Self::Tensor;

    /// [`Backend::attention`] with an additive score bias `[B, H, S, L]` (added to
    /// `q k^T / sqrt(D)` before the mask and the softmax; differentiable in the bias). The
    /// default composes it from primitives (grouped heads without repeating K/V, as
    /// [`Backend::attention`] does); a backend may override it with a fused kernel.
    fn attention_biased(&self, q: Self::Tensor, k: Self::Tensor, v: Self::Tensor, mask: &AttentionMask, bias: Self::Tensor) -> Self::Tensor {
        let [b, h, s, d] = self.shape(&q)[..] else { panic!("attention_biased: q must be [B, H, S, D]") };
        let [_, hkv, l, _] = self.shape(&k)[..] else { panic!("attention_biased: k must be [B, Hkv, L, D]") };
        let g = h / hkv;
        // The g query heads that share a key/value head become g·S query rows of that head.
        let q = self.reshape(q, &[b, hkv, g * s, d]);
        let scores = self.mul_scalar(self.matmul(q, self.transpose(k, 2, 3)), 1.0 / (d as f32).sqrt());
        let mut visible = vec![0.0f32; b * g * s * l];
        for row in 0..b {
            for gs in 0..g * s {
                let last = mask.query_start[row] + gs % s;
                for j in 0..l {
                    if j > last || j >= mask.key_len[row] {
                        visible[(row * g * s + gs) * l + j] = f32::NEG_INFINITY;
                    }
                }
            }
        }
        let scores = self.add(self.add(scores, self.reshape(bias, &[b, hkv, g * s, l])), self.tensor(visible, &[b, 1, g * s, l]));
        let out = self.matmul(self.softmax(scores, 3), v);
        self.reshape(out, &[b, h, s, d])
    }

    // ---- key/value cache ---------------------------------------------------------------
    /// A zeroed cache for `layers` layers × `slots` sequences × `capacity` positions.
    fn kv_cache(&self, layers: usize, slots: usize, kv_heads: usize, capacity: usize, head_dim: usize) -> Self::KvCache;
    /// Writes `k`/`v` (`[n, Hkv, S, D]`) of `n` sequences into `slots[i]` at positions
    /// `positions[i] .. positions[i] + S`.
    fn kv_write(&self, cache: &mut Self::KvCache, layer: usize, slots: &[usize], positions: &[usize], k: Self::Tensor, v: Self::Tensor);
    /// Keys and values of slots `first .. first + n` for positions `0 .. len`:
    /// `([n, Hkv, len, D], [n, Hkv, len, D])`.
    fn kv_read(&self, cache: &Self::KvCache, layer: usize, first: usize, n: usize, len: usize) -> (Self::Tensor, Self::Tensor);
    /// Copies the first `len` positions of slot `from` into slot `to` in every layer (used to
    /// keep active sequences packed in slots `0 .. n`).
    fn kv_move(&self, cache: &mut Self::KvCache, from: usize, to: usize, len: usize);

    // ---- autodiff ------------------------------------------------------------------------
    /// Back-propagates from a scalar (`[1]`) loss.
    fn backward(&self, loss: &Self::Tensor) -> Self::Grads;
    /// The gradient of `param` (same shape), if it received one.
    fn grad(&self, grads: &Self::Grads, param: &Self::Tensor) -> Option<Self::Tensor>;
    /// The same values, cut from the autodiff graph.
    fn detach(&self, t: Self::Tensor) -> Self::Tensor;

    /// The greedy choice of each row of `[rows, V]` logits: the index of the largest logit (the
    /// first among equals) and its log-softmax value, what [`crate::sampling::sample_row`]
    /// returns at temperature 0. The default copies the logits to the host and runs that code;
    /// a device backend overrides it to copy two numbers per row instead of `V`.
    fn greedy_rows(&self, logits: Self::Tensor) -> Vec<(u32, f32)> {
        let v = *self.shape(&logits).last().expect("logits have rank >= 1");
        let host = self.to_vec(&logits);
        host.chunks(v)
            .map(|row| {
                let token = crate::sampling::argmax(row);
                (token as u32, crate::sampling::log_softmax_at(row, token))
            })
            .collect()
    }

    /// Waits until every operation queued on the device has finished (a no-op on backends that
    /// run synchronously); benchmarks call it before reading the clock.
    fn synchronize(&self) {}

    // ---- training (optimizer) ------------------------------------------------------------
    /// One AdamW update of one parameter (PyTorch semantics): returns
    /// the updated parameter as a trainable leaf (records gradients on an autodiff backend) and
    /// the new first and second moments; `None` moments mean zeros (the first step). The
    /// default runs [`adamw::adamw_kernel`] on host copies; a backend overrides it
    /// to update its own buffers in place.
    fn adamw_update(
        &self,
        param: Self::Tensor,
        grad: Self::Tensor,
        exp_avg: Option<Self::Tensor>,
        exp_avg_sq: Option<Self::Tensor>,
        scalars: &adamw::AdamWScalars,
    ) -> (Self::Tensor, Self::Tensor, Self::Tensor) {
        let shape = self.shape(&param);
        let mut p = self.to_vec(&param);
        drop(param);
        let g = self.to_vec(&grad);
        let n = p.len();
        let mut m = exp_avg.map(|t| self.to_vec(&t)).unwrap_or_else(|| vec![0.0; n]);
        let mut v = exp_avg_sq.map(|t| self.to_vec(&t)).unwrap_or_else(|| vec![0.0; n]);
        adamw::adamw_kernel(&mut p, &g, &mut m, &mut v, scalars);
        (self.param(p, &shape), self.tensor(m, &shape), self.tensor(v, &shape))
    }
}

#[cfg(test)]
mod tests;

//! A pointer head with a sentinel (Merity et al., "Pointer Sentinel Mixture Models", 2016) on
//! top of the decoder: the next-token distribution at position `t` mixes the vocabulary
//! softmax with attention over the tokens already in the context.
//!
//! With final-normed hidden states `h`, the head's query `q_t = h_t W_q`, keys `k_j = h_j W_k`
//! and sentinel vector `u` (all learned), the scores are `q_t·k_j / √d` for every position
//! `j ≤ t` and `q_t·u / √d` for the sentinel; `a` is their softmax. Then
//!
//! `π_t(v) = a_sentinel · softmax(lm_head(h_t))(v) + Σ_{j ≤ t, x_j = v} a_j`
//!
//! and the model's logits are `ln(π_t + ε)` ([`COPY_FLOOR`]), so temperature, sampling, greedy
//! picks and log-softmax downstream work unchanged (`log_softmax(ln π) = ln π` up to the floor).
//!
//! Why: a small randomly initialised decoder needs thousands of steps before it can write a
//! name it has just read into its reply (the induction-style copy forms after a long plateau);
//! the pointer gives it that copy from the first step, and the sentinel lets it decline to copy
//! (the softmax puts its mass on the sentinel when no key matches the query). Tiny presets
//! spelled `…-copy` carry it; no pretrained checkpoint does, and transformers cannot load it.
//!
//! Every quantity is computed with [`Backend`] ops by [`CopyHead::mix`], the one
//! implementation shared by the learner (whole rows) and the generation engine (cached keys).

use crate::backend::Backend;
use crate::model::Linear;

/// Added to the mixture before its logarithm, so that a token no path can produce has a finite
/// logit (its log-prob is about `ln ε`).
pub const COPY_FLOOR: f32 = 1e-9;

/// HF-style tensor names of the head (weights stored `[out, in]` like the projections).
pub const COPY_QUERY_WEIGHT: &str = "copy_head.query.weight";
/// The key projection's weight.
pub const COPY_KEY_WEIGHT: &str = "copy_head.key.weight";
/// The sentinel vector, `[hidden]`.
pub const COPY_SENTINEL: &str = "copy_head.sentinel";

/// A score no real score reaches: what masked (not yet visible) keys get before the softmax.
const MASKED: f32 = -1e30;

/// The pointer head's parameters.
#[derive(Clone, Debug)]
pub struct CopyHead<B: Backend> {
    /// `W_q`, `[hidden, hidden]` (stored pre-transposed like every [`Linear`]).
    pub query: Linear<B>,
    /// `W_k`, `[hidden, hidden]`.
    pub key: Linear<B>,
    /// The sentinel vector `u`, `[hidden, 1]`.
    pub sentinel: B::Tensor,
}

impl<B: Backend> CopyHead<B> {
    /// The head's keys `[n, hidden]` for final-normed hidden states `[n, hidden]`.
    pub fn keys(&self, b: &B, hidden: B::Tensor) -> B::Tensor {
        b.linear(hidden, &self.key.weight, None)
    }

    /// The mixture logits `[n, vocab]` for `n` consecutive query positions of one sequence.
    ///
    /// - `hidden`: the queries' final-normed hidden states, `[n, hidden]`;
    /// - `vocab_logits`: `lm_head` of the same states, `[n, vocab]`;
    /// - `keys`: [`CopyHead::keys`] of the sequence's positions `0 .. L`, `[L, hidden]`;
    /// - `key_ids`: the token at each of those positions (`L` ids);
    /// - `first`: the position of the first query: query `i` sees keys `0 ..= first + i`
    ///   (so `first + n ≤ L`).
    pub fn mix(&self, b: &B, hidden: B::Tensor, vocab_logits: B::Tensor, keys: B::Tensor, key_ids: &[u32], first: usize) -> B::Tensor {
        let n = b.shape(&hidden)[0];
        let dim = b.shape(&hidden)[1];
        let vocab = b.shape(&vocab_logits)[1];
        let len = key_ids.len();
        assert!(first + n <= len, "copy head: queries past the keys");
        assert_eq!(b.shape(&keys), vec![len, dim], "copy head: one key per id");
        let scale = 1.0 / (dim as f32).sqrt();
        let q = b.linear(hidden, &self.query.weight, None);
        let scores = b.mul_scalar(b.matmul(q.clone(), b.transpose(keys, 0, 1)), scale); // [n, L]
        let mut mask = vec![0.0f32; n * len];
        for i in 0..n {
            for m in &mut mask[i * len + first + i + 1..(i + 1) * len] {
                *m = MASKED;
            }
        }
        let scores = b.add(scores, b.tensor(mask, &[n, len]));
        let sentinel = b.mul_scalar(b.matmul(q, self.sentinel.clone()), scale); // [n, 1]
        let attention = b.softmax(b.cat(vec![scores, sentinel], 1), 1); // [n, L + 1]
        let to_tokens = b.narrow(attention.clone(), 1, 0, len);
        let to_vocab = b.narrow(attention, 1, len, 1);
        let mut one_hot = vec![0.0f32; len * vocab];
        for (j, &id) in key_ids.iter().enumerate() {
            one_hot[j * vocab + id as usize] = 1.0;
        }
        let copied = b.matmul(to_tokens, b.tensor(one_hot, &[len, vocab])); // [n, vocab]
        let generated = b.mul(b.softmax(vocab_logits, 1), to_vocab);
        b.log(b.add_scalar(b.add(generated, copied), COPY_FLOOR))
    }
}

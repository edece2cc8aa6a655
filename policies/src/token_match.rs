//! Token matching for tiny models (`…-match` presets): a learned same-token attention bias and
//! a causal convolution over the first layer's attention input.
//!
//! Deciding whether a fact is about the tracked person means comparing two tokens far apart:
//! the name in the fact with the name on the `Track:` line. A small Llama does not learn that
//! in minutes (experiments/rl-beats-teacher/, round 5): attention can find an earlier copy of a
//! token only through a query-key product of rank `head_dim`, and even when it finds one, the
//! copy's value is the same embedding as its own (RoPE puts no position into values), so
//! "there is an earlier copy" leaves no trace. The two pieces below give the first layer both
//! halves of a duplicate-token head:
//!
//! - **Match bias.** Each head `h` of the first layer adds `β_h · [token_j = token_i]` to the
//!   attention score of query `i` on key `j` (initialised to [`MATCH_BIAS_INIT`]), so a name
//!   attends to its earlier copies from the start.
//! - **Canon convolution** (Allen-Zhu, *Physics of Language Models 4.1*, 2025: "Canon layers").
//!   The first layer's normed attention input `y` becomes `y_i + Σ_k w_k ⊙ y_{i−k}`,
//!   `k = 0 .. K−1` (zeros before the sequence), so each position's key and value also carry
//!   its `K − 1` predecessors: the copy after `Track:` has a different value from the copy
//!   after a chunk header, and the match becomes visible.
//!
//! Both read only token ids and the embeddings, so a cached decode step needs the ids already
//! in the cache (its history), not extra per-layer state. Only memrl reads such a model
//! (config.json `"token_match": true`, `"canon_kernel": K`).

use crate::backend::Backend;

/// HF-style name of the first layer's match bias, `[heads]`.
pub const MATCH_BIAS: &str = "model.layers.0.self_attn.match_bias";
/// HF-style name of the first layer's canon convolution, `[kernel, hidden]` (row `k` weighs the
/// position `k` steps back; row 0 is the position itself).
pub const CANON_WEIGHT: &str = "model.layers.0.canon.weight";
/// The match bias every head starts from: strong enough that a name's copies take nearly all of
/// its attention before any training (e¹⁰ against a context of ~100 positions). In the
/// round-5 probes a bias learned up from 1 stayed on the plateau, one from 5 left it after
/// 1,000 steps on one seed of three, one from 10 within 250 steps.
pub const MATCH_BIAS_INIT: f32 = 10.0;
/// Standard deviation of the canon weights at initialisation (the 0.02 of the other matrices
/// left the neighbours' share too small to be found).
pub const CANON_INIT_STD: f32 = 0.5;
/// The convolution's width of a `-match` preset: the position and its three predecessors
/// (`Track:`, a space, the name).
pub const DEFAULT_CANON_KERNEL: usize = 4;

/// The first layer's token-matching parameters.
#[derive(Clone, Debug)]
pub struct TokenMatch<B: Backend> {
    /// `β_h` per query head, `[heads]`.
    pub match_bias: B::Tensor,
    /// Canon weights `[kernel, hidden]`.
    pub canon: B::Tensor,
}

/// Per-call token context of a batch: for each row, the ids of every key position (cached
/// history, then this call's tokens), padded to a common key length.
pub(crate) struct MatchContext<B: Backend> {
    /// `[batch, 1, seq, keys]`: 1 where query `s` of row `r` has the same token as key `j`.
    pub same: B::Tensor,
    /// The ids of each row's `kernel − 1` positions before this call (`[batch, kernel − 1]`,
    /// oldest first; 0 where the row has fewer), for the convolution.
    pub previous_ids: Vec<u32>,
    /// 1 for a real previous position, 0 for one before the row's start, `[batch, kernel − 1, 1]`.
    pub previous_present: Vec<f32>,
}

impl<B: Backend> TokenMatch<B> {
    /// The convolution's kernel width `K`.
    pub fn kernel(&self, b: &B) -> usize {
        b.shape(&self.canon)[0]
    }

    /// The host context of a call: `ids` is `[batch, seq]` row-major (this call's tokens) and
    /// `history[r]` the ids already cached for row `r` (empty for a full-sequence forward).
    pub(crate) fn context(&self, b: &B, ids: &[u32], batch: usize, seq: usize, history: &[&[u32]]) -> MatchContext<B> {
        let keys = history.iter().map(|h| h.len()).max().unwrap_or(0) + seq;
        let mut same = vec![0.0f32; batch * seq * keys];
        let back = self.kernel(b) - 1;
        let mut previous_ids = vec![0u32; batch * back];
        let mut previous_present = vec![0.0f32; batch * back];
        for r in 0..batch {
            let past = history[r];
            let new = &ids[r * seq..(r + 1) * seq];
            let row_keys: Vec<u32> = past.iter().chain(new).copied().collect();
            for (s, q) in new.iter().enumerate() {
                for (j, k) in row_keys.iter().enumerate() {
                    if q == k {
                        same[(r * seq + s) * keys + j] = 1.0;
                    }
                }
            }
            // previous[back - 1] is the position just before this call's first token.
            for k in 0..back.min(past.len()) {
                let slot = r * back + back - 1 - k;
                previous_ids[slot] = past[past.len() - 1 - k];
                previous_present[slot] = 1.0;
            }
        }
        MatchContext { same: b.tensor(same, &[batch, 1, seq, keys]), previous_ids, previous_present }
    }

    /// The first layer's score bias `[batch, heads, seq, keys]` from the same-token matrix.
    pub(crate) fn bias(&self, b: &B, context: &MatchContext<B>) -> B::Tensor {
        let heads = b.shape(&self.match_bias)[0];
        b.mul(context.same.clone(), b.reshape(self.match_bias.clone(), &[1, heads, 1, 1]))
    }

    /// The canon convolution of the first layer's normed input `y` (`[batch, seq, hidden]`),
    /// given the same norm of the `kernel − 1` positions before it (`previous`,
    /// `[batch, kernel − 1, hidden]`, zeros where absent): `y_i + Σ_k w_k ⊙ y_{i−k}`.
    pub(crate) fn convolve(&self, b: &B, y: B::Tensor, previous: B::Tensor) -> B::Tensor {
        let kernel = self.kernel(b);
        let back = kernel - 1;
        let shape = b.shape(&y);
        let (seq, hidden) = (shape[1], shape[2]);
        let extended = b.cat(vec![previous, y.clone()], 1); // [batch, back + seq, hidden]
        let mut out = y;
        for k in 0..kernel {
            let shifted = b.narrow(extended.clone(), 1, back - k, seq);
            let w = b.reshape(b.narrow(self.canon.clone(), 0, k, 1), &[1, 1, hidden]);
            out = b.add(out, b.mul(shifted, w));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::burn_flex::BurnBackend;

    fn matcher(b: &BurnBackend, kernel: usize, hidden: usize) -> TokenMatch<BurnBackend> {
        let canon: Vec<f32> = (0..kernel * hidden).map(|i| (i as f32 + 1.0) * 0.1).collect();
        TokenMatch { match_bias: b.tensor(vec![2.0, -1.0], &[2]), canon: b.tensor(canon, &[kernel, hidden]) }
    }

    #[test]
    fn the_context_marks_equal_tokens_and_the_positions_before_the_call() {
        let b = BurnBackend::flex();
        let tm = matcher(&b, 3, 1);
        // Row 0 has 3 cached ids, row 1 one; two new tokens each.
        let history: [&[u32]; 2] = [&[7, 8, 9], &[4]];
        let ctx = tm.context(&b, &[9, 7, 5, 4], 2, 2, &history);
        let same = b.to_vec(&ctx.same);
        // keys = 3 + 2; row 0 keys [7, 8, 9, 9, 7], row 1 keys [4, 5, 4, (pad), (pad)].
        assert_eq!(&same[0..5], &[0.0, 0.0, 1.0, 1.0, 0.0]);
        assert_eq!(&same[5..10], &[1.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(&same[10..15], &[0.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(&same[15..20], &[1.0, 0.0, 1.0, 0.0, 0.0]);
        // kernel − 1 = 2 previous positions, oldest first; row 1 has only one.
        assert_eq!(ctx.previous_ids, vec![8, 9, 0, 4]);
        assert_eq!(ctx.previous_present, vec![1.0, 1.0, 0.0, 1.0]);
        // The bias is β_h where the tokens match.
        let bias = b.to_vec(&tm.bias(&b, &ctx));
        assert_eq!(&bias[0..5], &[0.0, 0.0, 2.0, 2.0, 0.0]);
        assert_eq!(&bias[10..15], &[0.0, 0.0, -1.0, -1.0, 0.0]); // head 1, row 0, query 0
    }

    #[test]
    fn the_convolution_adds_weighted_predecessors() {
        let b = BurnBackend::flex();
        // hidden 1, kernel 3: w = [0.1, 0.2, 0.3] (self, one back, two back).
        let tm = matcher(&b, 3, 1);
        let y = b.tensor(vec![1.0, 2.0, 3.0], &[1, 3, 1]);
        let previous = b.tensor(vec![10.0, 20.0], &[1, 2, 1]);
        let out = b.to_vec(&tm.convolve(&b, y, previous));
        let want = [1.0 + 0.1 * 1.0 + 0.2 * 20.0 + 0.3 * 10.0, 2.0 + 0.1 * 2.0 + 0.2 * 1.0 + 0.3 * 20.0, 3.0 + 0.1 * 3.0 + 0.2 * 2.0 + 0.3 * 1.0];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-5, "{out:?} vs {want:?}");
        }
    }
}

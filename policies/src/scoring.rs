//! Teacher-forced log-probabilities of given token sequences (what the learner computes for
//! the current and reference policies, and what rollouts' `policy_logprobs` must match).

use crate::backend::Backend;
use crate::model::Llama;

/// Right-pads sequences into a `[batch, seq]` id matrix (pad id 0) with their lengths.
pub fn pad_batch(seqs: &[Vec<u32>]) -> (Vec<u32>, usize, usize, Vec<usize>) {
    let seq = seqs.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = vec![0u32; seqs.len() * seq];
    for (r, s) in seqs.iter().enumerate() {
        ids[r * seq..r * seq + s.len()].copy_from_slice(s);
    }
    (ids, seqs.len(), seq, seqs.iter().map(Vec::len).collect())
}

/// `log π(x[t] | x[..t])` for `t = 1 .. len` of every row, as a tensor `[batch, seq - 1, 1]`
/// (entries past a row's length are garbage; mask them). Differentiable on an autodiff backend.
pub fn token_logprobs_tensor<B: Backend>(model: &Llama<B>, seqs: &[Vec<u32>]) -> B::Tensor {
    let b = &model.backend;
    let (ids, batch, seq, lengths) = pad_batch(seqs);
    let hidden = model.forward(&ids, batch, seq, &lengths);
    let hidden = b.narrow(hidden, 1, 0, seq - 1);
    let logp = b.log_softmax(model.lm_head(hidden), 2);
    let targets: Vec<u32> = (0..batch).flat_map(|r| ids[r * seq + 1..(r + 1) * seq].to_vec()).collect();
    b.gather_last(logp, &targets)
}

/// Host-side per-token log-probs of each sequence (length `len - 1` per row).
pub fn token_logprobs<B: Backend>(model: &Llama<B>, seqs: &[Vec<u32>]) -> Vec<Vec<f32>> {
    if seqs.is_empty() {
        return vec![];
    }
    let seq = seqs.iter().map(Vec::len).max().unwrap_or(0);
    if seq < 2 {
        return seqs.iter().map(|_| vec![]).collect();
    }
    let flat = model.backend.to_vec(&token_logprobs_tensor(model, seqs));
    seqs.iter()
        .enumerate()
        .map(|(r, s)| flat[r * (seq - 1)..r * (seq - 1) + s.len().saturating_sub(1)].to_vec())
        .collect()
}

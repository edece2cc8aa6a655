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

/// The one token log-prob function: per position `[rows * seq]`, the log-prob of `target_ids`
/// after `input_ids` (row-major `[rows, seq]`, right-padded; row `r` has `lengths[r]` valid
/// positions, the rest are garbage: mask them), and the entropy of the predicted distribution
/// at each position when `with_entropy`, from one forward pass. Differentiable on an autodiff
/// backend (the learner's path). The distribution is softmax(logits / `temperature`) (> 0): at
/// 1 the raw policy (what rollouts' `policy_logprobs` match), at T what a rollout at temperature
/// T without top-k / top-p samples from (its `sampled_logprobs`).
#[allow(clippy::too_many_arguments)]
pub fn target_logprobs<B: Backend>(
    model: &Llama<B>,
    input_ids: &[u32],
    target_ids: &[u32],
    rows: usize,
    seq: usize,
    lengths: &[usize],
    with_entropy: bool,
    temperature: f32,
) -> (B::Tensor, Option<B::Tensor>) {
    let hidden = model.forward(input_ids, rows, seq, lengths);
    target_logprobs_from_hidden(model, hidden, target_ids, rows * seq, with_entropy, temperature)
}

/// [`target_logprobs`] from the final-normed hidden states `[rows, seq, hidden]` of a forward
/// pass already made (`n` = rows × seq positions), so one pass can feed the log-probs and
/// another head (PPO's value head) alike.
pub fn target_logprobs_from_hidden<B: Backend>(
    model: &Llama<B>,
    hidden: B::Tensor,
    target_ids: &[u32],
    n: usize,
    with_entropy: bool,
    temperature: f32,
) -> (B::Tensor, Option<B::Tensor>) {
    let b = &model.backend;
    let mut logits = model.lm_head(hidden);
    if temperature != 1.0 {
        logits = b.mul_scalar(logits, 1.0 / temperature);
    }
    let logp = b.log_softmax(logits, 2);
    let picked = b.reshape(b.gather_last(logp.clone(), target_ids), &[n]);
    let entropy = with_entropy.then(|| {
        let p = b.exp(logp.clone());
        b.reshape(b.mul_scalar(b.sum_dim(b.mul(p, logp), 2), -1.0), &[n])
    });
    (picked, entropy)
}

/// `log π(x[t] | x[..t])` for `t = 1 .. len` of every row, as a tensor `[batch, seq - 1, 1]`
/// (entries past a row's length are garbage; mask them). Differentiable on an autodiff backend.
/// Through [`target_logprobs`]: inputs are each row but its last token, targets the row shifted by one.
pub fn token_logprobs_tensor<B: Backend>(model: &Llama<B>, seqs: &[Vec<u32>]) -> B::Tensor {
    let (ids, batch, seq, lengths) = pad_batch(seqs);
    let width = seq - 1;
    let mut inputs = vec![0u32; batch * width];
    let mut targets = vec![0u32; batch * width];
    for r in 0..batch {
        inputs[r * width..(r + 1) * width].copy_from_slice(&ids[r * seq..r * seq + width]);
        targets[r * width..(r + 1) * width].copy_from_slice(&ids[r * seq + 1..(r + 1) * seq]);
    }
    let lengths: Vec<usize> = lengths.iter().map(|&l| l.saturating_sub(1).max(1)).collect();
    let (lp, _) = target_logprobs(model, &inputs, &targets, batch, width, &lengths, false, 1.0);
    model.backend.reshape(lp, &[batch, width, 1])
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
    seqs.iter().enumerate().map(|(r, s)| flat[r * (seq - 1)..r * (seq - 1) + s.len().saturating_sub(1)].to_vec()).collect()
}

//! Teacher-forced log-probabilities of given token sequences (what the learner computes for
//! the current and reference policies, and what rollouts' `policy_logprobs` must match).

use std::ops::Range;

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

/// Logits computed at once by [`target_logprobs`] by default: positions per `lm_head` chunk are
/// this many elements divided by the vocabulary (16 MB of f32 logits), so that every
/// logits-sized buffer of the forward and backward passes stays below glibc's largest mmap
/// threshold (32 MB) and is reused from the heap instead of being page-faulted in anew every step.
pub const LOGITS_CHUNK_ELEMENTS: usize = 4 << 20;

/// What [`target_logprobs`] computes besides the log-probs, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct LogprobOptions<'a> {
    /// One position range per row: only these positions are projected onto the vocabulary (the
    /// learner's loss positions: a row's responses, not its prompt); the outputs are 0
    /// elsewhere. `None`: every position.
    pub spans: Option<&'a [Range<usize>]>,
    /// Also the entropy of the predicted distribution at each position.
    pub with_entropy: bool,
    /// The distribution is softmax(logits / `temperature`) (> 0).
    pub temperature: f32,
    /// Logits elements per `lm_head` chunk ([`LOGITS_CHUNK_ELEMENTS`]).
    pub chunk_elements: usize,
}

impl Default for LogprobOptions<'_> {
    /// Every position, no entropy, temperature 1, [`LOGITS_CHUNK_ELEMENTS`].
    fn default() -> Self {
        LogprobOptions { spans: None, with_entropy: false, temperature: 1.0, chunk_elements: LOGITS_CHUNK_ELEMENTS }
    }
}

/// The one token log-prob function: per position `[rows * seq]`, the log-prob of `target_ids`
/// after `input_ids` (row-major `[rows, seq]`, right-padded; row `r` has `lengths[r]` valid
/// positions, the rest are garbage: mask them), and the entropy of the predicted distribution
/// at each position when `opts.with_entropy`, from one forward pass. Differentiable on an
/// autodiff backend (the learner's path). The distribution is softmax(logits / temperature): at
/// 1 the raw policy (what rollouts' `policy_logprobs` match), at T what a rollout at temperature
/// T without top-k / top-p samples from (its `sampled_logprobs`).
///
/// `opts.spans` limits the vocabulary projection and log-softmax to the positions that are
/// needed; positions outside them are 0 in both outputs. The projection runs over chunks of
/// the needed positions of at most `opts.chunk_elements` logits; each position's numbers are
/// those of the whole projection.
pub fn target_logprobs<B: Backend>(
    model: &Llama<B>,
    input_ids: &[u32],
    target_ids: &[u32],
    rows: usize,
    seq: usize,
    lengths: &[usize],
    opts: &LogprobOptions,
) -> (B::Tensor, Option<B::Tensor>) {
    let hidden = model.forward(input_ids, rows, seq, lengths);
    target_logprobs_from_hidden(model, hidden, input_ids, target_ids, rows, seq, opts)
}

/// [`target_logprobs`] from the final-normed hidden states `[rows, seq, hidden]` of a forward
/// pass already made on `input_ids`, so one pass can feed the log-probs and another head (PPO's
/// value head) alike. (The ids are read only by a model with a pointer head, [`crate::copy_head`].)
pub fn target_logprobs_from_hidden<B: Backend>(
    model: &Llama<B>,
    hidden: B::Tensor,
    input_ids: &[u32],
    target_ids: &[u32],
    rows: usize,
    seq: usize,
    opts: &LogprobOptions,
) -> (B::Tensor, Option<B::Tensor>) {
    let b = &model.backend;
    let (with_entropy, temperature) = (opts.with_entropy, opts.temperature);
    let dim = *b.shape(&hidden).last().expect("hidden is [rows, seq, dim]");
    let flat = b.reshape(hidden, &[rows * seq, dim]);
    let flat_for_copy = flat.clone();
    let all: Vec<Range<usize>>;
    let spans = match opts.spans {
        Some(s) => {
            assert_eq!(s.len(), rows, "target_logprobs: one span per row");
            assert!(s.iter().all(|r| r.start <= r.end && r.end <= seq), "target_logprobs: spans within the row");
            s
        }
        None => {
            all = vec![0..seq; rows];
            &all
        }
    };
    let whole = spans.iter().all(|r| *r == (0..seq));
    // The needed positions packed into `[needed, dim]`, with their targets.
    let (packed, targets) = if whole {
        (flat, target_ids.to_vec())
    } else {
        let pieces: Vec<B::Tensor> =
            spans.iter().enumerate().filter(|(_, r)| !r.is_empty()).map(|(row, r)| b.narrow(flat.clone(), 0, row * seq + r.start, r.len())).collect();
        let targets = spans.iter().enumerate().flat_map(|(row, r)| target_ids[row * seq + r.start..row * seq + r.end].iter().copied()).collect();
        match pieces.len() {
            0 => {
                // Nothing is needed, but the result must still be a tensor of the graph (a
                // backward pass through it gives every parameter its zero gradient, as a
                // whole-batch projection multiplied by zero weights would): zero times one
                // position's logits, then constant zeros.
                let n = rows * seq;
                let first = b.narrow(flat, 0, 0, 1);
                let logits = match &model.copy_head {
                    Some(head) => head.mix(b, first.clone(), model.lm_head(first.clone()), head.keys(b, first), &input_ids[..1], 0),
                    None => model.lm_head(first),
                };
                let tracked_zero = b.reshape(b.mul_scalar(b.sum_dim(logits, 1), 0.0), &[1]);
                let zeros = if n == 1 { tracked_zero } else { b.cat(vec![tracked_zero, b.tensor(vec![0.0; n - 1], &[n - 1])], 0) };
                return (zeros.clone(), with_entropy.then_some(zeros));
            }
            1 => (pieces.into_iter().next().expect("one piece"), targets),
            _ => (b.cat(pieces, 0), targets),
        }
    };
    let needed = targets.len();
    let mut picked = Vec::new();
    let mut entropies = Vec::new();
    let mut score = |mut logits: B::Tensor, targets: &[u32]| {
        if temperature != 1.0 {
            logits = b.mul_scalar(logits, 1.0 / temperature);
        }
        let logp = b.log_softmax(logits, 1);
        picked.push(b.reshape(b.gather_last(logp.clone(), targets), &[targets.len()]));
        if with_entropy {
            let p = b.exp(logp.clone());
            entropies.push(b.mul_scalar(b.sum_dim(b.mul(p, logp), 1), -1.0));
        }
    };
    if let Some(head) = &model.copy_head {
        // The pointer head attends within a row: one piece per row's span, whose keys are the
        // row's positions up to the span's end (the vocabulary here is a tiny preset's).
        let mut offset = 0;
        for (row, r) in spans.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            let h = b.narrow(flat_for_copy.clone(), 0, row * seq, r.end);
            let queries = b.narrow(h.clone(), 0, r.start, r.len());
            let logits = head.mix(b, queries.clone(), model.lm_head(queries), head.keys(b, h), &input_ids[row * seq..row * seq + r.end], r.start);
            score(logits, &targets[offset..offset + r.len()]);
            offset += r.len();
        }
    } else {
        let chunk = (opts.chunk_elements / model.config.vocab_size.max(1)).max(1);
        for start in (0..needed).step_by(chunk) {
            let len = chunk.min(needed - start);
            let h = if len == needed { packed.clone() } else { b.narrow(packed.clone(), 0, start, len) };
            score(model.lm_head(h), &targets[start..start + len]);
        }
    }
    let joined = |parts: Vec<B::Tensor>| if parts.len() == 1 { parts.into_iter().next().expect("one part") } else { b.cat(parts, 0) };
    let picked = joined(picked);
    let entropy = with_entropy.then(|| b.reshape(joined(entropies), &[needed]));
    if whole {
        return (picked, entropy);
    }
    // Back to `[rows * seq]`: zeros around each row's span.
    let unpack = |packed: B::Tensor| {
        let mut parts = Vec::new();
        let mut offset = 0;
        let mut zeros = 0;
        for r in spans {
            zeros += r.start;
            if !r.is_empty() {
                if zeros > 0 {
                    parts.push(b.tensor(vec![0.0; zeros], &[zeros]));
                }
                parts.push(b.narrow(packed.clone(), 0, offset, r.len()));
                offset += r.len();
                zeros = 0;
            }
            zeros += seq - r.end;
        }
        if zeros > 0 {
            parts.push(b.tensor(vec![0.0; zeros], &[zeros]));
        }
        b.cat(parts, 0)
    };
    (unpack(picked), entropy.map(unpack))
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
    let (lp, _) = target_logprobs(model, &inputs, &targets, batch, width, &lengths, &LogprobOptions::default());
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

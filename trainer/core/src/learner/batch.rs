//! Batching, in one place: a step's segments split into mini-batches (one optimizer step each,
//! by a seeded shuffle), each mini-batch packed into micro-batches under a token budget
//! (first-fit decreasing, ties broken by index; gradients accumulate across them), and each
//! micro-batch laid out as right-padded rows.
//!
//! A segment `prompt_ids ++ response_ids` of length L becomes one row whose inputs are its first
//! L − 1 tokens and whose targets are its last L − 1 tokens (next-token prediction). A target
//! position carries loss only where the segment's `loss_mask` marks a policy-generated token;
//! prompt, environment and padding positions carry none. To keep a mini-batch's loss exactly its
//! aggregation (e.g. the token mean over the whole mini-batch), the aggregation weights are
//! computed once over the mini-batch ([`mini_batch_weights`]) and Σ w·ℓ summed over its
//! micro-batches ([`crate::loss::policy_loss_with_weights`]).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::loss::{LossBatch, LossConfig, aggregation_weights};
use crate::segments::Segment;

/// Shuffles `0..n_segments` with `seed` and cuts it into `mini_batches` near-equal parts (the
/// first `n % mini_batches` parts get one extra). Empty parts are dropped, so fewer segments
/// than mini-batches gives one part per segment.
pub fn split_mini_batches(n_segments: usize, mini_batches: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n_segments).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let parts = mini_batches.max(1);
    let (base, extra) = (n_segments / parts, n_segments % parts);
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for p in 0..parts {
        let len = base + usize::from(p < extra);
        if len > 0 {
            out.push(order[start..start + len].to_vec());
        }
        start += len;
    }
    out
}

/// Packs the segments `members` (indices into `token_lengths`) into micro-batches whose total
/// tokens stay within `budget`, by first-fit decreasing. A segment longer than the budget gets a
/// micro-batch of its own (it cannot be split); see [`oversized`]. Each micro-batch lists its
/// indices in ascending order.
pub fn pack_micro_batches(members: &[usize], token_lengths: &[usize], budget: usize) -> Vec<Vec<usize>> {
    let mut order = members.to_vec();
    order.sort_by_key(|&i| (std::cmp::Reverse(token_lengths[i]), i));
    let mut bins: Vec<(usize, Vec<usize>)> = Vec::new();
    for i in order {
        let len = token_lengths[i];
        match bins.iter_mut().find(|(used, _)| used + len <= budget) {
            Some((used, items)) => {
                *used += len;
                items.push(i);
            }
            None => bins.push((len, vec![i])),
        }
    }
    bins.into_iter()
        .map(|(_, mut items)| {
            items.sort_unstable();
            items
        })
        .collect()
}

/// The members longer than `budget` (each trained alone, over budget).
pub fn oversized(members: &[usize], token_lengths: &[usize], budget: usize) -> Vec<usize> {
    members.iter().copied().filter(|&i| token_lengths[i] > budget).collect()
}

/// One micro-batch, row-major `[rows, seq]` in every per-position vector.
#[derive(Debug, Clone, PartialEq)]
pub struct MicroBatch {
    /// Number of rows (segments).
    pub rows: usize,
    /// Padded row length (input positions).
    pub seq: usize,
    /// Input token ids; padding positions hold `pad_id`.
    pub input_ids: Vec<u32>,
    /// Target token ids (the next token); padding positions hold `pad_id`.
    pub target_ids: Vec<u32>,
    /// Valid input positions of each row.
    pub lengths: Vec<usize>,
    /// 1 where the target is a policy-generated token.
    pub loss_mask: Vec<u8>,
    /// The rollout's log-prob of each target (0 where the mask is 0).
    pub rollout_logprobs: Vec<f32>,
    /// The advantage of each target (0 where the mask is 0).
    pub advantages: Vec<f32>,
    /// Which segment (index into the packed slice) each row holds.
    pub segment_of_row: Vec<usize>,
    /// Segment id of each position (for `seq_mean_token_mean`): the segment's slice index.
    pub segment_ids: Vec<u64>,
    /// Trajectory id of each position (for `trajectory_mean`).
    pub trajectory_ids: Vec<u64>,
}

impl MicroBatch {
    /// Positions that carry loss.
    pub fn loss_tokens(&self) -> usize {
        self.loss_mask.iter().filter(|&&m| m != 0).count()
    }

    /// Each row's positions from its first to its last loss position (empty for a row without
    /// one): what the learner projects onto the vocabulary.
    pub fn loss_spans(&self) -> Vec<std::ops::Range<usize>> {
        self.loss_mask
            .chunks(self.seq.max(1))
            .take(self.rows)
            .map(|row| match (row.iter().position(|&m| m != 0), row.iter().rposition(|&m| m != 0)) {
                (Some(first), Some(last)) => first..last + 1,
                _ => 0..0,
            })
            .collect()
    }
}

/// The aggregation weight (under `config.aggregation` and `config.segment_weighting`) of every
/// position of every micro-batch of one mini-batch, computed over the whole mini-batch (so a token mean is the mean over all its tokens, however the
/// mini-batch was split for gradient accumulation). Segment ids must be unique across the
/// micro-batches; [`MicroBatch::build`] uses indices into the step's segment list, which are.
pub fn mini_batch_weights(config: &LossConfig, micro_batches: &[MicroBatch]) -> Vec<Vec<f64>> {
    let concat = LossBatch {
        mask: micro_batches.iter().flat_map(|m| m.loss_mask.iter().copied()).collect(),
        segment_ids: micro_batches.iter().flat_map(|m| m.segment_ids.iter().copied()).collect(),
        trajectory_ids: micro_batches.iter().flat_map(|m| m.trajectory_ids.iter().copied()).collect(),
        ..LossBatch::default()
    };
    let all = aggregation_weights(config, &concat);
    let mut out = Vec::with_capacity(micro_batches.len());
    let mut offset = 0;
    for m in micro_batches {
        let n = m.loss_mask.len();
        out.push(all[offset..offset + n].to_vec());
        offset += n;
    }
    out
}

impl MicroBatch {
    /// Lays out the segments `rows` (indices into `segments`, with per-response-token
    /// `advantages` aligned with each segment's `response_ids`) as one right-padded batch.
    pub fn build(segments: &[Segment], advantages: &[Vec<f32>], rows: &[usize], pad_id: u32) -> MicroBatch {
        lay_out(segments, advantages, rows, pad_id)
    }
}

fn lay_out(segments: &[Segment], advantages: &[Vec<f32>], rows: &[usize], pad_id: u32) -> MicroBatch {
    let seq = rows.iter().map(|&i| segments[i].prompt_ids.len() + segments[i].response_ids.len() - 1).max().unwrap_or(0);
    let n = rows.len() * seq;
    let mut b = MicroBatch {
        rows: rows.len(),
        seq,
        input_ids: vec![pad_id; n],
        target_ids: vec![pad_id; n],
        lengths: Vec::with_capacity(rows.len()),
        loss_mask: vec![0; n],
        rollout_logprobs: vec![0.0; n],
        advantages: vec![0.0; n],
        segment_of_row: rows.to_vec(),
        segment_ids: vec![0; n],
        trajectory_ids: vec![0; n],
    };
    for (r, &i) in rows.iter().enumerate() {
        let s = &segments[i];
        let p = s.prompt_ids.len();
        let full: Vec<u32> = s.prompt_ids.iter().chain(&s.response_ids).copied().collect();
        let len = full.len() - 1;
        b.lengths.push(len);
        let row = r * seq;
        b.input_ids[row..row + len].copy_from_slice(&full[..len]);
        b.target_ids[row..row + len].copy_from_slice(&full[1..]);
        for pos in 0..seq {
            b.segment_ids[row + pos] = i as u64;
            b.trajectory_ids[row + pos] = s.trajectory_id;
        }
        // Target position `pos` predicts full[pos + 1], which is response token pos + 1 − p.
        for (k, &m) in s.loss_mask.iter().enumerate() {
            if m == 0 || p + k == 0 {
                continue;
            }
            let pos = row + p + k - 1;
            b.loss_mask[pos] = 1;
            b.rollout_logprobs[pos] = s.rollout_logprobs[k];
            b.advantages[pos] = advantages[i][k];
        }
    }
    b
}

/// Token lengths of each segment as the learner sees them (inputs = all tokens but the last).
fn segment_lengths(segments: &[Segment]) -> Vec<usize> {
    segments.iter().map(|s| s.prompt_ids.len() + s.response_ids.len() - 1).collect()
}

/// The whole batching of one epoch: `mini_batches` mini-batches (shuffled with `seed`) of
/// micro-batches of at most `micro_batch_tokens` real tokens, laid out with `pad_id`, in a
/// deterministic order.
pub fn plan(segments: &[Segment], advantages: &[Vec<f32>], mini_batches: usize, micro_batch_tokens: usize, seed: u64, pad_id: u32) -> Vec<Vec<MicroBatch>> {
    let lengths = segment_lengths(segments);
    split_mini_batches(segments.len(), mini_batches.max(1), seed)
        .into_iter()
        .map(|members| {
            pack_micro_batches(&members, &lengths, micro_batch_tokens.max(1))
                .into_iter()
                .map(|rows| MicroBatch::build(segments, advantages, &rows, pad_id))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::LossAggregation;

    fn agg(aggregation: LossAggregation) -> LossConfig {
        LossConfig { aggregation, ..LossConfig::default() }
    }

    #[test]
    fn mini_batches_partition_the_segments_deterministically() {
        let parts = split_mini_batches(10, 3, 5);
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 3, 3]);
        let mut all: Vec<usize> = parts.concat();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(parts, split_mini_batches(10, 3, 5));
        assert_ne!(parts, split_mini_batches(10, 3, 6));
        assert_eq!(split_mini_batches(2, 4, 0).len(), 2);
        assert!(split_mini_batches(0, 2, 0).is_empty());
    }

    #[test]
    fn first_fit_decreasing_respects_the_budget() {
        // Lengths 6, 5, 4, 3, 2 (indices 0..5) into budget 10:
        // 6 → bin A; 5 → bin B (6+5 > 10); 4 → A (10); 3 → B (8); 2 → B (10).
        let lengths = [6, 5, 4, 3, 2, 50];
        let bins = pack_micro_batches(&[0, 1, 2, 3, 4], &lengths, 10);
        assert_eq!(bins, vec![vec![0, 2], vec![1, 3, 4]]);
        // An oversized segment is alone.
        let bins = pack_micro_batches(&[5, 4], &lengths, 10);
        assert_eq!(bins, vec![vec![5], vec![4]]);
        assert_eq!(oversized(&[5, 4], &lengths, 10), vec![5]);
    }

    fn seg(traj: u64, prompt: &[u32], response: &[u32], mask: &[u8]) -> Segment {
        Segment {
            trajectory_id: traj,
            group_id: 0,
            index: 0,
            is_last: true,
            prompt_ids: prompt.to_vec(),
            response_ids: response.to_vec(),
            loss_mask: mask.to_vec(),
            rollout_logprobs: response.iter().map(|&t| -(t as f32) / 10.0).collect(),
            policy_version: 0,
        }
    }

    #[test]
    fn targets_and_masks_line_up() {
        // prompt [1, 2], response [3 (policy), 4 (env), 5 (policy)]
        let s = seg(9, &[1, 2], &[3, 4, 5], &[1, 0, 1]);
        let adv = vec![vec![0.5, 0.0, 0.5]];
        let b = MicroBatch::build(std::slice::from_ref(&s), &adv, &[0], 0);
        let b = &b;
        assert_eq!((b.rows, b.seq), (1, 4));
        assert_eq!(b.input_ids, vec![1, 2, 3, 4]);
        assert_eq!(b.target_ids, vec![2, 3, 4, 5]);
        assert_eq!(b.loss_mask, vec![0, 1, 0, 1]);
        assert_eq!(b.rollout_logprobs, vec![0.0, -0.3, 0.0, -0.5]);
        assert_eq!(b.advantages, vec![0.0, 0.5, 0.0, 0.5]);
        assert_eq!(b.trajectory_ids, vec![9; 4]);
        assert_eq!(b.loss_tokens(), 2);
    }

    #[test]
    fn rows_pad_and_weights_span_the_mini_batch() {
        let segs = vec![seg(0, &[1, 2, 3], &[4, 5], &[1, 1]), seg(1, &[1], &[2], &[1]), seg(2, &[1, 2, 3, 4, 5, 6], &[7], &[1])];
        let adv: Vec<Vec<f32>> = segs.iter().map(|s| vec![1.0; s.response_ids.len()]).collect();
        let a = MicroBatch::build(&segs, &adv, &[0, 1], 99);
        let b = MicroBatch::build(&segs, &adv, &[2], 99);
        assert_eq!(a.lengths, vec![4, 1]);
        assert_eq!(&a.input_ids[4..], &[1, 99, 99, 99]);
        assert_eq!(&a.loss_mask[4..], &[1, 0, 0, 0]);
        // Every policy token of every segment carries loss exactly once.
        assert_eq!(a.loss_tokens() + b.loss_tokens(), 4);
        // Token mean over the whole mini-batch: every loss token weighs 1/4, whichever micro-batch holds it.
        let w = mini_batch_weights(&agg(LossAggregation::TokenMean), &[a.clone(), b.clone()]);
        let nonzero: Vec<f64> = w.iter().flatten().copied().filter(|&x| x > 0.0).collect();
        assert_eq!(nonzero, vec![0.25; 4]);
        // Per-segment mean: 3 segments, each segment's tokens share 1/3.
        let w = mini_batch_weights(&agg(LossAggregation::SeqMeanTokenMean), &[a, b]);
        let total: f64 = w.iter().flatten().sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert!((w[1].iter().sum::<f64>() - 1.0 / 3.0).abs() < 1e-12);
    }
}

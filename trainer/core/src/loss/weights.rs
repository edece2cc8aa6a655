//! Aggregation weights: how per-token losses become one scalar, as one weight per token
//! ([`aggregation_weights`], the single dispatch point over [`LossAggregation`] and
//! [`SegmentWeighting`]).
//!
//! Notation, over the (mini-)batch the weights are computed for, counting only tokens with
//! mask 1 and only segments / trajectories that have at least one such token: N tokens, S
//! segments, T trajectories; n_s tokens in segment s; k_τ segments of trajectory τ; C the
//! `dr_grpo` constant ([`LossConfig::sum_norm_tokens`]).
//!
//! | aggregation \ segment weighting | `unweighted` (default) | `trajectory_equal` | `token_proportional` |
//! |---|---|---|---|
//! | `token_mean` | 1 / N | refused | refused |
//! | `seq_mean_token_mean` | 1 / (S·n_s) | 1 / (T·k_τ·n_s) | 1 / N |
//! | `dr_grpo` | 1 / (S·C) | 1 / (T·k_τ·C) | refused |
//! | `trajectory_mean` | 1 / (T·N_τ) | refused | refused |
//!
//! A sequence-level aggregation first gives each segment a share W_s, then spreads it over the
//! segment's tokens: `seq_mean_token_mean` by the segment's token mean (w = W_s / n_s),
//! `dr_grpo` by a constant-length sum (w = W_s / C, Dr. GRPO's "no length normalisation": a
//! token's weight does not depend on how long its sequence is). The segment weighting chooses
//! W_s: `unweighted` W_s = 1/S (each segment is a sequence, as in MemAct: a trajectory that
//! fractured into k segments gets k shares); `trajectory_equal` W_s = 1/(T·k_τ) (each trajectory
//! gets one share, split equally among its segments); `token_proportional` W_s = n_s/N (a
//! segment weighs by its tokens, which under `seq_mean_token_mean` is exactly `token_mean`).
//!
//! `token_mean` and `trajectory_mean` do not see segments (a token mean is unchanged by where
//! a trajectory fractured, and `trajectory_mean` already gives each trajectory one share), so
//! a segment weighting other than `unweighted` would do nothing there and is refused by
//! [`LossConfig::validate`]; so is `token_proportional` with `dr_grpo`, which would weigh a
//! sequence by its length, the very normalisation Dr. GRPO removes.
//!
//! Counts are taken over the batch the weights are computed for: in the learner, the
//! mini-batch of one optimizer step (so k_τ counts the trajectory's segments in that
//! mini-batch; with one mini-batch, the default, that is all of them).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{LossAggregation, LossBatch, LossConfig};

/// How the segments of one trajectory share its weight under a sequence-level aggregation
/// (see the table in this module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentWeighting {
    /// Each segment is one sequence (MemAct): W_s = 1/S (default).
    #[default]
    Unweighted,
    /// Each trajectory gets one share, split equally among its segments: W_s = 1/(T·k_τ).
    TrajectoryEqual,
    /// Each segment weighs by its policy tokens: W_s = n_s/N.
    TokenProportional,
}

/// The aggregation weight of each token under `config.aggregation` and
/// `config.segment_weighting`. Weights are 0 on unmasked tokens; they sum to 1 over masked
/// tokens for every mode but `dr_grpo` (whose weights sum to (Σ_s W_s·n_s)/C), and are all 0
/// when no token is masked.
pub fn aggregation_weights(config: &LossConfig, batch: &LossBatch) -> Vec<f64> {
    let (mask, segments, trajectories) = (&batch.mask, &batch.segment_ids, &batch.trajectory_ids);
    match (config.aggregation, config.segment_weighting) {
        (LossAggregation::TokenMean, _) | (LossAggregation::SeqMeanTokenMean, SegmentWeighting::TokenProportional) => token_mean_weights(mask),
        (LossAggregation::SeqMeanTokenMean, SegmentWeighting::Unweighted) => grouped_mean_weights(mask, segments),
        (LossAggregation::TrajectoryMean, _) => grouped_mean_weights(mask, trajectories),
        (LossAggregation::SeqMeanTokenMean, weighting) => {
            let share = segment_shares(mask, segments, trajectories, weighting);
            let counts = masked_counts(mask, segments);
            spread(mask, segments, |s| share[&s] / counts[&s] as f64)
        }
        (LossAggregation::DrGrpo, weighting) => {
            let share = segment_shares(mask, segments, trajectories, weighting);
            let norm = config.sum_norm_tokens;
            spread(mask, segments, |s| share[&s] / norm)
        }
    }
}

/// token_mean: m_t / Σ m.
fn token_mean_weights(mask: &[u8]) -> Vec<f64> {
    let total = mask.iter().filter(|&&m| m != 0).count();
    mask.iter().map(|&m| if m != 0 { 1.0 / total as f64 } else { 0.0 }).collect()
}

/// Mean over groups (segments or trajectories) of the group's token mean:
/// m_t / (Σ_{g(t)} m · number of groups with a masked token).
fn grouped_mean_weights(mask: &[u8], group_of: &[u64]) -> Vec<f64> {
    let counts = masked_counts(mask, group_of);
    let groups = counts.len() as f64;
    mask.iter().zip(group_of).map(|(&m, g)| if m != 0 { 1.0 / (counts[g] as f64 * groups) } else { 0.0 }).collect()
}

/// Masked tokens per group, for the groups that have any.
fn masked_counts(mask: &[u8], group_of: &[u64]) -> BTreeMap<u64, usize> {
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for (&m, &g) in mask.iter().zip(group_of) {
        if m != 0 {
            *counts.entry(g).or_default() += 1;
        }
    }
    counts
}

/// W_s of every segment with a masked token (they sum to 1).
fn segment_shares(mask: &[u8], segments: &[u64], trajectories: &[u64], weighting: SegmentWeighting) -> BTreeMap<u64, f64> {
    let tokens = masked_counts(mask, segments);
    match weighting {
        SegmentWeighting::Unweighted => {
            let s = tokens.len() as f64;
            tokens.keys().map(|&k| (k, 1.0 / s)).collect()
        }
        SegmentWeighting::TokenProportional => {
            let n: usize = tokens.values().sum();
            tokens.iter().map(|(&k, &c)| (k, c as f64 / n as f64)).collect()
        }
        SegmentWeighting::TrajectoryEqual => {
            let mut trajectory_of: BTreeMap<u64, u64> = BTreeMap::new();
            for ((&m, &s), &t) in mask.iter().zip(segments).zip(trajectories) {
                if m != 0 {
                    trajectory_of.insert(s, t);
                }
            }
            let mut per_trajectory: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
            for (&s, &t) in &trajectory_of {
                per_trajectory.entry(t).or_default().insert(s);
            }
            let t = per_trajectory.len() as f64;
            trajectory_of.iter().map(|(&s, tr)| (s, 1.0 / (t * per_trajectory[tr].len() as f64))).collect()
        }
    }
}

/// The weight `per_segment(s)` on every masked token of segment s, 0 elsewhere.
fn spread(mask: &[u8], segments: &[u64], per_segment: impl Fn(u64) -> f64) -> Vec<f64> {
    mask.iter().zip(segments).map(|(&m, &s)| if m != 0 { per_segment(s) } else { 0.0 }).collect()
}

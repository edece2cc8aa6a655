//! Advantage estimators, one function each, and their broadcast onto segment tokens.
//!
//! Outcome estimators ([`grpo`], [`dr_grpo`], [`rloo`], [`reinforce_pp`]) turn one scalar reward
//! per trajectory into one advantage per trajectory. Statistics are taken over **distinct
//! trajectories** (a trajectory split into many segments counts once, as in MemAct's
//! `compute_dcpo_outcome_advantage` and SUPO Eq. 3). [`broadcast_to_segments`] then copies each
//! trajectory's advantage onto every policy token of every one of its segments.
//!
//! [`gae`] is PPO's generalised advantage estimator over per-token rewards and values; see
//! [`gae_batch`] for its segment-aware form.
//!
//! Overlong masking (SUPO §4; on by default, here and in the run config): with `mask_overlong`, a
//! trajectory that ended by a budget without answering (cut off by the rollout's limits, or ended
//! by the environment's own turn or context budget: [`TrajectoryOutcome::truncated`]) is removed
//! from the group statistics, gets advantage 0, and all its tokens get loss mask 0, so it is
//! neither penalised nor rewarded.
//!
//! Groups of one: a group played once (`group_size = 1`) has no baseline, and every group
//! estimator returns A = R. This follows verl (`mean = 0, std = 1` for singleton groups) and
//! MemAct (`A = R` when `|S_u| = 1`). Choose `group_size >= 2` to avoid it. A group that
//! masking reduced to one trajectory gets A = 0 instead: its lone survivor has no baseline
//! either, and A = R would reward it in absolute terms only because its siblings ran out of
//! budget.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::segments::Segment;
use crate::stats::mean;

/// Which advantage estimator the learner uses; one function per variant in this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvantageEstimator {
    /// (R − group mean) / (unbiased group std + eps) over distinct trajectories (default).
    #[default]
    Grpo,
    /// R − group mean, no std division (Dr. GRPO; MemAgent's `grpo_use_adv=False`).
    DrGrpo,
    /// R − mean of the *other* trajectories of the group (leave-one-out).
    Rloo,
    /// (R − batch mean) / (unbiased batch std + eps), over all distinct trajectories of the batch.
    ReinforcePp,
    /// PPO's GAE over per-token rewards and a value head (see [`gae_batch`]).
    Gae,
}

/// One finished trajectory's outcome, the input of the outcome estimators.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryOutcome {
    /// The trajectory.
    pub trajectory_id: u64,
    /// Its group (the task it is a rollout of).
    pub group_id: u64,
    /// The scalar reward the environment gave the whole trajectory.
    pub reward: f64,
    /// True if the trajectory ended by a budget (turns, tokens, summaries) without answering.
    pub truncated: bool,
}

/// The advantage assigned to one trajectory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryAdvantage {
    /// The trajectory's group.
    pub group_id: u64,
    /// The advantage (0 when `masked`).
    pub advantage: f64,
    /// True if the trajectory is removed from the loss (overlong masking).
    pub masked: bool,
}

/// Options shared by the outcome estimators.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdvantageOptions {
    /// Added to the std before dividing (GRPO, REINFORCE++); verl and MemAct use 1e-6. Must be
    /// > 0: with 0, a group of equal rewards divides 0 (or rounding noise) by 0.
    pub eps: f64,
    /// Remove truncated trajectories from statistics and loss (SUPO overlong masking).
    pub mask_overlong: bool,
}

impl Default for AdvantageOptions {
    /// eps 1e-6, overlong masking on (the run config's defaults too).
    fn default() -> Self {
        Self { eps: 1e-6, mask_overlong: true }
    }
}

/// Errors from computing or broadcasting advantages.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AdvantageError {
    /// A reward is NaN or infinite.
    #[error("trajectory {trajectory_id}: reward {reward} is not finite")]
    NonFiniteReward {
        /// The trajectory.
        trajectory_id: u64,
        /// The reward.
        reward: f64,
    },
    /// The same trajectory appears twice with different group, reward or truncation.
    #[error("trajectory {trajectory_id} appears twice with conflicting group/reward/truncation")]
    ConflictingOutcome {
        /// The trajectory.
        trajectory_id: u64,
    },
    /// A segment's trajectory has no advantage.
    #[error("segment {index} of trajectory {trajectory_id} has no advantage (trajectory missing from the outcomes)")]
    MissingTrajectory {
        /// The trajectory.
        trajectory_id: u64,
        /// The segment index.
        index: u32,
    },
    /// The std epsilon is not a finite value > 0.
    #[error("advantage eps = {0}: expected a finite value > 0 (with 0, a group of equal rewards gives 0/0)")]
    InvalidEps(f64),
    /// [`AdvantageEstimator::Gae`] needs per-token values; use [`gae_batch`].
    #[error("the gae estimator needs per-token values: call gae_batch, not outcome_advantages")]
    NeedsValues,
    /// Two aligned inputs have different lengths.
    #[error("{what}: length {got}, expected {expected}")]
    LengthMismatch {
        /// Which input, e.g. `values[3]`.
        what: String,
        /// Its length.
        got: usize,
        /// The length it must have.
        expected: usize,
    },
    /// A per-token value or reward is NaN or infinite.
    #[error("{what}[{token}] = {value} is not finite")]
    NonFiniteToken {
        /// Which input, e.g. `values[3]`.
        what: String,
        /// The token index.
        token: usize,
        /// The value.
        value: f64,
    },
}

/// Per-trajectory advantages of one batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Advantages {
    /// Advantage of each distinct trajectory, by trajectory id.
    pub by_trajectory: BTreeMap<u64, TrajectoryAdvantage>,
}

/// Summary statistics of a batch's advantages, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct AdvantageSummary {
    /// Mean over unmasked trajectories (0 if none).
    pub mean: f64,
    /// Population std over unmasked trajectories (0 if none).
    pub std: f64,
    /// Minimum over unmasked trajectories (0 if none).
    pub min: f64,
    /// Maximum over unmasked trajectories (0 if none).
    pub max: f64,
    /// Number of trajectories removed by overlong masking.
    pub masked: usize,
    /// Number of unmasked trajectories whose advantage is exactly 0 (e.g. groups with equal rewards).
    pub zero: usize,
}

impl Advantages {
    /// The advantage of trajectory `id`, if present.
    pub fn get(&self, id: u64) -> Option<&TrajectoryAdvantage> {
        self.by_trajectory.get(&id)
    }

    /// Summary statistics for logging.
    pub fn summary(&self) -> AdvantageSummary {
        let live: Vec<f64> = self.by_trajectory.values().filter(|a| !a.masked).map(|a| a.advantage).collect();
        let masked = self.by_trajectory.len() - live.len();
        if live.is_empty() {
            return AdvantageSummary { masked, ..Default::default() };
        }
        let (mean, std) = crate::stats::mean_std(&live);
        AdvantageSummary {
            mean,
            std,
            min: live.iter().copied().fold(f64::INFINITY, f64::min),
            max: live.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            masked,
            zero: live.iter().filter(|&&a| a == 0.0).count(),
        }
    }
}

/// Unbiased (n − 1) standard deviation; 0 for fewer than two values.
fn unbiased_std(xs: &[f64]) -> f64 {
    crate::stats::sample_std(xs).unwrap_or(0.0)
}

/// GRPO over one group: (R − mean) / (unbiased std + eps). A group of one gets A = R.
pub fn grpo(rewards: &[f64], eps: f64) -> Vec<f64> {
    if rewards.len() == 1 {
        return rewards.to_vec();
    }
    let (m, s) = (mean(rewards), unbiased_std(rewards));
    rewards.iter().map(|r| (r - m) / (s + eps)).collect()
}

/// Dr. GRPO over one group: R − mean (no std). A group of one gets A = R.
pub fn dr_grpo(rewards: &[f64]) -> Vec<f64> {
    if rewards.len() == 1 {
        return rewards.to_vec();
    }
    let m = mean(rewards);
    rewards.iter().map(|r| r - m).collect()
}

/// RLOO over one group: R_i − mean_{j≠i} R_j. A group of one gets A = R.
pub fn rloo(rewards: &[f64]) -> Vec<f64> {
    let n = rewards.len();
    if n == 1 {
        return rewards.to_vec();
    }
    let total: f64 = rewards.iter().sum();
    rewards.iter().map(|r| r - (total - r) / (n - 1) as f64).collect()
}

/// REINFORCE++ over the whole batch: (R − batch mean) / (unbiased batch std + eps).
///
/// verl whitens per *token* (long responses weigh more); here each distinct trajectory counts
/// once, consistent with the group estimators. A batch of one gets A = R.
pub fn reinforce_pp(rewards: &[f64], eps: f64) -> Vec<f64> {
    grpo(rewards, eps)
}

/// Deduplicates outcomes by trajectory id (the same trajectory may be listed once per segment)
/// and validates the rewards. Keeps first-appearance order.
fn distinct_outcomes(outcomes: &[TrajectoryOutcome]) -> Result<Vec<TrajectoryOutcome>, AdvantageError> {
    let mut seen: BTreeMap<u64, TrajectoryOutcome> = BTreeMap::new();
    let mut order = Vec::new();
    for o in outcomes {
        if !o.reward.is_finite() {
            return Err(AdvantageError::NonFiniteReward { trajectory_id: o.trajectory_id, reward: o.reward });
        }
        match seen.get(&o.trajectory_id) {
            Some(prev) if prev != o => {
                return Err(AdvantageError::ConflictingOutcome { trajectory_id: o.trajectory_id });
            }
            Some(_) => {}
            None => {
                seen.insert(o.trajectory_id, *o);
                order.push(*o);
            }
        }
    }
    Ok(order)
}

/// Computes one advantage per distinct trajectory with an outcome estimator (the single dispatch
/// point over [`AdvantageEstimator`] for outcome rewards). `Gae` returns [`AdvantageError::NeedsValues`].
pub fn outcome_advantages(estimator: AdvantageEstimator, outcomes: &[TrajectoryOutcome], options: AdvantageOptions) -> Result<Advantages, AdvantageError> {
    if estimator == AdvantageEstimator::Gae {
        return Err(AdvantageError::NeedsValues);
    }
    if !(options.eps > 0.0 && options.eps.is_finite()) {
        return Err(AdvantageError::InvalidEps(options.eps));
    }
    let distinct = distinct_outcomes(outcomes)?;
    let unit_of = |o: &TrajectoryOutcome| if estimator == AdvantageEstimator::ReinforcePp { 0 } else { o.group_id };
    let mut played: BTreeMap<u64, usize> = BTreeMap::new();
    for o in &distinct {
        *played.entry(unit_of(o)).or_default() += 1;
    }
    let mut result = Advantages::default();
    let mut live: Vec<TrajectoryOutcome> = Vec::new();
    for o in &distinct {
        if options.mask_overlong && o.truncated {
            result.by_trajectory.insert(o.trajectory_id, TrajectoryAdvantage { group_id: o.group_id, advantage: 0.0, masked: true });
        } else {
            live.push(*o);
        }
    }
    // The unit of normalisation: one group per task, or the whole batch for REINFORCE++.
    let mut units: BTreeMap<u64, Vec<TrajectoryOutcome>> = BTreeMap::new();
    for o in live {
        units.entry(unit_of(&o)).or_default().push(o);
    }
    for (unit, members) in &units {
        let rewards: Vec<f64> = members.iter().map(|o| o.reward).collect();
        let advantages = match estimator {
            // Masking left one of several: no baseline, no signal (see the module docs).
            _ if members.len() == 1 && played[unit] > 1 => vec![0.0],
            AdvantageEstimator::Grpo => grpo(&rewards, options.eps),
            AdvantageEstimator::DrGrpo => dr_grpo(&rewards),
            AdvantageEstimator::Rloo => rloo(&rewards),
            AdvantageEstimator::ReinforcePp => reinforce_pp(&rewards, options.eps),
            AdvantageEstimator::Gae => unreachable!("rejected above"),
        };
        for (o, a) in members.iter().zip(advantages) {
            result.by_trajectory.insert(o.trajectory_id, TrajectoryAdvantage { group_id: o.group_id, advantage: a, masked: false });
        }
    }
    Ok(result)
}

/// Per-token training targets of one segment, aligned with its `response_ids`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenAdvantages {
    /// The advantage on each token; 0 where `loss_mask` is 0.
    pub advantages: Vec<f32>,
    /// The segment's loss mask, further zeroed for masked (overlong) trajectories.
    pub loss_mask: Vec<u8>,
}

/// Broadcasts each trajectory's advantage onto every policy token of each of its segments.
/// Output is aligned with `segments`.
pub fn broadcast_to_segments(segments: &[Segment], advantages: &Advantages) -> Result<Vec<TokenAdvantages>, AdvantageError> {
    segments
        .iter()
        .map(|s| {
            let a = advantages.get(s.trajectory_id).ok_or(AdvantageError::MissingTrajectory { trajectory_id: s.trajectory_id, index: s.index })?;
            let keep = !a.masked;
            let loss_mask: Vec<u8> = s.loss_mask.iter().map(|&m| u8::from(m != 0 && keep)).collect();
            let advantages = loss_mask.iter().map(|&m| if m == 1 { a.advantage as f32 } else { 0.0 }).collect();
            Ok(TokenAdvantages { advantages, loss_mask })
        })
        .collect()
}

/// GAE's output over one chain of tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaeOutput {
    /// A_t = Σ_k (γλ)^k δ_{t+k}, with δ_t = r_t + γ V_{t+1} − V_t.
    pub advantages: Vec<f64>,
    /// Value targets: A_t + V_t.
    pub returns: Vec<f64>,
}

/// GAE over one chain of consecutive policy tokens (the episode ends after the last one, so
/// V after it is 0). `rewards` and `values` must have the same length.
pub fn gae(rewards: &[f64], values: &[f64], gamma: f64, lam: f64) -> Result<GaeOutput, AdvantageError> {
    if rewards.len() != values.len() {
        return Err(AdvantageError::LengthMismatch { what: "values".into(), got: values.len(), expected: rewards.len() });
    }
    let n = rewards.len();
    let mut advantages = vec![0.0; n];
    let mut next_value = 0.0;
    let mut next_advantage = 0.0;
    for t in (0..n).rev() {
        let delta = rewards[t] + gamma * next_value - values[t];
        next_advantage = delta + gamma * lam * next_advantage;
        advantages[t] = next_advantage;
        next_value = values[t];
    }
    let returns = advantages.iter().zip(values).map(|(a, v)| a + v).collect();
    Ok(GaeOutput { advantages, returns })
}

/// GAE targets of one segment, aligned with its `response_ids`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaeTokens {
    /// Advantages and the (possibly overlong-masked) loss mask.
    pub tokens: TokenAdvantages,
    /// Value targets; 0 where the loss mask is 0.
    pub returns: Vec<f32>,
}

/// Per-token rewards for GAE from outcome rewards: each trajectory's reward sits on its last
/// policy token (the last 1 in the loss mask of its highest-index segment), 0 elsewhere.
/// Output is aligned with `segments`; trajectories missing from `outcomes` are an error.
pub fn outcome_token_rewards(segments: &[Segment], outcomes: &[TrajectoryOutcome]) -> Result<Vec<Vec<f32>>, AdvantageError> {
    let outcomes = distinct_outcomes(outcomes)?;
    let reward: BTreeMap<u64, f64> = outcomes.iter().map(|o| (o.trajectory_id, o.reward)).collect();
    // (segment position in `segments`, token) of each trajectory's last policy token.
    let mut last: BTreeMap<u64, (u32, usize, usize)> = BTreeMap::new();
    let mut out: Vec<Vec<f32>> = Vec::with_capacity(segments.len());
    for (pos, s) in segments.iter().enumerate() {
        if !reward.contains_key(&s.trajectory_id) {
            return Err(AdvantageError::MissingTrajectory { trajectory_id: s.trajectory_id, index: s.index });
        }
        out.push(vec![0.0; s.response_ids.len()]);
        if let Some(tok) = s.loss_mask.iter().rposition(|&m| m != 0) {
            let entry = last.entry(s.trajectory_id).or_insert((s.index, pos, tok));
            if s.index >= entry.0 {
                *entry = (s.index, pos, tok);
            }
        }
    }
    for (id, (_, pos, tok)) in last {
        out[pos][tok] = reward[&id] as f32;
    }
    Ok(out)
}

/// GAE over a batch of segments. Each trajectory's policy tokens (loss mask 1), taken in segment
/// index order then position, form one chain; environment tokens are skipped (they are not
/// actions). `values` and `token_rewards` are aligned with each segment's `response_ids`
/// (entries at environment tokens are ignored). Output is aligned with `segments`.
pub fn gae_batch(
    segments: &[Segment],
    values: &[Vec<f32>],
    token_rewards: &[Vec<f32>],
    outcomes: &[TrajectoryOutcome],
    gamma: f64,
    lam: f64,
    mask_overlong: bool,
) -> Result<Vec<GaeTokens>, AdvantageError> {
    for (what, list) in [("values", values), ("token_rewards", token_rewards)] {
        if list.len() != segments.len() {
            return Err(AdvantageError::LengthMismatch { what: what.into(), got: list.len(), expected: segments.len() });
        }
        for (i, (row, s)) in list.iter().zip(segments).enumerate() {
            if row.len() != s.response_ids.len() {
                return Err(AdvantageError::LengthMismatch { what: format!("{what}[{i}]"), got: row.len(), expected: s.response_ids.len() });
            }
        }
    }
    let masked: BTreeSet<u64> = distinct_outcomes(outcomes)?.iter().filter(|o| mask_overlong && o.truncated).map(|o| o.trajectory_id).collect();
    let known: BTreeSet<u64> = outcomes.iter().map(|o| o.trajectory_id).collect();
    let mut by_trajectory: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (pos, s) in segments.iter().enumerate() {
        if !known.contains(&s.trajectory_id) {
            return Err(AdvantageError::MissingTrajectory { trajectory_id: s.trajectory_id, index: s.index });
        }
        by_trajectory.entry(s.trajectory_id).or_default().push(pos);
    }
    let mut out: Vec<GaeTokens> = segments
        .iter()
        .map(|s| GaeTokens {
            tokens: TokenAdvantages { advantages: vec![0.0; s.response_ids.len()], loss_mask: vec![0; s.response_ids.len()] },
            returns: vec![0.0; s.response_ids.len()],
        })
        .collect();
    for (id, mut positions) in by_trajectory {
        if masked.contains(&id) {
            continue;
        }
        positions.sort_by_key(|&p| segments[p].index);
        let mut chain: Vec<(usize, usize)> = Vec::new();
        for &p in &positions {
            for (t, &m) in segments[p].loss_mask.iter().enumerate() {
                if m != 0 {
                    chain.push((p, t));
                }
            }
        }
        let mut r = Vec::with_capacity(chain.len());
        let mut v = Vec::with_capacity(chain.len());
        for &(p, t) in &chain {
            for (what, x, dst) in [("token_rewards", token_rewards[p][t], &mut r), ("values", values[p][t], &mut v)] {
                if !x.is_finite() {
                    return Err(AdvantageError::NonFiniteToken { what: format!("{what}[{p}]"), token: t, value: x as f64 });
                }
                dst.push(x as f64);
            }
        }
        let g = gae(&r, &v, gamma, lam)?;
        for (k, &(p, t)) in chain.iter().enumerate() {
            out[p].tokens.advantages[t] = g.advantages[k] as f32;
            out[p].tokens.loss_mask[t] = 1;
            out[p].returns[t] = g.returns[k] as f32;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn grpo_hand_computed() {
        // Rewards [1, 0, 0, 1]: mean 0.5; unbiased var = 4·0.25/3 = 1/3; std = 0.57735027.
        // A = ±0.5 / (0.57735027 + 1e-6) = ±0.86602391.
        let a = grpo(&[1.0, 0.0, 0.0, 1.0], 1e-6);
        let expected = 0.5 / ((1.0f64 / 3.0).sqrt() + 1e-6);
        assert!(close(a[0], expected) && close(a[1], -expected) && close(a[3], expected));
        assert!((expected - 0.866_023_9).abs() < 1e-6);
        // Equal rewards: A = 0.
        assert_eq!(grpo(&[0.3, 0.3], 1e-6), vec![0.0, 0.0]);
        // Singleton: A = R.
        assert_eq!(grpo(&[0.7], 1e-6), vec![0.7]);
    }

    #[test]
    fn dr_grpo_and_rloo_hand_computed() {
        // [3, 1, 2]: mean 2 → [1, -1, 0].
        assert_eq!(dr_grpo(&[3.0, 1.0, 2.0]), vec![1.0, -1.0, 0.0]);
        // Leave-one-out: 3 − (1+2)/2 = 1.5; 1 − (3+2)/2 = −1.5; 2 − (3+1)/2 = 0.
        assert_eq!(rloo(&[3.0, 1.0, 2.0]), vec![1.5, -1.5, 0.0]);
        assert_eq!(rloo(&[5.0]), vec![5.0]);
    }

    fn outcome(id: u64, group: u64, reward: f64, truncated: bool) -> TrajectoryOutcome {
        TrajectoryOutcome { trajectory_id: id, group_id: group, reward, truncated }
    }

    #[test]
    fn groups_are_normalised_separately_and_duplicates_count_once() {
        // Group 0: [1, 0] (trajectory 1 listed twice, e.g. once per segment); group 1: [2, 4].
        let outcomes = [outcome(1, 0, 1.0, false), outcome(1, 0, 1.0, false), outcome(2, 0, 0.0, false), outcome(3, 1, 2.0, false), outcome(4, 1, 4.0, false)];
        let a = outcome_advantages(AdvantageEstimator::DrGrpo, &outcomes, AdvantageOptions::default()).unwrap();
        let adv: Vec<f64> = (1..=4).map(|i| a.get(i).unwrap().advantage).collect();
        assert_eq!(adv, vec![0.5, -0.5, -1.0, 1.0]);
        // REINFORCE++ pools the batch: [1, 0, 2, 4], mean 1.75, unbiased std sqrt(8.75/3).
        let b = outcome_advantages(AdvantageEstimator::ReinforcePp, &outcomes, AdvantageOptions::default()).unwrap();
        let s = (8.75f64 / 3.0).sqrt() + 1e-6;
        assert!(close(b.get(4).unwrap().advantage, 2.25 / s));
        assert!(close(b.get(2).unwrap().advantage, -1.75 / s));
    }

    #[test]
    fn overlong_trajectories_are_masked_and_leave_the_statistics() {
        // Group [1, 0, 0(truncated)]. With masking: stats over [1, 0] → dr_grpo [0.5, -0.5], 3 masked.
        let outcomes = [outcome(1, 0, 1.0, false), outcome(2, 0, 0.0, false), outcome(3, 0, 0.0, true)];
        let on = AdvantageOptions { mask_overlong: true, ..Default::default() };
        let a = outcome_advantages(AdvantageEstimator::DrGrpo, &outcomes, on).unwrap();
        assert_eq!(a.get(1).unwrap().advantage, 0.5);
        assert_eq!(*a.get(3).unwrap(), TrajectoryAdvantage { group_id: 0, advantage: 0.0, masked: true });
        assert_eq!(a.summary().masked, 1);
        // Without masking the truncated one is an ordinary 0 reward: mean 1/3.
        let off = AdvantageOptions { mask_overlong: false, ..Default::default() };
        let b = outcome_advantages(AdvantageEstimator::DrGrpo, &outcomes, off).unwrap();
        assert!(close(b.get(3).unwrap().advantage, -1.0 / 3.0));
    }

    #[test]
    fn bad_outcomes_are_errors() {
        let e = outcome_advantages(AdvantageEstimator::Grpo, &[outcome(1, 0, f64::NAN, false)], AdvantageOptions::default());
        assert!(matches!(e, Err(AdvantageError::NonFiniteReward { trajectory_id: 1, .. })));
        let e = outcome_advantages(AdvantageEstimator::Grpo, &[outcome(1, 0, 1.0, false), outcome(1, 0, 0.0, false)], AdvantageOptions::default());
        assert_eq!(e, Err(AdvantageError::ConflictingOutcome { trajectory_id: 1 }));
        let e = outcome_advantages(AdvantageEstimator::Gae, &[], AdvantageOptions::default());
        assert_eq!(e, Err(AdvantageError::NeedsValues));
    }

    #[test]
    fn gae_hand_computed() {
        // r = [0, 0, 1], V = [0.5, 0.6, 0.7], γ = 0.9, λ = 0.8.
        // δ2 = 1 + 0 − 0.7 = 0.3; δ1 = 0 + 0.9·0.7 − 0.6 = 0.03; δ0 = 0 + 0.9·0.6 − 0.5 = 0.04.
        // A2 = 0.3; A1 = 0.03 + 0.72·0.3 = 0.246; A0 = 0.04 + 0.72·0.246 = 0.21712.
        let g = gae(&[0.0, 0.0, 1.0], &[0.5, 0.6, 0.7], 0.9, 0.8).unwrap();
        for (x, e) in g.advantages.iter().zip([0.21712, 0.246, 0.3]) {
            assert!(close(*x, e), "{x} vs {e}");
        }
        for (x, e) in g.returns.iter().zip([0.71712, 0.846, 1.0]) {
            assert!(close(*x, e));
        }
        // γ = λ = 1 with V = 0: every advantage is the return-to-go.
        assert_eq!(gae(&[1.0, 0.0, 2.0], &[0.0; 3], 1.0, 1.0).unwrap().advantages, vec![3.0, 2.0, 2.0]);
    }

    fn segment(trajectory_id: u64, index: u32, is_last: bool, response: usize, mask: &[u8]) -> Segment {
        Segment {
            trajectory_id,
            group_id: 0,
            index,
            is_last,
            prompt_ids: vec![1, 2],
            response_ids: vec![5; response],
            loss_mask: mask.to_vec(),
            rollout_logprobs: vec![-1.0; response],
            policy_version: 0,
        }
    }

    #[test]
    fn gae_chains_a_fractured_trajectory_across_its_segments_hand_computed() {
        // Trajectory 1 in two segments (listed out of order): segment 0's response is
        // [a, b, env, c], segment 1's [d, e]; trajectory 2 (truncated) is overlong-masked.
        let segments = vec![segment(1, 1, true, 2, &[1, 1]), segment(1, 0, false, 4, &[1, 1, 0, 1]), segment(2, 0, true, 2, &[1, 1])];
        let outcomes = [outcome(1, 0, 1.0, false), outcome(2, 0, 0.5, true)];
        let rewards = outcome_token_rewards(&segments, &outcomes).unwrap();
        assert_eq!(rewards, vec![vec![0.0, 1.0], vec![0.0; 4], vec![0.0, 0.5]], "the reward sits on the trajectory's last policy token");
        // V: a 0.1, b 0.2, (env 9: ignored), c 0.3 | d 0.4, e 0.5; γ 0.9, λ 0.5 (γλ = 0.45).
        let values = vec![vec![0.4, 0.5], vec![0.1, 0.2, 9.0, 0.3], vec![0.7, 0.7]];
        let out = gae_batch(&segments, &values, &rewards, &outcomes, 0.9, 0.5, true).unwrap();
        // δe = 1 − 0.5 = 0.5                          Ae = 0.5
        // δd = 0.9·0.5 − 0.4 = 0.05                   Ad = 0.05 + 0.45·0.5 = 0.275
        // δc = 0.9·0.4 − 0.3 = 0.06 (V across the fracture)  Ac = 0.06 + 0.45·0.275 = 0.18375
        // δb = 0.9·0.3 − 0.2 = 0.07                   Ab = 0.07 + 0.45·0.18375 = 0.1526875
        // δa = 0.9·0.2 − 0.1 = 0.08                   Aa = 0.08 + 0.45·0.1526875 = 0.148709375
        let expect = |got: &[f32], want: &[f64]| {
            for (g, w) in got.iter().zip(want) {
                assert!((f64::from(*g) - w).abs() < 1e-6, "{got:?} vs {want:?}");
            }
        };
        expect(&out[1].tokens.advantages, &[0.148709375, 0.1526875, 0.0, 0.18375]);
        expect(&out[0].tokens.advantages, &[0.275, 0.5]);
        expect(&out[1].returns, &[0.248709375, 0.3526875, 0.0, 0.48375]);
        expect(&out[0].returns, &[0.675, 1.0]);
        assert_eq!(out[1].tokens.loss_mask, vec![1, 1, 0, 1], "the environment token stays out of the loss");
        assert_eq!(out[2].tokens.loss_mask, vec![0, 0], "the truncated trajectory is masked");
        assert_eq!(out[2].tokens.advantages, vec![0.0, 0.0]);
    }
}

//! The policy loss: shared types here (config, token batch, diagnostics, errors, aggregation
//! weights), the f64 oracle with its analytical gradient in [`reference`], and the same loss on
//! the model's backend (differentiable through the new log-probs) in [`tensor`], tested against it.
//!
//! The reference is plain slices of per-token numbers: build a [`LossBatch`] by hand, call
//! [`policy_loss`].
//!
//! Per masked token t (all clamps and the TIS weight as in verl):
//! - ratio ρ = exp(clamp(new − old, ±20))
//! - clipped surrogate ℓ = max(−A·ρ, −A·clip(ρ, 1 − ε_low, 1 + ε_high))   (DAPO's two epsilons)
//! - dual clip (only where A < 0): ℓ ← min(ℓ, −c·A)
//! - truncated importance weight w = min(exp(clamp(old − rollout, ±20)), C), a constant (no
//!   gradient), ℓ ← w·ℓ; a rollout log-prob of −inf is accepted and gives w = C
//! - KL to the frozen reference, k1 = new − ref, or k3 = e^Δ − Δ − 1 with Δ = clamp(ref − new, ±20)
//!   and the result clamped to ±10 (verl's `low_var_kl`); only k3 is clamped
//! - entropy bonus: −α·H_t (H_t is an input; see [`LossOutput::grad_new_logprobs`])
//! - per-token loss ℓ_t = w·ℓ + β·kl − α·H
//!
//! Aggregation ([`LossAggregation`], with [`SegmentWeighting`]; see [`weights`]) turns per-token
//! losses into one number with per-token weights (summing to 1 over masked tokens for every mode
//! but `dr_grpo`); the pg, KL and entropy terms share them.

use serde::{Deserialize, Serialize};

use crate::advantage::TokenAdvantages;
use crate::segments::Segment;

pub mod reference;
pub mod tensor;
pub mod value;
pub mod weights;

pub use reference::{policy_loss, policy_loss_with_weights};
pub use weights::{SegmentWeighting, aggregation_weights};

/// How per-token losses are reduced to one scalar (one function per mode: [`aggregation_weights`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossAggregation {
    /// Σ m·ℓ / Σ m over the whole (micro/mini-)batch: every policy token weighs the same (default).
    #[default]
    TokenMean,
    /// Mean over segments of each segment's token mean; segments with no masked token are skipped.
    SeqMeanTokenMean,
    /// Mean over trajectories of each trajectory's token mean (over all tokens of all its
    /// segments in the batch); trajectories with no masked token are skipped. Many-segment
    /// trajectories thus weigh as much as one-segment ones (Agent Lightning's `per_rollout_mean`).
    TrajectoryMean,
    /// Dr. GRPO's aggregation without length normalisation: each sequence's token *sum*
    /// divided by a constant C ([`LossConfig::sum_norm_tokens`]), averaged over sequences
    /// (verl's `seq-mean-token-sum-norm`). A token's weight does not depend on its sequence's
    /// length. Also accepted as `seq_mean_token_sum_norm`.
    #[serde(alias = "seq_mean_token_sum_norm")]
    DrGrpo,
}

/// Estimator of the KL divergence to the frozen reference policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlEstimator {
    /// k1 = log π − log π_ref (verl `kl`).
    #[serde(alias = "kl")]
    K1,
    /// k3 = e^Δ − Δ − 1, Δ = log π_ref − log π, clamped to ±10 (verl `low_var_kl`; default).
    #[default]
    #[serde(alias = "low_var_kl")]
    K3,
}

/// Loss hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossConfig {
    /// ε_low: the ratio is clipped below at 1 − ε_low.
    pub clip_low: f64,
    /// ε_high: the ratio is clipped above at 1 + ε_high.
    pub clip_high: f64,
    /// Dual-clip constant c (> 1) bounding the loss at −c·A when A < 0; None disables it.
    pub dual_clip: Option<f64>,
    /// Cap C of the truncated importance weight exp(old − rollout); None disables TIS (w = 1).
    pub tis_cap: Option<f64>,
    /// β, the KL coefficient (0 disables the KL term and the need for reference log-probs).
    pub kl_coef: f64,
    /// Which KL estimator.
    pub kl_estimator: KlEstimator,
    /// α, the entropy bonus coefficient (0 disables it).
    pub entropy_coef: f64,
    /// Reduction of per-token losses.
    pub aggregation: LossAggregation,
    /// How a trajectory's segments share its weight under a sequence-level aggregation
    /// ([`weights`]).
    pub segment_weighting: SegmentWeighting,
    /// C of the `dr_grpo` aggregation: the constant each sequence's token sum is divided by
    /// (the application sets the rollout's `max_new_tokens`); unused by the other modes.
    pub sum_norm_tokens: f64,
}

impl Default for LossConfig {
    /// verl's defaults: ε = 0.2/0.2, dual clip 3, TIS cap 2, no KL, no entropy, token mean,
    /// unweighted segments, C = 1.
    fn default() -> Self {
        Self {
            clip_low: 0.2,
            clip_high: 0.2,
            dual_clip: Some(3.0),
            tis_cap: Some(2.0),
            kl_coef: 0.0,
            kl_estimator: KlEstimator::K3,
            entropy_coef: 0.0,
            aggregation: LossAggregation::TokenMean,
            segment_weighting: SegmentWeighting::Unweighted,
            sum_norm_tokens: 1.0,
        }
    }
}

/// A flat batch of tokens (all segments of a micro-batch concatenated), one entry per response
/// token. Optional inputs are empty vectors when not needed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LossBatch {
    /// log π_θ(token) under the current parameters (the differentiated input).
    pub new_logprobs: Vec<f64>,
    /// log π_old(token): the learner's log-prob under the weights that sampled the batch.
    pub old_logprobs: Vec<f64>,
    /// The rollout engine's sampling log-prob of the token.
    pub rollout_logprobs: Vec<f64>,
    /// log π_ref(token); may be empty when `kl_coef` is 0.
    pub ref_logprobs: Vec<f64>,
    /// Advantage per token.
    pub advantages: Vec<f64>,
    /// Loss mask: 1 on trained tokens.
    pub mask: Vec<u8>,
    /// Entropy of the current policy's distribution at each token; may be empty when
    /// `entropy_coef` is 0 (then no entropy diagnostic either).
    pub entropy: Vec<f64>,
    /// A key identifying the token's segment (unique within the batch).
    pub segment_ids: Vec<u64>,
    /// The token's trajectory.
    pub trajectory_ids: Vec<u64>,
}

impl LossBatch {
    /// Flattens segments into a token batch: per segment, its response tokens in order.
    /// `targets` gives the advantages and (overlong-masked) loss mask of each segment (from
    /// [`crate::advantage::broadcast_to_segments`] or `gae_batch`); the log-prob vectors are
    /// aligned with each segment's `response_ids`; `reference` and `entropy` may be empty slices.
    /// Rollout log-probs come from the segments; a token's segment id is the segment's position in
    /// `segments`.
    pub fn from_segments(
        segments: &[Segment],
        targets: &[TokenAdvantages],
        new_logprobs: &[Vec<f64>],
        old_logprobs: &[Vec<f64>],
        reference: &[Vec<f64>],
        entropy: &[Vec<f64>],
    ) -> Result<LossBatch, LossError> {
        let per_segment: [(&'static str, usize, bool); 5] = [
            ("targets", targets.len(), true),
            ("new_logprobs", new_logprobs.len(), true),
            ("old_logprobs", old_logprobs.len(), true),
            ("ref_logprobs", reference.len(), !reference.is_empty()),
            ("entropy", entropy.len(), !entropy.is_empty()),
        ];
        for (field, got, required) in per_segment {
            if required && got != segments.len() {
                return Err(LossError::LengthMismatch { field, got, expected: segments.len() });
            }
        }
        let mut b = LossBatch::default();
        for (k, s) in segments.iter().enumerate() {
            let n = s.response_ids.len();
            let rows: [(&'static str, usize); 5] = [
                ("targets.advantages", targets[k].advantages.len()),
                ("targets.loss_mask", targets[k].loss_mask.len()),
                ("new_logprobs", new_logprobs[k].len()),
                ("old_logprobs", old_logprobs[k].len()),
                ("rollout_logprobs", s.rollout_logprobs.len()),
            ];
            for (field, got) in rows {
                if got != n {
                    return Err(LossError::LengthMismatch { field, got, expected: n });
                }
            }
            if !reference.is_empty() && reference[k].len() != n {
                return Err(LossError::LengthMismatch { field: "ref_logprobs", got: reference[k].len(), expected: n });
            }
            if !entropy.is_empty() && entropy[k].len() != n {
                return Err(LossError::LengthMismatch { field: "entropy", got: entropy[k].len(), expected: n });
            }
            b.new_logprobs.extend(&new_logprobs[k]);
            b.old_logprobs.extend(&old_logprobs[k]);
            b.rollout_logprobs.extend(s.rollout_logprobs.iter().map(|&x| f64::from(x)));
            if !reference.is_empty() {
                b.ref_logprobs.extend(&reference[k]);
            }
            if !entropy.is_empty() {
                b.entropy.extend(&entropy[k]);
            }
            b.advantages.extend(targets[k].advantages.iter().map(|&x| f64::from(x)));
            b.mask.extend(&targets[k].loss_mask);
            b.segment_ids.extend(std::iter::repeat_n(k as u64, n));
            b.trajectory_ids.extend(std::iter::repeat_n(s.trajectory_id, n));
        }
        Ok(b)
    }
}

/// Errors from malformed loss inputs or hyper-parameters.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LossError {
    /// A per-token input has the wrong length.
    #[error("loss input `{field}` has length {got}, expected {expected} (one per token)")]
    LengthMismatch {
        /// The field name.
        field: &'static str,
        /// Its length.
        got: usize,
        /// The number of tokens.
        expected: usize,
    },
    /// A masked token has a non-finite input.
    #[error("loss input `{field}`[{index}] = {value} is not finite")]
    NonFinite {
        /// The field name.
        field: &'static str,
        /// The token index.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A term is enabled but its input is missing.
    #[error("`{field}` is required when `{coef}` is non-zero")]
    MissingInput {
        /// The missing field.
        field: &'static str,
        /// The coefficient that needs it.
        coef: &'static str,
    },
    /// Two settings that cannot be combined.
    #[error("loss config: {0}")]
    Incompatible(&'static str),
    /// A hyper-parameter is out of range.
    #[error("loss config `{field}` = {value}: {expected}")]
    InvalidConfig {
        /// The field name.
        field: &'static str,
        /// The value.
        value: f64,
        /// What is expected.
        expected: &'static str,
    },
}

/// Batch statistics, token means over masked tokens (independent of the aggregation mode).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LossDiagnostics {
    /// Aggregated policy-gradient term (after TIS weighting).
    pub pg_loss: f64,
    /// Aggregated KL term (before multiplying by β); 0 without reference log-probs.
    pub kl_loss: f64,
    /// Aggregated entropy (the bonus is −α times this); 0 without entropies.
    pub entropy_loss: f64,
    /// Fraction of tokens with A < 0 where the low clip binds (ρ < 1 − ε_low).
    pub clip_frac_low: f64,
    /// Fraction of tokens with A > 0 where the high clip binds (ρ > 1 + ε_high).
    pub clip_frac_high: f64,
    /// Fraction of tokens where the dual clip binds.
    pub dual_clip_frac: f64,
    /// Mean of old − new (verl's `ppo_kl`), a cheap estimate of KL(old ‖ new).
    pub approx_kl: f64,
    /// Mean of the chosen KL estimator to the reference; None without reference log-probs.
    pub ref_kl: Option<f64>,
    /// Mean entropy; None without entropies.
    pub entropy_mean: Option<f64>,
    /// Mean truncated importance weight (1 with TIS off).
    pub tis_weight_mean: f64,
    /// Fraction of tokens whose importance weight hit the cap.
    pub tis_capped_frac: f64,
    /// Mean of |clamp(old − rollout, ±20)|, the learner/engine log-prob mismatch (the clamp of
    /// the TIS weight, so a −inf rollout log-prob counts 20).
    pub rollout_logprob_abs_diff: f64,
    /// Number of masked tokens.
    pub tokens: usize,
}

/// The loss, its analytical gradient, and diagnostics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossOutput {
    /// The scalar loss to minimise.
    pub loss: f64,
    /// d loss / d new_logprobs[t] for every token (0 on unmasked tokens). The entropy input is
    /// held fixed: its gradient flows through the logits of the whole distribution, not through
    /// the sampled token's log-prob, so a tensor implementation's autodiff w.r.t. the sampled
    /// log-probs matches this only with `entropy_coef = 0` or with entropy detached.
    pub grad_new_logprobs: Vec<f64>,
    /// The unaggregated per-token loss ℓ_t (0 on unmasked tokens).
    pub per_token_loss: Vec<f64>,
    /// The aggregation weight of each token (sums to 1 over masked tokens, or all 0).
    pub weights: Vec<f64>,
    /// Batch statistics.
    pub diagnostics: LossDiagnostics,
}

impl LossConfig {
    /// Checks the ranges of the hyper-parameters.
    pub fn validate(&self) -> Result<(), LossError> {
        let bad = |field, value, expected| Err(LossError::InvalidConfig { field, value, expected });
        if !(0.0..1.0).contains(&self.clip_low) {
            return bad("clip_low", self.clip_low, "expected 0 <= clip_low < 1");
        }
        if !(self.clip_high >= 0.0 && self.clip_high.is_finite()) {
            return bad("clip_high", self.clip_high, "expected a finite value >= 0");
        }
        if let Some(c) = self.dual_clip
            && !(c > 1.0 && c.is_finite())
        {
            return bad("dual_clip", c, "expected a finite value > 1");
        }
        if let Some(c) = self.tis_cap
            && !(c > 0.0 && c.is_finite())
        {
            return bad("tis_cap", c, "expected a finite value > 0");
        }
        for (field, value) in [("kl_coef", self.kl_coef), ("entropy_coef", self.entropy_coef)] {
            if !value.is_finite() {
                return bad(field, value, "expected a finite value");
            }
        }
        if !(self.sum_norm_tokens > 0.0 && self.sum_norm_tokens.is_finite()) {
            return bad("sum_norm_tokens", self.sum_norm_tokens, "expected a finite value > 0");
        }
        if let Some(why) = self.incompatibility() {
            return Err(LossError::Incompatible(why));
        }
        Ok(())
    }

    /// Why the aggregation and the segment weighting cannot be combined, if they cannot (the
    /// table in [`weights`]).
    pub fn incompatibility(&self) -> Option<&'static str> {
        use LossAggregation as A;
        use SegmentWeighting as W;
        match (self.aggregation, self.segment_weighting) {
            (_, W::Unweighted) | (A::SeqMeanTokenMean, _) | (A::DrGrpo, W::TrajectoryEqual) => None,
            (A::TokenMean, _) => Some(
                "segment weighting has no effect with token_mean aggregation (a token mean does not see segments); \
                 use seq_mean_token_mean or dr_grpo, or unweighted",
            ),
            (A::TrajectoryMean, _) => Some(
                "segment weighting has no effect with trajectory_mean aggregation (each trajectory already has one share); \
                 use seq_mean_token_mean or dr_grpo, or unweighted",
            ),
            (A::DrGrpo, W::TokenProportional) => Some(
                "token_proportional segment weighting would weigh dr_grpo's sequences by their length, the normalisation \
                 dr_grpo removes; use unweighted or trajectory_equal",
            ),
        }
    }
}

pub(crate) fn check_inputs(batch: &LossBatch, config: &LossConfig) -> Result<(), LossError> {
    let n = batch.new_logprobs.len();
    let need_ref = config.kl_coef != 0.0;
    let need_entropy = config.entropy_coef != 0.0;
    if need_ref && batch.ref_logprobs.is_empty() {
        return Err(LossError::MissingInput { field: "ref_logprobs", coef: "kl_coef" });
    }
    if need_entropy && batch.entropy.is_empty() {
        return Err(LossError::MissingInput { field: "entropy", coef: "entropy_coef" });
    }
    let lengths: [(&'static str, usize, bool); 8] = [
        ("old_logprobs", batch.old_logprobs.len(), true),
        ("rollout_logprobs", batch.rollout_logprobs.len(), true),
        ("ref_logprobs", batch.ref_logprobs.len(), !batch.ref_logprobs.is_empty()),
        ("advantages", batch.advantages.len(), true),
        ("mask", batch.mask.len(), true),
        ("entropy", batch.entropy.len(), !batch.entropy.is_empty()),
        ("segment_ids", batch.segment_ids.len(), true),
        ("trajectory_ids", batch.trajectory_ids.len(), true),
    ];
    for (field, got, required) in lengths {
        if required && got != n {
            return Err(LossError::LengthMismatch { field, got, expected: n });
        }
    }
    let floats: [(&'static str, &Vec<f64>); 6] = [
        ("new_logprobs", &batch.new_logprobs),
        ("old_logprobs", &batch.old_logprobs),
        ("rollout_logprobs", &batch.rollout_logprobs),
        ("ref_logprobs", &batch.ref_logprobs),
        ("advantages", &batch.advantages),
        ("entropy", &batch.entropy),
    ];
    for (field, values) in floats {
        for (index, &value) in values.iter().enumerate() {
            // A rollout log-prob may be −inf (segmentation accepts it: a token the sampler
            // reported at probability 0); it only enters the TIS weight and the log-prob gap,
            // both through the clamp of old − rollout to ±20.
            let allowed = field == "rollout_logprobs" && value == f64::NEG_INFINITY;
            if batch.mask[index] != 0 && !value.is_finite() && !allowed {
                return Err(LossError::NonFinite { field, index, value });
            }
        }
    }
    Ok(())
}

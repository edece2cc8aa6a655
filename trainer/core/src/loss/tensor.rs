//! The policy loss on the model's backend, differentiable through the new log-probs.
//!
//! The formulas are those of [`crate::loss::reference`] (the f64 oracle, which also defines
//! the diagnostics); this module builds the same per-token loss out of backend operations so
//! autodiff reaches the model. Everything except the new log-probs (and the entropy) is a
//! constant of the step and stays on the host until it enters as a constant tensor. The tests
//! check value and gradient against the reference on hand-made batches.

use memrl_policies::backend::Backend;

use super::{KlEstimator, LossBatch, LossConfig, LossError, LossOutput, policy_loss_with_weights};

/// The loss as a differentiable scalar tensor (`[1]`), and the reference's output on the same
/// (detached) values, which carries the diagnostics and the f64 loss.
///
/// `weights` are the aggregation weights of these positions, computed over the whole
/// mini-batch ([`crate::learner::batch::mini_batch_weights`]), so that summing this loss over
/// the mini-batch's micro-batches gives the mini-batch's loss. `host.new_logprobs` must hold the
/// values of `new_logprobs` (and `host.entropy` those of `entropy`, when given): the reference
/// computes the diagnostics from them.
pub fn policy_loss_tensor<B: Backend>(
    b: &B,
    new_logprobs: B::Tensor,
    entropy: Option<B::Tensor>,
    host: &LossBatch,
    config: &LossConfig,
    weights: Vec<f64>,
) -> Result<(B::Tensor, LossOutput), LossError> {
    let reference = policy_loss_with_weights(host, config, weights.clone())?;
    let n = host.new_logprobs.len();
    let constant = |v: Vec<f32>| b.tensor(v, &[n]);
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();

    let neg_adv = constant(host.advantages.iter().map(|&a| -a as f32).collect());
    let old = constant(f32s(&host.old_logprobs));

    // ρ = exp(clamp(new − old, ±20)); surrogate = max(−A·ρ, −A·clip(ρ, 1−ε_low, 1+ε_high)).
    let ratio = b.exp(b.clamp(b.sub(new_logprobs.clone(), old), -20.0, 20.0));
    let (lo, hi) = ((1.0 - config.clip_low) as f32, (1.0 + config.clip_high) as f32);
    let unclipped = b.mul(ratio.clone(), neg_adv.clone());
    let clipped = b.mul(b.clamp(ratio, lo, hi), neg_adv);
    let neg = |t| b.mul_scalar(t, -1.0);
    let mut surrogate = neg(b.minimum(neg(unclipped), neg(clipped)));
    // Dual clip: for A < 0 the loss is capped at −c·A.
    if let Some(c) = config.dual_clip {
        let cap = host.advantages.iter().map(|&a| if a < 0.0 { (-c * a) as f32 } else { f32::MAX }).collect();
        surrogate = b.minimum(surrogate, constant(cap));
    }
    // Truncated importance weight between the learner's old and the rollout's log-probs: a constant.
    let tis: Vec<f32> = match config.tis_cap {
        Some(cap) => host.old_logprobs.iter().zip(&host.rollout_logprobs).map(|(&o, &r)| (o - r).clamp(-20.0, 20.0).exp().min(cap) as f32).collect(),
        None => vec![1.0; n],
    };
    let mut per_token = b.mul(surrogate, constant(tis));
    if config.kl_coef != 0.0 && !host.ref_logprobs.is_empty() {
        let reference_lp = constant(f32s(&host.ref_logprobs));
        let kl = match config.kl_estimator {
            KlEstimator::K1 => b.sub(new_logprobs, reference_lp),
            KlEstimator::K3 => {
                let delta = b.clamp(b.sub(reference_lp, new_logprobs), -20.0, 20.0);
                b.clamp(b.add_scalar(b.sub(b.exp(delta.clone()), delta), -1.0), -10.0, 10.0)
            }
        };
        per_token = b.add(per_token, b.mul_scalar(kl, config.kl_coef as f32));
    }
    if let Some(entropy) = entropy
        && config.entropy_coef != 0.0
    {
        per_token = b.sub(per_token, b.mul_scalar(entropy, config.entropy_coef as f32));
    }
    let loss = b.sum_all(b.mul(per_token, constant(f32s(&weights))));
    Ok((loss, reference))
}

#[cfg(test)]
mod tests {
    use memrl_policies::backend::burn_flex::BurnBackend;

    use super::*;
    use crate::loss::{LossAggregation, SegmentWeighting, aggregation_weights, policy_loss};

    /// A hand-made batch exercising every branch: clipped high and low, dual clip, masked
    /// tokens, two segments of two trajectories, TIS weights above and below the cap.
    fn batch() -> LossBatch {
        LossBatch {
            new_logprobs: vec![-1.0, -0.2, -2.5, -0.7, -1.4, -0.05, -3.0, -0.9],
            old_logprobs: vec![-1.1, -0.6, -1.0, -0.7, -1.0, -0.5, -2.0, -0.8],
            rollout_logprobs: vec![-1.0, -0.9, -1.2, -0.6, -1.3, -0.4, -1.9, -0.2],
            ref_logprobs: vec![-0.9, -0.3, -2.0, -1.0, -1.2, -0.1, -2.5, -1.1],
            advantages: vec![1.0, 1.0, -1.5, -1.5, 0.5, 0.5, -2.0, 0.0],
            mask: vec![1, 1, 1, 0, 1, 1, 1, 1],
            entropy: vec![],
            segment_ids: vec![0, 0, 0, 0, 1, 1, 1, 1],
            trajectory_ids: vec![7, 7, 7, 7, 7, 7, 8, 8],
        }
    }

    fn check(config: &LossConfig) {
        check_on(batch(), config);
    }

    fn check_on(host: LossBatch, config: &LossConfig) {
        let b = BurnBackend::flex_autodiff();
        let new = b.param(host.new_logprobs.iter().map(|&x| x as f32).collect(), &[8]);
        let weights = aggregation_weights(config, &host);
        let (loss, reference) = policy_loss_tensor(&b, new.clone(), None, &host, config, weights).unwrap();
        let plain = policy_loss(&host, config).unwrap();
        assert!((plain.loss - reference.loss).abs() < 1e-12, "weights over one micro-batch = the plain loss");
        let value = b.to_vec(&loss)[0] as f64;
        assert!((value - reference.loss).abs() < 1e-5, "{config:?}: tensor {value} vs reference {}", reference.loss);
        let grads = b.backward(&loss);
        let grad = b.to_vec(&b.grad(&grads, &new).expect("new log-probs receive a gradient"));
        for (t, (g, r)) in grad.iter().zip(&reference.grad_new_logprobs).enumerate() {
            assert!((*g as f64 - r).abs() < 1e-5, "{config:?}: token {t}: d loss / d new = {g} vs reference {r}");
        }
    }

    #[test]
    fn matches_reference_in_every_mode() {
        let base = LossConfig::default();
        check(&base);
        check(&LossConfig { dual_clip: None, tis_cap: None, ..base });
        check(&LossConfig { clip_low: 0.1, clip_high: 0.28, ..base });
        check(&LossConfig { dual_clip: Some(3.0), ..base });
        check(&LossConfig { dual_clip: Some(1.5), ..base });
        check(&LossConfig { tis_cap: Some(1.2), ..base });
        check(&LossConfig { kl_coef: 0.1, kl_estimator: KlEstimator::K1, ..base });
        check(&LossConfig { kl_coef: 0.1, kl_estimator: KlEstimator::K3, ..base });
        for aggregation in [LossAggregation::TokenMean, LossAggregation::SeqMeanTokenMean, LossAggregation::TrajectoryMean, LossAggregation::DrGrpo] {
            check(&LossConfig { aggregation, dual_clip: Some(3.0), kl_coef: 0.05, sum_norm_tokens: 7.0, ..base });
        }
        for (aggregation, segment_weighting) in [
            (LossAggregation::SeqMeanTokenMean, SegmentWeighting::TrajectoryEqual),
            (LossAggregation::SeqMeanTokenMean, SegmentWeighting::TokenProportional),
            (LossAggregation::DrGrpo, SegmentWeighting::TrajectoryEqual),
        ] {
            check(&LossConfig { aggregation, segment_weighting, sum_norm_tokens: 3.0, ..base });
        }
    }

    #[test]
    fn a_minus_infinity_rollout_log_prob_gets_the_capped_weight_in_both() {
        let mut host = batch();
        host.rollout_logprobs[1] = f64::NEG_INFINITY;
        let out = policy_loss(&host, &LossConfig::default()).expect("a −inf rollout log-prob is legal");
        assert!(out.loss.is_finite() && out.diagnostics.rollout_logprob_abs_diff.is_finite());
        assert!(out.diagnostics.tis_capped_frac > 0.0);
        check_on(host, &LossConfig::default());
    }
}

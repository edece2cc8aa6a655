//! The f64 reference loss on hand-made batches (expected values computed by hand in comments)
//! and its analytical gradient against finite differences.

use memrl_rl::loss::{KlEstimator, LossAggregation, LossBatch, LossConfig, LossError, SegmentWeighting, aggregation_weights, policy_loss};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

fn assert_vec_close(got: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(close(*g, *e, tol), "index {i}: got {g}, expected {e}");
    }
}

/// A batch with every token in one segment of one trajectory, old = rollout, no ref, no entropy.
fn batch(new_minus_old: &[f64], advantages: &[f64], mask: &[u8]) -> LossBatch {
    let n = advantages.len();
    let old: Vec<f64> = (0..n).map(|i| -1.0 - 0.1 * i as f64).collect();
    LossBatch {
        new_logprobs: old.iter().zip(new_minus_old).map(|(o, d)| o + d).collect(),
        old_logprobs: old.clone(),
        rollout_logprobs: old,
        advantages: advantages.to_vec(),
        mask: mask.to_vec(),
        segment_ids: vec![0; n],
        trajectory_ids: vec![0; n],
        ..Default::default()
    }
}

fn plain_config() -> LossConfig {
    LossConfig {
        clip_low: 0.2,
        clip_high: 0.28,
        dual_clip: Some(3.0),
        tis_cap: None,
        kl_coef: 0.0,
        kl_estimator: KlEstimator::K3,
        entropy_coef: 0.0,
        aggregation: LossAggregation::TokenMean,
        segment_weighting: SegmentWeighting::Unweighted,
        sum_norm_tokens: 1.0,
    }
}

#[test]
fn clipped_surrogate_with_dual_clip_hand_computed() {
    // ε_low 0.2, ε_high 0.28, c = 3.
    // t0: A=+1, ρ=1.5 > 1.28 → ℓ = max(−1.5, −1.28) = −1.28, clip high binds, grad 0.
    // t1: A=+1, ρ=1.1 → ℓ = −1.1, dℓ/dnew = −A·ρ = −1.1.
    // t2: A=−1, ρ=0.5 < 0.8 → ℓ = max(0.5, 0.8) = 0.8, clip low binds, grad 0; 0.8 < 3 no dual.
    // t3: A=−1, ρ=4 → max(4, 1.28) = 4 > −c·A = 3 → ℓ = 3, dual clip binds, grad 0.
    // t4: A=−2, ρ=1 → ℓ = 2, grad = −A·ρ = 2.
    // t5: masked out.
    // token mean over 5: (−1.28 − 1.1 + 0.8 + 3 + 2)/5 = 3.42/5 = 0.684; grads /5.
    let b = batch(&[1.5f64.ln(), 1.1f64.ln(), 0.5f64.ln(), 4f64.ln(), 0.0, 7.0], &[1.0, 1.0, -1.0, -1.0, -2.0, 5.0], &[1, 1, 1, 1, 1, 0]);
    let out = policy_loss(&b, &plain_config()).unwrap();
    assert!(close(out.loss, 0.684, 1e-12), "{}", out.loss);
    assert_vec_close(&out.grad_new_logprobs, &[0.0, -0.22, 0.0, 0.0, 0.4, 0.0], 1e-12);
    assert_vec_close(&out.per_token_loss, &[-1.28, -1.1, 0.8, 3.0, 2.0, 0.0], 1e-12);
    let d = out.diagnostics;
    assert_eq!(d.tokens, 5);
    assert!(close(d.clip_frac_high, 0.2, 1e-15) && close(d.clip_frac_low, 0.2, 1e-15));
    assert!(close(d.dual_clip_frac, 0.2, 1e-15));
    // approx KL = mean(old − new) = −ln(1.5·1.1·0.5·4·1)/5 = −ln(3.3)/5.
    assert!(close(d.approx_kl, -(3.3f64.ln()) / 5.0, 1e-12));
    assert_eq!(d.tis_weight_mean, 1.0);
    assert_eq!((d.ref_kl, d.entropy_mean), (None, None));
    // Without the dual clip, t3 keeps ℓ = 4 and its gradient −A·ρ = 4 (unclipped branch).
    let no_dual = LossConfig { dual_clip: None, ..plain_config() };
    let out = policy_loss(&b, &no_dual).unwrap();
    assert!(close(out.loss, (3.42 + 1.0) / 5.0, 1e-12));
    assert!(close(out.grad_new_logprobs[3], 4.0 / 5.0, 1e-12));
}

#[test]
fn truncated_importance_weights_hand_computed() {
    // ρ = 1, A = +1 → ℓ = −1, dℓ/dnew = −1 on both tokens.
    // t0: old − rollout = ln 3 → w = min(3, 2) = 2 (capped). t1: ln 0.5 → w = 0.5.
    // token mean: (−2 − 0.5)/2 = −1.25; grads: −2/2 = −1, −0.5/2 = −0.25.
    let mut b = batch(&[0.0, 0.0], &[1.0, 1.0], &[1, 1]);
    b.rollout_logprobs = vec![b.old_logprobs[0] - 3f64.ln(), b.old_logprobs[1] - 0.5f64.ln()];
    let config = LossConfig { tis_cap: Some(2.0), ..plain_config() };
    let out = policy_loss(&b, &config).unwrap();
    assert!(close(out.loss, -1.25, 1e-12));
    assert_vec_close(&out.grad_new_logprobs, &[-1.0, -0.25], 1e-12);
    assert!(close(out.diagnostics.tis_weight_mean, 1.25, 1e-12));
    assert!(close(out.diagnostics.tis_capped_frac, 0.5, 1e-15));
    // |old − rollout| mean = (ln 3 + ln 2)/2.
    assert!(close(out.diagnostics.rollout_logprob_abs_diff, (3f64.ln() + 2f64.ln()) / 2.0, 1e-12));
}

#[test]
fn kl_estimators_hand_computed() {
    // A = 0 so only the KL term remains; β = 0.1, token mean over 2 tokens.
    // k3, t0: Δ = ref − new = ln 2 → e^Δ − Δ − 1 = 1 − ln 2; d/dnew = 1 − e^Δ = −1.
    // k3, t1: Δ = 15 → e^15 − 16 > 10 → clamped to 10, gradient 0.
    let mut b = batch(&[0.0, 0.0], &[0.0, 0.0], &[1, 1]);
    b.ref_logprobs = vec![b.new_logprobs[0] + 2f64.ln(), b.new_logprobs[1] + 15.0];
    let k3 = LossConfig { kl_coef: 0.1, ..plain_config() };
    let out = policy_loss(&b, &k3).unwrap();
    let kl0 = 1.0 - 2f64.ln();
    assert!(close(out.loss, 0.1 * (kl0 + 10.0) / 2.0, 1e-12));
    assert_vec_close(&out.grad_new_logprobs, &[0.1 * (1.0 - 2.0) / 2.0, 0.0], 1e-12); // 1 − e^Δ = 1 − 2
    assert!(close(out.diagnostics.ref_kl.unwrap(), (kl0 + 10.0) / 2.0, 1e-12));
    assert!(close(out.diagnostics.kl_loss, (kl0 + 10.0) / 2.0, 1e-12));
    // k1 = new − ref: −ln 2 and −15; gradient 1 each → β·1/2.
    let k1 = LossConfig { kl_estimator: KlEstimator::K1, ..k3 };
    let out = policy_loss(&b, &k1).unwrap();
    assert!(close(out.loss, 0.1 * (-(2f64.ln()) - 15.0) / 2.0, 1e-12));
    assert_vec_close(&out.grad_new_logprobs, &[0.05, 0.05], 1e-12);
}

#[test]
fn entropy_bonus_lowers_the_loss_and_is_not_in_the_logprob_gradient() {
    // A = +1, ρ = 1 → ℓ_pg = −1 per token; H = [2, 4]; α = 0.01.
    // loss = −1 − 0.01·3 = −1.03; gradient w.r.t. new log-probs stays −1/2 per token.
    let mut b = batch(&[0.0, 0.0], &[1.0, 1.0], &[1, 1]);
    b.entropy = vec![2.0, 4.0];
    let out = policy_loss(&b, &LossConfig { entropy_coef: 0.01, ..plain_config() }).unwrap();
    assert!(close(out.loss, -1.03, 1e-12));
    assert_vec_close(&out.grad_new_logprobs, &[-0.5, -0.5], 1e-12);
    assert_eq!(out.diagnostics.entropy_mean, Some(3.0));
}

#[test]
fn aggregation_modes_hand_computed() {
    // ρ = 1 so ℓ = −A: A = [1, 2, 6, 4] → ℓ = [−1, −2, −6, −4].
    // segments [0, 0, 1, 2], trajectories [7, 7, 7, 8].
    // token_mean: −13/4 = −3.25.
    // seq_mean_token_mean: seg0 −1.5, seg1 −6, seg2 −4 → −11.5/3; weights [1/6, 1/6, 1/3, 1/3].
    // trajectory_mean: traj7 (−1 −2 −6)/3 = −3, traj8 −4 → −3.5; weights [1/6, 1/6, 1/6, 1/2].
    let mut b = batch(&[0.0; 4], &[1.0, 2.0, 6.0, 4.0], &[1, 1, 1, 1]);
    b.segment_ids = vec![0, 0, 1, 2];
    b.trajectory_ids = vec![7, 7, 7, 8];
    let cases = [
        (LossAggregation::TokenMean, -3.25, vec![0.25; 4]),
        (LossAggregation::SeqMeanTokenMean, -11.5 / 3.0, vec![1.0 / 6.0, 1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0]),
        (LossAggregation::TrajectoryMean, -3.5, vec![1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 0.5]),
    ];
    for (mode, loss, weights) in cases {
        let out = policy_loss(&b, &LossConfig { aggregation: mode, ..plain_config() }).unwrap();
        assert!(close(out.loss, loss, 1e-12), "{mode:?}: {}", out.loss);
        assert_vec_close(&aggregation_weights(&LossConfig { aggregation: mode, ..plain_config() }, &b), &weights, 1e-15);
        // dℓ/dnew = −A·ρ = −A, times the weight.
        let expected: Vec<f64> = weights.iter().zip(&b.advantages).map(|(w, a)| -w * a).collect();
        assert_vec_close(&out.grad_new_logprobs, &expected, 1e-12);
    }
}

#[test]
fn masked_segments_do_not_count_in_segment_means() {
    // Segment 1 has no masked token: seq mean over segment 0 only.
    let mut b = batch(&[0.0; 3], &[1.0, 3.0, 100.0], &[1, 1, 0]);
    b.segment_ids = vec![0, 0, 1];
    let out = policy_loss(&b, &LossConfig { aggregation: LossAggregation::SeqMeanTokenMean, ..plain_config() }).unwrap();
    assert!(close(out.loss, -2.0, 1e-12));
    // No masked token at all: loss 0, gradient 0.
    let empty = batch(&[0.0; 2], &[1.0, 1.0], &[0, 0]);
    let out = policy_loss(&empty, &plain_config()).unwrap();
    assert_eq!((out.loss, out.grad_new_logprobs.clone()), (0.0, vec![0.0, 0.0]));
    assert_eq!(out.diagnostics.tokens, 0);
}

#[test]
fn malformed_inputs_are_errors() {
    let mut b = batch(&[0.0; 2], &[1.0, 1.0], &[1, 1]);
    b.advantages.pop();
    assert_eq!(policy_loss(&b, &plain_config()).unwrap_err(), LossError::LengthMismatch { field: "advantages", got: 1, expected: 2 });
    let mut b = batch(&[0.0; 2], &[1.0, 1.0], &[1, 0]);
    b.new_logprobs[1] = f64::NAN; // unmasked: ignored
    assert!(policy_loss(&b, &plain_config()).is_ok());
    b.old_logprobs[0] = f64::NEG_INFINITY;
    assert!(matches!(policy_loss(&b, &plain_config()), Err(LossError::NonFinite { field: "old_logprobs", index: 0, .. })));
    let b = batch(&[0.0], &[1.0], &[1]);
    let e = policy_loss(&b, &LossConfig { kl_coef: 0.1, ..plain_config() }).unwrap_err();
    assert_eq!(e, LossError::MissingInput { field: "ref_logprobs", coef: "kl_coef" });
    let e = policy_loss(&b, &LossConfig { dual_clip: Some(0.5), ..plain_config() }).unwrap_err();
    assert!(matches!(e, LossError::InvalidConfig { field: "dual_clip", .. }));
}

/// Central finite differences agree with the analytical gradient wherever the loss is smooth
/// (tokens whose left and right one-sided slopes differ sit on a clip kink and are skipped).
#[test]
fn analytical_gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let h = 1e-6;
    let mut compared = 0;
    for trial in 0..40 {
        let n = 12;
        let old: Vec<f64> = (0..n).map(|_| rng.random_range(-4.0..-0.1)).collect();
        let mut b = LossBatch {
            new_logprobs: old.iter().map(|o| o + rng.random_range(-0.6..0.6)).collect(),
            rollout_logprobs: old.iter().map(|o| o + rng.random_range(-1.0..1.0)).collect(),
            ref_logprobs: old.iter().map(|o| o + rng.random_range(-1.5..1.5)).collect(),
            old_logprobs: old,
            advantages: (0..n).map(|_| rng.random_range(-2.0..2.0)).collect(),
            mask: (0..n).map(|_| u8::from(rng.random_bool(0.8))).collect(),
            entropy: (0..n).map(|_| rng.random_range(0.0..3.0)).collect(),
            segment_ids: (0..n as u64).map(|i| i / 4).collect(),
            trajectory_ids: (0..n as u64).map(|i| i / 6).collect(),
        };
        let aggregation = [LossAggregation::TokenMean, LossAggregation::SeqMeanTokenMean, LossAggregation::TrajectoryMean, LossAggregation::DrGrpo][trial % 4];
        let config = LossConfig {
            clip_low: 0.2,
            clip_high: 0.28,
            dual_clip: Some(3.0),
            tis_cap: Some(1.5),
            kl_coef: 0.05,
            kl_estimator: if trial % 2 == 0 { KlEstimator::K3 } else { KlEstimator::K1 },
            entropy_coef: 0.01,
            aggregation,
            segment_weighting: if aggregation == LossAggregation::DrGrpo { SegmentWeighting::TrajectoryEqual } else { SegmentWeighting::Unweighted },
            sum_norm_tokens: 5.0,
        };
        let out = policy_loss(&b, &config).unwrap();
        for t in 0..n {
            let base = b.new_logprobs[t];
            let mut at = |x: f64| {
                b.new_logprobs[t] = x;
                policy_loss(&b, &config).unwrap().loss
            };
            let (plus, mid, minus) = (at(base + h), at(base), at(base - h));
            b.new_logprobs[t] = base;
            let (right, left) = ((plus - mid) / h, (mid - minus) / h);
            if (right - left).abs() > 1e-4 {
                continue; // a kink between base − h and base + h
            }
            let central = (plus - minus) / (2.0 * h);
            assert!(
                close(central, out.grad_new_logprobs[t], 1e-6),
                "trial {trial} token {t}: finite difference {central} vs analytical {}",
                out.grad_new_logprobs[t]
            );
            compared += 1;
        }
    }
    assert!(compared > 300, "only {compared} tokens compared");
}

/// Micro-batches weighted with the mini-batch's aggregation weights sum to the mini-batch loss
/// and gradient, for every aggregation mode.
#[test]
fn micro_batches_with_mini_batch_weights_sum_to_the_whole() {
    use memrl_rl::loss::policy_loss_with_weights;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = 10;
    let old: Vec<f64> = (0..n).map(|_| rng.random_range(-3.0..-0.1)).collect();
    let whole = LossBatch {
        new_logprobs: old.iter().map(|o| o + rng.random_range(-0.5..0.5)).collect(),
        rollout_logprobs: old.clone(),
        old_logprobs: old,
        advantages: (0..n).map(|_| rng.random_range(-1.0..1.0)).collect(),
        mask: vec![1, 1, 0, 1, 1, 1, 1, 0, 1, 1],
        segment_ids: vec![0, 0, 0, 1, 1, 2, 2, 2, 3, 3],
        trajectory_ids: vec![5, 5, 5, 5, 5, 6, 6, 6, 7, 7],
        ..Default::default()
    };
    // Micro-batch 1: segments 0 and 1 (tokens 0..5); micro-batch 2: segments 2 and 3.
    let slice = |b: &LossBatch, r: std::ops::Range<usize>| LossBatch {
        new_logprobs: b.new_logprobs[r.clone()].to_vec(),
        old_logprobs: b.old_logprobs[r.clone()].to_vec(),
        rollout_logprobs: b.rollout_logprobs[r.clone()].to_vec(),
        advantages: b.advantages[r.clone()].to_vec(),
        mask: b.mask[r.clone()].to_vec(),
        segment_ids: b.segment_ids[r.clone()].to_vec(),
        trajectory_ids: b.trajectory_ids[r].to_vec(),
        ..Default::default()
    };
    for mode in [LossAggregation::TokenMean, LossAggregation::SeqMeanTokenMean, LossAggregation::TrajectoryMean, LossAggregation::DrGrpo] {
        let config = LossConfig { aggregation: mode, sum_norm_tokens: 4.0, ..plain_config() };
        let full = policy_loss(&whole, &config).unwrap();
        let w = aggregation_weights(&config, &whole);
        let a = policy_loss_with_weights(&slice(&whole, 0..5), &config, w[..5].to_vec()).unwrap();
        let b = policy_loss_with_weights(&slice(&whole, 5..10), &config, w[5..].to_vec()).unwrap();
        assert!(close(a.loss + b.loss, full.loss, 1e-12), "{mode:?}");
        let grads = [a.grad_new_logprobs, b.grad_new_logprobs].concat();
        assert_vec_close(&grads, &full.grad_new_logprobs, 1e-15);
    }
    let e = policy_loss_with_weights(&whole, &plain_config(), vec![0.1; 3]).unwrap_err();
    assert_eq!(e, LossError::LengthMismatch { field: "weights", got: 3, expected: 10 });
}

#[test]
fn a_batch_is_flattened_from_segments_in_order() {
    use memrl_rl::advantage::TokenAdvantages;
    use memrl_rl::segments::{SegmentationMode, TrajectoryRecorder};
    let mut r = TrajectoryRecorder::new(9, 1);
    r.push_turn(vec![1], vec![2, 3], vec![-0.5, -0.25], 0).unwrap();
    r.push_turn(vec![1, 2, 3, 4], vec![5], vec![-1.0], 0).unwrap();
    r.push_turn(vec![7], vec![8], vec![-2.0], 0).unwrap();
    let segs = r.segment(SegmentationMode::Dcpo).unwrap().segments;
    assert_eq!(segs.len(), 2);
    let targets = vec![
        TokenAdvantages { advantages: vec![0.5, 0.5, 0.0, 0.5], loss_mask: vec![1, 1, 0, 1] },
        TokenAdvantages { advantages: vec![0.5], loss_mask: vec![1] },
    ];
    let new = vec![vec![-0.4, -0.3, 0.0, -0.9], vec![-1.9]];
    let b = LossBatch::from_segments(&segs, &targets, &new, &new, &[], &[]).unwrap();
    assert_eq!(b.rollout_logprobs, vec![-0.5, -0.25, 0.0, -1.0, -2.0]);
    assert_eq!(b.mask, vec![1, 1, 0, 1, 1]);
    assert_eq!(b.segment_ids, vec![0, 0, 0, 0, 1]);
    assert_eq!(b.trajectory_ids, vec![9; 5]);
    assert_eq!(b.new_logprobs, vec![-0.4, -0.3, 0.0, -0.9, -1.9]);
    assert!(b.ref_logprobs.is_empty() && b.entropy.is_empty());
    let short = vec![vec![-0.4], vec![-1.9]];
    let e = LossBatch::from_segments(&segs, &targets, &short, &new, &[], &[]).unwrap_err();
    assert_eq!(e, LossError::LengthMismatch { field: "new_logprobs", got: 1, expected: 4 });
}

//! Aggregation modes and segment weighting on a hand-computed batch: Dr. GRPO's constant-length
//! sum, and how a fractured trajectory's segments share its weight.

use memrl_rl::loss::{LossAggregation, LossBatch, LossConfig, LossError, SegmentWeighting, aggregation_weights, policy_loss};

/// Trajectory 7 fractured into segments 0 (two tokens, A = 1, 2) and 1 (one token, A = 6, and a
/// masked one); trajectory 8 is segment 2 (three tokens, A = 3); segment 3 (trajectory 9) has
/// no policy token. new = old = rollout, so ρ = 1 and every token's loss is −A.
/// Counts: N = 6 tokens, S = 3 segments, T = 2 trajectories, k_7 = 2, k_8 = 1.
fn batch() -> LossBatch {
    let lp = vec![-1.0; 8];
    LossBatch {
        new_logprobs: lp.clone(),
        old_logprobs: lp.clone(),
        rollout_logprobs: lp,
        advantages: vec![1.0, 2.0, 6.0, 100.0, 3.0, 3.0, 3.0, 50.0],
        mask: vec![1, 1, 1, 0, 1, 1, 1, 0],
        segment_ids: vec![0, 0, 1, 1, 2, 2, 2, 3],
        trajectory_ids: vec![7, 7, 7, 7, 8, 8, 8, 9],
        ..Default::default()
    }
}

fn config(aggregation: LossAggregation, segment_weighting: SegmentWeighting) -> LossConfig {
    LossConfig { aggregation, segment_weighting, sum_norm_tokens: 4.0, tis_cap: None, ..LossConfig::default() }
}

#[test]
fn hand_computed_weights_and_losses() {
    use LossAggregation as A;
    use SegmentWeighting as W;
    let cases: [(A, W, [f64; 8], f64); 6] = [
        // 1/N each: −(1 + 2 + 6 + 9)/6 = −3.
        (A::TokenMean, W::Unweighted, [1. / 6., 1. / 6., 1. / 6., 0., 1. / 6., 1. / 6., 1. / 6., 0.], -3.0),
        // W_s = 1/3, spread by 1/n_s: −(3/6 + 6/3 + 9/9) = −3.5.
        (A::SeqMeanTokenMean, W::Unweighted, [1. / 6., 1. / 6., 1. / 3., 0., 1. / 9., 1. / 9., 1. / 9., 0.], -3.5),
        // W = 1/(T·k_τ): segments 0 and 1 get 1/4, segment 2 gets 1/2: −(3/8 + 6/4 + 9/6) = −3.375.
        (A::SeqMeanTokenMean, W::TrajectoryEqual, [1. / 8., 1. / 8., 1. / 4., 0., 1. / 6., 1. / 6., 1. / 6., 0.], -3.375),
        // W_s = n_s/N, spread by 1/n_s: the token mean.
        (A::SeqMeanTokenMean, W::TokenProportional, [1. / 6., 1. / 6., 1. / 6., 0., 1. / 6., 1. / 6., 1. / 6., 0.], -3.0),
        // 1/(S·C) = 1/12 each: −18/12 = −1.5.
        (A::DrGrpo, W::Unweighted, [1. / 12., 1. / 12., 1. / 12., 0., 1. / 12., 1. / 12., 1. / 12., 0.], -1.5),
        // 1/(T·k_τ·C): 1/16 in trajectory 7, 1/8 in trajectory 8: −(9/16 + 9/8) = −1.6875.
        (A::DrGrpo, W::TrajectoryEqual, [1. / 16., 1. / 16., 1. / 16., 0., 1. / 8., 1. / 8., 1. / 8., 0.], -1.6875),
    ];
    let b = batch();
    for (aggregation, weighting, weights, loss) in cases {
        let c = config(aggregation, weighting);
        let w = aggregation_weights(&c, &b);
        for (t, (got, want)) in w.iter().zip(weights).enumerate() {
            assert!((got - want).abs() < 1e-15, "{aggregation:?}/{weighting:?} token {t}: {got} vs {want}");
        }
        let out = policy_loss(&b, &c).unwrap();
        assert!((out.loss - loss).abs() < 1e-12, "{aggregation:?}/{weighting:?}: loss {} vs {loss}", out.loss);
    }
}

#[test]
fn dr_grpo_weights_do_not_depend_on_sequence_length() {
    // Segment 2 grows from three tokens to six: under dr_grpo the other tokens keep their
    // weight (no length normalisation); under seq_mean_token_mean segment 2's tokens halve.
    let mut long = batch();
    for _ in 0..3 {
        for v in [&mut long.new_logprobs, &mut long.old_logprobs, &mut long.rollout_logprobs] {
            v.insert(4, -1.0);
        }
        long.advantages.insert(4, 3.0);
        long.mask.insert(4, 1);
        long.segment_ids.insert(4, 2);
        long.trajectory_ids.insert(4, 8);
    }
    let dr = config(LossAggregation::DrGrpo, SegmentWeighting::Unweighted);
    let (short_w, long_w) = (aggregation_weights(&dr, &batch()), aggregation_weights(&dr, &long));
    assert_eq!(short_w[4], long_w[4], "a token's weight is the constant 1/(S·C) whatever its sequence's length");
    assert_eq!(short_w[0], long_w[0]);
    let seq = config(LossAggregation::SeqMeanTokenMean, SegmentWeighting::Unweighted);
    assert!((aggregation_weights(&seq, &long)[4] - aggregation_weights(&seq, &batch())[4] / 2.0).abs() < 1e-15);
}

#[test]
fn segment_weighting_without_a_sequence_level_aggregation_is_refused() {
    use LossAggregation as A;
    use SegmentWeighting as W;
    for (aggregation, weighting) in
        [(A::TokenMean, W::TrajectoryEqual), (A::TokenMean, W::TokenProportional), (A::TrajectoryMean, W::TrajectoryEqual), (A::DrGrpo, W::TokenProportional)]
    {
        let e = policy_loss(&batch(), &config(aggregation, weighting)).unwrap_err();
        assert!(matches!(e, LossError::Incompatible(_)), "{aggregation:?}/{weighting:?}: {e}");
    }
    let e = policy_loss(&batch(), &LossConfig { sum_norm_tokens: 0.0, ..LossConfig::default() }).unwrap_err();
    assert!(matches!(e, LossError::InvalidConfig { field: "sum_norm_tokens", .. }), "{e}");
}

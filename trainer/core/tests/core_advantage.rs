//! Advantages end to end: segmented trajectories → group-normalised advantages → per-token
//! vectors aligned with every segment; GAE over segmented trajectories.

use memrl_rl::advantage::{
    AdvantageError, AdvantageEstimator, AdvantageOptions, TrajectoryAdvantage, TrajectoryOutcome, broadcast_to_segments, gae, gae_batch, outcome_advantages,
    outcome_token_rewards,
};
use memrl_rl::segments::{Segment, SegmentationMode, TrajectoryRecorder};

/// Trajectory 1 fractures once (two segments); trajectory 2 has one segment; both in group 0.
fn segments() -> Vec<Segment> {
    let mut a = TrajectoryRecorder::new(1, 0);
    a.push_turn(vec![1, 2], vec![10, 11], vec![-0.1, -0.2], 0).unwrap();
    a.push_turn(vec![1, 2, 10, 11, 50], vec![12], vec![-0.3], 0).unwrap();
    a.push_turn(vec![1, 60], vec![13, 14], vec![-0.4, -0.5], 0).unwrap(); // fracture
    let mut b = TrajectoryRecorder::new(2, 0);
    b.push_turn(vec![1, 2], vec![20], vec![-0.6], 0).unwrap();
    let mut all = a.segment(SegmentationMode::Dcpo).unwrap().segments;
    all.extend(b.segment(SegmentationMode::Dcpo).unwrap().segments);
    all
}

#[test]
fn the_trajectory_advantage_lands_on_every_policy_token_of_every_segment() {
    let segs = segments();
    assert_eq!(segs.len(), 3);
    // One outcome per segment (as a learner might list them): trajectory 1 counts once.
    // Rewards [1, 0]: mean 0.5, unbiased std √0.5 → A = ±0.5/(√0.5 + 1e-6) ≈ ±0.7071058.
    let outcomes = [
        TrajectoryOutcome { trajectory_id: 1, group_id: 0, reward: 1.0, truncated: false },
        TrajectoryOutcome { trajectory_id: 1, group_id: 0, reward: 1.0, truncated: false },
        TrajectoryOutcome { trajectory_id: 2, group_id: 0, reward: 0.0, truncated: false },
    ];
    let adv = outcome_advantages(AdvantageEstimator::Grpo, &outcomes, AdvantageOptions::default()).unwrap();
    let a = (0.5 / (0.5f64.sqrt() + 1e-6)) as f32;
    let tokens = broadcast_to_segments(&segs, &adv).unwrap();
    assert_eq!(tokens[0].loss_mask, vec![1, 1, 0, 1]); // 10 11 | 50 | 12
    assert_eq!(tokens[0].advantages, vec![a, a, 0.0, a]);
    assert_eq!(tokens[1].advantages, vec![a, a]);
    assert_eq!(tokens[2].advantages, vec![-a]);
    for (t, s) in tokens.iter().zip(&segs) {
        assert_eq!(t.advantages.len(), s.response_ids.len());
    }
    // A segment whose trajectory has no advantage is an error, not a silent zero.
    let only_two = outcome_advantages(AdvantageEstimator::Grpo, &outcomes[2..], AdvantageOptions::default()).unwrap();
    assert_eq!(broadcast_to_segments(&segs, &only_two).unwrap_err(), AdvantageError::MissingTrajectory { trajectory_id: 1, index: 0 });
}

#[test]
fn masked_trajectories_are_removed_from_the_loss() {
    let segs = segments();
    let outcomes = [
        TrajectoryOutcome { trajectory_id: 1, group_id: 0, reward: 0.0, truncated: true },
        TrajectoryOutcome { trajectory_id: 2, group_id: 0, reward: 1.0, truncated: false },
    ];
    let opts = AdvantageOptions { mask_overlong: true, ..Default::default() };
    let adv = outcome_advantages(AdvantageEstimator::Grpo, &outcomes, opts).unwrap();
    let tokens = broadcast_to_segments(&segs, &adv).unwrap();
    assert_eq!(tokens[0].loss_mask, vec![0, 0, 0, 0]);
    assert_eq!(tokens[1].loss_mask, vec![0, 0]);
    // Trajectory 2 is alone in its group after masking: no baseline, so no signal (A = 0, not
    // A = R = 1, which would reward it only because its sibling ran out of budget).
    assert_eq!((tokens[2].loss_mask.clone(), tokens[2].advantages.clone()), (vec![1], vec![0.0]));
}

#[test]
fn gae_chains_the_policy_tokens_of_a_trajectory_across_segments() {
    let segs = segments();
    let outcomes = [
        TrajectoryOutcome { trajectory_id: 1, group_id: 0, reward: 2.0, truncated: false },
        TrajectoryOutcome { trajectory_id: 2, group_id: 0, reward: 1.0, truncated: false },
    ];
    let rewards = outcome_token_rewards(&segs, &outcomes).unwrap();
    // Trajectory 1's reward sits on its last policy token: segment 1, token 1 (id 14).
    assert_eq!(rewards, vec![vec![0.0; 4], vec![0.0, 2.0], vec![1.0]]);
    // Values at policy tokens; env token (index 2 of segment 0) gets a value that must be ignored.
    let values = vec![vec![0.1, 0.2, 99.0, 0.3], vec![0.4, 0.5], vec![0.25]];
    let out = gae_batch(&segs, &values, &rewards, &outcomes, 0.9, 0.95, false).unwrap();
    // Trajectory 1's chain: tokens 10, 11, 12, 13, 14 with V = [.1, .2, .3, .4, .5], r = [0,0,0,0,2].
    let chain = gae(&[0.0, 0.0, 0.0, 0.0, 2.0], &[0.1, 0.2, 0.3, 0.4, 0.5], 0.9, 0.95).unwrap();
    let got: Vec<f32> = [&out[0].tokens.advantages[..2], &out[0].tokens.advantages[3..], &out[1].tokens.advantages[..]].concat();
    let expected: Vec<f32> = chain.advantages.iter().map(|&x| x as f32).collect();
    assert_eq!(got, expected);
    assert_eq!(out[0].tokens.advantages[2], 0.0);
    assert_eq!(out[0].tokens.loss_mask, vec![1, 1, 0, 1]);
    // Trajectory 2: one token, A = r − V = 0.75, return = 1.
    assert_eq!((out[2].tokens.advantages[0], out[2].returns[0]), (0.75, 1.0));
    // Misaligned values are an error naming the segment.
    let mut bad = values.clone();
    bad[1].pop();
    let err = gae_batch(&segs, &bad, &rewards, &outcomes, 0.9, 0.95, false).unwrap_err();
    assert_eq!(err, AdvantageError::LengthMismatch { what: "values[1]".into(), got: 1, expected: 2 });
}

fn outcome(id: u64, group: u64, reward: f64, truncated: bool) -> TrajectoryOutcome {
    TrajectoryOutcome { trajectory_id: id, group_id: group, reward, truncated }
}

#[test]
fn a_group_that_masking_reduces_to_one_gets_no_signal() {
    // Group 0: [1 (kept), 0 (truncated), 0 (truncated)] → the survivor has no baseline: A = 0,
    // not A = R = 1. Group 1 was played once (group_size 1): A = R as documented.
    let outcomes = [outcome(1, 0, 1.0, false), outcome(2, 0, 0.0, true), outcome(3, 0, 0.0, true), outcome(4, 1, 0.7, false)];
    for estimator in [AdvantageEstimator::Grpo, AdvantageEstimator::DrGrpo, AdvantageEstimator::Rloo] {
        let a = outcome_advantages(estimator, &outcomes, AdvantageOptions::default()).unwrap();
        assert_eq!(*a.get(1).unwrap(), TrajectoryAdvantage { group_id: 0, advantage: 0.0, masked: false }, "{estimator:?}");
        assert_eq!(a.get(4).unwrap().advantage, 0.7, "{estimator:?}");
    }
    // REINFORCE++ normalises over the batch: masking two of four leaves two, a real baseline.
    let a = outcome_advantages(AdvantageEstimator::ReinforcePp, &outcomes, AdvantageOptions::default()).unwrap();
    assert!(a.get(1).unwrap().advantage > 0.0);
    let lone = [outcome(1, 0, 1.0, false), outcome(2, 0, 0.0, true)];
    let a = outcome_advantages(AdvantageEstimator::ReinforcePp, &lone, AdvantageOptions::default()).unwrap();
    assert_eq!(a.get(1).unwrap().advantage, 0.0);
}

#[test]
fn masking_is_on_by_default_and_eps_must_be_positive() {
    assert!(AdvantageOptions::default().mask_overlong, "one default, the run config's");
    let equal = [outcome(1, 0, 0.1, false), outcome(2, 0, 0.1, false), outcome(3, 0, 0.1, false)];
    for eps in [0.0, -1e-6, f64::NAN] {
        let e = outcome_advantages(AdvantageEstimator::Grpo, &equal, AdvantageOptions { eps, ..Default::default() });
        assert!(matches!(e, Err(AdvantageError::InvalidEps(_))), "eps {eps}: {e:?}");
    }
    let a = outcome_advantages(AdvantageEstimator::Grpo, &equal, AdvantageOptions::default()).unwrap();
    assert!(a.by_trajectory.values().all(|x| x.advantage.abs() < 1e-6), "equal rewards give (near) zero advantages");
}

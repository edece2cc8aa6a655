//! From played trajectories to training data: segments (DCPO / per-turn / prefix-only),
//! outcome advantages over each group's distinct trajectories, broadcast to every policy token.
//! Under `gae` the advantages need the critic's values, so they are left at 0 here and set by
//! [`crate::learner::critic::gae_targets`] before the update.

use memrl_envs::env::Termination;

use crate::advantage::{AdvantageEstimator, AdvantageOptions, Advantages, TrajectoryOutcome, broadcast_to_segments, outcome_advantages};
use crate::rollout::driver::{Trajectory, TurnSample};
use crate::segments::{Segment, SegmentationMode, TrajectoryRecorder};

/// A step's training data.
#[derive(Debug, Clone)]
pub struct StepData {
    /// Every segment of every trajectory; loss masks already exclude masked (overlong) trajectories.
    pub segments: Vec<Segment>,
    /// Per segment, the advantage of each response token (aligned with `response_ids`).
    pub advantages: Vec<Vec<f32>>,
    /// The trajectory-level advantages (for statistics).
    pub trajectory_advantages: Advantages,
    /// Fractures over all trajectories (segment boundaries created by context edits).
    pub fractures: usize,
    /// Each trajectory's outcome (reward, truncation), in batch order.
    pub outcomes: Vec<TrajectoryOutcome>,
}

/// A collection failure, naming the trajectory.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// Segmentation failed (e.g. a context edit under `prefix_only`).
    #[error("trajectory {trajectory}")]
    Segment {
        /// The trajectory's id.
        trajectory: u64,
        /// The underlying error.
        source: crate::segments::SegmentError,
    },
    /// The advantage estimator failed.
    #[error("computing advantages")]
    Advantage(#[from] crate::advantage::AdvantageError),
}

/// Which of a turn's recorded log-probs become the segments' rollout log-probs (the ones the
/// learner's truncated importance weights compare its old log-probs with).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RolloutLogprobs {
    /// The untempered policy's (`policy_logprobs`): right when the rollout sampled at
    /// temperature 1 and the learner scores at 1 (default).
    #[default]
    Policy,
    /// The sampled distribution's (`sampled_logprobs`): right when the rollout sampled at a
    /// temperature T ≠ 1 (without top-k / top-p) and the learner scores at the same T.
    Sampled,
}

impl RolloutLogprobs {
    /// The log-probs that match a learner scoring at `temperature`.
    pub fn for_temperature(temperature: f64) -> Self {
        if temperature == 1.0 { RolloutLogprobs::Policy } else { RolloutLogprobs::Sampled }
    }

    fn of(self, turn: &TurnSample) -> Vec<f32> {
        match self {
            RolloutLogprobs::Policy => turn.policy_logprobs.clone(),
            RolloutLogprobs::Sampled => turn.sampled_logprobs.clone(),
        }
    }
}

/// Whether a trajectory counts as overlong for masking: the rollout cut it off (turn or context
/// limit) or the environment ended it by its own budget (turns, working context) rather than by
/// completing the task.
pub fn is_overlong(t: &Trajectory) -> bool {
    t.truncated || t.end.as_ref().is_some_and(|e| e.breakdown.termination != Termination::Completed)
}

/// Bits of a trajectory id that hold its index in the step's batch (the step is above them).
const INDEX_BITS: u32 = 24;

/// The id of the trajectory at `index` of step `step`'s batch: unique within a run.
pub fn trajectory_id(step: u64, index: usize) -> u64 {
    (step << INDEX_BITS) | index as u64
}

/// The batch index a [`trajectory_id`] was made from (its inverse, with the step).
pub fn trajectory_index(id: u64) -> usize {
    (id & ((1 << INDEX_BITS) - 1)) as usize
}

/// Segments the trajectories of one step and computes their advantages. Trajectory `i` belongs
/// to group `i / group_size` (the rollout plays each task `group_size` times, consecutively).
/// `logprobs` picks the turns' log-probs the segments carry; a trajectory is truncated for
/// overlong masking when [`is_overlong`].
#[allow(clippy::too_many_arguments)]
pub fn collect(
    step: u64,
    trajectories: &[Trajectory],
    group_size: usize,
    mode: SegmentationMode,
    estimator: AdvantageEstimator,
    options: AdvantageOptions,
    logprobs: RolloutLogprobs,
    policy_version: u64,
) -> Result<StepData, CollectError> {
    let mut segments = Vec::new();
    let mut outcomes = Vec::with_capacity(trajectories.len());
    let mut fractures = 0;
    for t in trajectories {
        let id = trajectory_id(step, t.index);
        let group = trajectory_id(step, t.index / group_size.max(1));
        let mut recorder = TrajectoryRecorder::new(id, group);
        for turn in &t.turns {
            recorder
                .push_turn(turn.context_ids.clone(), turn.completion_ids.clone(), logprobs.of(turn), policy_version)
                .map_err(|source| CollectError::Segment { trajectory: id, source })?;
        }
        let outcome = TrajectoryOutcome { trajectory_id: id, group_id: group, reward: t.reward(), truncated: is_overlong(t) };
        if t.turns.is_empty() {
            outcomes.push(outcome);
            continue;
        }
        let seg = recorder.segment(mode).map_err(|source| CollectError::Segment { trajectory: id, source })?;
        fractures += seg.fractures;
        segments.extend(seg.segments);
        outcomes.push(outcome);
    }
    if estimator == AdvantageEstimator::Gae {
        let advantages = segments.iter().map(|s| vec![0.0; s.response_ids.len()]).collect();
        return Ok(StepData { segments, advantages, trajectory_advantages: Advantages::default(), fractures, outcomes });
    }
    let trajectory_advantages = outcome_advantages(estimator, &outcomes, options)?;
    let per_token = broadcast_to_segments(&segments, &trajectory_advantages)?;
    let mut advantages = Vec::with_capacity(segments.len());
    for (segment, tokens) in segments.iter_mut().zip(per_token) {
        segment.loss_mask = tokens.loss_mask;
        advantages.push(tokens.advantages);
    }
    Ok(StepData { segments, advantages, trajectory_advantages, fractures, outcomes })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use memrl_envs::env::{ScriptedKind, Split, TaskId};
    use memrl_envs::registry::build_env;
    use memrl_envs::tokens::WhitespaceCounter;

    use super::*;
    use crate::rollout::context::tests::ToyCodec;
    use crate::rollout::driver::{CompletionSource, RolloutLimits, play};

    fn trajectories(env: &str, kind: ScriptedKind, tasks: usize, group: usize) -> Vec<Trajectory> {
        let batch = (0..tasks * group)
            .map(|i| {
                let e = build_env(env, serde_json::Value::Null, Arc::new(WhitespaceCounter)).unwrap();
                (e, TaskId { split: Split::Train, index: (i / group) as u64 }, 1000 + i as u64)
            })
            .collect();
        let limits = RolloutLimits { max_turns: 64, max_new_tokens: 1 << 20, max_context_tokens: 1 << 20 };
        play(batch, &ToyCodec, CompletionSource::Scripted { kind, stop_id: 257 }, limits, 3).unwrap()
    }

    #[test]
    fn trajectory_ids_unpack() {
        let id = trajectory_id(7, 1234);
        assert_eq!((id >> INDEX_BITS, trajectory_index(id)), (7, 1234));
    }

    #[test]
    fn every_policy_token_gets_its_trajectory_advantage() {
        let trajs = trajectories("facts", ScriptedKind::Heuristic, 2, 3);
        let options = AdvantageOptions { mask_overlong: false, ..Default::default() };
        let data = collect(5, &trajs, 3, SegmentationMode::Dcpo, AdvantageEstimator::Grpo, options, RolloutLogprobs::Policy, 0).unwrap();
        let generated: usize = trajs.iter().flat_map(|t| &t.turns).map(|t| t.completion_ids.len()).sum();
        let masked: usize = data.segments.iter().map(|s| s.loss_mask.iter().filter(|&&m| m == 1).count()).sum();
        assert_eq!(masked, generated, "each generated token is trained exactly once");
        for (s, adv) in data.segments.iter().zip(&data.advantages) {
            let a = data.trajectory_advantages.by_trajectory[&s.trajectory_id].advantage as f32;
            for (m, x) in s.loss_mask.iter().zip(adv) {
                assert_eq!(*x, if *m == 1 { a } else { 0.0 });
            }
        }
    }

    /// One hand-made single-turn trajectory ending as `end` says (None: cut off by the rollout).
    fn ended(index: usize, reward: f64, end: Option<Termination>) -> Trajectory {
        use memrl_envs::env::{EpisodeEnd, EpisodeStats, RewardBreakdown};
        let turn = TurnSample {
            context_ids: vec![1, 2],
            context_step: crate::rollout::context::ContextStep::Initial,
            completion_ids: vec![3, 4],
            sampled_logprobs: vec![-0.5, -0.25],
            policy_logprobs: vec![-0.7, -0.35],
            text: String::new(),
        };
        let end = end.map(|termination| EpisodeEnd {
            reward,
            breakdown: RewardBreakdown { task_score: reward, penalty: 0.0, total: reward, termination, questions: Vec::new(), stats: EpisodeStats::default() },
        });
        Trajectory { index, task: TaskId { split: Split::Train, index: 0 }, turns: vec![turn], truncated: end.is_none(), end }
    }

    #[test]
    fn environment_budget_endings_count_as_overlong_and_are_masked() {
        let trajs = vec![
            ended(0, 1.0, Some(Termination::Completed)),
            ended(1, 0.0, Some(Termination::Completed)),
            ended(2, 0.2, Some(Termination::TurnLimit)),
            ended(3, 0.1, Some(Termination::ContextBudget)),
            ended(4, 0.0, None),
        ];
        assert_eq!(trajs.iter().map(is_overlong).collect::<Vec<_>>(), vec![false, false, true, true, true]);
        let data = collect(1, &trajs, 5, SegmentationMode::Dcpo, AdvantageEstimator::Grpo, AdvantageOptions::default(), RolloutLogprobs::Policy, 0).unwrap();
        assert_eq!(data.trajectory_advantages.summary().masked, 3);
        let masks: Vec<&Vec<u8>> = data.segments.iter().map(|s| &s.loss_mask).collect();
        assert_eq!(masks, vec![&vec![1, 1], &vec![1, 1], &vec![0, 0], &vec![0, 0], &vec![0, 0]]);
        // The learner's importance weights compare with the log-probs the collection asked for.
        assert_eq!(data.segments[0].rollout_logprobs, vec![-0.7, -0.35]);
        let sampled =
            collect(1, &trajs, 5, SegmentationMode::Dcpo, AdvantageEstimator::Grpo, AdvantageOptions::default(), RolloutLogprobs::Sampled, 0).unwrap();
        assert_eq!(sampled.segments[0].rollout_logprobs, vec![-0.5, -0.25]);
        assert_eq!(RolloutLogprobs::for_temperature(1.0), RolloutLogprobs::Policy);
        assert_eq!(RolloutLogprobs::for_temperature(0.7), RolloutLogprobs::Sampled);
    }

    #[test]
    fn multiobjective_prunes_fracture_under_dcpo_and_break_prefix_only() {
        let trajs = trajectories("multiobjective", ScriptedKind::Oracle, 2, 2);
        let dcpo = collect(0, &trajs, 2, SegmentationMode::Dcpo, AdvantageEstimator::Grpo, AdvantageOptions::default(), RolloutLogprobs::Policy, 0).unwrap();
        assert!(dcpo.fractures > 0, "the oracle prunes its context, so DCPO must see fractures");
        assert!(dcpo.segments.len() > trajs.len());
        let err = collect(0, &trajs, 2, SegmentationMode::PrefixOnly, AdvantageEstimator::Grpo, AdvantageOptions::default(), RolloutLogprobs::Policy, 0);
        assert!(matches!(err, Err(CollectError::Segment { .. })), "prefix_only refuses edited contexts");
    }
}

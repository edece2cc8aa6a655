//! Trajectory recording and segmentation into training samples (DCPO "trajectory fractures").
//!
//! A rollout produces, per turn, the exact context token ids the policy saw and the tokens it
//! sampled (with their log-probs). This module turns that record into [`Segment`]s, the unit the
//! learner trains on. Tokens are never re-tokenised from text: every id here is one the policy saw
//! or produced.
//!
//! Three segmentation modes, one function each, chosen by [`SegmentationMode`]:
//! - [`dcpo`] (default): a turn whose context extends the previous context + completion token for
//!   token is appended to the current segment (the environment tokens in between are masked out);
//!   otherwise the segment is closed and a new one starts (a **fracture**). This is the paper's
//!   form (MemAct v3 §3.3.1): each generated token is trained once, under the exact context it was
//!   sampled in. (MemAct's code re-masks surviving older assistant turns in the final segment; we
//!   do not.)
//! - [`per_turn`]: every turn is its own sample (MemAgent, Mem-α, SUPO sub-trajectories taken per
//!   turn): prompt = the turn's context, response = its completion.
//! - [`prefix_only`]: one sequence per trajectory; a context that breaks the prefix is an error.
//!   This is the single-sequence baseline of most frameworks, kept to show why DCPO exists.

use memrl_envs::rollout::ids_extend;
use serde::{Deserialize, Serialize};

/// One training sample: a context and everything that followed it within one unbroken prefix.
///
/// `prompt_ids ++ response_ids` is a token sequence the policy actually processed. `loss_mask`
/// and `rollout_logprobs` are aligned with `response_ids`: mask 1 (and the sampling log-prob) on
/// tokens the policy generated, mask 0 (and log-prob 0.0) on environment tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// The trajectory (one rollout of one task) this segment belongs to.
    pub trajectory_id: u64,
    /// The group (all rollouts of the same task) the trajectory belongs to.
    pub group_id: u64,
    /// Position of this segment within its trajectory, from 0.
    pub index: u32,
    /// True for the trajectory's final segment.
    pub is_last: bool,
    /// The context at the segment's start, exact tokens.
    pub prompt_ids: Vec<u32>,
    /// Everything after the prompt: policy tokens and the environment tokens between turns.
    pub response_ids: Vec<u32>,
    /// 1 on tokens the policy generated, 0 on environment tokens; aligned with `response_ids`.
    pub loss_mask: Vec<u8>,
    /// The rollout engine's log-prob of each generated token; 0.0 where `loss_mask` is 0.
    pub rollout_logprobs: Vec<f32>,
    /// The oldest policy version that generated any token of this segment.
    pub policy_version: u64,
}

impl Segment {
    /// Number of tokens the policy generated in this segment (the count of 1s in `loss_mask`).
    pub fn policy_token_count(&self) -> usize {
        self.loss_mask.iter().filter(|&&m| m != 0).count()
    }

    /// Total tokens the learner processes for this segment (prompt + response).
    pub fn total_len(&self) -> usize {
        self.prompt_ids.len() + self.response_ids.len()
    }
}

/// How trajectories are cut into segments; one function per mode in this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentationMode {
    /// Merge turns while the context extends the previous one; fracture otherwise (default).
    #[default]
    Dcpo,
    /// One segment per turn (MemAgent / Mem-α style).
    PerTurn,
    /// One segment per trajectory; a broken prefix is an error.
    PrefixOnly,
}

/// One turn of a rollout as the policy saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// The exact context token ids the policy was conditioned on for this turn.
    pub prompt_ids: Vec<u32>,
    /// The token ids the policy sampled.
    pub completion_ids: Vec<u32>,
    /// The sampling log-prob of each completion token (same length as `completion_ids`).
    pub completion_logprobs: Vec<f32>,
    /// The policy version (learner step of the weights) that generated this turn.
    pub policy_version: u64,
}

/// Errors from recording or segmenting a trajectory.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SegmentError {
    /// A turn's log-probs do not line up with its completion tokens.
    #[error("trajectory {trajectory_id} turn {turn}: {logprobs} completion log-probs for {completion} completion tokens")]
    LogprobLengthMismatch {
        /// The trajectory.
        trajectory_id: u64,
        /// The turn index, from 0.
        turn: usize,
        /// Number of completion tokens.
        completion: usize,
        /// Number of log-probs given.
        logprobs: usize,
    },
    /// A log-prob is NaN or positive infinity (log-probs must be finite or -inf, and at most 0).
    #[error("trajectory {trajectory_id} turn {turn} token {token}: invalid log-prob {value}")]
    InvalidLogprob {
        /// The trajectory.
        trajectory_id: u64,
        /// The turn index.
        turn: usize,
        /// Index of the token within the completion.
        token: usize,
        /// The offending value.
        value: f32,
    },
    /// `prefix_only` mode met a context that does not extend the previous context + completion.
    #[error(
        "trajectory {trajectory_id}: turn {turn}'s context does not extend the previous context + completion \
         (first difference at token {position}); prefix_only segmentation cannot represent it (use dcpo or per_turn)"
    )]
    PrefixBroken {
        /// The trajectory.
        trajectory_id: u64,
        /// The turn whose context broke the prefix.
        turn: usize,
        /// The first token position where the new context differs from the running sequence.
        position: usize,
    },
}

/// Where one turn's completion landed after segmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnSpan {
    /// Index of the segment holding the turn.
    pub segment: u32,
    /// Offset of the turn's first completion token within that segment's `response_ids`.
    pub response_start: usize,
    /// Number of completion tokens.
    pub len: usize,
}

/// The result of segmenting one trajectory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segmentation {
    /// The segments, in order; the last has `is_last = true`. Empty if the trajectory had no turns.
    pub segments: Vec<Segment>,
    /// Number of turn boundaries where the context did NOT extend the previous context +
    /// completion. A property of the trajectory, counted the same way in every mode.
    pub fractures: usize,
    /// For each turn, where its completion sits.
    pub turn_spans: Vec<TurnSpan>,
}

/// Records the turns of one trajectory, validating each as it arrives.
#[derive(Debug, Clone)]
pub struct TrajectoryRecorder {
    trajectory_id: u64,
    group_id: u64,
    turns: Vec<Turn>,
}

impl TrajectoryRecorder {
    /// Starts an empty record for trajectory `trajectory_id` of group `group_id`.
    pub fn new(trajectory_id: u64, group_id: u64) -> Self {
        Self { trajectory_id, group_id, turns: Vec::new() }
    }

    /// Appends one turn. `prompt_ids` must be the exact context the policy saw this turn.
    pub fn push_turn(
        &mut self,
        prompt_ids: Vec<u32>,
        completion_ids: Vec<u32>,
        completion_logprobs: Vec<f32>,
        policy_version: u64,
    ) -> Result<(), SegmentError> {
        let turn = Turn { prompt_ids, completion_ids, completion_logprobs, policy_version };
        validate_turn(self.trajectory_id, self.turns.len(), &turn)?;
        self.turns.push(turn);
        Ok(())
    }

    /// The trajectory id.
    pub fn trajectory_id(&self) -> u64 {
        self.trajectory_id
    }

    /// The group id.
    pub fn group_id(&self) -> u64 {
        self.group_id
    }

    /// The turns recorded so far.
    pub fn turns(&self) -> &[Turn] {
        &self.turns
    }

    /// Segments the recorded turns with `mode`.
    pub fn segment(&self, mode: SegmentationMode) -> Result<Segmentation, SegmentError> {
        segment_trajectory(mode, self.trajectory_id, self.group_id, &self.turns)
    }
}

fn validate_turn(trajectory_id: u64, turn_index: usize, turn: &Turn) -> Result<(), SegmentError> {
    if turn.completion_ids.len() != turn.completion_logprobs.len() {
        return Err(SegmentError::LogprobLengthMismatch {
            trajectory_id,
            turn: turn_index,
            completion: turn.completion_ids.len(),
            logprobs: turn.completion_logprobs.len(),
        });
    }
    for (token, &value) in turn.completion_logprobs.iter().enumerate() {
        if value.is_nan() || value > 0.0 {
            return Err(SegmentError::InvalidLogprob { trajectory_id, turn: turn_index, token, value });
        }
    }
    Ok(())
}

/// Segments `turns` with the chosen mode (the single dispatch point over [`SegmentationMode`]).
pub fn segment_trajectory(mode: SegmentationMode, trajectory_id: u64, group_id: u64, turns: &[Turn]) -> Result<Segmentation, SegmentError> {
    for (i, turn) in turns.iter().enumerate() {
        validate_turn(trajectory_id, i, turn)?;
    }
    match mode {
        SegmentationMode::Dcpo => Ok(dcpo(trajectory_id, group_id, turns)),
        SegmentationMode::PerTurn => Ok(per_turn(trajectory_id, group_id, turns)),
        SegmentationMode::PrefixOnly => prefix_only(trajectory_id, group_id, turns),
    }
}

/// The first position where `context` stops extending `running` (None if `running` is a prefix
/// of `context`).
fn prefix_break(running: &[u32], context: &[u32]) -> Option<usize> {
    let common = running.iter().zip(context).take_while(|(a, b)| a == b).count();
    if common == running.len() { None } else { Some(common) }
}

/// Builds segments incrementally: the open segment plus the sequence it represents.
struct SegmentBuilder {
    trajectory_id: u64,
    group_id: u64,
    segments: Vec<Segment>,
    turn_spans: Vec<TurnSpan>,
    /// prompt ++ response of the open segment, to test prefix extension.
    running: Vec<u32>,
}

impl SegmentBuilder {
    fn new(trajectory_id: u64, group_id: u64) -> Self {
        Self { trajectory_id, group_id, segments: Vec::new(), turn_spans: Vec::new(), running: Vec::new() }
    }

    /// Opens a new segment whose prompt is `turn`'s context, then appends the completion.
    fn start_segment(&mut self, turn: &Turn) {
        let index = self.segments.len() as u32;
        self.segments.push(Segment {
            trajectory_id: self.trajectory_id,
            group_id: self.group_id,
            index,
            is_last: false,
            prompt_ids: turn.prompt_ids.clone(),
            response_ids: Vec::new(),
            loss_mask: Vec::new(),
            rollout_logprobs: Vec::new(),
            policy_version: turn.policy_version,
        });
        self.running.clear();
        self.running.extend_from_slice(&turn.prompt_ids);
        self.push_completion(turn);
    }

    /// Appends `turn` to the open segment: the environment tokens its context adds past the
    /// running sequence (masked out), then the completion. The caller checked the prefix.
    fn extend_segment(&mut self, turn: &Turn) {
        let env_tokens = &turn.prompt_ids[self.running.len()..];
        let segment = self.segments.last_mut().expect("extend_segment needs an open segment");
        segment.response_ids.extend_from_slice(env_tokens);
        segment.loss_mask.extend(std::iter::repeat_n(0u8, env_tokens.len()));
        segment.rollout_logprobs.extend(std::iter::repeat_n(0.0f32, env_tokens.len()));
        segment.policy_version = segment.policy_version.min(turn.policy_version);
        self.running.extend_from_slice(env_tokens);
        self.push_completion(turn);
    }

    fn push_completion(&mut self, turn: &Turn) {
        let segment = self.segments.last_mut().expect("push_completion needs an open segment");
        self.turn_spans.push(TurnSpan { segment: segment.index, response_start: segment.response_ids.len(), len: turn.completion_ids.len() });
        segment.response_ids.extend_from_slice(&turn.completion_ids);
        segment.loss_mask.extend(std::iter::repeat_n(1u8, turn.completion_ids.len()));
        segment.rollout_logprobs.extend_from_slice(&turn.completion_logprobs);
        self.running.extend_from_slice(&turn.completion_ids);
    }

    fn finish(mut self, fractures: usize) -> Segmentation {
        if let Some(last) = self.segments.last_mut() {
            last.is_last = true;
        }
        Segmentation { segments: self.segments, fractures, turn_spans: self.turn_spans }
    }
}

/// Counts the turn boundaries whose context does not extend the previous context + completion
/// ([`memrl_envs::rollout::ids_extend`], the fracture test `memrl env play` counts with too).
fn count_fractures(turns: &[Turn]) -> usize {
    turns.windows(2).filter(|pair| !ids_extend(&pair[0].prompt_ids, &pair[0].completion_ids, &pair[1].prompt_ids)).count()
}

/// DCPO segmentation: merge turns while the context extends the running sequence, fracture otherwise.
///
/// Note the test is against the *running segment* (which equals previous context + completion,
/// since the previous turn's context was itself checked), so the count of new segments after the
/// first equals [`Segmentation::fractures`].
pub fn dcpo(trajectory_id: u64, group_id: u64, turns: &[Turn]) -> Segmentation {
    let mut builder = SegmentBuilder::new(trajectory_id, group_id);
    for (i, turn) in turns.iter().enumerate() {
        if i > 0 && prefix_break(&builder.running, &turn.prompt_ids).is_none() {
            builder.extend_segment(turn);
        } else {
            builder.start_segment(turn);
        }
    }
    builder.finish(count_fractures(turns))
}

/// Per-turn segmentation: each turn is its own segment (prompt = context, response = completion).
pub fn per_turn(trajectory_id: u64, group_id: u64, turns: &[Turn]) -> Segmentation {
    let mut builder = SegmentBuilder::new(trajectory_id, group_id);
    for turn in turns {
        builder.start_segment(turn);
    }
    builder.finish(count_fractures(turns))
}

/// Single-sequence segmentation: one segment per trajectory; a broken prefix is an error.
pub fn prefix_only(trajectory_id: u64, group_id: u64, turns: &[Turn]) -> Result<Segmentation, SegmentError> {
    let mut builder = SegmentBuilder::new(trajectory_id, group_id);
    for (i, turn) in turns.iter().enumerate() {
        if i == 0 {
            builder.start_segment(turn);
        } else if let Some(position) = prefix_break(&builder.running, &turn.prompt_ids) {
            return Err(SegmentError::PrefixBroken { trajectory_id, turn: i, position });
        } else {
            builder.extend_segment(turn);
        }
    }
    Ok(builder.finish(0))
}

/// Removes the policy's confident tokens from the loss: every response token whose rollout
/// log-prob is above `ln(max_prob)` (sampled with probability above `max_prob`) gets loss mask
/// 0, so only the forking tokens train (`algorithm.skip_tokens_above_prob`). Environment
/// tokens and already-masked tokens are left as they are.
pub fn skip_confident_tokens(segments: &mut [Segment], max_prob: f64) {
    let threshold = max_prob.ln();
    for s in segments.iter_mut() {
        for (m, &lp) in s.loss_mask.iter_mut().zip(&s.rollout_logprobs) {
            if *m != 0 && f64::from(lp) > threshold {
                *m = 0;
            }
        }
    }
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;

    fn turn(prompt: &[u32], completion: &[u32]) -> Turn {
        Turn {
            prompt_ids: prompt.to_vec(),
            completion_ids: completion.to_vec(),
            completion_logprobs: completion.iter().map(|&t| -(t as f32) / 100.0).collect(),
            policy_version: 3,
        }
    }

    #[test]
    fn appending_turns_stay_in_one_segment_with_env_tokens_masked() {
        // Turn 0: context [1,2], completion [10,11]. Turn 1: context [1,2,10,11,20,21] (env added
        // 20,21), completion [12].
        let turns = vec![turn(&[1, 2], &[10, 11]), turn(&[1, 2, 10, 11, 20, 21], &[12])];
        let s = dcpo(7, 9, &turns);
        assert_eq!(s.fractures, 0);
        assert_eq!(s.segments.len(), 1);
        let seg = &s.segments[0];
        assert_eq!(seg.prompt_ids, vec![1, 2]);
        assert_eq!(seg.response_ids, vec![10, 11, 20, 21, 12]);
        assert_eq!(seg.loss_mask, vec![1, 1, 0, 0, 1]);
        assert_eq!(seg.rollout_logprobs, vec![-0.10, -0.11, 0.0, 0.0, -0.12]);
        assert!(seg.is_last);
        assert_eq!((seg.trajectory_id, seg.group_id, seg.index), (7, 9, 0));
        assert_eq!(s.turn_spans[1], TurnSpan { segment: 0, response_start: 4, len: 1 });
    }

    #[test]
    fn an_edited_context_fractures() {
        // Turn 1's context drops token 2 (a prune): a new segment starts at its context.
        let turns = vec![turn(&[1, 2], &[10]), turn(&[1, 10, 30], &[11]), turn(&[1, 10, 30, 11, 31], &[12])];
        let s = dcpo(0, 0, &turns);
        assert_eq!(s.fractures, 1);
        assert_eq!(s.segments.len(), 2);
        assert_eq!(s.segments[1].prompt_ids, vec![1, 10, 30]);
        assert_eq!(s.segments[1].response_ids, vec![11, 31, 12]);
        assert_eq!(s.segments[1].loss_mask, vec![1, 0, 1]);
        assert_eq!(s.segments.iter().map(|g| g.is_last).collect::<Vec<_>>(), vec![false, true]);
        let err = prefix_only(0, 0, &turns).unwrap_err();
        assert_eq!(err, SegmentError::PrefixBroken { trajectory_id: 0, turn: 1, position: 1 });
        let p = per_turn(0, 0, &turns);
        assert_eq!(p.segments.len(), 3);
        assert_eq!(p.fractures, 1);
        assert_eq!(p.segments[2].prompt_ids, vec![1, 10, 30, 11, 31]);
        assert_eq!(p.segments[2].response_ids, vec![12]);
    }

    #[test]
    fn a_context_shorter_than_the_running_sequence_fractures() {
        // The next context is a strict prefix of the previous context + completion (the template
        // dropped the completion's last token): not an extension.
        let turns = vec![turn(&[1, 2], &[10, 11]), turn(&[1, 2, 10], &[12])];
        assert_eq!(dcpo(0, 0, &turns).fractures, 1);
        assert_eq!(prefix_only(0, 0, &turns).unwrap_err(), SegmentError::PrefixBroken { trajectory_id: 0, turn: 1, position: 3 });
    }

    #[test]
    fn policy_version_is_the_oldest_in_the_segment() {
        let mut a = turn(&[1], &[2]);
        a.policy_version = 5;
        let mut b = turn(&[1, 2], &[3]);
        b.policy_version = 4;
        assert_eq!(dcpo(0, 0, &[a, b]).segments[0].policy_version, 4);
    }

    #[test]
    fn recorder_rejects_misaligned_or_invalid_logprobs() {
        let mut r = TrajectoryRecorder::new(1, 2);
        let e = r.push_turn(vec![1], vec![2, 3], vec![-0.1], 0).unwrap_err();
        assert!(matches!(e, SegmentError::LogprobLengthMismatch { completion: 2, logprobs: 1, .. }));
        let e = r.push_turn(vec![1], vec![2], vec![f32::NAN], 0).unwrap_err();
        assert!(matches!(e, SegmentError::InvalidLogprob { token: 0, .. }));
        let e = r.push_turn(vec![1], vec![2], vec![0.5], 0).unwrap_err();
        assert!(matches!(e, SegmentError::InvalidLogprob { .. }));
        assert!(r.turns().is_empty());
        r.push_turn(vec![1], vec![2], vec![f32::NEG_INFINITY], 0).unwrap();
        assert_eq!(r.segment(SegmentationMode::Dcpo).unwrap().segments.len(), 1);
    }

    #[test]
    fn no_turns_no_segments() {
        for mode in [SegmentationMode::Dcpo, SegmentationMode::PerTurn, SegmentationMode::PrefixOnly] {
            let s = segment_trajectory(mode, 0, 0, &[]).unwrap();
            assert!(s.segments.is_empty());
            assert_eq!(s.fractures, 0);
        }
    }

    #[test]
    fn confident_tokens_leave_the_loss_and_the_rest_stay() {
        let mut segs = vec![Segment {
            trajectory_id: 1,
            group_id: 0,
            index: 0,
            is_last: true,
            prompt_ids: vec![1, 2],
            response_ids: vec![5, 6, 7, 8, 9],
            loss_mask: vec![1, 1, 0, 1, 1],
            rollout_logprobs: vec![-0.001, -1.0, 0.0, -0.01, -0.05],
            policy_version: 0,
        }];
        // ln 0.98 = -0.0202: tokens sampled with p = 0.999 and 0.990 are confident.
        skip_confident_tokens(&mut segs, 0.98);
        assert_eq!(segs[0].loss_mask, vec![0, 1, 0, 0, 1]);
        // 1.0 keeps every token (ln 1 = 0 is above every log-prob but a rounding 0.0).
        let mut all = segs.clone();
        all[0].loss_mask = vec![1, 1, 0, 1, 1];
        skip_confident_tokens(&mut all, 1.0);
        assert_eq!(all[0].loss_mask, vec![1, 1, 0, 1, 1]);
    }
}

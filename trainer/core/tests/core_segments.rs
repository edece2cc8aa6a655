//! Property tests of trajectory segmentation: exact contexts are reproduced, masks count exactly
//! the generated tokens, and DCPO equals the single-sequence baseline when nothing is edited.

use memrl_rl::segments::{Segmentation, SegmentationMode, Turn, segment_trajectory};
use proptest::prelude::*;

/// How the next context is built from the previous context + completion.
#[derive(Debug, Clone)]
enum Next {
    /// Append these environment tokens (a prefix-preserving turn).
    Extend(Vec<u32>),
    /// Keep only the first `keep` tokens of the running sequence (fraction in 0..=100), then add tokens.
    Edit(u8, Vec<u32>),
}

fn tokens(max: usize) -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(0u32..6, 0..=max)
}

fn plan(allow_edits: bool) -> impl Strategy<Value = (Vec<u32>, Vec<(Vec<u32>, Next)>)> {
    let next = if allow_edits {
        prop_oneof![tokens(3).prop_map(Next::Extend), (0u8..=100, tokens(4)).prop_map(|(k, t)| Next::Edit(k, t))].boxed()
    } else {
        tokens(3).prop_map(Next::Extend).boxed()
    };
    (prop::collection::vec(0u32..6, 1..6), prop::collection::vec((tokens(4), next), 0..7))
}

/// Plays the plan: turn i sees `context`, completes with the planned tokens; the next context
/// follows the plan. Log-probs are distinct negative numbers so misalignment shows.
fn build_turns(first: Vec<u32>, steps: &[(Vec<u32>, Next)]) -> Vec<Turn> {
    let mut turns = Vec::new();
    let mut context = first;
    let mut counter = 0.0f32;
    for (i, (completion, next)) in steps.iter().enumerate() {
        let logprobs = completion
            .iter()
            .map(|_| {
                counter += 1.0;
                -counter / 64.0
            })
            .collect();
        turns.push(Turn { prompt_ids: context.clone(), completion_ids: completion.clone(), completion_logprobs: logprobs, policy_version: i as u64 });
        let mut running = context.clone();
        running.extend(completion);
        context = match next {
            Next::Extend(env) => {
                running.extend(env);
                running
            }
            Next::Edit(keep, extra) => {
                let n = running.len() * *keep as usize / 100;
                let mut c = running[..n].to_vec();
                c.extend(extra);
                c
            }
        };
    }
    turns
}

fn check_invariants(turns: &[Turn], s: &Segmentation, mode: SegmentationMode) -> Result<(), TestCaseError> {
    prop_assert_eq!(s.turn_spans.len(), turns.len());
    for (i, (turn, span)) in turns.iter().zip(&s.turn_spans).enumerate() {
        let seg = &s.segments[span.segment as usize];
        let mut seen: Vec<u32> = seg.prompt_ids.clone();
        seen.extend_from_slice(&seg.response_ids[..span.response_start]);
        prop_assert_eq!(&seen, &turn.prompt_ids, "turn {} context not reproduced", i);
        let range = span.response_start..span.response_start + span.len;
        prop_assert_eq!(&seg.response_ids[range.clone()], &turn.completion_ids[..]);
        prop_assert!(seg.loss_mask[range.clone()].iter().all(|&m| m == 1));
        prop_assert_eq!(&seg.rollout_logprobs[range], &turn.completion_logprobs[..]);
    }
    let generated: usize = turns.iter().map(|t| t.completion_ids.len()).sum();
    let masked: usize = s.segments.iter().map(|g| g.policy_token_count()).sum();
    prop_assert_eq!(masked, generated, "masks must count exactly the generated tokens");
    for (k, seg) in s.segments.iter().enumerate() {
        prop_assert_eq!(seg.index as usize, k);
        prop_assert_eq!(seg.is_last, k + 1 == s.segments.len());
        prop_assert_eq!(seg.loss_mask.len(), seg.response_ids.len());
        prop_assert_eq!(seg.rollout_logprobs.len(), seg.response_ids.len());
        for (m, lp) in seg.loss_mask.iter().zip(&seg.rollout_logprobs) {
            prop_assert!(*m == 1 || *lp == 0.0, "env tokens carry log-prob 0");
        }
    }
    match mode {
        SegmentationMode::Dcpo if !turns.is_empty() => prop_assert_eq!(s.segments.len(), s.fractures + 1),
        SegmentationMode::PerTurn => prop_assert_eq!(s.segments.len(), turns.len()),
        _ => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn segments_reproduce_contexts_and_count_generated_tokens((first, steps) in plan(true)) {
        let turns = build_turns(first, &steps);
        for mode in [SegmentationMode::Dcpo, SegmentationMode::PerTurn] {
            let s = segment_trajectory(mode, 11, 5, &turns).unwrap();
            check_invariants(&turns, &s, mode)?;
            prop_assert!(s.segments.iter().all(|g| g.trajectory_id == 11 && g.group_id == 5));
        }
        let dcpo = segment_trajectory(SegmentationMode::Dcpo, 11, 5, &turns).unwrap();
        let prefix = segment_trajectory(SegmentationMode::PrefixOnly, 11, 5, &turns);
        prop_assert_eq!(prefix.is_err(), dcpo.fractures > 0);
        if let Ok(p) = prefix {
            check_invariants(&turns, &p, SegmentationMode::PrefixOnly)?;
        }
    }

    #[test]
    fn without_edits_dcpo_equals_prefix_only((first, steps) in plan(false)) {
        let turns = build_turns(first, &steps);
        let dcpo = segment_trajectory(SegmentationMode::Dcpo, 1, 2, &turns).unwrap();
        let prefix = segment_trajectory(SegmentationMode::PrefixOnly, 1, 2, &turns).unwrap();
        prop_assert_eq!(dcpo.fractures, 0);
        prop_assert!(dcpo.segments.len() <= 1);
        prop_assert_eq!(dcpo, prefix);
    }
}

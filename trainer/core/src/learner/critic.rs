//! The learned critic on the shared trunk (PPO with GAE): the old values V_old of every
//! response token, from a no-grad pass before the update, and the per-token targets the update's
//! value loss reads ([`CriticTargets`]).
//!
//! A value belongs to a decision: the value of response token k of a segment with a prompt of
//! p tokens is the value head's output at input position p + k − 1, the position whose logits
//! sample token k (the same position as its log-prob).

use std::collections::BTreeMap;

use memrl_policies::backend::Backend;
use memrl_policies::model::Llama;

use crate::advantage::{AdvantageError, Advantages, TrajectoryAdvantage, TrajectoryOutcome, gae_batch, outcome_token_rewards};

use crate::learner::batch::{MicroBatch, plan};
use crate::loss::value::ValueLossConfig;
use crate::segments::Segment;

/// What the value loss of one update needs besides the model: per segment, aligned with its
/// `response_ids`, the returns (value targets) and the values before the update; and the loss's
/// hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct CriticTargets {
    /// G_t per response token (0 where the loss mask is 0).
    pub returns: Vec<Vec<f32>>,
    /// V_old per response token.
    pub old_values: Vec<Vec<f32>>,
    /// vf_coef and the clip range.
    pub loss: ValueLossConfig,
}

impl CriticTargets {
    /// The returns laid out as `mb` (`[rows * seq]`, at each response token's input position).
    pub fn returns_for(&self, segments: &[Segment], mb: &MicroBatch) -> Vec<f64> {
        lay_out_response_values(segments, &self.returns, mb)
    }

    /// The old values laid out as `mb`.
    pub fn old_values_for(&self, segments: &[Segment], mb: &MicroBatch) -> Vec<f64> {
        lay_out_response_values(segments, &self.old_values, mb)
    }
}

/// Per-response-token values (aligned with each segment's `response_ids`) laid out at their
/// input positions in `mb` (`[rows * seq]`, 0 elsewhere).
pub fn lay_out_response_values(segments: &[Segment], per_token: &[Vec<f32>], mb: &MicroBatch) -> Vec<f64> {
    let mut out = vec![0.0; mb.rows * mb.seq];
    for (r, &i) in mb.segment_of_row.iter().enumerate() {
        let p = segments[i].prompt_ids.len();
        for (k, &x) in per_token[i].iter().enumerate() {
            if p + k > 0 {
                out[r * mb.seq + p + k - 1] = f64::from(x);
            }
        }
    }
    out
}

/// The value head's output at every response token of every segment (aligned with each
/// `response_ids`; a response token at position 0 of its row, which no input predicts, gets 0),
/// from detached forward passes over micro-batches of at most `micro_batch_tokens` tokens.
pub fn response_values<B: Backend>(model: &Llama<B>, segments: &[Segment], micro_batch_tokens: usize, pad_id: u32) -> Vec<Vec<f32>> {
    let zeros: Vec<Vec<f32>> = segments.iter().map(|s| vec![0.0; s.response_ids.len()]).collect();
    let mut out = zeros.clone();
    let b = &model.backend;
    for mb in plan(segments, &zeros, 1, micro_batch_tokens, 0, pad_id).iter().flatten() {
        let hidden = model.forward(&mb.input_ids, mb.rows, mb.seq, &mb.lengths);
        let values = b.to_vec(&b.detach(model.values(hidden)));
        for (r, &i) in mb.segment_of_row.iter().enumerate() {
            let p = segments[i].prompt_ids.len();
            for (k, v) in out[i].iter_mut().enumerate() {
                if p + k > 0 {
                    *v = values[r * mb.seq + p + k - 1];
                }
            }
        }
    }
    out
}

/// GAE's settings (PPO with a learned critic).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaeSettings {
    /// Discount γ per policy token.
    pub gamma: f64,
    /// GAE λ.
    pub lam: f64,
    /// Whiten the advantages over the batch's policy tokens (PPO's default): (A − mean) /
    /// sqrt(var + 1e-8), population variance.
    pub whiten: bool,
    /// The value loss's hyper-parameters.
    pub loss: ValueLossConfig,
}

/// Sets a `gae` step's advantages from the critic and returns the value loss's targets.
///
/// 1. V_old at every response token ([`response_values`], before any update of this step).
/// 2. The trajectory's reward on its last policy token ([`outcome_token_rewards`]).
/// 3. GAE ([`gae_batch`]) along each trajectory's chain of policy tokens, in segment order: a
///    DCPO fracture does not end the chain. Segments of one trajectory are consecutive pieces
///    of one decision process, so the last policy token of segment k bootstraps from V at the
///    first policy token of segment k + 1 (computed under segment k + 1's own, edited
///    context); only the trajectory's last policy token has V_next = 0. Prompt and environment
///    tokens are not decisions: they carry no value, advantage or return.
/// 4. Overlong masking as the outcome estimators do it (a masked trajectory's loss mask is 0),
///    then optional whitening.
///
/// `data.trajectory_advantages` gets, per trajectory, the mean of its policy tokens' (final)
/// advantages, for the advantage metrics and the rollout files.
pub fn gae_targets<B: Backend>(
    model: &Llama<B>,
    data: &mut crate::collect::StepData,
    gae: &GaeSettings,
    mask_overlong: bool,
    micro_batch_tokens: usize,
    pad_id: u32,
) -> Result<CriticTargets, AdvantageError> {
    let values = response_values(model, &data.segments, micro_batch_tokens, pad_id);
    let rewards = outcome_token_rewards(&data.segments, &data.outcomes)?;
    let targets = gae_batch(&data.segments, &values, &rewards, &data.outcomes, gae.gamma, gae.lam, mask_overlong)?;
    let mut returns = Vec::with_capacity(targets.len());
    data.advantages.clear();
    for (segment, t) in data.segments.iter_mut().zip(targets) {
        segment.loss_mask = t.tokens.loss_mask;
        data.advantages.push(t.tokens.advantages);
        returns.push(t.returns);
    }
    if gae.whiten {
        whiten(&data.segments, &mut data.advantages);
    }
    data.trajectory_advantages = trajectory_means(&data.segments, &data.advantages, &data.outcomes, mask_overlong);
    Ok(CriticTargets { returns, old_values: values, loss: gae.loss })
}

/// (A − mean) / sqrt(var + 1e-8) over the policy tokens (loss mask 1) of the whole batch;
/// other tokens stay 0.
fn whiten(segments: &[Segment], advantages: &mut [Vec<f32>]) {
    let live: Vec<f64> =
        segments.iter().zip(advantages.iter()).flat_map(|(s, a)| s.loss_mask.iter().zip(a).filter(|(m, _)| **m != 0).map(|(_, &x)| f64::from(x))).collect();
    if live.is_empty() {
        return;
    }
    let (mean, std) = crate::stats::mean_std(&live);
    let scale = 1.0 / (std * std + 1e-8).sqrt();
    for (s, a) in segments.iter().zip(advantages.iter_mut()) {
        for (x, &m) in a.iter_mut().zip(&s.loss_mask) {
            if m != 0 {
                *x = ((f64::from(*x) - mean) * scale) as f32;
            }
        }
    }
}

/// Per trajectory, the mean advantage over its policy tokens (0 for one without any), masked
/// as overlong masking says.
fn trajectory_means(segments: &[Segment], advantages: &[Vec<f32>], outcomes: &[TrajectoryOutcome], mask_overlong: bool) -> Advantages {
    let mut sums: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
    for (s, a) in segments.iter().zip(advantages) {
        let e = sums.entry(s.trajectory_id).or_default();
        for (&x, &m) in a.iter().zip(&s.loss_mask) {
            if m != 0 {
                e.0 += f64::from(x);
                e.1 += 1;
            }
        }
    }
    let mut out = Advantages::default();
    for o in outcomes {
        let masked = mask_overlong && o.truncated;
        let (sum, n) = sums.get(&o.trajectory_id).copied().unwrap_or_default();
        let advantage = if masked || n == 0 { 0.0 } else { sum / n as f64 };
        out.by_trajectory.insert(o.trajectory_id, TrajectoryAdvantage { group_id: o.group_id, advantage, masked });
    }
    out
}

#[cfg(test)]
mod tests {
    use memrl_policies::BurnBackend;
    use memrl_policies::train::init_value_head;
    use memrl_policies::train::optim::{AdamW, AdamWConfig};
    use memrl_policies::train::tiny::{TinyPreset, init_tiny};

    use super::*;
    use crate::learner::batch::MicroBatch;
    use crate::learner::update::{UpdateSettings, policy_update};
    use crate::loss::LossConfig;

    fn segments() -> Vec<Segment> {
        (0..4u32)
            .map(|i| Segment {
                trajectory_id: u64::from(i),
                group_id: 0,
                index: 0,
                is_last: true,
                prompt_ids: (0..2 + i).map(|k| 1 + (k * 5 + i) % 30).collect(),
                response_ids: vec![3 + i, 7, 9, 2],
                loss_mask: vec![1, 1, 0, 1],
                rollout_logprobs: vec![-2.0, -2.0, 0.0, -2.0],
                policy_version: 0,
            })
            .collect()
    }

    fn settings(micro_batch_tokens: usize) -> UpdateSettings {
        UpdateSettings {
            loss: LossConfig::default(),
            lr: 1e-2,
            grad_clip: 1.0,
            micro_batch_tokens,
            mini_batches: 1,
            epochs: 1,
            seed: 0,
            pad_id: 0,
            temperature: 1.0,
        }
    }

    #[test]
    fn values_sit_where_the_advantages_do() {
        let segs = segments();
        let per_token: Vec<Vec<f32>> = segs.iter().enumerate().map(|(i, s)| (0..s.response_ids.len()).map(|k| (10 * i + k) as f32).collect()).collect();
        let mb = MicroBatch::build(&segs, &per_token, &[3, 0, 2], 0);
        let laid = lay_out_response_values(&segs, &per_token, &mb);
        for (pos, &m) in mb.loss_mask.iter().enumerate() {
            if m != 0 {
                assert_eq!(laid[pos], f64::from(mb.advantages[pos]), "position {pos}");
            }
        }
        // The value pass files each value under its segment whatever the packing.
        let mut model = init_tiny(BurnBackend::flex(), TinyPreset::L2D64, 32, 0).unwrap();
        init_value_head(&mut model, 1);
        let one = response_values(&model, &segs, 4096, 0);
        let many = response_values(&model, &segs, 8, 0);
        for (a, b) in one.iter().flatten().zip(many.iter().flatten()) {
            assert!((a - b).abs() < 1e-5, "{one:?} vs {many:?}");
        }
        assert!(one.iter().flatten().any(|&v| v != 0.0));
    }

    #[test]
    fn the_value_loss_trains_the_head_and_falls_on_a_fixed_batch() {
        let segs = segments();
        let mut model = init_tiny(BurnBackend::flex_autodiff(), TinyPreset::L2D64, 32, 0).unwrap();
        init_value_head(&mut model, 1);
        let head_before = model.backend.to_vec(&model.value_head.as_ref().unwrap().weight);
        let mut optimizer = AdamW::new(AdamWConfig::default()).unwrap();
        let advantages: Vec<Vec<f32>> = segs.iter().map(|s| vec![0.0; s.response_ids.len()]).collect();
        let returns: Vec<Vec<f32>> = segs.iter().map(|s| s.loss_mask.iter().map(|&m| f32::from(m)).collect()).collect();
        let loss = ValueLossConfig { vf_coef: 1.0, value_clip: 0.0 };
        let mut losses = Vec::new();
        for _ in 0..8 {
            let old_values = response_values(&model, &segs, 64, 0);
            let critic = CriticTargets { returns: returns.clone(), old_values, loss };
            let report = policy_update(&mut model, &mut optimizer, None, &segs, &advantages, &settings(64), Some(&critic)).unwrap();
            let value = report.value.expect("a critic's update reports its value loss");
            assert_eq!(value.clip_frac, 0.0, "no clip configured");
            losses.push(value.loss);
        }
        assert!(losses[7] < 0.5 * losses[0], "value loss {losses:?}");
        let head_after = model.backend.to_vec(&model.value_head.as_ref().unwrap().weight);
        assert_ne!(head_before, head_after, "the head receives gradient");
        // Without a critic the report has no value part.
        let report = policy_update(&mut model, &mut optimizer, None, &segs, &advantages, &settings(64), None).unwrap();
        assert!(report.value.is_none());
    }

    #[test]
    fn gae_targets_set_masks_advantages_and_returns_and_whiten() {
        let segs = segments();
        let outcomes: Vec<TrajectoryOutcome> =
            (0..4u64).map(|i| TrajectoryOutcome { trajectory_id: i, group_id: 0, reward: i as f64, truncated: i == 3 }).collect();
        let mut model = init_tiny(BurnBackend::flex(), TinyPreset::L2D64, 32, 0).unwrap();
        init_value_head(&mut model, 1);
        let mut data = crate::collect::StepData {
            segments: segs.clone(),
            advantages: segs.iter().map(|s| vec![0.0; s.response_ids.len()]).collect(),
            trajectory_advantages: Advantages::default(),
            fractures: 0,
            outcomes: outcomes.clone(),
        };
        let loss = ValueLossConfig { vf_coef: 0.5, value_clip: 0.2 };
        let raw = GaeSettings { gamma: 1.0, lam: 1.0, whiten: false, loss };
        let targets = gae_targets(&model, &mut data, &raw, true, 4096, 0).unwrap();
        // γ = λ = 1: A_t + V_t = the return-to-go = the reward on every policy token.
        for (i, r) in targets.returns.iter().enumerate().take(3) {
            assert!(r.iter().zip(&segs[i].loss_mask).all(|(&g, &m)| if m != 0 { (g - i as f32).abs() < 1e-5 } else { g == 0.0 }), "{r:?}");
        }
        assert_eq!(data.segments[3].loss_mask, vec![0, 0, 0, 0], "overlong-masked");
        assert!(data.trajectory_advantages.get(3).unwrap().masked);
        let mut whitened = data.clone();
        whitened.segments = segs.clone();
        gae_targets(&model, &mut whitened, &GaeSettings { whiten: true, ..raw }, true, 4096, 0).unwrap();
        let live: Vec<f64> = whitened
            .segments
            .iter()
            .zip(&whitened.advantages)
            .flat_map(|(s, a)| s.loss_mask.iter().zip(a).filter(|(m, _)| **m != 0).map(|(_, &x)| f64::from(x)))
            .collect();
        let (mean, std) = crate::stats::mean_std(&live);
        assert!(mean.abs() < 1e-5 && (std - 1.0).abs() < 1e-3, "whitened: mean {mean}, std {std}");
    }
}

//! The metrics of one RL step, as named numbers: the standard names (one place, so the learner,
//! plots and analyses agree), and the step's fields: rewards and their components, advantages,
//! loss diagnostics, segments and fractures, context and token counts, and where the step's wall
//! time went. Writing them to `metrics.jsonl` is the application's business.

use crate::advantage::AdvantageSummary;
use crate::learner::update::{UpdateReport, ValueReport};
use crate::loss::LossDiagnostics;
use crate::rollout::driver::{PlayTimings, Trajectory};
use crate::segments::Segment;

/// The standard metric names (one place, so the learner, plots and analyses agree).
pub mod names {
    /// Mean trajectory reward of the step's rollouts.
    pub const REWARD_MEAN: &str = "reward/mean";
    /// Std of the trajectory rewards.
    pub const REWARD_STD: &str = "reward/std";
    /// Mean reward of the latest evaluation.
    pub const EVAL_REWARD: &str = "eval/reward";
    /// Mean task score (reward without penalties) of the latest evaluation.
    pub const EVAL_TASK_SCORE: &str = "eval/task_score";
    /// Mean task score of the step's rollouts.
    pub const TASK_SCORE: &str = "reward/task_score";
    /// Mean advantage over unmasked trajectories.
    pub const ADV_MEAN: &str = "adv/mean";
    /// Std of the advantages.
    pub const ADV_STD: &str = "adv/std";
    /// Trajectories removed by overlong masking.
    pub const ADV_MASKED: &str = "adv/masked";
    /// Trajectories whose advantage is exactly zero (no learning signal).
    pub const ADV_ZERO: &str = "adv/zero";
    /// Total loss.
    pub const LOSS: &str = "loss/total";
    /// Policy-gradient term.
    pub const LOSS_PG: &str = "loss/pg";
    /// KL term (before the coefficient).
    pub const LOSS_KL: &str = "loss/kl";
    /// Mean KL to the reference policy.
    pub const KL_REF: &str = "kl/ref";
    /// Mean old − new log-prob (KL between consecutive policies).
    pub const KL_APPROX: &str = "kl/approx";
    /// Mean token entropy.
    pub const ENTROPY: &str = "entropy/mean";
    /// Fraction of tokens where the low clip binds.
    pub const CLIP_LOW: &str = "clip/frac_low";
    /// Fraction of tokens where the high clip binds.
    pub const CLIP_HIGH: &str = "clip/frac_high";
    /// Fraction of tokens where the dual clip binds.
    pub const CLIP_DUAL: &str = "clip/dual_frac";
    /// Mean truncated importance weight.
    pub const TIS_WEIGHT: &str = "tis/weight_mean";
    /// Fraction of importance weights at the cap.
    pub const TIS_CAPPED: &str = "tis/capped_frac";
    /// Mean |old − rollout| log-prob.
    pub const ROLLOUT_LOGPROB_DIFF: &str = "tis/rollout_logprob_abs_diff";
    /// Tokens in the loss.
    pub const LOSS_TOKENS: &str = "loss/tokens";
    /// Fractures (context breaks) in the step's trajectories.
    pub const FRACTURES: &str = "segments/fractures";
    /// Segments trained on.
    pub const SEGMENTS: &str = "segments/count";
    /// Learning rate of the step.
    pub const LR: &str = "lr";
    /// Gradient norm before clipping.
    pub const GRAD_NORM: &str = "grad_norm";
    /// Generated tokens per second of rollout.
    pub const TOKENS_PER_S: &str = "perf/tokens_per_s";
    /// Value loss (before `vf_coef`; `gae` runs only).
    pub const LOSS_VALUE: &str = "loss/value";
    /// Explained variance of the returns by the old values (`gae` runs only).
    pub const VALUE_EXPLAINED_VARIANCE: &str = "value/explained_variance";
    /// Mean old value over the policy tokens (`gae` runs only).
    pub const VALUE_MEAN: &str = "value/mean";
    /// Fraction of policy tokens where the value clip binds (`gae` runs only).
    pub const VALUE_CLIP_FRAC: &str = "value/clipfrac";
}

/// The metric fields of a critic's report, under the standard names (absent without a critic).
pub fn value_fields(v: &ValueReport) -> Vec<(&'static str, f64)> {
    vec![
        (names::LOSS_VALUE, v.loss),
        (names::VALUE_EXPLAINED_VARIANCE, v.explained_variance),
        (names::VALUE_MEAN, v.mean),
        (names::VALUE_CLIP_FRAC, v.clip_frac),
    ]
}

/// The metric fields of a loss computation, under the standard names.
pub fn loss_fields(d: &LossDiagnostics) -> Vec<(&'static str, f64)> {
    let mut f = vec![
        (names::LOSS_PG, d.pg_loss),
        (names::LOSS_KL, d.kl_loss),
        (names::KL_APPROX, d.approx_kl),
        (names::CLIP_LOW, d.clip_frac_low),
        (names::CLIP_HIGH, d.clip_frac_high),
        (names::CLIP_DUAL, d.dual_clip_frac),
        (names::TIS_WEIGHT, d.tis_weight_mean),
        (names::TIS_CAPPED, d.tis_capped_frac),
        (names::ROLLOUT_LOGPROB_DIFF, d.rollout_logprob_abs_diff),
        (names::LOSS_TOKENS, d.tokens as f64),
    ];
    if let Some(kl) = d.ref_kl {
        f.push((names::KL_REF, kl));
    }
    if let Some(h) = d.entropy_mean {
        f.push((names::ENTROPY, h));
    }
    f
}

/// The metric fields of an advantage summary, under the standard names.
pub fn advantage_fields(s: &AdvantageSummary) -> Vec<(&'static str, f64)> {
    vec![(names::ADV_MEAN, s.mean), (names::ADV_STD, s.std), (names::ADV_MASKED, s.masked as f64), (names::ADV_ZERO, s.zero as f64)]
}

/// Wall time of one step's phases, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepTimes {
    /// The whole rollout phase (engine set-up, generation, environments, context tracking).
    pub rollout: f64,
    /// The split of the rollout phase.
    pub play: PlayTimings,
    /// Segmentation and advantages.
    pub collect: f64,
    /// The learner update (forward, backward, optimizer).
    pub learner: f64,
}

/// Everything the step produced that the metrics describe.
pub struct StepRecord<'a> {
    /// The step's trajectories.
    pub trajectories: &'a [Trajectory],
    /// Their segments.
    pub segments: &'a [Segment],
    /// Fractures over all trajectories.
    pub fractures: usize,
    /// The trajectory advantages' summary.
    pub advantages: AdvantageSummary,
    /// What the learner did.
    pub update: &'a UpdateReport,
    /// Phase timings.
    pub times: StepTimes,
}

/// Mean task score (reward without penalties) over all trajectories; an unfinished one scores 0.
pub fn mean_task_score(trajs: &[Trajectory]) -> f64 {
    // `+ 0.0` turns the empty sum's negative zero into 0.
    trajs.iter().filter_map(|t| t.end.as_ref()).map(|x| x.breakdown.task_score).sum::<f64>() / trajs.len().max(1) as f64 + 0.0
}

/// The metric fields of one RL step, in a fixed order.
pub fn step_fields(r: &StepRecord<'_>) -> Vec<(String, f64)> {
    let trajs = r.trajectories;
    let n = trajs.len().max(1) as f64;
    let rewards: Vec<f64> = trajs.iter().map(Trajectory::reward).collect();
    let (reward_mean, reward_std) = crate::stats::mean_std(&rewards);
    let ends = || trajs.iter().filter_map(|t| t.end.as_ref());
    let generated: usize = trajs.iter().flat_map(|t| &t.turns).map(|t| t.completion_ids.len()).sum();
    let turns: usize = trajs.iter().map(|t| t.turns.len()).sum();
    let context_mean = trajs.iter().flat_map(|t| &t.turns).map(|t| t.context_ids.len() as f64).sum::<f64>() / turns.max(1) as f64;
    let context_max = trajs.iter().flat_map(|t| &t.turns).map(|t| t.context_ids.len()).max().unwrap_or(0);
    let segment_tokens: usize = r.segments.iter().map(|s| s.prompt_ids.len() + s.response_ids.len()).sum();
    let u = r.update;
    let t = r.times;
    let mut f: Vec<(String, f64)> = vec![
        (names::REWARD_MEAN.into(), reward_mean),
        (names::REWARD_STD.into(), reward_std),
        (names::TASK_SCORE.into(), mean_task_score(trajs)),
        ("reward/penalty".into(), ends().map(|e| e.breakdown.penalty).sum::<f64>() / n),
        ("rollout/truncated_fraction".into(), trajs.iter().filter(|t| t.truncated).count() as f64 / n),
        ("rollout/turns_per_trajectory".into(), turns as f64 / n),
        ("rollout/generated_tokens".into(), generated as f64),
        ("rollout/context_tokens_mean".into(), context_mean),
        ("rollout/context_tokens_max".into(), context_max as f64),
        (names::FRACTURES.into(), r.fractures as f64 / n),
        (names::SEGMENTS.into(), r.segments.len() as f64),
        ("segments/tokens".into(), segment_tokens as f64),
    ];
    f.extend(advantage_fields(&r.advantages).into_iter().map(|(k, v)| (k.to_string(), v)));
    f.extend([
        (names::LOSS.into(), u.loss),
        (names::GRAD_NORM.into(), u.grad_norm),
        ("learner/optimizer_steps".into(), u.optimizer_steps as f64),
        ("learner/skipped_steps".into(), u.skipped_steps as f64),
        ("learner/positions".into(), u.positions as f64),
    ]);
    f.extend(loss_fields(&u.diagnostics).into_iter().map(|(k, v)| (k.to_string(), v)));
    if let Some(value) = &u.value {
        f.extend(value_fields(value).into_iter().map(|(k, v)| (k.to_string(), v)));
    }
    f.extend([
        ("time/rollout_s".into(), t.rollout),
        ("time/generate_s".into(), t.play.generate_seconds),
        ("time/env_s".into(), t.play.env_seconds),
        ("time/collect_s".into(), t.collect),
        ("time/learner_s".into(), t.learner),
        (names::TOKENS_PER_S.into(), generated as f64 / t.play.generate_seconds.max(1e-9)),
        ("perf/learner_tokens_per_s".into(), u.positions as f64 / t.learner.max(1e-9)),
    ]);
    f
}

/// Whether a metrics key measures time or speed (and so differs between identical runs).
pub fn is_timing_key(key: &str) -> bool {
    key == "wall_time" || key.starts_with("time/") || key.starts_with("perf/")
}

//! The per-step fields of `metrics.jsonl` (DESIGN.md, "Run directory"): rewards and their
//! components, advantages, loss diagnostics, segments and fractures, context and token counts,
//! and where the step's wall time went.

use crate::advantage::AdvantageSummary;
use crate::learner::update::UpdateReport;
use crate::metrics::{advantage_fields, loss_fields, names};
use crate::rollout::driver::{PlayTimings, Trajectory};
use crate::segments::Segment;

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

fn mean(xs: impl Iterator<Item = f64>) -> (f64, f64) {
    let v: Vec<f64> = xs.collect();
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// The metric fields of one RL step, in a fixed order.
pub fn step_fields(r: &StepRecord<'_>) -> Vec<(String, f64)> {
    let trajs = r.trajectories;
    let n = trajs.len().max(1) as f64;
    let (reward_mean, reward_std) = mean(trajs.iter().map(Trajectory::reward));
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
        (names::TASK_SCORE.into(), ends().map(|e| e.breakdown.task_score).sum::<f64>() / n),
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

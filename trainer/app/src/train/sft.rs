//! The SFT warm start: a model-free policy (oracle, heuristic, ...) plays training tasks; its
//! completions, tokenised exactly as the rollout would lay them out, become demonstration
//! segments; the learner minimises their token-mean negative log-likelihood.

use memrl_envs::env::{ScriptedKind, Split};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::metrics::MetricsLogger;
use crate::run_dir::{prune_sft_checkpoints, sft_checkpoint_dir_name};
use crate::train::backend::RunBackend;
use crate::train::run::{Run, bar};
use crate::train::state::TrainerState;
use anyhow::Context;
use memrl_rl::collect::{RolloutLogprobs, collect};
use memrl_rl::learner::update::sft_update;
use memrl_rl::rollout::context::ChatCodec;
use memrl_rl::rollout::driver::{CompletionSource, play};
use memrl_rl::segments::{Segment, SegmentationMode};
use std::collections::HashMap;

/// First task index of SFT demonstrations in a synthetic environment: far from the RL sampler's
/// pool of synthetic tasks.
const SFT_TASK_OFFSET: u64 = 1 << 40;

/// Mixed into the seed of each SFT step's LoRA dropout stream (RL steps use another).
const SFT_DROPOUT_SEED: u64 = 0x5F7D_0000_0000;

/// The train tasks the SFT demonstrations play. A synthetic environment (no task count) gets
/// fresh tasks beyond the RL pool; a dataset environment (LoCoMo, LongMemEval: `train_count`
/// tasks) cycles through its train split, since it has no other labelled tasks.
fn sft_tasks(episodes: usize, train_count: Option<u64>) -> anyhow::Result<Vec<u64>> {
    match train_count {
        None => Ok((0..episodes as u64).map(|i| SFT_TASK_OFFSET + i).collect()),
        Some(0) => anyhow::bail!("sft: the environment's train split has no tasks to demonstrate"),
        Some(n) => Ok((0..episodes as u64).map(|i| i % n).collect()),
    }
}

/// One epoch's segment indices before shuffling: every segment once, and each trajectory's last
/// `final_segments` segments `copies` times.
fn epoch_order(segments: &[Segment], final_segments: usize, copies: usize) -> Vec<usize> {
    let mut count: HashMap<u64, u32> = HashMap::new();
    for s in segments {
        let n = count.entry(s.trajectory_id).or_default();
        *n = (*n).max(s.index + 1);
    }
    let mut order = Vec::with_capacity(segments.len());
    for (i, s) in segments.iter().enumerate() {
        let from_end = count[&s.trajectory_id] - s.index; // 1 for the last segment
        let n = if (from_end as usize) <= final_segments { copies.max(1) } else { 1 };
        order.extend(std::iter::repeat_n(i, n));
    }
    order
}

/// What the SFT stage did.
#[derive(Debug, Clone, Copy, Default)]
pub struct SftSummary {
    /// Optimizer steps.
    pub steps: u64,
    /// Demonstration segments.
    pub segments: usize,
    /// Mean reward of the demonstrations (how good the teacher is).
    pub demo_reward: f64,
    /// NLL of the last step.
    pub final_nll: f64,
    /// Steps the non-finite-gradient guard skipped.
    pub skipped: u64,
}

impl<B: RunBackend> Run<'_, B> {
    /// Runs the `[sft]` stage, logging to `sft_metrics.jsonl`, from `from`: a new run's state,
    /// or that of the SFT checkpoint a resumed run continues (its first `from.sft_steps` steps
    /// are then done and are not repeated). Every `sft.checkpoint_every` steps an SFT checkpoint
    /// (`checkpoints/sft-step-K/`) is written.
    ///
    /// The demonstrations, their order in each epoch and the learning rate and update seed of
    /// each step are pure functions of the config and the step, and the checkpoint holds the
    /// weights and AdamW moments, so a resumed stage continues exactly.
    pub(crate) fn sft(&mut self, progress: bool, from: &TrainerState) -> anyhow::Result<SftSummary> {
        let s = &self.config.sft;
        let kind: ScriptedKind = s.source.parse().map_err(|e| anyhow::anyhow!("sft.source: {e}"))?;
        let tasks = sft_tasks(s.episodes, self.train_task_count()?)?;
        let envs = self.envs(Split::Train, &tasks, 1, self.config.run.seed ^ 0x5F7)?;
        let source = CompletionSource::Scripted { kind, stop_id: self.policy.stop_ids[0] };
        let demos = play(envs, &self.policy.codec as &dyn ChatCodec, source, self.limits(), self.config.run.seed)?;
        // (No demonstrations, `sft.episodes = 0`, which is warned about: 0, not the -0 of an empty sum.)
        let demo_reward = if demos.is_empty() { 0.0 } else { demos.iter().map(|t| t.reward()).sum::<f64>() / demos.len() as f64 };
        let data = collect(0, &demos, 1, SegmentationMode::Dcpo, Default::default(), Default::default(), RolloutLogprobs::Policy, 0)?;
        let mut segments = data.segments;
        let demo_segments = segments.len();
        let mut epoch_order = epoch_order(&segments, s.final_segments, s.final_segment_copies);
        let echoes = crate::train::echo::echo_segments(&self.policy.codec, &segments, s.echo_segments, self.policy.stop_ids[0], self.config.run.seed ^ 0xEC40)?;
        epoch_order.extend(segments.len()..segments.len() + echoes.len());
        segments.extend(echoes);
        let per_step = s.batch_size.max(1);
        let total = epoch_order.len().div_ceil(per_step) as u64 * s.epochs as u64;
        let schedule = s.schedule(total);
        let mut log = MetricsLogger::open(&self.dir.sft_metrics_path())?;
        let bar = bar(progress, total, "sft");
        let done = from.sft_steps;
        if done > 0 {
            if done >= total {
                anyhow::bail!("the SFT checkpoint is after step {done}, but this SFT stage has {total} steps");
            }
            bar.set_position(done);
            eprintln!("sft: resuming after step {done} of {total}");
        }
        let mut summary = SftSummary { segments: demo_segments, demo_reward, steps: done, skipped: from.sft_skipped, ..SftSummary::default() };
        let mut step = 0u64;
        for epoch in 0..s.epochs {
            let mut order = epoch_order.clone();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(self.config.run.seed ^ (0x5F7_0000 + epoch as u64)));
            for chunk in order.chunks(per_step) {
                step += 1;
                if step <= done {
                    continue;
                }
                let batch: Vec<_> = chunk.iter().map(|&i| segments[i].clone()).collect();
                let lr = schedule.lr(summary.steps);
                let mut settings = self.settings(lr, summary.steps);
                settings.mini_batches = 1;
                settings.epochs = 1;
                settings.temperature = 1.0;
                self.policy.model.backend.begin_update(self.config.run.seed ^ SFT_DROPOUT_SEED ^ summary.steps);
                let r = sft_update(&mut self.policy.model, &mut self.optimizer, &batch, &settings)?;
                log.log(summary.steps + 1, [("sft/nll", r.loss), ("sft/lr", lr), ("sft/grad_norm", r.grad_norm), ("sft/skipped", r.skipped_steps as f64)])?;
                bar.set_message(format!("nll {:.3}", r.loss));
                bar.inc(1);
                summary.steps += 1;
                summary.final_nll = r.loss;
                if r.skipped_steps > 0 {
                    summary.skipped += 1;
                    bar.println(format!("sft step {}: skipped: the loss or gradient norm was not finite", summary.steps));
                }
                if s.checkpoint_every > 0 && summary.steps % s.checkpoint_every == 0 && summary.steps < total {
                    self.sft_checkpoint(&log, from, &summary).with_context(|| format!("sft step {}: writing the SFT checkpoint", summary.steps))?;
                }
            }
        }
        bar.finish();
        check_sft_trained(summary.steps, summary.skipped)?;
        log.sync()?;
        crate::plots::plot_metrics_or_warn(&self.dir.sft_metrics_path(), &self.dir.plots_dir());
        Ok(summary)
    }

    /// Writes `checkpoints/sft-step-K/` after SFT step K (its metrics line fsynced first), then
    /// removes the older SFT checkpoints: they are resume points, and the newest supersedes them
    /// (a model's weights and moments, several times its size on disk, per checkpoint).
    fn sft_checkpoint(&self, log: &MetricsLogger, from: &TrainerState, summary: &SftSummary) -> anyhow::Result<()> {
        log.sync()?;
        let state = TrainerState { sft_steps: summary.steps, sft_skipped: summary.skipped, metrics_step: Some(summary.steps), ..from.clone() };
        self.write_checkpoint_dir(&sft_checkpoint_dir_name(summary.steps), &state)?;
        prune_sft_checkpoints(&self.dir.checkpoints_dir(), 1)?;
        Ok(())
    }
}

/// An SFT stage in which every step was skipped trained nothing: an error, not a run that
/// goes on to RL with an NLL of 0 logged.
fn check_sft_trained(steps: u64, skipped: u64) -> anyhow::Result<()> {
    if steps > 0 && skipped == steps {
        anyhow::bail!(
            "sft: all {steps} steps were skipped because the loss or gradient norm was not finite: \
             the model's outputs are NaN or infinite (non-finite weights, or sft.lr too high)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sft_stage_that_skipped_every_step_is_an_error() {
        assert!(check_sft_trained(0, 0).is_ok());
        assert!(check_sft_trained(5, 4).is_ok());
        let e = check_sft_trained(3, 3).unwrap_err().to_string();
        assert!(e.contains("all 3 steps were skipped"), "{e}");
    }

    #[test]
    fn final_segments_are_repeated_per_trajectory() {
        let seg = |trajectory_id: u64, index: u32| Segment {
            trajectory_id,
            group_id: 0,
            index,
            is_last: false,
            prompt_ids: vec![],
            response_ids: vec![],
            loss_mask: vec![],
            rollout_logprobs: vec![],
            policy_version: 0,
        };
        // two trajectories of three and two segments, interleaved
        let segments = [seg(7, 0), seg(9, 0), seg(7, 1), seg(9, 1), seg(7, 2)];
        assert_eq!(epoch_order(&segments, 0, 3), vec![0, 1, 2, 3, 4]);
        assert_eq!(epoch_order(&segments, 2, 1), vec![0, 1, 2, 3, 4]);
        assert_eq!(epoch_order(&segments, 1, 3), vec![0, 1, 2, 3, 3, 3, 4, 4, 4]);
        assert_eq!(epoch_order(&segments, 2, 2), vec![0, 1, 1, 2, 2, 3, 3, 4, 4]);
    }

    #[test]
    fn synthetic_envs_get_fresh_tasks_and_datasets_cycle_their_train_split() {
        assert_eq!(sft_tasks(3, None).unwrap(), vec![SFT_TASK_OFFSET, SFT_TASK_OFFSET + 1, SFT_TASK_OFFSET + 2]);
        assert_eq!(sft_tasks(5, Some(2)).unwrap(), vec![0, 1, 0, 1, 0]);
        assert!(sft_tasks(1, Some(0)).unwrap_err().to_string().contains("no tasks"));
    }
}

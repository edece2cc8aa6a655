//! The training run: policy set-up, the optional SFT warm start, the RL loop, periodic
//! evaluation, metrics, rollouts, plots and checkpoints.
//!
//! This is application-level orchestration called by the `memrl` binary, so it reports errors
//! with `anyhow` context (file, step, phase); the algorithm modules it calls keep typed errors.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use memrl_envs::env::{ScriptedKind, Split, TaskId};
use memrl_envs::registry::build_env;
use memrl_envs::tokens::TokenCounter;
use memrl_envs::Env;
use memrl_policies::engine::{Engine, EngineConfig};
use memrl_policies::sampling::SamplingParams;
use memrl_policies::tokenizer::Tokenizer;
use memrl_policies::train::optim::{AdamW, AdamWConfig};
use memrl_policies::train::params::{hf_state_dict, llama_from_hf_tensors};
use memrl_policies::BurnBackend;

use crate::config::Config;
use crate::learner::update::{UpdateReport, UpdateSettings, policy_update, sft_update};
use crate::metrics::{MetricsLogger, loss_fields};
use crate::rollout::adapters::{EngineGenerator, TokenizerCodec};
use crate::rollout::context::ChatCodec;
use crate::rollout::driver::{CompletionSource, RolloutLimits, Trajectory, play};
use crate::run_dir::{ExistingRun, RunDir};
use crate::sampler::TaskSampler;
use crate::segments::SegmentationMode;
use crate::train::collect::collect;
use crate::train::policy::{PolicyBundle, build_policy};

/// Tasks the sampler draws from for environments with unbounded synthetic splits.
const SYNTHETIC_POOL: usize = 100_000;

/// Counts tokens with the policy's tokenizer, so environment budgets match the model's.
pub struct TokenizerCounter(pub Arc<Tokenizer>);

impl TokenCounter for TokenizerCounter {
    fn count(&self, text: &str) -> usize {
        self.0.encode(text, false).map(|ids| ids.len()).unwrap_or_else(|_| text.len() / 4 + 1)
    }
}

/// How `memrl train` treats an existing run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse to touch it.
    Refuse,
    /// Replace it.
    Overwrite,
}

/// The headline numbers of a finished run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: String,
    /// RL steps completed.
    pub steps: u64,
    /// Held-out evaluation reward before RL (after SFT, if any).
    pub eval_reward_start: Option<f64>,
    /// Held-out evaluation reward at the end.
    pub eval_reward_end: Option<f64>,
    /// Wall time, seconds.
    pub wall_seconds: f64,
}

/// Everything one run holds.
struct Run<'a> {
    config: &'a Config,
    dir: RunDir,
    metrics: MetricsLogger,
    policy: PolicyBundle,
    optimizer: AdamW<BurnBackend>,
    counter: Arc<dyn TokenCounter>,
    env_knobs: serde_json::Value,
    pool: usize,
    started: Instant,
}

/// Trains the policy described by `config`; returns a summary and writes the run directory.
pub fn train(config: &Config, existing: Existing, progress: bool) -> anyhow::Result<TrainSummary> {
    config.validate().context("invalid configuration")?;
    let root = config.run_dir();
    let dir = RunDir::open(&root, if existing == Existing::Overwrite { ExistingRun::Overwrite } else { ExistingRun::Refuse })
        .with_context(|| format!("run directory {}", root.display()))?;
    dir.write_config(&config.to_toml_string()).context("writing the resolved config")?;
    let metrics = MetricsLogger::open(&dir.metrics_path()).context("opening metrics.jsonl")?;
    let policy = build_policy(config).context("building the policy")?;
    let counter: Arc<dyn TokenCounter> = Arc::new(TokenizerCounter(policy.tokenizer.clone()));
    let env_knobs = serde_json::to_value(&config.env.options).context("env options")?;
    let probe = build_env(&config.env.name, env_knobs.clone(), counter.clone()).context("building the environment")?;
    let pool = probe.task_count(Split::Train).map_or(SYNTHETIC_POOL, |n| n as usize);
    let t = &config.trainer;
    let optimizer = AdamW::new(AdamWConfig {
        beta1: t.betas[0],
        beta2: t.betas[1],
        eps: t.eps,
        weight_decay: t.weight_decay,
        no_decay: vec!["norm".into(), "bias".into()],
    })?;
    let mut run = Run { config, dir, metrics, policy, optimizer, counter, env_knobs, pool, started: Instant::now() };

    if config.sft.enabled {
        run.sft(progress).context("SFT warm start")?;
    }
    run.rl(progress)
}

impl Run<'_> {
    fn envs(&self, split: Split, tasks: &[u64], group: usize, seed: u64) -> anyhow::Result<Vec<(Box<dyn Env>, TaskId, u64)>> {
        let mut out = Vec::with_capacity(tasks.len() * group);
        for (i, &task) in tasks.iter().enumerate() {
            for g in 0..group {
                let env = build_env(&self.config.env.name, self.env_knobs.clone(), self.counter.clone())?;
                let episode_seed = seed ^ ((i * group + g) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                out.push((env, TaskId { split, index: task }, episode_seed));
            }
        }
        Ok(out)
    }

    fn limits(&self) -> RolloutLimits {
        let r = &self.config.rollout;
        RolloutLimits { max_turns: r.max_turns, max_new_tokens: r.max_new_tokens, max_context_tokens: r.max_context_tokens }
    }

    /// Plays episodes with the current policy weights (an inference copy of the model).
    fn play_model(&self, envs: Vec<(Box<dyn Env>, TaskId, u64)>, sampling: SamplingParams, seed: u64) -> anyhow::Result<Vec<Trajectory>> {
        let p = &self.policy;
        let inference = llama_from_hf_tensors(BurnBackend::flex(), p.model.config.clone(), hf_state_dict(&p.model))?;
        let engine = Engine::new(
            Arc::new(inference),
            None,
            EngineConfig { max_batch: envs.len().clamp(1, 64), max_seq_len: self.config.rollout.max_context_tokens },
        )?;
        let mut generator = EngineGenerator { engine, sampling, stop_token_ids: p.stop_ids.clone() };
        Ok(play(envs, &p.codec as &dyn ChatCodec, CompletionSource::Model(&mut generator), self.limits(), seed)?)
    }

    fn sampling(&self, temperature: f64) -> SamplingParams {
        if temperature <= 0.0 {
            return SamplingParams::greedy();
        }
        let r = &self.config.rollout;
        SamplingParams { temperature: temperature as f32, top_p: r.top_p as f32, top_k: r.top_k }
    }

    /// Mean reward of greedy (or `eval.temperature`) episodes on the held-out split.
    fn evaluate(&self, step: u64) -> anyhow::Result<f64> {
        let e = &self.config.eval;
        let split: Split = e.split.parse().map_err(anyhow::Error::msg)?;
        let tasks: Vec<u64> = (0..e.episodes as u64).collect();
        let envs = self.envs(split, &tasks, 1, self.config.run.seed ^ 0xE7A1)?;
        let trajs = self.play_model(envs, self.sampling(e.temperature), self.config.run.seed ^ 0xE7A1 ^ step)?;
        Ok(trajs.iter().map(Trajectory::reward).sum::<f64>() / trajs.len().max(1) as f64)
    }

    fn settings(&self, lr: f64, seed: u64) -> UpdateSettings {
        let t = &self.config.trainer;
        UpdateSettings {
            loss: self.config.algorithm.loss_config(),
            lr,
            grad_clip: t.grad_clip,
            micro_batch_tokens: t.micro_batch_tokens,
            mini_batches: t.mini_batches,
            epochs: t.epochs_per_step,
            seed,
            pad_id: self.policy.pad_id,
        }
    }

    fn sft(&mut self, progress: bool) -> anyhow::Result<()> {
        let s = &self.config.sft;
        let kind: ScriptedKind = s.source.parse().map_err(anyhow::Error::msg).context("sft.source")?;
        let tasks: Vec<u64> = (0..s.episodes as u64).map(|i| SYNTHETIC_POOL as u64 + i).collect();
        let envs = self.envs(Split::Train, &tasks, 1, self.config.run.seed ^ 0x5F7)?;
        let source = CompletionSource::Scripted { kind, stop_id: self.policy.stop_ids[0] };
        let demos = play(envs, &self.policy.codec as &dyn ChatCodec, source, self.limits(), self.config.run.seed)?;
        let data = collect(0, &demos, 1, SegmentationMode::Dcpo, Default::default(), Default::default(), 0)?;
        let segments = data.segments;
        let per_step = s.batch_size.max(1);
        let steps_per_epoch = segments.len().div_ceil(per_step) as u64;
        let total = steps_per_epoch * s.epochs as u64;
        let schedule = s.schedule(total);
        let bar = bar(progress, total, "sft");
        let mut step = 0u64;
        for epoch in 0..s.epochs {
            let mut order: Vec<usize> = (0..segments.len()).collect();
            use rand::SeedableRng;
            use rand::seq::SliceRandom;
            order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(self.config.run.seed ^ epoch as u64));
            for chunk in order.chunks(per_step) {
                let batch: Vec<_> = chunk.iter().map(|&i| segments[i].clone()).collect();
                let lr = schedule.lr(step);
                let mut settings = self.settings(lr, step);
                settings.mini_batches = 1;
                settings.epochs = 1;
                let r = sft_update(&mut self.policy.model, &mut self.optimizer, &batch, &settings)?;
                let fields = vec![("sft_nll".to_string(), r.loss), ("sft_lr".into(), lr), ("sft_grad_norm".into(), r.grad_norm)];
                self.metrics.log(step, fields.iter().map(|(k, v)| (k.as_str(), *v)))?;
                bar.set_message(format!("nll {:.3}", r.loss));
                bar.inc(1);
                step += 1;
            }
        }
        bar.finish();
        Ok(())
    }

    fn rl(&mut self, progress: bool) -> anyhow::Result<TrainSummary> {
        let c = self.config;
        let steps = c.run.steps;
        let schedule = c.trainer.schedule(steps);
        let mut sampler = TaskSampler::new(self.pool, c.run.seed)?;
        let mut eval_start = None;
        let mut eval_end = None;
        if c.eval.episodes > 0 {
            let r = self.evaluate(0)?;
            eval_start = Some(r);
            eval_end = Some(r);
            self.metrics.log(0, [("eval_reward", r)])?;
        }
        let bar = bar(progress, steps, "rl");
        for step in 1..=steps {
            let t0 = Instant::now();
            let tasks: Vec<u64> = sampler.next_batch(c.rollout.batch_size).into_iter().map(|t| t as u64).collect();
            let envs = self.envs(Split::Train, &tasks, c.rollout.group_size, c.run.seed ^ step)?;
            let trajs = self.play_model(envs, self.sampling(c.rollout.temperature), c.run.seed.wrapping_add(step))?;
            let t_rollout = t0.elapsed().as_secs_f64();
            let data = collect(
                step,
                &trajs,
                c.rollout.group_size,
                c.algorithm.segmentation,
                c.algorithm.advantage,
                c.algorithm.advantage_options(),
                step - 1,
            )
            .with_context(|| format!("step {step}: segmenting rollouts"))?;
            let t1 = Instant::now();
            let lr = schedule.lr(step - 1);
            let report = policy_update(&mut self.policy.model, &mut self.optimizer, None, &data.segments, &data.advantages, &self.settings(lr, step))
                .with_context(|| format!("step {step}: learner update"))?;
            let t_learner = t1.elapsed().as_secs_f64();
            let mut fields = step_fields(&trajs, &data.segments, data.fractures, &report, t_rollout, t_learner);
            fields.push(("lr".into(), lr));
            if c.eval.episodes > 0 && c.eval.every > 0 && (step % c.eval.every == 0 || step == steps) {
                let r = self.evaluate(step)?;
                eval_end = Some(r);
                fields.push(("eval_reward".into(), r));
            }
            fields.push(("wall_seconds".into(), self.started.elapsed().as_secs_f64()));
            self.metrics.log(step, fields.iter().map(|(k, v)| (k.as_str(), *v)))?;
            let reward = fields.iter().find(|(k, _)| k == "reward_mean").map_or(0.0, |(_, v)| *v);
            bar.set_message(format!("reward {reward:.3}"));
            bar.inc(1);
            if c.run.checkpoint_every > 0 && (step % c.run.checkpoint_every == 0 || step == steps) {
                self.policy.save(&self.dir.checkpoints_dir().join(format!("step-{step}")), &self.optimizer)?;
            }
            if c.run.plot_every > 0 && (step % c.run.plot_every == 0 || step == steps) {
                crate::plots::plot_metrics(&self.dir.metrics_path(), &self.dir.plots_dir(), crate::plots::PlotFormat::Png)?;
            }
        }
        bar.finish();
        Ok(TrainSummary {
            run_dir: self.dir.root().display().to_string(),
            steps,
            eval_reward_start: eval_start,
            eval_reward_end: eval_end,
            wall_seconds: self.started.elapsed().as_secs_f64(),
        })
    }
}

fn bar(progress: bool, total: u64, phase: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!("{phase:>4} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {{msg}}"))
            .expect("valid template"),
    );
    bar
}

/// The per-step metrics of DESIGN.md's metrics.jsonl.
fn step_fields(
    trajs: &[Trajectory],
    segments: &[crate::segments::Segment],
    fractures: usize,
    r: &UpdateReport,
    t_rollout: f64,
    t_learner: f64,
) -> Vec<(String, f64)> {
    let n = trajs.len().max(1) as f64;
    let rewards: Vec<f64> = trajs.iter().map(Trajectory::reward).collect();
    let mean = rewards.iter().sum::<f64>() / n;
    let std = (rewards.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let generated: usize = trajs.iter().flat_map(|t| &t.turns).map(|t| t.completion_ids.len()).sum();
    let context: usize = trajs.iter().flat_map(|t| &t.turns).map(|t| t.context_ids.len()).max().unwrap_or(0);
    let truncated = trajs.iter().filter(|t| t.truncated).count() as f64;
    let task_score: f64 = trajs.iter().filter_map(|t| t.end.as_ref()).map(|e| e.breakdown.task_score).sum::<f64>() / n;
    let penalty: f64 = trajs.iter().filter_map(|t| t.end.as_ref()).map(|e| e.breakdown.penalty).sum::<f64>() / n;
    let mut f: Vec<(String, f64)> = vec![
        ("reward_mean".into(), mean),
        ("reward_std".into(), std),
        ("reward_task_score".into(), task_score),
        ("reward_penalty".into(), penalty),
        ("truncated_fraction".into(), truncated / n),
        ("fractures_per_trajectory".into(), fractures as f64 / n),
        ("segments".into(), segments.len() as f64),
        ("turns_per_trajectory".into(), trajs.iter().map(|t| t.turns.len()).sum::<usize>() as f64 / n),
        ("max_context_tokens".into(), context as f64),
        ("generated_tokens".into(), generated as f64),
        ("loss".into(), r.loss),
        ("grad_norm".into(), r.grad_norm),
        ("skipped_steps".into(), r.skipped_steps as f64),
        ("loss_tokens".into(), r.loss_tokens as f64),
        ("rollout_seconds".into(), t_rollout),
        ("learner_seconds".into(), t_learner),
        ("rollout_tokens_per_second".into(), generated as f64 / t_rollout.max(1e-9)),
        ("learner_tokens_per_second".into(), r.positions as f64 / t_learner.max(1e-9)),
    ];
    f.extend(loss_fields(&r.diagnostics).into_iter().map(|(k, v)| (k.to_string(), v)));
    f
}

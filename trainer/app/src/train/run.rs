//! The training run: policy set-up or resume, the optional SFT warm start, the RL loop,
//! periodic evaluation, metrics, rollouts, plots and checkpoints.
//!
//! This is application-level orchestration called by the `memrl` binary, so it reports errors
//! with `anyhow` context (file, step, phase); the algorithm modules it calls keep typed errors.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use memrl_envs::Env;
use memrl_envs::env::{ScriptedKind, Split, TaskId};
use memrl_envs::sampler::TaskSampler;
use memrl_policies::model::Llama;
use memrl_policies::sampling::SamplingParams;
use memrl_policies::train::init_value_head;
use memrl_policies::train::lora::Lora;
use memrl_policies::train::optim::{AdamW, AdamWConfig};
use memrl_policies::{Backend, BurnBackend};
use memrl_rl::advantage::AdvantageEstimator;
use memrl_rl::collect::{StepData, trajectory_index};
use memrl_rl::learner::update::UpdateSettings;
use memrl_rl::rollout::EnvFactory;
use memrl_rl::rollout::adapters::{TokenizerCounter, play_policy};
use memrl_rl::rollout::context::ChatCodec;
use memrl_rl::rollout::driver::{CompletionSource, PlayTimings, RolloutLimits, Trajectory, play};
use memrl_rl::step::{StepPolicy, StepSettings, rl_step};

use crate::config::{BackendKind, Config};
use crate::metrics::{MetricsLogger, names};
use crate::rollout_store::{RolloutRecord, write_rollouts};
use crate::run_dir::{ExistingRun, RunDir, checkpoint_dir_name, prune_checkpoints, remove_sft_checkpoints, write_checkpoint, write_file_atomic};
use crate::train::backend::{BaseBackend, RunBackend};
use crate::train::policy::{PolicyBundle, build_policy, check_supported};
use crate::train::resume::{ResumePoint, Stage};
use crate::train::state::{TRAINER_STATE_VERSION, TrainerState};
use memrl_rl::metrics::mean_task_score;

/// Mixed into the run's seed for the value head's initial weights (its own stream).
const VALUE_HEAD_SEED: u64 = 0x0007_A10E_4EAD;

/// How `memrl train` treats the run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// A new run; an existing directory is refused.
    Fresh,
    /// A new run replacing an existing run directory.
    Overwrite,
    /// Continue the run in the directory from its latest complete checkpoint.
    Resume,
}

/// The headline numbers of a finished run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: String,
    /// RL steps completed.
    pub steps: u64,
    /// The RL step the run resumed from (None for a fresh run, or one resumed during SFT).
    pub resumed_from: Option<u64>,
    /// The SFT step the run resumed from, when it was stopped during its SFT stage.
    pub resumed_from_sft_step: Option<u64>,
    /// Mean reward of the SFT demonstrations (None without SFT, or when resumed after it).
    pub sft_demo_reward: Option<f64>,
    /// Held-out evaluation reward before RL (after SFT, if any).
    pub eval_reward_start: Option<f64>,
    /// Held-out evaluation reward at the end.
    pub eval_reward_end: Option<f64>,
    /// Held-out task score (reward without penalties) before RL.
    pub eval_task_score_start: Option<f64>,
    /// Held-out task score at the end.
    pub eval_task_score_end: Option<f64>,
    /// The model-free policies' task scores on the same held-out tasks (name, teacher?, score).
    pub baselines: Vec<BaselineScore>,
    /// Wall time of this invocation, seconds.
    pub wall_seconds: f64,
}

/// A model-free policy's mean held-out task score, beside the trained model's.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BaselineScore {
    /// The policy (`heuristic`, `oracle`, `no-memory`).
    pub policy: String,
    /// True if it is the SFT stage's demonstrator (`sft.source`).
    pub teacher: bool,
    /// Mean task score on the evaluation tasks.
    pub task_score: f64,
    /// Episodes the rollout limits cut short.
    pub truncated: usize,
}

/// The model-free policies the end-of-run table compares the model with.
const BASELINE_POLICIES: [ScriptedKind; 3] = [ScriptedKind::Heuristic, ScriptedKind::Oracle, ScriptedKind::NoMemory];

/// One held-out evaluation's means.
#[derive(Debug, Clone, Copy)]
struct EvalScores {
    reward: f64,
    task_score: f64,
}

/// Everything one run holds.
pub(crate) struct Run<'a, B: RunBackend> {
    pub(crate) config: &'a Config,
    pub(crate) dir: RunDir,
    pub(crate) policy: PolicyBundle<B>,
    pub(crate) optimizer: AdamW<B::Leaf>,
    envs: EnvFactory,
    pool: usize,
    started: Instant,
}

fn new_optimizer<L: Backend>(config: &Config) -> anyhow::Result<AdamW<L>> {
    let t = &config.trainer;
    Ok(AdamW::new(AdamWConfig {
        beta1: t.betas[0],
        beta2: t.betas[1],
        eps: t.eps,
        weight_decay: t.weight_decay,
        no_decay: vec!["norm".into(), "bias".into()],
    })?)
}

/// Trains the policy described by `config`; returns a summary and writes the run directory.
/// With [`StartMode::Resume`] the run directory's saved config must agree with `config` except
/// for the keys in [`crate::train::state::RESUME_ALLOWED_KEYS`].
pub fn train(config: &Config, mode: StartMode, progress: bool) -> anyhow::Result<TrainSummary> {
    config.validate().context("invalid configuration")?;
    crate::config::check_segmentation_fits_env(config).context("invalid configuration")?;
    if config.rollout.workers > 0 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (threads, warning) = crate::train::checks::rollout_threads(config.rollout.workers, cores);
        if let Some(w) = warning {
            eprintln!("warning: {w}");
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
        return pool.install(|| train_in_pool(config, mode, progress));
    }
    train_in_pool(config, mode, progress)
}

/// Picks the backend `policy.backend` / `device` / `dtype` / `lora` name and trains on it.
fn train_in_pool(config: &Config, mode: StartMode, progress: bool) -> anyhow::Result<TrainSummary> {
    check_supported(config)?;
    match config.policy.backend {
        BackendKind::Burn => match config.lora() {
            Some(lora) => train_on(config, mode, progress, Lora::new(BurnBackend::flex_autodiff(), &lora)),
            None => train_on(config, mode, progress, BurnBackend::flex_autodiff()),
        },
        #[cfg(feature = "tch")]
        BackendKind::Tch => train_on(config, mode, progress, crate::train::backend::tch_backend(config)?),
        #[cfg(not(feature = "tch"))]
        BackendKind::Tch => bail!(crate::train::backend::TCH_NOT_BUILT),
    }
}

fn train_on<B: RunBackend>(config: &Config, mode: StartMode, progress: bool, backend: B) -> anyhow::Result<TrainSummary> {
    let root = config.run_dir();
    let existing = match mode {
        StartMode::Fresh => ExistingRun::Refuse,
        StartMode::Overwrite => ExistingRun::Overwrite,
        StartMode::Resume => ExistingRun::Resume,
    };
    let dir = RunDir::open(&root, existing)?;
    if let Some(previous) = dir.previous() {
        eprintln!("overwrite: moved the previous run to {} (delete it when you no longer need it)", previous.display());
    }
    // A new run that fails before any work (a missing model, a config the environment or model
    // cannot run) leaves no directory behind, so trying again needs no --overwrite.
    let Start { mut run, state, resumed, baselines } = match start(config, mode, backend, dir.clone()) {
        Ok(start) => start,
        Err(error) if mode != StartMode::Resume => {
            if let Err(e) = dir.discard() {
                eprintln!("warning: could not remove the run directory of the failed start: {}", crate::cli::error_text(&e));
            }
            return Err(error);
        }
        Err(error) => return Err(error),
    };
    drop(dir);

    let resumed_stage = resumed.as_ref().map(|p| p.stage);
    let (state, sft_demo_reward) = match state {
        Some(state) if resumed_stage == Some(Stage::Rl) => (state, None),
        // A new run, or one stopped during SFT (its state is that of an SFT checkpoint).
        state => {
            let mut state = match state {
                Some(state) => state,
                None => TrainerState {
                    version: TRAINER_STATE_VERSION,
                    step: 0,
                    sft_steps: 0,
                    sft_skipped: 0,
                    sampler: TaskSampler::new(run.pool, config.run.seed)?.state(),
                    eval_reward_start: None,
                    eval_reward_last: None,
                    eval_task_score_start: None,
                    eval_task_score_last: None,
                    skipped_steps: 0,
                    metrics_step: None,
                },
            };
            let mut demo_reward = None;
            if config.sft.enabled {
                let sft = run.sft(progress, &state).context("SFT warm start")?;
                state.sft_steps = sft.steps;
                state.sft_skipped = sft.skipped;
                state.metrics_step = None;
                demo_reward = Some(sft.demo_reward);
                // RL starts with fresh optimizer moments, as a separate stage would.
                run.optimizer = new_optimizer(config)?;
                run.save_reference_if_needed()?;
                run.attach_value_head_if_needed();
                run.checkpoint(&state)?;
                remove_sft_checkpoints(&run.dir.checkpoints_dir()).context("removing the SFT checkpoints after step-0")?;
            } else {
                run.save_reference_if_needed()?;
                run.attach_value_head_if_needed();
            }
            (state, demo_reward)
        }
    };
    let mut summary = run.rl(state, progress)?;
    summary.baselines = baselines;
    summary.resumed_from = resumed.as_ref().filter(|p| p.stage == Stage::Rl).map(|p| p.step);
    summary.resumed_from_sft_step = resumed.as_ref().filter(|p| p.stage == Stage::Sft).map(|p| p.step);
    summary.sft_demo_reward = sft_demo_reward;
    Ok(summary)
}

/// A run set up and checked, before its first SFT or RL step.
struct Start<'a, B: RunBackend> {
    run: Run<'a, B>,
    /// The resumed trainer state (None for a new run).
    state: Option<TrainerState>,
    /// The checkpoint it was resumed from (None for a new run).
    resumed: Option<ResumePoint>,
    baselines: Vec<BaselineScore>,
}

/// Everything before the first step: the resume point, the resolved config, the policy (built
/// or loaded), the environment and the checks that need them, the model-free baselines.
fn start<B: RunBackend>(config: &Config, mode: StartMode, backend: B, dir: RunDir) -> anyhow::Result<Start<'_, B>> {
    let resume = if mode == StartMode::Resume { Some(crate::train::resume::resume_point(&dir, config)?) } else { None };
    dir.write_config(&config.to_toml_string()).context("writing the resolved config")?;

    let (policy, optimizer, state) = match &resume {
        Some(point) => {
            let (policy, optimizer, state) = crate::train::resume::load(&dir, config, point, backend)?;
            (policy, optimizer, Some(state))
        }
        None => (build_policy(config, backend).context("building the policy")?, new_optimizer(config)?, None),
    };
    let envs = EnvFactory {
        name: config.env.name.clone(),
        options: serde_json::to_value(&config.env.options).context("env options")?,
        counter: Arc::new(TokenizerCounter(policy.tokenizer.clone())),
    };
    let probe = envs.build().context("building the environment")?;
    let pool = crate::train::checks::check_run(config, probe.as_ref(), &policy.model.config)?;
    let run = Run { config, dir, policy, optimizer, envs, pool, started: Instant::now() };
    if let Some(w) = crate::train::checks::first_prompt_warning(&run)? {
        eprintln!("warning: {w}");
    }
    // The model-free policies on the evaluation tasks, first: they take seconds and show at once
    // when the rollout limits cut every episode short (then nothing can be learned).
    let baselines = if config.eval.episodes > 0 { run.evaluate_baselines()? } else { Vec::new() };
    for b in baselines.iter().filter(|b| b.truncated > 0) {
        eprintln!(
            "warning: the {} policy's episodes were cut short by the rollout limits in {} of {} evaluation tasks \
             (rollout.max_turns = {}, max_new_tokens = {}, max_context_tokens = {}): the model's will be too",
            b.policy, b.truncated, config.eval.episodes, config.rollout.max_turns, config.rollout.max_new_tokens, config.rollout.max_context_tokens
        );
    }
    Ok(Start { run, state, resumed: resume, baselines })
}

impl<B: RunBackend> Run<'_, B> {
    pub(crate) fn envs(&self, split: Split, tasks: &[u64], group: usize, seed: u64) -> anyhow::Result<Vec<(Box<dyn Env>, TaskId, u64)>> {
        Ok(self.envs.episodes(split, tasks, group, seed)?)
    }

    /// Tasks in the environment's train split (None: a synthetic environment without a count).
    pub(crate) fn train_task_count(&self) -> anyhow::Result<Option<u64>> {
        Ok(self.envs.build()?.task_count(Split::Train))
    }

    pub(crate) fn limits(&self) -> RolloutLimits {
        let r = &self.config.rollout;
        RolloutLimits { max_turns: r.max_turns, max_new_tokens: r.max_new_tokens, max_context_tokens: r.max_context_tokens }
    }

    /// Plays episodes with the current policy weights (an inference copy of the model).
    fn play_model(&self, envs: Vec<(Box<dyn Env>, TaskId, u64)>, sampling: SamplingParams, seed: u64) -> anyhow::Result<(Vec<Trajectory>, PlayTimings)> {
        let p = &self.policy;
        Ok(play_policy(p.inference_copy()?, &p.codec, &p.stop_ids, envs, sampling, self.limits(), seed)?)
    }

    fn sampling(&self, temperature: f64) -> SamplingParams {
        if temperature <= 0.0 {
            return SamplingParams::greedy();
        }
        let r = &self.config.rollout;
        SamplingParams { temperature: temperature as f32, top_p: r.top_p as f32, top_k: r.top_k }
    }

    /// The held-out tasks and episode seed every evaluation (and the baselines) plays.
    fn eval_envs(&self) -> anyhow::Result<(Vec<(Box<dyn Env>, TaskId, u64)>, u64)> {
        let e = &self.config.eval;
        let split: Split = e.split.parse().map_err(|err| anyhow::anyhow!("eval.split: {err}"))?;
        let tasks: Vec<u64> = (0..e.episodes as u64).collect();
        let seed = self.config.run.seed ^ 0xE7A1;
        Ok((self.envs(split, &tasks, 1, seed)?, seed))
    }

    /// Mean reward and task score on the held-out split (the same `eval.episodes` tasks every
    /// time), written to `eval/<env>-step-N.json`.
    fn evaluate(&self, step: u64) -> anyhow::Result<EvalScores> {
        let e = &self.config.eval;
        let (envs, seed) = self.eval_envs()?;
        let (trajs, _) = self.play_model(envs, self.sampling(e.temperature), seed)?;
        let rewards: Vec<f64> = trajs.iter().map(Trajectory::reward).collect();
        let mean = rewards.iter().sum::<f64>() / rewards.len().max(1) as f64;
        let task_score = mean_task_score(&trajs);
        let report = serde_json::json!({
            "env": self.config.env.name,
            "split": e.split,
            "step": step,
            "episodes": rewards.len(),
            "temperature": e.temperature,
            "reward_mean": mean,
            "task_score_mean": task_score,
            "truncated": trajs.iter().filter(|t| t.truncated).count(),
            "rewards": rewards,
        });
        let path = self.dir.eval_path(&self.config.env.name, step);
        write_file_atomic(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
        Ok(EvalScores { reward: mean, task_score })
    }

    /// The model-free policies on the evaluation tasks (same tasks and episode seeds as
    /// [`Self::evaluate`]), written to `eval/<env>-baselines.json`.
    fn evaluate_baselines(&self) -> anyhow::Result<Vec<BaselineScore>> {
        let teacher = self.config.sft.enabled.then(|| self.config.sft.source.parse::<ScriptedKind>().ok()).flatten();
        let mut out = Vec::with_capacity(BASELINE_POLICIES.len());
        for kind in BASELINE_POLICIES {
            let (envs, seed) = self.eval_envs()?;
            let source = CompletionSource::Scripted { kind, stop_id: self.policy.stop_ids[0] };
            let trajs = play(envs, &self.policy.codec as &dyn ChatCodec, source, self.limits(), seed)?;
            let truncated = trajs.iter().filter(|t| t.truncated).count();
            out.push(BaselineScore { policy: kind.to_string(), teacher: teacher == Some(kind), task_score: mean_task_score(&trajs), truncated });
        }
        let path = self.dir.root().join("eval").join(format!("{}-baselines.json", self.config.env.name));
        let report =
            serde_json::json!({ "env": self.config.env.name, "split": self.config.eval.split, "episodes": self.config.eval.episodes, "baselines": out });
        write_file_atomic(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
        Ok(out)
    }

    pub(crate) fn settings(&self, lr: f64, seed: u64) -> UpdateSettings {
        let t = &self.config.trainer;
        UpdateSettings {
            loss: self.config.algorithm.loss_config(self.config.rollout.max_new_tokens),
            lr,
            grad_clip: t.grad_clip,
            micro_batch_tokens: t.micro_batch_tokens,
            mini_batches: t.mini_batches,
            epochs: t.epochs_per_step,
            seed,
            pad_id: self.policy.pad_id,
            temperature: self.config.rollout.temperature,
        }
    }

    /// The RL step's settings (the learning rate and the update seed are the step's own).
    fn step_settings(&self) -> StepSettings {
        let c = self.config;
        StepSettings {
            batch_size: c.rollout.batch_size,
            group_size: c.rollout.group_size,
            seed: c.run.seed,
            segmentation: c.algorithm.segmentation,
            advantage: c.algorithm.advantage,
            advantage_options: c.algorithm.advantage_options(),
            gae: c.algorithm.gae_settings(),
            sampling: self.sampling(c.rollout.temperature),
            limits: self.limits(),
            update: self.settings(0.0, 0),
            skip_tokens_above_prob: c.algorithm.skip_tokens_above_prob,
        }
    }

    /// With `advantage = "gae"`, gives the policy its value head (seeded from the run's seed) as
    /// RL starts, after SFT and after the KL reference is frozen; a resumed RL run's checkpoint
    /// already holds it (and its optimizer moments).
    fn attach_value_head_if_needed(&mut self) {
        if self.config.algorithm.advantage == AdvantageEstimator::Gae && self.policy.model.value_head.is_none() {
            init_value_head(&mut self.policy.model, self.config.run.seed ^ VALUE_HEAD_SEED);
        }
    }

    fn reference_dir(&self) -> PathBuf {
        self.dir.root().join("reference")
    }

    /// With a KL term, freezes the policy as it is now (after SFT) as the reference model.
    fn save_reference_if_needed(&self) -> anyhow::Result<()> {
        if self.config.algorithm.kl_coef != 0.0 {
            self.policy.save_merged(&self.reference_dir()).context("saving the KL reference model")?;
        }
        Ok(())
    }

    fn load_reference(&self) -> anyhow::Result<Option<Llama<B::Leaf>>> {
        if self.config.algorithm.kl_coef == 0.0 {
            return Ok(None);
        }
        let dir = self.reference_dir();
        let (model, _) = memrl_policies::load_policy(self.policy.model.backend.leaf_backend().inference(), &dir)
            .with_context(|| format!("loading the KL reference model {}", dir.display()))?;
        Ok(Some(model))
    }

    /// Writes the checkpoint directory `checkpoints/<name>/` (model, tokenizer, optimizer,
    /// trainer state) atomically ([`write_checkpoint`]).
    pub(crate) fn write_checkpoint_dir(&self, name: &str, state: &TrainerState) -> anyhow::Result<()> {
        write_checkpoint(&self.dir.checkpoints_dir().join(name), |tmp| -> anyhow::Result<()> {
            self.policy.write_files(tmp, Some(&self.optimizer))?;
            state.write(tmp)?;
            Ok(())
        })
    }

    /// Writes `checkpoints/step-N/` atomically, then prunes old checkpoints.
    fn checkpoint(&self, state: &TrainerState) -> anyhow::Result<()> {
        self.write_checkpoint_dir(&checkpoint_dir_name(state.step), state)?;
        prune_checkpoints(&self.dir.checkpoints_dir(), self.config.run.keep_checkpoints as usize)?;
        Ok(())
    }

    fn write_rollouts(&self, step: u64, trajs: &[Trajectory], data: &StepData) -> anyhow::Result<()> {
        let codec = &self.policy.codec;
        let mut records = Vec::with_capacity(data.segments.len());
        for seg in &data.segments {
            let index = trajectory_index(seg.trajectory_id);
            records.push(RolloutRecord {
                segment: seg.clone(),
                advantage: data.trajectory_advantages.get(seg.trajectory_id).map_or(0.0, |a| a.advantage),
                reward: trajs.get(index).map_or(0.0, Trajectory::reward),
                prompt_text: codec.decode(&seg.prompt_ids)?,
                response_text: codec.decode(&seg.response_ids)?,
            });
        }
        write_rollouts(&self.dir.rollout_path(step), &records)?;
        Ok(())
    }

    fn due(every: u64, step: u64, last: u64) -> bool {
        step == last || (every > 0 && step % every == 0)
    }

    fn rl(&mut self, mut state: TrainerState, progress: bool) -> anyhow::Result<TrainSummary> {
        let c = self.config;
        let steps = c.run.steps;
        let schedule = c.trainer.schedule(steps);
        let mut sampler = TaskSampler::resume(state.sampler, self.pool)?;
        let reference = self.load_reference()?;
        let mut metrics = MetricsLogger::open(&self.dir.metrics_path())?;
        if state.step == 0 && c.eval.episodes > 0 {
            let r = self.evaluate(0)?;
            state.eval_reward_start = Some(r.reward);
            state.eval_reward_last = Some(r.reward);
            state.eval_task_score_start = Some(r.task_score);
            state.eval_task_score_last = Some(r.task_score);
            metrics.log(0, [(names::EVAL_REWARD, r.reward), (names::EVAL_TASK_SCORE, r.task_score)])?;
            state.metrics_step = Some(0);
        }
        let step_settings = self.step_settings();
        let bar = bar(progress, steps, "rl");
        bar.set_position(state.step.min(steps));
        for step in state.step + 1..=steps {
            let t0 = Instant::now();
            let policy = StepPolicy {
                model: &mut self.policy.model,
                optimizer: &mut self.optimizer,
                reference: reference.as_ref(),
                codec: &self.policy.codec,
                stop_ids: &self.policy.stop_ids,
            };
            let out = rl_step(step, schedule.lr(step - 1), &mut sampler, &self.envs, policy, &step_settings).with_context(|| format!("step {step}"))?;
            if out.update.skipped_steps > 0 {
                state.skipped_steps += out.update.skipped_steps as u64;
                eprintln!("step {step}: {} optimizer step(s) skipped: the gradient norm was not finite", out.update.skipped_steps);
            }
            let mut fields = out.fields;
            if c.eval.episodes > 0 && Self::due(c.eval.every, step, steps) {
                let r = self.evaluate(step)?;
                state.eval_reward_last = Some(r.reward);
                state.eval_task_score_last = Some(r.task_score);
                fields.push((names::EVAL_REWARD.into(), r.reward));
                fields.push((names::EVAL_TASK_SCORE.into(), r.task_score));
            }
            fields.push(("time/step_s".into(), t0.elapsed().as_secs_f64()));
            if c.run.rollouts_every > 0 && step % c.run.rollouts_every == 0 {
                self.write_rollouts(step, &out.trajectories, &out.data).with_context(|| format!("step {step}: writing rollouts"))?;
            }
            if Self::due(c.run.log_every.max(1), step, steps) {
                metrics.log(step, fields.iter().map(|(k, v)| (k.as_str(), *v)))?;
                state.metrics_step = Some(step);
            }
            let reward = fields.iter().find(|(k, _)| k == names::REWARD_MEAN).map_or(0.0, |(_, v)| *v);
            let eval = state.eval_reward_last.map_or(String::new(), |e| format!("  eval {e:.3}"));
            bar.set_message(format!("reward {reward:.3}{eval}"));
            bar.inc(1);
            state.step = step;
            state.sampler = sampler.state();
            if Self::due(c.run.checkpoint_every, step, steps) {
                // The step's metrics line is durable before the checkpoint that follows it.
                metrics.sync().with_context(|| format!("step {step}: syncing the metrics"))?;
                self.checkpoint(&state).with_context(|| format!("step {step}: writing the checkpoint"))?;
            }
            if Self::due(c.run.plot_every, step, steps) {
                crate::plots::plot_metrics_or_warn(&self.dir.metrics_path(), &self.dir.plots_dir());
            }
        }
        bar.finish();
        Ok(TrainSummary {
            run_dir: self.dir.root().display().to_string(),
            steps: state.step,
            resumed_from: None,
            resumed_from_sft_step: None,
            sft_demo_reward: None,
            eval_reward_start: state.eval_reward_start,
            eval_reward_end: state.eval_reward_last,
            eval_task_score_start: state.eval_task_score_start,
            eval_task_score_end: state.eval_task_score_last,
            baselines: Vec::new(),
            wall_seconds: self.started.elapsed().as_secs_f64(),
        })
    }
}

/// A progress bar for a phase (hidden when `progress` is false).
pub(crate) fn bar(progress: bool, total: u64, phase: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(ProgressStyle::with_template(&format!("{phase:>4} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {{msg}}")).expect("valid template"));
    bar
}

//! One RL step on one screen: sample tasks → roll out → segment → advantages → update → metrics.
//!
//! [`rl_step`] is the algorithm; each line calls the one function that does its part. The run
//! loop around it (evaluation, logging, rollout files, checkpoints, progress) is the
//! application's.

use std::time::Instant;

use memrl_envs::env::{EnvError, Split};
use memrl_policies::PolicyError;
use memrl_policies::model::Llama;
use memrl_policies::sampling::SamplingParams;
use memrl_policies::train::optim::AdamW;

use crate::advantage::{AdvantageEstimator, AdvantageOptions};
use crate::collect::{CollectError, RolloutLogprobs, StepData, collect};
use crate::learner::critic::{GaeSettings, gae_targets};
use crate::learner::update::{LearnerError, UpdateReport, UpdateSettings, policy_update};
use crate::metrics::{StepRecord, StepTimes, names, step_fields};
use crate::policy::{RunBackend, inference_copy};
use crate::rollout::EnvFactory;
use crate::rollout::adapters::play_policy;
use crate::rollout::context::ChatCodec;
use crate::rollout::driver::{RolloutError, RolloutLimits, Trajectory};
use crate::segments::SegmentationMode;
use memrl_envs::sampler::TaskSampler;

/// The step's hyper-parameters (from the run's config).
#[derive(Debug, Clone)]
pub struct StepSettings {
    /// Tasks per step.
    pub batch_size: usize,
    /// Plays per task (a group; advantages are normalized within it).
    pub group_size: usize,
    /// The run's seed.
    pub seed: u64,
    /// How trajectories become segments.
    pub segmentation: SegmentationMode,
    /// The advantage estimator and its options.
    pub advantage: AdvantageEstimator,
    /// Options of the advantage estimator.
    pub advantage_options: AdvantageOptions,
    /// GAE and the value loss (read only when `advantage` is [`AdvantageEstimator::Gae`]).
    pub gae: GaeSettings,
    /// Rollout sampling.
    pub sampling: SamplingParams,
    /// Turn, token and context limits of an episode.
    pub limits: RolloutLimits,
    /// The learner's settings (`lr` and `seed` are set per step).
    pub update: UpdateSettings,
    /// Response tokens sampled with a probability above this leave the policy loss
    /// ([`crate::segments::skip_confident_tokens`]; 1: every token trains).
    pub skip_tokens_above_prob: f64,
}

/// The policy the step plays and trains.
pub struct StepPolicy<'a, B: RunBackend> {
    /// The trainable model.
    pub model: &'a mut Llama<B>,
    /// Its optimizer (state for the trainable leaves only: every weight, or LoRA's adapters).
    pub optimizer: &'a mut AdamW<B::Leaf>,
    /// The frozen KL reference, when the loss has a KL term (a plain model on the base backend).
    pub reference: Option<&'a Llama<B::Leaf>>,
    /// Its tokenizer and chat template.
    pub codec: &'a dyn ChatCodec,
    /// Tokens that end an assistant turn.
    pub stop_ids: &'a [u32],
}

/// What a step produced.
pub struct StepOutput {
    /// The trajectories played (batch order: task-major, `group_size` plays per task).
    pub trajectories: Vec<Trajectory>,
    /// Their segments and advantages.
    pub data: StepData,
    /// What the learner did.
    pub update: UpdateReport,
    /// The step's metric fields (`lr` included).
    pub fields: Vec<(String, f64)>,
}

/// A failed step, naming its phase.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Building an environment failed.
    #[error("building the environment")]
    Env(#[from] EnvError),
    /// Copying the weights for the rollout engine failed.
    #[error("copying the policy for the rollout")]
    Policy(#[from] PolicyError),
    /// Playing the episodes failed.
    #[error("rollout")]
    Rollout(#[from] RolloutError),
    /// Segmenting or computing advantages failed.
    #[error("segmenting rollouts")]
    Collect(#[from] CollectError),
    /// The learner update failed.
    #[error("learner update")]
    Learner(#[from] LearnerError),
    /// `gae` was asked of a model without a value head.
    #[error("advantage = gae needs a model with a value head (a learned critic); this model has none")]
    NoValueHead,
}

/// RL step `step` (1-based) at learning rate `lr`.
pub fn rl_step<B: RunBackend>(
    step: u64,
    lr: f64,
    sampler: &mut TaskSampler,
    envs: &EnvFactory,
    policy: StepPolicy<'_, B>,
    s: &StepSettings,
) -> Result<StepOutput, StepError> {
    // 1. Sample `batch_size` tasks of the train split.
    let t0 = Instant::now();
    let tasks: Vec<u64> = sampler.next_batch(s.batch_size).into_iter().map(|t| t as u64).collect();

    // 2. Roll out each task `group_size` times with the current weights (exact token contexts).
    let episodes = envs.episodes(Split::Train, &tasks, s.group_size, s.seed ^ step)?;
    let model = inference_copy(policy.model)?;
    let (trajectories, play) = play_policy(model, policy.codec, policy.stop_ids, episodes, s.sampling.clone(), s.limits, s.seed.wrapping_add(step))?;
    let rollout = t0.elapsed().as_secs_f64();

    // 3. Segment each trajectory (a fracture wherever a context edit breaks the prefix) and
    // 4. normalize rewards into advantages over each group, broadcast to every policy token.
    let t1 = Instant::now();
    let policy_version = step - 1;
    // The segments carry the log-probs of the distribution the learner scores (A5).
    let logprobs = RolloutLogprobs::for_temperature(s.update.temperature);
    let mut data = collect(step, &trajectories, s.group_size, s.segmentation, s.advantage, s.advantage_options, logprobs, policy_version)?;
    if s.skip_tokens_above_prob < 1.0 {
        crate::segments::skip_confident_tokens(&mut data.segments, s.skip_tokens_above_prob);
    }
    let collect_s = t1.elapsed().as_secs_f64();

    // 5. Update: micro-batches → log-probs → clipped surrogate (+ KL, entropy, TIS) → AdamW.
    // Under gae the critic first gives every policy token its old value, and GAE its advantage
    // and return; the update then adds the value loss.
    let t2 = Instant::now();
    let critic = match s.advantage {
        AdvantageEstimator::Gae => {
            if policy.model.value_head.is_none() {
                return Err(StepError::NoValueHead);
            }
            let u = &s.update;
            let targets =
                gae_targets(policy.model, &mut data, &s.gae, s.advantage_options.mask_overlong, u.micro_batch_tokens, u.pad_id).map_err(CollectError::from)?;
            Some(targets)
        }
        _ => None,
    };
    let settings = UpdateSettings { lr, seed: step, ..s.update.clone() };
    policy.model.backend.begin_update(memrl_envs::ledger::derive_seed(&[s.seed, step]));
    let update = policy_update(policy.model, policy.optimizer, policy.reference, &data.segments, &data.advantages, &settings, critic.as_ref())?;
    let learner = t2.elapsed().as_secs_f64();

    // 6. Metrics.
    let record = StepRecord {
        trajectories: &trajectories,
        segments: &data.segments,
        fractures: data.fractures,
        advantages: data.trajectory_advantages.summary(),
        update: &update,
        times: StepTimes { rollout, play, collect: collect_s, learner },
    };
    let mut fields = step_fields(&record);
    fields.push((names::LR.into(), lr));
    Ok(StepOutput { trajectories, data, update, fields })
}

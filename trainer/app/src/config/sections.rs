//! The configuration sections. Defaults live here and only here: each field's doc comment says
//! what it means, and the `Default` impl right below each struct gives its value
//! (`memrl config defaults` prints them all, resolved, via [`super::defaults_toml`]).
//!
//! TOML has no null, so a few knobs use 0 for "off"; each says so.

use serde::{Deserialize, Serialize};

use memrl_policies::train::bpe::SpaceHandling;
use memrl_rl::advantage::AdvantageEstimator;
use memrl_rl::loss::{KlEstimator, LossAggregation, SegmentWeighting};
use memrl_rl::schedule::ScheduleKind;
use memrl_rl::segments::SegmentationMode;

/// The whole configuration of a run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Run identity, output directory, length and cadences.
    pub run: RunConfig,
    /// The environment and its own settings.
    pub env: EnvConfig,
    /// The model, its backend and device, LoRA.
    pub policy: PolicyConfig,
    /// Sampling and rollout batch shape.
    pub rollout: RolloutConfig,
    /// Segmentation, advantage estimator and loss.
    pub algorithm: AlgorithmConfig,
    /// Optimizer and learner batching.
    pub trainer: TrainerConfig,
    /// Supervised warm start from demonstrations.
    pub sft: SftConfig,
    /// Periodic evaluation.
    pub eval: EvalConfig,
}

/// `[run]`: identity and cadences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Name of the run; the output directory is `runs/<name>` unless `dir` is set.
    pub name: String,
    /// Output directory; empty means `runs/<name>` (relative to the working directory).
    pub dir: String,
    /// Seed of every random draw in the run (sampler, rollouts, initialisation).
    pub seed: u64,
    /// Number of training steps (one step = one rollout batch and its updates).
    pub steps: u64,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Keep only the newest this many complete checkpoints (0: keep all).
    pub keep_checkpoints: u64,
    /// Append a metrics line every this many steps.
    pub log_every: u64,
    /// Write the rollouts of a step to Parquet every this many steps (0: never).
    pub rollouts_every: u64,
    /// Redraw plots every this many steps (0: only at the end).
    pub plot_every: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            name: "quickstart".into(),
            dir: String::new(),
            seed: 0,
            steps: 100,
            checkpoint_every: 50,
            keep_checkpoints: 3,
            log_every: 1,
            rollouts_every: 10,
            plot_every: 10,
        }
    }
}

/// `[env]`: which environment, and its own settings (validated by the environment crate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvConfig {
    /// Environment name (`facts`, `multiobjective`, `locomo`, `longmemeval`, ...).
    pub name: String,
    /// `[env.options]`: the environment's own knobs, passed through untyped; the environment
    /// deserialises them with its own `deny_unknown_fields` struct.
    pub options: toml::Table,
}

impl Default for EnvConfig {
    fn default() -> Self {
        Self { name: "facts".into(), options: toml::Table::new() }
    }
}

/// Which tensor backend runs the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// burn with the pure-Rust flex CPU backend (default build).
    #[default]
    Burn,
    /// libtorch through tch (feature `tch`; CPU or CUDA).
    Tch,
}

/// The policy's compute precision (`policy.dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyDtype {
    /// f32 everywhere.
    #[default]
    F32,
    /// bf16 compute, f32 master weights (tch backend).
    Bf16,
}

impl std::fmt::Display for PolicyDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PolicyDtype::F32 => "f32",
            PolicyDtype::Bf16 => "bf16",
        })
    }
}

/// Where the policy runs: `"cpu"` or `"cuda:N"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The CPU.
    #[default]
    Cpu,
    /// CUDA device N.
    Cuda(u32),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "cpu" {
            return Ok(Device::Cpu);
        }
        if s == "cuda" {
            return Ok(Device::Cuda(0));
        }
        s.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(Device::Cuda).ok_or_else(|| format!("invalid device {s:?}, expected \"cpu\" or \"cuda:N\""))
    }
}

impl Serialize for Device {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Device {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[policy]`: the model and where it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// A model directory or file (safetensors + config.json, or GGUF) or a tiny preset name
    /// (`tiny-2l-64d`, or `tiny-<L>l-<D>d-<H>h[-<K>kv][-rope<θ>][-copy][-match]`; `-copy` adds the
    /// pointer head of `memrl_policies::copy_head`, `-match` the first layer's token matching of
    /// `memrl_policies::token_match`).
    pub model: String,
    /// Tensor backend.
    pub backend: BackendKind,
    /// Device: `"cpu"` or `"cuda:N"`.
    pub device: Device,
    /// Compute precision: `"f32"` (default, every backend) or `"bf16"` (tch only: bf16 matmuls
    /// and attention with f32 master weights and optimizer state; meant for CUDA).
    pub dtype: PolicyDtype,
    /// Low-rank adapters.
    pub lora: LoraConfig,
    /// Tiny presets only: how the BPE tokenizer trained for the run treats spaces, `attached`
    /// (GPT-2 / SmolLM2: ` Vera` and `"Vera` are different tokens) or `isolated` (every space a
    /// token of its own, so a word copied into a tool-call argument keeps its token ids).
    pub tokenizer_spaces: SpaceHandling,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            model: "tiny".into(),
            backend: BackendKind::Burn,
            device: Device::Cpu,
            dtype: PolicyDtype::F32,
            lora: LoraConfig::default(),
            tokenizer_spaces: SpaceHandling::Attached,
        }
    }
}

/// `[policy.lora]`: low-rank adapters on selected projections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Train adapters instead of the full weights.
    pub enabled: bool,
    /// Adapter rank r.
    pub rank: u32,
    /// Scale numerator: the update is (alpha / rank)·B·A.
    pub alpha: f64,
    /// Dropout on the adapter input.
    pub dropout: f64,
    /// Names of the projections that get adapters (among q_proj, k_proj, v_proj, o_proj,
    /// gate_proj, up_proj, down_proj).
    pub target_modules: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self { enabled: false, rank: 8, alpha: 16.0, dropout: 0.0, target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"].map(String::from).to_vec() }
    }
}

/// `[rollout]`: how experience is sampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutConfig {
    /// Tasks per step.
    pub batch_size: usize,
    /// Rollouts per task (one group); advantages are normalised within a group.
    pub group_size: usize,
    /// Sampling temperature, > 0: the learner scores tokens under softmax(logits / T) too, so
    /// training stays on-policy at any T.
    pub temperature: f64,
    /// Nucleus sampling mass; must be 1 (off) for RL: the learner does not score truncated
    /// distributions.
    pub top_p: f64,
    /// Keep only the k most likely tokens; must be 0 (off) for RL, as `top_p`.
    pub top_k: usize,
    /// Most tokens generated in one turn (per-turn budget, separate from the context budget).
    pub max_new_tokens: usize,
    /// Most policy turns in one episode; more ends it as truncated.
    pub max_turns: usize,
    /// Most tokens the policy may see in one context (prompt + generation); a turn that would
    /// exceed it ends the episode as truncated.
    pub max_context_tokens: usize,
    /// Rollout worker threads (0: one per available core). The whole run executes in a rayon
    /// pool of this size; results do not depend on it.
    pub workers: usize,
    /// Training tasks the sampler cycles through, epoch by epoch (0: the environment's whole
    /// train split, or 100,000 synthetic tasks where the split is unbounded).
    pub task_pool: usize,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        Self {
            batch_size: 8,
            group_size: 4,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 256,
            max_turns: 16,
            max_context_tokens: 4096,
            workers: 0,
            task_pool: 0,
        }
    }
}

/// `[algorithm]`: segmentation, advantages and the loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlgorithmConfig {
    /// `dcpo` (merge while the context extends, fracture otherwise), `per_turn`, or `prefix_only`.
    pub segmentation: SegmentationMode,
    /// `grpo`, `dr_grpo`, `rloo`, `reinforce_pp`, or `gae` (PPO with a learned critic: a value
    /// head on the policy's trunk, GAE over each trajectory's policy tokens, the clipped value
    /// loss). Dr. GRPO whole is `advantage = "dr_grpo"` with `loss_agg = "dr_grpo"`.
    pub advantage: AdvantageEstimator,
    /// Added to the std when normalising advantages (must be > 0).
    pub adv_eps: f64,
    /// Remove trajectories that ended by a budget without completing (cut off by the rollout's
    /// limits, or ended by the environment's turn or context budget) from the statistics and the
    /// loss (SUPO) instead of treating them as an ordinary low reward.
    pub mask_overlong: bool,
    /// ε_low: the ratio is clipped below at 1 − clip_low.
    pub clip_low: f64,
    /// ε_high: the ratio is clipped above at 1 + clip_high (DAPO uses 0.28).
    pub clip_high: f64,
    /// Dual-clip constant c > 1 bounding the loss at −c·A for negative advantages (0: off).
    pub dual_clip: f64,
    /// Cap C of the truncated importance weight min(exp(old − rollout), C) (0: off).
    pub tis_cap: f64,
    /// Coefficient of the KL penalty to the initial policy (0: off, and no reference model is kept).
    pub kl_coef: f64,
    /// `k3` (`low_var_kl`) or `k1` (`kl`).
    pub kl_estimator: KlEstimator,
    /// Coefficient of the entropy bonus (0: off).
    pub entropy_coef: f64,
    /// `token_mean`, `seq_mean_token_mean`, `trajectory_mean`, or `dr_grpo` (each sequence's
    /// token sum divided by the constant `rollout.max_new_tokens`, mean over sequences: Dr. GRPO's
    /// aggregation without length normalisation).
    pub loss_agg: LossAggregation,
    /// How a trajectory's DCPO segments share its weight under a sequence-level `loss_agg`
    /// (`seq_mean_token_mean`, `dr_grpo`): `unweighted` (each segment is a sequence, MemAct's
    /// behaviour), `trajectory_equal` (a trajectory's segments split one trajectory's share) or
    /// `token_proportional` (`seq_mean_token_mean` only; equals `token_mean`). Other values than
    /// `unweighted` are refused with `token_mean` and `trajectory_mean`, which do not see segments.
    pub segment_weighting: SegmentWeighting,
    /// GAE discount γ per policy token, in [0, 1] (read only by `gae`; must stay 1 otherwise).
    pub gamma: f64,
    /// GAE λ, in [0, 1] (read only by `gae`; must stay 1 otherwise).
    pub lam: f64,
    /// Where `gae`'s critic lives: `shared` (a value head on the policy's own trunk, trained by
    /// the same optimizer at `trainer.lr`; the only one available) or `separate` (a second copy
    /// of the model: refused, not available yet). Read only by `gae`.
    pub critic: CriticKind,
    /// Coefficient of the value loss in the total loss (> 0 with `gae`; read only by `gae`).
    pub vf_coef: f64,
    /// ε_v of the clipped value loss ½·max((V − G)², (V_old + clip(V − V_old, ±ε_v) − G)²)
    /// (0: no clipping; read only by `gae`).
    pub value_clip: f64,
    /// Whiten `gae`'s advantages over the batch's policy tokens (standard PPO; read only by `gae`).
    pub whiten_advantages: bool,
    /// Trains only the policy's *forking* tokens: a response token the rollout sampled with a
    /// probability above this value leaves the policy loss (its loss mask is 0). In (0, 1];
    /// 1 (the default) trains every token. After SFT most tokens of a tool call are
    /// near-certain and carry only noise into the gradient; the few uncertain ones are the
    /// decisions (Wang et al. 2025, "Beyond the 80/20 rule": RL on the high-entropy minority
    /// of tokens). The sampled token's probability stands in for the entropy: it is what the
    /// rollout recorded. Refused with `gae` (the critic's targets sit on every policy token).
    pub skip_tokens_above_prob: f64,
}

/// Where PPO's critic lives (`algorithm.critic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticKind {
    /// A value head on the policy's own trunk (default).
    #[default]
    Shared,
    /// A separate critic model (not available yet: refused by validation).
    Separate,
}

impl Default for AlgorithmConfig {
    fn default() -> Self {
        Self {
            segmentation: SegmentationMode::Dcpo,
            advantage: AdvantageEstimator::Grpo,
            adv_eps: 1e-6,
            mask_overlong: true,
            clip_low: 0.2,
            clip_high: 0.2,
            dual_clip: 3.0,
            tis_cap: 2.0,
            kl_coef: 0.0,
            kl_estimator: KlEstimator::K3,
            entropy_coef: 0.0,
            loss_agg: LossAggregation::TokenMean,
            segment_weighting: SegmentWeighting::Unweighted,
            gamma: 1.0,
            lam: 1.0,
            critic: CriticKind::Shared,
            vf_coef: 0.5,
            value_clip: 0.5,
            whiten_advantages: true,
            skip_tokens_above_prob: 1.0,
        }
    }
}

/// `[trainer]`: optimizer and learner batching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerConfig {
    /// Peak AdamW learning rate.
    pub lr: f64,
    /// `constant` or `cosine` (both after a linear warmup).
    pub schedule: ScheduleKind,
    /// Linear warmup steps.
    pub warmup_steps: u64,
    /// Floor of the cosine decay as a fraction of `lr`.
    pub min_lr_ratio: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW β1, β2.
    pub betas: [f64; 2],
    /// AdamW ε.
    pub eps: f64,
    /// Clip the global gradient norm to this (0: off).
    pub grad_clip: f64,
    /// Token budget of one micro-batch (segments are packed up to it; gradients accumulate).
    pub micro_batch_tokens: usize,
    /// Optimizer steps per epoch: the step's segments are split into this many mini-batches.
    pub mini_batches: usize,
    /// Passes over the step's segments.
    pub epochs_per_step: usize,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            lr: 1e-6,
            schedule: ScheduleKind::Constant,
            warmup_steps: 0,
            min_lr_ratio: 0.0,
            weight_decay: 0.01,
            betas: [0.9, 0.999],
            eps: 1e-8,
            grad_clip: 1.0,
            micro_batch_tokens: 4096,
            mini_batches: 1,
            epochs_per_step: 1,
        }
    }
}

/// `[sft]`: supervised warm start on demonstrations before RL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftConfig {
    /// Run SFT before RL.
    pub enabled: bool,
    /// The policy that writes demonstrations (`oracle`, or a baseline name of the environment).
    pub source: String,
    /// Number of demonstration episodes.
    pub episodes: usize,
    /// Passes over the demonstrations.
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// `constant` or `cosine`.
    pub schedule: ScheduleKind,
    /// Linear warmup steps.
    pub warmup_steps: u64,
    /// Floor of the cosine decay as a fraction of `lr`.
    pub min_lr_ratio: f64,
    /// Segments per optimizer step.
    pub batch_size: usize,
    /// How many of each demonstration's last segments [`final_segment_copies`](Self::final_segment_copies)
    /// applies to (0: none). In `facts` with `questions_per_turn = 1` the last `questions`
    /// segments are the answer turns: one or two in ten segments, with the lookup the
    /// episode's score hinges on.
    pub final_segments: usize,
    /// Copies of each of those segments per epoch (1: seen once, like every other segment).
    pub final_segment_copies: usize,
    /// Echo segments mixed into each epoch (0: none): synthetic turns whose response copies
    /// lines of the demonstrations' prompts, so that every response token trains copying
    /// ([`crate::train::echo`]).
    pub echo_segments: usize,
    /// Write a resumable SFT checkpoint (`checkpoints/sft-step-K/`: weights, AdamW moments, the
    /// step counter) every this many SFT optimizer steps (0: none; the stage's end is always
    /// checkpointed as `step-0`). `memrl train --resume` on a run stopped during SFT continues
    /// from the newest one and ends as an uninterrupted run would. Only the newest is kept, and
    /// it is removed once `step-0` is written.
    pub checkpoint_every: u64,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            source: "oracle".into(),
            episodes: 64,
            epochs: 2,
            lr: 1e-5,
            schedule: ScheduleKind::Cosine,
            warmup_steps: 0,
            min_lr_ratio: 0.1,
            batch_size: 8,
            final_segments: 0,
            final_segment_copies: 1,
            echo_segments: 0,
            checkpoint_every: 1000,
        }
    }
}

/// `[eval]`: periodic evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Which split of the environment's tasks.
    pub split: String,
    /// Episodes per evaluation.
    pub episodes: usize,
    /// Evaluate every this many steps (0: never during training).
    pub every: u64,
    /// Sampling temperature for evaluation (0: greedy).
    pub temperature: f64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self { split: "test".into(), episodes: 32, every: 50, temperature: 0.0 }
    }
}

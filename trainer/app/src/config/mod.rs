//! Typed run configuration: TOML file + `--set` overrides → [`Config`].
//!
//! Resolution order: defaults (in [`sections`]) ← the file ← each `--set key=value` in order.
//! Every struct denies unknown fields; errors name the file, the dotted key and the expected
//! type. The resolved config (with `run.dir` filled in) serialises back to TOML for the run dir.

mod algorithm;
mod overrides;
mod sections;

use std::path::{Path, PathBuf};

pub use algorithm::check_segmentation_fits_env;
pub use overrides::{Override, apply_override, parse_override};
pub use sections::*;

use memrl_rl::schedule::Schedule;

/// Errors from reading, overriding, typing or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{source_name} is not valid TOML: {message}")]
    Syntax {
        /// The file (or other source) name.
        source_name: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A key has the wrong type or is unknown.
    #[error("{source_name}: `{key}`: {message}")]
    Field {
        /// The file (or other source) name, with "+ overrides" when `--set` was used.
        source_name: String,
        /// The dotted key path (for an unknown key: the table it appeared in).
        key: String,
        /// What was wrong, with the expected type.
        message: String,
    },
    /// A `--set` argument is malformed.
    #[error("--set {arg}: {reason}")]
    BadOverride {
        /// The argument.
        arg: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--set` key does not exist.
    #[error("--set {arg}: unknown key `{key}` ({known})")]
    UnknownKey {
        /// The argument.
        arg: String,
        /// The unknown dotted key.
        key: String,
        /// The keys that exist at that level.
        known: String,
    },
    /// A value is out of its valid range.
    #[error("config `{key}` = {value}: {expected}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// The value, formatted.
        value: String,
        /// What is expected.
        expected: &'static str,
    },
}

/// The default configuration as a TOML tree (used to check `--set` keys).
fn defaults_value() -> toml::Value {
    toml::Value::try_from(Config::default()).expect("the default config serialises")
}

/// The fully resolved default configuration as TOML text (`memrl config defaults`).
pub fn defaults_toml() -> String {
    format!(
        "# memrl default configuration. Every key is optional; a config file overrides these,\n\
         # and `--set section.key=value` overrides the file. Meanings: trainer/app/src/config/sections.rs.\n\
         # An empty run.dir means runs/<run.name>.\n\n{}",
        Config::default().to_toml_string()
    )
}

/// Reads `path` (or starts from an empty file when None), applies `overrides` (`key=value`
/// strings, as given to `--set`), and returns the typed, validated, resolved config.
pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Config, ConfigError> {
    let (text, name) = match path {
        Some(p) => (std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.to_path_buf(), source })?, p.display().to_string()),
        None => (String::new(), "<defaults>".to_string()),
    };
    from_toml_str(&text, &name, overrides)
}

/// Like [`load`] but from TOML text; `source_name` names the text in errors.
pub fn from_toml_str(text: &str, source_name: &str, overrides: &[String]) -> Result<Config, ConfigError> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax { source_name: source_name.to_string(), message: e.to_string() })?;
    let defaults = defaults_value();
    for arg in overrides {
        apply_override(&mut table, &defaults, &parse_override(arg)?)?;
    }
    let name = if overrides.is_empty() { source_name.to_string() } else { format!("{source_name} + --set overrides") };
    let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Field { source_name: name, key: if key == "." { "(top level)".into() } else { key }, message: e.into_inner().message().to_string() }
    })?;
    config.validate()?;
    if config.run.dir.is_empty() {
        config.run.dir = Path::new("runs").join(&config.run.name).display().to_string();
    }
    Ok(config)
}

/// The largest `rollout.task_pool`: the sampler holds a permutation of the pool in memory.
pub const MAX_TASK_POOL: usize = 10_000_000;

fn invalid(key: &'static str, value: impl std::fmt::Display, expected: &'static str) -> ConfigError {
    ConfigError::Invalid { key, value: value.to_string(), expected }
}

impl Config {
    /// The resolved config as TOML (what the run directory's `config.toml` holds).
    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("a typed config serialises to TOML")
    }

    /// The run's output directory: `run.dir`, or `runs/<run.name>` when it is empty.
    pub fn run_dir(&self) -> PathBuf {
        if self.run.dir.is_empty() { Path::new("runs").join(&self.run.name) } else { PathBuf::from(&self.run.dir) }
    }

    /// Checks value ranges; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.run;
        if r.name.is_empty() || r.name.contains(['/', '\\']) || r.name == "." || r.name == ".." {
            return Err(invalid("run.name", format!("{:?}", r.name), "expected a non-empty name without path separators"));
        }
        if r.log_every == 0 {
            return Err(invalid("run.log_every", 0, "expected >= 1"));
        }
        if self.eval.split.parse::<memrl_envs::env::Split>().is_err() {
            return Err(invalid("eval.split", format!("{:?}", self.eval.split), "expected train, validation or test"));
        }
        if self.rollout.task_pool > MAX_TASK_POOL {
            return Err(invalid("rollout.task_pool", self.rollout.task_pool, "expected at most 10000000 (0: the whole train split)"));
        }
        let ro = &self.rollout;
        for (key, v) in [
            ("rollout.batch_size", ro.batch_size),
            ("rollout.group_size", ro.group_size),
            ("rollout.max_new_tokens", ro.max_new_tokens),
            ("rollout.max_turns", ro.max_turns),
            ("rollout.max_context_tokens", ro.max_context_tokens),
            ("trainer.micro_batch_tokens", self.trainer.micro_batch_tokens),
            ("trainer.mini_batches", self.trainer.mini_batches),
            ("trainer.epochs_per_step", self.trainer.epochs_per_step),
            ("sft.batch_size", self.sft.batch_size),
            ("sft.final_segment_copies", self.sft.final_segment_copies),
        ] {
            if v == 0 {
                return Err(invalid(key, v, "expected >= 1"));
            }
        }
        if self.sft.echo_segments > 10_000_000 {
            return Err(invalid("sft.echo_segments", self.sft.echo_segments, "expected at most 10000000"));
        }
        if self.sft.final_segment_copies > 64 {
            return Err(invalid("sft.final_segment_copies", self.sft.final_segment_copies, "expected at most 64"));
        }
        if !(ro.temperature >= 0.0 && ro.temperature.is_finite()) {
            return Err(invalid("rollout.temperature", ro.temperature, "expected a finite value >= 0"));
        }
        if !(ro.top_p > 0.0 && ro.top_p <= 1.0) {
            return Err(invalid("rollout.top_p", ro.top_p, "expected 0 < top_p <= 1"));
        }
        if !(self.eval.temperature >= 0.0 && self.eval.temperature.is_finite()) {
            return Err(invalid("eval.temperature", self.eval.temperature, "expected a finite value >= 0"));
        }
        let a = &self.algorithm;
        if !(0.0..1.0).contains(&a.clip_low) {
            return Err(invalid("algorithm.clip_low", a.clip_low, "expected 0 <= clip_low < 1"));
        }
        if !(a.clip_high >= 0.0 && a.clip_high.is_finite()) {
            return Err(invalid("algorithm.clip_high", a.clip_high, "expected a finite value >= 0"));
        }
        if !(a.dual_clip == 0.0 || (a.dual_clip > 1.0 && a.dual_clip.is_finite())) {
            return Err(invalid("algorithm.dual_clip", a.dual_clip, "expected 0 (off) or a value > 1"));
        }
        if !(a.tis_cap >= 0.0 && a.tis_cap.is_finite()) {
            return Err(invalid("algorithm.tis_cap", a.tis_cap, "expected 0 (off) or a value > 0"));
        }
        for (key, v) in [("algorithm.adv_eps", a.adv_eps), ("algorithm.kl_coef", a.kl_coef), ("algorithm.entropy_coef", a.entropy_coef)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(invalid(key, v, "expected a finite value >= 0"));
            }
        }
        for (key, v) in [("algorithm.gamma", a.gamma), ("algorithm.lam", a.lam)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(key, v, "expected 0 <= value <= 1"));
            }
        }
        let t = &self.trainer;
        for (key, v) in [("trainer.lr", t.lr), ("sft.lr", self.sft.lr)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(invalid(key, v, "expected a finite value > 0"));
            }
        }
        for (key, v) in [("trainer.min_lr_ratio", t.min_lr_ratio), ("sft.min_lr_ratio", self.sft.min_lr_ratio)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(key, v, "expected 0 <= value <= 1"));
            }
        }
        if !t.betas.iter().all(|b| (0.0..1.0).contains(b)) {
            return Err(invalid("trainer.betas", format!("{:?}", t.betas), "expected two values in [0, 1)"));
        }
        if !(t.eps > 0.0 && t.eps.is_finite()) {
            return Err(invalid("trainer.eps", t.eps, "expected a finite value > 0"));
        }
        for (key, v) in [("trainer.weight_decay", t.weight_decay), ("trainer.grad_clip", t.grad_clip)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(invalid(key, v, "expected a finite value >= 0"));
            }
        }
        let l = &self.policy.lora;
        if !(0.0..1.0).contains(&l.dropout) {
            return Err(invalid("policy.lora.dropout", l.dropout, "expected 0 <= dropout < 1"));
        }
        if l.enabled {
            self.validate_lora()?;
        }
        self.validate_algorithm()
    }
}

impl Config {
    /// `[policy.lora]` when it is enabled: the checks [`Config::validate`] adds then.
    fn validate_lora(&self) -> Result<(), ConfigError> {
        let l = &self.policy.lora;
        if l.rank == 0 {
            return Err(invalid("policy.lora.rank", 0, "expected >= 1 when LoRA is enabled"));
        }
        if !(l.alpha > 0.0 && l.alpha.is_finite()) {
            return Err(invalid("policy.lora.alpha", l.alpha, "expected a finite value > 0"));
        }
        let targets = memrl_policies::train::lora::LORA_TARGETS;
        if l.target_modules.is_empty() {
            return Err(invalid("policy.lora.target_modules", "[]", "expected some of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"));
        }
        for (i, t) in l.target_modules.iter().enumerate() {
            if !targets.contains(&t.as_str()) {
                return Err(invalid(
                    "policy.lora.target_modules",
                    format!("{:?}", l.target_modules),
                    "expected names among q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj",
                ));
            }
            if l.target_modules[..i].contains(t) {
                return Err(invalid("policy.lora.target_modules", format!("{:?}", l.target_modules), "expected each module once"));
            }
        }
        if self.algorithm.advantage == memrl_rl::advantage::AdvantageEstimator::Gae {
            // Under LoRA only the adapters train: the value head would stay at its random start.
            return Err(invalid(
                "policy.lora.enabled",
                true,
                "expected false with algorithm.advantage = \"gae\" (LoRA trains only the adapters, so the value head would never learn)",
            ));
        }
        Ok(())
    }

    /// The adapter configuration `[policy.lora]` describes when it is enabled (its adapters are
    /// initialised from `run.seed`), else None.
    pub fn lora(&self) -> Option<memrl_policies::train::lora::LoraConfig> {
        let l = &self.policy.lora;
        l.enabled.then(|| memrl_policies::train::lora::LoraConfig {
            rank: l.rank as usize,
            alpha: l.alpha,
            dropout: l.dropout,
            target_modules: l.target_modules.clone(),
            seed: self.run.seed,
        })
    }
}

impl TrainerConfig {
    /// The learning-rate schedule over `total_steps` optimizer steps.
    pub fn schedule(&self, total_steps: u64) -> Schedule {
        Schedule { kind: self.schedule, base_lr: self.lr, warmup_steps: self.warmup_steps, total_steps, min_lr_ratio: self.min_lr_ratio }
    }
}

impl SftConfig {
    /// The SFT learning-rate schedule over `total_steps` optimizer steps.
    pub fn schedule(&self, total_steps: u64) -> Schedule {
        Schedule { kind: self.schedule, base_lr: self.lr, warmup_steps: self.warmup_steps, total_steps, min_lr_ratio: self.min_lr_ratio }
    }
}

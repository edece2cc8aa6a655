//! The algorithm combinations a run cannot train with, refused when the config is validated
//! (before the policy is built and before SFT), each naming the key to change; and the
//! algorithm's derived settings (loss and advantage options).
//!
//! The check that needs the environment (`prefix_only` segmentation on an environment that
//! edits its context) plays one oracle episode: [`check_segmentation_fits_env`], called by
//! `memrl train` before SFT.

use std::sync::Arc;

use memrl_envs::env::{ScriptedKind, Split, TaskId};
use memrl_envs::policy::{ScriptedPolicy, TextPolicy};
use memrl_envs::rollout::EpisodeRun;
use memrl_envs::tokens::WhitespaceCounter;
use memrl_rl::advantage::{AdvantageEstimator, AdvantageOptions};
use memrl_rl::learner::critic::GaeSettings;
use memrl_rl::loss::LossConfig;
use memrl_rl::loss::value::ValueLossConfig;
use memrl_rl::segments::SegmentationMode;

use super::{AlgorithmConfig, Config, ConfigError, CriticKind, invalid};

/// Most turns of the oracle episode [`check_segmentation_fits_env`] plays.
const PROBE_TURNS: usize = 256;

impl Config {
    /// The algorithm combinations that cannot train, refused with the key to change.
    pub(crate) fn validate_algorithm(&self) -> Result<(), ConfigError> {
        let a = &self.algorithm;
        if !(a.adv_eps > 0.0) {
            return Err(invalid(
                "algorithm.adv_eps",
                a.adv_eps,
                "expected a finite value > 0 (with 0, a group of equal rewards divides 0, or rounding noise, by 0)",
            ));
        }
        for (key, v) in [("algorithm.vf_coef", a.vf_coef), ("algorithm.value_clip", a.value_clip)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(invalid(key, v, "expected a finite value >= 0"));
            }
        }
        let p = a.skip_tokens_above_prob;
        if !(p > 0.0 && p <= 1.0) {
            return Err(invalid("algorithm.skip_tokens_above_prob", p, "expected a probability in (0, 1]; 1 trains every token"));
        }
        if p < 1.0 && a.advantage == AdvantageEstimator::Gae {
            return Err(invalid(
                "algorithm.skip_tokens_above_prob",
                p,
                "not with advantage = \"gae\": the critic's value targets sit on every policy token (leave it at 1)",
            ));
        }
        if a.advantage == AdvantageEstimator::Gae {
            if a.critic == CriticKind::Separate {
                return Err(invalid(
                    "algorithm.critic",
                    "\"separate\"",
                    "a separate critic model is not available yet; use \"shared\" (a value head on the policy's trunk)",
                ));
            }
            if a.vf_coef == 0.0 {
                return Err(invalid("algorithm.vf_coef", 0, "expected > 0 with advantage = \"gae\": with 0 the critic never learns"));
            }
        } else {
            let d = AlgorithmConfig::default();
            let not_read = "only advantage = \"gae\" reads it: leave it at its default";
            for (key, v, default) in [("algorithm.gamma", a.gamma, d.gamma), ("algorithm.lam", a.lam, d.lam)] {
                if v != default {
                    return Err(invalid(key, v, not_read));
                }
            }
            for (key, v, default) in [("algorithm.vf_coef", a.vf_coef, d.vf_coef), ("algorithm.value_clip", a.value_clip, d.value_clip)] {
                if v != default {
                    return Err(invalid(key, v, not_read));
                }
            }
            if a.critic != d.critic {
                return Err(invalid("algorithm.critic", format!("{:?}", a.critic), not_read));
            }
            if a.whiten_advantages != d.whiten_advantages {
                return Err(invalid("algorithm.whiten_advantages", a.whiten_advantages, not_read));
            }
        }
        if let Some(why) = a.loss_config(self.rollout.max_new_tokens).incompatibility() {
            return Err(invalid("algorithm.segment_weighting", format!("{:?} with loss_agg {:?}", a.segment_weighting, a.loss_agg), why));
        }
        // The learner scores tokens under softmax(logits / T), the distribution a rollout at
        // temperature T samples from; top-k / top-p sampling draws from a truncated distribution
        // the learner does not reproduce, and T = 0 (greedy) from none.
        let r = &self.rollout;
        if r.temperature == 0.0 {
            return Err(invalid(
                "rollout.temperature",
                0,
                "expected > 0 for RL rollouts: greedy decoding has no sampling distribution to train on-policy with \
                 (the learner scores tokens at the rollout's temperature)",
            ));
        }
        if r.top_p < 1.0 {
            return Err(invalid(
                "rollout.top_p",
                r.top_p,
                "expected 1 for RL rollouts: nucleus sampling draws from a truncated distribution the learner does not \
                 score, which would train off-policy (use rollout.temperature to sharpen sampling)",
            ));
        }
        if r.top_k > 0 {
            return Err(invalid(
                "rollout.top_k",
                r.top_k,
                "expected 0 for RL rollouts: top-k sampling draws from a truncated distribution the learner does not \
                 score, which would train off-policy (use rollout.temperature to sharpen sampling)",
            ));
        }
        Ok(())
    }
}

/// Refuses `algorithm.segmentation = "prefix_only"` on an environment whose contexts are not
/// always extensions of the previous turn's (pruning, summaries, rebuilt chunks), which would end
/// the run at the first such rollout. Plays one oracle episode of the training split and looks
/// at each turn's context edit; an environment that cannot be built here is left to the run
/// to report.
pub fn check_segmentation_fits_env(config: &Config) -> Result<(), ConfigError> {
    if config.algorithm.segmentation != SegmentationMode::PrefixOnly {
        return Ok(());
    }
    let Ok(knobs) = serde_json::to_value(&config.env.options) else { return Ok(()) };
    let Ok(mut env) = memrl_envs::registry::build_env(&config.env.name, knobs, Arc::new(WhitespaceCounter)) else {
        return Ok(());
    };
    let seed = config.run.seed;
    let Ok(mut run) = EpisodeRun::start(env.as_mut(), TaskId { split: Split::Train, index: 0 }, seed, false) else { return Ok(()) };
    let mut oracle = ScriptedPolicy::new(ScriptedKind::Oracle, seed);
    for _ in 0..PROBE_TURNS {
        let Some(turn) = run.turn() else { break };
        if turn.edit.is_fracture() {
            return Err(ConfigError::Invalid {
                key: "algorithm.segmentation",
                value: format!("\"prefix_only\" with env.name = {:?}", config.env.name),
                expected: "an environment whose contexts only grow; this one edits its context (its oracle episode has a \
                           turn whose context does not extend the previous one): use \"dcpo\" or \"per_turn\"",
            });
        }
        let Ok(completion) = oracle.complete(env.as_ref(), turn) else { return Ok(()) };
        if run.play_turn(env.as_mut(), &completion).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

impl AlgorithmConfig {
    /// The loss hyper-parameters (0 → None for the dual clip and the TIS cap); `dr_grpo`'s
    /// constant C is the rollout's `max_new_tokens` (verl's default loss scale: the response
    /// length budget).
    pub fn loss_config(&self, max_new_tokens: usize) -> LossConfig {
        LossConfig {
            clip_low: self.clip_low,
            clip_high: self.clip_high,
            dual_clip: (self.dual_clip != 0.0).then_some(self.dual_clip),
            tis_cap: (self.tis_cap != 0.0).then_some(self.tis_cap),
            kl_coef: self.kl_coef,
            kl_estimator: self.kl_estimator,
            entropy_coef: self.entropy_coef,
            aggregation: self.loss_agg,
            segment_weighting: self.segment_weighting,
            sum_norm_tokens: max_new_tokens.max(1) as f64,
        }
    }

    /// GAE's and the value loss's settings (read when `advantage = "gae"`).
    pub fn gae_settings(&self) -> GaeSettings {
        GaeSettings {
            gamma: self.gamma,
            lam: self.lam,
            whiten: self.whiten_advantages,
            loss: ValueLossConfig { vf_coef: self.vf_coef, value_clip: self.value_clip },
        }
    }

    /// The options of the outcome advantage estimators.
    pub fn advantage_options(&self) -> AdvantageOptions {
        AdvantageOptions { eps: self.adv_eps, mask_overlong: self.mask_overlong }
    }
}

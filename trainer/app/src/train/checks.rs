//! Checks of a run's config against its environment, model and machine, made once both are
//! built and before any SFT or RL work: a setting that cannot run is refused naming its key; a
//! setting that runs but makes training pointless or slow is warned about.

use anyhow::bail;
use memrl_envs::Env;
use memrl_envs::env::Split;
use memrl_envs::sampler::pool_size;
use memrl_policies::config::LlamaConfig;
use memrl_rl::advantage::AdvantageEstimator;

use memrl_envs::env::ScriptedKind;
use memrl_rl::rollout::context::ChatCodec;
use memrl_rl::rollout::driver::{CompletionSource, RolloutLimits, play};

use crate::config::Config;
use crate::train::backend::RunBackend;
use crate::train::run::Run;

/// `rollout.workers` is capped at this many threads per core: more only contend (an SFT step
/// was measured 17 times slower at 500 threads per core). Results do not depend on the count.
const MAX_WORKERS_PER_CORE: usize = 4;

/// The rollout thread count for `rollout.workers = workers` on `cores` cores, and a warning
/// when it was capped.
pub fn rollout_threads(workers: usize, cores: usize) -> (usize, Option<String>) {
    let cap = cores.max(1) * MAX_WORKERS_PER_CORE;
    if workers <= cap {
        return (workers, None);
    }
    let warning = format!(
        "rollout.workers = {workers} on a machine with {cores} cores: using {cap} threads (more only contend; \
         results do not depend on the count)"
    );
    (cap, Some(warning))
}

/// Checks `config` against the environment (`probe`) and the model's config; returns the size
/// of the task pool the sampler draws from. Prints warnings to stderr.
pub fn check_run(config: &Config, probe: &dyn Env, model: &LlamaConfig) -> anyhow::Result<usize> {
    let available = probe.task_count(Split::Train).map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let pool = match (config.rollout.task_pool, available) {
        (0, _) => pool_size(probe.task_count(Split::Train)),
        (k, Some(n)) if k > n => bail!("rollout.task_pool = {k}, but the {} train split has only {n} tasks", config.env.name),
        (k, _) => k,
    };
    let e = &config.eval;
    if e.episodes > 0 {
        let split: Split = e.split.parse().map_err(|err| anyhow::anyhow!("eval.split: {err}"))?;
        if let Some(n) = probe.task_count(split)
            && e.episodes as u64 > n
        {
            bail!("eval.episodes = {}, but the {} {split} split (eval.split) has only {n} tasks", e.episodes, config.env.name);
        }
    }
    let window = model.max_position_embeddings;
    if config.rollout.max_context_tokens > window {
        bail!("rollout.max_context_tokens = {} exceeds the model's window of {window} tokens (max_position_embeddings)", config.rollout.max_context_tokens);
    }
    for warning in warnings(config) {
        eprintln!("warning: {warning}");
    }
    Ok(pool)
}

/// A warning when the first prompt of a train task does not fit in `rollout.max_context_tokens`:
/// then every episode ends before its first turn, and neither SFT nor RL has anything to learn
/// from. (Plays one turn of one task with the oracle policy.)
pub(crate) fn first_prompt_warning<B: RunBackend>(run: &Run<'_, B>) -> anyhow::Result<Option<String>> {
    let c = run.config;
    if run.train_task_count()? == Some(0) {
        return Ok(None);
    }
    let envs = run.envs(Split::Train, &[0], 1, c.run.seed)?;
    let source = CompletionSource::Scripted { kind: ScriptedKind::Oracle, stop_id: run.policy.stop_ids[0] };
    let limits = RolloutLimits { max_turns: 1, ..run.limits() };
    let trajs = play(envs, &run.policy.codec as &dyn ChatCodec, source, limits, c.run.seed)?;
    Ok(trajs.iter().any(|t| t.truncated && t.turns.is_empty()).then(|| {
        format!(
            "rollout.max_context_tokens = {} is smaller than the first prompt of a {} train task: every episode \
             ends before its first turn, so training learns nothing; raise it",
            c.rollout.max_context_tokens, c.env.name
        )
    }))
}

/// Settings that run but make RL a no-op, print a meaningless number or waste the machine.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let group_relative = matches!(config.algorithm.advantage, AdvantageEstimator::Grpo | AdvantageEstimator::DrGrpo | AdvantageEstimator::Rloo);
    if config.rollout.group_size == 1 && group_relative && config.run.steps > 0 {
        out.push(format!(
            "rollout.group_size = 1 with algorithm.advantage = {:?}: a group-relative advantage of a single \
             rollout is 0, so RL changes nothing; use group_size >= 2",
            config.algorithm.advantage
        ));
    }
    if config.sft.enabled && config.sft.episodes == 0 {
        out.push("sft.enabled = true with sft.episodes = 0: the SFT stage has no demonstrations and trains nothing".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_op_and_wasteful_settings_are_warned_about() {
        let mut c = Config::default();
        assert!(warnings(&c).is_empty(), "{:?}", warnings(&c));
        c.rollout.group_size = 1;
        c.sft.enabled = true;
        c.sft.episodes = 0;
        let w = warnings(&c);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("rollout.group_size") && w[1].contains("sft.episodes"), "{w:?}");
        c.algorithm.advantage = AdvantageEstimator::ReinforcePp;
        assert_eq!(warnings(&c).len(), 1, "a batch-relative estimator learns from groups of one");
    }

    #[test]
    fn rollout_threads_are_capped_per_core() {
        assert_eq!(rollout_threads(8, 2), (8, None));
        let (n, warning) = rollout_threads(1000, 2);
        assert_eq!(n, 8);
        assert!(warning.unwrap().contains("rollout.workers = 1000"));
    }
}

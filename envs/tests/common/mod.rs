//! Helpers shared by the integration tests.
#![allow(dead_code)]

use memrl_envs::env::{Env, ScriptedKind, Split, TaskId};
use memrl_envs::policy::ScriptedPolicy;
use memrl_envs::rollout::{run_episode, EpisodeResult};

/// Runs `n` episodes of the given split with a scripted policy.
pub fn play(env: &mut dyn Env, kind: ScriptedKind, split: Split, n: u64, seed: u64) -> Vec<EpisodeResult> {
    (0..n)
        .map(|i| {
            let mut policy = ScriptedPolicy::new(kind, seed + i);
            run_episode(env, &mut policy, TaskId { split, index: i }, seed + i, true, 500).expect("episode runs")
        })
        .collect()
}

/// Mean reward.
pub fn mean_reward(r: &[EpisodeResult]) -> f64 {
    r.iter().map(|e| e.end.reward).sum::<f64>() / r.len() as f64
}

/// Mean task score (reward before penalties).
pub fn mean_score(r: &[EpisodeResult]) -> f64 {
    r.iter().map(|e| e.end.breakdown.task_score).sum::<f64>() / r.len() as f64
}

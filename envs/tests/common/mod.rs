//! Helpers shared by the integration tests.
#![allow(dead_code)]

use memrl_envs::env::{Env, ScriptedKind, Split, TaskId};
use memrl_envs::policy::ScriptedPolicy;
use memrl_envs::rollout::{EpisodeResult, run_episode};

/// A file of the data directory: `$MEMRL_DATA_DIR/<relative>`, else the `shared/data` beside
/// this checkout (tests run in the crate's folder, where `../shared/data` is not it).
pub fn data_file(relative: &str) -> String {
    let dir = std::env::var_os("MEMRL_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    dir.join(relative).display().to_string()
}

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

//! Rollouts: exact token contexts, generation requests, trajectories, and the environments an
//! RL step plays.

pub mod adapters;
pub mod context;
pub mod driver;

use std::sync::Arc;

use memrl_envs::Env;
use memrl_envs::env::{EnvError, Split, TaskId};
use memrl_envs::registry::build_env;
use memrl_envs::tokens::TokenCounter;

/// Builds the run's environment (by registry name and options) once per episode.
#[derive(Clone)]
pub struct EnvFactory {
    /// The environment's registry name (`env.name`).
    pub name: String,
    /// Its options (`env.options`), as JSON.
    pub options: serde_json::Value,
    /// Counts tokens as the policy's tokenizer does.
    pub counter: Arc<dyn TokenCounter>,
}

impl EnvFactory {
    /// A fresh environment.
    pub fn build(&self) -> Result<Box<dyn Env>, EnvError> {
        build_env(&self.name, self.options.clone(), self.counter.clone())
    }

    /// One fresh environment per play of each task (`group` plays per task, consecutively), each
    /// with its own episode seed derived from `seed`.
    pub fn episodes(&self, split: Split, tasks: &[u64], group: usize, seed: u64) -> Result<Vec<(Box<dyn Env>, TaskId, u64)>, EnvError> {
        let mut out = Vec::with_capacity(tasks.len() * group);
        for (i, &task) in tasks.iter().enumerate() {
            for g in 0..group {
                let env = self.build()?;
                let episode_seed = seed ^ ((i * group + g) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                out.push((env, TaskId { split, index: task }, episode_seed));
            }
        }
        Ok(out)
    }
}

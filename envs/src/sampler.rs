//! The task sampler, one for training and for `memrl env play`: a seeded sampler whose whole
//! state is a few integers, so a run resumes exactly.
//!
//! Tasks `0..n_tasks` are visited in a fresh permutation each epoch. The permutation of epoch `e`
//! is a Fisher–Yates shuffle driven by ChaCha8 seeded with `seed` on stream `e`, so it depends
//! only on `(seed, e)`: no RNG state needs saving. A batch may span an epoch boundary; the
//! state after it points into the new epoch (verl #7401: resuming at an epoch boundary must not
//! silently train zero steps). An unbounded synthetic split is sampled as its first
//! [`SYNTHETIC_POOL`] tasks ([`pool_size`]).

use crate::env::{Split, TaskId};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Tasks the sampler draws from for a split with no fixed size (the synthetic train splits).
pub const SYNTHETIC_POOL: usize = 100_000;

/// The number of tasks to sample from for a split of `count` tasks (`None`: unbounded, as
/// [`crate::env::Env::task_count`] says): all of them, or the first [`SYNTHETIC_POOL`].
pub fn pool_size(count: Option<u64>) -> usize {
    count.map_or(SYNTHETIC_POOL, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// Everything needed to continue sampling exactly where a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerState {
    /// Number of tasks in the pool.
    pub n_tasks: u64,
    /// Seed of the per-epoch permutations.
    pub seed: u64,
    /// Current epoch (0-based).
    pub epoch: u64,
    /// Position of the next task within the epoch's permutation.
    pub position: u64,
}

/// Errors from creating or restoring a sampler.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SamplerError {
    /// The pool is empty.
    #[error("cannot sample from an empty task pool")]
    Empty,
    /// A restored state does not fit the task pool.
    #[error("sampler state is for {state_tasks} tasks at position {position}, but the pool has {pool_tasks} tasks")]
    StateMismatch {
        /// Tasks in the saved state.
        state_tasks: u64,
        /// Position in the saved state.
        position: u64,
        /// Tasks in the current pool.
        pool_tasks: u64,
    },
}

/// Draws batches of task indices, epoch by epoch, deterministically from a seed.
#[derive(Debug, Clone)]
pub struct TaskSampler {
    state: SamplerState,
    permutation: Vec<usize>,
}

/// The visiting order of epoch `epoch`.
fn permutation(n_tasks: u64, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch);
    let mut order: Vec<usize> = (0..n_tasks as usize).collect();
    order.shuffle(&mut rng);
    order
}

impl TaskSampler {
    /// A sampler over `n_tasks` tasks starting at epoch 0.
    pub fn new(n_tasks: usize, seed: u64) -> Result<TaskSampler, SamplerError> {
        Self::from_state(SamplerState { n_tasks: n_tasks as u64, seed, epoch: 0, position: 0 })
    }

    /// Restores a sampler from saved state.
    pub fn from_state(state: SamplerState) -> Result<TaskSampler, SamplerError> {
        if state.n_tasks == 0 {
            return Err(SamplerError::Empty);
        }
        if state.position > state.n_tasks {
            return Err(SamplerError::StateMismatch { state_tasks: state.n_tasks, position: state.position, pool_tasks: state.n_tasks });
        }
        Ok(TaskSampler { permutation: permutation(state.n_tasks, state.seed, state.epoch), state })
    }

    /// Restores a sampler and checks it was saved for a pool of `pool_tasks` tasks.
    pub fn resume(state: SamplerState, pool_tasks: usize) -> Result<TaskSampler, SamplerError> {
        if state.n_tasks != pool_tasks as u64 {
            return Err(SamplerError::StateMismatch { state_tasks: state.n_tasks, position: state.position, pool_tasks: pool_tasks as u64 });
        }
        Self::from_state(state)
    }

    /// The state to save with a checkpoint.
    pub fn state(&self) -> SamplerState {
        self.state
    }

    /// The next task index.
    pub fn next_task(&mut self) -> usize {
        if self.state.position == self.state.n_tasks {
            self.state.epoch += 1;
            self.state.position = 0;
            self.permutation = permutation(self.state.n_tasks, self.state.seed, self.state.epoch);
        }
        let task = self.permutation[self.state.position as usize];
        self.state.position += 1;
        task
    }

    /// The next `batch_size` task indices (may cross into the next epoch).
    pub fn next_batch(&mut self, batch_size: usize) -> Vec<usize> {
        (0..batch_size).map(|_| self.next_task()).collect()
    }

    /// The next `batch_size` tasks of `split` (may cross into the next epoch).
    pub fn next_tasks(&mut self, split: Split, batch_size: usize) -> Vec<TaskId> {
        (0..batch_size).map(|_| TaskId { split, index: self.next_task() as u64 }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_is_a_permutation_and_epochs_differ() {
        let mut s = TaskSampler::new(10, 42).unwrap();
        let e0 = s.next_batch(10);
        let e1 = s.next_batch(10);
        for e in [&e0, &e1] {
            let mut sorted = e.clone();
            sorted.sort();
            assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(e0, e1);
        assert_eq!(s.state().epoch, 1);
    }

    #[test]
    fn resume_reproduces_the_stream_including_across_epoch_boundaries() {
        let mut full = TaskSampler::new(7, 3).unwrap();
        let reference: Vec<usize> = full.next_batch(30);
        // Stop at every point, including exactly at an epoch boundary (position == n_tasks).
        for stop in [0, 3, 7, 14, 20] {
            let mut a = TaskSampler::new(7, 3).unwrap();
            let mut got = a.next_batch(stop);
            let saved = serde_json::to_string(&a.state()).unwrap();
            let mut b = TaskSampler::resume(serde_json::from_str(&saved).unwrap(), 7).unwrap();
            got.extend(b.next_batch(30 - stop));
            assert_eq!(got, reference, "stopped after {stop}");
        }
    }

    #[test]
    fn bad_states_are_errors() {
        assert_eq!(TaskSampler::new(0, 1).unwrap_err(), SamplerError::Empty);
        let state = SamplerState { n_tasks: 5, seed: 0, epoch: 0, position: 2 };
        assert!(matches!(TaskSampler::resume(state, 6), Err(SamplerError::StateMismatch { pool_tasks: 6, .. })));
        let state = SamplerState { n_tasks: 5, seed: 0, epoch: 0, position: 9 };
        assert!(TaskSampler::from_state(state).is_err());
    }

    #[test]
    fn tasks_carry_the_split_and_unbounded_splits_use_the_synthetic_pool() {
        let mut a = TaskSampler::new(6, 9).unwrap();
        let indices = a.clone().next_batch(8);
        let tasks = a.next_tasks(Split::Validation, 8);
        assert!(tasks.iter().zip(&indices).all(|(t, &i)| t.split == Split::Validation && t.index == i as u64));
        assert_eq!(pool_size(Some(7)), 7);
        assert_eq!(pool_size(None), SYNTHETIC_POOL);
    }
}

//! Deterministic task sampling: the i-th task drawn from a split is a function of
//! (split, seed, i). Finite splits are walked in seeded random order, epoch after
//! epoch (a fresh permutation per epoch); unbounded synthetic splits map i to a
//! seed-scrambled index, so different sampler seeds see different tasks.

use crate::env::{Split, TaskId};
use crate::ledger::derive_seed;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Draws task ids from one split of an environment.
#[derive(Debug, Clone)]
pub struct TaskSampler {
    split: Split,
    count: Option<u64>,
    seed: u64,
    epoch: Option<(u64, Vec<u64>)>,
}

impl TaskSampler {
    /// A sampler over `count` tasks of `split` (`None` = unbounded, as `Env::task_count` says).
    pub fn new(split: Split, count: Option<u64>, seed: u64) -> Self {
        Self { split, count, seed, epoch: None }
    }

    /// The `i`-th task of the stream.
    pub fn task(&mut self, i: u64) -> Option<TaskId> {
        let index = match self.count {
            Some(0) => return None,
            None => derive_seed(&[self.seed, self.split.code(), i]) >> 16,
            Some(n) => {
                let epoch = i / n;
                if self.epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    let mut perm: Vec<u64> = (0..n).collect();
                    perm.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(&[self.seed, self.split.code(), epoch])));
                    self.epoch = Some((epoch, perm));
                }
                self.epoch.as_ref().map(|(_, p)| p[(i % n) as usize])?
            }
        };
        Some(TaskId { split: self.split, index })
    }

    /// The first `n` tasks of the stream.
    pub fn take(&mut self, n: u64) -> Vec<TaskId> {
        (0..n).filter_map(|i| self.task(i)).collect()
    }

    /// Every task of a finite split in index order (for evaluation); `None` if unbounded.
    pub fn all(split: Split, count: Option<u64>) -> Option<Vec<TaskId>> {
        count.map(|n| (0..n).map(|index| TaskId { split, index }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_epochs_are_permutations() {
        let mut s = TaskSampler::new(Split::Test, Some(5), 1);
        let a = s.take(10);
        let mut first: Vec<u64> = a[..5].iter().map(|t| t.index).collect();
        first.sort();
        assert_eq!(first, vec![0, 1, 2, 3, 4]);
        assert_eq!(TaskSampler::new(Split::Test, Some(5), 1).take(10), a);
        assert_ne!(TaskSampler::new(Split::Test, Some(5), 2).take(10), a);
        assert!(TaskSampler::new(Split::Test, Some(0), 1).take(3).is_empty());
    }

    #[test]
    fn unbounded_depends_on_seed() {
        let a = TaskSampler::new(Split::Train, None, 1).take(4);
        assert_eq!(a, TaskSampler::new(Split::Train, None, 1).take(4));
        assert_ne!(a, TaskSampler::new(Split::Train, None, 2).take(4));
    }
}

//! Splitting a step's segments into mini-batches (one optimizer step each) and packing a
//! mini-batch into micro-batches under a token budget (gradients accumulate across them).
//!
//! Both return indices into the caller's segment list and are deterministic: mini-batches come
//! from a seeded shuffle, micro-batches from first-fit-decreasing packing with ties broken by
//! index. To keep a mini-batch's loss exactly its aggregation (e.g. the token mean over the whole
//! mini-batch), compute the aggregation weights once over the mini-batch
//! ([`crate::loss_reference::aggregation_weights`]) and sum Σ w·ℓ over its micro-batches
//! ([`crate::loss_reference::policy_loss_with_weights`]).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Shuffles `0..n_segments` with `seed` and cuts it into `mini_batches` near-equal parts (the
/// first `n % mini_batches` parts get one extra). Empty parts are dropped, so fewer segments
/// than mini-batches gives one part per segment.
pub fn split_mini_batches(n_segments: usize, mini_batches: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n_segments).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let parts = mini_batches.max(1);
    let (base, extra) = (n_segments / parts, n_segments % parts);
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for p in 0..parts {
        let len = base + usize::from(p < extra);
        if len > 0 {
            out.push(order[start..start + len].to_vec());
        }
        start += len;
    }
    out
}

/// Packs the segments `members` (indices into `token_lengths`) into micro-batches whose total
/// tokens stay within `budget`, by first-fit decreasing. A segment longer than the budget gets a
/// micro-batch of its own (it cannot be split); see [`oversized`]. Each micro-batch lists its
/// indices in ascending order.
pub fn pack_micro_batches(members: &[usize], token_lengths: &[usize], budget: usize) -> Vec<Vec<usize>> {
    let mut order = members.to_vec();
    order.sort_by_key(|&i| (std::cmp::Reverse(token_lengths[i]), i));
    let mut bins: Vec<(usize, Vec<usize>)> = Vec::new();
    for i in order {
        let len = token_lengths[i];
        match bins.iter_mut().find(|(used, _)| used + len <= budget) {
            Some((used, items)) => {
                *used += len;
                items.push(i);
            }
            None => bins.push((len, vec![i])),
        }
    }
    bins.into_iter()
        .map(|(_, mut items)| {
            items.sort_unstable();
            items
        })
        .collect()
}

/// The members longer than `budget` (each trained alone, over budget).
pub fn oversized(members: &[usize], token_lengths: &[usize], budget: usize) -> Vec<usize> {
    members.iter().copied().filter(|&i| token_lengths[i] > budget).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mini_batches_partition_the_segments_deterministically() {
        let parts = split_mini_batches(10, 3, 5);
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 3, 3]);
        let mut all: Vec<usize> = parts.concat();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(parts, split_mini_batches(10, 3, 5));
        assert_ne!(parts, split_mini_batches(10, 3, 6));
        assert_eq!(split_mini_batches(2, 4, 0).len(), 2);
        assert!(split_mini_batches(0, 2, 0).is_empty());
    }

    #[test]
    fn first_fit_decreasing_respects_the_budget() {
        // Lengths 6, 5, 4, 3, 2 (indices 0..5) into budget 10:
        // 6 → bin A; 5 → bin B (6+5 > 10); 4 → A (10); 3 → B (8); 2 → B (10).
        let lengths = [6, 5, 4, 3, 2, 50];
        let bins = pack_micro_batches(&[0, 1, 2, 3, 4], &lengths, 10);
        assert_eq!(bins, vec![vec![0, 2], vec![1, 3, 4]]);
        // An oversized segment is alone.
        let bins = pack_micro_batches(&[5, 4], &lengths, 10);
        assert_eq!(bins, vec![vec![5], vec![4]]);
        assert_eq!(oversized(&[5, 4], &lengths, 10), vec![5]);
    }
}

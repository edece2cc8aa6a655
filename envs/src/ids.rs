//! Stable, deterministic ids for context records (`r…`) and memory entries (`m…`).

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// How ids are spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdStyle {
    /// `r1`, `r2`, … (readable, easy for small models).
    #[default]
    Sequential,
    /// Prefix plus 4 base32 characters drawn from the episode RNG (MemAct uses random
    /// 8-character ids, so the policy must copy rather than count).
    Random,
}

/// Lowercase Crockford base32 alphabet (no i, l, o, u).
const BASE32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Issues unique ids with one prefix, deterministically from a seed.
#[derive(Debug, Clone)]
pub struct IdGen {
    prefix: char,
    style: IdStyle,
    next: u64,
    rng: ChaCha8Rng,
    issued: HashSet<String>,
}

impl IdGen {
    /// A generator for ids starting with `prefix`, seeded for the random style.
    pub fn new(prefix: char, style: IdStyle, seed: u64) -> Self {
        Self { prefix, style, next: 1, rng: ChaCha8Rng::seed_from_u64(seed), issued: HashSet::new() }
    }

    /// The next unused id.
    pub fn next_id(&mut self) -> String {
        match self.style {
            IdStyle::Sequential => {
                let id = format!("{}{}", self.prefix, self.next);
                self.next += 1;
                id
            }
            IdStyle::Random => loop {
                let mut id = String::with_capacity(5);
                id.push(self.prefix);
                for _ in 0..4 {
                    id.push(BASE32[self.rng.random_range(0..32)] as char);
                }
                if self.issued.insert(id.clone()) {
                    return id;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_and_random_are_deterministic_and_unique() {
        let mut g = IdGen::new('r', IdStyle::Sequential, 0);
        assert_eq!((g.next_id(), g.next_id()), ("r1".to_string(), "r2".to_string()));
        let a: Vec<String> = {
            let mut g = IdGen::new('m', IdStyle::Random, 7);
            (0..500).map(|_| g.next_id()).collect()
        };
        let b: Vec<String> = {
            let mut g = IdGen::new('m', IdStyle::Random, 7);
            (0..500).map(|_| g.next_id()).collect()
        };
        assert_eq!(a, b);
        assert_eq!(a.iter().collect::<HashSet<_>>().len(), 500);
        assert!(a.iter().all(|id| id.len() == 5 && id.starts_with('m')));
    }
}

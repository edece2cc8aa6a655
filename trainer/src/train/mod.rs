//! `memrl train`: the RL loop (and SFT warm start) from a config to a run directory.

pub mod collect;

//! `memrl train`: the RL loop (and SFT warm start) from a config to a run directory.

pub mod backend;
pub mod checks;
pub mod echo;
pub mod policy;
pub mod resume;
pub mod run;
pub mod sft;
pub mod state;

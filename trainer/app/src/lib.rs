//! The memrl application: the `memrl` CLI, the typed TOML config, the training run loop and
//! its run directory, SFT, evaluation, sweeps, plots, benches and the rollout store. The RL
//! algorithm itself (rollouts, segments, advantages, losses, the learner, one RL step) is the
//! `memrl-rl` crate.

pub mod cli;
pub mod config;
pub mod eval;
pub mod malloc;
pub mod metrics;
pub mod plots;
pub mod rollout_store;
pub mod run_dir;
pub mod sweep;
pub mod train;

//! The trainer: rollout workers, DCPO trajectory segments, advantage estimators, losses,
//! the learner loop, SFT, evaluation, sweeps, configuration, and the `memrl` CLI.

pub mod cli;
pub mod eval;
pub mod rollout;
pub mod advantage;
pub mod config;
pub mod loss_reference;
pub mod malloc;
pub mod metrics;
pub mod plots;
pub mod rollout_store;
pub mod run_dir;
pub mod sampler;
pub mod schedule;
pub mod segments;
pub mod sweep;
pub mod batching;
pub mod learner;
pub mod train;

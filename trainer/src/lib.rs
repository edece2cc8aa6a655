//! The trainer: rollout workers, DCPO trajectory segments, advantage estimators, losses,
//! the learner loop, SFT, evaluation, sweeps, configuration, and the `memrl` CLI.

pub mod cli;
pub mod rollout;

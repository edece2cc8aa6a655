//! Rollouts: exact token contexts, generation requests, trajectories.

pub mod context;
pub mod driver;

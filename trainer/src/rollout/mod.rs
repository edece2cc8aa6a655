//! Rollouts: exact token contexts, generation requests, trajectories.

pub mod adapters;
pub mod context;
pub mod driver;

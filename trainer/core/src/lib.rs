//! The RL core of memrl: rollouts over exact token contexts, DCPO trajectory segments, advantage
//! estimators, the policy loss (f64 reference and tensor), the learner, the
//! learning-rate schedule, and [`step::rl_step`], one RL step on one screen.
//!
//! It joins `memrl-envs` (text) and `memrl-policies` (tokens and tensors) and knows nothing of
//! the command line, files or plots: the application crate (`memrl-trainer`) owns those.

pub mod advantage;
pub mod collect;
pub mod learner;
pub mod loss;
pub mod metrics;
pub mod policy;
pub mod rollout;
pub mod schedule;
pub mod segments;
pub mod stats;
pub mod step;

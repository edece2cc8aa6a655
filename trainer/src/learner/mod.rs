//! The learner: segments packed into micro-batches, log-probs on the policy's backend, the
//! policy loss, gradient accumulation and the optimiser step.

pub mod batch;
pub mod loss;
pub mod update;

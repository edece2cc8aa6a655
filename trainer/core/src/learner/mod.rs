//! The learner: segments batched into micro-batches ([`batch`]), log-probs and the policy loss
//! on the policy's backend ([`crate::loss::tensor`]), gradient accumulation, clipping and the
//! optimiser step ([`update`]).

pub mod batch;
pub mod critic;
pub mod update;

#[cfg(test)]
mod tests;

//! The AdamW update of one tensor over host slices: the precomputed scalars and the fused
//! elementwise kernel. A leaf module: the backends' `adamw_update` runs it, and the optimizer
//! (`crate::train::optim`, which computes the scalars from its config) calls the backends.

use rayon::prelude::*;

/// The scalars of one AdamW update of one tensor, precomputed in f64 on the host (as PyTorch
/// computes them in Python floats) and applied elementwise in f32 by [`adamw_kernel`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWScalars {
    /// Multiplies the gradient first (gradient clipping and accumulation scaling, folded in).
    pub grad_scale: f32,
    /// `1 - lr * weight_decay`.
    pub decay_factor: f32,
    /// `1 - beta1` (the `lerp` weight of the first moment), computed in f64.
    pub one_minus_beta1: f32,
    /// `beta2`.
    pub beta2: f32,
    /// `1 - beta2`, computed in f64.
    pub one_minus_beta2: f32,
    /// `lr / (1 - beta1^step)`.
    pub step_size: f32,
    /// `sqrt(1 - beta2^step)`.
    pub bias_correction2_sqrt: f32,
    /// `eps`.
    pub eps: f32,
}

/// The fused AdamW update over host slices, in PyTorch's order of operations
/// (`_single_tensor_adam` with decoupled decay): decay, `exp_avg.lerp_(g, 1 - β1)`,
/// `exp_avg_sq = β2·exp_avg_sq + (1 - β2)·g²`, then
/// `param -= step_size · exp_avg / (sqrt(exp_avg_sq) / sqrt(bc2) + eps)`.
/// Runs in parallel over chunks (rayon). Slices must have equal lengths.
pub fn adamw_kernel(param: &mut [f32], grad: &[f32], exp_avg: &mut [f32], exp_avg_sq: &mut [f32], s: &AdamWScalars) {
    assert!(grad.len() == param.len() && exp_avg.len() == param.len() && exp_avg_sq.len() == param.len(), "adamw_kernel: slice lengths differ");
    // Large enough that the per-task overhead is negligible, small enough to balance 2–64 threads.
    const CHUNK: usize = 1 << 15;
    let s = *s;
    let (one_minus_b1, one_minus_b2) = (s.one_minus_beta1, s.one_minus_beta2);
    param.par_chunks_mut(CHUNK).zip(grad.par_chunks(CHUNK)).zip(exp_avg.par_chunks_mut(CHUNK)).zip(exp_avg_sq.par_chunks_mut(CHUNK)).for_each(
        |(((p, g), m), v)| {
            for i in 0..p.len() {
                let g = g[i] * s.grad_scale;
                let mut pi = p[i] * s.decay_factor;
                let mi = m[i] + one_minus_b1 * (g - m[i]);
                let vi = v[i] * s.beta2 + one_minus_b2 * g * g;
                let denom = vi.sqrt() / s.bias_correction2_sqrt + s.eps;
                pi -= s.step_size * (mi / denom);
                p[i] = pi;
                m[i] = mi;
                v[i] = vi;
            }
        },
    );
}

//! PPO's value loss (the critic's), PPO2-style clipped, as an f64 oracle and on the model's
//! backend (differentiable through the new values), tested against each other.
//!
//! Per masked token t, with new value V, old value V_old (before the update), return G and
//! clip range ε_v:
//! - unclipped u = (V − G)²
//! - clipped c = (V_old + clip(V − V_old, −ε_v, ε_v) − G)²
//! - ℓ_t = ½·max(u, c) (OpenAI baselines' `ppo2`, verl's `compute_value_loss`); with ε_v = 0
//!   the clip is off and ℓ_t = ½·u
//!
//! The per-token losses are aggregated with the policy loss's weights (one mini-batch's
//! [`crate::learner::batch::mini_batch_weights`]), so a mini-batch's value loss is the sum of
//! its micro-batches' and agrees with the policy loss on what a token weighs.

use memrl_policies::backend::Backend;

/// The value loss's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueLossConfig {
    /// Coefficient of the value loss in the total loss (shared trunk: one backward for both).
    pub vf_coef: f64,
    /// ε_v: the new value may move at most this far from the old one before the clipped term
    /// binds (0: no clipping).
    pub value_clip: f64,
}

/// The value loss of a batch of tokens and its statistics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ValueLossOutput {
    /// Σ_t w_t·ℓ_t (before `vf_coef`).
    pub loss: f64,
    /// Masked tokens where the clipped term is the larger (the clip binds).
    pub clipped_tokens: usize,
    /// Masked tokens.
    pub tokens: usize,
}

/// The f64 value loss over aligned per-token `values`, `old_values`, `returns`, `mask` and
/// aggregation `weights` (the oracle [`value_loss_tensor`] is checked against).
pub fn value_loss(values: &[f64], old_values: &[f64], returns: &[f64], mask: &[u8], weights: &[f64], value_clip: f64) -> ValueLossOutput {
    let mut out = ValueLossOutput::default();
    for t in 0..values.len() {
        if mask[t] == 0 {
            continue;
        }
        let (v, old, g) = (values[t], old_values[t], returns[t]);
        let unclipped = (v - g).powi(2);
        let clipped = if value_clip > 0.0 { (old + (v - old).clamp(-value_clip, value_clip) - g).powi(2) } else { unclipped };
        out.tokens += 1;
        out.clipped_tokens += usize::from(clipped > unclipped);
        out.loss += weights[t] * 0.5 * unclipped.max(clipped);
    }
    out
}

/// The value loss as a differentiable scalar tensor (`[1]`) of the new `values` (`[n]`), with
/// the constants (`old_values`, `returns`, `mask`, `weights`) from the host; and the oracle's
/// output on `host_values` (the values of `values`), which carries the statistics.
#[allow(clippy::too_many_arguments)]
pub fn value_loss_tensor<B: Backend>(
    b: &B,
    values: B::Tensor,
    host_values: &[f64],
    old_values: &[f64],
    returns: &[f64],
    mask: &[u8],
    weights: &[f64],
    value_clip: f64,
) -> (B::Tensor, ValueLossOutput) {
    let reference = value_loss(host_values, old_values, returns, mask, weights, value_clip);
    let n = host_values.len();
    let constant = |v: &[f64]| b.tensor(v.iter().map(|&x| x as f32).collect(), &[n]);
    let square = |t: B::Tensor| b.mul(t.clone(), t);
    let ret = constant(returns);
    let mut per_token = square(b.sub(values.clone(), ret.clone()));
    if value_clip > 0.0 {
        let old = constant(old_values);
        let moved = b.clamp(b.sub(values, old.clone()), -value_clip as f32, value_clip as f32);
        let clipped = square(b.sub(b.add(old, moved), ret));
        let neg = |t| b.mul_scalar(t, -1.0);
        per_token = neg(b.minimum(neg(per_token), neg(clipped)));
    }
    let w: Vec<f64> = weights.iter().zip(mask).map(|(&w, &m)| if m != 0 { 0.5 * w } else { 0.0 }).collect();
    (b.sum_all(b.mul(per_token, constant(&w))), reference)
}

/// 1 − Var(G − V) / Var(G) over the masked tokens (population variances): how much of the
/// returns' variance the values explain (1: all, 0: none better than their mean, < 0: worse).
/// 0 when the returns do not vary (nothing to explain) or no token is masked.
pub fn explained_variance(values: &[f64], returns: &[f64], mask: &[u8]) -> f64 {
    let picked: Vec<(f64, f64)> = values.iter().zip(returns).zip(mask).filter(|(_, m)| **m != 0).map(|((&v, &g), _)| (v, g)).collect();
    let g: Vec<f64> = picked.iter().map(|p| p.1).collect();
    let residual: Vec<f64> = picked.iter().map(|(v, g)| g - v).collect();
    let (_, g_std) = crate::stats::mean_std(&g);
    if picked.is_empty() || g_std == 0.0 {
        return 0.0;
    }
    let (_, r_std) = crate::stats::mean_std(&residual);
    1.0 - r_std.powi(2) / g_std.powi(2)
}

#[cfg(test)]
mod tests {
    use memrl_policies::backend::burn_flex::BurnBackend;

    use super::*;

    #[test]
    fn clipped_value_loss_hand_computed() {
        // ε_v = 0.2, token-mean weights over the 3 masked tokens (1/3 each).
        // t0: V 0.5, V_old 0.0, G 1.0: u = 0.25; V clipped to 0.2: c = 0.64 → ℓ = ½·0.64 = 0.32 (clip binds)
        // t1: V 0.1, V_old 0.0, G 1.0: u = 0.81; within the clip: c = u → ℓ = 0.405
        // t2: V 0.9, V_old 0.5, G 0.0: u = 0.81; clipped to 0.7: c = 0.49 → ℓ = ½·0.81 = 0.405
        // t3 masked.
        let values = [0.5, 0.1, 0.9, 7.0];
        let old = [0.0, 0.0, 0.5, 0.0];
        let returns = [1.0, 1.0, 0.0, 0.0];
        let mask = [1, 1, 1, 0];
        let w = [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 0.0];
        let out = value_loss(&values, &old, &returns, &mask, &w, 0.2);
        assert!((out.loss - (0.32 + 0.405 + 0.405) / 3.0).abs() < 1e-12, "{}", out.loss);
        assert_eq!((out.clipped_tokens, out.tokens), (1, 3));
        // Without the clip: ½·(0.25 + 0.81 + 0.81) / 3.
        let off = value_loss(&values, &old, &returns, &mask, &w, 0.0);
        assert!((off.loss - 0.5 * 1.87 / 3.0).abs() < 1e-12);
        assert_eq!(off.clipped_tokens, 0);

        // The tensor loss: same value; gradient ½·2·(V − G)·w where the unclipped term is the
        // max, 0 where the clipped one is (it does not depend on V beyond the clip).
        let b = BurnBackend::flex_autodiff();
        let v = b.param(values.iter().map(|&x| x as f32).collect(), &[4]);
        let (loss, host) = value_loss_tensor(&b, v.clone(), &values, &old, &returns, &mask, &w, 0.2);
        assert_eq!(host, out);
        assert!((b.to_vec(&loss)[0] as f64 - out.loss).abs() < 1e-6);
        let grads = b.backward(&loss);
        let g = b.to_vec(&b.grad(&grads, &v).unwrap());
        let expected = [0.0, (0.1 - 1.0) / 3.0, 0.9 / 3.0, 0.0];
        for (x, e) in g.iter().zip(expected) {
            assert!((*x as f64 - e).abs() < 1e-6, "{g:?} vs {expected:?}");
        }
    }

    #[test]
    fn explained_variance_hand_computed() {
        // G = [0, 1, 2, 3] (var 1.25); V = G: all explained; V = mean: none; masked tokens ignored.
        let g = [0.0, 1.0, 2.0, 3.0, 99.0];
        let mask = [1, 1, 1, 1, 0];
        assert!((explained_variance(&[0.0, 1.0, 2.0, 3.0, 0.0], &g, &mask) - 1.0).abs() < 1e-12);
        assert!(explained_variance(&[1.5; 5], &g, &mask).abs() < 1e-12);
        // V = G − [1, −1, 1, −1] (residual var 1): 1 − 1/1.25 = 0.2.
        assert!((explained_variance(&[-1.0, 2.0, 1.0, 4.0, 0.0], &g, &mask) - 0.2).abs() < 1e-12);
        assert_eq!(explained_variance(&[0.0; 2], &[1.0; 2], &[1, 1]), 0.0);
    }
}

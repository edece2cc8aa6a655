//! The policy loss as a pure f64 oracle, with its analytical gradient (the formulas are in the
//! [`super`] module's documentation). The tensor version ([`super::tensor`]) is tested against it.

use super::{KlEstimator, LossBatch, LossConfig, LossDiagnostics, LossError, LossOutput, aggregation_weights, check_inputs};

/// Value and derivative (w.r.t. new log-prob) of one token's clipped surrogate, plus which clips bind.
struct Surrogate {
    value: f64,
    grad: f64,
    clipped_low: bool,
    clipped_high: bool,
    dual_clipped: bool,
}

fn clipped_surrogate(new: f64, old: f64, advantage: f64, config: &LossConfig) -> Surrogate {
    let log_ratio = new - old;
    let clamped = log_ratio.clamp(-20.0, 20.0);
    let ratio = clamped.exp();
    // dρ/dnew: the clamp passes gradient only inside [-20, 20] (inclusive, like torch.clamp).
    let d_ratio = if (-20.0..=20.0).contains(&log_ratio) { ratio } else { 0.0 };
    let (lo, hi) = (1.0 - config.clip_low, 1.0 + config.clip_high);
    let unclipped = -advantage * ratio;
    let clipped = -advantage * ratio.clamp(lo, hi);
    // max(unclipped, clipped): the clipped branch wins only when the ratio is outside [lo, hi]
    // on the side the advantage pushes toward, and then its gradient is 0.
    let clip_binds = clipped > unclipped;
    let (mut value, mut grad) = if clip_binds { (clipped, 0.0) } else { (unclipped, -advantage * d_ratio) };
    let mut dual_clipped = false;
    if let Some(c) = config.dual_clip
        && advantage < 0.0
    {
        let bound = -c * advantage;
        if value > bound {
            value = bound;
            grad = 0.0;
            dual_clipped = true;
        }
    }
    Surrogate { value, grad, clipped_low: clip_binds && advantage < 0.0, clipped_high: clip_binds && advantage > 0.0, dual_clipped }
}

/// Value and derivative (w.r.t. new log-prob) of one token's KL estimate.
fn kl_term(new: f64, reference: f64, estimator: KlEstimator) -> (f64, f64) {
    match estimator {
        KlEstimator::K1 => (new - reference, 1.0),
        KlEstimator::K3 => {
            let delta_raw = reference - new;
            let delta = delta_raw.clamp(-20.0, 20.0);
            let kl_raw = delta.exp() - delta - 1.0;
            let kl = kl_raw.clamp(-10.0, 10.0);
            let passes = (-20.0..=20.0).contains(&delta_raw) && (-10.0..=10.0).contains(&kl_raw);
            // d/dnew (e^Δ − Δ − 1) with Δ = ref − new: (e^Δ − 1)·(−1).
            (kl, if passes { 1.0 - delta.exp() } else { 0.0 })
        }
    }
}

/// Computes the loss, its gradient w.r.t. `new_logprobs`, and diagnostics, aggregating with
/// `config.aggregation` (and `config.segment_weighting`) over this batch.
pub fn policy_loss(batch: &LossBatch, config: &LossConfig) -> Result<LossOutput, LossError> {
    policy_loss_with_weights(batch, config, aggregation_weights(config, batch))
}

/// Like [`policy_loss`] but with given per-token aggregation weights (`config.aggregation` and
/// `config.segment_weighting` are ignored). Use it for a micro-batch of a larger mini-batch: compute [`aggregation_weights`]
/// over the mini-batch once and pass each micro-batch its slice, so the micro-batch losses (and
/// gradients) sum to the mini-batch's. Diagnostics stay token means over this batch.
pub fn policy_loss_with_weights(batch: &LossBatch, config: &LossConfig, weights: Vec<f64>) -> Result<LossOutput, LossError> {
    config.validate()?;
    check_inputs(batch, config)?;
    let n = batch.new_logprobs.len();
    if weights.len() != n {
        return Err(LossError::LengthMismatch { field: "weights", got: weights.len(), expected: n });
    }
    if let Some((index, &value)) = weights.iter().enumerate().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
        return Err(LossError::NonFinite { field: "weights", index, value });
    }
    let have_ref = !batch.ref_logprobs.is_empty();
    let have_entropy = !batch.entropy.is_empty();

    let mut per_token_loss = vec![0.0; n];
    let mut grad = vec![0.0; n];
    let (mut pg_loss, mut kl_loss, mut entropy_loss) = (0.0, 0.0, 0.0);
    let mut sums = [0.0f64; 8]; // clip low, clip high, dual, approx kl, ref kl, entropy, tis w, tis capped
    let mut abs_diff = 0.0;
    let mut tokens = 0usize;
    for t in 0..n {
        if batch.mask[t] == 0 {
            continue;
        }
        tokens += 1;
        let (new, old, adv) = (batch.new_logprobs[t], batch.old_logprobs[t], batch.advantages[t]);
        let s = clipped_surrogate(new, old, adv, config);
        let (tis, capped) = match config.tis_cap {
            Some(cap) => {
                let w = (old - batch.rollout_logprobs[t]).clamp(-20.0, 20.0).exp();
                if w >= cap { (cap, true) } else { (w, false) }
            }
            None => (1.0, false),
        };
        let (kl, d_kl) = if have_ref { kl_term(new, batch.ref_logprobs[t], config.kl_estimator) } else { (0.0, 0.0) };
        let entropy = if have_entropy { batch.entropy[t] } else { 0.0 };
        per_token_loss[t] = tis * s.value + config.kl_coef * kl - config.entropy_coef * entropy;
        grad[t] = weights[t] * (tis * s.grad + config.kl_coef * d_kl);
        pg_loss += weights[t] * tis * s.value;
        kl_loss += weights[t] * kl;
        entropy_loss += weights[t] * entropy;
        let flags = [s.clipped_low, s.clipped_high, s.dual_clipped];
        for (sum, flag) in sums.iter_mut().zip(flags) {
            *sum += f64::from(u8::from(flag));
        }
        sums[3] += old - new;
        sums[4] += kl;
        sums[5] += entropy;
        sums[6] += tis;
        sums[7] += f64::from(u8::from(capped));
        abs_diff += (old - batch.rollout_logprobs[t]).clamp(-20.0, 20.0).abs();
    }
    let mean = |x: f64| if tokens == 0 { 0.0 } else { x / tokens as f64 };
    let loss = pg_loss + config.kl_coef * kl_loss - config.entropy_coef * entropy_loss;
    Ok(LossOutput {
        loss,
        grad_new_logprobs: grad,
        per_token_loss,
        weights,
        diagnostics: LossDiagnostics {
            pg_loss,
            kl_loss,
            entropy_loss,
            clip_frac_low: mean(sums[0]),
            clip_frac_high: mean(sums[1]),
            dual_clip_frac: mean(sums[2]),
            approx_kl: mean(sums[3]),
            ref_kl: have_ref.then(|| mean(sums[4])),
            entropy_mean: have_entropy.then(|| mean(sums[5])),
            tis_weight_mean: if tokens == 0 { 1.0 } else { mean(sums[6]) },
            tis_capped_frac: mean(sums[7]),
            rollout_logprob_abs_diff: mean(abs_diff),
            tokens,
        },
    })
}

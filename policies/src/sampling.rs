//! Turning one row of logits into a token, with the log-probabilities the RL learner needs.
//!
//! Order of operations (as transformers' `generate`): temperature, then top-k, then top-p.
//! Two log-probabilities are reported for the chosen token:
//! - **`sampled_logprob`**: log-probability under the distribution actually sampled from:
//!   `softmax(logits / T)` restricted to the top-k and then the top-p (nucleus) set, renormalised.
//!   With greedy decoding (`T = 0`) that distribution is a point mass, so it is `0.0`.
//! - **`policy_logprob`**: the raw policy's `log_softmax(logits)[token]` at `T = 1` with no
//!   truncation: what the learner recomputes as `log π(token | context)`.

use rand::Rng;

use crate::error::{PolicyError, Result};

/// How to pick tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; `0.0` means greedy (argmax).
    pub temperature: f32,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p` (`1.0` = off).
    pub top_p: f32,
    /// Keep only the `top_k` most likely tokens (`0` = off).
    pub top_k: usize,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams { temperature: 1.0, top_p: 1.0, top_k: 0 }
    }
}

impl SamplingParams {
    /// Greedy decoding.
    pub fn greedy() -> SamplingParams {
        SamplingParams { temperature: 0.0, top_p: 1.0, top_k: 0 }
    }

    /// Rejects settings that have no meaning (negative temperature, top_p outside (0, 1]).
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0) || !self.temperature.is_finite() {
            return Err(PolicyError::InvalidRequest(format!("temperature must be ≥ 0, got {}", self.temperature)));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(PolicyError::InvalidRequest(format!("top_p must be in (0, 1], got {}", self.top_p)));
        }
        Ok(())
    }
}

/// A chosen token and its two log-probabilities (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampled {
    /// The token id.
    pub token: u32,
    /// Log-probability under the distribution sampled from.
    pub sampled_logprob: f32,
    /// Log-probability under the untempered, untruncated policy.
    pub policy_logprob: f32,
}

/// `log_softmax(logits)[token]`, computed stably.
pub fn log_softmax_at(logits: &[f32], token: usize) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    (logits[token] - max) - sum.ln() as f32
}

/// Index of the largest logit (the first one on ties, like `torch.argmax`).
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best
}

/// Candidates `(token, scaled logit)` sorted by descending logit, truncated by top-k and top-p;
/// returns them with their renormalised probabilities.
fn truncated_distribution(logits: &[f32], params: &SamplingParams) -> (Vec<u32>, Vec<f64>) {
    let inv_t = 1.0 / params.temperature as f64;
    let v = logits.len();
    let k_limit = if params.top_k == 0 { v } else { params.top_k.min(v) };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    // Unnormalised probabilities of the whole vocabulary (needed for top-p's mass).
    let weights: Vec<f64> = logits.iter().map(|&l| ((l as f64 - max) * inv_t).exp()).collect();
    let order_desc = |a: &u32, b: &u32| weights[*b as usize].partial_cmp(&weights[*a as usize]).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(b));
    // Sort only as many candidates as needed: grow the sorted prefix until it holds top-k
    // tokens or top-p mass (a full sort of a 50k vocabulary per token would dominate decode).
    let mut ids: Vec<u32> = (0..v as u32).collect();
    let mut prefix = 64.min(k_limit);
    let total: f64 = if k_limit < v {
        // Mass over the top-k set only: select it first.
        if k_limit < v {
            ids.select_nth_unstable_by(k_limit - 1, order_desc);
            ids.truncate(k_limit);
        }
        ids.iter().map(|&i| weights[i as usize]).sum()
    } else {
        weights.iter().sum()
    };
    loop {
        let n = ids.len();
        if prefix < n {
            ids.select_nth_unstable_by(prefix - 1, order_desc);
        }
        let mut head: Vec<u32> = ids[..prefix.min(n)].to_vec();
        head.sort_unstable_by(order_desc);
        let mut cum = 0.0;
        let mut keep = head.len();
        if params.top_p < 1.0 {
            for (j, &i) in head.iter().enumerate() {
                cum += weights[i as usize] / total;
                if cum >= params.top_p as f64 {
                    keep = j + 1;
                    break;
                }
            }
        }
        let reached = params.top_p < 1.0 && cum >= params.top_p as f64;
        if reached || prefix >= n {
            head.truncate(keep);
            let mass: f64 = head.iter().map(|&i| weights[i as usize]).sum();
            let probs = head.iter().map(|&i| weights[i as usize] / mass).collect();
            return (head, probs);
        }
        prefix = (prefix * 8).min(n);
    }
}

/// Picks a token from one row of logits.
pub fn sample_row<R: Rng>(logits: &[f32], params: &SamplingParams, rng: &mut R) -> Sampled {
    if params.temperature == 0.0 {
        let token = argmax(logits);
        return Sampled { token: token as u32, sampled_logprob: 0.0, policy_logprob: log_softmax_at(logits, token) };
    }
    let (ids, probs) = if params.top_k == 0 && params.top_p >= 1.0 {
        // Plain softmax sampling: no ordering needed.
        let inv_t = 1.0 / params.temperature as f64;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let w: Vec<f64> = logits.iter().map(|&l| ((l as f64 - max) * inv_t).exp()).collect();
        let total: f64 = w.iter().sum();
        ((0..logits.len() as u32).collect::<Vec<_>>(), w.into_iter().map(|x| x / total).collect::<Vec<_>>())
    } else {
        truncated_distribution(logits, params)
    };
    let u: f64 = rng.random::<f64>();
    let mut cum = 0.0;
    let mut pick = ids.len() - 1;
    for (j, p) in probs.iter().enumerate() {
        cum += p;
        if u < cum {
            pick = j;
            break;
        }
    }
    let token = ids[pick];
    Sampled { token, sampled_logprob: probs[pick].ln() as f32, policy_logprob: log_softmax_at(logits, token as usize) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn greedy_takes_argmax_and_reports_policy_logprob() {
        let logits = [1.0, 3.0, 2.0];
        let s = sample_row(&logits, &SamplingParams::greedy(), &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(s.token, 1);
        assert_eq!(s.sampled_logprob, 0.0);
        let z: f32 = logits.iter().map(|l: &f32| l.exp()).sum();
        assert!((s.policy_logprob - (3.0f32.exp() / z).ln()).abs() < 1e-6);
    }

    #[test]
    fn top_k_one_is_greedy_with_zero_logprob() {
        let p = SamplingParams { temperature: 0.7, top_p: 1.0, top_k: 1 };
        let s = sample_row(&[0.5, 0.1, 2.0, -1.0], &p, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(s.token, 2);
        assert!(s.sampled_logprob.abs() < 1e-6);
    }

    #[test]
    fn top_p_keeps_the_smallest_nucleus() {
        // probs ∝ [0.5, 0.3, 0.15, 0.05]; top_p 0.7 keeps {0, 1} renormalised to [0.625, 0.375].
        let logits: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
        let p = SamplingParams { temperature: 1.0, top_p: 0.7, top_k: 0 };
        let (ids, probs) = truncated_distribution(&logits, &p);
        assert_eq!(ids, vec![0, 1]);
        assert!((probs[0] - 0.625).abs() < 1e-6 && (probs[1] - 0.375).abs() < 1e-6, "{probs:?}");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..200 {
            let s = sample_row(&logits, &p, &mut rng);
            assert!(s.token < 2);
            let want = if s.token == 0 { 0.625f32.ln() } else { 0.375f32.ln() };
            assert!((s.sampled_logprob - want).abs() < 1e-5);
        }
    }

    #[test]
    fn nucleus_search_grows_past_the_first_prefix() {
        // A flat distribution over 1000 tokens: top_p 0.5 needs 500 candidates (> 64 first tried).
        let logits = vec![0.0f32; 1000];
        let p = SamplingParams { temperature: 1.0, top_p: 0.5, top_k: 0 };
        let (ids, probs) = truncated_distribution(&logits, &p);
        assert_eq!(ids.len(), 500);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn temperature_changes_sampled_but_not_policy_logprob() {
        let logits = [1.0f32, 0.0];
        let hot = SamplingParams { temperature: 2.0, ..Default::default() };
        let s = sample_row(&logits, &hot, &mut ChaCha8Rng::seed_from_u64(5));
        let p_t: f64 = if s.token == 0 { 1.0 / (1.0 + (-0.5f64).exp()) } else { 1.0 / (1.0 + 0.5f64.exp()) };
        assert!((s.sampled_logprob as f64 - p_t.ln()).abs() < 1e-6);
        assert!((s.policy_logprob - log_softmax_at(&logits, s.token as usize)).abs() < 1e-7);
    }

    #[test]
    fn frequencies_follow_the_distribution_and_seed_is_reproducible() {
        let logits: Vec<f32> = [0.7f32, 0.2, 0.1].iter().map(|p| p.ln()).collect();
        let p = SamplingParams::default();
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..4000).map(|_| sample_row(&logits, &p, &mut rng).token).collect::<Vec<_>>()
        };
        let a = draw(9);
        assert_eq!(a, draw(9));
        let f0 = a.iter().filter(|&&t| t == 0).count() as f64 / 4000.0;
        assert!((f0 - 0.7).abs() < 0.03, "{f0}");
    }

    #[test]
    fn invalid_settings_are_rejected() {
        assert!(SamplingParams { temperature: -1.0, ..Default::default() }.validate().is_err());
        assert!(SamplingParams { top_p: 0.0, ..Default::default() }.validate().is_err());
        assert!(SamplingParams { top_p: 1.5, ..Default::default() }.validate().is_err());
        assert!(SamplingParams::greedy().validate().is_ok());
    }
}

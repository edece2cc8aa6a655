//! AdamW with PyTorch's semantics (`torch.optim.AdamW`, `amsgrad=False`): decoupled weight
//! decay, bias-corrected first and second moments, `eps` added after the bias-corrected square
//! root. State (per parameter: step, `exp_avg`, `exp_avg_sq`) lives on the backend between steps
//! and is exported to the host only for checkpoints ([`AdamW::state`] / [`AdamW::load_state`]).
//!
//! The per-tensor update is one backend operation ([`Backend::adamw_update`]) so a backend can
//! fuse it into a single pass over parameter, gradient and moments; burn-flex does so in place.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
pub use crate::backend::adamw::{AdamWScalars, adamw_kernel};
use crate::model::Llama;
use crate::train::error::{Result, TrainError};
use crate::train::grads::ModelGrads;
use crate::train::params::TrainBackend;

/// AdamW hyper-parameters (the learning rate is passed to every [`AdamW::step`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Decay of the first moment (PyTorch `betas[0]`).
    pub beta1: f64,
    /// Decay of the second moment (PyTorch `betas[1]`).
    pub beta2: f64,
    /// Added to the bias-corrected root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay: each step multiplies the parameter by `1 - lr * weight_decay`.
    pub weight_decay: f64,
    /// Parameters whose HF name contains any of these substrings get no weight decay (e.g.
    /// `["norm", "bias"]` as Hugging Face's Trainer does). Empty: decay everything, as PyTorch.
    pub no_decay: Vec<String>,
}

impl Default for AdamWConfig {
    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, no_decay: vec![] }
    }
}

impl AdamWConfig {
    /// Checks ranges: betas in `[0, 1)`, eps > 0, weight decay ≥ 0, all finite.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::config("AdamW", m));
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return bad(format!("{name} must be in [0, 1), got {b}"));
            }
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return bad(format!("eps must be positive and finite, got {}", self.eps));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(format!("weight_decay must be ≥ 0 and finite, got {}", self.weight_decay));
        }
        Ok(())
    }
}

impl AdamWScalars {
    /// The scalars for a parameter's `step`-th update (1-based) at learning rate `lr`.
    pub fn new(config: &AdamWConfig, lr: f64, step: u64, decay: bool, grad_scale: f64) -> AdamWScalars {
        let step = step as i32;
        let wd = if decay { config.weight_decay } else { 0.0 };
        AdamWScalars {
            grad_scale: grad_scale as f32,
            decay_factor: (1.0 - lr * wd) as f32,
            one_minus_beta1: (1.0 - config.beta1) as f32,
            beta2: config.beta2 as f32,
            one_minus_beta2: (1.0 - config.beta2) as f32,
            step_size: (lr / (1.0 - config.beta1.powi(step))) as f32,
            bias_correction2_sqrt: (1.0 - config.beta2.powi(step)).sqrt() as f32,
            eps: config.eps as f32,
        }
    }
}

/// One parameter's moments on the backend.
struct ParamState<T> {
    /// Updates applied to this parameter so far.
    step: u64,
    exp_avg: T,
    exp_avg_sq: T,
}

/// One parameter's moments on the host (for checkpoints).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamMoments {
    /// Updates applied to this parameter so far (PyTorch keeps one step count per parameter).
    pub step: u64,
    /// The parameter's shape as the model stores it.
    pub shape: Vec<usize>,
    /// First moment.
    pub exp_avg: Vec<f32>,
    /// Second moment.
    pub exp_avg_sq: Vec<f32>,
}

/// The optimizer's whole state on the host, keyed by trainable-parameter name.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamWState {
    /// Optimizer steps taken.
    pub step: u64,
    /// Hyper-parameters in force.
    pub config: AdamWConfig,
    /// Per-parameter moments (parameters never updated are absent).
    pub params: BTreeMap<String, ParamMoments>,
}

/// What one [`AdamW::step`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Parameters updated.
    pub updated: usize,
    /// Trainable parameters skipped because they had no gradient.
    pub skipped: usize,
}

/// AdamW over the trainable parameters of a model on backend leaf type `L`.
pub struct AdamW<L: Backend> {
    config: AdamWConfig,
    steps: u64,
    states: BTreeMap<String, ParamState<L::Tensor>>,
}

impl<L: Backend> AdamW<L> {
    /// A fresh optimizer (no moments yet).
    pub fn new(config: AdamWConfig) -> Result<AdamW<L>> {
        config.validate()?;
        Ok(AdamW { config, steps: 0, states: BTreeMap::new() })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Optimizer steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    fn decays(&self, name: &str) -> bool {
        !self.config.no_decay.iter().any(|s| name.contains(s.as_str()))
    }

    /// Applies one update with learning rate `lr` to every trainable parameter of `model` that
    /// has a gradient in `grads` (the gradients' clip/accumulation scale is folded in). Every
    /// updated parameter stays a leaf that records gradients. A gradient named for a parameter
    /// the model does not train, or of the wrong shape, is an error and nothing is updated.
    pub fn step<M>(&mut self, model: &mut Llama<M>, grads: ModelGrads<L>, lr: f64) -> Result<StepReport>
    where
        M: TrainBackend<Leaf = L>,
    {
        if !(lr >= 0.0 && lr.is_finite()) {
            return Err(TrainError::config("AdamW", format!("learning rate must be ≥ 0 and finite, got {lr}")));
        }
        let leaf = model.backend.leaf_backend().clone();
        let grad_scale = grads.scale();
        let mut by_name: BTreeMap<String, L::Tensor> = BTreeMap::new();
        for (name, g) in grads.into_entries() {
            if let Some(g) = g {
                by_name.insert(name, g);
            }
        }
        // Validate everything before touching any parameter.
        {
            let params = M::trainable_leaves(model);
            let shapes: BTreeMap<&str, Vec<usize>> = params.iter().map(|(n, t)| (n.as_str(), leaf.shape(t))).collect();
            for (name, g) in &by_name {
                match shapes.get(name.as_str()) {
                    None => return Err(TrainError::parameter(name, "has a gradient but is not a trainable parameter of this model")),
                    Some(shape) if *shape != leaf.shape(g) => {
                        return Err(TrainError::parameter(name, format!("gradient shape {:?} does not match the parameter's {shape:?}", leaf.shape(g))));
                    }
                    Some(_) => {}
                }
            }
        }
        // A tied lm_head shares the embedding's buffer: drop it so the embedding is uniquely
        // owned (updated in place), and point it at the new leaf afterwards.
        let tied = model.config.tie_word_embeddings;
        if tied {
            model.lm_head = model.norm.clone();
        }
        let placeholder = leaf.tensor(vec![0.0], &[1]);
        let mut report = StepReport { updated: 0, skipped: 0 };
        let decays: Vec<bool> = M::trainable_leaves(model).iter().map(|(n, _)| self.decays(n)).collect();
        for ((name, param), decay) in M::trainable_leaves_mut(model).into_iter().zip(decays) {
            let Some(grad) = by_name.remove(&name) else {
                report.skipped += 1;
                continue;
            };
            let state = self.states.remove(&name);
            let step = state.as_ref().map_or(0, |s| s.step) + 1;
            let scalars = AdamWScalars::new(&self.config, lr, step, decay, grad_scale);
            let (m, v) = match state {
                Some(s) => (Some(s.exp_avg), Some(s.exp_avg_sq)),
                None => (None, None),
            };
            let old = std::mem::replace(param, placeholder.clone());
            let (new, exp_avg, exp_avg_sq) = leaf.adamw_update(old, grad, m, v, &scalars);
            *param = new;
            self.states.insert(name, ParamState { step, exp_avg, exp_avg_sq });
            report.updated += 1;
        }
        model.retie_lm_head();
        self.steps += 1;
        Ok(report)
    }

    /// Copies the state to the host (for a checkpoint), reading tensors through `backend`
    /// (the model's [`TrainBackend::leaf_backend`]).
    pub fn state(&self, backend: &L) -> AdamWState {
        let params = self
            .states
            .iter()
            .map(|(name, s)| {
                let moments = ParamMoments {
                    step: s.step,
                    shape: backend.shape(&s.exp_avg),
                    exp_avg: backend.to_vec(&s.exp_avg),
                    exp_avg_sq: backend.to_vec(&s.exp_avg_sq),
                };
                (name.clone(), moments)
            })
            .collect();
        AdamWState { step: self.steps, config: self.config.clone(), params }
    }

    /// An optimizer resumed from `state` for `model`: every saved parameter must be a trainable
    /// parameter of the model with the same shape.
    pub fn from_state<M>(state: AdamWState, model: &Llama<M>) -> Result<AdamW<L>>
    where
        M: TrainBackend<Leaf = L>,
    {
        state.config.validate()?;
        let leaf = model.backend.leaf_backend();
        let shapes: BTreeMap<String, Vec<usize>> = M::trainable_leaves(model).into_iter().map(|(n, t)| (n, leaf.shape(t))).collect();
        let mut states = BTreeMap::new();
        for (name, m) in state.params {
            let Some(shape) = shapes.get(&name) else {
                return Err(TrainError::parameter(&name, "optimizer state for a parameter this model does not train"));
            };
            let n: usize = shape.iter().product();
            if &m.shape != shape || m.exp_avg.len() != n || m.exp_avg_sq.len() != n {
                return Err(TrainError::parameter(
                    &name,
                    format!(
                        "optimizer state of shape {:?} ({} / {} values) does not match the parameter's {shape:?}",
                        m.shape,
                        m.exp_avg.len(),
                        m.exp_avg_sq.len()
                    ),
                ));
            }
            if m.step == 0 {
                return Err(TrainError::parameter(&name, "optimizer state with step 0 (a saved moment implies at least one update)"));
            }
            let exp_avg = leaf.tensor(m.exp_avg, shape);
            let exp_avg_sq = leaf.tensor(m.exp_avg_sq, shape);
            states.insert(name, ParamState { step: m.step, exp_avg, exp_avg_sq });
        }
        Ok(AdamW { config: state.config, steps: state.step, states })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward f64 AdamW as the PyTorch docs write it, for comparison.
    fn reference(p: &mut [f64], grads: &[Vec<f64>], lr: f64, c: &AdamWConfig) {
        let mut m = vec![0.0; p.len()];
        let mut v = vec![0.0; p.len()];
        for (t, g) in grads.iter().enumerate() {
            let t = (t + 1) as i32;
            for i in 0..p.len() {
                p[i] *= 1.0 - lr * c.weight_decay;
                m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * g[i];
                v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * g[i] * g[i];
                let mh = m[i] / (1.0 - c.beta1.powi(t));
                let vh = v[i] / (1.0 - c.beta2.powi(t));
                p[i] -= lr * mh / (vh.sqrt() + c.eps);
            }
        }
    }

    #[test]
    fn kernel_matches_the_f64_reference_over_steps() {
        let c = AdamWConfig { weight_decay: 0.1, ..AdamWConfig::default() };
        let n = 70_000; // spans several parallel chunks
        let init: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64 / 500.0 - 1.0).collect();
        let grads: Vec<Vec<f64>> = (0..4).map(|s| (0..n).map(|i| (((i + 31 * s) * 104729) % 997) as f64 / 300.0 - 1.6).collect()).collect();
        let lr = 1e-2;
        let mut want = init.clone();
        reference(&mut want, &grads, lr, &c);
        let mut p: Vec<f32> = init.iter().map(|&x| x as f32).collect();
        let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
        for (t, g) in grads.iter().enumerate() {
            let g: Vec<f32> = g.iter().map(|&x| x as f32).collect();
            adamw_kernel(&mut p, &g, &mut m, &mut v, &AdamWScalars::new(&c, lr, t as u64 + 1, true, 1.0));
        }
        for i in (0..n).step_by(997) {
            assert!((p[i] as f64 - want[i]).abs() < 2e-6, "index {i}: {} vs {}", p[i], want[i]);
        }
    }

    #[test]
    fn kernel_matches_torch_optim_adamw() {
        // Produced with torch 2.15 (CPU, float32):
        //   p = Parameter(tensor([0.5, -1.0, 2.0, 0.0, 1e-3])); opt = AdamW([p], lr=0.01, weight_decay=0.1)
        //   for g in GRADS: p.grad = tensor(g); opt.step(); print(p)
        const GRADS: [[f32; 5]; 3] = [[0.3, -0.2, 1.5, -0.01, 0.0], [-0.4, -0.2, 0.5, 0.02, 1e-6], [0.1, 0.3, -2.0, 0.0, -1e-6]];
        const TORCH: [[f32; 5]; 3] = [
            [0.4895000159740448, -0.9890000224113464, 1.9880000352859497, 0.009999989531934261, 0.000999000039882958],
            [0.49094560742378235, -0.9780110716819763, 1.9773014783859253, 0.006328956689685583, -0.006339622661471367],
            [0.49066779017448425, -0.9763821363449097, 1.9761638641357422, 0.0034926391672343016, -0.00588692631572485],
        ];
        const TORCH_EXP_AVG: [f32; 5] = [-0.001699999556876719, -0.0042000021785497665, -0.03349999338388443, 0.0009899999713525176, -9.999996386511611e-09];
        let c = AdamWConfig { weight_decay: 0.1, ..AdamWConfig::default() };
        let mut p = vec![0.5f32, -1.0, 2.0, 0.0, 1e-3];
        let (mut m, mut v) = (vec![0.0; 5], vec![0.0; 5]);
        for (t, g) in GRADS.iter().enumerate() {
            adamw_kernel(&mut p, g, &mut m, &mut v, &AdamWScalars::new(&c, 0.01, t as u64 + 1, true, 1.0));
            for i in 0..5 {
                assert!((p[i] - TORCH[t][i]).abs() <= 2e-7 * (1.0 + TORCH[t][i].abs()), "step {} [{i}]: {} vs torch {}", t + 1, p[i], TORCH[t][i]);
            }
        }
        for i in 0..5 {
            assert!((m[i] - TORCH_EXP_AVG[i]).abs() <= 1e-6 * TORCH_EXP_AVG[i].abs(), "exp_avg[{i}]: {} vs torch {}", m[i], TORCH_EXP_AVG[i]);
        }
    }

    #[test]
    fn first_step_moves_each_weight_by_about_lr() {
        // With bias correction the first update is lr * g / (|g| + eps) ≈ lr * sign(g).
        let c = AdamWConfig { weight_decay: 0.0, ..AdamWConfig::default() };
        let mut p = vec![1.0f32, 1.0, 1.0];
        let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
        adamw_kernel(&mut p, &[0.5, -3.0, 1e-3], &mut m, &mut v, &AdamWScalars::new(&c, 0.1, 1, true, 1.0));
        assert!((p[0] - 0.9).abs() < 1e-6 && (p[1] - 1.1).abs() < 1e-6, "{p:?}");
        assert!((p[2] - (1.0 - 0.1 * 1e-3 / (1e-3 + 1e-8))).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn grad_scale_is_applied_before_the_moments() {
        let c = AdamWConfig::default();
        let (mut p1, mut m1, mut v1) = (vec![0.3f32; 4], vec![0.0; 4], vec![0.0; 4]);
        let (mut p2, mut m2, mut v2) = (vec![0.3f32; 4], vec![0.0; 4], vec![0.0; 4]);
        let g = [0.2f32, -0.4, 0.6, 0.0];
        let g_half: Vec<f32> = g.iter().map(|x| x * 0.5).collect();
        adamw_kernel(&mut p1, &g, &mut m1, &mut v1, &AdamWScalars::new(&c, 1e-3, 1, true, 0.5));
        adamw_kernel(&mut p2, &g_half, &mut m2, &mut v2, &AdamWScalars::new(&c, 1e-3, 1, true, 1.0));
        assert_eq!((p1, m1, v1), (p2, m2, v2));
    }

    #[test]
    fn invalid_hyper_parameters_are_rejected() {
        for bad in [
            AdamWConfig { beta1: 1.0, ..AdamWConfig::default() },
            AdamWConfig { beta2: -0.1, ..AdamWConfig::default() },
            AdamWConfig { eps: 0.0, ..AdamWConfig::default() },
            AdamWConfig { weight_decay: f64::NAN, ..AdamWConfig::default() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}

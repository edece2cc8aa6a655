//! Gradients of a model's trainable parameters by name: taken out of a backward pass,
//! accumulated over micro-batches, scaled, and clipped by their global L2 norm.
//!
//! Scaling is lazy: [`ModelGrads::scale_by`] and [`clip_grad_norm`] only record a factor, which
//! the optimizer folds into its fused update, so clipping costs one reduction per tensor and no
//! extra pass over the gradients.

use crate::backend::Backend;
use crate::model::Llama;
use crate::train::error::{Result, TrainError};
use crate::train::params::TrainBackend;

/// The gradient of every trainable parameter (`None` where backward reached none), times a
/// pending scale factor.
pub struct ModelGrads<L: Backend> {
    backend: L,
    entries: Vec<(String, Option<L::Tensor>)>,
    scale: f64,
}

impl<L: Backend> ModelGrads<L> {
    /// Takes the gradients of `model`'s trainable parameters out of one backward pass
    /// (`model.backend.backward(&loss)`). The backward result is consumed so the gradient
    /// buffers are uniquely owned afterwards.
    pub fn from_backward<M>(model: &Llama<M>, grads: M::Grads) -> ModelGrads<L>
    where
        M: TrainBackend<Leaf = L>,
    {
        let leaf = model.backend.leaf_backend().clone();
        let entries = M::trainable_leaves(model).into_iter().map(|(name, p)| (name, model.backend.leaf_grad(&grads, p))).collect();
        drop(grads);
        ModelGrads { backend: leaf, entries, scale: 1.0 }
    }

    /// Gradients from host values (tests, gradient transfer): `(name, shape, values)`.
    pub fn from_host(backend: L, entries: Vec<(String, Vec<usize>, Vec<f32>)>) -> ModelGrads<L> {
        let entries = entries.into_iter().map(|(n, shape, data)| (n, Some(backend.tensor(data, &shape)))).collect();
        ModelGrads { backend, entries, scale: 1.0 }
    }

    /// Adds another micro-batch's gradients (same parameters, same order). If the two carry
    /// different pending scales, both are applied first.
    pub fn accumulate(&mut self, other: ModelGrads<L>) -> Result<()> {
        if other.entries.len() != self.entries.len() {
            return Err(TrainError::parameter("-", format!("cannot accumulate gradients of {} parameters into {}", other.entries.len(), self.entries.len())));
        }
        for ((name, _), (other_name, _)) in self.entries.iter().zip(&other.entries) {
            if name != other_name {
                return Err(TrainError::parameter(name.clone(), format!("accumulating gradients of `{other_name}` into it")));
            }
        }
        let b = self.backend.clone();
        let other_scale = other.scale;
        if self.scale != other_scale {
            self.materialize_scale();
        }
        let rescale_other = self.scale != other_scale;
        for ((_, mine), (_, theirs)) in self.entries.iter_mut().zip(other.entries) {
            let Some(theirs) = theirs else { continue };
            let theirs = if rescale_other { b.mul_scalar(theirs, other_scale as f32) } else { theirs };
            *mine = Some(match mine.take() {
                None => theirs,
                Some(g) => b.add(g, theirs),
            });
        }
        Ok(())
    }

    /// Applies the pending scale to every gradient now (sets it to 1).
    fn materialize_scale(&mut self) {
        if self.scale == 1.0 {
            return;
        }
        let (b, s) = (&self.backend, self.scale as f32);
        for (_, g) in self.entries.iter_mut() {
            if let Some(t) = g.take() {
                *g = Some(b.mul_scalar(t, s));
            }
        }
        self.scale = 1.0;
    }

    /// Multiplies every gradient by `factor` (recorded; applied by the optimizer).
    pub fn scale_by(&mut self, factor: f64) {
        self.scale *= factor;
    }

    /// The pending scale factor.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Global L2 norm of all gradients (pending scale included), accumulated in f64 over
    /// per-tensor sums of squares.
    pub fn global_norm(&self) -> f64 {
        let b = &self.backend;
        let mut total = 0.0f64;
        for (_, g) in &self.entries {
            if let Some(g) = g {
                let sq = b.sum_all(b.mul(g.clone(), g.clone()));
                total += b.to_vec(&sq)[0] as f64;
            }
        }
        total.sqrt() * self.scale.abs()
    }

    /// Parameter names, in the model's order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The gradient of `name` with the pending scale applied, on the host.
    pub fn to_host(&self, name: &str) -> Option<Vec<f32>> {
        let (_, g) = self.entries.iter().find(|(n, _)| n == name)?;
        let v = self.backend.to_vec(g.as_ref()?);
        Some(v.into_iter().map(|x| (x as f64 * self.scale) as f32).collect())
    }

    /// The entries and drops the pending scale (callers take [`ModelGrads::scale`] first).
    pub fn into_entries(self) -> Vec<(String, Option<L::Tensor>)> {
        self.entries
    }
}

/// What [`clip_grad_norm`] found and did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipReport {
    /// Global L2 norm before clipping.
    pub norm: f64,
    /// Whether the norm is finite; when it is not, gradients are left as they are and the
    /// caller should skip the optimizer step.
    pub finite: bool,
    /// The factor applied (1 when not clipped): `max_norm / (norm + 1e-6)` when the norm
    /// exceeds `max_norm`, as `torch.nn.utils.clip_grad_norm_`.
    pub factor: f64,
}

impl ClipReport {
    /// Whether the gradients were scaled down.
    pub fn clipped(&self) -> bool {
        self.factor < 1.0
    }
}

/// Scales gradients so their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`: factor `max_norm / (norm + 1e-6)`, clamped to 1). Returns the pre-clip
/// norm. A non-finite norm leaves the gradients untouched and is reported, not an error.
pub fn clip_grad_norm<L: Backend>(grads: &mut ModelGrads<L>, max_norm: f64) -> ClipReport {
    let norm = grads.global_norm();
    if !norm.is_finite() {
        return ClipReport { norm, finite: false, factor: 1.0 };
    }
    let factor = (max_norm / (norm + 1e-6)).min(1.0);
    if factor < 1.0 {
        grads.scale_by(factor);
    }
    ClipReport { norm, finite: true, factor: factor.min(1.0) }
}

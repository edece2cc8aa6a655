//! Learning-rate schedules, one function each; the only state is the optimizer step.
//!
//! Steps count from 0 (the first optimizer step is step 0). Warmup is linear and reaches the
//! base rate at the end of step `warmup_steps − 1`: lr(step) = base·(step + 1)/warmup_steps, so
//! the first step already moves the weights (HF's schedule gives lr 0 at step 0).

use serde::{Deserialize, Serialize};

/// Which schedule; one function per variant below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Linear warmup (if any), then the base rate (default; MemAct: 1e-6 with 5 warmup steps).
    #[default]
    Constant,
    /// Linear warmup, then cosine decay from the base rate to `min_lr_ratio · base` at the last step.
    Cosine,
}

/// Everything a schedule needs besides the step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Which schedule.
    pub kind: ScheduleKind,
    /// The peak learning rate.
    pub base_lr: f64,
    /// Number of linear-warmup steps (0: none).
    pub warmup_steps: u64,
    /// Total optimizer steps of the run (cosine reaches its floor at step `total_steps − 1`).
    pub total_steps: u64,
    /// Floor of the cosine decay as a fraction of `base_lr`.
    pub min_lr_ratio: f64,
}

impl Schedule {
    /// The learning rate at optimizer step `step` (the single dispatch point over [`ScheduleKind`]).
    pub fn lr(&self, step: u64) -> f64 {
        match self.kind {
            ScheduleKind::Constant => constant(self.base_lr, self.warmup_steps, step),
            ScheduleKind::Cosine => warmup_cosine(self.base_lr, self.warmup_steps, self.total_steps, self.min_lr_ratio, step),
        }
    }
}

/// Linear warmup factor in (0, 1] for `step` < `warmup_steps`, else 1.
fn warmup_factor(warmup_steps: u64, step: u64) -> f64 {
    if step < warmup_steps { (step + 1) as f64 / warmup_steps as f64 } else { 1.0 }
}

/// Constant rate after a linear warmup.
pub fn constant(base_lr: f64, warmup_steps: u64, step: u64) -> f64 {
    base_lr * warmup_factor(warmup_steps, step)
}

/// Linear warmup, then cosine decay to `min_lr_ratio · base_lr`, reached at step
/// `total_steps − 1` and held after it.
pub fn warmup_cosine(base_lr: f64, warmup_steps: u64, total_steps: u64, min_lr_ratio: f64, step: u64) -> f64 {
    if step < warmup_steps {
        return base_lr * warmup_factor(warmup_steps, step);
    }
    let decay_steps = total_steps.saturating_sub(warmup_steps);
    let progress = if decay_steps <= 1 { 1.0 } else { ((step - warmup_steps) as f64 / (decay_steps - 1) as f64).min(1.0) };
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    base_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_with_warmup() {
        // 4 warmup steps: 0.25, 0.5, 0.75, 1, 1, ...
        let lrs: Vec<f64> = (0..6).map(|s| constant(2.0, 4, s)).collect();
        assert_eq!(lrs, vec![0.5, 1.0, 1.5, 2.0, 2.0, 2.0]);
        assert_eq!(constant(3.0, 0, 0), 3.0);
    }

    #[test]
    fn cosine_hand_computed() {
        // base 1, warmup 2, total 7 → 5 decay steps, progress 0, 1/4, 1/2, 3/4, 1 at steps 2..=6.
        // min ratio 0.1: lr = 0.1 + 0.9·0.5·(1 + cos(π p)).
        let s = Schedule { kind: ScheduleKind::Cosine, base_lr: 1.0, warmup_steps: 2, total_steps: 7, min_lr_ratio: 0.1 };
        let expected = [
            0.5,
            1.0,
            1.0,
            0.1 + 0.45 * (1.0 + (0.25f64 * std::f64::consts::PI).cos()),
            0.55,
            0.1 + 0.45 * (1.0 - (0.25f64 * std::f64::consts::PI).cos()),
            0.1,
            0.1,
        ];
        for (step, e) in expected.iter().enumerate() {
            assert!((s.lr(step as u64) - e).abs() < 1e-12, "step {step}: {} vs {e}", s.lr(step as u64));
        }
        // Degenerate: no decay steps → the floor right after warmup.
        assert_eq!(warmup_cosine(1.0, 3, 3, 0.2, 3), 0.2);
    }
}

//! One learner update: micro-batches → log-probs → loss → accumulated gradients → clip →
//! AdamW. Also the SFT (negative log-likelihood) update on demonstration segments.

use memrl_policies::backend::Backend;
use memrl_policies::model::Llama;
use memrl_policies::scoring::{LogprobOptions, target_logprobs_from_hidden};
use memrl_policies::train::TrainError;
use memrl_policies::train::grads::{ModelGrads, clip_grad_norm};
use memrl_policies::train::optim::AdamW;
use memrl_policies::train::params::TrainBackend;

use crate::learner::batch::{MicroBatch, mini_batch_weights};
use crate::learner::critic::CriticTargets;
use crate::loss::tensor::policy_loss_tensor;
use crate::loss::value::{explained_variance, value_loss_tensor};
use crate::loss::{LossBatch, LossConfig, LossDiagnostics, LossError};
use crate::segments::Segment;

/// Why a learner update failed.
#[derive(Debug, thiserror::Error)]
pub enum LearnerError {
    /// The loss inputs or hyper-parameters are malformed.
    #[error(transparent)]
    Loss(#[from] LossError),
    /// Accumulating gradients or the optimizer step failed.
    #[error(transparent)]
    Train(#[from] TrainError),
}

/// The settings' batching of one epoch.
fn plan(segments: &[Segment], advantages: &[Vec<f32>], s: &UpdateSettings, epoch: usize) -> Vec<Vec<MicroBatch>> {
    crate::learner::batch::plan(segments, advantages, s.mini_batches, s.micro_batch_tokens, s.seed.wrapping_add(epoch as u64), s.pad_id)
}

/// What the learner needs besides the segments.
#[derive(Debug, Clone)]
pub struct UpdateSettings {
    /// The policy loss.
    pub loss: LossConfig,
    /// Learning rate of this step.
    pub lr: f64,
    /// Global gradient-norm clip (0: none).
    pub grad_clip: f64,
    /// Real tokens per micro-batch (gradient accumulation beyond it).
    pub micro_batch_tokens: usize,
    /// Optimizer steps per batch (the segments are split into this many mini-batches).
    pub mini_batches: usize,
    /// Passes over the batch.
    pub epochs: usize,
    /// Seed of the mini-batch shuffle.
    pub seed: u64,
    /// Padding token id.
    pub pad_id: u32,
    /// The temperature the rollout sampled at: the learner's log-probs (new, old, reference,
    /// entropy) are those of softmax(logits / T), the distribution the tokens were drawn from
    /// (1: the untempered policy).
    pub temperature: f64,
}

/// What an update did, for the metrics.
#[derive(Debug, Clone, Default)]
pub struct UpdateReport {
    /// Optimizer steps taken.
    pub optimizer_steps: usize,
    /// Optimizer steps skipped because the gradient norm was not finite.
    pub skipped_steps: usize,
    /// Mean pre-clip gradient norm over the optimizer steps.
    pub grad_norm: f64,
    /// Loss of each mini-batch update (the sum over its micro-batches), averaged over the
    /// mini-batch updates (mini-batches × epochs) whose loss was computed.
    pub loss: f64,
    /// The loss terms (`pg_loss`, `kl_loss`, `entropy_loss`) averaged like `loss`; the rates
    /// token-weighted over every micro-batch of every epoch; `tokens` as `loss_tokens`.
    pub diagnostics: LossDiagnostics,
    /// Tokens that carried loss: the batch's policy tokens, each counted once (not per epoch).
    pub loss_tokens: usize,
    /// Positions processed (padding included).
    pub positions: usize,
    /// The critic's numbers, for an update with a value loss (None otherwise).
    pub value: Option<ValueReport>,
}

/// What the value loss of an update did, for the metrics (`loss/value`, `value/*`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ValueReport {
    /// The value loss (before `vf_coef`) of each mini-batch update, averaged over the mini-batch
    /// updates whose loss was computed (like [`UpdateReport::loss`]).
    pub loss: f64,
    /// Fraction of policy tokens where the value clip binds, token-weighted over every
    /// micro-batch of every epoch.
    pub clip_frac: f64,
    /// Mean old value V_old over the batch's policy tokens.
    pub mean: f64,
    /// Explained variance of the returns by V_old over the batch's policy tokens
    /// ([`explained_variance`]).
    pub explained_variance: f64,
}

/// Per-position log-probs of the targets (`[rows * seq]`) under softmax(logits / `temperature`),
/// and the per-position entropy of that distribution when asked for, from one forward pass over
/// `batch`. ([`memrl_policies::scoring::target_logprobs`] on the micro-batch's layout.) Only the
/// span of each row from its first to its last loss position is projected onto the vocabulary;
/// every other position is 0 (the loss never reads it).
pub fn token_logprobs<B: Backend>(model: &Llama<B>, batch: &MicroBatch, with_entropy: bool, temperature: f32) -> (B::Tensor, Option<B::Tensor>) {
    let (logprobs, entropy, _) = forward_heads(model, batch, with_entropy, temperature, false);
    (logprobs, entropy)
}

/// [`token_logprobs`] (projected only over each row's loss span) and, when `with_values`, the
/// value head's output at every position
/// (`[rows * seq]`), from the same forward pass (the critic shares the trunk).
pub fn forward_heads<B: Backend>(
    model: &Llama<B>,
    batch: &MicroBatch,
    with_entropy: bool,
    temperature: f32,
    with_values: bool,
) -> (B::Tensor, Option<B::Tensor>, Option<B::Tensor>) {
    let hidden = model.forward(&batch.input_ids, batch.rows, batch.seq, &batch.lengths);
    let values = with_values.then(|| model.values(hidden.clone()));
    let spans = batch.loss_spans();
    let opts = LogprobOptions { spans: Some(&spans), with_entropy, temperature, ..LogprobOptions::default() };
    let (logprobs, entropy) = target_logprobs_from_hidden(model, hidden, &batch.input_ids, &batch.target_ids, batch.rows, batch.seq, &opts);
    (logprobs, entropy, values)
}

/// Runs the clipped policy-gradient update of `model` on `segments`.
///
/// The old log-probs are the learner's own, before this update: with one mini-batch and one
/// epoch they equal the new ones at the moment of the single step (computed in the same
/// forward); otherwise a no-grad pass over the whole batch computes them first, kept per
/// segment ([`OldLogprobs`]) so that every later epoch's reshuffled layout finds its rows. The
/// reference log-probs come from `reference` when a KL term is configured. All log-probs are
/// taken at `s.temperature`.
///
/// With `critic` (PPO with a learned value head on the shared trunk) the same forward pass also
/// gives the values, and each micro-batch's loss is the policy loss plus `vf_coef` times the
/// clipped value loss ([`crate::loss::value`]) against the critic's returns, one backward for
/// both; the model must have a value head.
///
/// The report's loss, `pg_loss`, `kl_loss`, `entropy_loss` and value loss are means over the
/// mini-batch updates (mini-batches × epochs) whose loss was computed; `loss_tokens` counts the
/// batch's policy tokens once.
pub fn policy_update<M>(
    model: &mut Llama<M>,
    optimizer: &mut AdamW<M::Leaf>,
    reference: Option<&Llama<M::Leaf>>,
    segments: &[Segment],
    advantages: &[Vec<f32>],
    s: &UpdateSettings,
    critic: Option<&CriticTargets>,
) -> Result<UpdateReport, LearnerError>
where
    M: TrainBackend,
{
    let needs_old_pass = s.mini_batches > 1 || s.epochs > 1;
    let with_entropy = s.loss.entropy_coef != 0.0;
    let temperature = s.temperature as f32;
    let mut report = UpdateReport::default();
    let mut diag_acc = DiagAccumulator::default();
    let mut old_cache: Option<OldLogprobs> = None;
    let mut measured = 0usize;
    let mut value_acc = ValueAccumulator::default();
    for epoch in 0..s.epochs.max(1) {
        let plan = plan(segments, advantages, s, epoch);
        if epoch == 0 {
            report.loss_tokens = plan.iter().flatten().map(MicroBatch::loss_tokens).sum();
            if needs_old_pass {
                old_cache = Some(OldLogprobs::compute(model, &plan, segments.len(), temperature));
            }
        }
        for mini in &plan {
            let weights = mini_batch_weights(&s.loss, mini);
            let mut accumulated: Option<ModelGrads<M::Leaf>> = None;
            let mut mini_acc = DiagAccumulator::default();
            let mut mini_value = ValueAccumulator::default();
            let mut loss_sum = 0.0;
            let mut poisoned = false;
            for (mb, w) in mini.iter().zip(weights) {
                let b = &model.backend;
                let (new_lp, entropy, values) = forward_heads(model, mb, with_entropy, temperature, critic.is_some());
                let new_host: Vec<f64> = b.to_vec(&new_lp).into_iter().map(f64::from).collect();
                let values_host: Vec<f64> = values.as_ref().map(|v| b.to_vec(v).into_iter().map(f64::from).collect()).unwrap_or_default();
                // A model that produces non-finite log-probs (or values) gets no update from this
                // mini-batch (the NaN guard), rather than an error that would end the run.
                let finite = |xs: &[f64]| xs.iter().zip(&mb.loss_mask).all(|(x, &m)| m == 0 || x.is_finite());
                if !finite(&new_host) || !finite(&values_host) {
                    poisoned = true;
                    break;
                }
                let entropy_host: Vec<f64> = entropy.as_ref().map(|e| b.to_vec(e).into_iter().map(f64::from).collect()).unwrap_or_default();
                let old = match &old_cache {
                    Some(cache) => cache.for_batch(mb),
                    None => new_host.clone(),
                };
                let ref_lp = match reference {
                    Some(r) if s.loss.kl_coef != 0.0 => detached_logprobs(r, mb, temperature),
                    _ => Vec::new(),
                };
                let host = LossBatch {
                    new_logprobs: new_host,
                    old_logprobs: old,
                    rollout_logprobs: mb.rollout_logprobs.iter().map(|&x| f64::from(x)).collect(),
                    ref_logprobs: ref_lp,
                    advantages: mb.advantages.iter().map(|&x| f64::from(x)).collect(),
                    mask: mb.loss_mask.clone(),
                    entropy: entropy_host,
                    segment_ids: mb.segment_ids.clone(),
                    trajectory_ids: mb.trajectory_ids.clone(),
                };
                let (mut loss, out) = policy_loss_tensor(b, new_lp, entropy, &host, &s.loss, w.clone())?;
                loss_sum += out.loss;
                if let (Some(c), Some(values)) = (critic, values) {
                    let (old, returns) = (c.old_values_for(segments, mb), c.returns_for(segments, mb));
                    let (value_loss, v) = value_loss_tensor(b, values, &values_host, &old, &returns, &mb.loss_mask, &w, c.loss.value_clip);
                    loss = b.add(loss, b.mul_scalar(value_loss, c.loss.vf_coef as f32));
                    loss_sum += c.loss.vf_coef * v.loss;
                    mini_value.add(v.loss, v.clipped_tokens, v.tokens);
                }
                mini_acc.add(&out.diagnostics);
                report.positions += mb.rows * mb.seq;
                let grads = ModelGrads::from_backward(model, b.backward(&loss));
                match &mut accumulated {
                    None => accumulated = Some(grads),
                    Some(acc) => acc.accumulate(grads)?,
                }
            }
            if poisoned {
                report.skipped_steps += 1;
                continue;
            }
            let Some(mut grads) = accumulated else { continue };
            report.loss += loss_sum;
            diag_acc.merge(&mini_acc);
            value_acc.add(mini_value.loss, mini_value.clipped_tokens, mini_value.tokens);
            measured += 1;
            if step_optimizer(model, optimizer, &mut grads, s, &mut report)? {
                report.optimizer_steps += 1;
            }
        }
    }
    let steps = (report.optimizer_steps + report.skipped_steps).max(1) as f64;
    report.loss /= measured.max(1) as f64;
    report.grad_norm /= steps;
    report.diagnostics = diag_acc.mean(measured, report.loss_tokens);
    report.value = critic.map(|c| value_report(&value_acc, measured, segments, c));
    Ok(report)
}

/// Running totals of the value loss: summed over micro-batches (a mini-batch's loss is the sum
/// of its micro-batches'), clipped and masked tokens counted.
#[derive(Default)]
struct ValueAccumulator {
    loss: f64,
    clipped_tokens: usize,
    tokens: usize,
}

impl ValueAccumulator {
    fn add(&mut self, loss: f64, clipped_tokens: usize, tokens: usize) {
        self.loss += loss;
        self.clipped_tokens += clipped_tokens;
        self.tokens += tokens;
    }
}

/// The critic's report: the value loss as a mean over the `measured` mini-batch updates, the
/// clip fraction over the tokens seen, and V_old's mean and explained variance over the batch's
/// policy tokens.
fn value_report(acc: &ValueAccumulator, measured: usize, segments: &[Segment], c: &CriticTargets) -> ValueReport {
    let (mut old, mut returns, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    for (i, s) in segments.iter().enumerate() {
        old.extend(c.old_values[i].iter().map(|&x| f64::from(x)));
        returns.extend(c.returns[i].iter().map(|&x| f64::from(x)));
        mask.extend_from_slice(&s.loss_mask);
    }
    let policy_old: Vec<f64> = old.iter().zip(&mask).filter(|(_, m)| **m != 0).map(|(&v, _)| v).collect();
    ValueReport {
        loss: acc.loss / measured.max(1) as f64,
        clip_frac: acc.clipped_tokens as f64 / acc.tokens.max(1) as f64,
        mean: crate::stats::mean(&policy_old),
        explained_variance: explained_variance(&old, &returns, &mask),
    }
}

/// The old log-probs of every segment of a step (indexed like the step's segments, one value per
/// input position of the segment's row), computed once before the first update. Rows are
/// looked up by segment, so any later layout of the same segments (another epoch's shuffle,
/// another packing) reads the right values.
#[derive(Debug, Clone, PartialEq)]
pub struct OldLogprobs(Vec<Vec<f64>>);

impl OldLogprobs {
    /// Computes the log-probs of every row of `plan` (detached, at `temperature`) and files them
    /// by segment.
    pub fn compute<B: Backend>(model: &Llama<B>, plan: &[Vec<MicroBatch>], segments: usize, temperature: f32) -> Self {
        let mut rows = vec![Vec::new(); segments];
        for mb in plan.iter().flatten() {
            let lp = detached_logprobs(model, mb, temperature);
            for (r, &seg) in mb.segment_of_row.iter().enumerate() {
                rows[seg] = lp[r * mb.seq..r * mb.seq + mb.lengths[r]].to_vec();
            }
        }
        Self(rows)
    }

    /// The old log-probs laid out as `mb` (`[rows * seq]`; 0 on padding).
    pub fn for_batch(&self, mb: &MicroBatch) -> Vec<f64> {
        let mut out = vec![0.0; mb.rows * mb.seq];
        for (r, &seg) in mb.segment_of_row.iter().enumerate() {
            let row = &self.0[seg];
            out[r * mb.seq..r * mb.seq + row.len()].copy_from_slice(row);
        }
        out
    }
}

/// Clips and applies the accumulated gradients; returns false (and counts a skip) when the
/// gradient norm is not finite, in which case the model is left untouched.
fn step_optimizer<M: TrainBackend>(
    model: &mut Llama<M>,
    optimizer: &mut AdamW<M::Leaf>,
    grads: &mut ModelGrads<M::Leaf>,
    s: &UpdateSettings,
    report: &mut UpdateReport,
) -> Result<bool, LearnerError> {
    let clip = clip_grad_norm(grads, if s.grad_clip > 0.0 { s.grad_clip } else { f64::INFINITY });
    if !clip.finite {
        report.skipped_steps += 1;
        return Ok(false);
    }
    report.grad_norm += clip.norm;
    optimizer.step(model, std::mem::replace(grads, ModelGrads::from_host(model.backend.leaf_backend().clone(), Vec::new())), s.lr)?;
    Ok(true)
}

/// Target log-probs of a micro-batch at `temperature` without recording gradients (as f64).
pub fn detached_logprobs<B: Backend>(model: &Llama<B>, mb: &MicroBatch, temperature: f32) -> Vec<f64> {
    let (lp, _) = token_logprobs(model, mb, false, temperature);
    let b = &model.backend;
    b.to_vec(&b.detach(lp)).into_iter().map(f64::from).collect()
}

/// Supervised fine-tuning on demonstration segments: the token-mean negative log-likelihood of
/// the policy tokens, one optimizer step per mini-batch of `batch_segments` segments.
pub fn sft_update<M: TrainBackend>(
    model: &mut Llama<M>,
    optimizer: &mut AdamW<M::Leaf>,
    segments: &[Segment],
    s: &UpdateSettings,
) -> Result<UpdateReport, LearnerError> {
    let ones: Vec<Vec<f32>> = segments.iter().map(|seg| vec![1.0; seg.response_ids.len()]).collect();
    let mut report = UpdateReport::default();
    let (mut nll_sum, mut measured) = (0.0, 0usize);
    for mini in plan(segments, &ones, s, 0) {
        let weights = mini_batch_weights(&LossConfig::default(), &mini);
        let mut accumulated: Option<ModelGrads<M::Leaf>> = None;
        let mut mini_nll = 0.0;
        for (mb, w) in mini.iter().zip(weights) {
            let b = &model.backend;
            let (lp, _) = token_logprobs(model, mb, false, 1.0);
            let n = mb.rows * mb.seq;
            let weights = b.tensor(w.iter().map(|&x| -x as f32).collect(), &[n]);
            let loss = b.sum_all(b.mul(lp, weights));
            let value = f64::from(b.to_vec(&loss)[0]);
            if !value.is_finite() {
                accumulated = None;
                report.skipped_steps += 1;
                break;
            }
            mini_nll += value;
            report.loss_tokens += mb.loss_tokens();
            report.positions += n;
            let grads = ModelGrads::from_backward(model, b.backward(&loss));
            match &mut accumulated {
                None => accumulated = Some(grads),
                Some(acc) => acc.accumulate(grads)?,
            }
        }
        let Some(mut grads) = accumulated else { continue };
        nll_sum += mini_nll;
        measured += 1;
        if step_optimizer(model, optimizer, &mut grads, s, &mut report)? {
            report.optimizer_steps += 1;
        }
    }
    let steps = (report.optimizer_steps + report.skipped_steps).max(1) as f64;
    // The NLL of the mini-batches that had one; NaN when none had (every step skipped), never
    // a 0.0 that reads as a perfect fit.
    report.loss = if measured > 0 { nll_sum / measured as f64 } else { f64::NAN };
    report.grad_norm /= steps;
    Ok(report)
}

/// Running totals of loss diagnostics over micro-batches: the loss terms summed (a mini-batch's
/// micro-batch terms add up to its loss terms), the rates token-weighted.
#[derive(Default)]
struct DiagAccumulator {
    tokens: f64,
    sums: [f64; 10],
    ref_kl: Option<f64>,
    entropy: Option<f64>,
}

impl DiagAccumulator {
    fn add(&mut self, d: &LossDiagnostics) {
        let t = d.tokens as f64;
        self.tokens += t;
        let vals = [
            d.pg_loss,
            d.kl_loss,
            d.entropy_loss,
            d.clip_frac_low * t,
            d.clip_frac_high * t,
            d.dual_clip_frac * t,
            d.approx_kl * t,
            d.tis_weight_mean * t,
            d.rollout_logprob_abs_diff * t,
            d.tis_capped_frac * t,
        ];
        for (s, v) in self.sums.iter_mut().zip(vals) {
            *s += v;
        }
        if let Some(k) = d.ref_kl {
            *self.ref_kl.get_or_insert(0.0) += k * t;
        }
        if let Some(e) = d.entropy_mean {
            *self.entropy.get_or_insert(0.0) += e * t;
        }
    }

    /// Adds another accumulator's totals (a finished mini-batch's) to these.
    fn merge(&mut self, other: &DiagAccumulator) {
        self.tokens += other.tokens;
        for (s, v) in self.sums.iter_mut().zip(other.sums) {
            *s += v;
        }
        if let Some(k) = other.ref_kl {
            *self.ref_kl.get_or_insert(0.0) += k;
        }
        if let Some(e) = other.entropy {
            *self.entropy.get_or_insert(0.0) += e;
        }
    }

    /// The diagnostics: loss terms averaged over `updates` mini-batch updates, rates over the
    /// tokens seen, `tokens` set to `loss_tokens`.
    fn mean(&self, updates: usize, loss_tokens: usize) -> LossDiagnostics {
        let t = self.tokens.max(1.0);
        let u = updates.max(1) as f64;
        LossDiagnostics {
            pg_loss: self.sums[0] / u,
            kl_loss: self.sums[1] / u,
            entropy_loss: self.sums[2] / u,
            clip_frac_low: self.sums[3] / t,
            clip_frac_high: self.sums[4] / t,
            dual_clip_frac: self.sums[5] / t,
            approx_kl: self.sums[6] / t,
            ref_kl: self.ref_kl.map(|k| k / t),
            entropy_mean: self.entropy.map(|e| e / t),
            tis_weight_mean: if self.tokens == 0.0 { 1.0 } else { self.sums[7] / t },
            tis_capped_frac: self.sums[9] / t,
            rollout_logprob_abs_diff: self.sums[8] / t,
            tokens: loss_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use memrl_policies::BurnBackend;
    use memrl_policies::train::optim::AdamWConfig;
    use memrl_policies::train::params::{hf_state_dict, llama_from_hf_tensors};
    use memrl_policies::train::tiny::{TinyPreset, init_tiny};

    use super::*;
    use crate::learner::tests::settings;

    fn segment(trajectory_id: u64) -> Segment {
        Segment {
            trajectory_id,
            group_id: 0,
            index: 0,
            is_last: true,
            prompt_ids: vec![1, 5, 9, 12],
            response_ids: vec![7, 3, 2],
            loss_mask: vec![1, 1, 1],
            rollout_logprobs: vec![-2.0, -2.0, -2.0],
            policy_version: 0,
        }
    }

    fn weights(model: &Llama<BurnBackend>) -> Vec<Vec<f32>> {
        hf_state_dict(model).into_iter().map(|(_, t)| t.data).collect()
    }

    fn bits(w: &[Vec<f32>]) -> Vec<Vec<u32>> {
        w.iter().map(|t| t.iter().map(|x| x.to_bits()).collect()).collect()
    }

    #[test]
    fn non_finite_log_probs_skip_the_step_and_leave_the_model_untouched() {
        let healthy = init_tiny(BurnBackend::flex_autodiff(), TinyPreset::L2D64, 32, 0).unwrap();
        let mut tensors = hf_state_dict(&healthy);
        let norm = tensors.iter_mut().find(|(name, _)| name == "model.norm.weight").expect("final norm");
        norm.1.data[0] = f32::INFINITY;
        let mut model = llama_from_hf_tensors(BurnBackend::flex_autodiff(), healthy.config.clone(), tensors).unwrap();
        let mut optimizer = AdamW::new(AdamWConfig::default()).unwrap();
        let before = bits(&weights(&model));
        let segments = vec![segment(1), segment(2)];
        let advantages = vec![vec![1.0; 3], vec![-1.0; 3]];
        let report = policy_update(&mut model, &mut optimizer, None, &segments, &advantages, &settings(), None).unwrap();
        assert_eq!((report.optimizer_steps, report.skipped_steps), (0, 1));
        assert_eq!(bits(&weights(&model)), before, "a skipped step must not touch the weights");
        assert_eq!(optimizer.steps(), 0, "nor the optimizer state");
        let report = sft_update(&mut model, &mut optimizer, &segments, &settings()).unwrap();
        assert_eq!((report.optimizer_steps, report.skipped_steps), (0, 1));
        assert!(report.loss.is_nan(), "an NLL of {} for a step that measured none", report.loss);
        assert_eq!(bits(&weights(&model)), before);

        // The healthy model does update.
        let mut model = healthy;
        let before = weights(&model);
        let report = policy_update(&mut model, &mut optimizer, None, &segments, &advantages, &settings(), None).unwrap();
        assert_eq!((report.optimizer_steps, report.skipped_steps), (1, 0));
        assert_ne!(weights(&model), before);
    }

    #[test]
    fn non_finite_advantages_are_an_error_not_a_silent_skip() {
        let mut model = init_tiny(BurnBackend::flex_autodiff(), TinyPreset::L2D64, 32, 0).unwrap();
        let mut optimizer = AdamW::new(AdamWConfig::default()).unwrap();
        let segments = vec![segment(1)];
        let err = policy_update(&mut model, &mut optimizer, None, &segments, &[vec![f32::NAN; 3]], &settings(), None).unwrap_err();
        assert!(err.to_string().contains("advantages"), "{err}");
    }

    #[test]
    fn accumulation_over_micro_batches_equals_one_big_batch() {
        let segments: Vec<Segment> = (0..4).map(segment).collect();
        let advantages: Vec<Vec<f32>> = (0..4).map(|i| vec![if i % 2 == 0 { 1.0 } else { -0.5 }; 3]).collect();
        let run = |micro_batch_tokens: usize| {
            let mut model = init_tiny(BurnBackend::flex_autodiff(), TinyPreset::L2D64, 32, 0).unwrap();
            let mut optimizer = AdamW::new(AdamWConfig::default()).unwrap();
            let s = UpdateSettings { micro_batch_tokens, ..settings() };
            let r = policy_update(&mut model, &mut optimizer, None, &segments, &advantages, &s, None).unwrap();
            (r.grad_norm, r.loss, r.loss_tokens)
        };
        let (norm_one, loss_one, tokens_one) = run(1024); // all four segments in one micro-batch
        let (norm_many, loss_many, tokens_many) = run(6); // one segment per micro-batch
        assert_eq!(tokens_one, tokens_many);
        assert!(norm_one > 0.0);
        // The accumulated gradient is the big batch's (its norm agrees to f32 summation order);
        // weights are not compared because Adam's first step divides by |g| and amplifies
        // rounding in coordinates whose gradient is ~0.
        assert!((norm_one - norm_many).abs() < 1e-4 * norm_one, "grad norm {norm_one} vs {norm_many}");
        assert!((loss_one - loss_many).abs() < 1e-9, "loss {loss_one} vs {loss_many}");
    }
}

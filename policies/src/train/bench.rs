//! Throughput measurements for `memrl bench policy`: learner tokens/s (forward + backward +
//! clip + AdamW on a fixed batch) and decode tokens/s through the generation engine, each
//! comparable with `scripts/reference/torch_learner_bench.py` and
//! `scripts/reference/hf_generate_bench.py` (same shapes, same loss, same formulas).

use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::backend::Backend;
use crate::engine::{Engine, EngineConfig, GenerationRequest};
use crate::model::Llama;
use crate::scoring::token_logprobs_tensor;
use crate::train::error::{Result, TrainError};
use crate::train::grads::{ModelGrads, clip_grad_norm};
use crate::train::optim::{AdamW, AdamWConfig};
use crate::train::params::TrainBackend;

/// `-mean log π(x[t] | x[..t])` over every predicted position of `seqs` (rows may differ in
/// length; padding is masked out): the learner benchmark's loss, and a scalar for gradient
/// checks. Differentiable on an autodiff backend; shape `[1]`.
pub fn mean_nll<B: Backend>(model: &Llama<B>, seqs: &[Vec<u32>]) -> B::Tensor {
    let b = &model.backend;
    let seq = seqs.iter().map(Vec::len).max().unwrap_or(0);
    assert!(seq >= 2, "mean_nll: sequences need at least 2 tokens");
    let lp = token_logprobs_tensor(model, seqs);
    let mut mask = vec![0.0f32; seqs.len() * (seq - 1)];
    let mut count = 0usize;
    for (r, s) in seqs.iter().enumerate() {
        for t in 0..s.len().saturating_sub(1) {
            mask[r * (seq - 1) + t] = 1.0;
            count += 1;
        }
    }
    let mask = b.tensor(mask, &[seqs.len(), seq - 1, 1]);
    b.mul_scalar(b.sum_all(b.mul(lp, mask)), -1.0 / count.max(1) as f32)
}

/// Learner benchmark settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LearnerBenchConfig {
    /// Rows per step.
    pub batch: usize,
    /// Tokens per row.
    pub seq: usize,
    /// Untimed steps first.
    pub warmup_steps: usize,
    /// Timed steps.
    pub steps: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Gradient clipping (global L2 norm).
    pub max_grad_norm: f64,
    /// Seed of the token ids.
    pub seed: u64,
}

impl Default for LearnerBenchConfig {
    /// Batch 4 × 256 tokens, 1 warm-up and 3 timed steps, lr 1e-5, clip 1.0.
    fn default() -> Self {
        LearnerBenchConfig { batch: 4, seq: 256, warmup_steps: 1, steps: 3, lr: 1e-5, max_grad_norm: 1.0, seed: 0 }
    }
}

/// Wall time of the phases of one learner step, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LearnerStepTiming {
    /// Forward pass and loss (burn executes eagerly, so this is compute, not graph building).
    pub forward_s: f64,
    /// `backward()`.
    pub backward_s: f64,
    /// Gradient extraction and global-norm clipping.
    pub clip_s: f64,
    /// The AdamW update of every trainable parameter.
    pub optimizer_s: f64,
    /// The whole step.
    pub total_s: f64,
    /// CPU time (user + system, all threads) of the whole step: robust to other tenants
    /// sharing the cores, unlike wall time.
    pub cpu_s: f64,
}

/// What the learner benchmark measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LearnerBenchReport {
    /// The backend's name.
    pub backend: String,
    /// The settings.
    pub config: LearnerBenchConfig,
    /// Trainable scalars updated per step.
    pub trainable_parameters: usize,
    /// `batch × seq`.
    pub tokens_per_step: usize,
    /// Each timed step.
    pub steps: Vec<LearnerStepTiming>,
    /// `tokens_per_step / median step time`.
    pub tokens_per_s: f64,
    /// `tokens_per_step / median step CPU time`: tokens per CPU-second, comparable across runs
    /// on a shared machine.
    pub tokens_per_cpu_s: f64,
    /// Loss of the last step (sanity: finite, and it should fall over steps at a useful lr).
    pub last_loss: f32,
    /// Resident memory before the first step (model loaded), MiB.
    pub rss_before_mib: Option<f64>,
    /// Resident memory when the timed steps start (model + optimizer moments), MiB.
    pub rss_timed_start_mib: Option<f64>,
    /// Peak resident memory during the timed steps, MiB (`VmHWM` after resetting it).
    pub peak_rss_mib: Option<f64>,
}

/// Reads a `kB` field of `/proc/self/status` in MiB (None off Linux).
pub fn proc_status_mib(field: &str) -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// User + system CPU seconds of this process so far (all threads), from `/proc/self/stat`
/// (clock ticks of 1/100 s, Linux's `USER_HZ`); 0 off Linux.
pub fn process_cpu_seconds() -> f64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Resets the process's peak-RSS counter (`VmHWM`), where the kernel allows it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

/// Times forward + backward + clip + AdamW steps of `model` (on an autodiff backend) on random
/// token rows, with the loss [`mean_nll`]. The model's parameters are updated.
pub fn learner_throughput<M: TrainBackend>(model: &mut Llama<M>, config: &LearnerBenchConfig) -> Result<LearnerBenchReport> {
    if !model.backend.is_autodiff() {
        return Err(TrainError::config("learner benchmark", "the model must be on an autodiff backend"));
    }
    if config.batch == 0 || config.seq < 2 || config.steps == 0 {
        return Err(TrainError::config("learner benchmark", format!("needs batch ≥ 1, seq ≥ 2, steps ≥ 1: {config:?}")));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let vocab = model.config.vocab_size as u32;
    let seqs: Vec<Vec<u32>> = (0..config.batch).map(|_| (0..config.seq).map(|_| rng.random_range(0..vocab)).collect()).collect();
    let mut optimizer = AdamW::<M::Leaf>::new(AdamWConfig::default())?;
    let leaf = model.backend.leaf_backend().clone();
    let trainable: usize = M::trainable_leaves(model).iter().map(|(_, t)| leaf.shape(t).iter().product::<usize>()).sum();
    let rss_before = proc_status_mib("VmRSS:");
    let mut steps = Vec::new();
    let mut last_loss = f32::NAN;
    let mut rss_timed_start = None;
    for i in 0..config.warmup_steps + config.steps {
        if i == config.warmup_steps {
            rss_timed_start = proc_status_mib("VmRSS:");
            reset_peak_rss();
        }
        let t0 = Instant::now();
        let cpu0 = process_cpu_seconds();
        let loss = mean_nll(model, &seqs);
        last_loss = model.backend.to_vec(&loss)[0];
        let t1 = Instant::now();
        let raw = model.backend.backward(&loss);
        drop(loss);
        // Device backends queue work asynchronously: wait for it before reading the clock.
        model.backend.synchronize();
        let t2 = Instant::now();
        let mut grads = ModelGrads::from_backward(model, raw);
        let clip = clip_grad_norm(&mut grads, config.max_grad_norm);
        let t3 = Instant::now();
        if clip.finite {
            optimizer.step(model, grads, config.lr)?;
        }
        model.backend.synchronize();
        let t4 = Instant::now();
        if i >= config.warmup_steps {
            steps.push(LearnerStepTiming {
                forward_s: (t1 - t0).as_secs_f64(),
                backward_s: (t2 - t1).as_secs_f64(),
                clip_s: (t3 - t2).as_secs_f64(),
                optimizer_s: (t4 - t3).as_secs_f64(),
                total_s: (t4 - t0).as_secs_f64(),
                cpu_s: process_cpu_seconds() - cpu0,
            });
        }
    }
    let tokens = config.batch * config.seq;
    let tokens_per_s = tokens as f64 / median(steps.iter().map(|s| s.total_s).collect());
    let tokens_per_cpu_s = tokens as f64 / median(steps.iter().map(|s| s.cpu_s).collect());
    Ok(LearnerBenchReport {
        backend: model.backend.name(),
        config: config.clone(),
        trainable_parameters: trainable,
        tokens_per_step: tokens,
        steps,
        tokens_per_s,
        tokens_per_cpu_s,
        last_loss,
        rss_before_mib: rss_before,
        rss_timed_start_mib: rss_timed_start,
        peak_rss_mib: proc_status_mib("VmHWM:"),
    })
}

/// What the decode benchmark measured at one batch size (the formulas of
/// `scripts/reference/hf_generate_bench.py`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecodeBenchReport {
    /// Sequences decoded together.
    pub batch: usize,
    /// Prompt length of every row.
    pub prompt_tokens: usize,
    /// Tokens generated per row.
    pub new_tokens: usize,
    /// Fastest time to generate 1 token per row (prefill), seconds.
    pub prefill_s: f64,
    /// Fastest time to generate `new_tokens` per row, seconds.
    pub total_s: f64,
    /// `batch · (new_tokens − 1) / (total − prefill)`.
    pub decode_tokens_per_s: f64,
    /// `batch · new_tokens / total`.
    pub end_to_end_tokens_per_s: f64,
}

/// Greedy decode throughput of the engine on `batch` random prompts of `prompt_tokens` tokens,
/// `new_tokens` new tokens each (no stop tokens, so every row produces exactly that many);
/// fastest of `repeats` runs after one warm-up.
pub fn decode_throughput<B: Backend>(model: Arc<Llama<B>>, batch: usize, prompt_tokens: usize, new_tokens: usize, repeats: usize) -> Result<DecodeBenchReport> {
    if batch == 0 || prompt_tokens == 0 || new_tokens < 2 || repeats == 0 {
        return Err(TrainError::config("decode benchmark", "needs batch ≥ 1, prompt ≥ 1, new tokens ≥ 2, repeats ≥ 1"));
    }
    let vocab = model.config.vocab_size as u32;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let prompts: Vec<Vec<u32>> = (0..batch).map(|_| (0..prompt_tokens).map(|_| rng.random_range(0..vocab)).collect()).collect();
    let config = EngineConfig { max_batch: batch, max_seq_len: prompt_tokens + new_tokens + 1 };
    let mut engine = Engine::new(model, None, config)?;
    let run = |engine: &mut Engine<B>, n: usize| -> Result<f64> {
        let requests = prompts.iter().map(|p| GenerationRequest::greedy(p.clone(), n)).collect();
        let t = Instant::now();
        let out = engine.generate_batch(requests)?;
        let dt = t.elapsed().as_secs_f64();
        if out.iter().any(|f| f.token_ids.len() != n) {
            return Err(TrainError::config("decode benchmark", "a row stopped before producing every token"));
        }
        Ok(dt)
    };
    run(&mut engine, 4)?;
    let (mut prefill, mut total) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..repeats {
        prefill = prefill.min(run(&mut engine, 1)?);
        total = total.min(run(&mut engine, new_tokens)?);
    }
    Ok(DecodeBenchReport {
        batch,
        prompt_tokens,
        new_tokens,
        prefill_s: prefill,
        total_s: total,
        decode_tokens_per_s: (batch * (new_tokens - 1)) as f64 / (total - prefill),
        end_to_end_tokens_per_s: (batch * new_tokens) as f64 / total,
    })
}

//! Learner tests on a tiny model: old log-probs across reshuffled epochs (A1), metric
//! aggregation over mini-batches × epochs (A4), log-probs at the rollout's temperature (A5),
//! −inf rollout log-probs (A7), and the CleanRL-style sign test of one `policy_update`.

use std::sync::Arc;

use memrl_policies::BurnBackend;
use memrl_policies::engine::{Engine, EngineConfig, GenerationRequest};
use memrl_policies::model::Llama;
use memrl_policies::sampling::SamplingParams;
use memrl_policies::train::optim::{AdamW, AdamWConfig};
use memrl_policies::train::tiny::{TinyPreset, init_tiny};

use crate::learner::batch::{MicroBatch, plan};
use crate::learner::update::{OldLogprobs, UpdateSettings, detached_logprobs, policy_update};
use crate::loss::LossConfig;
use crate::segments::Segment;

const VOCAB: usize = 32;

fn model() -> Llama<BurnBackend> {
    init_tiny(BurnBackend::flex_autodiff(), TinyPreset::L2D64, VOCAB, 0).unwrap()
}

/// Segment `i`: a prompt of `2 + i % 5` tokens and a response of three policy tokens.
fn segment(i: u64) -> Segment {
    let p = 2 + (i % 5) as usize;
    Segment {
        trajectory_id: i,
        group_id: 0,
        index: 0,
        is_last: true,
        prompt_ids: (0..p).map(|k| (1 + (i as usize * 7 + k * 3) % (VOCAB - 1)) as u32).collect(),
        response_ids: vec![(3 + i as u32) % VOCAB as u32, 5, (11 + 2 * i as u32) % VOCAB as u32],
        loss_mask: vec![1, 1, 1],
        rollout_logprobs: vec![-3.0, -3.0, -3.0],
        policy_version: 0,
    }
}

/// Learner settings for the tiny model: one mini-batch, one epoch, temperature 1.
pub(super) fn settings() -> UpdateSettings {
    UpdateSettings {
        loss: LossConfig::default(),
        lr: 1e-3,
        grad_clip: 1.0,
        micro_batch_tokens: 64,
        mini_batches: 1,
        epochs: 1,
        seed: 0,
        pad_id: 0,
        temperature: 1.0,
    }
}

fn advantages(segments: &[Segment]) -> Vec<Vec<f32>> {
    segments.iter().map(|s| vec![if s.trajectory_id % 2 == 0 { 1.0 } else { -1.0 }; 3]).collect()
}

/// The set of rows of each micro-batch of a plan (its layout).
fn layout(plan: &[Vec<MicroBatch>]) -> Vec<Vec<usize>> {
    plan.iter().flatten().map(|mb| mb.segment_of_row.clone()).collect()
}

#[test]
fn old_log_probs_follow_their_segments_into_every_epochs_layout() {
    let segments: Vec<Segment> = (0..7).map(segment).collect();
    let adv = advantages(&segments);
    let s = UpdateSettings { mini_batches: 2, epochs: 3, micro_batch_tokens: 12, ..settings() };
    let epoch = |e: u64| plan(&segments, &adv, s.mini_batches, s.micro_batch_tokens, s.seed + e, s.pad_id);
    assert_ne!(layout(&epoch(0)), layout(&epoch(1)), "the test needs a reshuffle between epochs");

    // Filed by segment from epoch 0's layout, read back in epoch 1's: the values a fresh pass
    // over epoch 1's layout computes.
    let m = model();
    let cache = OldLogprobs::compute(&m, &epoch(0), segments.len(), 1.0);
    for mb in epoch(1).iter().flatten() {
        let fresh = detached_logprobs(&m, mb, 1.0);
        let cached = cache.for_batch(mb);
        for (pos, &mask) in mb.loss_mask.iter().enumerate() {
            if mask != 0 {
                assert!((fresh[pos] - cached[pos]).abs() < 1e-5, "position {pos}: {} vs {}", fresh[pos], cached[pos]);
            }
        }
    }

    // The whole update runs (it used to index epoch 0's layout with epoch 1's).
    let mut m = model();
    let mut optimizer = AdamW::new(AdamWConfig::default()).unwrap();
    let report = policy_update(&mut m, &mut optimizer, None, &segments, &adv, &s, None).unwrap();
    assert_eq!(report.optimizer_steps, 6);
}

#[test]
fn loss_terms_and_tokens_aggregate_like_the_total_loss() {
    let segments: Vec<Segment> = (0..6).map(segment).collect();
    let adv = advantages(&segments);
    let tokens: usize = segments.iter().map(Segment::policy_token_count).sum();
    for (mini_batches, epochs) in [(1, 1), (2, 1), (3, 2)] {
        let mut m = model();
        let mut optimizer = AdamW::new(AdamWConfig::default()).unwrap();
        let s = UpdateSettings { mini_batches, epochs, ..settings() };
        let r = policy_update(&mut m, &mut optimizer, None, &segments, &adv, &s, None).unwrap();
        assert_eq!(r.optimizer_steps, mini_batches * epochs);
        // No KL, no entropy: each mini-batch's loss is its pg term, so their means agree.
        assert!((r.loss - r.diagnostics.pg_loss).abs() < 1e-9, "{mini_batches}×{epochs}: total {} vs pg {}", r.loss, r.diagnostics.pg_loss);
        assert_eq!(r.diagnostics.kl_loss, 0.0);
        assert_eq!((r.loss_tokens, r.diagnostics.tokens), (tokens, tokens), "{mini_batches}×{epochs}: each token counted once");
    }
}

#[test]
fn the_learner_scores_tokens_at_the_rollout_temperature() {
    let trained = model();
    let m = Arc::new(crate::policy::inference_copy(&trained).unwrap());
    let prompt: Vec<u32> = vec![1, 4, 9, 16, 25];
    let sample = |temperature: f32| {
        let mut engine = Engine::new(m.clone(), None, EngineConfig { max_batch: 1, max_seq_len: 64 }).unwrap();
        let request = GenerationRequest {
            prompt_ids: prompt.clone(),
            max_new_tokens: 12,
            sampling: SamplingParams { temperature, top_p: 1.0, top_k: 0 },
            seed: 5,
            stop_token_ids: Vec::new(),
            stop_strings: Vec::new(),
        };
        engine.generate_batch(vec![request]).unwrap().remove(0)
    };
    for temperature in [0.5f32, 1.0, 1.7] {
        let out = sample(temperature);
        let n = out.token_ids.len();
        let seg = Segment {
            prompt_ids: prompt.clone(),
            response_ids: out.token_ids.clone(),
            loss_mask: vec![1; n],
            rollout_logprobs: out.sampled_logprobs.clone(),
            ..segment(0)
        };
        let mb = MicroBatch::build(std::slice::from_ref(&seg), &[vec![0.0; n]], &[0], 0);
        let max_gap = |t: f32| {
            let learner = detached_logprobs(&*m, &mb, t);
            mb.loss_mask
                .iter()
                .zip(&learner)
                .zip(&mb.rollout_logprobs)
                .filter(|((m, _), _)| **m != 0)
                .map(|((_, l), r)| (l - f64::from(*r)).abs())
                .fold(0.0, f64::max)
        };
        // The sampled distribution is softmax(logits / T): the learner at T reproduces it.
        assert!(max_gap(temperature) < 1e-4, "T = {temperature}: gap {}", max_gap(temperature));
        if temperature != 1.0 {
            assert!(max_gap(1.0) > 1e-2, "at T = 1 the learner would score another distribution");
        }
    }
}

#[test]
fn a_minus_infinity_rollout_log_prob_trains_with_the_capped_weight() {
    let mut seg = segment(2);
    seg.rollout_logprobs[1] = f32::NEG_INFINITY;
    let segments = vec![seg, segment(3)];
    let adv = advantages(&segments);
    let mut m = model();
    let mut optimizer = AdamW::new(AdamWConfig::default()).unwrap();
    let r = policy_update(&mut m, &mut optimizer, None, &segments, &adv, &settings(), None).unwrap();
    assert_eq!(r.optimizer_steps, 1);
    assert!(r.diagnostics.tis_capped_frac > 0.0 && r.diagnostics.rollout_logprob_abs_diff.is_finite());
}

/// CleanRL-style sign test: one update raises log π of every positive-advantage token and
/// lowers it on every negative-advantage one.
#[test]
fn one_update_raises_positive_and_lowers_negative_advantage_tokens() {
    let segments: Vec<Segment> = (0..4).map(segment).collect();
    let adv = advantages(&segments);
    let mut m = model();
    let mut optimizer = AdamW::new(AdamWConfig { weight_decay: 0.0, ..AdamWConfig::default() }).unwrap();
    let layout = MicroBatch::build(&segments, &adv, &[0, 1, 2, 3], 0);
    let before = detached_logprobs(&m, &layout, 1.0);
    let s = UpdateSettings { lr: 1e-3, ..settings() };
    policy_update(&mut m, &mut optimizer, None, &segments, &adv, &s, None).unwrap();
    let after = detached_logprobs(&m, &layout, 1.0);
    let mut moved = 0;
    for pos in 0..layout.loss_mask.len() {
        if layout.loss_mask[pos] == 0 {
            continue;
        }
        let (a, delta) = (layout.advantages[pos], after[pos] - before[pos]);
        assert!(a * delta as f32 > 0.0, "position {pos}: advantage {a}, log π moved by {delta}");
        moved += 1;
    }
    assert_eq!(moved, 12);
}

/// With LoRA the rollout engine plays the merged inference copy ([`crate::policy::inference_copy`])
/// and the learner scores with the adapter wrapper (`x·W + s·(x·A)·B`): the two agree on the
/// sampled tokens' log-probs, and the adapters matter (the base model scores them differently).
#[test]
fn lora_rollout_log_probs_equal_the_learners_recomputation() {
    use memrl_policies::Backend;
    use memrl_policies::train::lora::{Lora, LoraConfig, apply_lora};
    use memrl_policies::train::params::TrainBackend;
    let config = LoraConfig { rank: 4, alpha: 8.0, dropout: 0.0, target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()], seed: 1 };
    let mut adapted = apply_lora(model(), &config).unwrap();
    // B starts at zero (the adapted model equals the base): give it values, as training would.
    let inner = adapted.backend.inner().clone();
    for (i, (name, leaf)) in Lora::trainable_leaves_mut(&mut adapted).into_iter().enumerate() {
        if name.ends_with("lora_B.weight") {
            let shape = inner.shape(leaf);
            let n: usize = shape.iter().product();
            *leaf = inner.param((0..n).map(|k| ((k * 7 + i * 3) % 11) as f32 * 0.02 - 0.1).collect(), &shape);
        }
    }
    let merged = Arc::new(crate::policy::inference_copy(&adapted).unwrap());
    let prompt: Vec<u32> = vec![1, 4, 9, 16, 25];
    let mut engine = Engine::new(merged, None, EngineConfig { max_batch: 1, max_seq_len: 64 }).unwrap();
    let request = GenerationRequest {
        prompt_ids: prompt.clone(),
        max_new_tokens: 12,
        sampling: SamplingParams { temperature: 1.0, top_p: 1.0, top_k: 0 },
        seed: 5,
        stop_token_ids: Vec::new(),
        stop_strings: Vec::new(),
    };
    let out = engine.generate_batch(vec![request]).unwrap().remove(0);
    let n = out.token_ids.len();
    let seg = Segment {
        prompt_ids: prompt,
        response_ids: out.token_ids.clone(),
        loss_mask: vec![1; n],
        rollout_logprobs: out.sampled_logprobs.clone(),
        ..segment(0)
    };
    let mb = MicroBatch::build(std::slice::from_ref(&seg), &[vec![0.0; n]], &[0], 0);
    let gap = |learner: &[f64]| {
        mb.loss_mask
            .iter()
            .zip(learner)
            .zip(&mb.rollout_logprobs)
            .filter(|((m, _), _)| **m != 0)
            .map(|((_, l), r)| (l - f64::from(*r)).abs())
            .fold(0.0, f64::max)
    };
    let with_adapters = gap(&detached_logprobs(&adapted, &mb, 1.0));
    assert!(with_adapters < 1e-4, "the learner's LoRA model and the merged rollout copy disagree by {with_adapters}");
    let base = gap(&detached_logprobs(&model(), &mb, 1.0));
    assert!(base > 1e-3, "the adapters should change the log-probs (base gap {base})");
}

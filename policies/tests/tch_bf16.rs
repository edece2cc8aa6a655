//! Mixed precision on the libtorch backend (`--features tch`, CPU: libtorch runs bf16 on the
//! CPU too, slowly, so a tiny model is used): bf16 logits and gradients close to f32 within
//! bf16's precision, master weights and optimizer moments kept in f32, training still reduces
//! the loss, an inference copy stored in bf16, and generation on it.
//!
//! Run as `tch_parity` (see `scripts/test.sh`).
#![cfg(feature = "tch")]

use memrl_policies::train::bench::mean_nll;
use memrl_policies::train::tiny::{TinyPreset, init_tiny};
use memrl_policies::train::{AdamW, AdamWConfig, ModelGrads, TrainBackend, clip_grad_norm};
use memrl_policies::{Backend, Engine, EngineConfig, GenerationRequest, Llama, Precision, TchBackend};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::Kind;

const VOCAB: usize = 96;

fn model(precision: Precision, autodiff: bool) -> Llama<TchBackend> {
    let backend = TchBackend::cpu().with_autodiff(autodiff).with_precision(precision);
    init_tiny(backend, TinyPreset::L2D64, VOCAB, 3).expect("tiny model")
}

fn batch() -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // Two rows of different lengths: the padded (masked) attention path.
    [24usize, 17].iter().map(|&n| (0..n).map(|_| rng.random_range(0..VOCAB as u32)).collect()).collect()
}

fn logits(m: &Llama<TchBackend>, ids: &[u32]) -> Vec<f32> {
    let n = ids.len();
    m.backend.to_vec(&m.lm_head(m.forward(ids, 1, n, &[n])))
}

/// `‖a - b‖₂ / ‖b‖₂`.
fn l2_rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    assert!(norm > 0.0, "reference is all zero");
    (diff / norm).sqrt()
}

fn kinds(m: &Llama<TchBackend>) -> Vec<(String, Kind)> {
    <TchBackend as TrainBackend>::trainable_leaves(m).into_iter().map(|(n, t)| (n, t.as_tch().kind())).collect()
}

// bf16 keeps 8 significant bits (relative rounding 2^-9 ≈ 2e-3 per value); through two layers
// the logits of a randomly initialised model differ from f32 by about 1e-2 of their norm. A
// wrong cast (lost weights, a mixed-up layout) gives differences of order 1.
const BF16_TOL: f64 = 3e-2;

#[test]
fn bf16_logits_are_close_to_f32_but_not_identical() {
    let f32_model = model(Precision::F32, false);
    let bf16_model = model(Precision::Bf16, false);
    let ids = &batch()[0];
    let (a, b) = (logits(&bf16_model, ids), logits(&f32_model, ids));
    let rel = l2_rel(&a, &b);
    eprintln!("bf16 vs f32 logits: ‖diff‖/‖f32‖ = {rel:.3e}");
    assert!(rel < BF16_TOL, "bf16 logits differ from f32 by {rel:.3e} of their norm");
    // bf16 really was used: an f32 path would agree to ~1e-7.
    assert!(rel > 1e-5, "bf16 logits equal f32 ones ({rel:.3e}): no bf16 compute happened");
    assert_eq!(bf16_model.backend.name(), "tch-cpu-bf16");
    // The inference model stores its weights in bf16 (half the bytes to read per decode step).
    assert!(kinds(&bf16_model).iter().all(|(_, k)| *k == Kind::BFloat16), "{:?}", kinds(&bf16_model));
    // The autodiff model's forward gives the same logits as the inference one, up to bf16 rounding
    // of the f32 residual stream it keeps.
    let train_logits = logits(&model(Precision::Bf16, true), ids);
    let rel_train = l2_rel(&train_logits, &b);
    assert!(rel_train < BF16_TOL, "bf16 autodiff logits differ from f32 by {rel_train:.3e}");
}

#[test]
fn bf16_gradients_are_f32_and_close_to_f32_gradients() {
    let grads = |precision| {
        let m = model(precision, true);
        let loss = mean_nll(&m, &batch());
        let g = ModelGrads::from_backward(&m, m.backend.backward(&loss));
        g.names().iter().map(|n| (n.to_string(), g.to_host(n).expect("every parameter has a gradient"))).collect::<Vec<_>>()
    };
    let (full, mixed) = (grads(Precision::F32), grads(Precision::Bf16));
    assert_eq!(full.len(), mixed.len());
    let mut worst = (0.0f64, String::new());
    for ((name, f), (_, m)) in full.iter().zip(&mixed) {
        let rel = l2_rel(m, f);
        if rel > worst.0 {
            worst = (rel, name.clone());
        }
        assert!(rel < 5e-2, "{name}: bf16 gradient differs from f32 by {rel:.3e} of its norm");
    }
    eprintln!("bf16 vs f32 gradients: worst ‖diff‖/‖f32‖ = {:.3e} ({})", worst.0, worst.1);
    assert!(worst.0 > 1e-5, "bf16 gradients equal f32 ones: no bf16 compute happened");
    // The gradients a leaf receives are f32 (cast back through the bf16 copy's graph).
    let m = model(Precision::Bf16, true);
    let loss = mean_nll(&m, &batch());
    let raw = m.backend.backward(&loss);
    let leaves = <TchBackend as TrainBackend>::trainable_leaves(&m);
    let (name, leaf) = &leaves[1];
    let g = m.backend.grad(&raw, leaf).unwrap_or_else(|| panic!("{name}: no gradient"));
    assert_eq!(g.as_tch().kind(), Kind::Float, "{name}");
}

#[test]
fn bf16_training_keeps_f32_master_weights_and_reduces_the_loss() {
    let mut m = model(Precision::Bf16, true);
    assert!(kinds(&m).iter().all(|(_, k)| *k == Kind::Float), "master weights must start f32: {:?}", kinds(&m));
    let seqs = batch();
    let mut opt = AdamW::<TchBackend>::new(AdamWConfig::default()).unwrap();
    let mut losses = Vec::new();
    for _ in 0..8 {
        let loss = mean_nll(&m, &seqs);
        losses.push(m.backend.to_vec(&loss)[0]);
        let mut g = ModelGrads::from_backward(&m, m.backend.backward(&loss));
        assert!(clip_grad_norm(&mut g, 1.0).finite);
        opt.step(&mut m, g, 1e-2).unwrap();
    }
    eprintln!("bf16 training losses: {losses:?}");
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(losses[7] < losses[0] - 0.1, "loss did not fall: {losses:?}");
    // Master weights and moments are still f32 after the updates, and still trainable leaves.
    assert!(kinds(&m).iter().all(|(_, k)| *k == Kind::Float), "{:?}", kinds(&m));
    assert!(<TchBackend as TrainBackend>::trainable_leaves(&m).iter().all(|(_, t)| t.as_tch().requires_grad()));
    let state = opt.state(&m.backend);
    assert_eq!(state.params.len(), kinds(&m).len());
    // Moments hold f32 detail that bf16 would round away: at least some values are not bf16-representable.
    let off_grid = state.params.values().flat_map(|p| p.exp_avg_sq.iter()).filter(|&&x| x != half::bf16::from_f32(x).to_f32()).count();
    assert!(off_grid > 0, "every second moment is a bf16 value: moments are not kept in f32");
}

#[test]
fn bf16_inference_copy_generates_every_requested_token() {
    let m = std::sync::Arc::new(model(Precision::Bf16, false));
    let mut engine = Engine::new(m, None, EngineConfig { max_batch: 2, max_seq_len: 48 }).unwrap();
    let rows = batch();
    let out = engine.generate_batch(rows.iter().map(|r| GenerationRequest::greedy(r.clone(), 6)).collect()).unwrap();
    assert_eq!(out.len(), 2);
    for f in &out {
        assert_eq!(f.token_ids.len(), 6);
        assert!(f.token_ids.iter().all(|&t| (t as usize) < VOCAB));
    }
}

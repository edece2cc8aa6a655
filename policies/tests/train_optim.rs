//! AdamW on a model (PyTorch semantics, parameters stay trainable leaves, bad gradients are
//! rejected, resume is exact), gradient accumulation, and global-norm clipping.

use memrl_policies::train::bench::mean_nll;
use memrl_policies::train::optim::AdamWState;
use memrl_policies::train::params::llama_from_hf_tensors;
use memrl_policies::train::tiny::random_hf_tensors;
use memrl_policies::train::{AdamW, AdamWConfig, ModelGrads, TinyPreset, clip_grad_norm, hf_state_dict, init_tiny};
use memrl_policies::{Backend, BurnBackend, Llama};

fn tiny() -> Llama<BurnBackend> {
    init_tiny(BurnBackend::flex_autodiff(), TinyPreset::L2D64, 50, 3).unwrap()
}

fn rows() -> Vec<Vec<u32>> {
    vec![vec![5, 9, 13, 44, 2, 7, 19, 30], vec![3, 3, 8, 21, 40, 6, 11, 12]]
}

fn grads_of(model: &mut Llama<BurnBackend>, seqs: &[Vec<u32>]) -> ModelGrads<BurnBackend> {
    let loss = mean_nll(model, seqs);
    let raw = model.backend.backward(&loss);
    ModelGrads::from_backward(model, raw)
}

/// Host values of every parameter by name.
fn values(model: &Llama<BurnBackend>) -> Vec<(String, Vec<f32>)> {
    model.named_parameters().into_iter().map(|(n, t)| (n, model.backend.to_vec(t))).collect()
}

#[test]
fn one_step_matches_the_pytorch_update_rule_on_every_parameter() {
    // A step from zero moments with weight decay: p' = p(1 - lr·wd) - lr·g/(|g| + eps) exactly
    // (bias corrections cancel at step 1), checked on every parameter of the model.
    let mut model = tiny();
    let before = values(&model);
    let grads = grads_of(&mut model, &rows());
    let host: Vec<(String, Vec<f32>)> = grads.names().iter().map(|n| (n.to_string(), grads.to_host(n).unwrap())).collect();
    let (lr, wd) = (1e-2, 0.1);
    let mut opt = AdamW::new(AdamWConfig { weight_decay: wd, ..AdamWConfig::default() }).unwrap();
    let report = opt.step(&mut model, grads, lr).unwrap();
    assert_eq!(report.updated, before.len());
    for ((name, p0), ((_, p1), (_, g))) in before.iter().zip(values(&model).iter().zip(&host)) {
        for i in 0..p0.len() {
            let want = p0[i] as f64 * (1.0 - lr * wd) - lr * g[i] as f64 / ((g[i] as f64).abs() + 1e-8);
            assert!((p1[i] as f64 - want).abs() < 1e-6, "{name}[{i}]: {} vs {want}", p1[i]);
        }
    }
}

#[test]
fn updated_parameters_stay_leaves_and_the_loss_falls() {
    let mut model = tiny();
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    let mut losses = vec![];
    for _ in 0..8 {
        let loss = mean_nll(&model, &rows());
        losses.push(model.backend.to_vec(&loss)[0]);
        let raw = model.backend.backward(&loss);
        let grads = ModelGrads::from_backward(&model, raw);
        // Every parameter still records a gradient after earlier updates.
        for n in grads.names() {
            assert!(grads.to_host(n).is_some(), "{n} lost its gradient after an update");
        }
        opt.step(&mut model, grads, 3e-3).unwrap();
    }
    assert!(losses[7] < losses[0] - 0.5, "overfitting one batch should lower the loss: {losses:?}");
    assert_eq!(opt.steps(), 8);
    // The tied lm_head follows the updated embedding.
    let b = &model.backend;
    assert_eq!(b.to_vec(&model.lm_head), b.to_vec(&model.embed_tokens));
}

#[test]
fn accumulated_micro_batches_equal_the_full_batch() {
    let mut model = tiny();
    let r = rows();
    // Both rows have the same length, so the full-batch mean is the mean of the two row means.
    let full = grads_of(&mut model, &r);
    let mut acc = grads_of(&mut model, &r[..1]);
    acc.accumulate(grads_of(&mut model, &r[1..])).unwrap();
    acc.scale_by(0.5);
    for n in full.names() {
        let (a, b) = (full.to_host(n).unwrap(), acc.to_host(n).unwrap());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5 + 1e-4 * x.abs(), "{n}: {x} vs {y}");
        }
    }
    // Differently scaled halves accumulate correctly too.
    let mut g1 = grads_of(&mut model, &r[..1]);
    g1.scale_by(0.5);
    let mut g2 = grads_of(&mut model, &r[1..]);
    g2.scale_by(0.25);
    let want: Vec<Vec<f32>> = full
        .names()
        .iter()
        .map(|n| {
            let a = grads_of(&mut model, &r[..1]).to_host(n).unwrap();
            let b = grads_of(&mut model, &r[1..]).to_host(n).unwrap();
            a.iter().zip(&b).map(|(x, y)| 0.5 * x + 0.25 * y).collect()
        })
        .collect();
    g1.accumulate(g2).unwrap();
    for (n, w) in full.names().iter().zip(&want) {
        for (x, y) in g1.to_host(n).unwrap().iter().zip(w) {
            assert!((x - y).abs() < 1e-6 + 1e-5 * y.abs(), "{n}: {x} vs {y}");
        }
    }
}

#[test]
fn clipping_reports_the_pre_clip_norm_and_scales_to_max_norm() {
    let b = BurnBackend::flex();
    let mut g = ModelGrads::from_host(b.clone(), vec![("a".into(), vec![2], vec![3.0, 0.0]), ("b".into(), vec![1, 1], vec![4.0])]);
    assert!((g.global_norm() - 5.0).abs() < 1e-9);
    let r = clip_grad_norm(&mut g, 1.0);
    assert!(r.finite && r.clipped());
    assert!((r.norm - 5.0).abs() < 1e-9);
    assert!((g.global_norm() - 1.0).abs() < 1e-5, "{}", g.global_norm());
    assert!((g.to_host("a").unwrap()[0] - 0.6).abs() < 1e-5);
    // Under the limit: untouched.
    let r = clip_grad_norm(&mut g, 10.0);
    assert!(!r.clipped() && r.factor == 1.0);
    // Non-finite: reported, gradients untouched, so the caller can skip the step.
    let mut bad = ModelGrads::from_host(b.clone(), vec![("a".into(), vec![2], vec![f32::NAN, 1.0])]);
    let r = clip_grad_norm(&mut bad, 1.0);
    assert!(!r.finite && r.norm.is_nan());
    assert_eq!(bad.to_host("a").unwrap()[1], 1.0);
    let mut inf = ModelGrads::from_host(b, vec![("a".into(), vec![1], vec![f32::INFINITY])]);
    assert!(!clip_grad_norm(&mut inf, 1.0).finite);
}

#[test]
fn clipping_matches_torch_on_model_gradients() {
    // Same norm definition as torch.nn.utils.clip_grad_norm_: sqrt of the sum of every squared entry.
    let mut model = tiny();
    let mut g = grads_of(&mut model, &rows());
    let by_hand: f64 = g.names().iter().flat_map(|n| g.to_host(n).unwrap()).map(|x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let r = clip_grad_norm(&mut g, by_hand / 4.0);
    assert!((r.norm - by_hand).abs() < 1e-5 * by_hand, "{} vs {by_hand}", r.norm);
    assert!((g.global_norm() - by_hand / 4.0).abs() < 1e-4 * by_hand);
}

#[test]
fn bad_gradients_and_learning_rates_are_rejected_without_updating() {
    let mut model = tiny();
    let before = values(&model);
    let b = model.backend.clone();
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    let unknown = ModelGrads::from_host(b.clone(), vec![("model.layers.9.mlp.up_proj.weight".into(), vec![1], vec![1.0])]);
    let e = opt.step(&mut model, unknown, 1e-3).unwrap_err().to_string();
    assert!(e.contains("model.layers.9.mlp.up_proj.weight") && e.contains("not a trainable"), "{e}");
    let wrong = ModelGrads::from_host(b.clone(), vec![("model.norm.weight".into(), vec![3], vec![1.0; 3])]);
    let e = opt.step(&mut model, wrong, 1e-3).unwrap_err().to_string();
    assert!(e.contains("model.norm.weight") && e.contains("shape"), "{e}");
    let g = grads_of(&mut model, &rows());
    let e = opt.step(&mut model, g, f64::NAN).unwrap_err().to_string();
    assert!(e.contains("learning rate"), "{e}");
    assert_eq!(values(&model), before);
    assert_eq!(opt.steps(), 0);
    assert!(AdamW::<BurnBackend>::new(AdamWConfig { beta2: 1.0, ..AdamWConfig::default() }).is_err());
}

#[test]
fn parameters_without_gradient_are_skipped_and_no_decay_is_honoured() {
    let mut model = tiny();
    let before = values(&model);
    let b = model.backend.clone();
    let shape = b.shape(&model.norm);
    // Only two parameters have gradients (zero gradients: only decay moves them).
    let grads = ModelGrads::from_host(
        b.clone(),
        vec![
            ("model.norm.weight".into(), shape.clone(), vec![0.0; shape[0]]),
            ("model.layers.0.mlp.up_proj.weight".into(), b.shape(&model.layers[0].up_proj.weight), vec![0.0; 64 * 192]),
        ],
    );
    let mut opt = AdamW::new(AdamWConfig { weight_decay: 0.5, no_decay: vec!["norm".into()], ..AdamWConfig::default() }).unwrap();
    let report = opt.step(&mut model, grads, 0.1).unwrap();
    assert_eq!((report.updated, report.skipped), (2, before.len() - 2));
    for ((name, p0), (_, p1)) in before.iter().zip(values(&model)) {
        if name == "model.layers.0.mlp.up_proj.weight" {
            for (x, y) in p0.iter().zip(&p1) {
                assert!((x * 0.95 - y).abs() < 1e-7, "{name}: decayed by 1 - lr·wd");
            }
        } else {
            assert_eq!(p0, &p1, "{name} must be unchanged");
        }
    }
    let state = opt.state(&b);
    assert_eq!(state.params.len(), 2);
}

/// A model on the autodiff backend from the host values of another.
fn copy_of(model: &Llama<BurnBackend>) -> Llama<BurnBackend> {
    llama_from_hf_tensors(BurnBackend::flex_autodiff(), model.config.clone(), hf_state_dict(model)).unwrap()
}

#[test]
fn resuming_from_exported_state_is_bit_exact() {
    let mut a = tiny();
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    for _ in 0..2 {
        let g = grads_of(&mut a, &rows());
        opt.step(&mut a, g, 1e-2).unwrap();
    }
    let state: AdamWState = opt.state(&a.backend);
    assert_eq!(state.step, 2);
    assert!(state.params.values().all(|m| m.step == 2));
    let mut b = copy_of(&a);
    let mut resumed = AdamW::from_state(state.clone(), &b).unwrap();
    let ga = grads_of(&mut a, &rows());
    let gb = grads_of(&mut b, &rows());
    opt.step(&mut a, ga, 1e-2).unwrap();
    resumed.step(&mut b, gb, 1e-2).unwrap();
    assert_eq!(values(&a), values(&b));
    assert_eq!(opt.state(&a.backend), resumed.state(&b.backend));
    // State for another model is rejected with the parameter's name.
    let other = init_tiny(BurnBackend::flex_autodiff(), TinyPreset::L4D128, 50, 3).unwrap();
    let e = AdamW::from_state(state, &other).err().unwrap().to_string();
    assert!(e.contains("model.") && e.contains("shape"), "{e}");
    let _ = random_hf_tensors;
}

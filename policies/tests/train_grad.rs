//! Gradients of the training path: autodiff against central finite differences on a tiny f32
//! model (random coordinates of every parameter kind, and a random direction per tensor), and
//! coverage: every trainable parameter receives a non-zero gradient, with and without LoRA;
//! with LoRA no frozen weight receives one.

use memrl_policies::train::bench::mean_nll;
use memrl_policies::train::lora::{LoraTensor, adapter_state_dict, load_adapters};
use memrl_policies::train::params::llama_from_hf_tensors;
use memrl_policies::train::tiny::random_hf_tensors;
use memrl_policies::train::{AdamW, AdamWConfig, Lora, LoraConfig, ModelGrads, TrainBackend, apply_lora};
use memrl_policies::weights::{HostTensor, transpose_host};
use memrl_policies::{Backend, BurnBackend, Llama, LlamaConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const VOCAB: usize = 40;

/// A tiny config; Qwen2 gives q/k/v biases, untied gives a separate lm_head.
fn config(arch: &str, tied: bool) -> LlamaConfig {
    let v = json!({
        "architectures": [arch], "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "vocab_size": VOCAB, "tie_word_embeddings": tied, "max_position_embeddings": 64
    });
    LlamaConfig::from_hf_json(&v, "test").unwrap()
}

fn batch() -> Vec<Vec<u32>> {
    vec![vec![3, 17, 5, 29, 11, 8, 2, 36], vec![7, 1, 22, 9, 14]]
}

/// Non-trivial norm weights (ones would hide a wrong norm gradient less well).
fn tensors(c: &LlamaConfig, seed: u64) -> Vec<(String, HostTensor)> {
    let mut t = random_hf_tensors(c, seed, 0.25);
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 100);
    for (name, h) in t.iter_mut() {
        if name.contains("norm") {
            for x in h.data.iter_mut() {
                *x = 0.5 + rng.random::<f32>();
            }
        }
    }
    t
}

fn loss_value(model: &Llama<BurnBackend>) -> f64 {
    model.backend.to_vec(&mean_nll(model, &batch()))[0] as f64
}

fn is_linear(name: &str) -> bool {
    memrl_policies::train::params::is_transposed_weight(name)
}

/// Autodiff gradients in HF layout, by name.
fn hf_grads(c: &LlamaConfig, t: &[(String, HostTensor)]) -> Vec<(String, Vec<f32>)> {
    let model = llama_from_hf_tensors(BurnBackend::flex_autodiff(), c.clone(), t.to_vec()).unwrap();
    let loss = mean_nll(&model, &batch());
    let raw = model.backend.backward(&loss);
    let grads = ModelGrads::from_backward(&model, raw);
    t.iter()
        .map(|(name, h)| {
            let g = grads.to_host(name).unwrap_or_else(|| panic!("{name}: no gradient"));
            let g = if is_linear(name) { transpose_host(&g, h.shape[1], h.shape[0]) } else { g };
            (name.clone(), g)
        })
        .collect()
}

/// Loss with tensor `name` replaced by `f(values)`.
fn perturbed_loss(c: &LlamaConfig, t: &[(String, HostTensor)], name: &str, f: impl Fn(&mut Vec<f32>)) -> f64 {
    let mut t = t.to_vec();
    let h = &mut t.iter_mut().find(|(n, _)| n == name).unwrap().1;
    f(&mut h.data);
    loss_value(&llama_from_hf_tensors(BurnBackend::flex(), c.clone(), t).unwrap())
}

/// Step 1e-2: the loss is O(1) and computed in f32 (rounding ~1e-6), so the central difference
/// carries ~1e-4 absolute noise from rounding and O(h²) ≈ 1e-4 truncation; smaller steps make
/// rounding dominate. Coordinates and directions are compared at that tolerance.
const H: f32 = 1e-2;

fn check_model(c: &LlamaConfig, seed: u64) -> (f64, f64, usize) {
    let t = tensors(c, seed);
    let grads = hf_grads(c, &t);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut worst_coord, mut worst_dir, mut checked) = (0.0f64, 0.0f64, 0);
    for (name, g) in &grads {
        // Three random coordinates.
        for _ in 0..3 {
            let i = rng.random_range(0..g.len());
            let plus = perturbed_loss(c, &t, name, |d| d[i] += H);
            let minus = perturbed_loss(c, &t, name, |d| d[i] -= H);
            let fd = (plus - minus) / (2.0 * H as f64);
            let err = (fd - g[i] as f64).abs();
            worst_coord = worst_coord.max(err);
            assert!(err < 5e-4 + 2e-2 * fd.abs(), "{name}[{i}]: finite difference {fd:.6} vs autodiff {:.6}", g[i]);
            checked += 1;
        }
        // A random unit direction over the whole tensor.
        let u: Vec<f32> = (0..g.len()).map(|_| rng.random::<f32>() - 0.5).collect();
        let norm = u.iter().map(|x| x * x).sum::<f32>().sqrt();
        let u: Vec<f32> = u.iter().map(|x| x / norm).collect();
        let plus = perturbed_loss(c, &t, name, |d| d.iter_mut().zip(&u).for_each(|(x, ui)| *x += H * ui));
        let minus = perturbed_loss(c, &t, name, |d| d.iter_mut().zip(&u).for_each(|(x, ui)| *x -= H * ui));
        let fd = (plus - minus) / (2.0 * H as f64);
        let ad: f64 = g.iter().zip(&u).map(|(a, b)| *a as f64 * *b as f64).sum();
        let err = (fd - ad).abs();
        worst_dir = worst_dir.max(err);
        assert!(err < 5e-4 + 2e-2 * fd.abs(), "{name} along a random direction: finite difference {fd:.6} vs autodiff {ad:.6}");
    }
    (worst_coord, worst_dir, checked)
}

#[test]
fn autodiff_matches_finite_differences_for_every_parameter_kind() {
    // Qwen2 untied: embeddings, norms, q/k/v/o with q/k/v biases, MLP, final norm, lm_head.
    let (c1, d1, n1) = check_model(&config("Qwen2ForCausalLM", false), 1);
    // Llama tied: the embedding also serves as lm_head.
    let (c2, d2, n2) = check_model(&config("LlamaForCausalLM", true), 2);
    eprintln!("finite differences: {} coordinates, worst |fd - autodiff| {:.2e} (coordinates), {:.2e} (directions)", n1 + n2, c1.max(c2), d1.max(d2));
}

#[test]
fn lora_adapter_gradients_match_finite_differences() {
    let c = config("LlamaForCausalLM", true);
    let t = tensors(&c, 3);
    let lora = LoraConfig { rank: 2, alpha: 4.0, dropout: 0.0, seed: 5, ..LoraConfig::default() };
    // Non-zero B so both A and B have informative gradients.
    let build = |b: BurnBackend, adapters: Option<Vec<(String, HostTensor)>>| {
        let base = llama_from_hf_tensors(b, c.clone(), t.clone()).unwrap();
        let mut m = apply_lora(base, &lora).unwrap();
        let adapters = adapters.unwrap_or_else(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            adapter_state_dict(&m)
                .into_iter()
                .map(|(n, mut h)| {
                    if n.contains("lora_B") {
                        h.data.iter_mut().for_each(|x| *x = rng.random::<f32>() - 0.5);
                    }
                    (n, h)
                })
                .collect()
        });
        load_adapters(&mut m, adapters, std::path::Path::new("test")).unwrap();
        m
    };
    let trained = build(BurnBackend::flex_autodiff(), None);
    let adapters = adapter_state_dict(&trained);
    let loss = mean_nll(&trained, &batch());
    let raw = trained.backend.backward(&loss);
    let grads = ModelGrads::from_backward(&trained, raw);
    let eval = |adapters: Vec<(String, HostTensor)>| {
        let m = build(BurnBackend::flex(), Some(adapters));
        m.backend.to_vec(&mean_nll(&m, &batch()))[0] as f64
    };
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut worst = 0.0f64;
    for (peft_name, h) in &adapters {
        let name = peft_name.strip_prefix("base_model.model.").unwrap();
        // Ours is stored transposed relative to PEFT's layout.
        let g = grads.to_host(name).unwrap();
        let g = transpose_host(&g, h.shape[1], h.shape[0]);
        for _ in 0..2 {
            let i = rng.random_range(0..g.len());
            let with = |delta: f32| {
                let mut a = adapters.clone();
                a.iter_mut().find(|(n, _)| n == peft_name).unwrap().1.data[i] += delta;
                eval(a)
            };
            let fd = (with(H) - with(-H)) / (2.0 * H as f64);
            let err = (fd - g[i] as f64).abs();
            worst = worst.max(err);
            assert!(err < 5e-4 + 2e-2 * fd.abs(), "{peft_name}[{i}]: finite difference {fd:.6} vs autodiff {:.6}", g[i]);
        }
    }
    eprintln!("LoRA finite differences: worst |fd - autodiff| {worst:.2e}");
}

/// Asserts every trainable parameter has a finite, non-zero gradient.
fn assert_full_coverage<M: TrainBackend>(model: &mut Llama<M>) -> usize {
    let loss = mean_nll(model, &batch());
    let raw = model.backend.backward(&loss);
    let grads = ModelGrads::from_backward(model, raw);
    let names: Vec<String> = grads.names().iter().map(|s| s.to_string()).collect();
    for name in &names {
        let g = grads.to_host(name).unwrap_or_else(|| panic!("{name}: no gradient"));
        assert!(g.iter().any(|x| *x != 0.0), "{name}: zero gradient");
        assert!(g.iter().all(|x| x.is_finite()), "{name}: non-finite gradient");
    }
    names.len()
}

#[test]
fn every_parameter_receives_a_gradient_in_full_fine_tuning() {
    for (arch, tied, expected) in [("LlamaForCausalLM", true, 1 + 2 * 9 + 1), ("Qwen2ForCausalLM", false, 1 + 2 * 12 + 1 + 1)] {
        let c = config(arch, tied);
        let mut model = llama_from_hf_tensors(BurnBackend::flex_autodiff(), c.clone(), tensors(&c, 9)).unwrap();
        let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), expected, "{arch}");
        assert_eq!(assert_full_coverage(&mut model), expected, "{arch}");
    }
}

#[test]
fn with_lora_only_adapters_receive_gradients() {
    let c = config("Qwen2ForCausalLM", false);
    let base = llama_from_hf_tensors(BurnBackend::flex_autodiff(), c.clone(), tensors(&c, 6)).unwrap();
    let mut model = apply_lora(base, &LoraConfig { rank: 4, alpha: 8.0, seed: 1, ..LoraConfig::default() }).unwrap();
    let inner = model.backend.inner().clone();
    assert_eq!(Lora::<BurnBackend>::trainable_leaves(&model).len(), 2 * 7 * 2);

    // At initialisation B = 0: every B gets a gradient, every A exactly zero (as in PEFT), and
    // no frozen tensor (base weights, biases, norms, embeddings, lm_head) gets any.
    let loss = mean_nll(&model, &batch());
    let raw = model.backend.backward(&loss);
    let mut frozen = 0;
    for (name, t) in model.named_parameters() {
        let base = match t {
            LoraTensor::Plain(t) => t,
            LoraTensor::Adapted(w) => &w.base,
        };
        assert!(inner.grad(&raw, base).is_none(), "frozen {name} received a gradient");
        frozen += 1;
    }
    assert_eq!(frozen, 1 + 2 * 12 + 1 + 1);
    let grads = ModelGrads::from_backward(&model, raw);
    for name in grads.names() {
        let g = grads.to_host(name).unwrap_or_else(|| panic!("{name}: no gradient"));
        if name.contains("lora_B") {
            assert!(g.iter().any(|x| *x != 0.0), "{name}: zero gradient");
        } else {
            assert!(g.iter().all(|x| *x == 0.0), "{name}: A must get a zero gradient while B = 0");
        }
    }
    // After one AdamW step B ≠ 0 and every adapter matrix gets a non-zero gradient.
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    let report = opt.step(&mut model, grads, 1e-2).unwrap();
    assert_eq!(report.updated, 2 * 7 * 2);
    assert_eq!(assert_full_coverage(&mut model), 2 * 7 * 2);
}

#[test]
fn lora_dropout_is_seeded_and_off_in_evaluation() {
    let c = config("LlamaForCausalLM", true);
    let lora = LoraConfig { rank: 2, alpha: 4.0, dropout: 0.5, seed: 3, ..LoraConfig::default() };
    let make = || {
        let base = llama_from_hf_tensors(BurnBackend::flex(), c.clone(), tensors(&c, 7)).unwrap();
        let mut m = apply_lora(base, &lora).unwrap();
        // Non-zero B so dropout on the adapter input changes the output.
        let adapters = adapter_state_dict(&m)
            .into_iter()
            .map(|(n, mut h)| {
                h.data.iter_mut().enumerate().for_each(|(i, x)| *x += if n.contains("lora_B") { 0.3 * ((i % 5) as f32 - 2.0) } else { 0.0 });
                (n, h)
            })
            .collect();
        load_adapters(&mut m, adapters, std::path::Path::new("test")).unwrap();
        m
    };
    let loss = |m: &Llama<Lora<BurnBackend>>| m.backend.to_vec(&mean_nll(m, &batch()))[0];
    let (a, b) = (make(), make());
    let (a1, a2, b1) = (loss(&a), loss(&a), loss(&b));
    assert_eq!(a1, b1, "same seed, same masks");
    assert_ne!(a1, a2, "a new mask per forward");
    a.backend.set_training(false);
    b.backend.set_training(false);
    assert_eq!(loss(&a), loss(&a));
    assert_eq!(loss(&a), loss(&b));
}

//! The libtorch backend (`--features tch`, CPU) against the burn backend and transformers' reference
//! on the real model, SmolLM2-135M-Instruct (GGUF): logits, gradients, greedy and batched
//! generation; gradient coverage; and one AdamW step on a tiny model.
//!
//! Run: `LIBTORCH_USE_PYTORCH=1 cargo test -p memrl-policies --features tch --test tch_parity`
//! with PyTorch 2.11.0's python first on PATH and its `torch/lib` on LD_LIBRARY_PATH
//! (`scripts/test.sh` sets this up). A missing model fails the tests (run scripts/fetch-model.sh).
#![cfg(feature = "tch")]

mod common;
use common::{fixture, gguf_path};

use std::sync::{Arc, OnceLock};

use memrl_policies::train::bench::mean_nll;
use memrl_policies::train::params::llama_from_hf_tensors;
use memrl_policies::train::tiny::random_hf_tensors;
use memrl_policies::train::{AdamW, AdamWConfig, ModelGrads, TrainBackend};
use memrl_policies::{Backend, BurnBackend, Engine, EngineConfig, GenerationRequest, Llama, LlamaConfig, TchBackend, Tokenizer, load_model, load_tokenizer};
use serde_json::{Value, json};

fn tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| load_tokenizer(&gguf_path()).expect("loading the SmolLM2 tokenizer"))
}

fn tch_model() -> Arc<Llama<TchBackend>> {
    static M: OnceLock<Arc<Llama<TchBackend>>> = OnceLock::new();
    M.get_or_init(|| Arc::new(load_model(TchBackend::cpu(), &gguf_path()).expect("loading SmolLM2 on tch"))).clone()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// `max |a - b| / max |b|`: the error relative to the tensor's scale (an elementwise relative
/// error is meaningless for entries near zero).
fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().map(|x| x.abs()).fold(0.0, f32::max);
    assert!(scale > 0.0, "reference tensor is all zero");
    max_abs_diff(a, b) / scale
}

/// `‖a - b‖₂ / ‖b‖₂`: the relative error of the tensor as a whole.
fn l2_rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    assert!(norm > 0.0, "reference tensor is all zero");
    (diff / norm).sqrt()
}

#[test]
fn logits_match_burn_and_transformers_within_1e3() {
    let burn = load_model(BurnBackend::flex(), &gguf_path()).expect("loading SmolLM2 on burn");
    let tch = tch_model();
    let v = tch.config.vocab_size;
    let (mut vs_burn, mut vs_reference) = (0.0f32, 0.0f32);
    for case in fixture()["logits"].as_array().unwrap() {
        let tokens = ids(&case["ids"]);
        let n = tokens.len();
        let t = tch.backend.to_vec(&tch.lm_head(tch.forward(&tokens, 1, n, &[n])));
        let b = burn.backend.to_vec(&burn.lm_head(burn.forward(&tokens, 1, n, &[n])));
        assert_eq!(t.len(), n * v);
        let diff = max_abs_diff(&t, &b);
        vs_burn = vs_burn.max(diff);
        assert!(diff < 1e-3, "{n} tokens: max |tch - burn| logit {diff}");
        for (p, want) in floats(&case["per_position_logit_of_next_token"]).iter().enumerate() {
            let got = t[p * v + tokens[p + 1] as usize];
            vs_reference = vs_reference.max((got - want).abs());
            assert!((got - want).abs() < 1e-3, "position {p}: {got} vs transformers {want}");
        }
        let last = &t[(n - 1) * v..];
        for (id, want) in ids(&case["last_top10_ids"]).iter().zip(floats(&case["last_top10_logits"])) {
            let got = last[*id as usize];
            vs_reference = vs_reference.max((got - want).abs());
            assert!((got - want).abs() < 1e-3, "last row, token {id}: {got} vs transformers {want}");
        }
    }
    eprintln!("tch logits: max |tch - burn| = {vs_burn:.2e}, max |tch - transformers| = {vs_reference:.2e}");
}

#[test]
fn greedy_continuation_matches_transformers() {
    let g = &fixture()["greedy"];
    let prompt = ids(&g["prompt_ids"]);
    let want = ids(&g["generated_ids"]);
    let mut e = Engine::new(tch_model(), Some(tokenizer().clone()), EngineConfig { max_batch: 1, max_seq_len: 128 }).unwrap();
    let out = e.generate_batch(vec![GenerationRequest::greedy(prompt, want.len())]).unwrap().remove(0);
    assert_eq!(out.token_ids, want);
    assert_eq!(tokenizer().decode(&out.token_ids, true).unwrap(), g["text"].as_str().unwrap());
}

#[test]
fn batched_mixed_lengths_equal_decoding_alone() {
    // Padded prefill, per-row decode positions and slot moves as rows finish at different times.
    let texts = ["Hi", "The capital of France is", "Write a haiku about memory and forgetting.", "1, 2, 3,"];
    let prompts: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer().encode_chat(&[json!({"role": "user", "content": t})], None, true).unwrap()).collect();
    let cfg = EngineConfig { max_batch: 4, max_seq_len: 96 };
    let lens = [12, 5, 9, 3];
    let request = |i: usize| GenerationRequest::greedy(prompts[i].clone(), lens[i]);
    let mut batched = Engine::new(tch_model(), None, cfg).unwrap();
    let together = batched.generate_batch((0..prompts.len()).map(request).collect()).unwrap();
    for i in 0..prompts.len() {
        let mut alone = Engine::new(tch_model(), None, EngineConfig { max_batch: 1, ..cfg }).unwrap();
        let want = alone.generate_batch(vec![request(i)]).unwrap().remove(0);
        assert_eq!(together[i].token_ids, want.token_ids, "row {i} ({} prompt tokens)", prompts[i].len());
    }
}

/// Two rows of different lengths (a padded batch) from the reference fixture's prompts.
fn gradient_batch() -> Vec<Vec<u32>> {
    let cases = fixture()["logits"].as_array().unwrap();
    let mut rows: Vec<Vec<u32>> = cases.iter().map(|c| ids(&c["ids"])).collect();
    rows.sort_by_key(Vec::len);
    let (short, long) = (rows[0].clone(), rows[rows.len() - 1].clone());
    assert!(short.len() < long.len() && short.len() >= 2, "fixture prompts should differ in length");
    vec![long, short]
}

/// Every trainable parameter's gradient of the mean NLL of [`gradient_batch`], by name.
fn gradients<B: TrainBackend>(backend: B) -> Vec<(String, Vec<f32>)> {
    let model = load_model(backend, &gguf_path()).expect("loading SmolLM2");
    let loss = mean_nll(&model, &gradient_batch());
    let raw = model.backend.backward(&loss);
    let grads = ModelGrads::from_backward(&model, raw);
    let names: Vec<String> = grads.names().iter().map(|s| s.to_string()).collect();
    names
        .into_iter()
        .map(|n| {
            let g = grads.to_host(&n).unwrap_or_else(|| panic!("{n}: no gradient"));
            (n, g)
        })
        .collect()
}

fn tch_gradients() -> &'static Vec<(String, Vec<f32>)> {
    static G: OnceLock<Vec<(String, Vec<f32>)>> = OnceLock::new();
    G.get_or_init(|| gradients(TchBackend::cpu_autodiff()))
}

#[test]
fn gradients_match_burn_within_1e3_relative() {
    let burn = gradients(BurnBackend::flex_autodiff());
    let tch = tch_gradients();
    assert_eq!(burn.iter().map(|(n, _)| n).collect::<Vec<_>>(), tch.iter().map(|(n, _)| n).collect::<Vec<_>>());
    let checked = [
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.15.mlp.down_proj.weight",
        "model.layers.29.self_attn.v_proj.weight",
        "model.layers.29.post_attention_layernorm.weight",
        "model.norm.weight",
    ];
    let mut worst_checked = 0.0f32;
    let mut worst_all = (0.0f32, String::new());
    let mut worst_l2 = (0.0f64, String::new());
    for ((name, b), (_, t)) in burn.iter().zip(tch) {
        let l2 = l2_rel_diff(t, b);
        if l2 > worst_l2.0 {
            worst_l2 = (l2, name.clone());
        }
        // Every tensor as a whole agrees to 1e-3 (a wrong op gives order-1 differences).
        assert!(l2 < 1e-3, "{name}: ‖tch - burn‖ / ‖burn‖ = {l2:.3e}");
        let rel = max_rel_diff(t, b);
        if rel > worst_all.0 {
            worst_all = (rel, name.clone());
        }
        if checked.contains(&name.as_str()) {
            worst_checked = worst_checked.max(rel);
            assert!(rel < 1e-3, "{name}: max |tch - burn| / max |burn| = {rel:.3e}");
        }
    }
    eprintln!(
        "tch gradients vs burn: max|diff|/max|burn| {worst_checked:.2e} over {} checked tensors, {:.2e} over all {} ({}); \
         worst ‖diff‖/‖burn‖ {:.2e} ({})",
        checked.len(),
        worst_all.0,
        burn.len(),
        worst_all.1,
        worst_l2.0,
        worst_l2.1
    );
}

#[test]
fn every_parameter_receives_a_gradient() {
    let grads = tch_gradients();
    // SmolLM2: embeddings (tied lm_head), 30 layers × (2 norms + 7 projections), final norm.
    assert_eq!(grads.len(), 1 + 30 * 9 + 1);
    for (name, g) in grads {
        assert!(g.iter().all(|x| x.is_finite()), "{name}: non-finite gradient");
        assert!(g.iter().any(|x| *x != 0.0), "{name}: zero gradient");
    }
}

/// A tiny Qwen2-style model (q/k/v biases, untied lm_head, grouped heads).
fn tiny_config() -> LlamaConfig {
    let v = json!({
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "vocab_size": 40, "tie_word_embeddings": false, "max_position_embeddings": 64
    });
    LlamaConfig::from_hf_json(&v, "test").unwrap()
}

/// Three AdamW steps (with clipping folded in as a gradient scale) on both backends.
fn train_tiny<B: TrainBackend<Leaf = B>>(backend: B) -> Vec<(String, Vec<f32>)> {
    let c = tiny_config();
    let mut model = llama_from_hf_tensors(backend, c.clone(), random_hf_tensors(&c, 5, 0.3)).unwrap();
    let batch = vec![vec![3, 17, 5, 29, 11, 8, 2, 36], vec![7, 1, 22, 9, 14]];
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    for _ in 0..3 {
        let loss = mean_nll(&model, &batch);
        let raw = model.backend.backward(&loss);
        let mut grads = ModelGrads::from_backward(&model, raw);
        memrl_policies::train::grads::clip_grad_norm(&mut grads, 0.5);
        opt.step(&mut model, grads, 1e-2).unwrap();
    }
    let b = model.backend.clone();
    model.named_parameters().into_iter().map(|(n, t)| (n, b.to_vec(t))).collect()
}

#[test]
fn adamw_training_steps_match_burn_on_a_tiny_model() {
    let burn = train_tiny(BurnBackend::flex_autodiff());
    let tch = train_tiny(TchBackend::cpu_autodiff());
    let mut worst = 0.0f32;
    for ((name, b), (tname, t)) in burn.iter().zip(&tch) {
        assert_eq!(name, tname);
        let diff = max_abs_diff(t, b);
        worst = worst.max(diff);
        assert!(diff < 1e-4, "{name}: max |tch - burn| after 3 AdamW steps = {diff:.3e}");
    }
    eprintln!("tiny model, 3 AdamW steps: max |tch - burn| parameter diff {worst:.2e}");
}

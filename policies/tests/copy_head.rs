//! The pointer head of `…-copy` tiny presets (`memrl_policies::copy_head`): its distribution
//! against a host-side oracle of the formula, the engine's cached generation against the
//! learner's teacher-forced log-probs, span-limited scoring with gradients, and the weights'
//! round trip.

use std::sync::Arc;

mod common;

use memrl_policies::copy_head::{COPY_FLOOR, COPY_KEY_WEIGHT, COPY_QUERY_WEIGHT, COPY_SENTINEL};
use memrl_policies::scoring::{LogprobOptions, target_logprobs, token_logprobs};
use memrl_policies::train::{TinyPreset, hf_state_dict, init_random, llama_from_hf_tensors};
use memrl_policies::{Backend, BurnBackend, Engine, EngineConfig, GenerationRequest, Llama, LlamaConfig};

const VOCAB: usize = 48;

fn preset() -> TinyPreset {
    TinyPreset::parse("tiny-2l-32d-4h-2kv-copy").unwrap()
}

/// A pointer model with weights large enough that attention and the mixture are far from uniform.
fn model<B: Backend>(backend: B) -> Llama<B> {
    let mut model = init_random(backend, preset().config(VOCAB).unwrap(), 3, 0.3).unwrap();
    // The preset starts its sentinel at zero; give it a direction so both paths carry weight.
    let b = model.backend.clone();
    let head = model.copy_head.as_mut().unwrap();
    head.sentinel = b.param((0..32).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.2).collect(), &[32, 1]);
    model
}

fn host(b: &BurnBackend, t: &<BurnBackend as Backend>::Tensor) -> Vec<f32> {
    b.to_vec(t)
}

#[test]
fn presets_spell_and_build_the_pointer_head() {
    let p = preset();
    assert_eq!(p.name(), "tiny-2l-32d-4h-2kv-copy");
    assert_eq!(TinyPreset::parse("tiny-2l-64d-8h-rope100-copy").unwrap().name(), "tiny-2l-64d-8h-rope100-copy");
    assert!(TinyPreset::parse("tiny-copy").is_err());
    let config = p.config(VOCAB).unwrap();
    assert!(config.copy_head);
    assert!(!TinyPreset::parse("tiny-2l-32d-4h-2kv").unwrap().config(VOCAB).unwrap().copy_head);
    // The same shape without the head draws the same trunk: the head's tensors come last.
    let with = memrl_policies::train::tiny::random_hf_tensors(&config, 5, 0.02);
    let without = memrl_policies::train::tiny::random_hf_tensors(&TinyPreset::parse("tiny-2l-32d-4h-2kv").unwrap().config(VOCAB).unwrap(), 5, 0.02);
    for (name, t) in &without {
        let (_, other) = with.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(t.data, other.data, "{name}");
    }
    let names: Vec<&str> = with.iter().map(|(n, _)| n.as_str()).filter(|n| n.starts_with("copy_head.")).collect();
    assert_eq!(names.len(), 3);
    let (_, sentinel) = with.iter().find(|(n, _)| n == COPY_SENTINEL).unwrap();
    assert!(sentinel.data.iter().all(|x| *x == 0.0));
}

/// `π_t(v) = a_sentinel softmax(lm_head h_t)(v) + Σ_{j ≤ t, x_j = v} a_j`, computed on the host
/// in f64 from the model's hidden states and weights.
#[test]
fn the_distribution_is_the_sentinel_mixture_of_vocabulary_and_context() {
    let m = model(BurnBackend::flex());
    let b = &m.backend;
    let ids = [5u32, 9, 5, 33, 17, 9, 40, 2];
    let n = ids.len();
    let d = m.config.hidden_size;
    let hidden = host(b, &m.forward(&ids, 1, n, &[n]));
    let got = host(b, &m.logits(m.forward(&ids, 1, n, &[n]), &ids, 1, n));
    let vocab_logits = host(b, &m.lm_head(m.forward(&ids, 1, n, &[n])));
    let head = m.copy_head.as_ref().unwrap();
    let (wq, wk, u) = (host(b, &head.query.weight), host(b, &head.key.weight), host(b, &head.sentinel));
    // `[in, out]` weights: y_o = Σ_i x_i w[i, o].
    let project = |x: &[f32], w: &[f32]| -> Vec<f64> { (0..d).map(|o| (0..d).map(|i| x[i] as f64 * w[i * d + o] as f64).sum()).collect() };
    let keys: Vec<Vec<f64>> = (0..n).map(|j| project(&hidden[j * d..(j + 1) * d], &wk)).collect();
    for t in 0..n {
        let q = project(&hidden[t * d..(t + 1) * d], &wq);
        let dot = |k: &[f64]| k.iter().zip(&q).map(|(a, c)| a * c).sum::<f64>() / (d as f64).sqrt();
        let mut scores: Vec<f64> = keys[..=t].iter().map(|k| dot(k)).collect();
        scores.push(dot(&u.iter().map(|&x| x as f64).collect::<Vec<_>>()));
        let top = scores.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = scores.iter().map(|s| (s - top).exp()).sum();
        let a: Vec<f64> = scores.iter().map(|s| (s - top).exp() / z).collect();
        let row = &vocab_logits[t * VOCAB..(t + 1) * VOCAB];
        let vmax = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let vz: f64 = row.iter().map(|&l| (l as f64 - vmax).exp()).sum();
        let mut total = 0.0;
        for v in 0..VOCAB {
            let mut p = a[t + 1] * (row[v] as f64 - vmax).exp() / vz;
            for j in 0..=t {
                if ids[j] as usize == v {
                    p += a[j];
                }
            }
            total += p;
            let want = (p + COPY_FLOOR as f64).ln();
            let have = got[t * VOCAB + v] as f64;
            assert!((want - have).abs() < 1e-4 * (1.0 + want.abs()), "position {t}, token {v}: {have} vs {want}");
        }
        assert!((total - 1.0).abs() < 1e-6);
        // Tokens of the context are the likelier for it: the copy path adds to them.
        assert!(a[..=t].iter().sum::<f64>() > 0.01, "position {t}: the copy path carries weight");
    }
}

#[test]
fn cached_generation_matches_teacher_forced_logprobs_alone_and_batched() {
    let m = Arc::new(model(BurnBackend::flex()));
    let prompts: Vec<Vec<u32>> = (0..5).map(|i| (0..(3 + 4 * i) as u32).map(|t| (t * 7 + i as u32) % 40 + 3).collect()).collect();
    common::assert_cached_generation_matches_teacher_forcing(&m, &prompts, "copy");
    // Greedy picks the mixture's argmax too.
    let mut e = Engine::new(m.clone(), None, EngineConfig { max_batch: 2, max_seq_len: 64 }).unwrap();
    let g = e.generate_batch(vec![GenerationRequest::greedy(prompts[2].clone(), 5)]).unwrap().remove(0);
    let mut full = prompts[2].clone();
    full.extend(&g.token_ids);
    let teacher = token_logprobs(&m, &[full]).remove(0);
    for (x, y) in teacher[prompts[2].len() - 1..].iter().zip(&g.policy_logprobs) {
        assert!((x - y).abs() < 1e-4, "greedy: {x} vs {y}");
    }
}

#[test]
fn span_limited_logprobs_equal_whole_rows_and_train_every_head_parameter() {
    let m = model(BurnBackend::flex_autodiff());
    let b = &m.backend;
    let (rows, seq) = (3, 7);
    let input: Vec<u32> = (0..rows * seq).map(|i| (i * 7 % 13) as u32 + 3).collect();
    let target: Vec<u32> = (0..rows * seq).map(|i| (i * 5 % 13) as u32 + 3).collect();
    let lengths = [7, 5, 6];
    let spans = [2..6, 0..0, 3..6];
    let mask: Vec<f32> = (0..rows * seq).map(|i| if spans[i / seq].contains(&(i % seq)) { 1.0 } else { 0.0 }).collect();
    let run = |opts: &LogprobOptions| {
        let (lp, entropy) = target_logprobs(&m, &input, &target, rows, seq, &lengths, opts);
        let entropy = entropy.expect("asked for");
        let weights = b.tensor(mask.clone(), &[rows * seq]);
        let loss = b.add(b.sum_all(b.mul(lp.clone(), weights.clone())), b.sum_all(b.mul(entropy.clone(), weights)));
        let grads = b.backward(&loss);
        let g: Vec<(String, Vec<f32>)> =
            m.named_parameters().into_iter().map(|(n, p)| (n, b.grad(&grads, p).map(|g| b.to_vec(&g)).unwrap_or_default())).collect();
        (b.to_vec(&lp), b.to_vec(&entropy), g)
    };
    let whole = run(&LogprobOptions { with_entropy: true, ..LogprobOptions::default() });
    let limited = run(&LogprobOptions { spans: Some(&spans), with_entropy: true, ..LogprobOptions::default() });
    for i in 0..rows * seq {
        if mask[i] == 1.0 {
            assert!((whole.0[i] - limited.0[i]).abs() < 1e-5 && (whole.1[i] - limited.1[i]).abs() < 1e-5, "position {i}");
        }
    }
    for ((name, gw), (_, gl)) in whole.2.iter().zip(&limited.2) {
        for (x, y) in gw.iter().zip(gl) {
            assert!((x - y).abs() <= 1e-4 * (1.0 + x.abs()), "{name}: {x} vs {y}");
        }
    }
    for name in [COPY_QUERY_WEIGHT, COPY_KEY_WEIGHT, COPY_SENTINEL] {
        let (_, g) = limited.2.iter().find(|(n, _)| n == name).unwrap();
        assert!(g.iter().all(|x| x.is_finite()) && g.iter().any(|x| *x != 0.0), "{name} gets a gradient");
    }
    // Nothing needed: zero log-probs, and the head's parameters still get (zero) gradients.
    let none = [0..0, 0..0, 0..0];
    let (lp, _) = target_logprobs(&m, &input, &target, rows, seq, &lengths, &LogprobOptions { spans: Some(&none), ..LogprobOptions::default() });
    let grads = b.backward(&b.sum_all(lp));
    for (name, p) in m.named_parameters() {
        let g = b.grad(&grads, p).unwrap_or_else(|| panic!("{name}: no gradient"));
        assert!(b.to_vec(&g).iter().all(|x| *x == 0.0), "{name}");
    }
}

#[test]
fn weights_round_trip_through_hf_tensors_and_config_json() {
    let m = model(BurnBackend::flex());
    let b = &m.backend;
    let ids = [4u32, 8, 15, 16, 23, 42, 8];
    let n = ids.len();
    let before = b.to_vec(&m.logits(m.forward(&ids, 1, n, &[n]), &ids, 1, n));
    let json = preset().hf_config(VOCAB);
    assert_eq!(json["copy_head"], true);
    let config = LlamaConfig::from_hf_json(&json, "test").unwrap();
    let back = llama_from_hf_tensors(BurnBackend::flex(), config.clone(), hf_state_dict(&m)).unwrap();
    assert_eq!(b.to_vec(&back.logits(back.forward(&ids, 1, n, &[n]), &ids, 1, n)), before);
    // A config that declares the head with weights that lack it is refused, naming the tensor.
    let mut plain = hf_state_dict(&m);
    plain.retain(|(name, _)| name != COPY_KEY_WEIGHT);
    let err = llama_from_hf_tensors(BurnBackend::flex(), config, plain).unwrap_err().to_string();
    assert!(err.contains(COPY_KEY_WEIGHT), "{err}");
}

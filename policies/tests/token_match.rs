//! Token matching of `…-match` tiny presets (`memrl_policies::token_match`): neutral weights
//! leave the model as it is without it, the engine's cached generation (which passes each row's
//! history) equals the learner's teacher-forced log-probs, both parts get gradients, and the
//! weights and config round-trip.

use std::sync::Arc;

mod common;

use memrl_policies::scoring::{LogprobOptions, target_logprobs};
use memrl_policies::token_match::{CANON_WEIGHT, MATCH_BIAS, MATCH_BIAS_INIT};
use memrl_policies::train::{TinyPreset, hf_state_dict, init_random, llama_from_hf_tensors};
use memrl_policies::{Backend, BurnBackend, Llama, LlamaConfig};

const VOCAB: usize = 24;

/// A small vocabulary, so that prompts repeat tokens and the match bias has work to do.
fn model<B: Backend>(backend: B, name: &str) -> Llama<B> {
    init_random(backend, TinyPreset::parse(name).unwrap().config(VOCAB).unwrap(), 3, 0.3).unwrap()
}

#[test]
fn presets_draw_token_matching_last_and_start_it_strong() {
    let config = TinyPreset::parse("tiny-2l-32d-2h-copy-match").unwrap().config(VOCAB).unwrap();
    assert!(config.token_match && config.copy_head);
    let with = memrl_policies::train::tiny::random_hf_tensors(&config, 5, 0.02);
    let without = memrl_policies::train::tiny::random_hf_tensors(&TinyPreset::parse("tiny-2l-32d-2h-copy").unwrap().config(VOCAB).unwrap(), 5, 0.02);
    for (name, t) in &without {
        let (_, other) = with.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(t.data, other.data, "{name}");
    }
    let (_, bias) = with.iter().find(|(n, _)| n == MATCH_BIAS).unwrap();
    assert_eq!(bias.data, vec![MATCH_BIAS_INIT; 2]);
    let (_, canon) = with.iter().find(|(n, _)| n == CANON_WEIGHT).unwrap();
    assert_eq!(canon.shape, vec![config.canon_kernel, 32]);
}

#[test]
fn neutral_matching_weights_change_nothing() {
    let mut m = model(BurnBackend::flex(), "tiny-2l-32d-4h-2kv-match");
    let plain = model(BurnBackend::flex(), "tiny-2l-32d-4h-2kv");
    let b = m.backend.clone();
    let tm = m.token_match.as_mut().unwrap();
    tm.match_bias = b.tensor(vec![0.0; 4], &[4]);
    tm.canon = b.tensor(vec![0.0; 4 * 32], &[4, 32]);
    let ids = [5u32, 9, 5, 3, 17, 9, 20, 2, 3];
    let (rows, seq) = (1, ids.len());
    let a = b.to_vec(&m.logits(m.forward(&ids, rows, seq, &[seq]), &ids, rows, seq));
    let c = b.to_vec(&plain.logits(plain.forward(&ids, rows, seq, &[seq]), &ids, rows, seq));
    for (x, y) in a.iter().zip(&c) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
    // With its own weights the model differs: the parts are in the forward pass.
    let live = model(BurnBackend::flex(), "tiny-2l-32d-4h-2kv-match");
    let d = b.to_vec(&live.logits(live.forward(&ids, rows, seq, &[seq]), &ids, rows, seq));
    assert!(d.iter().zip(&c).any(|(x, y)| (x - y).abs() > 1e-3));
}

#[test]
fn cached_generation_matches_teacher_forced_logprobs_alone_and_batched() {
    for name in ["tiny-2l-32d-2h-match", "tiny-2l-32d-4h-2kv-copy-match"] {
        let m = Arc::new(model(BurnBackend::flex(), name));
        let prompts: Vec<Vec<u32>> = (0..5).map(|i| (0..(1 + 4 * i) as u32).map(|t| (t * 7 + i as u32) % 20 + 3).collect()).collect();
        common::assert_cached_generation_matches_teacher_forcing(&m, &prompts, name);
    }
}

#[test]
fn both_parts_get_gradients_from_the_learners_logprobs() {
    let m = model(BurnBackend::flex_autodiff(), "tiny-2l-32d-2h-match");
    let b = &m.backend;
    let (rows, seq) = (2, 7);
    let input: Vec<u32> = (0..rows * seq).map(|i| (i * 7 % 9) as u32 + 3).collect();
    let target: Vec<u32> = (0..rows * seq).map(|i| (i * 5 % 9) as u32 + 3).collect();
    let (lp, _) = target_logprobs(&m, &input, &target, rows, seq, &[7, 5], &LogprobOptions::default());
    let grads = b.backward(&b.sum_all(lp));
    for (name, p) in m.named_parameters() {
        if name == MATCH_BIAS || name == CANON_WEIGHT {
            let g = b.to_vec(&b.grad(&grads, p).unwrap_or_else(|| panic!("{name}: no gradient")));
            assert!(g.iter().all(|x| x.is_finite()) && g.iter().any(|x| *x != 0.0), "{name}: {g:?}");
        }
    }
}

#[test]
fn weights_round_trip_through_hf_tensors_and_config_json() {
    let preset = TinyPreset::parse("tiny-2l-32d-2h-match").unwrap();
    let m = model(BurnBackend::flex(), &preset.name());
    let b = &m.backend;
    let ids = [4u32, 8, 15, 16, 4, 8, 20];
    let n = ids.len();
    let before = b.to_vec(&m.logits(m.forward(&ids, 1, n, &[n]), &ids, 1, n));
    let json = preset.hf_config(VOCAB);
    assert_eq!((json["token_match"].clone(), json["canon_kernel"].clone()), (true.into(), 4.into()));
    let config = LlamaConfig::from_hf_json(&json, "test").unwrap();
    let back = llama_from_hf_tensors(BurnBackend::flex(), config.clone(), hf_state_dict(&m)).unwrap();
    assert_eq!(b.to_vec(&back.logits(back.forward(&ids, 1, n, &[n]), &ids, 1, n)), before);
    // A config that declares token matching with weights that lack it is refused, naming the tensor.
    let mut partial = hf_state_dict(&m);
    partial.retain(|(name, _)| name != CANON_WEIGHT);
    let err = llama_from_hf_tensors(BurnBackend::flex(), config, partial).unwrap_err().to_string();
    assert!(err.contains(CANON_WEIGHT), "{err}");
    // The kernel is checked, and means nothing without token matching.
    for (patch, says) in [
        (serde_json::json!({"canon_kernel": 1}), "2 to 16"),
        (serde_json::json!({"canon_kernel": 40}), "2 to 16"),
        (serde_json::json!({"token_match": false, "canon_kernel": 4}), "without"),
    ] {
        let mut j = json.clone();
        for (k, v) in patch.as_object().unwrap() {
            j[k] = v.clone();
        }
        let err = LlamaConfig::from_hf_json(&j, "cfg.json").unwrap_err().to_string();
        assert!(err.contains("canon_kernel") && err.contains(says) && err.contains("cfg.json"), "{err}");
    }
}

//! SmolLM2-135M-Instruct (GGUF, Q4_1) against transformers' reference on the same file
//! (`tests/fixtures/smollm2_reference.json`): token ids, chat rendering, logits, greedy text.
//!
//! The model is found via `MEMRL_SMOLLM2_GGUF`, else `<workspace>/.cache/models/...` as
//! `scripts/fetch-model.sh` places it. A missing model fails the tests (run the script).

mod common;
use common::{fixture, gguf_path};

use std::sync::{Arc, OnceLock};

use memrl_policies::{Backend, BurnBackend, Engine, EngineConfig, GenerationRequest, Llama, Tokenizer, load_model, load_tokenizer};
use serde_json::Value;

fn model() -> Arc<Llama<BurnBackend>> {
    static M: OnceLock<Arc<Llama<BurnBackend>>> = OnceLock::new();
    M.get_or_init(|| Arc::new(load_model(BurnBackend::flex(), &gguf_path()).expect("loading SmolLM2"))).clone()
}

fn tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| load_tokenizer(&gguf_path()).expect("loading the SmolLM2 tokenizer"))
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[test]
fn tokenization_matches_transformers_exactly() {
    let tok = tokenizer();
    for case in fixture()["tokenization"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(tok.encode(text, true).unwrap(), ids(&case["ids"]), "text {text:?}");
        assert_eq!(tok.decode(&ids(&case["ids"]), false).unwrap(), text, "round trip");
    }
}

#[test]
fn chat_template_renders_exactly() {
    let tok = tokenizer();
    let c = &fixture()["chat_template"];
    let messages: Vec<Value> = c["messages"].as_array().unwrap().clone();
    let add = c["add_generation_prompt"].as_bool().unwrap();
    let text = tok.apply_chat_template(&messages, None, add).unwrap();
    assert_eq!(text, c["rendered"].as_str().unwrap());
    assert_eq!(tok.encode_chat(&messages, None, add).unwrap(), ids(&c["ids"]));
}

#[test]
fn logits_match_transformers_within_1e3() {
    let m = model();
    let b = &m.backend;
    let v = m.config.vocab_size;
    let mut worst = 0.0f32;
    for case in fixture()["logits"].as_array().unwrap() {
        let ids = ids(&case["ids"]);
        let n = ids.len();
        let logits = b.to_vec(&m.lm_head(m.forward(&ids, 1, n, &[n])));
        // Logit of the actual next token at every position.
        for (p, want) in floats(&case["per_position_logit_of_next_token"]).iter().enumerate() {
            let got = logits[p * v + ids[p + 1] as usize];
            worst = worst.max((got - want).abs());
            assert!((got - want).abs() < 1e-3, "position {p}: {got} vs {want}");
        }
        let last = &logits[(n - 1) * v..];
        let mut order: Vec<usize> = (0..v).collect();
        order.sort_by(|&a, &c| last[c].partial_cmp(&last[a]).unwrap());
        assert_eq!(order[..10].iter().map(|&i| i as u32).collect::<Vec<_>>(), ids_of(&case["last_top10_ids"]));
        for (i, want) in floats(&case["last_top10_logits"]).iter().enumerate() {
            let got = last[order[i]];
            worst = worst.max((got - want).abs());
            assert!((got - want).abs() < 1e-3, "top {i}: {got} vs {want}");
        }
        let mean = last.iter().map(|&x| x as f64).sum::<f64>() / v as f64;
        let std = (last.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (v - 1) as f64).sqrt();
        assert!((mean - case["mean_logit_last"].as_f64().unwrap()).abs() < 1e-3, "mean {mean}");
        assert!((std - case["std_logit_last"].as_f64().unwrap()).abs() < 1e-3, "std {std}");
    }
    eprintln!("max |logit - reference| = {worst:.2e}");
}

fn ids_of(v: &Value) -> Vec<u32> {
    ids(v)
}

#[test]
fn greedy_continuation_matches_transformers() {
    let g = &fixture()["greedy"];
    let prompt = ids(&g["prompt_ids"]);
    let want = ids(&g["generated_ids"]);
    let mut e = Engine::new(model(), Some(tokenizer().clone()), EngineConfig { max_batch: 1, max_seq_len: 128 }).unwrap();
    let out = e.generate_batch(vec![GenerationRequest::greedy(prompt, want.len())]).unwrap().remove(0);
    assert_eq!(out.token_ids, want);
    assert_eq!(tokenizer().decode(&out.token_ids, true).unwrap(), g["text"].as_str().unwrap());
}

fn mixed_prompts() -> Vec<Vec<u32>> {
    let tok = tokenizer();
    let texts = [
        "Hi",
        "The capital of France is",
        "Remember that my sister's name is Dana.",
        "List three colors:",
        "Write a haiku about memory and forgetting, in the style of an old poet who has seen many winters.",
        "1, 2, 3,",
        "Q: What is 2 + 2?\nA:",
        "Once upon a time, in a small village by the sea, there lived a fisherman named",
    ];
    texts.iter().map(|t| tok.encode_chat(&[serde_json::json!({"role": "user", "content": t})], None, true).unwrap()).collect()
}

#[test]
fn batch_of_eight_mixed_lengths_equals_decoding_alone() {
    let prompts = mixed_prompts();
    let lens: std::collections::BTreeSet<usize> = prompts.iter().map(Vec::len).collect();
    assert!(lens.len() >= 6, "prompts should have different lengths: {lens:?}");
    let cfg = EngineConfig { max_batch: 8, max_seq_len: 160 };
    let mut alone = Vec::new();
    for p in &prompts {
        let mut e = Engine::new(model(), None, EngineConfig { max_batch: 1, ..cfg }).unwrap();
        alone.push(e.generate_batch(vec![GenerationRequest::greedy(p.clone(), 16)]).unwrap().remove(0));
    }
    let mut e = Engine::new(model(), None, cfg).unwrap();
    let batched = e.generate_batch(prompts.iter().map(|p| GenerationRequest::greedy(p.clone(), 16)).collect()).unwrap();
    for (i, (a, b)) in alone.iter().zip(&batched).enumerate() {
        assert_eq!(a.token_ids, b.token_ids, "row {i} ({} prompt tokens)", prompts[i].len());
    }
}

#[test]
fn stop_strings_end_generation() {
    let g = &fixture()["greedy"];
    let mut e = Engine::new(model(), Some(tokenizer().clone()), EngineConfig { max_batch: 1, max_seq_len: 128 }).unwrap();
    let mut r = GenerationRequest::greedy(ids(&g["prompt_ids"]), 24);
    r.stop_strings = vec!["talented".into()];
    let out = e.generate_batch(vec![r]).unwrap().remove(0);
    let text = tokenizer().decode(&out.token_ids, true).unwrap();
    assert!(text.ends_with("talented"), "{text:?}");
    assert_eq!(out.finish_reason, memrl_policies::FinishReason::StopString("talented".into()));
}

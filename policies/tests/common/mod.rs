//! Shared by the integration tests: where SmolLM2 is and its transformers reference outputs,
//! and the engine-against-learner check of the tiny presets' extra parts. Each test file uses
//! part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

/// The SmolLM2-135M-Instruct GGUF: `$MEMRL_SMOLLM2_GGUF`, else the copy scripts/fetch-model.sh
/// places under .cache/. Fails (never skips) when it is missing.
pub fn gguf_path() -> PathBuf {
    let path = match std::env::var_os("MEMRL_SMOLLM2_GGUF") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"),
    };
    assert!(path.is_file(), "SmolLM2 GGUF not found at {} — run scripts/fetch-model.sh or set MEMRL_SMOLLM2_GGUF", path.display());
    path
}

/// The transformers reference outputs of SmolLM2 (tests/fixtures/smollm2_reference.json).
pub fn fixture() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| serde_json::from_str(include_str!("../fixtures/smollm2_reference.json")).unwrap())
}

/// Generates from `prompts` (row `i` seeded `i`, `6 + i` new tokens, temperature 1) one request
/// per engine and then five requests through three slots (rows prefill together, leave and join
/// mid-batch), and checks that both give the same tokens and log-probs equal to the learner's
/// teacher-forced ones within 1e-4. `label` names the model in failures.
pub fn assert_cached_generation_matches_teacher_forcing(
    m: &std::sync::Arc<memrl_policies::Llama<memrl_policies::BurnBackend>>,
    prompts: &[Vec<u32>],
    label: &str,
) {
    use memrl_policies::scoring::token_logprobs;
    use memrl_policies::{Engine, EngineConfig, GenerationRequest, SamplingParams};
    let sampling = SamplingParams { temperature: 1.0, top_p: 1.0, top_k: 0 };
    let requests: Vec<GenerationRequest> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| GenerationRequest { sampling: sampling.clone(), seed: i as u64, ..GenerationRequest::greedy(p.clone(), 6 + i) })
        .collect();
    let mut alone = Vec::new();
    for r in &requests {
        let mut e = Engine::new(m.clone(), None, EngineConfig { max_batch: 1, max_seq_len: 64 }).unwrap();
        alone.push(e.generate_batch(vec![r.clone()]).unwrap().remove(0));
    }
    let mut e = Engine::new(m.clone(), None, EngineConfig { max_batch: 3, max_seq_len: 64 }).unwrap();
    let batched = e.generate_batch(requests).unwrap();
    for (i, (a, c)) in alone.iter().zip(&batched).enumerate() {
        assert_eq!(a.token_ids, c.token_ids, "{label} row {i}");
        let mut full = prompts[i].clone();
        full.extend(&a.token_ids);
        let teacher = token_logprobs(m, &[full]).remove(0);
        for (k, ((x, y), z)) in teacher[prompts[i].len() - 1..].iter().zip(&a.policy_logprobs).zip(&c.policy_logprobs).enumerate() {
            assert!((x - y).abs() < 1e-4 && (x - z).abs() < 1e-4, "{label} row {i} token {k}: teacher {x}, alone {y}, batched {z}");
        }
    }
}

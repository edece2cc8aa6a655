//! A tiny random Llama written to safetensors in the test: loading (single, sharded, F16/BF16),
//! clear errors for broken files, KV-cache consistency, batching, and gradient coverage.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use memrl_policies::scoring::token_logprobs;
use memrl_policies::{Backend, BurnBackend, Engine, EngineConfig, GenerationRequest, Llama, SamplingParams, load_model};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::{Dtype, tensor::TensorView};
use serde_json::json;

const VOCAB: usize = 64;

fn config(tied: bool, arch: &str) -> serde_json::Value {
    json!({
        "architectures": [arch], "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "vocab_size": VOCAB, "tie_word_embeddings": tied, "max_position_embeddings": 128, "eos_token_id": 1
    })
}

/// Random tensors with HF names and PyTorch shapes for `config`.
fn random_tensors(cfg: &serde_json::Value, seed: u64) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let d = cfg["hidden_size"].as_u64().unwrap() as usize;
    let ff = cfg["intermediate_size"].as_u64().unwrap() as usize;
    let h = cfg["num_attention_heads"].as_u64().unwrap() as usize;
    let hkv = cfg["num_key_value_heads"].as_u64().unwrap() as usize;
    let hd = d / h;
    let qwen = cfg["architectures"][0] == "Qwen2ForCausalLM";
    let mut out = BTreeMap::new();
    let mut put = |name: String, shape: Vec<usize>, scale: f32, rng: &mut ChaCha8Rng| {
        let n = shape.iter().product();
        let data = (0..n).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale).collect();
        out.insert(name, (shape, data));
    };
    put("model.embed_tokens.weight".into(), vec![VOCAB, d], 1.0, &mut rng);
    for i in 0..cfg["num_hidden_layers"].as_u64().unwrap() as usize {
        let p = format!("model.layers.{i}");
        put(format!("{p}.input_layernorm.weight"), vec![d], 1.0, &mut rng);
        put(format!("{p}.post_attention_layernorm.weight"), vec![d], 1.0, &mut rng);
        put(format!("{p}.self_attn.q_proj.weight"), vec![h * hd, d], 0.3, &mut rng);
        put(format!("{p}.self_attn.k_proj.weight"), vec![hkv * hd, d], 0.3, &mut rng);
        put(format!("{p}.self_attn.v_proj.weight"), vec![hkv * hd, d], 0.3, &mut rng);
        put(format!("{p}.self_attn.o_proj.weight"), vec![d, h * hd], 0.3, &mut rng);
        if qwen {
            put(format!("{p}.self_attn.q_proj.bias"), vec![h * hd], 0.3, &mut rng);
            put(format!("{p}.self_attn.k_proj.bias"), vec![hkv * hd], 0.3, &mut rng);
            put(format!("{p}.self_attn.v_proj.bias"), vec![hkv * hd], 0.3, &mut rng);
        }
        put(format!("{p}.mlp.gate_proj.weight"), vec![ff, d], 0.3, &mut rng);
        put(format!("{p}.mlp.up_proj.weight"), vec![ff, d], 0.3, &mut rng);
        put(format!("{p}.mlp.down_proj.weight"), vec![d, ff], 0.3, &mut rng);
    }
    put("model.norm.weight".into(), vec![d], 1.0, &mut rng);
    if !cfg["tie_word_embeddings"].as_bool().unwrap() {
        put("lm_head.weight".into(), vec![VOCAB, d], 0.5, &mut rng);
    }
    out
}

fn encode(data: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::F16 => data.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
        Dtype::BF16 => data.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
        _ => unreachable!(),
    }
}

fn write_safetensors(path: &Path, tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>, dtype: Dtype) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors.iter().map(|(n, (s, d))| (n.clone(), s.clone(), encode(d, dtype))).collect();
    let views: Vec<(String, TensorView)> = bytes.iter().map(|(n, s, b)| (n.clone(), TensorView::new(dtype, s.clone(), b).unwrap())).collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Writes a model directory and returns it.
fn model_dir(tied: bool, arch: &str, dtype: Dtype) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(tied, arch);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    write_safetensors(&dir.path().join("model.safetensors"), &random_tensors(&cfg, 7), dtype);
    dir
}

fn load(dir: &Path) -> Llama<BurnBackend> {
    load_model(BurnBackend::flex(), dir).unwrap()
}

fn logits_of(model: &Llama<BurnBackend>, ids: &[u32]) -> Vec<f32> {
    let b = &model.backend;
    let h = model.forward(ids, 1, ids.len(), &[ids.len()]);
    b.to_vec(&model.lm_head(h))
}

#[test]
fn sharded_and_half_precision_checkpoints_load_like_f32() {
    let cfg = config(false, "LlamaForCausalLM");
    let tensors = random_tensors(&cfg, 7);
    let f32_dir = model_dir(false, "LlamaForCausalLM", Dtype::F32);
    let reference = logits_of(&load(f32_dir.path()), &[3, 5, 7, 11]);

    // Two shards with an index.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let (a, b): (BTreeMap<_, _>, BTreeMap<_, _>) = tensors.clone().into_iter().partition(|(n, _)| n.contains("layers.0"));
    write_safetensors(&dir.path().join("model-00001-of-00002.safetensors"), &a, Dtype::F32);
    write_safetensors(&dir.path().join("model-00002-of-00002.safetensors"), &b, Dtype::F32);
    let mut map = serde_json::Map::new();
    for n in a.keys() {
        map.insert(n.clone(), json!("model-00001-of-00002.safetensors"));
    }
    for n in b.keys() {
        map.insert(n.clone(), json!("model-00002-of-00002.safetensors"));
    }
    std::fs::write(dir.path().join("model.safetensors.index.json"), json!({"weight_map": map}).to_string()).unwrap();
    assert_eq!(logits_of(&load(dir.path()), &[3, 5, 7, 11]), reference);

    for dtype in [Dtype::F16, Dtype::BF16] {
        let d = model_dir(false, "LlamaForCausalLM", dtype);
        let l = logits_of(&load(d.path()), &[3, 5, 7, 11]);
        let max_diff = l.iter().zip(&reference).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(max_diff < 0.2, "{dtype:?}: max diff {max_diff}");
    }
}

#[test]
fn broken_files_give_errors_naming_file_and_tensor() {
    let dir = model_dir(true, "LlamaForCausalLM", Dtype::F32);
    let file = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();

    // Truncated.
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_model(BurnBackend::flex(), dir.path()).unwrap_err().to_string();
    assert!(e.contains("model.safetensors") && e.contains("not a valid safetensors"), "{e}");

    // Garbage header.
    std::fs::write(&file, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all").unwrap();
    let e = load_model(BurnBackend::flex(), dir.path()).unwrap_err().to_string();
    assert!(e.contains("model.safetensors"), "{e}");

    // Wrong shape.
    let cfg = config(true, "LlamaForCausalLM");
    let mut tensors = random_tensors(&cfg, 7);
    tensors.insert("model.layers.1.mlp.up_proj.weight".into(), (vec![48, 31], vec![0.0; 48 * 31]));
    write_safetensors(&file, &tensors, Dtype::F32);
    let e = load_model(BurnBackend::flex(), dir.path()).unwrap_err().to_string();
    assert!(e.contains("model.layers.1.mlp.up_proj.weight") && e.contains("[48, 31]") && e.contains("[48, 32]"), "{e}");

    // Missing tensor.
    let mut tensors = random_tensors(&cfg, 7);
    tensors.remove("model.norm.weight");
    write_safetensors(&file, &tensors, Dtype::F32);
    let e = load_model(BurnBackend::flex(), dir.path()).unwrap_err().to_string();
    assert!(e.contains("model.norm.weight") && e.contains("missing"), "{e}");

    // Unsupported dtype.
    let views = vec![("model.embed_tokens.weight".to_string(), TensorView::new(Dtype::I32, vec![1], &[0, 0, 0, 0]).unwrap())];
    std::fs::write(&file, safetensors::serialize(views, None).unwrap()).unwrap();
    let e = load_model(BurnBackend::flex(), dir.path()).unwrap_err().to_string();
    assert!(e.contains("I32") && e.contains("model.embed_tokens.weight"), "{e}");

    // Bad config.
    std::fs::write(dir.path().join("config.json"), "{\"architectures\": [\"Nope\"]}").unwrap();
    let e = load_model(BurnBackend::flex(), dir.path()).unwrap_err().to_string();
    assert!(e.contains("Nope") && e.contains("config.json"), "{e}");
}

#[test]
fn cached_decoding_matches_full_forward() {
    for (tied, arch) in [(true, "LlamaForCausalLM"), (false, "Qwen2ForCausalLM")] {
        let dir = model_dir(tied, arch, Dtype::F32);
        let model = load(dir.path());
        let b = &model.backend;
        let ids = [5u32, 9, 2, 33, 17, 8, 40];
        let full = logits_of(&model, &ids);
        // Prefill 4 tokens, then feed the rest one at a time.
        let mut cache = model.new_cache(2, 16);
        let h = model.forward_cached(&mut cache, 1, &ids[..4], 1, 4, &[0]);
        let mut got = b.to_vec(&model.lm_head(h));
        for (i, &t) in ids[4..].iter().enumerate() {
            let h = model.forward_cached(&mut cache, 1, &[t], 1, 1, &[4 + i]);
            got.extend(b.to_vec(&model.lm_head(h)));
        }
        let max = got.iter().zip(&full).map(|(a, c)| (a - c).abs()).fold(0.0f32, f32::max);
        assert!(max < 1e-4, "{arch}: cached vs full max diff {max}");
    }
}

#[test]
fn batched_generation_equals_one_at_a_time() {
    let dir = model_dir(true, "LlamaForCausalLM", Dtype::F32);
    let model = Arc::new(load(dir.path()));
    let prompts: Vec<Vec<u32>> = (0..8).map(|i| (0..(3 + 5 * i) as u32).map(|t| (t * 7 + i as u32) % 60 + 2).collect()).collect();
    let mut alone = Vec::new();
    for p in &prompts {
        let mut e = Engine::new(model.clone(), None, EngineConfig { max_batch: 1, max_seq_len: 64 }).unwrap();
        alone.push(e.generate_batch(vec![GenerationRequest::greedy(p.clone(), 12)]).unwrap().remove(0));
    }
    let mut e = Engine::new(model.clone(), None, EngineConfig { max_batch: 8, max_seq_len: 64 }).unwrap();
    let batched = e.generate_batch(prompts.iter().map(|p| GenerationRequest::greedy(p.clone(), 12)).collect()).unwrap();
    for (i, (a, b)) in alone.iter().zip(&batched).enumerate() {
        assert_eq!(a.token_ids, b.token_ids, "row {i}");
        for (x, y) in a.policy_logprobs.iter().zip(&b.policy_logprobs) {
            assert!((x - y).abs() < 1e-4, "row {i}: {x} vs {y}");
        }
    }
    // Fewer slots than requests: continuous batching with rows leaving and joining.
    let mut e = Engine::new(model, None, EngineConfig { max_batch: 3, max_seq_len: 64 }).unwrap();
    let mut reqs: Vec<GenerationRequest> = prompts.iter().map(|p| GenerationRequest::greedy(p.clone(), 12)).collect();
    for (i, r) in reqs.iter_mut().enumerate() {
        r.max_new_tokens = 4 + i; // rows finish at different steps
    }
    let staggered = e.generate_batch(reqs).unwrap();
    for (i, (a, b)) in alone.iter().zip(&staggered).enumerate() {
        assert_eq!(&a.token_ids[..4 + i], &b.token_ids[..], "row {i}");
    }
}

#[test]
fn rollout_logprobs_equal_teacher_forced_logprobs() {
    let dir = model_dir(true, "LlamaForCausalLM", Dtype::F32);
    let model = Arc::new(load(dir.path()));
    let prompt = vec![4u32, 8, 15, 16, 23, 42];
    let mut e = Engine::new(model.clone(), None, EngineConfig { max_batch: 2, max_seq_len: 64 }).unwrap();
    let req =
        GenerationRequest { sampling: SamplingParams { temperature: 0.8, top_p: 0.9, top_k: 20 }, seed: 11, ..GenerationRequest::greedy(prompt.clone(), 10) };
    let a = e.generate_batch(vec![req.clone()]).unwrap().remove(0);
    let again = e.generate_batch(vec![req]).unwrap().remove(0);
    assert_eq!(a.token_ids, again.token_ids, "same seed, same tokens");
    let mut full = prompt.clone();
    full.extend(&a.token_ids);
    let lp = token_logprobs(&model, &[full]).remove(0);
    let tail = &lp[prompt.len() - 1..];
    for (x, y) in tail.iter().zip(&a.policy_logprobs) {
        assert!((x - y).abs() < 1e-4, "{x} vs {y}");
    }
    // The sampled distribution is sharper (T < 1, truncated) than the policy: its log-probs are ≥ on average.
    let s: f32 = a.sampled_logprobs.iter().sum();
    let p: f32 = a.policy_logprobs.iter().sum();
    assert!(s >= p, "sampled {s} vs policy {p}");
}

#[test]
fn every_parameter_receives_a_gradient() {
    let dir = model_dir(false, "Qwen2ForCausalLM", Dtype::F32);
    let model = load_model(BurnBackend::flex_autodiff(), dir.path()).unwrap();
    let b = &model.backend;
    let seqs = vec![vec![3u32, 9, 27, 17, 51], vec![2, 4, 6]];
    let lp = memrl_policies::scoring::token_logprobs_tensor(&model, &seqs);
    // Mask the padded positions of the short row.
    let mask = b.tensor(vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0], &[2, 4, 1]);
    let loss = b.mul_scalar(b.sum_all(b.mul(lp, mask)), -1.0);
    let grads = b.backward(&loss);
    let params = model.named_parameters();
    assert_eq!(params.len(), 1 + 2 * (2 + 7 + 3) + 1 + 1);
    for (name, p) in params {
        let g = b.grad(&grads, p).unwrap_or_else(|| panic!("{name}: no gradient"));
        let g = b.to_vec(&g);
        assert!(g.iter().any(|x| x.abs() > 0.0), "{name}: zero gradient");
        assert!(g.iter().all(|x| x.is_finite()), "{name}: non-finite gradient");
    }
}

#[test]
fn engine_rejects_bad_requests() {
    let dir = model_dir(true, "LlamaForCausalLM", Dtype::F32);
    let model = Arc::new(load(dir.path()));
    let mut e = Engine::new(model.clone(), None, EngineConfig { max_batch: 2, max_seq_len: 8 }).unwrap();
    assert!(e.submit(GenerationRequest::greedy(vec![], 3)).is_err());
    assert!(e.submit(GenerationRequest::greedy(vec![1; 8], 3)).is_err());
    assert!(e.submit(GenerationRequest::greedy(vec![VOCAB as u32], 3)).is_err());
    let mut r = GenerationRequest::greedy(vec![3], 3);
    r.stop_strings = vec!["x".into()];
    assert!(e.submit(r).unwrap_err().to_string().contains("tokenizer"));
    // A long request stops at the cache capacity instead of overflowing.
    let out = e.generate_batch(vec![GenerationRequest::greedy(vec![3, 4, 5], 100)]).unwrap().remove(0);
    assert_eq!(out.finish_reason, memrl_policies::FinishReason::ContextFull);
    assert_eq!(out.token_ids.len(), 8 - 3 + 1);
    assert!(Engine::new(Arc::new(load_model(BurnBackend::flex_autodiff(), dir.path()).unwrap()), None, EngineConfig::default()).is_err());
}

#[test]
fn stop_tokens_end_generation_and_are_kept() {
    let dir = model_dir(true, "LlamaForCausalLM", Dtype::F32);
    let model = Arc::new(load(dir.path()));
    let mut e = Engine::new(model, None, EngineConfig { max_batch: 1, max_seq_len: 64 }).unwrap();
    let free = e.generate_batch(vec![GenerationRequest::greedy(vec![9, 10, 11], 10)]).unwrap().remove(0);
    let stop = free.token_ids[3];
    let first = free.token_ids.iter().position(|&t| t == stop).unwrap();
    let mut r = GenerationRequest::greedy(vec![9, 10, 11], 10);
    r.stop_token_ids = vec![stop];
    let out = e.generate_batch(vec![r]).unwrap().remove(0);
    assert_eq!(out.token_ids, free.token_ids[..=first].to_vec());
    assert_eq!(out.finish_reason, memrl_policies::FinishReason::StopToken(stop));
}

#[test]
fn span_limited_chunked_logprobs_equal_the_whole_projection_with_their_gradients() {
    use memrl_policies::scoring::{LogprobOptions, target_logprobs};
    let dir = model_dir(false, "LlamaForCausalLM", Dtype::F32);
    let model = load_model(BurnBackend::flex_autodiff(), dir.path()).unwrap();
    let b = &model.backend;
    let (rows, seq) = (3, 7);
    let input: Vec<u32> = (0..rows * seq).map(|i| (i * 7 % 50) as u32 + 1).collect();
    let target: Vec<u32> = (0..rows * seq).map(|i| (i * 11 % 50) as u32 + 2).collect();
    let lengths = [7, 5, 6];
    // Row 1 needs nothing; the others a middle and a trailing span.
    let spans = [2..6, 0..0, 3..6];
    let mask: Vec<f32> = (0..rows * seq).map(|i| if spans[i / seq].contains(&(i % seq)) { 1.0 } else { 0.0 }).collect();
    let run = |opts: &LogprobOptions| {
        let (lp, entropy) = target_logprobs(&model, &input, &target, rows, seq, &lengths, opts);
        let entropy = entropy.expect("asked for");
        let weights = b.tensor(mask.clone(), &[rows * seq]);
        let loss = b.add(b.sum_all(b.mul(lp.clone(), weights.clone())), b.sum_all(b.mul(entropy.clone(), weights)));
        let grads = b.backward(&loss);
        let g: Vec<Vec<f32>> = model.named_parameters().into_iter().map(|(_, p)| b.grad(&grads, p).map(|g| b.to_vec(&g)).unwrap_or_default()).collect();
        (b.to_vec(&lp), b.to_vec(&entropy), g)
    };
    let whole = run(&LogprobOptions { with_entropy: true, ..LogprobOptions::default() });
    // Spans, and chunks of 2 positions (the vocabulary is 64: 128 logits per chunk).
    let limited = run(&LogprobOptions { spans: Some(&spans), with_entropy: true, chunk_elements: 128, ..LogprobOptions::default() });
    for i in 0..rows * seq {
        if mask[i] == 1.0 {
            assert!((whole.0[i] - limited.0[i]).abs() < 1e-5 && (whole.1[i] - limited.1[i]).abs() < 1e-5, "position {i}");
        } else {
            assert_eq!((limited.0[i], limited.1[i]), (0.0, 0.0), "position {i} is outside the spans");
        }
    }
    for (gw, gl) in whole.2.iter().zip(&limited.2) {
        assert_eq!(gw.len(), gl.len());
        for (x, y) in gw.iter().zip(gl) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
        }
    }
    assert!(whole.2.iter().any(|g| g.iter().any(|x| *x != 0.0)));
    // A batch that needs no position at all still backpropagates: zero gradients, no panic.
    let none = [0..0, 0..0, 0..0];
    let (lp, _) = target_logprobs(&model, &input, &target, rows, seq, &lengths, &LogprobOptions { spans: Some(&none), ..LogprobOptions::default() });
    assert_eq!(b.to_vec(&lp), vec![0.0; rows * seq]);
    let grads = b.backward(&b.sum_all(lp));
    for (name, p) in model.named_parameters() {
        let g = b.grad(&grads, p).unwrap_or_else(|| panic!("{name}: no gradient"));
        assert!(b.to_vec(&g).iter().all(|x| *x == 0.0), "{name}");
    }
}

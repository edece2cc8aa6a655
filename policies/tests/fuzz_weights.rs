//! Seeded mutation fuzzing of the model readers (issue 18): a tiny but complete Llama model,
//! as one GGUF file and as an HF directory (config.json, model.safetensors, tokenizer files),
//! is corrupted byte by byte and loaded the way `memrl generate` / `train` load a model.
//!
//! Properties: no panic and no abort (every count is bounded by the bytes in the file); each
//! case ends in bounded time; an error names the file and quotes at most a bounded number of
//! characters of it. Default: a few thousand cases per format (CI, seconds). Set
//! `MEMRL_FUZZ_CASES=200000` for a long run; `MEMRL_FUZZ_SEED` picks another sequence.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use memrl_policies::gguf::dequant::GgmlType;
use memrl_policies::train::checkpoint::{config_to_hf_json, safetensors_bytes};
use memrl_policies::train::tiny::random_hf_tensors;
use memrl_policies::{BurnBackend, LlamaConfig, load_config, load_model, load_tokenizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Cases per format in CI.
const DEFAULT_CASES: usize = 3000;
/// Longest a single load may take before it counts as a hang.
const CASE_LIMIT: Duration = Duration::from_secs(10);
/// Longest error message a corrupt file may produce (the CLI prints it on one line).
const MAX_ERROR_CHARS: usize = 2000;

fn cases() -> usize {
    std::env::var("MEMRL_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CASES)
}

fn seed() -> u64 {
    std::env::var("MEMRL_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(18)
}

// ---------------------------------------------------------------- a tiny Llama as GGUF

const HIDDEN: u64 = 32;
const HEADS: u64 = 4;
const KV_HEADS: u64 = 2;
const FFN: u64 = 64;

/// The GPT-2 byte alphabet, two merges and the ChatML control tokens.
fn vocabulary() -> Vec<(String, u32)> {
    let mut tokens: Vec<(String, u32)> = memrl_policies::tokenizer::bytes_to_unicode().iter().map(|c| (c.to_string(), 1)).collect();
    tokens.push(("he".into(), 1));
    tokens.push(("ll".into(), 1));
    tokens.push(("<|im_start|>".into(), 3));
    tokens.push(("<|im_end|>".into(), 3));
    tokens
}

const TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

struct GgufWriter(Vec<u8>);

impl GgufWriter {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn kv_u32(&mut self, key: &str, v: u32) {
        self.str(key);
        self.u32(4);
        self.u32(v);
    }
    fn kv_f32(&mut self, key: &str, v: f32) {
        self.str(key);
        self.u32(6);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn kv_str(&mut self, key: &str, v: &str) {
        self.str(key);
        self.u32(8);
        self.str(v);
    }
    fn kv_array<T>(&mut self, key: &str, elem_ty: u32, items: &[T], mut put: impl FnMut(&mut Self, &T)) {
        self.str(key);
        self.u32(9);
        self.u32(elem_ty);
        self.u64(items.len() as u64);
        for item in items {
            put(self, item);
        }
    }
}

/// A tensor of the GGUF file: name, ggml `ne` (innermost first) and type.
fn gguf_tensors(vocab: u64) -> Vec<(String, Vec<u64>, GgmlType)> {
    let kv = KV_HEADS * (HIDDEN / HEADS);
    let mut t = vec![("token_embd.weight".to_string(), vec![HIDDEN, vocab], GgmlType::F32), ("output_norm.weight".into(), vec![HIDDEN], GgmlType::F32)];
    let blk = |n: &str| format!("blk.0.{n}.weight");
    t.push((blk("attn_norm"), vec![HIDDEN], GgmlType::F32));
    t.push((blk("attn_q"), vec![HIDDEN, HIDDEN], GgmlType::F16));
    t.push((blk("attn_k"), vec![HIDDEN, kv], GgmlType::F32));
    t.push((blk("attn_v"), vec![HIDDEN, kv], GgmlType::F32));
    t.push((blk("attn_output"), vec![HIDDEN, HIDDEN], GgmlType::F32));
    t.push((blk("ffn_norm"), vec![HIDDEN], GgmlType::F32));
    t.push((blk("ffn_gate"), vec![HIDDEN, FFN], GgmlType::Q8_0));
    t.push((blk("ffn_up"), vec![HIDDEN, FFN], GgmlType::F32));
    t.push((blk("ffn_down"), vec![FFN, HIDDEN], GgmlType::F32));
    t
}

fn type_id(ty: GgmlType) -> u32 {
    match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q8_0 => 8,
        other => panic!("the fuzz model does not use {other:?}"),
    }
}

/// Small deterministic weights of `n` elements in `ty`'s encoding.
fn tensor_bytes(ty: GgmlType, n: u64, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut out = Vec::new();
    match ty {
        GgmlType::F32 => (0..n).for_each(|_| out.extend_from_slice(&rng.random_range(-0.1f32..0.1).to_le_bytes())),
        GgmlType::F16 => (0..n).for_each(|_| out.extend_from_slice(&half::f16::from_f32(rng.random_range(-0.1f32..0.1)).to_le_bytes())),
        GgmlType::Q8_0 => {
            for _ in 0..n / 32 {
                out.extend_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
                (0..32).for_each(|_| out.push(rng.random::<u8>()));
            }
        }
        other => panic!("the fuzz model does not use {other:?}"),
    }
    out
}

/// A complete tiny Llama GGUF file (config, tokenizer, chat template, weights); also returns
/// where its tensor data starts.
fn tiny_llama_gguf() -> (Vec<u8>, usize) {
    let vocab = vocabulary();
    let tensors = gguf_tensors(vocab.len() as u64);
    let mut w = GgufWriter(Vec::new());
    w.0.extend_from_slice(b"GGUF");
    w.u32(3);
    w.u64(tensors.len() as u64);
    w.u64(15);
    w.kv_str("general.architecture", "llama");
    w.kv_u32("llama.embedding_length", HIDDEN as u32);
    w.kv_u32("llama.attention.head_count", HEADS as u32);
    w.kv_u32("llama.attention.head_count_kv", KV_HEADS as u32);
    w.kv_u32("llama.feed_forward_length", FFN as u32);
    w.kv_u32("llama.block_count", 1);
    w.kv_u32("llama.context_length", 64);
    w.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5);
    w.kv_f32("llama.rope.freq_base", 10_000.0);
    w.kv_str("tokenizer.ggml.model", "gpt2");
    w.kv_array("tokenizer.ggml.tokens", 8, &vocab, |w, (t, _)| w.str(t));
    w.kv_array("tokenizer.ggml.token_type", 5, &vocab, |w, (_, ty)| w.u32(*ty));
    w.kv_array("tokenizer.ggml.merges", 8, &["h e", "l l"], |w, m| w.str(m));
    w.kv_u32("tokenizer.ggml.eos_token_id", vocab.len() as u32 - 1);
    w.kv_str("tokenizer.chat_template", TEMPLATE);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut data = Vec::new();
    for (name, ne, ty) in &tensors {
        w.str(name);
        w.u32(ne.len() as u32);
        ne.iter().for_each(|&d| w.u64(d));
        w.u32(type_id(*ty));
        w.u64(data.len() as u64);
        data.extend(tensor_bytes(*ty, ne.iter().product(), &mut rng));
        data.resize(data.len().div_ceil(32) * 32, 0);
    }
    let mut bytes = w.0;
    bytes.resize(bytes.len().div_ceil(32) * 32, 0);
    let data_start = bytes.len();
    bytes.extend(data);
    (bytes, data_start)
}

// ------------------------------------------------------- the same model as an HF directory

/// `config.json`, `model.safetensors` (with the size of its header) and the tokenizer files.
fn tiny_llama_hf(dir: &Path) -> (Vec<u8>, usize) {
    let config = LlamaConfig::from_hf_json(
        &serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 258, "hidden_size": HIDDEN,
            "intermediate_size": FFN, "num_hidden_layers": 1, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
            "rms_norm_eps": 1e-5, "max_position_embeddings": 64, "tie_word_embeddings": false, "eos_token_id": 1,
        }),
        "fuzz",
    )
    .unwrap();
    std::fs::write(dir.join("config.json"), config_to_hf_json(&config).to_string()).unwrap();
    let tensors = random_hf_tensors(&config, 3, 0.02);
    let bytes = safetensors_bytes(&tensors, Default::default()).unwrap();
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut vocab: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
    for (i, c) in memrl_policies::tokenizer::bytes_to_unicode().iter().enumerate() {
        vocab.insert(c.to_string(), i.into());
    }
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "added_tokens": [
            {"id": 256, "content": "<|im_start|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 257, "content": "<|im_end|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
        ],
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "vocab": vocab, "merges": []}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let cfg = serde_json::json!({"eos_token": "<|im_end|>", "chat_template": TEMPLATE});
    std::fs::write(dir.join("tokenizer_config.json"), cfg.to_string()).unwrap();
    (bytes, header)
}

// ------------------------------------------------------------------------- mutations

/// Integers that break readers: zero, one, boundaries, huge.
const INTERESTING: [u64; 10] = [0, 1, 2, 31, 32, 255, 0x7fff_ffff, 0xffff_ffff, 1 << 63, u64::MAX];

/// Corrupts `bytes`, mostly inside `hot` (the header, where the counts and offsets are).
fn mutate(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>, hot: usize) {
    for _ in 0..rng.random_range(1..=3) {
        let len = bytes.len();
        if len == 0 {
            bytes.push(rng.random());
            continue;
        }
        let limit = if rng.random_bool(0.8) { hot.clamp(1, len) } else { len };
        let at = rng.random_range(0..limit);
        match rng.random_range(0..7) {
            0 => bytes[at] ^= 1 << rng.random_range(0..8),
            1 => bytes[at] = rng.random(),
            2 => {
                let v = INTERESTING[rng.random_range(0..INTERESTING.len())];
                let width = if rng.random_bool(0.5) { 8 } else { 4 };
                for (i, b) in v.to_le_bytes().iter().take(width).enumerate() {
                    if let Some(slot) = bytes.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            3 => bytes.truncate(at),
            4 => {
                let end = (at + rng.random_range(1..=64)).min(len);
                bytes.drain(at..end);
            }
            5 => {
                let n = rng.random_range(1..=16);
                let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                bytes.splice(at..at, junk);
            }
            _ => {
                let end = (at + rng.random_range(1..=64)).min(len);
                let copy = bytes[at..end].to_vec();
                let to = rng.random_range(0..=bytes.len());
                bytes.splice(to..to, copy);
            }
        }
    }
}

// ---------------------------------------------------------------------------- checks

/// Loads the model at `path` as `memrl generate` does (config, tokenizer with a rendered chat
/// prompt, weights); returns the first error's message.
fn load_all(path: &Path) -> Option<String> {
    let config = load_config(path).err().map(|e| e.to_string());
    let tokenizer = match load_tokenizer(path) {
        Ok(tok) => {
            let _ = tok.encode("hello world", false);
            let _ = tok.decode(&[0, 1, 2, 1000], false);
            let msgs = [serde_json::json!({"role": "user", "content": "hello"})];
            tok.encode_chat(&msgs, None, true).err().map(|e| e.to_string())
        }
        Err(e) => Some(e.to_string()),
    };
    let model = load_model(BurnBackend::flex(), path).err().map(|e| e.to_string());
    config.or(tokenizer).or(model)
}

/// Runs one case (loading `model`, of which `file` was corrupted); fails the test on a panic,
/// a hang, or an error that hides the file or is huge. True when the model was refused.
fn check_case(what: &str, case: usize, model: &Path, file: &Path) -> bool {
    let start = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| load_all(model)));
    let shown = model.display().to_string();
    let elapsed = start.elapsed();
    let keep = || {
        let kept = std::env::temp_dir().join(format!("memrl-fuzz-{what}-case-{case}"));
        let _ = std::fs::copy(file, &kept);
        kept.display().to_string()
    };
    match outcome {
        Err(_) => panic!("{what} case {case} (seed {}) panicked; input kept at {}", seed(), keep()),
        Ok(error) => {
            assert!(elapsed < CASE_LIMIT, "{what} case {case} took {elapsed:?}; input kept at {}", keep());
            if let Some(e) = &error {
                assert!(e.contains(&shown), "{what} case {case}: the error does not name {shown}: {e}; input kept at {}", keep());
                assert!(e.chars().count() <= MAX_ERROR_CHARS, "{what} case {case}: a {}-char error; input kept at {}", e.len(), keep());
            }
            error.is_some()
        }
    }
}

#[test]
fn corrupt_gguf_files_load_or_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let (good, data_start) = tiny_llama_gguf();
    std::fs::write(&path, &good).unwrap();
    assert_eq!(load_all(&path), None, "the uncorrupted file loads");
    let mut rng = ChaCha8Rng::seed_from_u64(seed());
    let mut failed = 0;
    for case in 0..cases() {
        let mut bytes = good.clone();
        mutate(&mut rng, &mut bytes, data_start);
        std::fs::write(&path, &bytes).unwrap();
        failed += usize::from(check_case("gguf", case, &path, &path));
    }
    eprintln!("fuzzed {} GGUF files: {failed} refused, the rest loaded", cases());
    assert!(failed > cases() / 4, "the mutations mostly reach the header");
}

#[test]
fn corrupt_safetensors_directories_load_or_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (good, header) = tiny_llama_hf(dir.path());
    let weights = dir.path().join("model.safetensors");
    std::fs::write(&weights, &good).unwrap();
    assert_eq!(load_all(dir.path()), None, "the uncorrupted directory loads");
    let good_config = std::fs::read(dir.path().join("config.json")).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed() ^ 0x5afe);
    let mut failed = 0;
    for case in 0..cases() {
        // Mostly the weights; sometimes config.json instead.
        let (file, good_bytes, hot) = if case % 5 == 4 {
            std::fs::write(&weights, &good).unwrap();
            (dir.path().join("config.json"), &good_config, good_config.len())
        } else {
            std::fs::write(dir.path().join("config.json"), &good_config).unwrap();
            (weights.clone(), &good, header)
        };
        let mut bytes = good_bytes.clone();
        mutate(&mut rng, &mut bytes, hot);
        std::fs::write(&file, &bytes).unwrap();
        failed += usize::from(check_case("safetensors", case, dir.path(), &file));
    }
    eprintln!("fuzzed {} model directories: {failed} refused, the rest loaded", cases());
    assert!(failed > cases() / 4, "the mutations mostly reach the header");
}

#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    tiny_llama_hf(dir.path());
    let config = LlamaConfig::from_file(&dir.path().join("config.json")).unwrap();
    let mut tensors = random_hf_tensors(&config, 3, 0.02);
    let norm = tensors.iter_mut().find(|(name, _)| name == "model.norm.weight").unwrap();
    norm.1.data[1] = f32::NAN;
    norm.1.data[2] = f32::INFINITY;
    std::fs::write(dir.path().join("model.safetensors"), safetensors_bytes(&tensors, Default::default()).unwrap()).unwrap();
    let e = load_model(BurnBackend::flex(), dir.path()).err().expect("NaN weights are refused").to_string();
    assert!(e.contains("model.norm.weight") && e.contains("2 of 32 values are NaN or infinite"), "{e}");
}

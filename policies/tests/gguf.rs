//! The GGUF reader: dequantisation against llama.cpp's gguf-py, the real SmolLM2 file, and
//! malformed files (truncated, wrong magic, absurd counts) that must fail with clear errors.

use std::io::Write;
use std::path::{Path, PathBuf};

use memrl_policies::gguf::dequant::{GgmlType, dequantize};
use memrl_policies::gguf::{GgufError, GgufFile, MetaValue, llama};
use serde_json::Value;

fn fixture() -> Value {
    let text = include_str!("fixtures/gguf_dequant.json");
    serde_json::from_str(text).expect("fixture parses")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn ggml_type(name: &str) -> GgmlType {
    match name {
        "Q4_0" => GgmlType::Q4_0,
        "Q4_1" => GgmlType::Q4_1,
        "Q8_0" => GgmlType::Q8_0,
        "Q4_K" => GgmlType::Q4K,
        "Q6_K" => GgmlType::Q6K,
        "F16" => GgmlType::F16,
        "BF16" => GgmlType::BF16,
        "F32" => GgmlType::F32,
        other => panic!("unknown type {other} in fixture"),
    }
}

/// Every quantised type matches gguf-py's dequantiser bit for bit on random blocks.
#[test]
fn dequantisers_match_gguf_py() {
    let fx = fixture();
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 7, "one case per type");
    for case in cases {
        let ty = ggml_type(case["type"].as_str().unwrap());
        let raw = hex(case["raw_hex"].as_str().unwrap());
        let want: Vec<f32> = case["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let mut got = vec![0f32; want.len()];
        dequantize(ty, &raw, &mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(g.to_bits() == w.to_bits() || (g - w).abs() <= 1e-6 * w.abs().max(1.0), "{}: value {i}: {g} vs {w}", ty.name());
        }
    }
}

pub fn smollm2_path() -> PathBuf {
    if let Ok(p) = std::env::var("MEMRL_SMOLLM2_GGUF") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.exists(), "SmolLM2 GGUF not found at {}: run scripts/fetch-model.sh (or set MEMRL_SMOLLM2_GGUF)", p.display());
    p
}

/// The real model file: metadata, config, and tensor checksums against gguf-py.
#[test]
fn reads_smollm2() {
    let file = GgufFile::open(&smollm2_path()).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.tensor_infos().len(), 272);
    assert_eq!(file.get("general.architecture"), Some(&MetaValue::String("llama".into())));
    assert_eq!(file.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()).map(|a| a.len()), Some(49152));

    let cfg = llama::hf_config(&file).unwrap();
    assert_eq!(cfg["hidden_size"], 576);
    assert_eq!(cfg["intermediate_size"], 1536);
    assert_eq!(cfg["num_hidden_layers"], 30);
    assert_eq!(cfg["num_attention_heads"], 9);
    assert_eq!(cfg["num_key_value_heads"], 3);
    assert_eq!(cfg["head_dim"], 64);
    assert_eq!(cfg["vocab_size"], 49152);
    assert_eq!(cfg["rope_theta"], 100000.0);
    assert_eq!(cfg["tie_word_embeddings"], true);
    assert_eq!(cfg["attention_bias"], false);
    assert_eq!(cfg["bos_token_id"], 1);
    assert_eq!(cfg["eos_token_id"], 2);
    assert!((cfg["rms_norm_eps"].as_f64().unwrap() - 1e-5).abs() < 1e-9);
    assert!(llama::chat_template(&file).unwrap().contains("<|im_start|>"));

    let emb = file.tensor_info("token_embd.weight").unwrap();
    assert_eq!(emb.shape, vec![49152, 576]);
    assert_eq!(emb.dtype, GgmlType::Q8_0);

    let fx = fixture();
    for (name, want) in fx["model"].as_object().unwrap() {
        let data = file.read_tensor_f32(name).unwrap();
        assert_eq!(data.len() as u64, want["n"].as_u64().unwrap(), "{name}");
        for (i, w) in want["first"].as_array().unwrap().iter().enumerate() {
            assert_eq!(data[i], w.as_f64().unwrap() as f32, "{name}[{i}]");
        }
        let sum: f64 = data.iter().map(|&v| v as f64).sum();
        let sum_abs: f64 = data.iter().map(|&v| (v as f64).abs()).sum();
        let tol = 1e-9 * want["sum_abs"].as_f64().unwrap();
        assert!((sum - want["sum"].as_f64().unwrap()).abs() <= tol.max(1e-6), "{name}: sum {sum}");
        assert!((sum_abs - want["sum_abs"].as_f64().unwrap()).abs() <= tol.max(1e-6), "{name}: sum_abs {sum_abs}");
    }
}

/// Every tensor maps to an HF name, q/k come back un-permuted, and the un-permuted q rows are a
/// permutation of the file's rows (same multiset of row sums).
#[test]
fn smollm2_hf_tensors() {
    let file = GgufFile::open(&smollm2_path()).unwrap();
    let tensors = llama::hf_tensors(&file).unwrap();
    assert_eq!(tensors.len(), 272);
    assert!(tensors.iter().all(|t| t.name.starts_with("model.")), "tied embeddings: no lm_head");
    let q = tensors.iter().find(|t| t.name == "model.layers.0.self_attn.q_proj.weight").unwrap();
    assert_eq!(q.shape, vec![576, 576]);
    let raw = file.read_tensor_f32("blk.0.attn_q.weight").unwrap();
    assert_ne!(q.data, raw);
    let row_sums = |d: &[f32]| {
        let mut s: Vec<i64> = d.chunks(576).map(|r| (r.iter().map(|&v| v as f64).sum::<f64>() * 1e6) as i64).collect();
        s.sort();
        s
    };
    assert_eq!(row_sums(&q.data), row_sums(&raw));
    // Row 1 of HF head 0 (i=1, first half) was row 2 of the GGUF (i=1, pair 0).
    assert_eq!(&q.data[576..1152], &raw[2 * 576..3 * 576]);
}

/// Builds a small GGUF file: a few metadata entries and one F32 tensor of 4 values.
fn tiny_gguf(tensor_count: u64, kv_count: u64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&tensor_count.to_le_bytes());
    b.extend_from_slice(&kv_count.to_le_bytes());
    let s = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    s(&mut b, "general.architecture");
    b.extend_from_slice(&8u32.to_le_bytes());
    s(&mut b, "llama");
    s(&mut b, "w");
    b.extend_from_slice(&1u32.to_le_bytes()); // n_dims
    b.extend_from_slice(&4u64.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes()); // F32
    b.extend_from_slice(&0u64.to_le_bytes()); // offset
    while b.len() % 32 != 0 {
        b.push(0);
    }
    for v in [1.0f32, -2.0, 3.5, 0.25] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

fn write_tmp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f
}

#[test]
fn tiny_file_round_trips() {
    let f = write_tmp(&tiny_gguf(1, 1));
    let g = GgufFile::open(f.path()).unwrap();
    assert_eq!(g.read_tensor_f32("w").unwrap(), vec![1.0, -2.0, 3.5, 0.25]);
    assert!(matches!(g.read_tensor_f32("nope"), Err(GgufError::MissingTensor { .. })));
}

#[test]
fn malformed_files_fail_with_clear_errors() {
    let good = tiny_gguf(1, 1);
    // Every truncation inside the header (before the alignment padding) must fail cleanly:
    // magic, version, counts, one string key/value, one tensor entry.
    let header_len = 4 + 4 + 8 + 8 + (8 + 20) + 4 + (8 + 5) + (8 + 1) + 4 + 8 + 4 + 8;
    assert!(header_len <= good.len() - 16);
    for cut in 0..header_len {
        let f = write_tmp(&good[..cut]);
        let err = GgufFile::open(f.path()).expect_err("truncated header must fail");
        let msg = err.to_string();
        assert!(msg.contains(&f.path().display().to_string()), "error names the file: {msg}");
    }
    // Truncated tensor data: the header reads, the tensor does not.
    let f = write_tmp(&good[..good.len() - 3]);
    let g = GgufFile::open(f.path()).unwrap();
    let err = g.read_tensor_f32("w").unwrap_err();
    assert!(matches!(err, GgufError::TruncatedTensor { .. }), "{err}");
    assert!(err.to_string().contains("`w`"), "{err}");

    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    let f = write_tmp(&bad_magic);
    assert!(GgufFile::open(f.path()).unwrap_err().to_string().contains("magic"));

    // Absurd counts are rejected before anything is allocated.
    let f = write_tmp(&tiny_gguf(u64::MAX / 2, 1));
    assert!(GgufFile::open(f.path()).unwrap_err().to_string().contains("tensor count"));
    let f = write_tmp(&tiny_gguf(1, u64::MAX));
    assert!(GgufFile::open(f.path()).unwrap_err().to_string().contains("metadata count"));
}

#[test]
fn config_of_a_non_llama_file_is_refused() {
    let f = write_tmp(&tiny_gguf(1, 1));
    let g = GgufFile::open(f.path()).unwrap();
    // architecture is llama, but the rest of the metadata is missing: the error names the key.
    let err = llama::hf_config(&g).unwrap_err().to_string();
    assert!(err.contains("llama.embedding_length"), "{err}");
}

/// A GGUF file with two F32 tensors of `n` values each, named and placed as given, followed by
/// enough data bytes for both.
fn two_tensor_gguf(n: u64, a: (&str, u64), b: (&str, u64)) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&2u64.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    for (name, offset) in [a, b] {
        out.extend_from_slice(&(name.len() as u64).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // F32
        out.extend_from_slice(&offset.to_le_bytes());
    }
    while out.len() % 32 != 0 {
        out.push(0);
    }
    out.resize(out.len() + 8 * n as usize + 64, 0);
    out
}

#[test]
fn tensor_tables_that_would_read_the_wrong_bytes_are_refused() {
    let ok = write_tmp(&two_tensor_gguf(4, ("a", 0), ("b", 32)));
    GgufFile::open(ok.path()).unwrap();
    for (bytes, needle) in [
        (two_tensor_gguf(4, ("w", 0), ("w", 32)), "listed twice"),
        (two_tensor_gguf(4, ("a", 0), ("b", 4)), "alignment"),
        (two_tensor_gguf(16, ("a", 0), ("b", 32)), "overlap"),
        (two_tensor_gguf(4, ("a", 0), ("b", u64::MAX - 31)), "overflows"),
    ] {
        let f = write_tmp(&bytes);
        let err = GgufFile::open(f.path()).expect_err(needle).to_string();
        assert!(err.contains(needle) && err.contains(&f.path().display().to_string()), "{needle}: {err}");
    }
}

/// A GGUF file with no tensors and a two-token byte-level BPE tokenizer whose EOS id is `eos`.
fn tokenizer_gguf(eos: u32) -> Vec<u8> {
    let mut b = Vec::new();
    let s = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&4u64.to_le_bytes());
    s(&mut b, "tokenizer.ggml.model");
    b.extend_from_slice(&8u32.to_le_bytes());
    s(&mut b, "gpt2");
    for (key, items) in [("tokenizer.ggml.tokens", &["a", "b"][..]), ("tokenizer.ggml.merges", &[][..])] {
        s(&mut b, key);
        b.extend_from_slice(&9u32.to_le_bytes()); // array
        b.extend_from_slice(&8u32.to_le_bytes()); // of strings
        b.extend_from_slice(&(items.len() as u64).to_le_bytes());
        for item in items {
            s(&mut b, item);
        }
    }
    s(&mut b, "tokenizer.ggml.eos_token_id");
    b.extend_from_slice(&4u32.to_le_bytes()); // u32
    b.extend_from_slice(&eos.to_le_bytes());
    b
}

#[test]
fn a_special_token_id_outside_the_vocabulary_is_refused() {
    let ok = write_tmp(&tokenizer_gguf(1));
    let tok = memrl_policies::tokenizer::Tokenizer::from_gguf(&GgufFile::open(ok.path()).unwrap()).unwrap();
    assert_eq!(tok.token_to_id("b"), Some(1));
    let bad = write_tmp(&tokenizer_gguf(7));
    let err = memrl_policies::tokenizer::Tokenizer::from_gguf(&GgufFile::open(bad.path()).unwrap()).err().expect("id 7 of 2 tokens");
    assert!(err.to_string().contains("tokenizer.ggml.eos_token_id"), "{err}");
}

#[test]
fn a_huge_binary_tensor_name_is_quoted_escaped_and_capped() {
    // A damaged name length turns megabytes of binary into a "name" (a 31 MB error once).
    let name: String = std::iter::repeat_n("\u{1b}[2J\0w", 200_000).collect();
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes()); // tensors
    b.extend_from_slice(&0u64.to_le_bytes()); // metadata
    b.extend_from_slice(&(name.len() as u64).to_le_bytes());
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&1u32.to_le_bytes()); // n_dims
    b.extend_from_slice(&4u64.to_le_bytes());
    b.extend_from_slice(&99u32.to_le_bytes()); // no such ggml type: the error quotes the name
    b.extend_from_slice(&0u64.to_le_bytes());
    b.resize(b.len().div_ceil(32) * 32 + 64, 0);
    let f = write_tmp(&b);
    let err = GgufFile::open(f.path()).expect_err("an unknown tensor type is refused").to_string();
    assert!(err.len() < 2_000, "a {}-byte error", err.len());
    assert!(!err.chars().any(char::is_control), "{err}");
    assert!(err.contains("\\u{1b}[2J\\u{0}w") && err.contains("..."), "{err}");
}

//! Model shapes for randomly initialised benchmark models, training FLOPs per token and model
//! FLOPs utilisation (MFU) for `memrl bench policy`.
//!
//! FLOPs per trained token (PaLM, appendix B): `6·N + 12·L·(H·d)·S`, where `N` counts the
//! parameters that take part in a matrix product (every projection and `lm_head`; not the
//! embedding lookup of an untied model, not norms or biases), `L` the layers, `H·d` the
//! attention width (heads × head dim), `S` the sequence length. The first term is the forward
//! (2 FLOPs per multiply-add) plus a backward twice as costly; the second the attention scores
//! and weighted sum, counted over the full `S × S` square (causal masking not subtracted, as in
//! PaLM). MFU = achieved FLOP/s ÷ peak dense FLOP/s of the device.

use anyhow::{Context, Result, anyhow};
use memrl_policies::LlamaConfig;
use serde::Serialize;
use serde_json::Value;

/// The shape table (`scripts/reference/random_shapes.json`), shared with the Python peers.
const SHAPES_JSON: &str = include_str!("../../../../../scripts/reference/random_shapes.json");

/// Names of the random-init shapes `--model random:NAME` accepts.
pub fn random_shape_names() -> Vec<String> {
    let table: Value = serde_json::from_str(SHAPES_JSON).expect("random_shapes.json is valid JSON");
    table.as_object().map(|o| o.keys().filter(|k| !k.starts_with('_')).cloned().collect()).unwrap_or_default()
}

/// The config of random-init shape `name` (e.g. `qwen2.5-0.5b`).
pub fn random_shape(name: &str) -> Result<LlamaConfig> {
    let table: Value = serde_json::from_str(SHAPES_JSON).context("random_shapes.json")?;
    let entry = table
        .get(name)
        .filter(|_| !name.starts_with('_'))
        .ok_or_else(|| anyhow!("--model random:{name}: unknown shape; expected one of {}", random_shape_names().join(", ")))?;
    Ok(LlamaConfig::from_hf_json(entry, &format!("random_shapes.json[{name}]"))?)
}

/// Parameters that take part in a matrix product (see the module doc).
pub fn matmul_parameters(c: &LlamaConfig) -> u64 {
    let (h, ff) = (c.hidden_size as u64, c.intermediate_size as u64);
    let (q, kv) = ((c.num_attention_heads * c.head_dim) as u64, (c.num_key_value_heads * c.head_dim) as u64);
    let per_layer = h * q + 2 * h * kv + q * h + 3 * h * ff;
    c.num_hidden_layers as u64 * per_layer + c.vocab_size as u64 * h
}

/// Training FLOPs per token at sequence length `seq`: `6·N + 12·L·(H·d)·S`.
pub fn train_flops_per_token(c: &LlamaConfig, seq: usize) -> f64 {
    let attention = 12.0 * c.num_hidden_layers as f64 * (c.num_attention_heads * c.head_dim) as f64 * seq as f64;
    6.0 * matmul_parameters(c) as f64 + attention
}

/// Dense bf16 peak TFLOP/s (no sparsity) of a GPU by the name `nvidia-smi` gives, for the
/// GPUs this project benchmarks on; None for others (pass `--peak-tflops`).
pub fn peak_bf16_tflops(gpu_name: &str) -> Option<f64> {
    let n = gpu_name.to_ascii_uppercase();
    if n.contains("H200") {
        Some(989.0)
    } else if n.contains("H100") && n.contains("PCIE") {
        Some(756.0)
    } else if n.contains("H100") {
        Some(989.0)
    } else if n.contains("A100") {
        Some(312.0)
    } else {
        None
    }
}

/// The name of CUDA device `index` from `nvidia-smi`, when it can be asked.
pub fn cuda_device_name(index: usize) -> Option<String> {
    let out = std::process::Command::new("nvidia-smi").args(["--query-gpu=name", "--format=csv,noheader", &format!("--id={index}")]).output().ok()?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !name.is_empty()).then_some(name)
}

/// Model FLOPs utilisation: `tokens_per_s · flops_per_token / (peak_tflops · 1e12)`.
pub fn mfu(tokens_per_s: f64, flops_per_token: f64, peak_tflops: f64) -> Option<f64> {
    let v = tokens_per_s * flops_per_token / (peak_tflops * 1e12);
    (v.is_finite() && peak_tflops > 0.0).then_some(v)
}

/// Model FLOPs utilisation of the learner (formula in the module doc).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MfuReport {
    /// The formula, in words.
    pub formula: String,
    /// `N`: parameters in matrix products.
    pub matmul_parameters: u64,
    /// Training FLOPs per token at the learner's sequence length.
    pub flops_per_token: f64,
    /// The peak used, TFLOP/s (None: unknown, no MFU).
    pub peak_tflops: Option<f64>,
    /// Where the peak came from (`--peak-tflops`, or the GPU's name).
    pub peak_source: String,
    /// memrl's MFU (fraction, not percent).
    pub memrl: Option<f64>,
    /// The peer's MFU at the same FLOPs per token.
    pub peer: Option<f64>,
}

/// The learner's FLOPs per token and MFU at sequence length `seq`, with the peak from
/// `--peak-tflops` (`peak_arg`) or the GPU's name.
pub fn learner_mfu(
    config: &LlamaConfig,
    seq: usize,
    peak_arg: Option<f64>,
    gpu: Option<&str>,
    memrl_tokens_per_s: f64,
    peer_tokens_per_s: Option<f64>,
) -> MfuReport {
    let (peak, source) = match (peak_arg, gpu) {
        (Some(p), _) => (Some(p), "--peak-tflops".to_string()),
        (None, Some(name)) => match peak_bf16_tflops(name) {
            Some(p) => (Some(p), format!("dense bf16 peak of {name}")),
            None => (None, format!("unknown for {name}: pass --peak-tflops")),
        },
        (None, None) => (None, "none on the CPU: pass --peak-tflops".to_string()),
    };
    let per_token = train_flops_per_token(config, seq);
    let l = config.num_hidden_layers;
    let width = config.num_attention_heads * config.head_dim;
    MfuReport {
        formula: format!(
            "FLOPs/token = 6·N + 12·L·(H·d)·S = 6·{} + 12·{l}·{width}·{seq} (N: parameters in matrix products incl. lm_head); MFU = tok/s · FLOPs/token / peak",
            matmul_parameters(config)
        ),
        matmul_parameters: matmul_parameters(config),
        flops_per_token: per_token,
        peak_tflops: peak,
        peak_source: source,
        memrl: peak.and_then(|p| mfu(memrl_tokens_per_s, per_token, p)),
        peer: peak.zip(peer_tokens_per_s).and_then(|(p, t)| mfu(t, per_token, p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen_shape_counts_its_known_parameters() {
        let c = random_shape("qwen2.5-0.5b").unwrap();
        assert_eq!((c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim), (896, 24, 14, 2, 64));
        assert!(c.tie_word_embeddings && c.qkv_bias && c.rope_theta == 1e6 && c.vocab_size == 151_936);
        // Qwen2.5-0.5B has 494,032,768 parameters; less 24·2 + 1 norms of 896 and the q/k/v biases
        // (24 · (896 + 2·128)) that take part in no matrix product.
        let norms = (24 * 2 + 1) * 896;
        let biases = 24 * (896 + 2 * 128);
        assert_eq!(matmul_parameters(&c), 494_032_768 - norms - biases);
        // 6·N + 12·24·896·1024.
        let f = train_flops_per_token(&c, 1024);
        assert_eq!(f, 6.0 * matmul_parameters(&c) as f64 + 12.0 * 24.0 * 896.0 * 1024.0);
    }

    #[test]
    fn smollm2_shape_matches_the_real_model_size() {
        // SmolLM2-135M: 134,515,008 parameters, of which 30·2 + 1 norms of 576.
        let c = random_shape("smollm2-135m").unwrap();
        assert_eq!(matmul_parameters(&c), 134_515_008 - 61 * 576);
    }

    #[test]
    fn unknown_shapes_list_the_known_ones() {
        let e = random_shape("llama-70b").unwrap_err().to_string();
        assert!(e.contains("random:llama-70b") && e.contains("qwen2.5-0.5b") && e.contains("tiny-qwen2"), "{e}");
        assert!(random_shape("_comment").is_err());
    }

    #[test]
    fn mfu_and_peaks() {
        assert_eq!(peak_bf16_tflops("NVIDIA H100 80GB HBM3"), Some(989.0));
        assert_eq!(peak_bf16_tflops("NVIDIA H100 PCIe"), Some(756.0));
        assert_eq!(peak_bf16_tflops("NVIDIA H200"), Some(989.0));
        assert_eq!(peak_bf16_tflops("AMD EPYC"), None);
        let m = mfu(10_000.0, 3.0e9, 100.0).unwrap();
        assert!((m - 0.3).abs() < 1e-12);
        assert_eq!(mfu(1.0, 1.0, 0.0), None);
        let c = random_shape("tiny-qwen2").unwrap();
        let r = learner_mfu(&c, 64, None, Some("NVIDIA H100 80GB HBM3"), 1000.0, Some(500.0));
        assert_eq!(r.peak_tflops, Some(989.0));
        let want = 1000.0 * train_flops_per_token(&c, 64) / 989e12;
        assert!((r.memrl.unwrap() - want).abs() < 1e-15 && (r.peer.unwrap() * 2.0 - want).abs() < 1e-15);
        assert!(r.formula.contains("6·N + 12·L·(H·d)·S"));
        let cpu = learner_mfu(&c, 64, None, None, 1000.0, None);
        assert_eq!((cpu.peak_tflops, cpu.memrl), (None, None));
        assert!(cpu.peak_source.contains("--peak-tflops"));
        assert_eq!(learner_mfu(&c, 64, Some(2.0), None, 1000.0, None).peak_tflops, Some(2.0));
    }
}

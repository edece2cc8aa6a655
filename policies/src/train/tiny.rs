//! Tiny Llama presets with seeded random initialisation, for tests, CI and fast experiments.
//!
//! | preset | layers | hidden | heads / kv heads | head dim | FFN |
//! |---|---|---|---|---|---|
//! | `tiny-2l-64d` | 2 | 64 | 4 / 2 | 16 | 192 |
//! | `tiny-4l-128d` | 4 | 128 | 4 / 2 | 32 | 384 |
//! | `tiny-4l-256d` | 4 | 256 | 8 / 4 | 32 | 768 |
//!
//! Any other shape is spelled `tiny-<L>l-<D>d-<H>h` (optionally `-<K>kv`, default `K = H`, then
//! optionally `-rope<θ>`, default 10000, then optionally `-copy`, then optionally `-match`): `L` layers, width `D`, `H`
//! query heads of `D / H` dimensions, `K` key/value heads, FFN `3 D`, RoPE base θ. A small θ
//! (e.g. 100) spends a small head's few rotation frequencies on the short offsets of a short
//! context. `-copy` adds the pointer head of [`crate::copy_head`] (query and key projections
//! normal(0, 0.02), sentinel zero, drawn after every other tensor so the rest of the
//! initialisation is that of the same shape without it). `-match` adds the first layer's
//! token matching of [`crate::token_match`] (match bias 10 per head, canon weights
//! normal(0, 0.5), drawn last).
//!
//! All use tied embeddings, RoPE θ = 10000 unless the name says otherwise, RMSNorm ε = 1e-5 and 4096 positions, and take the
//! vocabulary size from the tokenizer (special ids as [`crate::train::bpe`] assigns them:
//! `<|im_start|>` = 1 is BOS, `<|im_end|>` = 2 is EOS). Initialisation is transformers'
//! `LlamaPreTrainedModel._init_weights`: normal(0, 0.02) for embeddings and projections, ones
//! for norms.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::backend::Backend;
use crate::config::LlamaConfig;
use crate::model::Llama;
use crate::train::error::{Result, TrainError};
use crate::train::params::llama_from_hf_tensors;
use crate::weights::HostTensor;

/// A named tiny architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TinyPreset {
    /// 2 layers, width 64.
    L2D64,
    /// 4 layers, width 128.
    L4D128,
    /// 4 layers, width 256.
    L4D256,
    /// Any other shape, spelled `tiny-<L>l-<D>d-<H>h[-<K>kv]`.
    Custom {
        /// Decoder layers.
        layers: usize,
        /// Hidden width.
        hidden: usize,
        /// Query heads.
        heads: usize,
        /// Key/value heads (divides `heads`).
        kv_heads: usize,
        /// RoPE base θ.
        rope_theta: u32,
        /// Whether the model has the pointer head ([`crate::copy_head`]).
        copy_head: bool,
        /// Whether the first layer has token matching ([`crate::token_match`]).
        token_match: bool,
    },
}

/// RoPE base of the named presets and of custom shapes that do not name one.
pub const DEFAULT_ROPE_THETA: u32 = 10_000;

/// transformers' default `initializer_range`.
pub const INIT_STD: f32 = 0.02;

impl TinyPreset {
    /// Every named preset.
    pub const ALL: [TinyPreset; 3] = [TinyPreset::L2D64, TinyPreset::L4D128, TinyPreset::L4D256];

    /// The preset's name, e.g. `tiny-2l-64d` or `tiny-2l-128d-2h`.
    pub fn name(self) -> String {
        match self {
            TinyPreset::L2D64 => "tiny-2l-64d".into(),
            TinyPreset::L4D128 => "tiny-4l-128d".into(),
            TinyPreset::L4D256 => "tiny-4l-256d".into(),
            TinyPreset::Custom { layers, hidden, heads, kv_heads, rope_theta, copy_head, token_match } => {
                let kv = if kv_heads == heads { String::new() } else { format!("-{kv_heads}kv") };
                let rope = if rope_theta == DEFAULT_ROPE_THETA { String::new() } else { format!("-rope{rope_theta}") };
                let copy = if copy_head { "-copy" } else { "" };
                let matching = if token_match { "-match" } else { "" };
                format!("tiny-{layers}l-{hidden}d-{heads}h{kv}{rope}{copy}{matching}")
            }
        }
    }

    /// The preset called `name`: a named one, or `tiny-<L>l-<D>d-<H>h[-<K>kv][-rope<θ>][-copy][-match]`
    /// with 1–32 layers, width 8–4096, head dimension `D / H` even, `K` dividing `H` and θ in 2–10⁷.
    pub fn parse(name: &str) -> Result<TinyPreset> {
        if let Some(p) = TinyPreset::ALL.into_iter().find(|p| p.name() == name) {
            return Ok(p);
        }
        let bad = |why: &str| {
            let names: Vec<String> = TinyPreset::ALL.iter().map(|p| p.name()).collect();
            TrainError::config(
                "tiny preset",
                format!(
                    "unknown preset `{name}` ({why}); expected one of {names:?} or tiny-<L>l-<D>d-<H>h[-<K>kv][-rope<θ>][-copy][-match], e.g. tiny-2l-128d-2h"
                ),
            )
        };
        let mut parts: Vec<&str> = name.strip_prefix("tiny-").ok_or_else(|| bad("no `tiny-` prefix"))?.split('-').collect();
        let token_match = parts.len() > 3 && parts.last() == Some(&"match");
        if token_match {
            parts.pop();
        }
        let copy_head = parts.len() > 3 && parts.last() == Some(&"copy");
        if copy_head {
            parts.pop();
        }
        let rope_theta = match parts.last().and_then(|p| p.strip_prefix("rope")) {
            Some(theta) if parts.len() > 3 => {
                let theta: u32 = theta.parse().map_err(|_| bad("rope<θ> needs a whole number"))?;
                if !(2..=10_000_000).contains(&theta) {
                    return Err(bad("the RoPE base must be 2-10000000"));
                }
                parts.pop();
                theta
            }
            _ => DEFAULT_ROPE_THETA,
        };
        let num = |part: Option<&&str>, suffix: &str| -> Option<usize> { part?.strip_suffix(suffix)?.parse().ok() };
        let (Some(layers), Some(hidden), Some(heads)) = (num(parts.first(), "l"), num(parts.get(1), "d"), num(parts.get(2), "h")) else {
            return Err(bad("not of the form tiny-<L>l-<D>d-<H>h"));
        };
        let kv_heads = match parts.get(3) {
            None => heads,
            Some(_) => num(parts.get(3), "kv").ok_or_else(|| bad("the fourth part must be <K>kv"))?,
        };
        if parts.len() > 4 {
            return Err(bad("too many parts"));
        }
        if !(1..=32).contains(&layers) || !(8..=4096).contains(&hidden) {
            return Err(bad("layers must be 1-32 and width 8-4096"));
        }
        if heads == 0 || hidden % heads != 0 || (hidden / heads) % 2 != 0 {
            return Err(bad("the width must split into heads of an even dimension"));
        }
        if kv_heads == 0 || heads % kv_heads != 0 {
            return Err(bad("key/value heads must divide the query heads"));
        }
        Ok(TinyPreset::Custom { layers, hidden, heads, kv_heads, rope_theta, copy_head, token_match })
    }

    /// `(layers, hidden, heads, kv_heads)`.
    fn shape(self) -> (usize, usize, usize, usize) {
        match self {
            TinyPreset::L2D64 => (2, 64, 4, 2),
            TinyPreset::L4D128 => (4, 128, 4, 2),
            TinyPreset::L4D256 => (4, 256, 8, 4),
            TinyPreset::Custom { layers, hidden, heads, kv_heads, .. } => (layers, hidden, heads, kv_heads),
        }
    }

    /// The RoPE base θ.
    fn rope_theta(self) -> u32 {
        match self {
            TinyPreset::Custom { rope_theta, .. } => rope_theta,
            _ => DEFAULT_ROPE_THETA,
        }
    }

    /// Whether the preset has the pointer head (`-copy`).
    pub fn has_copy_head(self) -> bool {
        matches!(self, TinyPreset::Custom { copy_head: true, .. })
    }

    /// Whether the preset has token matching (`-match`).
    pub fn has_token_match(self) -> bool {
        matches!(self, TinyPreset::Custom { token_match: true, .. })
    }

    /// The preset's `config.json` (LlamaForCausalLM, plus `"copy_head": true` for `-copy` and
    /// `"token_match": true, "canon_kernel": 4` for `-match`) for a
    /// vocabulary of `vocab_size` tokens.
    pub fn hf_config(self, vocab_size: usize) -> Value {
        let (layers, hidden, heads, kv_heads) = self.shape();
        let mut config = json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": vocab_size,
            "hidden_size": hidden,
            "intermediate_size": 3 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": kv_heads,
            "head_dim": hidden / heads,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-5,
            "rope_theta": self.rope_theta() as f64,
            "rope_scaling": null,
            "max_position_embeddings": 4096,
            "tie_word_embeddings": true,
            "attention_bias": false,
            "mlp_bias": false,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "initializer_range": INIT_STD,
        });
        if self.has_copy_head() {
            config["copy_head"] = json!(true);
        }
        if self.has_token_match() {
            config["token_match"] = json!(true);
            config["canon_kernel"] = json!(crate::token_match::DEFAULT_CANON_KERNEL);
        }
        config
    }

    /// The preset's configuration for a vocabulary of `vocab_size` tokens.
    pub fn config(self, vocab_size: usize) -> Result<LlamaConfig> {
        if vocab_size < 3 {
            return Err(TrainError::config("tiny preset", format!("vocab_size must be at least 3 (special tokens), got {vocab_size}")));
        }
        Ok(LlamaConfig::from_hf_json(&self.hf_config(vocab_size), &self.name())?)
    }
}

/// Standard normal draws by the Box–Muller transform (two per pair of uniforms); written here
/// because `rand_distr` is not otherwise needed.
pub(crate) fn normals(rng: &mut ChaCha8Rng, n: usize, std: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        out.push((r * t.cos()) as f32 * std);
        out.push((r * t.sin()) as f32 * std);
    }
    out.truncate(n);
    out
}

/// Random HF-layout tensors for `config`: normal(0, `std`) for embeddings, projections and
/// biases, ones for norms. Drawn in a fixed order from one ChaCha8 stream seeded by `seed`.
pub fn random_hf_tensors(config: &LlamaConfig, seed: u64, std: f32) -> Vec<(String, HostTensor)> {
    let c = config;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (dm, v, ff) = (c.hidden_size, c.vocab_size, c.intermediate_size);
    let (qd, kvd) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
    let mut out = Vec::new();
    let mut normal = |name: String, shape: Vec<usize>, rng: &mut ChaCha8Rng| {
        let n = shape.iter().product();
        out.push((name, HostTensor { data: normals(rng, n, std), shape }));
    };
    normal("model.embed_tokens.weight".into(), vec![v, dm], &mut rng);
    let mut ones = Vec::new();
    for i in 0..c.num_hidden_layers {
        let p = format!("model.layers.{i}");
        for (name, out_f, in_f, bias) in [
            ("self_attn.q_proj", qd, dm, c.qkv_bias),
            ("self_attn.k_proj", kvd, dm, c.qkv_bias),
            ("self_attn.v_proj", kvd, dm, c.qkv_bias),
            ("self_attn.o_proj", dm, qd, c.o_bias),
            ("mlp.gate_proj", ff, dm, c.mlp_bias),
            ("mlp.up_proj", ff, dm, c.mlp_bias),
            ("mlp.down_proj", dm, ff, c.mlp_bias),
        ] {
            normal(format!("{p}.{name}.weight"), vec![out_f, in_f], &mut rng);
            if bias {
                normal(format!("{p}.{name}.bias"), vec![out_f], &mut rng);
            }
        }
        ones.push(format!("{p}.input_layernorm.weight"));
        ones.push(format!("{p}.post_attention_layernorm.weight"));
    }
    ones.push("model.norm.weight".into());
    if !c.tie_word_embeddings {
        normal("lm_head.weight".into(), vec![v, dm], &mut rng);
    }
    if c.copy_head {
        normal(crate::copy_head::COPY_QUERY_WEIGHT.into(), vec![dm, dm], &mut rng);
        normal(crate::copy_head::COPY_KEY_WEIGHT.into(), vec![dm, dm], &mut rng);
    }
    for name in ones {
        out.push((name, HostTensor { shape: vec![dm], data: vec![1.0; dm] }));
    }
    if c.copy_head {
        out.push((crate::copy_head::COPY_SENTINEL.into(), HostTensor { shape: vec![dm, 1], data: vec![0.0; dm] }));
    }
    if c.token_match {
        use crate::token_match::{CANON_INIT_STD, CANON_WEIGHT, MATCH_BIAS, MATCH_BIAS_INIT};
        let h = c.num_attention_heads;
        out.push((MATCH_BIAS.into(), HostTensor { shape: vec![h], data: vec![MATCH_BIAS_INIT; h] }));
        out.push((CANON_WEIGHT.into(), HostTensor { shape: vec![c.canon_kernel, dm], data: normals(&mut rng, c.canon_kernel * dm, CANON_INIT_STD) }));
    }
    out
}

/// A randomly initialised model for `config` on `backend` (see [`random_hf_tensors`]).
pub fn init_random<B: Backend>(backend: B, config: LlamaConfig, seed: u64, std: f32) -> Result<Llama<B>> {
    let tensors = random_hf_tensors(&config, seed, std);
    Ok(llama_from_hf_tensors(backend, config, tensors)?)
}

/// A tiny preset model with transformers' initialisation, seeded.
pub fn init_tiny<B: Backend>(backend: B, preset: TinyPreset, vocab_size: usize, seed: u64) -> Result<Llama<B>> {
    init_random(backend, preset.config(vocab_size)?, seed, INIT_STD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_build_configs() {
        for p in TinyPreset::ALL {
            assert_eq!(TinyPreset::parse(&p.name()).unwrap(), p);
            let c = p.config(1024).unwrap();
            assert_eq!(c.vocab_size, 1024);
            assert!(c.tie_word_embeddings);
            assert!((2..=4).contains(&c.num_hidden_layers) && (64..=256).contains(&c.hidden_size));
        }
        assert!(TinyPreset::parse("tiny-9l").unwrap_err().to_string().contains("tiny-2l-64d"));
        let custom = TinyPreset::parse("tiny-2l-128d-2h").unwrap();
        assert_eq!(
            custom,
            TinyPreset::Custom { layers: 2, hidden: 128, heads: 2, kv_heads: 2, rope_theta: DEFAULT_ROPE_THETA, copy_head: false, token_match: false }
        );
        assert_eq!(custom.name(), "tiny-2l-128d-2h");
        let c = custom.config(500).unwrap();
        assert_eq!((c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim), (2, 128, 2, 2, 64));
        assert_eq!(TinyPreset::parse("tiny-3l-96d-4h-2kv").unwrap().name(), "tiny-3l-96d-4h-2kv");
        let rope = TinyPreset::parse("tiny-2l-64d-8h-rope100").unwrap();
        assert_eq!(rope, TinyPreset::Custom { layers: 2, hidden: 64, heads: 8, kv_heads: 8, rope_theta: 100, copy_head: false, token_match: false });
        assert_eq!(rope.name(), "tiny-2l-64d-8h-rope100");
        assert_eq!(rope.config(500).unwrap().rope_theta, 100.0);
        assert_eq!(TinyPreset::parse("tiny-2l-64d-8h-2kv-rope500").unwrap().name(), "tiny-2l-64d-8h-2kv-rope500");
        assert_eq!(TinyPreset::parse("tiny-2l-64d-4h-rope10000").unwrap().name(), "tiny-2l-64d-4h");
        assert_eq!(TinyPreset::L2D64.config(500).unwrap().rope_theta, 10000.0);
        let matching = TinyPreset::parse("tiny-2l-64d-2h-copy-match").unwrap();
        assert!(matching.has_copy_head() && matching.has_token_match());
        assert_eq!(matching.name(), "tiny-2l-64d-2h-copy-match");
        let c = matching.config(500).unwrap();
        assert!(c.token_match && c.copy_head);
        assert_eq!(c.canon_kernel, crate::token_match::DEFAULT_CANON_KERNEL);
        assert_eq!(TinyPreset::parse("tiny-2l-64d-2h-match").unwrap().name(), "tiny-2l-64d-2h-match");
        for bad in [
            "tiny-2l-64d-2h-match-copy",
            "tiny-2l-128d",
            "tiny-2l-100d-3h",
            "tiny-2l-96d-4h-3kv",
            "tiny-0l-64d-2h",
            "tiny-2l-64d-2h-2kv-x",
            "tiny-2l-66d-6h",
            "tiny-2l-64d-8h-rope1",
            "tiny-2l-64d-8h-ropex",
            "tiny-2l-64d-rope100",
            "tiny-2l-64d-8h-rope100-2kv",
        ] {
            assert!(TinyPreset::parse(bad).is_err(), "{bad}");
        }
        assert!(TinyPreset::L2D64.config(2).is_err());
    }

    #[test]
    fn normals_have_the_requested_moments_and_are_seeded() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x = normals(&mut rng, 100_001, 0.02);
        assert_eq!(x.len(), 100_001);
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / x.len() as f64;
        assert!(mean.abs() < 3e-4, "{mean}");
        assert!((var.sqrt() - 0.02).abs() < 3e-4, "{}", var.sqrt());
        let mut rng2 = ChaCha8Rng::seed_from_u64(3);
        assert_eq!(normals(&mut rng2, 10, 0.02), x[..10]);
    }
}

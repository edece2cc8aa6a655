//! The Llama-family model configuration, read from a Hugging Face `config.json` (or the
//! equivalent JSON the GGUF reader derives from GGUF metadata).
//!
//! Supported architectures: `LlamaForCausalLM` (SmolLM, Llama 2/3), `Qwen2ForCausalLM`
//! (Qwen2/2.5: bias on q/k/v), `MistralForCausalLM` without sliding window. Anything else is a
//! clear error rather than a silently wrong model.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{PolicyError, Result};

/// How RoPE frequencies are rescaled for long contexts (`rope_scaling` in config.json).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE: `inv_freq[i] = theta^(-2i/d)`.
    None,
    /// Position interpolation: every frequency divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Llama 3.1's piecewise rescaling of low and medium frequencies.
    Llama3 {
        /// Divisor for the low frequencies.
        factor: f64,
        /// Wavelengths above `original_max_position_embeddings / low_freq_factor` are divided by `factor`.
        low_freq_factor: f64,
        /// Wavelengths below `original_max_position_embeddings / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// Context length the model was pre-trained with.
        original_max_position_embeddings: f64,
    },
}

/// Everything the decoder needs to know about its shape, in HF naming.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// The HF architecture name the config declared.
    pub architecture: String,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Width of the SwiGLU feed-forward.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); equals `num_attention_heads` for plain MHA.
    pub num_key_value_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE rescaling.
    pub rope_scaling: RopeScaling,
    /// Longest context the model supports.
    pub max_position_embeddings: usize,
    /// Whether `lm_head` shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Whether q/k/v projections carry a bias (Qwen2, or Llama with `attention_bias`).
    pub qkv_bias: bool,
    /// Whether the output projection carries a bias (Llama `attention_bias`).
    pub o_bias: bool,
    /// Whether the MLP projections carry a bias (Llama `mlp_bias`).
    pub mlp_bias: bool,
    /// Beginning-of-sequence token id, if declared.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token ids (config.json allows one or a list).
    pub eos_token_ids: Vec<u32>,
    /// Whether the model carries memrl's pointer head ([`crate::copy_head`]; config.json
    /// `"copy_head": true`): its next-token distribution mixes the vocabulary softmax with a
    /// distribution over the tokens already in the context. Only memrl reads such a model.
    pub copy_head: bool,
    /// Whether the first layer carries memrl's token matching ([`crate::token_match`];
    /// config.json `"token_match": true`): a same-token attention bias and a canon convolution
    /// of `canon_kernel` positions. Only memrl reads such a model.
    pub token_match: bool,
    /// The canon convolution's width with `token_match` (config.json `"canon_kernel"`, 2 to
    /// 16, default [`crate::token_match::DEFAULT_CANON_KERNEL`]); 0 without.
    pub canon_kernel: usize,
}

/// The raw fields of config.json we read; unknown fields are ignored.
#[derive(Deserialize)]
struct RawConfig {
    architectures: Option<Vec<String>>,
    model_type: Option<String>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<Value>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    hidden_act: Option<String>,
    bos_token_id: Option<Value>,
    eos_token_id: Option<Value>,
    sliding_window: Option<Value>,
    use_sliding_window: Option<bool>,
    copy_head: Option<bool>,
    token_match: Option<bool>,
    canon_kernel: Option<usize>,
}

/// The largest size, count or dimension a config may give: far above any real model's, and
/// small enough that products of two (a weight's element count) cannot overflow.
const MAX_DIMENSION: usize = 1 << 24;

fn too_large(origin: &str, name: &str, value: usize) -> PolicyError {
    PolicyError::config(origin, format!("`{name}` = {value} is implausibly large (at most {MAX_DIMENSION}); is the file corrupt?"))
}

/// Architectures this decoder implements.
const SUPPORTED: &[&str] = &["LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"];

impl LlamaConfig {
    /// Parses a config.json value. `origin` names the source (file path) in errors.
    pub fn from_hf_json(value: &Value, origin: &str) -> Result<LlamaConfig> {
        let raw: RawConfig = serde_json::from_value(value.clone()).map_err(|e| PolicyError::config(origin, format!("unexpected field type: {e}")))?;
        let architecture = match (&raw.architectures, &raw.model_type) {
            (Some(a), _) if !a.is_empty() => a[0].clone(),
            (_, Some(t)) => match t.as_str() {
                "llama" => "LlamaForCausalLM".to_string(),
                "qwen2" => "Qwen2ForCausalLM".to_string(),
                "mistral" => "MistralForCausalLM".to_string(),
                other => other.to_string(),
            },
            _ => return Err(PolicyError::config(origin, "neither `architectures` nor `model_type` is set")),
        };
        if !SUPPORTED.contains(&architecture.as_str()) {
            return Err(PolicyError::config(origin, format!("architecture `{architecture}` is not supported; expected one of {SUPPORTED:?}")));
        }
        let need = |v: Option<usize>, name: &str| -> Result<usize> {
            match v {
                Some(0) => Err(PolicyError::config(origin, format!("`{name}` must be positive, got 0"))),
                Some(x) if x > MAX_DIMENSION => Err(too_large(origin, name, x)),
                Some(x) => Ok(x),
                None => Err(PolicyError::config(origin, format!("missing required field `{name}`"))),
            }
        };
        let hidden_size = need(raw.hidden_size, "hidden_size")?;
        let num_attention_heads = need(raw.num_attention_heads, "num_attention_heads")?;
        let num_key_value_heads = raw.num_key_value_heads.unwrap_or(num_attention_heads);
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(PolicyError::config(
                origin,
                format!("`num_attention_heads` ({num_attention_heads}) must be a positive multiple of `num_key_value_heads` ({num_key_value_heads})"),
            ));
        }
        let head_dim = match raw.head_dim {
            Some(d) => d,
            None => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(PolicyError::config(
                        origin,
                        format!("`hidden_size` ({hidden_size}) is not divisible by `num_attention_heads` ({num_attention_heads}) and `head_dim` is not set"),
                    ));
                }
                hidden_size / num_attention_heads
            }
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(PolicyError::config(origin, format!("`head_dim` must be even and positive, got {head_dim}")));
        }
        if head_dim > MAX_DIMENSION {
            return Err(too_large(origin, "head_dim", head_dim));
        }

        if let Some(act) = &raw.hidden_act {
            if act != "silu" {
                return Err(PolicyError::config(origin, format!("`hidden_act` = `{act}` is not supported; expected `silu`")));
            }
        }
        if architecture == "MistralForCausalLM" || architecture == "Qwen2ForCausalLM" {
            let window_on = match architecture.as_str() {
                "Qwen2ForCausalLM" => raw.use_sliding_window.unwrap_or(false),
                _ => raw.sliding_window.as_ref().is_some_and(|v| !v.is_null()),
            };
            if window_on {
                return Err(PolicyError::config(origin, "sliding-window attention is not supported"));
            }
        }
        let is_qwen2 = architecture == "Qwen2ForCausalLM";
        let attention_bias = raw.attention_bias.unwrap_or(false);
        let rope_theta = raw.rope_theta.unwrap_or(10_000.0);
        if rope_theta <= 0.0 || rope_theta.is_nan() {
            return Err(PolicyError::config(origin, format!("`rope_theta` must be positive, got {rope_theta}")));
        }
        let rms_norm_eps = raw.rms_norm_eps.unwrap_or(1e-6);
        let max_position_embeddings = raw.max_position_embeddings.unwrap_or(2048);
        let token_match = raw.token_match.unwrap_or(false);
        let canon_kernel = match (token_match, raw.canon_kernel) {
            (false, None) => 0,
            (false, Some(_)) => return Err(PolicyError::config(origin, "`canon_kernel` is set without `\"token_match\": true`")),
            (true, None) => crate::token_match::DEFAULT_CANON_KERNEL,
            (true, Some(k)) if (2..=16).contains(&k) => k,
            (true, Some(k)) => return Err(PolicyError::config(origin, format!("`canon_kernel` must be 2 to 16, got {k}"))),
        };
        Ok(LlamaConfig {
            architecture,
            vocab_size: need(raw.vocab_size, "vocab_size")?,
            hidden_size,
            intermediate_size: need(raw.intermediate_size, "intermediate_size")?,
            num_hidden_layers: need(raw.num_hidden_layers, "num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps,
            rope_theta,
            rope_scaling: parse_rope_scaling(raw.rope_scaling.as_ref(), origin)?,
            max_position_embeddings,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            qkv_bias: is_qwen2 || attention_bias,
            o_bias: !is_qwen2 && attention_bias,
            mlp_bias: !is_qwen2 && raw.mlp_bias.unwrap_or(false),
            bos_token_id: token_ids(raw.bos_token_id.as_ref(), "bos_token_id", origin)?.first().copied(),
            eos_token_ids: token_ids(raw.eos_token_id.as_ref(), "eos_token_id", origin)?,
            copy_head: raw.copy_head.unwrap_or(false),
            token_match,
            canon_kernel,
        })
    }

    /// Reads and parses a config.json file.
    pub fn from_file(path: &std::path::Path) -> Result<LlamaConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::io(path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| PolicyError::Json { path: path.to_path_buf(), source: e })?;
        LlamaConfig::from_hf_json(&value, &path.display().to_string())
    }

    /// Query heads per key/value head.
    pub fn group_size(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// RoPE inverse frequencies (`head_dim / 2` of them), with `rope_scaling` applied, following
    /// transformers' `modeling_rope_utils` (default, linear, llama3).
    pub fn rope_inv_freq(&self) -> Vec<f32> {
        let d = self.head_dim;
        // transformers computes these in float32: 1 / theta^(arange(0, d, 2) / d).
        let base: Vec<f32> = (0..d / 2).map(|i| 1.0f32 / (self.rope_theta as f32).powf((2 * i) as f32 / d as f32)).collect();
        match &self.rope_scaling {
            RopeScaling::None => base,
            RopeScaling::Linear { factor } => base.iter().map(|f| f / *factor as f32).collect(),
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
                let (factor, low, high, old) = (*factor as f32, *low_freq_factor as f32, *high_freq_factor as f32, *original_max_position_embeddings as f32);
                let low_freq_wavelen = old / low;
                let high_freq_wavelen = old / high;
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f32::consts::PI / f;
                        let scaled = if wavelen > low_freq_wavelen { f / factor } else { f };
                        let is_medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
                        if is_medium {
                            let smooth = (old / wavelen - low) / (high - low);
                            (1.0 - smooth) * scaled / factor + smooth * scaled
                        } else {
                            scaled
                        }
                    })
                    .collect()
            }
        }
    }
}

/// Parses `rope_scaling` (`null`, `{"rope_type"|"type": "default"|"linear"|"llama3", ...}`).
fn parse_rope_scaling(value: Option<&Value>, origin: &str) -> Result<RopeScaling> {
    let Some(v) = value else { return Ok(RopeScaling::None) };
    if v.is_null() {
        return Ok(RopeScaling::None);
    }
    let obj = v.as_object().ok_or_else(|| PolicyError::config(origin, format!("`rope_scaling` must be an object or null, got {v}")))?;
    let kind = obj
        .get("rope_type")
        .or_else(|| obj.get("type"))
        .and_then(Value::as_str)
        .ok_or_else(|| PolicyError::config(origin, "`rope_scaling` has no string `rope_type` (or `type`)"))?;
    let num = |key: &str| -> Result<f64> {
        obj.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| PolicyError::config(origin, format!("`rope_scaling.{key}` is required for rope_type `{kind}` and must be a number")))
    };
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => {
            let factor = num("factor")?;
            if factor <= 0.0 {
                return Err(PolicyError::config(origin, format!("`rope_scaling.factor` must be positive, got {factor}")));
            }
            Ok(RopeScaling::Linear { factor })
        }
        "llama3" => {
            let s = RopeScaling::Llama3 {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")?,
            };
            if let RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, .. } = &s {
                if *factor <= 0.0 || high_freq_factor <= low_freq_factor {
                    return Err(PolicyError::config(origin, "`rope_scaling` llama3 needs factor > 0 and high_freq_factor > low_freq_factor"));
                }
            }
            Ok(s)
        }
        other => Err(PolicyError::config(origin, format!("`rope_scaling.rope_type` = `{other}` is not supported; expected default, linear or llama3"))),
    }
}

/// Reads a token id field that may be a number, a list of numbers, or null.
fn token_ids(value: Option<&Value>, field: &str, origin: &str) -> Result<Vec<u32>> {
    let bad = || PolicyError::config(origin, format!("`{field}` must be a token id, a list of token ids, or null"));
    match value {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Number(n)) => Ok(vec![n.as_u64().and_then(|x| u32::try_from(x).ok()).ok_or_else(bad)?]),
        Some(Value::Array(items)) => items.iter().map(|i| i.as_u64().and_then(|x| u32::try_from(x).ok()).ok_or_else(bad)).collect(),
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smol() -> Value {
        json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 576, "intermediate_size": 1536,
            "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
            "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "vocab_size": 49152,
            "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu"
        })
    }

    #[test]
    fn parses_smollm2_config() {
        let c = LlamaConfig::from_hf_json(&smol(), "t").unwrap();
        assert_eq!(c.head_dim, 64);
        assert_eq!(c.group_size(), 3);
        assert!(c.tie_word_embeddings && !c.qkv_bias);
        assert_eq!(c.eos_token_ids, vec![2]);
        assert_eq!(c.rope_inv_freq().len(), 32);
        assert_eq!(c.rope_inv_freq()[0], 1.0);
    }

    #[test]
    fn qwen2_has_qkv_bias() {
        let mut v = smol();
        v["architectures"] = json!(["Qwen2ForCausalLM"]);
        v["eos_token_id"] = json!([151643, 151645]);
        let c = LlamaConfig::from_hf_json(&v, "t").unwrap();
        assert!(c.qkv_bias && !c.o_bias);
        assert_eq!(c.eos_token_ids, vec![151643, 151645]);
    }

    #[test]
    fn unknown_architecture_is_a_clear_error() {
        let mut v = smol();
        v["architectures"] = json!(["GPTNeoXForCausalLM"]);
        let e = LlamaConfig::from_hf_json(&v, "cfg.json").unwrap_err().to_string();
        assert!(e.contains("GPTNeoXForCausalLM") && e.contains("cfg.json"), "{e}");
    }

    #[test]
    fn missing_and_inconsistent_fields_are_errors() {
        let mut v = smol();
        v.as_object_mut().unwrap().remove("hidden_size");
        assert!(LlamaConfig::from_hf_json(&v, "t").unwrap_err().to_string().contains("hidden_size"));
        let mut v = smol();
        v["num_key_value_heads"] = json!(4);
        assert!(LlamaConfig::from_hf_json(&v, "t").unwrap_err().to_string().contains("multiple"));
        let mut v = smol();
        v["rope_scaling"] = json!({"rope_type": "yarn", "factor": 4.0});
        assert!(LlamaConfig::from_hf_json(&v, "t").unwrap_err().to_string().contains("yarn"));
    }

    #[test]
    fn implausibly_large_sizes_are_refused_before_anything_is_allocated() {
        for key in ["num_hidden_layers", "vocab_size", "head_dim", "num_attention_heads"] {
            let mut v = smol();
            v[key] = json!(1u64 << 40);
            let e = LlamaConfig::from_hf_json(&v, "t").unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("implausibly large"), "{e}");
        }
    }

    #[test]
    fn linear_scaling_divides_every_frequency() {
        let mut v = smol();
        v["rope_scaling"] = json!({"type": "linear", "factor": 2.0});
        let c = LlamaConfig::from_hf_json(&v, "t").unwrap();
        let plain = LlamaConfig::from_hf_json(&smol(), "t").unwrap().rope_inv_freq();
        for (a, b) in c.rope_inv_freq().iter().zip(&plain) {
            assert!((a * 2.0 - b).abs() < 1e-7);
        }
    }

    #[test]
    fn llama3_scaling_matches_reference_values() {
        // Llama 3.1 8B: head_dim 128, theta 500000, factor 8, low 1, high 4, original 8192.
        let v = json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
            "num_hidden_layers": 1, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 10,
            "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
        });
        let c = LlamaConfig::from_hf_json(&v, "t").unwrap();
        let f = c.rope_inv_freq();
        let base = LlamaConfig { rope_scaling: RopeScaling::None, ..c.clone() }.rope_inv_freq();
        // High frequencies (short wavelengths) are untouched, the lowest ones divided by 8,
        // and the band in between interpolated.
        assert_eq!(f[0], base[0]);
        assert!((f[63] - base[63] / 8.0).abs() < 1e-12);
        let mid = (0..64).find(|&i| f[i] != base[i] && (f[i] - base[i] / 8.0).abs() > 1e-12);
        assert!(mid.is_some(), "expected a smoothed medium-frequency band");
    }
}

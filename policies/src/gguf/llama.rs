//! Llama-family GGUF files (`llama`, `qwen2`) seen as a Hugging Face model: the
//! `config.json` they correspond to and their tensors under HF names, dequantised.
//!
//! llama.cpp's converter permutes the rows of `q_proj` and `k_proj` of `llama` models so that
//! rotary pairs are adjacent (GPT-J style); transformers undoes this when it loads a GGUF, and so
//! do we, so that one HF-layout model definition serves both formats.

use serde_json::{Value, json};

use super::{GgufError, GgufFile};

/// A dequantised tensor under its Hugging Face name, e.g. `model.layers.0.self_attn.q_proj.weight`.
#[derive(Debug, Clone, PartialEq)]
pub struct HfTensor {
    /// The HF parameter name.
    pub name: String,
    /// Row-major shape, as PyTorch reports it.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<f32>,
}

/// The architectures this module maps, with their HF class and model type.
fn hf_architecture(arch: &str) -> Option<(&'static str, &'static str)> {
    match arch {
        "llama" => Some(("LlamaForCausalLM", "llama")),
        "qwen2" => Some(("Qwen2ForCausalLM", "qwen2")),
        _ => None,
    }
}

/// The `general.architecture` of `file`, checked to be one memrl maps.
fn architecture(file: &GgufFile) -> Result<&str, GgufError> {
    let arch = file.require_str("general.architecture")?;
    if hf_architecture(arch).is_none() {
        return Err(file.metadata_error("general.architecture", "expected `llama` or `qwen2`"));
    }
    Ok(arch)
}

/// The HF `config.json` equivalent of a Llama-family GGUF file's metadata.
pub fn hf_config(file: &GgufFile) -> Result<Value, GgufError> {
    let arch = architecture(file)?;
    let (class, model_type) = hf_architecture(arch).expect("checked by architecture()");
    let key = |k: &str| format!("{arch}.{k}");
    let hidden = file.require_u64(&key("embedding_length"))?;
    let heads = file.require_u64(&key("attention.head_count"))?;
    if heads == 0 || hidden % heads != 0 {
        return Err(file.metadata_error(&key("attention.head_count"), "expected a positive divisor of embedding_length"));
    }
    let kv_heads = match file.get(&key("attention.head_count_kv")) {
        None => heads,
        Some(_) => file.require_u64(&key("attention.head_count_kv"))?,
    };
    if kv_heads == 0 || heads % kv_heads != 0 {
        return Err(file.metadata_error(&key("attention.head_count_kv"), "expected a positive divisor of head_count"));
    }
    let head_dim = match file.get(&key("attention.key_length")) {
        Some(_) => file.require_u64(&key("attention.key_length"))?,
        None => hidden / heads,
    };
    let vocab = match file.get(&key("vocab_size")) {
        Some(_) => file.require_u64(&key("vocab_size"))?,
        None => file
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .map(|a| a.len() as u64)
            .ok_or_else(|| file.metadata_error(&key("vocab_size"), "expected the vocabulary size (or tokenizer.ggml.tokens)"))?,
    };
    let rope_theta = match file.get(&key("rope.freq_base")) {
        Some(_) => file.require_f64(&key("rope.freq_base"))?,
        None => 10_000.0,
    };
    if file.tensor_info("rope_freqs.weight").is_some() {
        return Err(file
            .metadata_error("rope_freqs.weight", "per-frequency RoPE factors (Llama 3.1 style) are not supported from GGUF; load the HF safetensors instead"));
    }
    let rope_scaling = match file.get(&key("rope.scaling.type")).and_then(|v| v.as_str()) {
        None | Some("none") => Value::Null,
        Some(kind @ ("linear" | "yarn")) => {
            let factor = file.require_f64(&key("rope.scaling.factor"))?;
            let mut s = json!({"rope_type": kind, "factor": factor});
            if let Some(orig) = file.get(&key("rope.scaling.original_context_length")).and_then(|v| v.as_u64()) {
                s["original_max_position_embeddings"] = json!(orig);
            }
            s
        }
        Some(_) => return Err(file.metadata_error(&key("rope.scaling.type"), "expected `none`, `linear` or `yarn`")),
    };
    let token_id = |k: &str| file.get(k).and_then(|v| v.as_u64()).map_or(Value::Null, |v| json!(v));
    let tied = file.tensor_info("output.weight").is_none();
    let attention_bias = file.tensor_info("blk.0.attn_q.bias").is_some();
    Ok(json!({
        "architectures": [class],
        "model_type": model_type,
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": file.require_u64(&key("feed_forward_length"))?,
        "num_hidden_layers": file.require_u64(&key("block_count"))?,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "rms_norm_eps": file.require_f64(&key("attention.layer_norm_rms_epsilon"))?,
        "rope_theta": rope_theta,
        "rope_scaling": rope_scaling,
        "max_position_embeddings": file.require_u64(&key("context_length"))?,
        "tie_word_embeddings": tied,
        "attention_bias": attention_bias,
        "bos_token_id": token_id("tokenizer.ggml.bos_token_id"),
        "eos_token_id": token_id("tokenizer.ggml.eos_token_id"),
        "pad_token_id": token_id("tokenizer.ggml.padding_token_id"),
    }))
}

/// The HF name of a GGUF tensor, or `None` for a name this module does not know.
fn hf_name(gguf_name: &str) -> Option<String> {
    let top = match gguf_name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(t) = top {
        return Some(t.to_string());
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    layer.parse::<usize>().ok()?;
    let (module, param) = rest.rsplit_once('.')?;
    let hf_module = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    if param != "weight" && param != "bias" {
        return None;
    }
    Some(format!("model.layers.{layer}.{hf_module}.{param}"))
}

/// Undoes llama.cpp's rotary permutation of the rows of a q/k projection (weight or bias).
///
/// GGUF rows are ordered `[head][i][pair]` (pairs adjacent); HF rows `[head][pair][i]`
/// (the two halves of each head split), with `i < head_dim / 2` and `pair < 2`.
fn unpermute_rows(data: &[f32], shape: &[usize], n_heads: usize) -> Vec<f32> {
    let rows = shape[0];
    let cols: usize = shape[1..].iter().product();
    let half = rows / n_heads / 2;
    let mut out = vec![0f32; data.len()];
    for h in 0..n_heads {
        for i in 0..half {
            for pair in 0..2 {
                let src = h * 2 * half + i * 2 + pair;
                let dst = h * 2 * half + pair * half + i;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// Every tensor of a Llama-family GGUF file under its HF name, dequantised to `f32`.
pub fn hf_tensors(file: &GgufFile) -> Result<Vec<HfTensor>, GgufError> {
    let arch = architecture(file)?;
    let config = hf_config(file)?;
    let heads = config["num_attention_heads"].as_u64().unwrap_or(1) as usize;
    let kv_heads = config["num_key_value_heads"].as_u64().unwrap_or(1) as usize;
    let mut out = Vec::with_capacity(file.tensor_infos().len());
    for info in file.tensor_infos() {
        let name = hf_name(&info.name).ok_or_else(|| GgufError::Malformed {
            path: file.path().to_path_buf(),
            what: format!("tensor `{}`: not a tensor of a Llama-family model", super::printable(&info.name, super::MAX_QUOTED_CHARS)),
        })?;
        let mut data = file.read_tensor_f32(&info.name)?;
        if arch == "llama" {
            let n = if name.contains("q_proj") {
                Some(heads)
            } else if name.contains("k_proj") {
                Some(kv_heads)
            } else {
                None
            };
            if let Some(n) = n {
                if info.shape[0] % (2 * n) != 0 {
                    return Err(GgufError::Malformed {
                        path: file.path().to_path_buf(),
                        what: format!("tensor `{}`: {} rows do not split into {n} heads of pairs", info.name, info.shape[0]),
                    });
                }
                data = unpermute_rows(&data, &info.shape, n);
            }
        }
        out.push(HfTensor { name, shape: info.shape.clone(), data });
    }
    Ok(out)
}

/// The Jinja chat template stored in the file, if any.
pub fn chat_template(file: &GgufFile) -> Option<String> {
    file.get("tokenizer.chat_template").and_then(|v| v.as_str()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hf() {
        assert_eq!(hf_name("blk.12.attn_q.weight").unwrap(), "model.layers.12.self_attn.q_proj.weight");
        assert_eq!(hf_name("blk.0.attn_k.bias").unwrap(), "model.layers.0.self_attn.k_proj.bias");
        assert_eq!(hf_name("blk.3.ffn_norm.weight").unwrap(), "model.layers.3.post_attention_layernorm.weight");
        assert_eq!(hf_name("token_embd.weight").unwrap(), "model.embed_tokens.weight");
        assert!(hf_name("blk.x.attn_q.weight").is_none());
        assert!(hf_name("blk.0.attn_q.scale").is_none());
        assert!(hf_name("mystery.weight").is_none());
    }

    /// llama.cpp's permutation (`reshape(n_head, 2, half, cols).swapaxes(1, 2)`) applied by hand,
    /// then undone: rows must come back in their original order.
    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        let (n_heads, half, cols) = (3, 4, 2);
        let rows = n_heads * 2 * half;
        let hf: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
        let mut permuted = vec![0f32; hf.len()];
        for h in 0..n_heads {
            for pair in 0..2 {
                for i in 0..half {
                    let hf_row = h * 2 * half + pair * half + i;
                    let gguf_row = h * 2 * half + i * 2 + pair;
                    permuted[gguf_row * cols..(gguf_row + 1) * cols].copy_from_slice(&hf[hf_row * cols..(hf_row + 1) * cols]);
                }
            }
        }
        assert_ne!(permuted, hf);
        assert_eq!(unpermute_rows(&permuted, &[rows, cols], n_heads), hf);
    }
}

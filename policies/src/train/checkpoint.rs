//! Checkpoints in Hugging Face layout, loadable by memrl ([`crate::load_policy`]) and by
//! transformers (`AutoModelForCausalLM.from_pretrained`, `AutoTokenizer.from_pretrained`).
//!
//! A checkpoint directory holds:
//!
//! | file | content |
//! |---|---|
//! | `model.safetensors` | f32 weights, HF names, PyTorch layout; tied models omit `lm_head.weight` |
//! | `config.json` | `LlamaForCausalLM` (or `Qwen2ForCausalLM`) configuration |
//! | `generation_config.json` | BOS / EOS / PAD ids |
//! | `tokenizer.json`, `tokenizer_config.json` | tokenizer, special tokens, chat template |
//! | `adapter_model.safetensors`, `adapter_config.json` | LoRA adapters in PEFT layout (LoRA models saved unmerged; `model.safetensors` then holds the frozen base) |
//! | `optimizer.safetensors`, `optimizer.json` | AdamW moments (`{param}.exp_avg`, `{param}.exp_avg_sq`, in memrl's parameter layout: linear weights `[in, out]`) and step counts / hyper-parameters |
//! | `reference_logits.json` | optional: logits memrl computed for a fixed prompt (checked by `scripts/check_checkpoint.py`) |
//!
//! [`save_checkpoint`] writes atomically, through the workspace's one directory writer
//! ([`crate::atomic::write_dir_atomic`]: a temporary directory beside `<dir>`, fsynced, renamed);
//! [`write_checkpoint_files`] fills a directory that such a writer (the trainer's, which adds its
//! own state files) provides.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde_json::{Value, json};

use crate::backend::Backend;
use crate::config::{LlamaConfig, RopeScaling};
use crate::model::Llama;
use crate::tokenizer::Tokenizer;
use crate::train::bpe::TrainedTokenizer;
use crate::train::error::{Result, TrainError};
use crate::train::lora::{Lora, LoraConfig, apply_lora, load_adapters};
use crate::train::optim::{AdamW, AdamWConfig, AdamWState, ParamMoments};
use crate::train::params::TrainBackend;
use crate::weights::HostTensor;

/// The two tokenizer files of a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizerFiles {
    /// `tokenizer.json` text.
    pub tokenizer_json: String,
    /// `tokenizer_config.json` value.
    pub tokenizer_config: Value,
}

impl TokenizerFiles {
    /// The files of a tokenizer trained by [`crate::train::bpe`].
    pub fn from_trained(t: &TrainedTokenizer) -> Result<TokenizerFiles> {
        Ok(TokenizerFiles { tokenizer_json: t.to_json()?, tokenizer_config: t.tokenizer_config() })
    }

    /// The files of a loaded memrl tokenizer (from an HF directory or built from GGUF metadata):
    /// its `tokenizer.json`, special tokens and chat template.
    pub fn from_tokenizer(t: &Tokenizer) -> Result<TokenizerFiles> {
        let mut config = t.tokenizer_config_json();
        config["tokenizer_class"] = json!("PreTrainedTokenizerFast");
        config["clean_up_tokenization_spaces"] = json!(false);
        Ok(TokenizerFiles { tokenizer_json: t.to_hf_json()?, tokenizer_config: config })
    }

    /// The files of an HF model directory (`tokenizer_config.json` may be absent: `{}`).
    pub fn from_hf_dir(dir: &Path) -> Result<TokenizerFiles> {
        let path = dir.join("tokenizer.json");
        let tokenizer_json = std::fs::read_to_string(&path).map_err(|e| TrainError::io("reading", &path, e))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let tokenizer_config = if cfg_path.is_file() { read_json(&cfg_path)? } else { json!({}) };
        Ok(TokenizerFiles { tokenizer_json, tokenizer_config })
    }

    /// Writes both files into `dir` (each atomically).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io("creating directory", dir, e))?;
        write_file_atomic(&dir.join("tokenizer.json"), self.tokenizer_json.as_bytes())?;
        write_file_atomic(&dir.join("tokenizer_config.json"), pretty(&self.tokenizer_config).as_bytes())
    }
}

/// A fixed prompt whose logits are stored next to the weights for cross-checking.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferencePrompt {
    /// The prompt text (for humans and for the tokenizer check).
    pub text: String,
    /// Its token ids, as memrl's tokenizer produced them.
    pub ids: Vec<u32>,
}

/// How to write a checkpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckpointOptions {
    /// For LoRA models: write merged weights (`W + (alpha/r)·B·A`) as `model.safetensors` and no
    /// adapter files (loadable anywhere, not resumable as LoRA). Otherwise the frozen base plus
    /// `adapter_model.safetensors`.
    pub merge_lora: bool,
    /// Also write `reference_logits.json` for this prompt.
    pub reference: Option<ReferencePrompt>,
}

/// `model_type` of an architecture.
fn model_type(architecture: &str) -> &'static str {
    match architecture {
        "Qwen2ForCausalLM" => "qwen2",
        "MistralForCausalLM" => "mistral",
        _ => "llama",
    }
}

/// The `config.json` of `c` (parses back to an equal [`LlamaConfig`]).
pub fn config_to_hf_json(c: &LlamaConfig) -> Value {
    let rope_scaling = match &c.rope_scaling {
        RopeScaling::None => Value::Null,
        RopeScaling::Linear { factor } => json!({"rope_type": "linear", "factor": factor}),
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => json!({
            "rope_type": "llama3", "factor": factor, "low_freq_factor": low_freq_factor,
            "high_freq_factor": high_freq_factor, "original_max_position_embeddings": original_max_position_embeddings,
        }),
    };
    let eos = match c.eos_token_ids.as_slice() {
        [] => Value::Null,
        [one] => json!(one),
        many => json!(many),
    };
    let mut v = json!({
        "architectures": [c.architecture],
        "model_type": model_type(&c.architecture),
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads,
        "head_dim": c.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": c.rope_theta,
        "rope_scaling": rope_scaling,
        "max_position_embeddings": c.max_position_embeddings,
        "tie_word_embeddings": c.tie_word_embeddings,
        "bos_token_id": c.bos_token_id,
        "eos_token_id": eos,
        "torch_dtype": "float32",
        "use_cache": true,
    });
    if model_type(&c.architecture) != "qwen2" {
        v["attention_bias"] = json!(c.qkv_bias);
        v["mlp_bias"] = json!(c.mlp_bias);
    }
    if c.copy_head {
        v["copy_head"] = json!(true);
    }
    if c.token_match {
        v["token_match"] = json!(true);
        v["canon_kernel"] = json!(c.canon_kernel);
    }
    if c.architecture == "MistralForCausalLM" {
        v["sliding_window"] = Value::Null;
    }
    v
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("JSON values serialise");
    s.push('\n');
    s
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io("reading", path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::checkpoint(path, format!("invalid JSON: {e}")))
}

/// Writes `bytes` to `path` atomically ([`crate::atomic::write_file_atomic`]), naming the path on error.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::atomic::write_file_atomic(path, bytes).map_err(|e| TrainError::io("writing", path, e))
}

/// Writes a file inside a directory that is renamed into place afterwards (no rename needed).
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| TrainError::io("creating", path, e))?;
    f.write_all(bytes).map_err(|e| TrainError::io("writing", path, e))?;
    f.sync_all().map_err(|e| TrainError::io("syncing", path, e))
}

/// Serialises f32 tensors as safetensors bytes with `metadata` (transformers wants `format: pt`).
pub fn safetensors_bytes(tensors: &[(String, HostTensor)], metadata: BTreeMap<String, String>) -> Result<Vec<u8>> {
    let raw: Vec<(&str, &HostTensor, Vec<u8>)> = tensors.iter().map(|(n, t)| (n.as_str(), t, t.data.iter().flat_map(|x| x.to_le_bytes()).collect())).collect();
    let mut views = Vec::with_capacity(raw.len());
    for (name, t, bytes) in &raw {
        let view = TensorView::new(Dtype::F32, t.shape.clone(), bytes).map_err(|e| TrainError::parameter(*name, format!("cannot serialise: {e}")))?;
        views.push((name.to_string(), view));
    }
    let metadata: std::collections::HashMap<String, String> = metadata.into_iter().collect();
    safetensors::serialize(views, Some(metadata)).map_err(|e| TrainError::Tokenizer(format!("safetensors: {e}")))
}

/// Reads every tensor of an f32 safetensors file (F16/BF16 are widened).
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, HostTensor)>> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io("reading", path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| TrainError::checkpoint(path, format!("not a valid safetensors file: {e}")))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => raw.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::BF16 => raw.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            other => return Err(TrainError::checkpoint(path, format!("tensor `{name}` has dtype {other:?}; expected F32, F16 or BF16"))),
        };
        out.push((name, HostTensor { shape: view.shape().to_vec(), data }));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The PEFT `adapter_config.json` of a LoRA configuration (plus memrl's `seed`).
pub fn adapter_config_json(c: &LoraConfig) -> Value {
    json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": c.rank,
        "lora_alpha": c.alpha,
        "lora_dropout": c.dropout,
        "target_modules": c.target_modules,
        "bias": "none",
        "fan_in_fan_out": false,
        "use_rslora": false,
        "init_lora_weights": true,
        "inference_mode": false,
        "base_model_name_or_path": null,
        "memrl_seed": c.seed,
    })
}

fn lora_config_from_json(v: &Value, path: &Path) -> Result<LoraConfig> {
    let field = |k: &str| v.get(k).ok_or_else(|| TrainError::checkpoint(path, format!("missing field `{k}`")));
    let num = |k: &str| field(k)?.as_f64().ok_or_else(|| TrainError::checkpoint(path, format!("`{k}` must be a number")));
    let rank = field("r")?.as_u64().ok_or_else(|| TrainError::checkpoint(path, "`r` must be a positive integer"))? as usize;
    let targets = field("target_modules")?
        .as_array()
        .ok_or_else(|| TrainError::checkpoint(path, "`target_modules` must be a list of module names"))?
        .iter()
        .map(|t| t.as_str().map(str::to_string).ok_or_else(|| TrainError::checkpoint(path, "`target_modules` entries must be strings")))
        .collect::<Result<Vec<_>>>()?;
    let config = LoraConfig {
        rank,
        alpha: num("lora_alpha")?,
        dropout: num("lora_dropout")?,
        target_modules: targets,
        seed: v.get("memrl_seed").and_then(Value::as_u64).unwrap_or(0),
    };
    config.validate().map_err(|e| TrainError::checkpoint(path, e.to_string()))?;
    Ok(config)
}

/// The optimizer files' contents: safetensors of moments and the JSON of steps/hyper-parameters.
fn optimizer_files(state: &AdamWState) -> Result<(Vec<u8>, Value)> {
    let mut tensors = Vec::new();
    let mut steps = serde_json::Map::new();
    for (name, m) in &state.params {
        tensors.push((format!("{name}.exp_avg"), HostTensor { shape: m.shape.clone(), data: m.exp_avg.clone() }));
        tensors.push((format!("{name}.exp_avg_sq"), HostTensor { shape: m.shape.clone(), data: m.exp_avg_sq.clone() }));
        steps.insert(name.clone(), json!(m.step));
    }
    // One metadata key: safetensors writes its metadata map in hash order, so two keys would
    // make equal optimizer states differ in their file bytes from one process to the next.
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = safetensors_bytes(&tensors, meta)?;
    let info = json!({
        "optimizer": "AdamW",
        "step": state.step,
        "config": state.config,
        "param_steps": steps,
        "layout": "memrl parameter layout: linear weights [in, out]",
    });
    Ok((bytes, info))
}

/// Writes a checkpoint of `model` into `dir` atomically (see the module docs).
pub fn save_checkpoint<M: TrainBackend>(
    dir: &Path,
    model: &Llama<M>,
    tokenizer: &TokenizerFiles,
    optimizer: Option<&AdamWState>,
    options: &CheckpointOptions,
) -> Result<()> {
    crate::atomic::write_dir_atomic(dir, |tmp| write_checkpoint_files(tmp, model, tokenizer, optimizer, options))
}

/// Writes the files of a checkpoint of `model` into the existing directory `tmp`, each
/// fsynced, without making the directory appear atomically: for a caller that does that itself
/// (with [`crate::atomic::write_dir_atomic`]) and adds files of its own.
pub fn write_checkpoint_files<M: TrainBackend>(
    tmp: &Path,
    model: &Llama<M>,
    tokenizer: &TokenizerFiles,
    optimizer: Option<&AdamWState>,
    options: &CheckpointOptions,
) -> Result<()> {
    let weights = M::export_weights(model, options.merge_lora);
    let reference = match &options.reference {
        Some(r) => Some(reference_logits_json(model, r)?),
        None => None,
    };
    {
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        write_synced(&tmp.join("model.safetensors"), &safetensors_bytes(&weights.model, meta.clone())?)?;
        write_synced(&tmp.join("config.json"), pretty(&config_to_hf_json(&model.config)).as_bytes())?;
        let c = &model.config;
        let pad = tokenizer.tokenizer_config.get("pad_token").and_then(Value::as_str).and_then(|p| token_id_in_json(&tokenizer.tokenizer_json, p));
        let generation = json!({
            "bos_token_id": c.bos_token_id,
            "eos_token_id": c.eos_token_ids.first(),
            "pad_token_id": pad,
        });
        write_synced(&tmp.join("generation_config.json"), pretty(&generation).as_bytes())?;
        write_synced(&tmp.join("tokenizer.json"), tokenizer.tokenizer_json.as_bytes())?;
        write_synced(&tmp.join("tokenizer_config.json"), pretty(&tokenizer.tokenizer_config).as_bytes())?;
        if let Some((config, adapters)) = &weights.adapter {
            write_synced(&tmp.join("adapter_model.safetensors"), &safetensors_bytes(adapters, meta)?)?;
            write_synced(&tmp.join("adapter_config.json"), pretty(&adapter_config_json(config)).as_bytes())?;
        }
        if let Some(state) = optimizer {
            let (bytes, info) = optimizer_files(state)?;
            write_synced(&tmp.join("optimizer.safetensors"), &bytes)?;
            write_synced(&tmp.join("optimizer.json"), pretty(&info).as_bytes())?;
        }
        if let Some(r) = &reference {
            write_synced(&tmp.join("reference_logits.json"), pretty(r).as_bytes())?;
        }
        Ok(())
    }
}

/// The id of `token` in a `tokenizer.json` text (added tokens or model vocabulary).
fn token_id_in_json(tokenizer_json: &str, token: &str) -> Option<u32> {
    let v: Value = serde_json::from_str(tokenizer_json).ok()?;
    if let Some(added) = v.get("added_tokens").and_then(Value::as_array) {
        for t in added {
            if t.get("content").and_then(Value::as_str) == Some(token) {
                return t.get("id").and_then(Value::as_u64).map(|x| x as u32);
            }
        }
    }
    v.get("model")?.get("vocab")?.get(token)?.as_u64().map(|x| x as u32)
}

/// Number of leading vocabulary ids whose logits are stored for every position.
const REFERENCE_IDS: usize = 256;

/// Logits of `model` on `prompt`: for every position the first [`REFERENCE_IDS`] ids, and the
/// whole row at the last position.
fn reference_logits_json<B: Backend>(model: &Llama<B>, prompt: &ReferencePrompt) -> Result<Value> {
    let n = prompt.ids.len();
    let v = model.config.vocab_size;
    if n == 0 || prompt.ids.iter().any(|&i| i as usize >= v) {
        return Err(TrainError::config("reference prompt", format!("needs 1.. ids below the vocabulary size {v}")));
    }
    let b = &model.backend;
    let logits = b.to_vec(&model.logits(model.forward(&prompt.ids, 1, n, &[n]), &prompt.ids, 1, n));
    let k = REFERENCE_IDS.min(v);
    let rows: Vec<Vec<f32>> = (0..n).map(|i| logits[i * v..i * v + k].to_vec()).collect();
    Ok(json!({
        "prompt": prompt.text,
        "input_ids": prompt.ids,
        "vocab_size": v,
        "leading_ids": k,
        "logits_leading": rows,
        "logits_last": logits[(n - 1) * v..n * v].to_vec(),
    }))
}

/// Reads the optimizer state saved in checkpoint `dir`.
pub fn read_optimizer_state(dir: &Path) -> Result<AdamWState> {
    let json_path = dir.join("optimizer.json");
    let info = read_json(&json_path)?;
    let step = info.get("step").and_then(Value::as_u64).ok_or_else(|| TrainError::checkpoint(&json_path, "missing integer `step`"))?;
    let config: AdamWConfig =
        serde_json::from_value(info.get("config").cloned().unwrap_or(Value::Null)).map_err(|e| TrainError::checkpoint(&json_path, format!("`config`: {e}")))?;
    let steps = info.get("param_steps").and_then(Value::as_object).ok_or_else(|| TrainError::checkpoint(&json_path, "missing object `param_steps`"))?;
    let st_path = dir.join("optimizer.safetensors");
    let mut tensors: BTreeMap<String, HostTensor> = read_safetensors(&st_path)?.into_iter().collect();
    let mut params = BTreeMap::new();
    for (name, s) in steps {
        let step = s.as_u64().ok_or_else(|| TrainError::checkpoint(&json_path, format!("`param_steps.{name}` must be an integer")))?;
        let mut take = |suffix: &str| {
            tensors.remove(&format!("{name}.{suffix}")).ok_or_else(|| TrainError::checkpoint(&st_path, format!("missing tensor `{name}.{suffix}`")))
        };
        let (m, v) = (take("exp_avg")?, take("exp_avg_sq")?);
        if m.shape != v.shape {
            return Err(TrainError::checkpoint(&st_path, format!("`{name}`: exp_avg {:?} and exp_avg_sq {:?} differ in shape", m.shape, v.shape)));
        }
        params.insert(name.clone(), ParamMoments { step, shape: m.shape, exp_avg: m.data, exp_avg_sq: v.data });
    }
    if let Some(extra) = tensors.keys().next() {
        return Err(TrainError::checkpoint(&st_path, format!("tensor `{extra}` has no entry in optimizer.json `param_steps`")));
    }
    Ok(AdamWState { step, config, params })
}

/// Resumes the optimizer saved in checkpoint `dir` for `model` (names and shapes checked).
pub fn load_checkpoint_optimizer<M: TrainBackend>(dir: &Path, model: &Llama<M>) -> Result<AdamW<M::Leaf>> {
    AdamW::from_state(read_optimizer_state(dir)?, model)
}

/// Loads a LoRA checkpoint written unmerged: the base from `model.safetensors`, adapters from
/// `adapter_model.safetensors` with `adapter_config.json`.
pub fn load_lora_checkpoint<B: Backend>(backend: B, dir: &Path) -> Result<(Llama<Lora<B>>, Tokenizer)> {
    let cfg_path = dir.join("adapter_config.json");
    let config = lora_config_from_json(&read_json(&cfg_path)?, &cfg_path)?;
    let (base, tokenizer) = crate::load::load_policy(backend, dir)?;
    let mut model = apply_lora(base, &config)?;
    let st_path = dir.join("adapter_model.safetensors");
    load_adapters(&mut model, read_safetensors(&st_path)?, &st_path)?;
    Ok((model, tokenizer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_round_trips() {
        let base = crate::train::tiny::TinyPreset::L2D64.config(300).unwrap();
        let scaled = LlamaConfig {
            rope_scaling: RopeScaling::Llama3 { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192.0 },
            eos_token_ids: vec![2, 0],
            ..base.clone()
        };
        let qwen = LlamaConfig { architecture: "Qwen2ForCausalLM".into(), qkv_bias: true, ..base.clone() };
        for c in [base, scaled, qwen] {
            let back = LlamaConfig::from_hf_json(&config_to_hf_json(&c), "t").unwrap();
            assert_eq!(back, c);
        }
    }

    #[test]
    fn lora_config_json_round_trips_and_rejects_bad_fields() {
        let c = LoraConfig { rank: 4, alpha: 8.0, dropout: 0.1, target_modules: vec!["q_proj".into()], seed: 9 };
        let p = Path::new("adapter_config.json");
        assert_eq!(lora_config_from_json(&adapter_config_json(&c), p).unwrap(), c);
        let mut bad = adapter_config_json(&c);
        bad["target_modules"] = json!(["qkv"]);
        assert!(lora_config_from_json(&bad, p).unwrap_err().to_string().contains("qkv"));
        bad.as_object_mut().unwrap().remove("r");
        assert!(lora_config_from_json(&bad, p).unwrap_err().to_string().contains("`r`"));
    }
}

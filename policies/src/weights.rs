//! Loading decoder weights: HF safetensors directories (single file or sharded with
//! `model.safetensors.index.json`; F32/F16/BF16) and GGUF files (through [`crate::gguf`]).
//!
//! Every tensor is checked against the shape the configuration implies; a missing tensor, a
//! wrong shape, an unsupported dtype or a truncated file is an error naming file and tensor.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::backend::Backend;
use crate::config::LlamaConfig;
use crate::error::{PolicyError, Result};
use crate::model::{DecoderLayer, Linear, Llama};

/// A host-side tensor in PyTorch layout (row-major, `[out, in]` for linear weights).
#[derive(Debug, Clone)]
pub struct HostTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

/// Where named tensors come from; `file_of` names the file for error messages.
pub trait TensorSource {
    /// Takes the tensor `name` out of the source (`Ok(None)` if the source lacks it).
    fn take(&mut self, name: &str) -> Result<Option<HostTensor>>;
    /// The file that holds (or would hold) `name`.
    fn file_of(&self, name: &str) -> PathBuf;
}

/// Tensors from one or more safetensors files, read when asked for.
pub struct SafetensorsSource {
    /// Tensor name → file.
    index: BTreeMap<String, PathBuf>,
    /// File contents, read once per file.
    files: HashMap<PathBuf, Vec<u8>>,
    /// Where single-file lookups of unknown names should point in errors.
    default_file: PathBuf,
}

impl SafetensorsSource {
    /// Opens `dir/model.safetensors` or, if absent, the shards listed in
    /// `dir/model.safetensors.index.json` (`weight_map`).
    pub fn open_dir(dir: &Path) -> Result<SafetensorsSource> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        if single.is_file() {
            let names = read_header_names(&single)?;
            let index = names.into_iter().map(|n| (n, single.clone())).collect();
            return Ok(SafetensorsSource { index, files: HashMap::new(), default_file: single });
        }
        if index_path.is_file() {
            let text = std::fs::read_to_string(&index_path).map_err(|e| PolicyError::io(&index_path, e))?;
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| PolicyError::Json { path: index_path.clone(), source: e })?;
            let map = value
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| PolicyError::weights(&index_path, "-", "expected an object `weight_map` of tensor name → shard file"))?;
            let mut index = BTreeMap::new();
            for (name, file) in map {
                let file = file.as_str().ok_or_else(|| PolicyError::weights(&index_path, name, "`weight_map` value must be a file name string"))?;
                if file.contains('/') || file.contains("..") {
                    return Err(PolicyError::weights(&index_path, name, format!("shard `{file}` must be a plain file name")));
                }
                index.insert(name.clone(), dir.join(file));
            }
            return Ok(SafetensorsSource { index, files: HashMap::new(), default_file: index_path });
        }
        Err(PolicyError::ModelPath { path: dir.to_path_buf(), message: "has neither model.safetensors nor model.safetensors.index.json".into() })
    }

    fn bytes_of(&mut self, file: &Path) -> Result<&[u8]> {
        if !self.files.contains_key(file) {
            let bytes = std::fs::read(file).map_err(|e| PolicyError::io(file, e))?;
            // Validate the header and data offsets once, so later lookups cannot fail on layout.
            SafeTensors::deserialize(&bytes).map_err(|e| PolicyError::weights(file, "-", format!("not a valid safetensors file: {e}")))?;
            self.files.insert(file.to_path_buf(), bytes);
        }
        Ok(&self.files[file])
    }
}

/// Reads only the tensor names of a safetensors file (header), validating the file.
fn read_header_names(file: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(file).map_err(|e| PolicyError::io(file, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| PolicyError::weights(file, "-", format!("not a valid safetensors file: {e}")))?;
    Ok(st.names().into_iter().map(|s| s.to_string()).collect())
}

impl TensorSource for SafetensorsSource {
    fn take(&mut self, name: &str) -> Result<Option<HostTensor>> {
        let Some(file) = self.index.get(name).cloned() else { return Ok(None) };
        let bytes = self.bytes_of(&file)?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| PolicyError::weights(&file, name, format!("not a valid safetensors file: {e}")))?;
        let view = st.tensor(name).map_err(|e| PolicyError::weights(&file, name, format!("listed in the index but not readable: {e}")))?;
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => raw.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::BF16 => raw.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            other => {
                return Err(PolicyError::weights(&file, name, format!("dtype {other:?} is not supported; expected F32, F16 or BF16")));
            }
        };
        check_finite(&file, name, &data)?;
        Ok(Some(HostTensor { shape: view.shape().to_vec(), data }))
    }

    fn file_of(&self, name: &str) -> PathBuf {
        self.index.get(name).cloned().unwrap_or_else(|| self.default_file.clone())
    }
}

/// Tensors from a GGUF file, dequantised to f32 with HF names (Q/K un-permuted).
pub struct GgufSource {
    path: PathBuf,
    tensors: HashMap<String, HostTensor>,
}

impl GgufSource {
    /// Reads and dequantises every tensor of `file`.
    pub fn new(file: &crate::gguf::GgufFile) -> Result<GgufSource> {
        let tensors = crate::gguf::llama::hf_tensors(file)?.into_iter().map(|t| (t.name, HostTensor { shape: t.shape, data: t.data })).collect();
        Ok(GgufSource { path: file.path().to_path_buf(), tensors })
    }
}

impl TensorSource for GgufSource {
    fn take(&mut self, name: &str) -> Result<Option<HostTensor>> {
        let tensor = self.tensors.remove(name);
        if let Some(t) = &tensor {
            check_finite(&self.path, name, &t.data)?;
        }
        Ok(tensor)
    }
    fn file_of(&self, _name: &str) -> PathBuf {
        self.path.clone()
    }
}

/// Refuses a tensor read from `file` that holds NaN or Inf: such weights make every output NaN,
/// so generation and evaluation would run and mean nothing. (Weights built in memory, such as
/// a training step's inference copy, are not checked here.)
fn check_finite(file: &Path, name: &str, data: &[f32]) -> Result<()> {
    let bad = data.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        let message = format!("{bad} of {} values are NaN or infinite; the model cannot produce meaningful output", data.len());
        return Err(PolicyError::weights(file, name, message));
    }
    Ok(())
}

/// Takes a required tensor and checks its shape.
fn required(src: &mut dyn TensorSource, name: &str, shape: &[usize]) -> Result<HostTensor> {
    let t = src.take(name)?.ok_or_else(|| PolicyError::weights(src.file_of(name), name, format!("missing (expected shape {shape:?})")))?;
    check_shape(src, name, &t, shape)?;
    Ok(t)
}

fn check_shape(src: &dyn TensorSource, name: &str, t: &HostTensor, shape: &[usize]) -> Result<()> {
    if t.shape != shape {
        return Err(PolicyError::weights(src.file_of(name), name, format!("shape {:?}, expected {shape:?}", t.shape)));
    }
    if t.data.len() != shape.iter().product::<usize>() {
        return Err(PolicyError::weights(src.file_of(name), name, "data length does not match its shape"));
    }
    Ok(())
}

/// Row-major `[rows, cols]` → `[cols, rows]`.
pub fn transpose_host(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; data.len()];
    // Blocked so both sides stay in cache for large matrices.
    const BLOCK: usize = 64;
    for r0 in (0..rows).step_by(BLOCK) {
        for c0 in (0..cols).step_by(BLOCK) {
            for r in r0..(r0 + BLOCK).min(rows) {
                for c in c0..(c0 + BLOCK).min(cols) {
                    out[c * rows + r] = data[r * cols + c];
                }
            }
        }
    }
    out
}

/// Builds the decoder from a tensor source, checking every shape against `config`.
pub fn build_llama<B: Backend>(backend: B, config: LlamaConfig, src: &mut dyn TensorSource) -> Result<Llama<B>> {
    let c = &config;
    let (dm, v, ff) = (c.hidden_size, c.vocab_size, c.intermediate_size);
    let (qd, kvd) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
    let param = |t: HostTensor| backend.param(t.data, &t.shape);
    let lin = |src: &mut dyn TensorSource, name: &str, out_f: usize, in_f: usize, bias: bool| -> Result<Linear<B>> {
        let w = required(src, &format!("{name}.weight"), &[out_f, in_f])?;
        let weight = backend.param(transpose_host(&w.data, out_f, in_f), &[in_f, out_f]);
        let bias = if bias { Some(param(required(src, &format!("{name}.bias"), &[out_f])?)) } else { None };
        Ok(Linear { weight, bias })
    };
    let embed_host = required(src, "model.embed_tokens.weight", &[v, dm])?;
    // Not `with_capacity(num_hidden_layers)`: a corrupt config's count must not allocate before
    // the file is found to lack the layers.
    let mut layers = Vec::new();
    for i in 0..c.num_hidden_layers {
        let p = format!("model.layers.{i}");
        layers.push(DecoderLayer {
            input_layernorm: param(required(src, &format!("{p}.input_layernorm.weight"), &[dm])?),
            q_proj: lin(src, &format!("{p}.self_attn.q_proj"), qd, dm, c.qkv_bias)?,
            k_proj: lin(src, &format!("{p}.self_attn.k_proj"), kvd, dm, c.qkv_bias)?,
            v_proj: lin(src, &format!("{p}.self_attn.v_proj"), kvd, dm, c.qkv_bias)?,
            o_proj: lin(src, &format!("{p}.self_attn.o_proj"), dm, qd, c.o_bias)?,
            post_attention_layernorm: param(required(src, &format!("{p}.post_attention_layernorm.weight"), &[dm])?),
            gate_proj: lin(src, &format!("{p}.mlp.gate_proj"), ff, dm, c.mlp_bias)?,
            up_proj: lin(src, &format!("{p}.mlp.up_proj"), ff, dm, c.mlp_bias)?,
            down_proj: lin(src, &format!("{p}.mlp.down_proj"), dm, ff, c.mlp_bias)?,
        });
    }
    let norm = param(required(src, "model.norm.weight", &[dm])?);
    let embed_tokens = backend.param(embed_host.data, &[v, dm]);
    let lm_head = if c.tie_word_embeddings {
        // The same parameter; a stored lm_head.weight is ignored, as transformers does.
        embed_tokens.clone()
    } else {
        param(required(src, "lm_head.weight", &[v, dm])?)
    };
    // A value head (PPO's critic on the shared trunk) is optional: a plain model has none.
    let value_head = match src.take(crate::model::VALUE_HEAD_WEIGHT)? {
        Some(w) => {
            check_shape(src, crate::model::VALUE_HEAD_WEIGHT, &w, &[1, dm])?;
            let bias = param(required(src, crate::model::VALUE_HEAD_BIAS, &[1])?);
            Some(Linear { weight: backend.param(w.data, &[dm, 1]), bias: Some(bias) })
        }
        None => None,
    };
    // The pointer head is part of the architecture: present exactly when the config says so.
    let copy_head = if c.copy_head {
        Some(crate::copy_head::CopyHead {
            query: lin(src, crate::copy_head::COPY_QUERY_WEIGHT.trim_end_matches(".weight"), dm, dm, false)?,
            key: lin(src, crate::copy_head::COPY_KEY_WEIGHT.trim_end_matches(".weight"), dm, dm, false)?,
            sentinel: param(required(src, crate::copy_head::COPY_SENTINEL, &[dm, 1])?),
        })
    } else {
        None
    };
    let token_match = if c.token_match {
        Some(crate::token_match::TokenMatch {
            match_bias: param(required(src, crate::token_match::MATCH_BIAS, &[c.num_attention_heads])?),
            canon: param(required(src, crate::token_match::CANON_WEIGHT, &[c.canon_kernel, dm])?),
        })
    } else {
        None
    };
    let mut model = Llama::new(backend, config, embed_tokens, layers, norm, lm_head);
    model.value_head = value_head;
    model.copy_head = copy_head;
    model.token_match = token_match;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_host_swaps_axes() {
        let data: Vec<f32> = (0..6).map(|x| x as f32).collect(); // [[0,1,2],[3,4,5]]
        assert_eq!(transpose_host(&data, 2, 3), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let big: Vec<f32> = (0..(70 * 130)).map(|x| x as f32).collect();
        let t = transpose_host(&big, 70, 130);
        assert_eq!(transpose_host(&t, 130, 70), big);
        assert_eq!(t[5 * 70 + 69], big[69 * 130 + 5]);
    }
}

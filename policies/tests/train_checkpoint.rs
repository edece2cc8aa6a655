//! Checkpoints: HF layout, atomic writes, identical logits after `load_policy`, LoRA merged and
//! unmerged, exact optimizer resume, clear errors for damaged files.
//!
//! `MEMRL_CHECKPOINT_OUT=<dir>` keeps the checkpoints this test writes (tiny tied model, tiny
//! LoRA unmerged, tiny LoRA merged) for `scripts/check_checkpoint.py <dir>/<name>`.

mod common;
use common::gguf_path;

use std::path::{Path, PathBuf};

use memrl_policies::train::bench::mean_nll;
use memrl_policies::train::checkpoint::{ReferencePrompt, read_optimizer_state, read_safetensors};
use memrl_policies::train::lora::adapter_state_dict;
use memrl_policies::train::params::llama_from_hf_tensors;
use memrl_policies::train::tiny::random_hf_tensors;
use memrl_policies::train::{
    AdamW, AdamWConfig, BpeTrainingConfig, CheckpointOptions, LoraConfig, ModelGrads, TinyPreset, TokenizerFiles, TrainedTokenizer, apply_lora, hf_state_dict,
    init_tiny, load_checkpoint_optimizer, load_lora_checkpoint, save_checkpoint, train_bpe_tokenizer,
};
use memrl_policies::{Backend, BurnBackend, Llama, LlamaConfig, load_policy};
use serde_json::Value;

fn tokenizer() -> TrainedTokenizer {
    let text: Vec<String> = (0..200)
        .map(|i| {
            format!(
                "<|im_start|>user\nNote {i}: the meeting moved to room {}.<|im_end|>\n<|im_start|>assistant\nmemory_add(\"room {}\")<|im_end|>",
                i % 13,
                i % 13
            )
        })
        .collect();
    train_bpe_tokenizer(text, &BpeTrainingConfig { vocab_size: 400, min_frequency: 2, ..BpeTrainingConfig::default() }).unwrap()
}

fn out_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("MEMRL_CHECKPOINT_OUT") {
        Some(p) => (None, PathBuf::from(p)),
        None => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    }
}

fn logits<B: Backend>(model: &Llama<B>, ids: &[u32]) -> Vec<f32> {
    model.backend.to_vec(&model.lm_head(model.forward(ids, 1, ids.len(), &[ids.len()])))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn prompt(tok: &TrainedTokenizer) -> ReferencePrompt {
    let text = "<|im_start|>user\nWhere did the meeting move?<|im_end|>\n<|im_start|>assistant\n".to_string();
    ReferencePrompt { ids: tok.encode(&text).unwrap(), text }
}

/// A few AdamW steps so weights differ from initialisation (and optimizer state exists).
fn train<M: memrl_policies::train::TrainBackend>(model: &mut Llama<M>, steps: usize) -> AdamW<M::Leaf> {
    let rows = vec![vec![5u32, 9, 13, 44, 2, 7, 19, 30, 4], vec![3, 3, 8, 21, 40, 6, 11, 12, 1]];
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    for _ in 0..steps {
        let loss = mean_nll(model, &rows);
        let raw = model.backend.backward(&loss);
        let g = ModelGrads::from_backward(model, raw);
        opt.step(model, g, 1e-2).unwrap();
    }
    opt
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn full_model_checkpoint_round_trips_with_identical_logits() {
    let (_keep, root) = out_dir();
    let tok = tokenizer();
    let mut model = init_tiny(BurnBackend::flex_autodiff(), TinyPreset::L2D64, tok.vocab_size(), 1).unwrap();
    let opt = train(&mut model, 3);
    let dir = root.join("tiny-full");
    let reference = prompt(&tok);
    let options = CheckpointOptions { merge_lora: false, reference: Some(reference.clone()) };
    let files = TokenizerFiles::from_trained(&tok).unwrap();
    save_checkpoint(&dir, &model, &files, Some(&opt.state(&model.backend)), &options).unwrap();
    assert!(!root.join("tiny-full.tmp").exists());
    for f in [
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "optimizer.safetensors",
        "optimizer.json",
        "reference_logits.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    // Tied: no lm_head.weight, as transformers saves it; f32, PyTorch layout.
    let saved = read_safetensors(&dir.join("model.safetensors")).unwrap();
    assert!(saved.iter().all(|(n, _)| n != "lm_head.weight"));
    let q = &saved.iter().find(|(n, _)| n == "model.layers.0.self_attn.q_proj.weight").unwrap().1;
    assert_eq!(q.shape, vec![64, 64]);
    let up = &saved.iter().find(|(n, _)| n == "model.layers.0.mlp.up_proj.weight").unwrap().1;
    assert_eq!(up.shape, vec![192, 64]);
    assert_eq!(read_json(&dir.join("config.json"))["architectures"][0], "LlamaForCausalLM");
    assert_eq!(read_json(&dir.join("generation_config.json"))["eos_token_id"], 2);

    let (loaded, loaded_tok) = load_policy(BurnBackend::flex(), &dir).unwrap();
    assert_eq!(loaded_tok.encode(&reference.text, false).unwrap(), reference.ids);
    assert!(loaded_tok.chat_template.is_some());
    // The weights come back bit for bit; logits agree to float rounding (the original runs on
    // the autodiff backend, the loaded model on the plain one).
    let strip = |v: Vec<(String, memrl_policies::weights::HostTensor)>| v.into_iter().map(|(n, t)| (n, t.shape, t.data)).collect::<Vec<_>>();
    assert_eq!(strip(hf_state_dict(&loaded)), strip(hf_state_dict(&model)));
    let want = logits(&model, &reference.ids);
    assert!(max_diff(&logits(&loaded, &reference.ids), &want) < 1e-5);
    let stored = read_json(&dir.join("reference_logits.json"));
    let last: Vec<f32> = stored["logits_last"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let v = tok.vocab_size();
    assert!(max_diff(&last, &want[want.len() - v..]) < 1e-5);

    // Optimizer resume from the files is exact.
    let mut resumed_model = llama_from_hf_tensors(BurnBackend::flex_autodiff(), model.config.clone(), hf_state_dict(&loaded)).unwrap();
    let mut resumed = load_checkpoint_optimizer(&dir, &resumed_model).unwrap();
    assert_eq!(resumed.steps(), 3);
    let mut original = opt;
    let rows = vec![vec![1u32, 2, 3, 4, 5, 6]];
    for (m, o) in [(&mut model, &mut original), (&mut resumed_model, &mut resumed)] {
        let loss = mean_nll(m, &rows);
        let raw = m.backend.backward(&loss);
        let g = ModelGrads::from_backward(m, raw);
        o.step(m, g, 1e-2).unwrap();
    }
    assert_eq!(
        hf_state_dict(&model).into_iter().map(|(_, t)| t.data).collect::<Vec<_>>(),
        hf_state_dict(&resumed_model).into_iter().map(|(_, t)| t.data).collect::<Vec<_>>()
    );

    // Overwriting an existing checkpoint works and stays atomic.
    save_checkpoint(&dir, &model, &files, None, &options).unwrap();
    assert!(!dir.join("optimizer.json").exists(), "the old directory was replaced");
    assert!(!root.join("tiny-full.old").exists() && !root.join("tiny-full.tmp").exists());
}

#[test]
fn untied_models_save_lm_head() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TinyPreset::L2D64.hf_config(300);
    cfg["tie_word_embeddings"] = Value::Bool(false);
    let c = LlamaConfig::from_hf_json(&cfg, "t").unwrap();
    let model = llama_from_hf_tensors(BurnBackend::flex(), c.clone(), random_hf_tensors(&c, 4, 0.02)).unwrap();
    let files = TokenizerFiles::from_trained(&tokenizer()).unwrap();
    save_checkpoint(&dir.path().join("ck"), &model, &files, None, &CheckpointOptions::default()).unwrap();
    let saved = read_safetensors(&dir.path().join("ck/model.safetensors")).unwrap();
    assert_eq!(saved.iter().find(|(n, _)| n == "lm_head.weight").unwrap().1.shape, vec![300, 64]);
    let (loaded, _) = load_policy(BurnBackend::flex(), &dir.path().join("ck")).unwrap();
    let ids = [5u32, 6, 7];
    assert_eq!(max_diff(&logits(&loaded, &ids), &logits(&model, &ids)), 0.0);
}

#[test]
fn lora_checkpoints_merged_and_unmerged() {
    let (_keep, root) = out_dir();
    let tok = tokenizer();
    let base = init_tiny(BurnBackend::flex_autodiff(), TinyPreset::L2D64, tok.vocab_size(), 2).unwrap();
    let base_host = hf_state_dict(&base);
    let lora = LoraConfig { rank: 4, alpha: 8.0, dropout: 0.1, seed: 3, ..LoraConfig::default() };
    let mut model = apply_lora(base, &lora).unwrap();
    let opt = train(&mut model, 3);
    model.backend.set_training(false);
    let reference = prompt(&tok);
    let want = logits(&model, &reference.ids);
    let files = TokenizerFiles::from_trained(&tok).unwrap();

    // Merged: a plain model whose weights are W + (alpha/r)·B·A.
    let merged_dir = root.join("tiny-lora-merged");
    let opts = CheckpointOptions { merge_lora: true, reference: Some(reference.clone()) };
    save_checkpoint(&merged_dir, &model, &files, None, &opts).unwrap();
    assert!(!merged_dir.join("adapter_model.safetensors").exists());
    let merged = read_safetensors(&merged_dir.join("model.safetensors")).unwrap();
    let adapters = adapter_state_dict(&model);
    let name = "model.layers.1.mlp.down_proj";
    let w = &base_host.iter().find(|(n, _)| n == &format!("{name}.weight")).unwrap().1; // [out, in]
    let a = &adapters.iter().find(|(n, _)| n == &format!("base_model.model.{name}.lora_A.weight")).unwrap().1; // [r, in]
    let b = &adapters.iter().find(|(n, _)| n == &format!("base_model.model.{name}.lora_B.weight")).unwrap().1; // [out, r]
    let m = &merged.iter().find(|(n, _)| n == &format!("{name}.weight")).unwrap().1;
    let (out_f, in_f, r) = (w.shape[0], w.shape[1], 4);
    assert!(b.data.iter().any(|x| *x != 0.0), "training moved B");
    for o in 0..out_f {
        for i in 0..in_f {
            let ba: f32 = (0..r).map(|k| b.data[o * r + k] * a.data[k * in_f + i]).sum();
            let expect = w.data[o * in_f + i] + 2.0 * ba;
            assert!((m.data[o * in_f + i] - expect).abs() < 1e-6, "merged[{o}][{i}]");
        }
    }
    let (plain, _) = load_policy(BurnBackend::flex(), &merged_dir).unwrap();
    assert!(max_diff(&logits(&plain, &reference.ids), &want) < 1e-4);

    // Unmerged: base + PEFT adapters, restored exactly; optimizer state names the adapters.
    let dir = root.join("tiny-lora");
    let opts = CheckpointOptions { merge_lora: false, reference: Some(reference.clone()) };
    save_checkpoint(&dir, &model, &files, Some(&opt.state(model.backend.inner())), &opts).unwrap();
    let cfg = read_json(&dir.join("adapter_config.json"));
    assert_eq!((cfg["r"].as_u64(), cfg["lora_alpha"].as_f64(), cfg["peft_type"].as_str()), (Some(4), Some(8.0), Some("LORA")));
    let saved_base = read_safetensors(&dir.join("model.safetensors")).unwrap();
    let w_saved = &saved_base.iter().find(|(n, _)| n == &format!("{name}.weight")).unwrap().1;
    assert_eq!(w_saved.data, w.data, "the base is saved unmerged");
    let (restored, _) = load_lora_checkpoint(BurnBackend::flex(), &dir).unwrap();
    restored.backend.set_training(false);
    let strip = |v: Vec<(String, memrl_policies::weights::HostTensor)>| v.into_iter().map(|(n, t)| (n, t.shape, t.data)).collect::<Vec<_>>();
    assert_eq!(strip(adapter_state_dict(&restored)), strip(adapter_state_dict(&model)), "adapters restored bit for bit");
    assert!(max_diff(&logits(&restored, &reference.ids), &want) < 1e-5);
    let state = read_optimizer_state(&dir).unwrap();
    assert_eq!(state.params.len(), 2 * 7 * 2);
    assert!(state.params.keys().all(|k| k.contains("lora_A") || k.contains("lora_B")));
}

#[test]
fn damaged_checkpoints_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let tok = tokenizer();
    let base = init_tiny(BurnBackend::flex_autodiff(), TinyPreset::L2D64, tok.vocab_size(), 2).unwrap();
    let mut model = apply_lora(base, &LoraConfig { rank: 2, ..LoraConfig::default() }).unwrap();
    let opt = train(&mut model, 1);
    let files = TokenizerFiles::from_trained(&tok).unwrap();
    save_checkpoint(&ck, &model, &files, Some(&opt.state(model.backend.inner())), &CheckpointOptions::default()).unwrap();

    // Truncated optimizer tensors.
    let p = ck.join("optimizer.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_optimizer_state(&ck).unwrap_err().to_string();
    assert!(e.contains("optimizer.safetensors"), "{e}");
    // Optimizer state of a different model.
    std::fs::write(&p, &bytes).unwrap();
    let other = init_tiny(BurnBackend::flex_autodiff(), TinyPreset::L2D64, tok.vocab_size(), 2).unwrap();
    let e = load_checkpoint_optimizer(&ck, &other).err().unwrap().to_string();
    assert!(e.contains("lora_A") || e.contains("lora_B"), "{e}");
    // Adapter config with a wrong rank: adapters do not fit.
    let cfg_path = ck.join("adapter_config.json");
    let mut cfg = read_json(&cfg_path);
    cfg["r"] = Value::from(3);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let e = load_lora_checkpoint(BurnBackend::flex(), &ck).err().unwrap().to_string();
    assert!(e.contains("adapter_model.safetensors") && e.contains("shape"), "{e}");
    // Not JSON.
    std::fs::write(&cfg_path, "{").unwrap();
    let e = load_lora_checkpoint(BurnBackend::flex(), &ck).err().unwrap().to_string();
    assert!(e.contains("adapter_config.json") && e.contains("JSON"), "{e}");
    // Missing optimizer.json.
    std::fs::remove_file(ck.join("optimizer.json")).unwrap();
    assert!(read_optimizer_state(&ck).unwrap_err().to_string().contains("optimizer.json"));
}

#[test]
fn smollm2_from_gguf_exports_as_an_hf_checkpoint() {
    let (_keep, root) = out_dir();
    let (model, tok) = load_policy(BurnBackend::flex(), &gguf_path()).unwrap();
    let messages = vec![serde_json::json!({"role": "user", "content": "Remember that my sister's name is Dana."})];
    let text = tok.apply_chat_template(&messages, None, true).unwrap();
    let reference = ReferencePrompt { ids: tok.encode(&text, false).unwrap(), text };
    let dir = root.join("smollm2");
    let options = CheckpointOptions { merge_lora: false, reference: Some(reference.clone()) };
    save_checkpoint(&dir, &model, &TokenizerFiles::from_tokenizer(&tok).unwrap(), None, &options).unwrap();
    let (loaded, loaded_tok) = load_policy(BurnBackend::flex(), &dir).unwrap();
    assert_eq!(loaded_tok.encode_chat(&messages, None, true).unwrap(), reference.ids);
    assert_eq!(loaded_tok.eos, tok.eos);
    assert!(max_diff(&logits(&loaded, &reference.ids), &logits(&model, &reference.ids)) < 1e-5);
}

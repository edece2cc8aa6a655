//! The policy a run trains: a pretrained model (HF directory or GGUF file) or a tiny preset
//! with a byte-level BPE tokenizer trained on the environment's own text.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use memrl_envs::env::{ScriptedKind, Split, TaskId};
use memrl_envs::policy::{ScriptedPolicy, TextPolicy};
use memrl_envs::registry::build_env;
use memrl_envs::rollout::EpisodeRun;
use memrl_envs::tokens::WhitespaceCounter;
use memrl_policies::model::Llama;
use memrl_policies::tokenizer::Tokenizer;
use memrl_policies::train::bpe::{BpeTrainingConfig, SpaceHandling, train_bpe_tokenizer};
use memrl_policies::train::checkpoint::{CheckpointOptions, TokenizerFiles, save_checkpoint, write_checkpoint_files};
use memrl_policies::train::optim::AdamW;
use memrl_policies::train::tiny::{TinyPreset, init_tiny};

use crate::config::{BackendKind, Config};
use crate::train::backend::{RunBackend, check_backend};
use memrl_policies::turn_stop::turn_stop_ids;
use memrl_rl::rollout::adapters::TokenizerCodec;

/// The trainable model with what the rollout and checkpoints need alongside it.
pub struct PolicyBundle<B: RunBackend> {
    /// The model, on the autodiff backend.
    pub model: Llama<B>,
    /// Its tokenizer.
    pub tokenizer: Arc<Tokenizer>,
    /// Tokenizer + chat template for the rollout.
    pub codec: TokenizerCodec,
    /// Tokens that end an assistant turn, the primary one first ([`turn_stop_ids`]).
    pub stop_ids: Vec<u32>,
    /// Padding id for training batches.
    pub pad_id: u32,
    /// The tokenizer files checkpoints carry.
    pub tokenizer_files: TokenizerFiles,
}

impl<B: RunBackend> PolicyBundle<B> {
    /// Writes the model (LoRA adapters merged into their weights) and tokenizer, without
    /// optimizer state, as the HF directory `dir`, atomically: a plain model any later run loads
    /// (the KL reference).
    pub fn save_merged(&self, dir: &Path) -> anyhow::Result<()> {
        let options = CheckpointOptions { merge_lora: true, ..CheckpointOptions::default() };
        save_checkpoint(dir, &self.model, &self.tokenizer_files, None, &options).with_context(|| format!("writing checkpoint {}", dir.display()))
    }

    /// Writes the files of a resumable checkpoint into the existing directory `dir`, which the
    /// caller makes appear atomically ([`crate::run_dir::write_checkpoint`]): the HF model and
    /// tokenizer and the optimizer state when given. A LoRA model is written unmerged (the frozen
    /// base as `model.safetensors`, the adapters as PEFT's `adapter_model.safetensors` and
    /// `adapter_config.json`) with a merged export in `dir/merged/` ([`MERGED_DIR`]), a plain HF
    /// model directory that transformers, `policy.model` and `memrl eval` load.
    pub fn write_files(&self, dir: &Path, optimizer: Option<&AdamW<B::Leaf>>) -> anyhow::Result<()> {
        let state = optimizer.map(|o| o.state(self.model.backend.leaf_backend()));
        write_checkpoint_files(dir, &self.model, &self.tokenizer_files, state.as_ref(), &CheckpointOptions::default())
            .with_context(|| format!("writing the checkpoint's files into {}", dir.display()))?;
        if self.model.backend.lora().is_some() {
            let merged = dir.join(MERGED_DIR);
            std::fs::create_dir(&merged).with_context(|| format!("creating {}", merged.display()))?;
            let options = CheckpointOptions { merge_lora: true, ..CheckpointOptions::default() };
            write_checkpoint_files(&merged, &self.model, &self.tokenizer_files, None, &options)
                .with_context(|| format!("writing the merged export into {}", merged.display()))?;
        }
        Ok(())
    }

    /// A frozen inference copy of the current weights (no autodiff, LoRA adapters merged): the
    /// rollout engine's model.
    /// (Through host memory: simple, and per step a small cost next to the rollout it serves.)
    pub fn inference_copy(&self) -> anyhow::Result<Llama<B::Leaf>> {
        Ok(memrl_rl::policy::inference_copy(&self.model)?)
    }
}

/// The sub-directory of a LoRA checkpoint that holds its merged export.
pub const MERGED_DIR: &str = "merged";

/// The model a path names, for loading as a plain model: the path itself, or for a LoRA
/// checkpoint written by `memrl train` (`adapter_config.json` beside the frozen base) its merged
/// export `merged/` (the base alone would silently drop the adapters).
pub fn plain_model_path(path: &Path) -> anyhow::Result<PathBuf> {
    if !path.join("adapter_config.json").is_file() {
        return Ok(path.to_path_buf());
    }
    let merged = path.join(MERGED_DIR);
    if merged.join("config.json").is_file() {
        return Ok(merged);
    }
    bail!(
        "{} is a LoRA checkpoint (adapter_config.json) without a merged export in {MERGED_DIR}/: its model.safetensors \
         is the frozen base alone; load it with its adapters (memrl_policies::train::load_lora_checkpoint) or merge them first",
        path.display()
    )
}

/// Text of scripted (oracle and heuristic) episodes of the training split: the corpus a tiny
/// preset's tokenizer is trained on.
pub fn environment_corpus(config: &Config, episodes: u64) -> anyhow::Result<Vec<String>> {
    let knobs = serde_json::to_value(&config.env.options)?;
    // A dataset environment (LoCoMo, LongMemEval) has a fixed train split: cycle through it. A
    // synthetic one draws fresh tasks far from the RL pool.
    let train = build_env(&config.env.name, knobs.clone(), Arc::new(WhitespaceCounter))?.task_count(Split::Train);
    if train == Some(0) {
        bail!(
            "env.name = {:?}: its train split has no tasks, so the tiny preset policy.model = {:?} has no text to train \
             its tokenizer on (check env.options, e.g. the split or the conversations kept)",
            config.env.name,
            config.policy.model
        );
    }
    let mut corpus = Vec::new();
    for i in 0..episodes {
        let index = train.map_or(1_000_000 + i, |n| i % n);
        let mut env = build_env(&config.env.name, knobs.clone(), Arc::new(WhitespaceCounter))?;
        let kind = if i % 2 == 0 { ScriptedKind::Oracle } else { ScriptedKind::Heuristic };
        let mut policy = ScriptedPolicy::new(kind, config.run.seed ^ i);
        let mut run = EpisodeRun::start(env.as_mut(), TaskId { split: Split::Train, index }, config.run.seed ^ i, false)?;
        for _ in 0..256 {
            let Some(turn) = run.turn() else { break };
            corpus.extend(turn.messages.iter().map(|m| m.content.clone()));
            corpus.push(turn.tools_text.to_string());
            let completion = policy.complete(env.as_ref(), turn)?;
            corpus.push(completion.clone());
            run.play_turn(env.as_mut(), &completion)?;
        }
    }
    Ok(corpus)
}

/// Builds the policy named by `config.policy.model` on `backend` (autodiff): a tiny preset
/// (`tiny-…`) or a path.
pub fn build_policy<B: RunBackend>(config: &Config, backend: B) -> anyhow::Result<PolicyBundle<B>> {
    check_supported(config)?;
    let name = &config.policy.model;
    let base_backend = backend.leaf_backend().clone();
    if name.starts_with("tiny-") {
        let preset = TinyPreset::parse(name)?;
        let corpus = environment_corpus(config, 64).context("gathering environment text for the tokenizer")?;
        let bpe = BpeTrainingConfig { spaces: config.policy.tokenizer_spaces, ..BpeTrainingConfig::default() };
        let trained = train_bpe_tokenizer(corpus.iter().map(String::as_str), &bpe)?;
        let files = TokenizerFiles::from_trained(&trained)?;
        let dir = config.run_dir().join("tokenizer");
        files.write(&dir)?;
        let tokenizer = Tokenizer::from_hf_dir(&dir)?;
        let model = init_tiny(base_backend, preset, trained.vocab_size(), config.run.seed)?;
        refuse_adapters_on_extra_parts(config, model.config.copy_head || model.config.token_match)?;
        let model = backend.adapt(model)?;
        bundle(model, tokenizer, files, name)
    } else {
        let path = &plain_model_path(Path::new(name))?;
        let (model, tokenizer) = memrl_policies::load_policy(base_backend, path).with_context(|| format!("loading policy.model {name}"))?;
        refuse_adapters_on_extra_parts(config, model.config.copy_head || model.config.token_match)?;
        let model = backend.adapt(model)?;
        let files = if path.is_dir() {
            TokenizerFiles::from_hf_dir(path)?
        } else {
            TokenizerFiles { tokenizer_json: tokenizer.to_hf_json()?, tokenizer_config: tokenizer.tokenizer_config_json() }
        };
        bundle(model, tokenizer, files, name)
    }
}

/// Loads the policy of a run checkpoint (written by [`PolicyBundle::save`]) for resuming.
pub fn load_policy_checkpoint<B: RunBackend>(config: &Config, dir: &Path, backend: B) -> anyhow::Result<PolicyBundle<B>> {
    check_supported(config)?;
    let shown = dir.display().to_string();
    let (model, tokenizer) = backend.load_checkpoint(dir).with_context(|| format!("loading the checkpoint model in {shown}"))?;
    let files = TokenizerFiles::from_hf_dir(dir).with_context(|| format!("reading the tokenizer files of {shown}"))?;
    bundle(model, tokenizer, files, &shown)
}

/// The policy settings `memrl train` does not run yet, refused up front with the key to change.
pub(crate) fn check_supported(config: &Config) -> anyhow::Result<()> {
    if config.policy.lora.enabled && config.policy.backend == BackendKind::Tch {
        bail!(
            "policy.lora.enabled = true with policy.backend = \"tch\": `memrl train` trains LoRA adapters on the burn backend \
             only for now (set policy.backend = \"burn\", or policy.lora.enabled = false)"
        );
    }
    check_backend(config)?;
    // A preset's head is known from its name; a checkpoint's when it is loaded (`build_policy`).
    if let Ok(preset) = TinyPreset::parse(&config.policy.model) {
        refuse_adapters_on_extra_parts(config, preset.has_copy_head() || preset.has_token_match())?;
    }
    if config.policy.tokenizer_spaces != SpaceHandling::Attached && !config.policy.model.starts_with("tiny-") {
        bail!(
            "policy.tokenizer_spaces = \"isolated\" applies to the tokenizer trained for a tiny preset; policy.model = {} brings its own tokenizer (remove the key)",
            config.policy.model
        );
    }
    Ok(())
}

/// LoRA adapts the decoder's projections only: a pointer head ([`memrl_policies::copy_head`])
/// or token matching ([`memrl_policies::token_match`]) would stay frozen at its initialisation,
/// so the combination is refused.
fn refuse_adapters_on_extra_parts(config: &Config, extra_parts: bool) -> anyhow::Result<()> {
    if config.policy.lora.enabled && extra_parts {
        bail!(
            "policy.lora.enabled = true with policy.model = {}, a model with a pointer head (`-copy`) or token matching (`-match`): \
             LoRA would leave those parts untrained (set policy.lora.enabled = false, or use a preset without `-copy` and `-match`)",
            config.policy.model
        );
    }
    Ok(())
}

fn bundle<B: RunBackend>(model: Llama<B>, tokenizer: Tokenizer, files: TokenizerFiles, name: &str) -> anyhow::Result<PolicyBundle<B>> {
    let stop_ids = turn_stop_ids(&tokenizer, &model.config, Path::new(name)).with_context(|| format!("policy {name}"))?;
    let tokenizer = Arc::new(tokenizer);
    let codec = TokenizerCodec::detect((*tokenizer).clone());
    Ok(PolicyBundle { model, tokenizer, codec, stop_ids: stop_ids.clone(), pad_id: stop_ids[0], tokenizer_files: files })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Device;

    #[test]
    fn a_tiny_preset_learns_its_tokenizer_from_a_dataset_environment() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/tests/fixtures/locomo_mini.json");
        let mut c = Config::default();
        c.env.name = "locomo".into();
        c.env.options.insert("data_path".into(), toml::Value::String(data.display().to_string()));
        // The fixture's conversations are not conv-26, so the default split leaves train empty.
        let e = environment_corpus(&c, 3).unwrap_err().to_string();
        assert!(e.contains("train split has no tasks") && e.contains("policy.model"), "{e}");
        // Renamed conv-26 (the train conversation), its few tasks are cycled, not indexed past the end.
        let dir = tempfile::tempdir().unwrap();
        let renamed = dir.path().join("locomo.json");
        std::fs::write(&renamed, std::fs::read_to_string(&data).unwrap().replacen("\"mini-1\"", "\"conv-26\"", 1)).unwrap();
        c.env.options.insert("data_path".into(), toml::Value::String(renamed.display().to_string()));
        let corpus = environment_corpus(&c, 3).unwrap();
        assert!(!corpus.is_empty());
    }

    #[test]
    fn settings_train_cannot_run_are_refused_naming_the_key() {
        assert!(check_supported(&Config::default()).is_ok());
        let mut c = Config::default();
        c.policy.backend = BackendKind::Tch;
        assert_eq!(check_supported(&c).is_ok(), cfg!(feature = "tch"));
        if !cfg!(feature = "tch") {
            assert!(check_supported(&c).unwrap_err().to_string().contains("policy.backend = \"tch\""));
        }
        let mut c = Config::default();
        c.policy.device = Device::Cuda(0);
        let e = check_supported(&c).unwrap_err().to_string();
        assert!(e.contains("policy.device = \"cuda:0\"") && e.contains("CPU only"), "{e}");
        let mut c = Config::default();
        c.policy.lora.enabled = true;
        assert!(check_supported(&c).is_ok());
        c.policy.backend = BackendKind::Tch;
        let e = check_supported(&c).unwrap_err().to_string();
        assert!(e.contains("policy.lora.enabled = true with policy.backend = \"tch\""), "{e}");
    }
}

//! The tokens that end an assistant turn, read from the model itself: the one rule every
//! generation path (training rollouts, SFT demonstrations, evaluation, the judge,
//! `memrl generate`) stops on.

use std::path::Path;

use crate::config::LlamaConfig;
use crate::error::{PolicyError, Result};
use crate::tokenizer::Tokenizer;

/// Turn-end tokens of the chat formats we know, in order of preference: ChatML's `<|im_end|>`
/// (Qwen, SmolLM2, the tiny presets) and Llama 3 Instruct's `<|eot_id|>` (whose first eos id is
/// `<|end_of_text|>`, not the turn end).
const TURN_END_TOKENS: [&str; 2] = ["<|im_end|>", "<|eot_id|>"];

/// The tokens that end an assistant turn of the model at `model_path`, the primary one first
/// (the scripted policies' turn end, and the padding id):
/// 1. the turn-end token its chat template writes (`<|im_end|>` or `<|eot_id|>`; without a
///    template, the first of these in the vocabulary; a template naming neither falls back to
///    the vocabulary too), else the first eos id;
/// 2. then every other eos id: `config`'s, those of `<model_path>/generation_config.json` (for
///    a model directory) and the tokenizer's `eos_token`, all of which end generation too.
///
/// Errors when there is none of these, or `generation_config.json` is unreadable.
pub fn turn_stop_ids(tokenizer: &Tokenizer, config: &LlamaConfig, model_path: &Path) -> Result<Vec<u32>> {
    let mut eos = config.eos_token_ids.clone();
    eos.extend(generation_config_eos(model_path)?);
    eos.extend(tokenizer.eos.as_ref().map(|(_, id)| *id));
    let template = tokenizer.chat_template.as_ref().map(|t| t.source());
    let ids = stop_ids_from(|t| tokenizer.token_to_id(t), template, &eos);
    if ids.is_empty() {
        return Err(PolicyError::Config {
            origin: model_path.display().to_string(),
            message: "no `<|im_end|>` or `<|eot_id|>` token and no eos_token_id to end turns with".into(),
        });
    }
    Ok(ids)
}

/// [`turn_stop_ids`] over its inputs: `token_to_id` looks a token up in the vocabulary,
/// `template` is the chat template's source, `eos_token_ids` every eos id in order.
fn stop_ids_from(token_to_id: impl Fn(&str) -> Option<u32>, template: Option<&str>, eos_token_ids: &[u32]) -> Vec<u32> {
    let written = |t: &&str| template.is_none_or(|source| source.contains(*t));
    let turn_end = TURN_END_TOKENS.into_iter().filter(written).find_map(&token_to_id).or_else(|| TURN_END_TOKENS.into_iter().find_map(&token_to_id));
    let mut ids: Vec<u32> = turn_end.into_iter().collect();
    for &id in eos_token_ids {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// The `eos_token_id` (one id or a list) of `<dir>/generation_config.json`; empty when `dir` is
/// not a directory or has no such file.
fn generation_config_eos(dir: &Path) -> Result<Vec<u32>> {
    let file = dir.join("generation_config.json");
    if !dir.is_dir() || !file.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&file).map_err(|source| PolicyError::Io { path: file.clone(), source })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|source| PolicyError::Json { path: file.clone(), source })?;
    let ids = match value.get("eos_token_id") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(list)) => list.iter().filter_map(serde_json::Value::as_u64).map(|x| x as u32).collect(),
        Some(v) => v.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
    };
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(names: &'static [(&'static str, u32)]) -> impl Fn(&str) -> Option<u32> {
        move |t: &str| names.iter().find(|(n, _)| *n == t).map(|&(_, id)| id)
    }

    #[test]
    fn turn_stop_prefers_the_templates_turn_end_then_eos() {
        // Qwen2.5: <|im_end|> (151645) first; generation_config's <|endoftext|> (151643) too.
        assert_eq!(stop_ids_from(vocab(&[("<|im_end|>", 151645)]), None, &[151645, 151643]), vec![151645, 151643]);
        // Llama 3 Instruct: config's first eos is <|end_of_text|> (128001); the turn ends at <|eot_id|>.
        let llama = vocab(&[("<|eot_id|>", 128009), ("<|end_of_text|>", 128001)]);
        assert_eq!(stop_ids_from(llama, None, &[128001, 128008, 128009]), vec![128009, 128001, 128008]);
        // A vocabulary with both: the one the chat template writes wins.
        let both = vocab(&[("<|im_end|>", 5), ("<|eot_id|>", 6)]);
        assert_eq!(stop_ids_from(&both, Some("{{ '<|eot_id|>' }}"), &[]), vec![6]);
        assert_eq!(stop_ids_from(&both, Some("{{ '<|im_end|>' }}"), &[]), vec![5]);
        assert_eq!(stop_ids_from(&both, Some("{{ eos_token }}"), &[]), vec![5], "a template naming neither: the vocabulary decides");
        // Neither: the eos ids in order.
        assert_eq!(stop_ids_from(vocab(&[]), None, &[7, 3]), vec![7, 3]);
        assert!(stop_ids_from(vocab(&[]), None, &[]).is_empty());
    }

    #[test]
    fn generation_config_eos_ids_end_turns_too() {
        let dir = tempfile::tempdir().unwrap();
        assert!(generation_config_eos(dir.path()).unwrap().is_empty());
        std::fs::write(dir.path().join("generation_config.json"), r#"{"bos_token_id": 1, "eos_token_id": [128001, 128009]}"#).unwrap();
        assert_eq!(generation_config_eos(dir.path()).unwrap(), vec![128001, 128009]);
        std::fs::write(dir.path().join("generation_config.json"), r#"{"eos_token_id": 2}"#).unwrap();
        assert_eq!(generation_config_eos(dir.path()).unwrap(), vec![2]);
        assert!(generation_config_eos(&dir.path().join("model.gguf")).unwrap().is_empty());
    }
}

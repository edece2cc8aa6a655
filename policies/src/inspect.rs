//! Generating from and tokenizing with a model file: the logic behind `memrl generate` and
//! `memrl tokenize` (the CLI only parses arguments and prints), tested here without the binary.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::backend::burn_flex::BurnBackend;
use crate::engine::{Engine, EngineConfig, FinishReason, GenerationRequest};
use crate::error::{PolicyError, Result};
use crate::load::{load_config, load_model, load_tokenizer};
use crate::sampling::SamplingParams;
use crate::turn_stop::turn_stop_ids;

/// What to feed the model.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    /// Raw text, tokenized as is (special tokens added as the tokenizer's post-processor says).
    Text(String),
    /// One user message rendered with the model's chat template (with the generation prompt).
    Chat(String),
}

/// Arguments of `memrl generate`.
#[derive(Debug, Clone)]
pub struct GenerateArgs {
    /// A model directory or `.gguf` file.
    pub model: PathBuf,
    /// The prompt.
    pub input: PromptInput,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Sampling temperature (0 = greedy).
    pub temperature: f32,
    /// Nucleus threshold (1 = off).
    pub top_p: f32,
    /// Top-k (0 = off).
    pub top_k: usize,
    /// Sampling seed.
    pub seed: u64,
}

/// Result of `memrl generate`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GenerateOutput {
    /// The text the prompt ids encode (after the chat template, if any).
    pub prompt_text: String,
    /// Prompt token ids.
    pub prompt_ids: Vec<u32>,
    /// Generated token ids.
    pub generated_ids: Vec<u32>,
    /// Log-prob of each generated token under the sampled distribution.
    pub sampled_logprobs: Vec<f32>,
    /// Log-prob of each generated token under the raw policy (T = 1).
    pub policy_logprobs: Vec<f32>,
    /// The generated text.
    pub text: String,
    /// Why generation stopped.
    pub finish_reason: String,
}

/// Result of `memrl tokenize`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenizeOutput {
    /// Token ids.
    pub ids: Vec<u32>,
    /// The token string of each id.
    pub tokens: Vec<String>,
}

/// Loads the model at `args.model` on burn-flex and generates.
pub fn generate(args: &GenerateArgs) -> Result<GenerateOutput> {
    let tokenizer = load_tokenizer(&args.model)?;
    let config = load_config(&args.model)?;
    let (prompt_text, prompt_ids) = match &args.input {
        PromptInput::Text(t) => (t.clone(), tokenizer.encode(t, true)?),
        PromptInput::Chat(t) => {
            let messages = [serde_json::json!({"role": "user", "content": t})];
            let text = tokenizer.apply_chat_template(&messages, None, true)?;
            let ids = tokenizer.encode(&text, false)?;
            (text, ids)
        }
    };
    if prompt_ids.is_empty() {
        return Err(PolicyError::InvalidRequest("the prompt encodes to no tokens".into()));
    }
    let model = Arc::new(load_model(BurnBackend::flex(), &args.model)?);
    let stop = turn_stop_ids(&tokenizer, &config, &args.model)?;
    let max_seq_len = (prompt_ids.len() + args.max_tokens + 1).min(config.max_position_embeddings);
    let mut engine = Engine::new(model, Some(tokenizer.clone()), EngineConfig { max_batch: 1, max_seq_len })?;
    let request = GenerationRequest {
        prompt_ids: prompt_ids.clone(),
        max_new_tokens: args.max_tokens,
        sampling: SamplingParams { temperature: args.temperature, top_p: args.top_p, top_k: args.top_k },
        seed: args.seed,
        stop_token_ids: stop,
        stop_strings: vec![],
    };
    let out = engine.generate_batch(vec![request])?.remove(0);
    let text = tokenizer.decode(&out.token_ids, true)?;
    let finish_reason = match &out.finish_reason {
        FinishReason::StopToken(t) => format!("stop_token:{t}"),
        FinishReason::StopString(s) => format!("stop_string:{s}"),
        FinishReason::Length => "length".into(),
        FinishReason::ContextFull => "context_full".into(),
    };
    Ok(GenerateOutput {
        prompt_text,
        prompt_ids,
        generated_ids: out.token_ids,
        sampled_logprobs: out.sampled_logprobs,
        policy_logprobs: out.policy_logprobs,
        text,
        finish_reason,
    })
}

/// Tokenizes `text` with the tokenizer of the model at `model`.
pub fn tokenize(model: &std::path::Path, text: &str) -> Result<TokenizeOutput> {
    let tokenizer = load_tokenizer(model)?;
    let ids = tokenizer.encode(text, true)?;
    let tokens = ids.iter().map(|&i| tokenizer.id_to_token(i).unwrap_or_default()).collect();
    Ok(TokenizeOutput { ids, tokens })
}

/// Human-readable rendering of a [`GenerateOutput`].
pub fn format_generate(out: &GenerateOutput) -> String {
    let fmt_lp = |v: &[f32]| v.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(" ");
    format!(
        "prompt ids ({}): {:?}\ngenerated ids ({}): {:?}\npolicy logprobs: {}\nsampled logprobs: {}\nfinish: {}\ntext: {}\n",
        out.prompt_ids.len(),
        out.prompt_ids,
        out.generated_ids.len(),
        out.generated_ids,
        fmt_lp(&out.policy_logprobs),
        fmt_lp(&out.sampled_logprobs),
        out.finish_reason,
        out.text
    )
}

/// Human-readable rendering of a [`TokenizeOutput`].
pub fn format_tokenize(out: &TokenizeOutput) -> String {
    let mut s = format!("{} tokens\n", out.ids.len());
    for (id, tok) in out.ids.iter().zip(&out.tokens) {
        s.push_str(&format!("{id}\t{tok:?}\n"));
    }
    s
}

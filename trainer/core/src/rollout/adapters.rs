//! The rollout's seams implemented over the policy: the tokenizer + chat template as a
//! [`ChatCodec`], the tokenizer as the environments' [`TokenCounter`], the generation engine as a
//! [`Generator`], and [`play_policy`], which plays episodes with a model through the engine.

use std::sync::Arc;

use memrl_envs::Env;
use memrl_envs::env::TaskId;
use memrl_envs::message::{ChatMessage, Role};
use memrl_envs::tokens::TokenCounter;
use memrl_policies::backend::Backend;
use memrl_policies::engine::{Engine, EngineConfig, FinishReason, Finished, GenerationRequest};
use memrl_policies::model::Llama;
use memrl_policies::sampling::SamplingParams;
use memrl_policies::tokenizer::Tokenizer;
use serde_json::{Value, json};

use super::context::{ChatCodec, CodecError};
use super::driver::{CompletionSource, GenOutput, GenRequest, Generator, PlayTimings, RolloutError, RolloutLimits, Trajectory, play_timed};

/// Counts tokens with the policy's tokenizer, so environment budgets match the model's.
pub struct TokenizerCounter(pub Arc<Tokenizer>);

impl TokenCounter for TokenizerCounter {
    fn count(&self, text: &str) -> usize {
        self.0.encode(text, false).map(|ids| ids.len()).unwrap_or_else(|_| text.len() / 4 + 1)
    }
}

/// A policy tokenizer with its chat template.
pub struct TokenizerCodec {
    tokenizer: Tokenizer,
    renders_tools: bool,
}

impl TokenizerCodec {
    /// Wraps `tokenizer`; `renders_tools` says whether its chat template renders the `tools`
    /// argument (SmolLM2's does not: the rollout then inlines tool descriptions).
    pub fn new(tokenizer: Tokenizer, renders_tools: bool) -> Self {
        Self { tokenizer, renders_tools }
    }

    /// Wraps `tokenizer`, reading from its chat template whether it renders `tools`
    /// ([`template_renders_tools`]; no template: it does not).
    pub fn detect(tokenizer: Tokenizer) -> Self {
        let renders_tools = tokenizer.chat_template.as_ref().is_some_and(|t| template_renders_tools(t.source()));
        Self::new(tokenizer, renders_tools)
    }

    /// The wrapped tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

/// Whether a chat template renders the `tools` argument: it refers to the variable `tools` (as
/// a whole word, e.g. `{%- if tools %}` in Qwen2.5's and Llama 3.1's templates). A template that
/// never names it (SmolLM2's, the tiny presets') ignores tools, and the rollout inlines their
/// descriptions into the system prompt instead.
pub fn template_renders_tools(source: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    source.match_indices("tools").any(|(i, w)| {
        let before = source[..i].chars().next_back();
        let after = source[i + w.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

impl ChatCodec for TokenizerCodec {
    fn render(&self, messages: &[ChatMessage], tools: &[Value], add_generation_prompt: bool) -> Result<String, CodecError> {
        let msgs: Vec<Value> = messages.iter().map(|m| json!({"role": role_name(m.role), "content": m.content})).collect();
        let tools = (self.renders_tools && !tools.is_empty()).then_some(tools);
        self.tokenizer.apply_chat_template(&msgs, tools, add_generation_prompt).map_err(|e| CodecError(e.to_string()))
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, CodecError> {
        self.tokenizer.encode(text, false).map_err(|e| CodecError(e.to_string()))
    }

    fn decode(&self, ids: &[u32]) -> Result<String, CodecError> {
        self.tokenizer.decode(ids, false).map_err(|e| CodecError(e.to_string()))
    }

    fn renders_tools(&self) -> bool {
        self.renders_tools
    }
}

/// The generation engine as the rollout's [`Generator`]: one sampling setting, one set of stop tokens.
pub struct EngineGenerator<B: Backend> {
    /// The engine (its model must be on a non-autodiff backend).
    pub engine: Engine<B>,
    /// Sampling for every request.
    pub sampling: SamplingParams,
    /// Tokens that end an assistant turn.
    pub stop_token_ids: Vec<u32>,
}

impl<B: Backend> EngineGenerator<B> {
    /// Generates one output per request, in request order, showing `on_step` what each engine
    /// step finished ([`Engine::generate_batch_observed`]).
    pub fn generate_observed(&mut self, requests: Vec<GenRequest>, on_step: impl FnMut(&[Finished])) -> Result<Vec<GenOutput>, RolloutError> {
        let reqs = requests
            .into_iter()
            .map(|r| GenerationRequest {
                prompt_ids: r.prompt_ids,
                max_new_tokens: r.max_new_tokens.max(1),
                sampling: self.sampling.clone(),
                seed: r.seed,
                stop_token_ids: self.stop_token_ids.clone(),
                stop_strings: Vec::new(),
            })
            .collect();
        let finished = self.engine.generate_batch_observed(reqs, on_step).map_err(|e| RolloutError::Generation(e.to_string()))?;
        Ok(finished
            .into_iter()
            .map(|f| GenOutput {
                stopped: matches!(f.finish_reason, FinishReason::StopToken(_)),
                ids: f.token_ids,
                sampled_logprobs: f.sampled_logprobs,
                policy_logprobs: f.policy_logprobs,
            })
            .collect())
    }
}

impl<B: Backend> Generator for EngineGenerator<B> {
    fn generate(&mut self, requests: Vec<GenRequest>) -> Result<Vec<GenOutput>, RolloutError> {
        self.generate_observed(requests, |_| {})
    }
}

/// Plays one episode per `(env, task, seed)` with `model` (an inference model: no autodiff)
/// behind a fresh generation engine batching up to 64 episodes, sampling with `sampling` and
/// ending turns at `stop_ids`.
pub fn play_policy<B: Backend>(
    model: Llama<B>,
    codec: &dyn ChatCodec,
    stop_ids: &[u32],
    envs: Vec<(Box<dyn Env>, TaskId, u64)>,
    sampling: SamplingParams,
    limits: RolloutLimits,
    seed: u64,
) -> Result<(Vec<Trajectory>, PlayTimings), RolloutError> {
    let engine = Engine::new(Arc::new(model), None, EngineConfig { max_batch: envs.len().clamp(1, 64), max_seq_len: limits.max_context_tokens })
        .map_err(|e| RolloutError::Generation(e.to_string()))?;
    let mut generator = EngineGenerator { engine, sampling, stop_token_ids: stop_ids.to_vec() };
    play_timed(envs, codec, CompletionSource::Model(&mut generator), limits, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_rendering_is_read_from_the_template() {
        let qwen = "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- for tool in tools %}{{ tool | tojson }}{%- endfor %}{%- endif %}";
        assert!(template_renders_tools(qwen));
        let smol = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'}}{% endfor %}";
        assert!(!template_renders_tools(smol));
        assert!(!template_renders_tools("{{ available_tools_text }} {{ tools_json }}"), "only the variable itself counts");
    }
}

//! A model-backed judge: the official judge prompts (LongMemEval's per type, Mem0's J prompt
//! for LoCoMo) sent as one user message to a local model, decoded greedily.
//!
//! The published numbers use GPT-4o (LongMemEval) and GPT-4o-mini (Mem0's J); a small local
//! judge follows the same protocol but its verdicts are only as good as the model, and every
//! report names the judge model it used.

use std::sync::{Arc, Mutex};

use memrl_datasets::scoring::longmemeval::{Judge, JudgeError};
use memrl_policies::BurnBackend;
use memrl_policies::engine::{Engine, EngineConfig, GenerationRequest};
use memrl_policies::model::Llama;
use memrl_policies::tokenizer::Tokenizer;
use serde_json::json;

/// Longest judge prompt + reply the judge engine accepts, in tokens (capped by the model's window).
pub const JUDGE_WINDOW: usize = 2048;

/// A judge over a local model.
pub struct EngineJudge {
    engine: Mutex<Engine<BurnBackend>>,
    tokenizer: Arc<Tokenizer>,
    stop_ids: Vec<u32>,
    window: usize,
    /// Where the model came from (for reports).
    pub model_name: String,
}

impl EngineJudge {
    /// A judge over `model` (non-autodiff backend) with `tokenizer`, generating up to
    /// `max_batch` prompts at once.
    pub fn new(
        model: Arc<Llama<BurnBackend>>,
        tokenizer: Arc<Tokenizer>,
        stop_ids: Vec<u32>,
        max_batch: usize,
        model_name: String,
    ) -> Result<Self, JudgeError> {
        let window = model.config.max_position_embeddings.min(JUDGE_WINDOW);
        let engine =
            Engine::new(model, None, EngineConfig { max_batch: max_batch.max(1), max_seq_len: window }).map_err(|e| JudgeError::Backend(e.to_string()))?;
        Ok(Self { engine: Mutex::new(engine), tokenizer, stop_ids, window, model_name })
    }

    /// The judge's replies to `prompts` (each one user message), greedy, at most
    /// `max_new_tokens` each, in order. A prompt too long for the judge's window is cut from
    /// the front of its text (the question and response are at the end of every prompt).
    pub fn judge_many(&self, prompts: &[String], max_new_tokens: usize) -> Result<Vec<String>, JudgeError> {
        let backend = |e: memrl_policies::PolicyError| JudgeError::Backend(e.to_string());
        let mut requests = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            let ids = self.tokenizer.encode_chat(&[json!({"role": "user", "content": prompt})], None, true).map_err(backend)?;
            let room = self.window.saturating_sub(max_new_tokens + 1).max(1);
            let ids = if ids.len() > room { ids[ids.len() - room..].to_vec() } else { ids };
            let mut request = GenerationRequest::greedy(ids, max_new_tokens.max(1));
            request.stop_token_ids = self.stop_ids.clone();
            requests.push(request);
        }
        let mut engine = self.engine.lock().map_err(|_| JudgeError::Backend("judge engine poisoned".into()))?;
        let finished = engine.generate_batch(requests).map_err(backend)?;
        finished
            .into_iter()
            .map(|f| {
                let ids: Vec<u32> = f.token_ids.into_iter().filter(|t| !self.stop_ids.contains(t)).collect();
                self.tokenizer.decode(&ids, true).map_err(backend)
            })
            .collect()
    }
}

impl Judge for EngineJudge {
    /// One prompt, at most [`memrl_datasets::scoring::longmemeval::JUDGE_MAX_TOKENS`] new tokens
    /// (LongMemEval's setting).
    fn judge(&self, prompt: &str) -> Result<String, JudgeError> {
        let mut replies = self.judge_many(&[prompt.to_string()], memrl_datasets::scoring::longmemeval::JUDGE_MAX_TOKENS)?;
        replies.pop().ok_or_else(|| JudgeError::Backend("no reply".into()))
    }
}

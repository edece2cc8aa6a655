//! The evaluation's generator: the policy engine behind the rollout's [`Generator`] seam,
//! greedy by default, counting generated tokens and reporting them on the progress bar as
//! each request finishes (the rollout's `EngineGenerator` reports only whole batches).

use std::collections::HashMap;
use std::time::Instant;

use indicatif::ProgressBar;
use memrl_policies::backend::Backend;
use memrl_policies::engine::{Engine, FinishReason, GenerationRequest};
use memrl_policies::sampling::SamplingParams;

use memrl_rl::rollout::driver::{GenOutput, GenRequest, Generator, RolloutError};

/// Engine + sampling + stop tokens, with token accounting.
pub struct EvalGenerator<B: Backend> {
    /// The engine.
    pub engine: Engine<B>,
    /// Sampling for every request (greedy in evaluations).
    pub sampling: SamplingParams,
    /// Tokens that end an assistant turn.
    pub stop_token_ids: Vec<u32>,
    /// Bar whose message shows generation throughput.
    pub bar: Option<ProgressBar>,
    /// Tokens generated so far.
    pub generated_tokens: u64,
    /// Requests finished so far.
    pub requests: u64,
    /// Seconds spent inside the engine.
    pub seconds: f64,
}

impl<B: Backend> EvalGenerator<B> {
    /// A generator over `engine`.
    pub fn new(engine: Engine<B>, sampling: SamplingParams, stop_token_ids: Vec<u32>, bar: Option<ProgressBar>) -> Self {
        Self { engine, sampling, stop_token_ids, bar, generated_tokens: 0, requests: 0, seconds: 0.0 }
    }
}

impl<B: Backend> Generator for EvalGenerator<B> {
    fn generate(&mut self, requests: Vec<GenRequest>) -> Result<Vec<GenOutput>, RolloutError> {
        let clock = Instant::now();
        let err = |e: memrl_policies::PolicyError| RolloutError::Generation(e.to_string());
        let mut ids = Vec::with_capacity(requests.len());
        for r in requests {
            ids.push(
                self.engine
                    .submit(GenerationRequest {
                        prompt_ids: r.prompt_ids,
                        max_new_tokens: r.max_new_tokens.max(1),
                        sampling: self.sampling.clone(),
                        seed: r.seed,
                        stop_token_ids: self.stop_token_ids.clone(),
                        stop_strings: Vec::new(),
                    })
                    .map_err(err)?,
            );
        }
        let mut done = HashMap::new();
        while done.len() < ids.len() {
            if !self.engine.has_work() {
                return Err(RolloutError::Generation("engine ran out of work before all requests finished".into()));
            }
            for f in self.engine.step().map_err(err)? {
                self.generated_tokens += f.token_ids.len() as u64;
                self.requests += 1;
                done.insert(f.id, f);
            }
            if let Some(bar) = &self.bar {
                let secs = self.seconds + clock.elapsed().as_secs_f64();
                bar.set_message(format!("{} generations, {} tokens, {:.1} tok/s", self.requests, self.generated_tokens, self.generated_tokens as f64 / secs.max(1e-9)));
            }
        }
        self.seconds += clock.elapsed().as_secs_f64();
        ids.iter()
            .map(|id| {
                let f = done.remove(id).ok_or_else(|| RolloutError::Generation(format!("request {id} did not finish")))?;
                Ok(GenOutput {
                    stopped: matches!(f.finish_reason, FinishReason::StopToken(_)),
                    ids: f.token_ids,
                    sampled_logprobs: f.sampled_logprobs,
                    policy_logprobs: f.policy_logprobs,
                })
            })
            .collect()
    }
}

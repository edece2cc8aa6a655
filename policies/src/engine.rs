//! The generation engine: continuous batching over a preallocated KV cache.
//!
//! Each running sequence owns one cache slot; active sequences are kept packed in slots
//! `0 .. n` so one decode step is a single batched forward of `n` rows (rows of different
//! lengths are handled by per-row positions and attention masks, not padding of the prompt).
//! New requests are admitted between steps (prefilled one by one into free slots), finished
//! ones leave and the last active row moves into the freed slot.
//!
//! Randomness: each request carries its own seed and a ChaCha8 stream, so its tokens do not
//! depend on which other requests share the batch (up to float rounding of batched matmuls).

use std::collections::VecDeque;
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::backend::Backend;
use crate::error::{PolicyError, Result};
use crate::model::{Llama, stack_rows};
use crate::sampling::{SamplingParams, sample_row};
use crate::tokenizer::Tokenizer;

/// Identifies a submitted request within one engine.
pub type RequestId = u64;

/// One generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    /// The exact prompt tokens (already chat-templated).
    pub prompt_ids: Vec<u32>,
    /// Upper bound on generated tokens.
    pub max_new_tokens: usize,
    /// Temperature / top-k / top-p.
    pub sampling: SamplingParams,
    /// Seed of this request's sampling stream.
    pub seed: u64,
    /// Generation stops after producing any of these tokens (the token is kept in the output).
    pub stop_token_ids: Vec<u32>,
    /// Generation stops once the decoded completion contains any of these strings (the tokens
    /// up to and including the one completing it are kept). Needs the engine's tokenizer.
    pub stop_strings: Vec<String>,
}

impl GenerationRequest {
    /// A greedy request with no stop conditions beyond `max_new_tokens`.
    pub fn greedy(prompt_ids: Vec<u32>, max_new_tokens: usize) -> GenerationRequest {
        GenerationRequest { prompt_ids, max_new_tokens, sampling: SamplingParams::greedy(), seed: 0, stop_token_ids: vec![], stop_strings: vec![] }
    }
}

/// Why a sequence stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// Produced this stop token.
    StopToken(u32),
    /// The completion contains this stop string.
    StopString(String),
    /// Reached `max_new_tokens`.
    Length,
    /// Reached the engine's context capacity.
    ContextFull,
}

/// A finished generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The id `submit` returned.
    pub id: RequestId,
    /// Generated tokens (stop token included when that ended it).
    pub token_ids: Vec<u32>,
    /// Per generated token: log-probability under the distribution it was sampled from
    /// (temperature, top-k, top-p applied; `0.0` for greedy). See [`crate::sampling`].
    pub sampled_logprobs: Vec<f32>,
    /// Per generated token: `log π(token)` of the raw policy (T = 1, no truncation): the
    /// rollout log-prob the learner's importance weights compare against.
    pub policy_logprobs: Vec<f32>,
    /// Why it stopped.
    pub finish_reason: FinishReason,
}

/// Engine sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Most sequences decoded together (cache slots).
    pub max_batch: usize,
    /// Longest sequence (prompt + generated) a slot holds.
    pub max_seq_len: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { max_batch: 8, max_seq_len: 2048 }
    }
}

/// A sequence being decoded.
struct Running {
    id: RequestId,
    request: GenerationRequest,
    generated: Vec<u32>,
    sampled_logprobs: Vec<f32>,
    policy_logprobs: Vec<f32>,
    /// Positions already in the cache.
    cached: usize,
    /// The pointer head's keys of the cached positions, row-major `[cached, hidden]` (empty for
    /// a model without one, [`crate::copy_head`]).
    copy_keys: Vec<f32>,
    rng: ChaCha8Rng,
}

impl Running {
    /// The tokens at the first `n` positions of this sequence: the prompt, then what it generated.
    fn fed_ids(&self, n: usize) -> Vec<u32> {
        let prompt = &self.request.prompt_ids;
        prompt.iter().chain(self.generated.iter()).take(n).copied().collect()
    }
}

/// Continuous-batching generator for one model.
pub struct Engine<B: Backend> {
    model: Arc<Llama<B>>,
    tokenizer: Option<Tokenizer>,
    config: EngineConfig,
    cache: B::KvCache,
    /// `running[i]` lives in cache slot `i`.
    running: Vec<Running>,
    queue: VecDeque<(RequestId, GenerationRequest)>,
    next_id: RequestId,
}

impl<B: Backend> Engine<B> {
    /// An engine over `model` (which must be on a non-autodiff backend). The tokenizer is
    /// needed only for stop strings.
    pub fn new(model: Arc<Llama<B>>, tokenizer: Option<Tokenizer>, config: EngineConfig) -> Result<Engine<B>> {
        if config.max_batch == 0 || config.max_seq_len < 2 {
            return Err(PolicyError::InvalidRequest(format!("engine needs max_batch ≥ 1 and max_seq_len ≥ 2, got {config:?}")));
        }
        if model.backend.is_autodiff() {
            return Err(PolicyError::InvalidRequest("generation needs a model on a non-autodiff backend".into()));
        }
        let max_pos = model.config.max_position_embeddings;
        if config.max_seq_len > max_pos {
            return Err(PolicyError::InvalidRequest(format!("max_seq_len {} exceeds the model's max_position_embeddings {max_pos}", config.max_seq_len)));
        }
        let cache = model.new_cache(config.max_batch, config.max_seq_len);
        Ok(Engine { model, tokenizer, config, cache, running: Vec::new(), queue: VecDeque::new(), next_id: 0 })
    }

    /// The model this engine runs.
    pub fn model(&self) -> &Arc<Llama<B>> {
        &self.model
    }

    /// Queues a request; it joins the running batch at the next [`Engine::step`].
    pub fn submit(&mut self, request: GenerationRequest) -> Result<RequestId> {
        request.sampling.validate()?;
        if request.prompt_ids.is_empty() {
            return Err(PolicyError::InvalidRequest("empty prompt".into()));
        }
        if request.prompt_ids.len() >= self.config.max_seq_len {
            return Err(PolicyError::InvalidRequest(format!(
                "prompt of {} tokens does not fit the engine's max_seq_len {}",
                request.prompt_ids.len(),
                self.config.max_seq_len
            )));
        }
        let vocab = self.model.config.vocab_size as u32;
        if let Some(bad) = request.prompt_ids.iter().find(|&&t| t >= vocab) {
            return Err(PolicyError::InvalidRequest(format!("prompt token {bad} is outside the vocabulary ({vocab})")));
        }
        if !request.stop_strings.is_empty() && self.tokenizer.is_none() {
            return Err(PolicyError::InvalidRequest("stop strings need an engine built with a tokenizer".into()));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push_back((id, request));
        Ok(id)
    }

    /// Whether any request is queued or running.
    pub fn has_work(&self) -> bool {
        !self.queue.is_empty() || !self.running.is_empty()
    }

    /// Admits queued requests into free slots (prefill + first token), then decodes one token
    /// for every running sequence. Returns the requests that finished during this step.
    pub fn step(&mut self) -> Result<Vec<Finished>> {
        let mut finished = Vec::new();
        let mut admitted = Vec::new();
        while self.running.len() + admitted.len() < self.config.max_batch {
            let Some((id, request)) = self.queue.pop_front() else { break };
            admitted.push(Running {
                id,
                rng: ChaCha8Rng::seed_from_u64(request.seed),
                generated: Vec::new(),
                sampled_logprobs: Vec::new(),
                policy_logprobs: Vec::new(),
                cached: 0,
                copy_keys: Vec::new(),
                request,
            });
        }
        for group in prefill_groups(admitted) {
            finished.extend(self.prefill(group)?);
        }
        if self.running.is_empty() {
            return Ok(finished);
        }
        // One batched decode step: each row feeds its last generated token.
        let n = self.running.len();
        let ids: Vec<u32> = self.running.iter().map(|r| *r.generated.last().expect("running rows have a token")).collect();
        let starts: Vec<usize> = self.running.iter().map(|r| r.cached).collect();
        let hidden = if self.model.needs_history() {
            let history: Vec<Vec<u32>> = self.running.iter().map(|r| r.fed_ids(r.cached)).collect();
            let history: Vec<&[u32]> = history.iter().map(Vec::as_slice).collect();
            self.model.forward_cached_with_history(&mut self.cache, 0, &ids, n, 1, &starts, &history)
        } else {
            self.model.forward_cached(&mut self.cache, 0, &ids, n, 1, &starts)
        };
        let mut rows = std::mem::take(&mut self.running);
        for run in rows.iter_mut() {
            run.cached += 1;
        }
        let logits = if self.model.copy_head.is_some() {
            let b = &self.model.backend;
            let flat = b.reshape(hidden, &[n, self.model.config.hidden_size]);
            let per_row: Vec<B::Tensor> = rows.iter_mut().enumerate().map(|(i, run)| self.pointer_logits(run, b.narrow(flat.clone(), 0, i, 1))).collect();
            stack_rows(b, per_row)
        } else {
            self.model.lm_head(hidden)
        };
        self.push_tokens(&mut rows, logits)?;
        self.running = rows;
        // Retire finished rows from the back so earlier slot indices stay valid.
        for slot in (0..self.running.len()).rev() {
            if let Some(f) = self.finish_if_done(slot) {
                finished.push(f);
            }
        }
        Ok(finished)
    }

    /// Prefills `group` (new sequences) in one right-padded forward into the slots after the
    /// running ones and samples each row's first token. Padding positions write garbage K/V past
    /// a row's length; it is never visible (causal mask) and is overwritten by later decode steps.
    fn prefill(&mut self, mut group: Vec<Running>) -> Result<Vec<Finished>> {
        let b = &self.model.backend;
        let first = self.running.len();
        let n = group.len();
        let seq = group.iter().map(|r| r.request.prompt_ids.len()).max().unwrap_or(0);
        let mut ids = vec![0u32; n * seq];
        for (r, run) in group.iter().enumerate() {
            let p = &run.request.prompt_ids;
            ids[r * seq..r * seq + p.len()].copy_from_slice(p);
        }
        let hidden = self.model.forward_cached(&mut self.cache, first, &ids, n, seq, &vec![0; n]);
        for run in group.iter_mut() {
            run.cached = run.request.prompt_ids.len();
        }
        let logits = if self.model.copy_head.is_some() {
            // The pointer head needs every prompt position's key, not only the last state.
            let d = self.model.config.hidden_size;
            let per_row: Vec<B::Tensor> = group
                .iter_mut()
                .enumerate()
                .map(|(r, run)| {
                    let len = run.request.prompt_ids.len();
                    let row = b.reshape(b.narrow(b.narrow(hidden.clone(), 0, r, 1), 1, 0, len), &[len, d]);
                    self.pointer_logits(run, row)
                })
                .collect();
            stack_rows(b, per_row)
        } else {
            // Each row's last real position.
            let last: Vec<B::Tensor> =
                group.iter().enumerate().map(|(r, run)| b.narrow(b.narrow(hidden.clone(), 0, r, 1), 1, run.request.prompt_ids.len() - 1, 1)).collect();
            self.model.lm_head(stack_rows(b, last))
        };
        self.push_tokens(&mut group, logits)?;
        self.running.extend(group);
        let mut finished = Vec::new();
        for slot in (first..self.running.len()).rev() {
            if let Some(f) = self.finish_if_done(slot) {
                finished.push(f);
            }
        }
        Ok(finished)
    }

    /// The next-token logits `[1, vocab]` of `run` on a model with a pointer head, given the
    /// final-normed hidden states `[k, hidden]` of its `k` newest positions (already counted in
    /// `run.cached`): their keys join the row's, and the last one is the query.
    fn pointer_logits(&self, run: &mut Running, hidden: B::Tensor) -> B::Tensor {
        let b = &self.model.backend;
        let head = self.model.copy_head.as_ref().expect("pointer_logits: the model has a pointer head");
        let (k, d) = (b.shape(&hidden)[0], self.model.config.hidden_size);
        run.copy_keys.extend(b.to_vec(&head.keys(b, hidden.clone())));
        let len = run.copy_keys.len() / d;
        debug_assert_eq!(len, run.cached, "one key per cached position");
        let keys = b.tensor(run.copy_keys.clone(), &[len, d]);
        let query = b.narrow(hidden, 0, k - 1, 1);
        head.mix(b, query.clone(), self.model.lm_head(query), keys, &run.fed_ids(len), len - 1)
    }

    /// Samples the next token of each of `rows` from its row of `logits` (`[rows, 1, V]`). When
    /// every row decodes greedily the choice is made where the logits are
    /// ([`Backend::greedy_rows`]: on a GPU only the picks come back to the host); otherwise the
    /// logits are copied to the host and each row sampled there.
    fn push_tokens(&self, rows: &mut [Running], logits: B::Tensor) -> Result<()> {
        let b = &self.model.backend;
        let v = self.model.config.vocab_size;
        if rows.iter().all(|r| r.request.sampling.temperature == 0.0) {
            let picks = b.greedy_rows(b.reshape(logits, &[rows.len(), v]));
            for (run, (token, logprob)) in rows.iter_mut().zip(picks) {
                run.generated.push(token);
                run.sampled_logprobs.push(0.0);
                run.policy_logprobs.push(logprob);
            }
            return Ok(());
        }
        let host = b.to_vec(&logits);
        for (i, run) in rows.iter_mut().enumerate() {
            self.push_token(run, &host[i * v..(i + 1) * v])?;
        }
        Ok(())
    }

    /// Samples the next token of `run` from its logits row.
    fn push_token(&self, run: &mut Running, logits: &[f32]) -> Result<()> {
        if logits.len() != self.model.config.vocab_size {
            return Err(PolicyError::InvalidRequest(format!("logits row of {} values", logits.len())));
        }
        let s = sample_row(logits, &run.request.sampling, &mut run.rng);
        run.generated.push(s.token);
        run.sampled_logprobs.push(s.sampled_logprob);
        run.policy_logprobs.push(s.policy_logprob);
        Ok(())
    }

    /// Why `run` should stop now, if it should.
    fn stop_reason(&self, run: &Running) -> Option<FinishReason> {
        let last = *run.generated.last()?;
        if run.request.stop_token_ids.contains(&last) {
            return Some(FinishReason::StopToken(last));
        }
        if !run.request.stop_strings.is_empty() {
            if let Some(tok) = &self.tokenizer {
                // Decoding the whole completion keeps multi-token and byte-split strings exact.
                let text = tok.decode(&run.generated, false).unwrap_or_default();
                if let Some(s) = run.request.stop_strings.iter().find(|s| text.contains(s.as_str())) {
                    return Some(FinishReason::StopString(s.clone()));
                }
            }
        }
        if run.generated.len() >= run.request.max_new_tokens {
            return Some(FinishReason::Length);
        }
        // The next step would write position `cached`, which must fit the cache.
        if run.cached >= self.config.max_seq_len {
            return Some(FinishReason::ContextFull);
        }
        None
    }

    /// Removes the sequence in `slot` if it is done, moving the last running row into its slot.
    fn finish_if_done(&mut self, slot: usize) -> Option<Finished> {
        let reason = self.stop_reason(&self.running[slot])?;
        let last = self.running.len() - 1;
        if slot != last {
            let len = self.running[last].cached;
            self.model.backend.kv_move(&mut self.cache, last, slot, len);
        }
        let run = self.running.swap_remove(slot);
        Some(Finished {
            id: run.id,
            token_ids: run.generated,
            sampled_logprobs: run.sampled_logprobs,
            policy_logprobs: run.policy_logprobs,
            finish_reason: reason,
        })
    }

    /// Runs `requests` to completion and returns their results in request order.
    pub fn generate_batch(&mut self, requests: Vec<GenerationRequest>) -> Result<Vec<Finished>> {
        self.generate_batch_observed(requests, |_| {})
    }

    /// [`Engine::generate_batch`], showing `on_step` the requests each engine step finished
    /// (none, some or all; for progress reports) as they finish.
    pub fn generate_batch_observed(&mut self, requests: Vec<GenerationRequest>, mut on_step: impl FnMut(&[Finished])) -> Result<Vec<Finished>> {
        let ids: Vec<RequestId> = requests.into_iter().map(|r| self.submit(r)).collect::<Result<_>>()?;
        let mut done: std::collections::HashMap<RequestId, Finished> = std::collections::HashMap::new();
        while ids.iter().any(|id| !done.contains_key(id)) {
            if !self.has_work() {
                return Err(PolicyError::InvalidRequest("engine ran out of work before all requests finished".into()));
            }
            let finished = self.step()?;
            on_step(&finished);
            for f in finished {
                done.insert(f.id, f);
            }
        }
        Ok(ids.iter().map(|id| done.remove(id).expect("finished")).collect())
    }
}

/// Splits newly admitted sequences into prefill batches: consecutive prompts share one padded
/// forward while padding stays under half of the batch's positions (a 10-token prompt is not
/// padded to 1000).
fn prefill_groups(admitted: Vec<Running>) -> Vec<Vec<Running>> {
    let mut groups: Vec<Vec<Running>> = Vec::new();
    for run in admitted {
        let len = run.request.prompt_ids.len();
        let fits = groups.last().is_some_and(|g| {
            let max = g.iter().map(|r| r.request.prompt_ids.len()).max().unwrap_or(0).max(len);
            let real: usize = g.iter().map(|r| r.request.prompt_ids.len()).sum::<usize>() + len;
            max * (g.len() + 1) <= 2 * real
        });
        match groups.last_mut() {
            Some(g) if fits => g.push(run),
            _ => groups.push(vec![run]),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(len: usize) -> Running {
        Running {
            id: 0,
            request: GenerationRequest::greedy(vec![1; len], 1),
            generated: vec![],
            sampled_logprobs: vec![],
            policy_logprobs: vec![],
            cached: 0,
            copy_keys: vec![],
            rng: ChaCha8Rng::seed_from_u64(0),
        }
    }

    #[test]
    fn prefill_groups_limit_padding() {
        let lens = |g: &Vec<Vec<Running>>| -> Vec<Vec<usize>> { g.iter().map(|x| x.iter().map(|r| r.request.prompt_ids.len()).collect()).collect() };
        let g = prefill_groups(vec![run(30), run(40), run(35)]);
        assert_eq!(lens(&g), vec![vec![30, 40, 35]]);
        // A long prompt after short ones would mostly pad: it starts a new group.
        let g = prefill_groups(vec![run(10), run(12), run(1000), run(900)]);
        assert_eq!(lens(&g), vec![vec![10, 12], vec![1000, 900]]);
        assert!(prefill_groups(vec![]).is_empty());
    }
}

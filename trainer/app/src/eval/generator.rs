//! The evaluation's generator: the rollout's engine generator ([`EngineGenerator`]), greedy by
//! default, counting generated tokens and reporting them on the progress bar after every engine
//! step (the training rollout reports only whole batches).

use std::time::Instant;

use indicatif::ProgressBar;
use memrl_policies::backend::Backend;
use memrl_policies::engine::Engine;
use memrl_policies::sampling::SamplingParams;

use memrl_rl::rollout::adapters::EngineGenerator;
use memrl_rl::rollout::driver::{GenOutput, GenRequest, Generator, RolloutError};

/// Engine + sampling + stop tokens, with token accounting.
pub struct EvalGenerator<B: Backend> {
    /// The engine with its sampling and stop tokens.
    pub generator: EngineGenerator<B>,
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
        Self { generator: EngineGenerator { engine, sampling, stop_token_ids }, bar, generated_tokens: 0, requests: 0, seconds: 0.0 }
    }
}

impl<B: Backend> Generator for EvalGenerator<B> {
    fn generate(&mut self, requests: Vec<GenRequest>) -> Result<Vec<GenOutput>, RolloutError> {
        let clock = Instant::now();
        let Self { generator, bar, generated_tokens, requests: finished_requests, seconds } = self;
        let outputs = generator.generate_observed(requests, |finished| {
            for f in finished {
                *generated_tokens += f.token_ids.len() as u64;
                *finished_requests += 1;
            }
            if let Some(bar) = bar {
                let secs = *seconds + clock.elapsed().as_secs_f64();
                bar.set_message(format!(
                    "{} generations, {} tokens, {:.1} tok/s",
                    finished_requests,
                    generated_tokens,
                    *generated_tokens as f64 / secs.max(1e-9)
                ));
            }
        });
        self.seconds += clock.elapsed().as_secs_f64();
        outputs
    }
}

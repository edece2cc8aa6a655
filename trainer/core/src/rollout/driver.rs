//! Plays a batch of episodes in lockstep and records every turn's exact tokens.
//!
//! Each tick, every episode that is still running contributes one generation request; the
//! requests go to the generator together, in episode order, so the batch the model sees never
//! depends on thread timing (that is what keeps CPU runs bit-identical across thread counts).
//! The environments then step in parallel (rayon) on the decoded completions. Completions come
//! either from a model ([`Generator`]) or from an environment's scripted policy (oracle,
//! heuristic, ...), tokenised: the latter gives SFT demonstrations with the same token layout.
//! The environment side of each episode is [`EpisodeRun`], the one episode runner `memrl env
//! play` and the scripted evaluation baselines use too (one at a time, without tokens).

use memrl_envs::Env;
use memrl_envs::env::{EnvError, EpisodeEnd, ScriptedKind, TaskId};
use memrl_envs::rollout::EpisodeRun;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::context::{ChatCodec, CodecError, ContextStep, ContextTracker};

/// One generation request: a context and how much to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRequest {
    /// Exact context token ids.
    pub prompt_ids: Vec<u32>,
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// Seed of this request's sampling stream (derived from the run seed and its position).
    pub seed: u64,
}

/// What the generator returns for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenOutput {
    /// Sampled token ids, including the stop token when generation stopped on one.
    pub ids: Vec<u32>,
    /// Log-prob of each sampled token under the distribution it was sampled from.
    pub sampled_logprobs: Vec<f32>,
    /// Log-prob of each sampled token under the untempered policy (temperature 1): the
    /// rollout log-prob the learner's importance weights compare against.
    pub policy_logprobs: Vec<f32>,
    /// True when the last id is a stop token (else the length limit was hit).
    pub stopped: bool,
}

/// A batched text generator over token ids (the policy's engine, in training).
pub trait Generator {
    /// Generates one output per request, in request order.
    fn generate(&mut self, requests: Vec<GenRequest>) -> Result<Vec<GenOutput>, RolloutError>;
}

/// Where completions come from.
pub enum CompletionSource<'a> {
    /// A model.
    Model(&'a mut dyn Generator),
    /// An environment's scripted policy, tokenised and terminated with `stop_id`.
    Scripted {
        /// Which scripted policy.
        kind: ScriptedKind,
        /// The token that ends an assistant turn (e.g. `<|im_end|>`).
        stop_id: u32,
    },
}

/// A rollout failure.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The environment failed.
    #[error("environment")]
    Env(#[from] EnvError),
    /// Rendering or tokenising failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The generator failed.
    #[error("generation: {0}")]
    Generation(String),
}

/// One policy turn as the trainer needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnSample {
    /// The exact context the completion was generated from.
    pub context_ids: Vec<u32>,
    /// How the context was obtained from the previous turn's.
    pub context_step: ContextStep,
    /// The completion's token ids (stop token included when present).
    pub completion_ids: Vec<u32>,
    /// Sampled-distribution log-probs of the completion (0 for scripted completions).
    pub sampled_logprobs: Vec<f32>,
    /// Untempered policy log-probs of the completion (0 for scripted completions).
    pub policy_logprobs: Vec<f32>,
    /// The completion as the environment received it (stop token removed).
    pub text: String,
}

/// A finished (or cut-off) episode with its turns.
#[derive(Debug, Clone)]
pub struct Trajectory {
    /// Position in the batch.
    pub index: usize,
    /// The task played.
    pub task: TaskId,
    /// The policy turns, in order.
    pub turns: Vec<TurnSample>,
    /// The environment's verdict, or `None` when the rollout cut the episode off.
    pub end: Option<EpisodeEnd>,
    /// True when the episode hit a rollout limit (max turns or max context) before ending.
    pub truncated: bool,
}

impl Trajectory {
    /// The reward, 0 for a cut-off episode.
    pub fn reward(&self) -> f64 {
        self.end.as_ref().map_or(0.0, |e| e.reward)
    }
}

/// Limits the rollout imposes on top of the environment's own budgets.
#[derive(Debug, Clone, Copy)]
pub struct RolloutLimits {
    /// Most policy turns per episode.
    pub max_turns: usize,
    /// Most new tokens per turn (the env's per-turn budget applies too: the smaller wins).
    pub max_new_tokens: usize,
    /// Longest context the model accepts, in tokens (prompt + completion).
    pub max_context_tokens: usize,
}

/// Derives a request's seed from the batch seed, the episode and the turn (SplitMix64 finaliser).
pub fn request_seed(batch_seed: u64, episode: usize, turn: usize) -> u64 {
    let mut z = batch_seed ^ (episode as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (turn as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Episode {
    env: Box<dyn Env>,
    tracker: ContextTracker,
    /// The environment side of the episode: its current turn, and its verdict once it ends.
    run: EpisodeRun,
    /// How the current context was obtained.
    context_step: ContextStep,
    out: Trajectory,
}

/// Computes the exact context of the episode's current turn, inlining the tool descriptions
/// into the system prompt when the chat template cannot render `tools`.
fn advance_context(codec: &dyn ChatCodec, ep: &mut Episode) -> Result<(), RolloutError> {
    let turn = ep.run.turn().expect("called on a running episode");
    ep.context_step = if codec.renders_tools() {
        ep.tracker.next(codec, &turn.messages, &turn.tools, turn.edit.is_fracture())?
    } else {
        ep.tracker.next(codec, &turn.messages_with_inline_tools(), &[], turn.edit.is_fracture())?
    };
    Ok(())
}

/// Where a [`play_timed`] call spent its wall time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlayTimings {
    /// Inside the generator (the model's prefill and decode, or the scripted policy).
    pub generate_seconds: f64,
    /// Environment resets and steps plus the context tracking (chat rendering, tokenisation).
    pub env_seconds: f64,
}

/// Plays one episode per `(env, task, seed)` to the end, in lockstep, and returns the
/// trajectories in input order.
pub fn play(
    envs: Vec<(Box<dyn Env>, TaskId, u64)>,
    codec: &dyn ChatCodec,
    source: CompletionSource<'_>,
    limits: RolloutLimits,
    batch_seed: u64,
) -> Result<Vec<Trajectory>, RolloutError> {
    play_timed(envs, codec, source, limits, batch_seed).map(|(t, _)| t)
}

/// [`play`], also reporting where the time went.
pub fn play_timed(
    envs: Vec<(Box<dyn Env>, TaskId, u64)>,
    codec: &dyn ChatCodec,
    mut source: CompletionSource<'_>,
    limits: RolloutLimits,
    batch_seed: u64,
) -> Result<(Vec<Trajectory>, PlayTimings), RolloutError> {
    let mut timings = PlayTimings::default();
    let clock = std::time::Instant::now();
    let mut episodes: Vec<Episode> = envs
        .into_par_iter()
        .enumerate()
        .map(|(index, (mut env, task, seed))| -> Result<Episode, RolloutError> {
            let run = EpisodeRun::start(env.as_mut(), task, seed, false)?;
            let mut ep = Episode {
                env,
                tracker: ContextTracker::new(),
                run,
                context_step: ContextStep::Initial,
                out: Trajectory { index, task, turns: Vec::new(), end: None, truncated: false },
            };
            advance_context(codec, &mut ep)?;
            Ok(ep)
        })
        .collect::<Result<_, _>>()?;
    timings.env_seconds += clock.elapsed().as_secs_f64();

    for tick in 0..limits.max_turns {
        let active: Vec<usize> = (0..episodes.len()).filter(|&i| episodes[i].run.turn().is_some()).collect();
        if active.is_empty() {
            break;
        }
        // Contexts that no longer fit end the episode as truncated.
        let mut runnable = Vec::with_capacity(active.len());
        for &i in &active {
            let ep = &mut episodes[i];
            if ep.tracker.ids().len() + 1 >= limits.max_context_tokens {
                ep.run.cut_off();
                ep.out.truncated = true;
            } else {
                runnable.push(i);
            }
        }
        let clock = std::time::Instant::now();
        let outputs: Vec<GenOutput> = match &mut source {
            CompletionSource::Model(generator) => {
                let requests = runnable
                    .iter()
                    .map(|&i| {
                        let ep = &episodes[i];
                        let room = limits.max_context_tokens - ep.tracker.ids().len();
                        let budget = ep.run.turn().map_or(limits.max_new_tokens, |t| t.max_new_tokens);
                        GenRequest {
                            prompt_ids: ep.tracker.ids().to_vec(),
                            max_new_tokens: budget.min(limits.max_new_tokens).min(room),
                            seed: request_seed(batch_seed, i, tick),
                        }
                    })
                    .collect();
                let outputs = generator.generate(requests)?;
                if outputs.len() != runnable.len() {
                    return Err(RolloutError::Generation(format!("{} outputs for {} requests", outputs.len(), runnable.len())));
                }
                outputs
            }
            CompletionSource::Scripted { kind, stop_id } => runnable
                .iter()
                .map(|&i| -> Result<GenOutput, RolloutError> {
                    let ep = &episodes[i];
                    let mut rng = ChaCha8Rng::seed_from_u64(request_seed(batch_seed, i, tick));
                    let text = ep.env.scripted(*kind, &mut rng)?;
                    let mut ids = codec.encode(&text)?;
                    ids.push(*stop_id);
                    let n = ids.len();
                    Ok(GenOutput { ids, sampled_logprobs: vec![0.0; n], policy_logprobs: vec![0.0; n], stopped: true })
                })
                .collect::<Result<_, _>>()?,
        };
        timings.generate_seconds += clock.elapsed().as_secs_f64();
        let clock = std::time::Instant::now();

        let mut slots: Vec<Option<(&mut Episode, GenOutput)>> = Vec::with_capacity(runnable.len());
        {
            let mut outputs = outputs.into_iter();
            let mut wanted = runnable.iter().peekable();
            for (i, ep) in episodes.iter_mut().enumerate() {
                if wanted.peek() == Some(&&i) {
                    wanted.next();
                    slots.push(Some((ep, outputs.next().expect("one output per request"))));
                }
            }
        }
        slots.into_par_iter().try_for_each(|slot| -> Result<(), RolloutError> {
            let (ep, gen_out) = slot.expect("filled above");
            let context_ids = ep.tracker.ids().to_vec();
            let context_step = ep.context_step;
            ep.tracker.record_completion(codec, &gen_out.ids)?;
            let visible = if gen_out.stopped { &gen_out.ids[..gen_out.ids.len() - 1] } else { &gen_out.ids[..] };
            let text = codec.decode(visible)?;
            ep.run.play_turn(ep.env.as_mut(), &text)?;
            let running = ep.run.turn().is_some();
            ep.out.turns.push(TurnSample {
                context_ids,
                context_step,
                completion_ids: gen_out.ids,
                sampled_logprobs: gen_out.sampled_logprobs,
                policy_logprobs: gen_out.policy_logprobs,
                text,
            });
            if running {
                advance_context(codec, ep)?;
            }
            Ok(())
        })?;
        timings.env_seconds += clock.elapsed().as_secs_f64();
    }
    let trajectories = episodes
        .into_iter()
        .map(|mut ep| {
            if ep.run.cut_off() {
                ep.out.truncated = true;
            }
            ep.out.end = ep.run.into_result().map(|r| r.end);
            ep.out
        })
        .collect();
    Ok((trajectories, timings))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use memrl_envs::env::Split;
    use memrl_envs::registry::build_env;
    use memrl_envs::tokens::WhitespaceCounter;

    use super::*;
    use crate::rollout::context::tests::ToyCodec;

    const STOP: u32 = 257;

    fn batch(n: usize) -> Vec<(Box<dyn Env>, TaskId, u64)> {
        (0..n)
            .map(|i| {
                let env = build_env("facts", serde_json::Value::Null, Arc::new(WhitespaceCounter)).unwrap();
                (env, TaskId { split: Split::Train, index: i as u64 }, 100 + i as u64)
            })
            .collect()
    }

    fn limits() -> RolloutLimits {
        RolloutLimits { max_turns: 64, max_new_tokens: 100_000, max_context_tokens: 1_000_000 }
    }

    #[test]
    fn scripted_oracle_plays_to_the_end_with_exact_contexts() {
        let codec = ToyCodec;
        let source = CompletionSource::Scripted { kind: ScriptedKind::Oracle, stop_id: STOP };
        let trajs = play(batch(3), &codec, source, limits(), 7).unwrap();
        assert_eq!(trajs.len(), 3);
        for t in &trajs {
            assert!(!t.truncated);
            assert!(t.reward() >= 0.99, "oracle reward {}", t.reward());
            assert!(t.turns.len() >= 2);
            for (a, b) in t.turns.iter().zip(&t.turns[1..]) {
                assert_eq!(*a.completion_ids.last().unwrap(), STOP);
                if b.context_step == ContextStep::Extended {
                    let mut prefix = a.context_ids.clone();
                    prefix.extend_from_slice(&a.completion_ids);
                    assert!(b.context_ids.starts_with(&prefix), "extended context keeps the exact previous tokens");
                }
            }
        }
    }

    #[test]
    fn same_seed_same_trajectories() {
        let codec = ToyCodec;
        let run = || {
            let source = CompletionSource::Scripted { kind: ScriptedKind::Heuristic, stop_id: STOP };
            play(batch(4), &codec, source, limits(), 11).unwrap()
        };
        let (a, b) = (run(), run());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.turns, y.turns);
            assert_eq!(x.reward(), y.reward());
        }
    }

    #[test]
    fn context_limit_truncates() {
        let codec = ToyCodec;
        let source = CompletionSource::Scripted { kind: ScriptedKind::Oracle, stop_id: STOP };
        let tight = RolloutLimits { max_context_tokens: 200, ..limits() };
        let trajs = play(batch(2), &codec, source, tight, 7).unwrap();
        assert!(trajs.iter().all(|t| t.truncated && t.end.is_none() && t.reward() == 0.0));
    }
}

//! Playing episodes: [`EpisodeRun`], one episode turn by turn (with fracture counts and an
//! optional trace), [`run_episode`], which plays one to the end with a text policy, and the
//! fracture test ([`extends`], [`ids_extend`]).

use crate::env::{ActionLog, ContextEdit, Env, EnvError, EpisodeEnd, Next, TaskId, Turn};
use crate::message::{ChatMessage, Role};
use crate::policy::TextPolicy;
use serde::Serialize;

/// One turn of a trace (one JSONL line).
#[derive(Debug, Clone, Serialize)]
pub struct TraceTurn {
    /// Task.
    pub task: TaskId,
    /// Episode seed.
    pub seed: u64,
    /// Turn number.
    pub turn: u32,
    /// How the context relates to the previous turn.
    pub edit: ContextEdit,
    /// Working-context tokens.
    pub context_tokens: usize,
    /// The context shown.
    pub context: Vec<ChatMessage>,
    /// The policy's completion.
    pub completion: String,
    /// Calls executed.
    pub actions: Vec<ActionLog>,
    /// Observation fed back.
    pub observation: String,
    /// Penalty charged this turn.
    pub penalty: f64,
    /// Reward, on the last turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reward: Option<f64>,
}

/// Result of one episode.
#[derive(Debug, Clone, Serialize)]
pub struct EpisodeResult {
    /// Task.
    pub task: TaskId,
    /// Episode seed.
    pub seed: u64,
    /// Final reward and breakdown.
    pub end: EpisodeEnd,
    /// Turns whose context was not an extension of the previous context + completion,
    /// checked message by message (not taken from the env's own label).
    pub fractures: u32,
    /// Turns the env labelled as edits (pruned/summarized/overwritten/rebuilt).
    pub labelled_edits: u32,
    /// Trace, if asked for.
    #[serde(skip)]
    pub trace: Vec<TraceTurn>,
}

/// True when the context `next` starts with the previous context `prev` followed by its
/// `completion`, compared with `same`: the turn only appended. Anything else is a fracture.
/// The one fracture test: over chat messages here ([`extends`]) and over token ids in the RL
/// core's segmentation ([`ids_extend`]).
fn extends_by<T>(prev: &[T], completion: &[T], next: &[T], same: impl Fn(&T, &T) -> bool) -> bool {
    let end = prev.len() + completion.len();
    next.len() >= end && prev.iter().chain(completion).zip(&next[..end]).all(|(a, b)| same(a, b))
}

/// True when `next` starts with `prev` followed by the assistant `completion` (messages compared
/// by role and content).
pub fn extends(prev: &[ChatMessage], completion: &str, next: &[ChatMessage]) -> bool {
    let completion = [ChatMessage::new(Role::Assistant, completion)];
    extends_by(prev, &completion, next, |a, b| a.role == b.role && a.content == b.content)
}

/// True when the context token ids `next` start with `prev` followed by the `completion` ids.
pub fn ids_extend(prev: &[u32], completion: &[u32], next: &[u32]) -> bool {
    extends_by(prev, completion, next, |a, b| a == b)
}

/// One episode in play: the current turn, the verdict once it ends, the fracture counts and
/// (if asked for) the trace. The one implementation of playing an episode turn by turn: the
/// sequential [`run_episode`] (model-free play, scripted baselines) and the RL core's lockstep
/// rollout driver (completions from a model, a batch of episodes at a time) both advance it.
#[derive(Debug, Clone)]
pub struct EpisodeRun {
    task: TaskId,
    seed: u64,
    /// The turn awaiting a completion; `None` once the episode ended or was cut off.
    turn: Option<Turn>,
    end: Option<EpisodeEnd>,
    fractures: u32,
    labelled_edits: u32,
    trace: Option<Vec<TraceTurn>>,
}

impl EpisodeRun {
    /// Resets `env` to `task` with `seed`; records a trace when `trace` is set.
    pub fn start(env: &mut dyn Env, task: TaskId, seed: u64, trace: bool) -> Result<Self, EnvError> {
        let turn = env.reset(task, seed)?;
        Ok(Self { task, seed, turn: Some(turn), end: None, fractures: 0, labelled_edits: 0, trace: trace.then(Vec::new) })
    }

    /// The turn awaiting a completion, or `None` once the episode ended or was cut off.
    pub fn turn(&self) -> Option<&Turn> {
        self.turn.as_ref()
    }

    /// The environment's verdict, once the episode ended.
    pub fn end(&self) -> Option<&EpisodeEnd> {
        self.end.as_ref()
    }

    /// Applies `completion` to the current turn: steps `env`, counts a fracture when the next
    /// context does not extend this one plus the completion, and records the trace line.
    /// Errors when the episode is not running.
    pub fn play_turn(&mut self, env: &mut dyn Env, completion: &str) -> Result<(), EnvError> {
        let turn = self.turn.take().ok_or(EnvError::Finished)?;
        let step = env.step(completion)?;
        let mut line = self.trace.is_some().then(|| TraceTurn {
            task: self.task,
            seed: self.seed,
            turn: turn.index,
            edit: turn.edit,
            context_tokens: turn.context_tokens,
            context: turn.messages.clone(),
            completion: completion.to_string(),
            actions: step.actions.clone(),
            observation: step.observation.clone(),
            penalty: step.penalty,
            reward: None,
        });
        match step.next {
            Next::Continue(next) => {
                if !extends(&turn.messages, completion, &next.messages) {
                    self.fractures += 1;
                }
                if next.edit.is_fracture() {
                    self.labelled_edits += 1;
                }
                self.turn = Some(next);
            }
            Next::Done(end) => {
                if let Some(line) = line.as_mut() {
                    line.reward = Some(end.reward);
                }
                self.end = Some(end);
            }
        }
        if let (Some(trace), Some(line)) = (self.trace.as_mut(), line) {
            trace.push(line);
        }
        Ok(())
    }

    /// Cuts the episode off (a rollout limit); returns whether it was still running.
    pub fn cut_off(&mut self) -> bool {
        self.turn.take().is_some()
    }

    /// The result of an episode that ended; `None` while it runs or when it was cut off.
    pub fn into_result(self) -> Option<EpisodeResult> {
        let end = self.end?;
        Some(EpisodeResult {
            task: self.task,
            seed: self.seed,
            end,
            fractures: self.fractures,
            labelled_edits: self.labelled_edits,
            trace: self.trace.unwrap_or_default(),
        })
    }
}

/// Plays one episode to the end (at most `max_steps` completions as a safety net).
pub fn run_episode(env: &mut dyn Env, policy: &mut dyn TextPolicy, task: TaskId, seed: u64, trace: bool, max_steps: u32) -> Result<EpisodeResult, EnvError> {
    let mut run = EpisodeRun::start(env, task, seed, trace)?;
    for _ in 0..max_steps {
        let Some(turn) = run.turn() else { break };
        let completion = policy.complete(env, turn)?;
        run.play_turn(env, &completion)?;
    }
    run.into_result().ok_or_else(|| EnvError::Data(format!("episode did not end within {max_steps} steps")))
}

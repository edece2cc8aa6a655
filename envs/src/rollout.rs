//! Runs one episode of an environment with a text policy, with optional trace.

use crate::env::{ActionLog, ContextEdit, Env, EnvError, EpisodeEnd, Next, TaskId};
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

/// True when `next` starts with `prev` followed by the assistant `completion`.
pub fn extends(prev: &[ChatMessage], completion: &str, next: &[ChatMessage]) -> bool {
    next.len() > prev.len()
        && next[..prev.len()].iter().zip(prev).all(|(a, b)| a.role == b.role && a.content == b.content)
        && next[prev.len()].role == Role::Assistant
        && next[prev.len()].content == completion
}

/// Plays one episode to the end (at most `max_steps` completions as a safety net).
pub fn run_episode(env: &mut dyn Env, policy: &mut dyn TextPolicy, task: TaskId, seed: u64, trace: bool, max_steps: u32) -> Result<EpisodeResult, EnvError> {
    let mut turn = env.reset(task, seed)?;
    let mut turns = Vec::new();
    let (mut fractures, mut labelled) = (0, 0);
    for _ in 0..max_steps {
        let completion = policy.complete(env, &turn)?;
        let step = env.step(&completion)?;
        let mut t = trace.then(|| TraceTurn {
            task,
            seed,
            turn: turn.index,
            edit: turn.edit,
            context_tokens: turn.context_tokens,
            context: turn.messages.clone(),
            completion: completion.clone(),
            actions: step.actions.clone(),
            observation: step.observation.clone(),
            penalty: step.penalty,
            reward: None,
        });
        match step.next {
            Next::Continue(next) => {
                if !extends(&turn.messages, &completion, &next.messages) {
                    fractures += 1;
                }
                if next.edit.is_fracture() {
                    labelled += 1;
                }
                turns.extend(t);
                turn = next;
            }
            Next::Done(end) => {
                if let Some(t) = t.as_mut() {
                    t.reward = Some(end.reward);
                }
                turns.extend(t);
                return Ok(EpisodeResult { task, seed, end, fractures, labelled_edits: labelled, trace: turns });
            }
        }
    }
    Err(EnvError::Data(format!("episode did not end within {max_steps} steps")))
}

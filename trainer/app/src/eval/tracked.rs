//! An environment wrapper that records what each policy turn was for (memory management or
//! answering) and moves the progress bar as questions are answered.

use std::sync::{Arc, Mutex};

use indicatif::ProgressBar;
use memrl_envs::env::{Env, EnvError, EpisodeStats, Next, ScriptedKind, Split, Step, TaskId, Turn};
use memrl_envs::tokens::TokenCounter;
use memrl_envs::tools::Action;
use rand::RngCore;

/// What a policy turn was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading the history and editing memory (memory tools offered).
    Memory,
    /// Answering a question (search / answer, or the reader's turn).
    Answer,
    /// Any other turn (synthetic environments' mixed turns).
    Other,
}

/// One recorded policy turn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnRecord {
    /// Its phase.
    pub phase: Phase,
    /// Context tokens counted over the messages' text (used when no exact token ids exist).
    pub counted_tokens: usize,
}

/// Moves a progress bar by answered questions.
#[derive(Clone)]
pub struct QuestionProgress {
    /// The bar (length: questions in the evaluation).
    pub bar: ProgressBar,
}

/// Records turns and ticks progress around any environment.
pub struct Tracked {
    inner: Box<dyn Env>,
    log: Arc<Mutex<Vec<TurnRecord>>>,
    progress: Option<QuestionProgress>,
    counter: Option<Arc<dyn TokenCounter>>,
    answered: u64,
}

fn phase(turn: &Turn) -> Phase {
    if turn.offers("memory_add") && !turn.offers("answer") {
        Phase::Memory
    } else if turn.offers("answer") || (turn.tools.is_empty() && turn.tools_text.is_empty()) {
        Phase::Answer
    } else {
        Phase::Other
    }
}

impl Tracked {
    /// Wraps `inner`; turns are appended to `log`; with `counter`, each turn's message text is
    /// counted (for scripted runs, which have no token ids).
    pub fn new(inner: Box<dyn Env>, log: Arc<Mutex<Vec<TurnRecord>>>, progress: Option<QuestionProgress>, counter: Option<Arc<dyn TokenCounter>>) -> Self {
        Self { inner, log, progress, counter, answered: 0 }
    }

    fn record(&self, turn: &Turn) {
        let counted_tokens = self.counter.as_ref().map_or(0, |c| turn.messages.iter().map(|m| c.count(&m.content)).sum::<usize>() + c.count(&turn.tools_text));
        if let Ok(mut log) = self.log.lock() {
            log.push(TurnRecord { phase: phase(turn), counted_tokens });
        }
    }
}

impl Env for Tracked {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn task_count(&self, split: Split) -> Option<u64> {
        self.inner.task_count(split)
    }

    fn reset(&mut self, task: TaskId, seed: u64) -> Result<Turn, EnvError> {
        let turn = self.inner.reset(task, seed)?;
        self.answered = 0;
        self.record(&turn);
        Ok(turn)
    }

    fn step(&mut self, completion: &str) -> Result<Step, EnvError> {
        let step = self.inner.step(completion)?;
        let answers = step.actions.iter().filter(|a| a.ok && matches!(a.action, Some(Action::Answer { .. }))).count() as u64;
        self.answered += answers;
        match &step.next {
            Next::Continue(turn) => {
                if let Some(p) = &self.progress {
                    p.bar.inc(answers);
                }
                self.record(turn);
            }
            Next::Done(end) => {
                if let Some(p) = &self.progress {
                    // Questions closed without an answer count as done too.
                    let total = end.breakdown.questions.len() as u64;
                    p.bar.inc(total.saturating_sub(self.answered - answers));
                }
            }
        }
        Ok(step)
    }

    fn scripted(&self, kind: ScriptedKind, rng: &mut dyn RngCore) -> Result<String, EnvError> {
        self.inner.scripted(kind, rng)
    }

    fn stats(&self) -> EpisodeStats {
        self.inner.stats()
    }
}

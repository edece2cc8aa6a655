//! An environment wrapper that records what each policy turn was for (memory management or
//! answering) and moves the progress bar as questions are answered, with the history read so
//! far in its message (a conversation's questions come only after all of its chunks).

use std::sync::atomic::{AtomicU64, Ordering};
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

/// Moves a progress bar by answered questions and shows the history read in its message.
#[derive(Clone)]
pub struct QuestionProgress {
    bar: ProgressBar,
    chunks_read: Arc<AtomicU64>,
    chunks: u64,
    episodes_done: Arc<AtomicU64>,
    episodes: u64,
}

impl QuestionProgress {
    /// Progress on `bar` (length: questions in the evaluation) over `episodes` episodes (one
    /// conversation each, or one question each under the reader protocol) whose policy turns
    /// read `chunks` history chunks in all (0: the policy reads none, as under the reader
    /// protocol, whose manager is model-free; the message then leaves chunks out).
    pub fn new(bar: ProgressBar, episodes: u64, chunks: u64) -> Self {
        let p = Self { bar, chunks_read: Arc::default(), chunks, episodes_done: Arc::default(), episodes };
        p.show();
        p
    }

    fn show(&self) {
        let read = self.chunks_read.load(Ordering::Relaxed).min(self.chunks);
        let done = self.episodes_done.load(Ordering::Relaxed);
        let history = if self.chunks > 0 { format!("{read}/{} history chunks read, ", self.chunks) } else { String::new() };
        self.bar.set_message(format!("{history}{done}/{} episodes done", self.episodes));
    }

    fn chunk_read(&self) {
        self.chunks_read.fetch_add(1, Ordering::Relaxed);
        self.show();
    }

    fn episode_done(&self) {
        self.episodes_done.fetch_add(1, Ordering::Relaxed);
        self.show();
    }
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
        if let (Some(p), Phase::Memory) = (&self.progress, phase(turn)) {
            p.chunk_read();
        }
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
                    p.episode_done();
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

//! The `Env` trait and the data it hands the trainer each turn.

use crate::message::{ChatMessage, Role};
use crate::tools::ToolSet;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// Dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training tasks.
    Train,
    /// Validation tasks.
    Validation,
    /// Held-out test tasks.
    Test,
}

impl Split {
    /// All splits.
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

    /// A small integer used when deriving seeds.
    pub fn code(self) -> u64 {
        match self {
            Split::Train => 0,
            Split::Validation => 1,
            Split::Test => 2,
        }
    }
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "train" => Ok(Split::Train),
            "validation" | "val" | "valid" => Ok(Split::Validation),
            "test" => Ok(Split::Test),
            _ => Err(format!("unknown split {s:?} (expected train, validation or test)")),
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        })
    }
}

/// Names one task: the environment builds its content deterministically from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskId {
    /// Split.
    pub split: Split,
    /// Index within the split.
    pub index: u64,
}

/// How the context of a turn relates to the previous turn's context plus completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContextEdit {
    /// First turn of the episode.
    Initial,
    /// Previous context + completion + new messages: an exact extension.
    Appended,
    /// Records were removed by `prune_context`.
    Pruned,
    /// Reset to the task prompt plus a summary.
    Summarized,
    /// The overwrite memory was replaced (MemAgent).
    Overwritten,
    /// The context was rebuilt from external memory (fresh context per chunk).
    Rebuilt,
}

impl ContextEdit {
    /// True when this context is not an extension of the previous one (a fracture).
    pub fn is_fracture(self) -> bool {
        !matches!(self, ContextEdit::Initial | ContextEdit::Appended)
    }
}

/// What the policy sees on one turn.
#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    /// 0-based turn number.
    pub index: u32,
    /// The whole working context: system prompt (without tools), task prompt, records.
    pub messages: Vec<ChatMessage>,
    /// JSON function schemas of the tools offered this turn (chat template `tools`).
    pub tools: Arc<[Value]>,
    /// Plain-text rendering of the same tools.
    pub tools_text: Arc<str>,
    /// How this context relates to the previous one.
    pub edit: ContextEdit,
    /// Token budget for the completion of this turn.
    pub max_new_tokens: usize,
    /// Working-context tokens (after the instruction) under the env's counter.
    pub context_tokens: usize,
}

impl Turn {
    /// Builds a turn from messages and a tool set.
    pub fn new(index: u32, messages: Vec<ChatMessage>, tools: &ToolSet, edit: ContextEdit, max_new_tokens: usize, context_tokens: usize) -> Self {
        Self { index, messages, tools: tools.json(), tools_text: tools.text(), edit, max_new_tokens, context_tokens }
    }

    /// The same turn with no plain-text tool list (the JSON schemas stay, so the tools offered
    /// are unchanged and a template that renders `tools` still sees them).
    pub fn without_tools_text(mut self) -> Self {
        self.tools_text = Arc::from("");
        self
    }

    /// True if the tool named `name` is offered this turn.
    pub fn offers(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(name))
    }

    /// `messages` with the plain-text tool rendering appended to the system prompt, for
    /// chat templates that cannot render `tools` themselves.
    pub fn messages_with_inline_tools(&self) -> Vec<ChatMessage> {
        let mut m = self.messages.clone();
        if let Some(sys) = m.iter_mut().find(|x| x.role == Role::System) {
            if !self.tools_text.is_empty() {
                sys.content = format!("{}\n\n{}", sys.content, self.tools_text);
            }
        }
        m
    }
}

/// Counts of actions taken in an episode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    /// `memory_add` applied.
    pub add: u32,
    /// `memory_update` applied.
    pub update: u32,
    /// `memory_delete` applied.
    pub delete: u32,
    /// `noop`.
    pub noop: u32,
    /// `memory_search`.
    pub memory_search: u32,
    /// `search`.
    pub search: u32,
    /// Successful `prune_context`.
    pub prune: u32,
    /// `summarize`.
    pub summarize: u32,
    /// Overwrite-memory writes.
    pub overwrite: u32,
    /// `answer`.
    pub answer: u32,
}

impl OpCounts {
    /// Memory-management operations: add + update + delete + prune + summarize + overwrite.
    pub fn memory_ops(&self) -> u32 {
        self.add + self.update + self.delete + self.prune + self.summarize + self.overwrite
    }
}

/// Budget violations by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violations {
    /// Completions longer than the per-turn token budget.
    pub turn_tokens: u32,
    /// Episodes cut at the turn limit.
    pub turns: u32,
    /// Turns whose working context exceeded its token budget.
    pub context_tokens: u32,
    /// Memory operations over the entry or token capacity.
    pub memory: u32,
}

impl Violations {
    /// Sum over kinds.
    pub fn total(&self) -> u32 {
        self.turn_tokens + self.turns + self.context_tokens + self.memory
    }
}

/// Running statistics of the current episode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpisodeStats {
    /// Turns taken (completions stepped).
    pub turns: u32,
    /// Actions applied.
    pub ops: OpCounts,
    /// Malformed or rejected calls (and turns with no call where one was needed).
    pub format_errors: u32,
    /// Budget violations.
    pub violations: Violations,
    /// Largest working context seen, in tokens.
    pub peak_context_tokens: usize,
    /// Working-context budget, for reporting overshoot.
    pub context_budget: usize,
    /// Largest number of memory entries held.
    pub peak_memory_entries: usize,
    /// Largest number of memory tokens held.
    pub peak_memory_tokens: usize,
    /// Penalty charged so far (positive number, subtracted from the reward).
    pub penalty: f64,
}

/// How an episode ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// Every question answered.
    Completed,
    /// Turn budget exhausted.
    TurnLimit,
    /// Working-context budget exceeded under [`crate::memory::BudgetMode::Enforce`].
    ContextBudget,
}

/// One scored question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionResult {
    /// Question id (`q1`).
    pub id: String,
    /// Question text.
    pub question: String,
    /// Gold answer.
    pub gold: String,
    /// The policy's answer, if it gave one.
    pub prediction: Option<String>,
    /// Score in [0, 1].
    pub score: f64,
    /// Category label where the benchmark has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

/// Reward and what it is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardBreakdown {
    /// Task score in [0, 1] (mean over questions).
    pub task_score: f64,
    /// Penalty subtracted (format + budget, capped).
    pub penalty: f64,
    /// `task_score - penalty`.
    pub total: f64,
    /// How the episode ended.
    pub termination: Termination,
    /// Per-question results.
    pub questions: Vec<QuestionResult>,
    /// Episode statistics.
    pub stats: EpisodeStats,
}

/// The final result of an episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeEnd {
    /// Scalar reward for RL.
    pub reward: f64,
    /// Its parts.
    pub breakdown: RewardBreakdown,
}

/// One executed call, for traces and metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionLog {
    /// The validated action, or None if the call was malformed.
    pub action: Option<crate::tools::Action>,
    /// Whether it succeeded.
    pub ok: bool,
    /// What the environment answered.
    pub observation: String,
}

/// What happened after a completion, and what comes next.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Calls executed this turn, in order.
    pub actions: Vec<ActionLog>,
    /// Observation text fed back to the policy (concatenated).
    pub observation: String,
    /// Penalty charged this turn.
    pub penalty: f64,
    /// Next turn, or the end of the episode.
    pub next: Next,
}

/// Next turn or end.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Next {
    /// The episode goes on.
    Continue(Turn),
    /// The episode is over.
    Done(EpisodeEnd),
}

/// Model-free policies every environment implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScriptedKind {
    /// Uses hidden ground truth: ideal memory operations and answers.
    Oracle,
    /// Mem0-style: add new facts, update same entity+attribute, delete when contradicted.
    Heuristic,
    /// Never stores anything.
    NoMemory,
    /// Keeps everything and ignores budgets (reports how far over it goes).
    FullContext,
}

impl ScriptedKind {
    /// The policy's name as the CLI and configs spell it (`oracle`, `heuristic`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Oracle => "oracle",
            Self::Heuristic => "heuristic",
            Self::NoMemory => "no-memory",
            Self::FullContext => "full-context",
        }
    }
}

impl std::fmt::Display for ScriptedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ScriptedKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "oracle" => Ok(Self::Oracle),
            "heuristic" => Ok(Self::Heuristic),
            "no-memory" => Ok(Self::NoMemory),
            "full-context" => Ok(Self::FullContext),
            _ => Err(format!("unknown policy {s:?} (expected oracle, heuristic, no-memory or full-context)")),
        }
    }
}

/// Errors from misuse of an environment or from its data (never from policy output).
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// `step` before `reset`.
    #[error("step called before reset")]
    NotStarted,
    /// `step` after the episode ended.
    #[error("step called after the episode ended")]
    Finished,
    /// Task index outside the split.
    #[error("task {index} is out of range for split {split} ({count} tasks)")]
    TaskOutOfRange {
        /// Split.
        split: Split,
        /// Index asked for.
        index: u64,
        /// Tasks in the split.
        count: u64,
    },
    /// Knobs invalid.
    #[error("invalid knobs for env {env}: {message}")]
    Knobs {
        /// Environment.
        env: String,
        /// What is wrong.
        message: String,
    },
    /// Data could not be loaded.
    #[error("{0}")]
    Data(String),
    /// A benchmark file could not be loaded (the loader's error names the file and place).
    #[error(transparent)]
    Load(#[from] memrl_datasets::LoadError),
    /// A scripted policy is not available in this state.
    #[error("scripted policy {0:?} has no move here: {1}")]
    NoScriptedMove(ScriptedKind, String),
}

/// A multi-turn memory environment. Object safe: the trainer holds `Box<dyn Env>`.
pub trait Env: Send {
    /// Registry name (`facts`, `multiobjective`, `locomo`, `longmemeval`).
    fn name(&self) -> &'static str;
    /// Tasks in `split`; `None` means unbounded (synthetic: every index is a task).
    fn task_count(&self, split: Split) -> Option<u64>;
    /// Starts an episode on `task`; `seed` drives episode randomness (e.g. random ids).
    fn reset(&mut self, task: TaskId, seed: u64) -> Result<Turn, EnvError>;
    /// Applies the policy's completion text.
    fn step(&mut self, completion: &str) -> Result<Step, EnvError>;
    /// A model-free policy's completion for the current turn, as tool-call text.
    /// Only the oracle reads hidden state.
    fn scripted(&self, kind: ScriptedKind, rng: &mut dyn RngCore) -> Result<String, EnvError>;
    /// Statistics of the current episode so far.
    fn stats(&self) -> EpisodeStats;
}

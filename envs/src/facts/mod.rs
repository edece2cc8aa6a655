//! `facts`: a synthetic stream of entity-attribute facts with updates (proactive
//! interference: the same key is rewritten several times), distractor statements about
//! untracked people, and a memory bank smaller than the number of facts. After the last
//! chunk the policy answers questions about the tracked people from memory alone.
//!
//! Each chunk is one turn with a fresh context (Mem-α / Memory-R1 style): the system
//! prompt, then one user message with the task, the rendered memory, the results of the
//! previous turn's operations, and the chunk. So every turn after the first is a
//! fracture (`ContextEdit::Rebuilt`). With `memory_mode = "overwrite"` the memory is
//! instead MemAgent's single text that each reply replaces (`ContextEdit::Overwritten`).
//!
//! Reward: fraction of questions answered correctly (SQuAD-normalised exact match),
//! minus penalties. Questions are answered with `answer(question_id, text)`; a retracted
//! fact's answer is `unknown`.

pub mod generator;
mod scripted;

use crate::env::{ActionLog, ContextEdit, Env, EnvError, EpisodeStats, Next, ScriptedKind, Split, Step, TaskId, Termination, Turn};
use crate::ids::IdStyle;
use crate::ledger::{Budget, Ledger, Penalties, Question, QuestionSheet};
use crate::memory::{BudgetMode, MemoryBank, MemoryCapacity};
use crate::memory_calls::{MemoryTurn, apply_memory_calls};
use crate::message::{ChatMessage, Role};
use crate::scratchpad::Scratchpad;
use crate::text::exact_match;
use crate::tokens::TokenCounter;
use crate::tools::{Action, ToolKind, ToolSet};
use generator::{ATTRIBUTES, FactsTask, GenParams, NAMES};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Where the policy's memory lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryMode {
    /// A memory bank edited with memory_add / memory_update / memory_delete / noop.
    #[default]
    Bank,
    /// MemAgent: the whole reply to a chunk becomes the memory text.
    Overwrite,
}

/// How much prose surrounds the facts in each turn's prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptStyle {
    /// Full instructions and the plain-text tool list, for models that read instructions.
    #[default]
    Full,
    /// One-line system prompt, no tool list, short section labels, questions asked as the
    /// memory line's key (`q1: Vera pet?`): the same information about the task (tracked
    /// people, memory, chunk, questions) in a fraction of the tokens, for random-init models
    /// that learn the format from demonstrations and cannot read prose.
    Terse,
}

/// Which entry the heuristic manager (the SFT teacher) deletes when the bank is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Eviction {
    /// The least recently updated entry (Mem0-style LRU).
    #[default]
    Oldest,
    /// An entry drawn uniformly from the episode's scripted-policy RNG: demonstrations that
    /// show eviction without a rule for choosing the victim.
    Random,
}

/// Knobs of the `facts` environment (TOML table / `--set key=value`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FactsKnobs {
    /// Dataset seed: tasks are a function of (seed, split, index).
    pub seed: u64,
    /// People to track (asked about).
    pub entities: usize,
    /// Untracked people the distractor statements are about.
    pub distractor_entities: usize,
    /// Attributes per person (max 8).
    pub attributes: usize,
    /// Names drawn from (the first `name_pool` of the 40-name list; 0: all 40). A smaller pool
    /// gives a small model more examples of each name to learn to copy.
    pub name_pool: usize,
    /// New values stated after the first, per tracked key (interference).
    pub updates_per_key: usize,
    /// Distractor statements per tracked statement.
    pub distractor_ratio: f64,
    /// Probability that a key's last statement retracts it (answer `unknown`).
    pub retraction_prob: f64,
    /// Questions at the end (distinct tracked keys).
    pub questions: usize,
    /// Questions shown per answer turn (0: all at once). With 1, each answer turn asks the
    /// next open question alone, so the question sits right before the reply.
    pub questions_per_turn: usize,
    /// Statements per chunk.
    pub chunk_size: usize,
    /// Memory capacity in entries (bank mode).
    pub capacity: usize,
    /// Memory capacity in tokens (bank total, or the overwrite text).
    pub memory_tokens: usize,
    /// Memory bank or MemAgent overwrite memory.
    pub memory_mode: MemoryMode,
    /// Turn budget; default: chunks + questions.
    pub max_turns: Option<u32>,
    /// Token budget of one completion.
    pub max_turn_tokens: usize,
    /// Refuse over-capacity writes (enforce) or allow and count them.
    pub budget_mode: BudgetMode,
    /// Memory id spelling.
    pub id_style: IdStyle,
    /// Name the tracked people in the prompt (without it the task is not learnable
    /// beyond storing everything).
    pub announce_tracked: bool,
    /// Prompt wording: `full` or `terse` (see [`PromptStyle`]).
    pub prompt: PromptStyle,
    /// Tasks in the validation split (train is unbounded).
    pub validation_tasks: u64,
    /// Tasks in the test split.
    pub test_tasks: u64,
    /// Reward penalties.
    pub penalties: Penalties,
    /// Heuristic manager only: the entry it evicts when the bank is full.
    pub heuristic_eviction: Eviction,
    /// Heuristic manager only: probability that it ignores a statement (as an extractor that
    /// missed it), drawn per statement from the scripted-policy RNG. With `heuristic_eviction`,
    /// this puts skipped facts and varied victims into the demonstrations, so that RL has the
    /// moves it needs to explore; the demonstrations still carry no rule for which to use.
    pub heuristic_skip: f64,
}

impl Default for FactsKnobs {
    fn default() -> Self {
        Self {
            seed: 0,
            entities: 2,
            distractor_entities: 2,
            attributes: 2,
            name_pool: 0,
            updates_per_key: 2,
            distractor_ratio: 1.0,
            retraction_prob: 0.0,
            questions: 4,
            questions_per_turn: 0,
            chunk_size: 6,
            capacity: 4,
            memory_tokens: 32,
            memory_mode: MemoryMode::Bank,
            max_turns: None,
            max_turn_tokens: 256,
            budget_mode: BudgetMode::Enforce,
            id_style: IdStyle::Sequential,
            announce_tracked: true,
            prompt: PromptStyle::Full,
            validation_tasks: 200,
            test_tasks: 500,
            penalties: Penalties::default(),
            heuristic_eviction: Eviction::Oldest,
            heuristic_skip: 0.0,
        }
    }
}

impl FactsKnobs {
    fn validate(&self) -> Result<(), EnvError> {
        let err = |m: String| Err(EnvError::Knobs { env: "facts".into(), message: m });
        if self.entities == 0 || self.attributes == 0 || self.chunk_size == 0 || self.capacity == 0 {
            return err("entities, attributes, chunk_size and capacity must be at least 1".into());
        }
        if self.attributes > ATTRIBUTES.len() {
            return err(format!("attributes must be at most {}", ATTRIBUTES.len()));
        }
        if self.entities + self.distractor_entities > self.names().len() {
            return err(format!(
                "entities + distractor_entities must be at most {} (name_pool, or the {} names when it is 0)",
                self.names().len(),
                NAMES.len()
            ));
        }
        if self.name_pool > NAMES.len() {
            return err(format!("name_pool must be at most {} (0: all names)", NAMES.len()));
        }
        if !(0.0..=1.0).contains(&self.heuristic_skip) {
            return err("heuristic_skip must be in [0, 1]".into());
        }
        if self.questions == 0 || self.questions > self.entities * self.attributes {
            return err(format!("questions must be between 1 and entities*attributes = {}", self.entities * self.attributes));
        }
        if !(0.0..=1.0).contains(&self.retraction_prob) || !(self.distractor_ratio >= 0.0 && self.distractor_ratio <= 100.0) {
            return err("retraction_prob must be in [0, 1] and distractor_ratio in [0, 100]".into());
        }
        if self.prompt == PromptStyle::Terse && self.memory_mode != MemoryMode::Bank {
            return err("prompt = \"terse\" needs memory_mode = \"bank\"".into());
        }
        if self.questions_per_turn > self.questions {
            return err(format!("questions_per_turn must be at most questions = {} (0: all at once)", self.questions));
        }
        if self.updates_per_key > 64 {
            return err("updates_per_key must be at most 64".into());
        }
        Ok(())
    }

    /// The names tasks draw from.
    fn names(&self) -> &'static [&'static str] {
        if self.name_pool == 0 { NAMES } else { &NAMES[..self.name_pool.min(NAMES.len())] }
    }

    fn gen_params(&self) -> GenParams {
        GenParams {
            names: self.names(),
            entities: self.entities,
            distractor_entities: self.distractor_entities,
            attributes: self.attributes,
            updates_per_key: self.updates_per_key,
            distractor_ratio: self.distractor_ratio,
            retraction_prob: self.retraction_prob,
            questions: self.questions,
            chunk_size: self.chunk_size,
            seed: self.seed,
        }
    }
}

const SYSTEM_BANK: &str = "You read a stream of short facts one chunk at a time. Only your memory bank survives from one chunk to the next, and at the end you must answer questions from it alone. Keep one entry per fact about the people you are asked to track, in the form \"Name attribute: value\". When a value changes, update the entry instead of adding a new one; when a fact stops being true, delete it. Do not spend capacity on other people. Reply with tool calls only.";
const SYSTEM_TERSE: &str = "Keep the tracked people's facts in memory. Reply with tool calls.";
const SYSTEM_OVERWRITE: &str = "You read a stream of short facts one chunk at a time. After each chunk, write your updated memory: your whole reply replaces the previous memory, and only the memory survives to the end, where you answer questions from it alone. Keep one line per fact about the people you are asked to track, in the form \"Name attribute: value\", with current values only.";

pub(crate) struct Episode {
    task: FactsTask,
    bank: MemoryBank,
    pad: Scratchpad,
    ledger: Ledger,
    sheet: QuestionSheet,
    /// Index of the chunk shown this turn (== chunks.len() in the question phase).
    chunk: usize,
    turn: u32,
    last_results: Vec<String>,
    done: bool,
}

/// The `facts` environment.
pub struct FactsEnv {
    knobs: FactsKnobs,
    counter: Arc<dyn TokenCounter>,
    memory_tools: ToolSet,
    answer_tools: ToolSet,
    no_tools: ToolSet,
    ep: Option<Episode>,
}

impl FactsEnv {
    /// Builds the environment; errors if the knobs are inconsistent.
    pub fn new(knobs: FactsKnobs, counter: Arc<dyn TokenCounter>) -> Result<Self, EnvError> {
        knobs.validate()?;
        Ok(Self {
            knobs,
            counter,
            memory_tools: ToolSet::new(&[ToolKind::MemoryAdd, ToolKind::MemoryUpdate, ToolKind::MemoryDelete, ToolKind::Noop]),
            answer_tools: ToolSet::new(&[ToolKind::Answer]),
            no_tools: ToolSet::new(&[]),
            ep: None,
        })
    }

    /// The knobs in force.
    pub fn knobs(&self) -> &FactsKnobs {
        &self.knobs
    }

    /// The task for `id` (deterministic).
    pub fn task(&self, id: TaskId) -> FactsTask {
        generator::generate(&self.knobs.gen_params(), id)
    }

    fn max_turns(&self, task: &FactsTask) -> u32 {
        self.knobs.max_turns.unwrap_or((task.chunks.len() + task.questions.len()) as u32)
    }

    fn render_turn(&self, ep: &Episode) -> Turn {
        let k = &self.knobs;
        let terse = k.prompt == PromptStyle::Terse; // bank mode only (validated)
        let mut body = String::new();
        if k.announce_tracked {
            let names = ep.task.tracked.join(", ");
            body.push_str(&if terse {
                format!("Track: {names}.\n\n")
            } else {
                format!("Track these people: {names}. You will be asked about their current attributes.\n\n")
            });
        }
        let overwrite = k.memory_mode == MemoryMode::Overwrite;
        if overwrite {
            let mem = if ep.pad.text().is_empty() { "No previous memory" } else { ep.pad.text() };
            body.push_str(&format!("<memory>\n{mem}\n</memory>\n\n"));
        } else {
            let (used, entries) = (ep.bank.entries().len(), MemoryBank::render(ep.bank.entries()));
            body.push_str(&if terse {
                format!("Memory ({used}/{}):\n{entries}\n\n", k.capacity)
            } else {
                format!("Memory ({used}/{} entries):\n{entries}\n\n", k.capacity)
            });
            if !ep.last_results.is_empty() {
                let label = if terse { "Results" } else { "Results of your last operations" };
                body.push_str(&format!("{label}:\n{}\n\n", ep.last_results.join("\n")));
            }
        }
        let n = ep.task.chunks.len();
        let tools;
        if ep.chunk < n {
            let lines: Vec<&str> = ep.task.chunks[ep.chunk].iter().map(|s| s.text.as_str()).collect();
            if overwrite {
                body.push_str(&format!("<section>\n{}\n</section>\n\nWrite the updated memory (at most {} tokens).", lines.join("\n"), k.memory_tokens));
                tools = &self.no_tools;
            } else if terse {
                body.push_str(&format!("Chunk {} of {}:\n{}", ep.chunk + 1, n, lines.join("\n")));
                tools = &self.memory_tools;
            } else {
                body.push_str(&format!("Chunk {} of {} [c{}]:\n{}\n\nUpdate the memory with tool calls.", ep.chunk + 1, n, ep.chunk + 1, lines.join("\n")));
                tools = &self.memory_tools;
            }
        } else {
            if overwrite && !ep.last_results.is_empty() {
                body.push_str(&format!("Results of your last answers:\n{}\n\n", ep.last_results.join("\n")));
            }
            body.push_str(if terse {
                "Questions:\n"
            } else {
                "All chunks have been shown. Answer each question with answer(question_id, text), using only your memory; answer \"unknown\" if it does not say.\n"
            });
            for q in shown_questions(ep, k) {
                body.push_str(&format!("{}: {}\n", q.id, q.text));
            }
            tools = &self.answer_tools;
        }
        let system = match (overwrite, terse) {
            (true, _) => SYSTEM_OVERWRITE,
            (false, true) => SYSTEM_TERSE,
            (false, false) => SYSTEM_BANK,
        };
        let messages =
            vec![ChatMessage::new(Role::System, system), ChatMessage { role: Role::User, content: body, record_id: Some(format!("c{}", ep.chunk + 1)) }];
        let edit = match (ep.turn, overwrite) {
            (0, _) => ContextEdit::Initial,
            (_, true) => ContextEdit::Overwritten,
            (_, false) => ContextEdit::Rebuilt,
        };
        let tokens = self.counter.count(&messages[1].content);
        let turn = Turn::new(ep.turn, messages, tools, edit, k.max_turn_tokens, tokens);
        if terse { turn.without_tools_text() } else { turn }
    }

    fn apply_answers(&self, ep: &mut Episode, completion: &str, logs: &mut Vec<ActionLog>) {
        let (actions, overflow) = self.answer_tools.parse(completion);
        if let Some(e) = overflow {
            ep.ledger.format_error();
            logs.push(ActionLog { action: None, ok: false, observation: format!("error: {e}") });
        }
        if actions.is_empty() {
            ep.ledger.format_error();
            logs.push(ActionLog { action: None, ok: false, observation: "error: no answer call found".into() });
        }
        for pa in actions {
            logs.push(answer_log(ep, pa.result));
        }
    }
}

/// The open questions an answer turn shows: all, or the first `questions_per_turn`.
fn shown_questions<'a>(ep: &'a Episode, knobs: &FactsKnobs) -> impl Iterator<Item = &'a Question> {
    let n = if knobs.questions_per_turn == 0 { usize::MAX } else { knobs.questions_per_turn };
    ep.sheet.open().take(n)
}

fn answer_log(ep: &mut Episode, result: Result<Action, crate::toolcall::CallError>) -> ActionLog {
    match result {
        Err(e) => {
            ep.ledger.format_error();
            ActionLog { action: None, ok: false, observation: format!("error: {e}") }
        }
        Ok(action) => {
            let Action::Answer { question_id, text } = &action else {
                ep.ledger.format_error();
                return ActionLog { action: Some(action), ok: false, observation: "error: only answer() is available now".into() };
            };
            match ep.sheet.answer(question_id, text) {
                Ok(()) => {
                    ep.ledger.stats.ops.answer += 1;
                    ActionLog { observation: format!("answer: recorded for {question_id}"), action: Some(action), ok: true }
                }
                Err(e) => {
                    ep.ledger.format_error();
                    ActionLog { action: Some(action), ok: false, observation: format!("error: {e}") }
                }
            }
        }
    }
}

impl Env for FactsEnv {
    fn name(&self) -> &'static str {
        "facts"
    }

    fn task_count(&self, split: Split) -> Option<u64> {
        match split {
            Split::Train => None,
            Split::Validation => Some(self.knobs.validation_tasks),
            Split::Test => Some(self.knobs.test_tasks),
        }
    }

    fn reset(&mut self, task: TaskId, seed: u64) -> Result<Turn, EnvError> {
        if let Some(count) = self.task_count(task.split)
            && task.index >= count
        {
            return Err(EnvError::TaskOutOfRange { split: task.split, index: task.index, count });
        }
        let t = self.task(task);
        let k = &self.knobs;
        let sheet = QuestionSheet {
            questions: t
                .questions
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    let key = ATTRIBUTES[q.attribute].key;
                    // terse: the question as the memory line's key, `Vera pet?`
                    let text = if k.prompt == PromptStyle::Terse { format!("{} {key}?", q.entity) } else { q.text.clone() };
                    Question { id: format!("q{}", i + 1), text, gold: q.gold.clone(), category: Some(key.into()), prediction: None }
                })
                .collect(),
        };
        let bank = MemoryBank::new(MemoryCapacity { max_entries: k.capacity, max_tokens: k.memory_tokens }, k.budget_mode, k.id_style, seed);
        let ep = Episode {
            task: t,
            bank,
            pad: Scratchpad::default(),
            ledger: Ledger::new(k.penalties, 0),
            sheet,
            chunk: 0,
            turn: 0,
            last_results: Vec::new(),
            done: false,
        };
        let turn = self.render_turn(&ep);
        self.ep = Some(ep);
        let ep = self.ep.as_mut().ok_or(EnvError::NotStarted)?;
        ep.ledger.observe_context(turn.context_tokens);
        Ok(turn)
    }

    fn step(&mut self, completion: &str) -> Result<Step, EnvError> {
        let mut ep = self.ep.take().ok_or(EnvError::NotStarted)?;
        if ep.done {
            self.ep = Some(ep);
            return Err(EnvError::Finished);
        }
        ep.turn += 1;
        ep.ledger.stats.turns += 1;
        if self.counter.count(completion) > self.knobs.max_turn_tokens {
            ep.ledger.violation(Budget::TurnTokens);
        }
        let mut logs = Vec::new();
        if ep.chunk < ep.task.chunks.len() {
            match self.knobs.memory_mode {
                MemoryMode::Bank => {
                    let state = MemoryTurn { bank: &mut ep.bank, ledger: &mut ep.ledger, turn: ep.turn, date: None };
                    apply_memory_calls(&self.memory_tools, state, completion, self.counter.as_ref(), &mut logs);
                }
                MemoryMode::Overwrite => {
                    let cut = ep.pad.overwrite(completion, self.knobs.memory_tokens, self.counter.as_ref());
                    ep.ledger.stats.ops.overwrite += 1;
                    if cut {
                        ep.ledger.violation(Budget::Memory);
                    }
                    let obs = if cut { format!("memory cut to {} tokens", self.knobs.memory_tokens) } else { "memory replaced".to_string() };
                    ep.ledger.observe_memory(usize::from(!ep.pad.text().is_empty()), self.counter.count(ep.pad.text()));
                    logs.push(ActionLog { action: None, ok: !cut, observation: obs });
                }
            }
            ep.chunk += 1;
        } else {
            self.apply_answers(&mut ep, completion, &mut logs);
        }
        ep.last_results = logs.iter().map(|l| format!("- {}", l.observation)).collect();
        let observation = ep.last_results.join("\n");
        let next = if ep.sheet.all_answered() {
            ep.done = true;
            Next::Done(ep.ledger.finish(Termination::Completed, ep.sheet.score(|p, q| exact_match(p, &q.gold))))
        } else if ep.turn >= self.max_turns(&ep.task) {
            ep.ledger.violation(Budget::Turns);
            ep.done = true;
            Next::Done(ep.ledger.finish(Termination::TurnLimit, ep.sheet.score(|p, q| exact_match(p, &q.gold))))
        } else {
            let turn = self.render_turn(&ep);
            ep.ledger.observe_context(turn.context_tokens);
            Next::Continue(turn)
        };
        let penalty = ep.ledger.take_turn_penalty();
        self.ep = Some(ep);
        Ok(Step { actions: logs, observation, penalty, next })
    }

    fn scripted(&self, kind: ScriptedKind, rng: &mut dyn RngCore) -> Result<String, EnvError> {
        let ep = self.ep.as_ref().ok_or(EnvError::NotStarted)?;
        if ep.done {
            return Err(EnvError::Finished);
        }
        Ok(scripted::completion(kind, ep, &self.knobs, self.counter.as_ref(), rng))
    }

    fn stats(&self) -> EpisodeStats {
        self.ep.as_ref().map(|e| e.ledger.stats.clone()).unwrap_or_default()
    }
}

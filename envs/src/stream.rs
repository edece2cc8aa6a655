//! The shared engine of the benchmark environments (`locomo`, `longmemeval`): a long
//! history streamed in chunks into a memory bank (Memory-R1's memory manager: one
//! fresh-context turn per chunk showing the BM25-related memories, ADD / UPDATE /
//! DELETE / NOOP), then the questions, one at a time, each in a fresh context where the
//! policy calls `memory_search(query, k)` (results are appended as a record) and then
//! `answer(question_id, text)`.
//!
//! A [`StreamSource`] supplies tasks and scores answers; this module does the rest.

use crate::bm25::Bm25Params;
use crate::context::WorkingContext;
use crate::env::{ActionLog, ContextEdit, EnvError, EpisodeStats, Next, ScriptedKind, Split, Step, TaskId, Termination, Turn};
use crate::ids::IdStyle;
use crate::ledger::{Budget, Ledger, Penalties, Question, QuestionSheet};
use crate::memory::{BudgetMode, MemoryBank, MemoryCapacity};
use crate::memory_calls::{MemoryTurn, apply_memory_calls};
use crate::message::{ChatMessage, Role};
use crate::tokens::TokenCounter;
use crate::tools::{Action, ToolKind, ToolSet};
use std::collections::HashSet;
use std::sync::Arc;

/// One memorable unit of a chunk (a dialogue turn), with the key evidence refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Evidence key (LoCoMo `D3:7`, LongMemEval `<session>:<turn>`).
    pub key: String,
    /// Self-contained text to store (`Caroline said: …`).
    pub text: String,
}

/// One chunk of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamChunk {
    /// Text shown, with its date header.
    pub text: String,
    /// Date label stored on memories written at this chunk.
    pub date: Option<String>,
    /// Its units.
    pub units: Vec<Unit>,
}

/// One question of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamQuestion {
    /// Text shown (including any official suffix or options).
    pub text: String,
    /// Text used as the scripted policies' search query.
    pub query: String,
    /// Gold answer (for reports).
    pub gold: String,
    /// What the oracle answers (the best-scoring answer under the configured metric).
    pub ideal: String,
    /// Keys of the units that hold the evidence (hidden; the oracle stores these).
    pub evidence: Vec<String>,
    /// Category label.
    pub category: Option<String>,
    /// Opaque index the source uses to score.
    pub item: usize,
}

/// A task: intro line, chunks, questions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTask {
    /// One line naming what is being remembered.
    pub intro: String,
    /// Chunks in order.
    pub chunks: Vec<StreamChunk>,
    /// Questions in order.
    pub questions: Vec<StreamQuestion>,
}

/// Supplies tasks and scores answers.
pub trait StreamSource: Send + Sync {
    /// Environment name.
    fn name(&self) -> &'static str;
    /// Tasks per split.
    fn task_count(&self, split: Split) -> u64;
    /// The task for `id` (index already range-checked).
    fn task(&self, id: TaskId) -> Result<StreamTask, EnvError>;
    /// Score of `prediction` for question `q`, in [0, 1].
    fn score(&self, q: &StreamQuestion, prediction: &str) -> f64;
}

/// Settings of the streaming engine (each env's knobs map onto these).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamSettings {
    /// Memory entries.
    pub capacity: usize,
    /// Memory tokens.
    pub memory_tokens: usize,
    /// Related memories shown per chunk.
    pub manager_k: usize,
    /// Turns allowed per question.
    pub question_turns: u32,
    /// Token budget of one completion.
    pub max_turn_tokens: usize,
    /// Capacity handling.
    pub budget_mode: BudgetMode,
    /// Id spelling.
    pub id_style: IdStyle,
    /// BM25 parameters.
    pub bm25: Bm25Params,
    /// Penalties.
    pub penalties: Penalties,
}

const SYSTEM_INGEST: &str = "You are the memory manager for a long history that you read one chunk at a time. Only your memory bank survives; later, questions about the history must be answered from it. Store important facts as short self-contained sentences that name who did what (the date is recorded with each entry). Update an entry when a fact changes and delete entries that are wrong. Reply with tool calls only.";
const SYSTEM_ANSWER: &str = "You answer a question about a long history using only your memory bank. Call memory_search to find relevant memories, then answer with answer(question_id, text) in a short phrase. Reply with tool calls only.";

struct Episode {
    task: StreamTask,
    bank: MemoryBank,
    ledger: Ledger,
    sheet: QuestionSheet,
    chunk: usize,
    question: usize,
    question_turns: u32,
    ctx: Option<WorkingContext>,
    last_search: Option<Vec<String>>,
    last_results: Vec<String>,
    turn: u32,
    seed: u64,
    done: bool,
}

/// The streaming engine, generic over its source.
pub struct StreamEnv<S: StreamSource> {
    source: S,
    settings: StreamSettings,
    counter: Arc<dyn TokenCounter>,
    memory_tools: ToolSet,
    answer_tools: ToolSet,
    ep: Option<Episode>,
}

impl<S: StreamSource> StreamEnv<S> {
    /// An engine over `source`.
    pub fn new(source: S, settings: StreamSettings, counter: Arc<dyn TokenCounter>) -> Self {
        Self {
            source,
            settings,
            counter,
            memory_tools: ToolSet::new(&[ToolKind::MemoryAdd, ToolKind::MemoryUpdate, ToolKind::MemoryDelete, ToolKind::Noop]),
            answer_tools: ToolSet::new(&[ToolKind::MemorySearch, ToolKind::Answer]),
            ep: None,
        }
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.source
    }

    fn ingest_turn(&self, ep: &Episode) -> Turn {
        let chunk = &ep.task.chunks[ep.chunk];
        let related = ep.bank.search(&chunk.text, self.settings.manager_k, self.settings.bm25);
        let mut body = format!(
            "{}\n\nRelated memories ({} of {} entries, capacity {}):\n{}\n\n",
            ep.task.intro,
            related.len(),
            ep.bank.entries().len(),
            self.settings.capacity,
            MemoryBank::render(related.iter().map(|(e, _)| *e))
        );
        if !ep.last_results.is_empty() {
            body.push_str(&format!("Results of your last operations:\n{}\n\n", ep.last_results.join("\n")));
        }
        body.push_str(&format!(
            "Chunk {} of {} [c{}]:\n{}\n\nUpdate the memory bank with tool calls.",
            ep.chunk + 1,
            ep.task.chunks.len(),
            ep.chunk + 1,
            chunk.text.trim_end()
        ));
        let messages =
            vec![ChatMessage::new(Role::System, SYSTEM_INGEST), ChatMessage { role: Role::User, content: body, record_id: Some(format!("c{}", ep.chunk + 1)) }];
        let tokens = self.counter.count(&messages[1].content);
        let edit = if ep.turn == 0 { ContextEdit::Initial } else { ContextEdit::Rebuilt };
        Turn::new(ep.turn, messages, &self.memory_tools, edit, self.settings.max_turn_tokens, tokens)
    }

    fn question_context(&self, ep: &Episode) -> WorkingContext {
        let q = &ep.sheet.questions[ep.question];
        let prompt = format!("{}\n\nQuestion {}: {}", ep.task.intro, q.id, q.text);
        WorkingContext::new(SYSTEM_ANSWER.into(), prompt, self.settings.id_style, crate::ledger::derive_seed(&[ep.seed, ep.question as u64]))
    }

    fn answer_turn(&self, ep: &Episode, edit: ContextEdit) -> Turn {
        let ctx = ep.ctx.as_ref().map(|c| (c.messages(), c.working_tokens(self.counter.as_ref())));
        let (messages, tokens) = ctx.unwrap_or_default();
        Turn::new(ep.turn, messages, &self.answer_tools, edit, self.settings.max_turn_tokens, tokens)
    }

    fn step_ingest(&self, ep: &mut Episode, completion: &str, logs: &mut Vec<ActionLog>) {
        let date = ep.task.chunks[ep.chunk].date.as_deref();
        let state = MemoryTurn { bank: &mut ep.bank, ledger: &mut ep.ledger, turn: ep.turn, date };
        apply_memory_calls(&self.memory_tools, state, completion, self.counter.as_ref(), logs);
        ep.chunk += 1;
    }

    /// Returns true when the current question got its answer.
    fn step_answer(&self, ep: &mut Episode, completion: &str, logs: &mut Vec<ActionLog>) -> bool {
        let (actions, overflow) = self.answer_tools.parse(completion);
        let Some(mut ctx) = ep.ctx.take() else { return false };
        let spans: Vec<_> = actions.iter().map(|a| a.span.clone()).collect();
        let h = ctx.push_assistant(completion, &spans);
        let current = ep.sheet.questions[ep.question].id.clone();
        let mut answered = false;
        for (call, pa) in actions.into_iter().enumerate() {
            let (action, ok, obs) = match pa.result {
                Err(e) => {
                    ep.ledger.format_error();
                    (None, false, format!("error: {e}"))
                }
                Ok(Action::MemorySearch { query, k }) => {
                    ep.ledger.stats.ops.memory_search += 1;
                    let hits = ep.bank.search(&query, k, self.settings.bm25);
                    ep.last_search = Some(hits.iter().map(|(e, _)| e.content.clone()).collect());
                    let listing = if hits.is_empty() { "(no matching memories)".to_string() } else { MemoryBank::render(hits.iter().map(|(e, _)| *e)) };
                    (Some(Action::MemorySearch { query: query.clone(), k }), true, format!("memory_search {query:?}:\n{listing}"))
                }
                Ok(Action::Answer { question_id, text }) if question_id == current && !answered => {
                    answered = ep.sheet.answer(&question_id, &text).is_ok();
                    ep.ledger.stats.ops.answer += 1;
                    (Some(Action::Answer { question_id, text }), true, format!("answer recorded for {current}"))
                }
                Ok(other) => {
                    ep.ledger.format_error();
                    let why = match &other {
                        Action::Answer { .. } if answered => format!("{current} was already answered"),
                        Action::Answer { question_id, .. } => format!("only {current} can be answered now, not {question_id}"),
                        _ => format!("{} is not available here", other.kind().name()),
                    };
                    (Some(other), false, format!("error: {why}"))
                }
            };
            ctx.push_tool(h, call, |id| format!("[{id}] {obs}"));
            logs.push(ActionLog { action, ok, observation: obs });
        }
        if let Some(e) = overflow {
            ep.ledger.format_error();
            logs.push(ActionLog { action: None, ok: false, observation: format!("error: {e}") });
        }
        if spans.is_empty() {
            ep.ledger.format_error();
            let obs = "error: no tool call found; use memory_search or answer".to_string();
            ctx.push_user(|id| format!("[{id}] {obs}"));
            logs.push(ActionLog { action: None, ok: false, observation: obs });
        }
        ep.ledger.observe_context(ctx.working_tokens(self.counter.as_ref()));
        ep.ctx = Some(ctx);
        answered
    }

    fn finish(&self, ep: &mut Episode, termination: Termination) -> Next {
        ep.done = true;
        let task = &ep.task;
        let results = ep.sheet.score(|p, q| {
            let idx = q.id[1..].parse::<usize>().unwrap_or(1).saturating_sub(1);
            task.questions.get(idx).map(|sq| self.source.score(sq, p)).unwrap_or(0.0)
        });
        Next::Done(ep.ledger.finish(termination, results))
    }

    /// Starts an episode.
    pub fn reset(&mut self, task: TaskId, seed: u64) -> Result<Turn, EnvError> {
        let count = self.source.task_count(task.split);
        if task.index >= count {
            return Err(EnvError::TaskOutOfRange { split: task.split, index: task.index, count });
        }
        let t = self.source.task(task)?;
        if t.questions.is_empty() {
            return Err(EnvError::Data(format!("{} task {:?} has no questions", self.source.name(), task)));
        }
        let s = &self.settings;
        let sheet = QuestionSheet {
            questions: t
                .questions
                .iter()
                .enumerate()
                .map(|(i, q)| Question {
                    id: format!("q{}", i + 1),
                    text: q.text.clone(),
                    gold: q.gold.clone(),
                    category: q.category.clone(),
                    prediction: None,
                })
                .collect(),
        };
        let bank = MemoryBank::new(MemoryCapacity { max_entries: s.capacity, max_tokens: s.memory_tokens }, s.budget_mode, s.id_style, seed);
        let mut ep = Episode {
            task: t,
            bank,
            ledger: Ledger::new(s.penalties, 0),
            sheet,
            chunk: 0,
            question: 0,
            question_turns: 0,
            ctx: None,
            last_search: None,
            last_results: Vec::new(),
            turn: 0,
            seed,
            done: false,
        };
        let turn = if ep.task.chunks.is_empty() {
            ep.ctx = Some(self.question_context(&ep));
            self.answer_turn(&ep, ContextEdit::Initial)
        } else {
            self.ingest_turn(&ep)
        };
        ep.ledger.observe_context(turn.context_tokens);
        self.ep = Some(ep);
        Ok(turn)
    }

    /// Applies a completion.
    pub fn step(&mut self, completion: &str) -> Result<Step, EnvError> {
        let mut ep = self.ep.take().ok_or(EnvError::NotStarted)?;
        if ep.done {
            self.ep = Some(ep);
            return Err(EnvError::Finished);
        }
        ep.turn += 1;
        ep.ledger.stats.turns += 1;
        if self.counter.count(completion) > self.settings.max_turn_tokens {
            ep.ledger.violation(Budget::TurnTokens);
        }
        let mut logs = Vec::new();
        let next = if ep.chunk < ep.task.chunks.len() {
            self.step_ingest(&mut ep, completion, &mut logs);
            ep.last_results = logs.iter().map(|l| format!("- {}", l.observation)).collect();
            if ep.chunk < ep.task.chunks.len() {
                Next::Continue(self.ingest_turn(&ep))
            } else {
                ep.ctx = Some(self.question_context(&ep));
                Next::Continue(self.answer_turn(&ep, ContextEdit::Rebuilt))
            }
        } else {
            let answered = self.step_answer(&mut ep, completion, &mut logs);
            ep.question_turns += 1;
            if !answered && ep.question_turns >= self.settings.question_turns {
                ep.ledger.violation(Budget::Turns);
            }
            if answered || ep.question_turns >= self.settings.question_turns {
                ep.question += 1;
                ep.question_turns = 0;
                ep.last_search = None;
                if ep.question >= ep.sheet.questions.len() {
                    let termination = if ep.sheet.all_answered() { Termination::Completed } else { Termination::TurnLimit };
                    self.finish(&mut ep, termination)
                } else {
                    ep.ctx = Some(self.question_context(&ep));
                    Next::Continue(self.answer_turn(&ep, ContextEdit::Rebuilt))
                }
            } else {
                Next::Continue(self.answer_turn(&ep, ContextEdit::Appended))
            }
        };
        if let Next::Continue(t) = &next {
            ep.ledger.observe_context(t.context_tokens);
        }
        let observation = logs.iter().map(|l| format!("- {}", l.observation)).collect::<Vec<_>>().join("\n");
        let penalty = ep.ledger.take_turn_penalty();
        self.ep = Some(ep);
        Ok(Step { actions: logs, observation, penalty, next })
    }

    /// Statistics so far.
    pub fn stats(&self) -> EpisodeStats {
        self.ep.as_ref().map(|e| e.ledger.stats.clone()).unwrap_or_default()
    }

    /// Scripted completion (see the module docs of the env for each policy).
    pub fn scripted(&self, kind: ScriptedKind) -> Result<String, EnvError> {
        let ep = self.ep.as_ref().ok_or(EnvError::NotStarted)?;
        if ep.done {
            return Err(EnvError::Finished);
        }
        let actions = if ep.chunk < ep.task.chunks.len() { self.ingest_plan(kind, ep) } else { answer_plan(kind, ep) };
        Ok(actions.iter().map(Action::to_call_text).collect())
    }

    fn ingest_plan(&self, kind: ScriptedKind, ep: &Episode) -> Vec<Action> {
        let chunk = &ep.task.chunks[ep.chunk];
        let stored: HashSet<&str> = ep.bank.entries().iter().map(|e| e.content.as_str()).collect();
        let mut fresh: Vec<&Unit> = Vec::new();
        for u in &chunk.units {
            if !stored.contains(u.text.trim()) && !fresh.iter().any(|f| f.text.trim() == u.text.trim()) && !u.text.trim().is_empty() {
                fresh.push(u);
            }
        }
        let mut actions: Vec<Action> = match kind {
            ScriptedKind::NoMemory => vec![],
            ScriptedKind::Oracle => {
                let wanted: HashSet<&str> = ep.task.questions.iter().flat_map(|q| q.evidence.iter().map(String::as_str)).collect();
                fresh.iter().filter(|u| wanted.contains(u.key.as_str())).map(|u| Action::MemoryAdd { content: u.text.clone() }).collect()
            }
            ScriptedKind::FullContext => fresh.iter().map(|u| Action::MemoryAdd { content: u.text.clone() }).collect(),
            ScriptedKind::Heuristic => {
                // Keep the newest units (at most one call each, within the per-turn call
                // cap); when the bank is full, overwrite the least recently updated entries.
                let cap = self.settings.capacity.min(crate::toolcall::ParseLimits::default().max_calls);
                let keep = &fresh[fresh.len().saturating_sub(cap)..];
                let free = self.settings.capacity.saturating_sub(ep.bank.entries().len());
                let mut victims: Vec<&crate::memory::MemoryEntry> = ep.bank.entries().iter().collect();
                victims.sort_by_key(|e| e.updated_turn);
                keep.iter()
                    .enumerate()
                    .map(|(i, u)| match i.checked_sub(free).and_then(|v| victims.get(v)) {
                        Some(victim) => Action::MemoryUpdate { id: victim.id.clone(), content: u.text.clone() },
                        None => Action::MemoryAdd { content: u.text.clone() },
                    })
                    .collect()
            }
        };
        if actions.is_empty() {
            actions.push(Action::Noop);
        }
        actions
    }
}

fn answer_plan(kind: ScriptedKind, ep: &Episode) -> Vec<Action> {
    let q = &ep.sheet.questions[ep.question];
    let sq = &ep.task.questions[ep.question];
    let answer = |text: String| vec![Action::Answer { question_id: q.id.clone(), text }];
    match (kind, &ep.last_search) {
        (ScriptedKind::NoMemory, _) => answer("unknown".into()),
        (_, None) => vec![Action::MemorySearch { query: sq.query.clone(), k: 5 }],
        (ScriptedKind::Oracle, Some(_)) => answer(sq.ideal.clone()),
        (_, Some(hits)) => answer(hits.first().cloned().unwrap_or_else(|| "unknown".into())),
    }
}

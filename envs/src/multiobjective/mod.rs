//! `multiobjective`: MemAct's multi-objective QA on a synthetic knowledge base
//! (algorithms.md §1). A task is N questions (1–8) about fictional entities; the policy
//! searches a per-task document collection with `search(query, k)` (BM25) and answers
//! with one `answer(question_id, text)` call per question (answers are final). The
//! working context (everything after the instruction) has a token budget small enough
//! that the policy must `prune_context` (or `summarize`, by knob) as it goes; `context_tool =
//! "none"` offers no editing tool (the `prefix_only` baseline: the context only grows).
//!
//! Every tool response is a record whose id (`r7`) is printed at its start; pruning by
//! id removes the record and cuts its call out of the assistant message (MemAct §1.2).
//! Episode ends when every question is answered, at the turn limit, or (budget_mode =
//! enforce) as soon as the working context exceeds its budget (MemAct §1.3).
//! Reward = fraction of questions answered correctly (normalised exact match) − penalties.

pub mod kb;
mod scripted;

use crate::bm25::{Bm25Index, Bm25Params};
use crate::context::{AssistantHandle, WorkingContext};
use crate::env::{ActionLog, ContextEdit, Env, EnvError, EpisodeStats, Next, ScriptedKind, Split, Step, TaskId, Termination, Turn};
use crate::ids::IdStyle;
use crate::ledger::{Budget, Ledger, Penalties, Question, QuestionSheet};
use crate::memory::BudgetMode;
use crate::text::exact_match;
use crate::tokens::TokenCounter;
use crate::tools::{Action, ToolKind, ToolSet};
use kb::{KbParams, KbTask};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Which context-editing tool the policy gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContextTool {
    /// MemAct's `prune_context(memory, delete_ids)`.
    #[default]
    Prune,
    /// SUPO's `summarize(summary)`.
    Summarize,
    /// Both.
    Both,
    /// No context tool: the context only grows (the `prefix_only` baseline: no edit can fracture
    /// the trajectory, and an episode whose context outgrows the budget ends under `enforce`).
    None,
}

/// Knobs of the `multiobjective` environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultiObjectiveKnobs {
    /// Dataset seed.
    pub seed: u64,
    /// Fewest questions per task (≥ 1).
    pub min_questions: usize,
    /// Most questions per task (≤ 8).
    pub max_questions: usize,
    /// Confusable documents per question.
    pub distractors_per_question: usize,
    /// Probability that a distractor also names the gold entity.
    pub confusable_prob: f64,
    /// Unrelated documents per task.
    pub filler_docs: usize,
    /// Working-context budget in tokens (after the instruction).
    pub max_context_tokens: usize,
    /// Turn budget.
    pub max_turns: u32,
    /// Token budget of one completion.
    pub max_turn_tokens: usize,
    /// End the episode when over budget (enforce) or count and go on.
    pub budget_mode: BudgetMode,
    /// Record id spelling.
    pub id_style: IdStyle,
    /// Context-editing tool offered.
    pub context_tool: ContextTool,
    /// Show "context used: x/budget" in tool responses.
    pub show_usage: bool,
    /// BM25 parameters of `search`.
    pub bm25: Bm25Params,
    /// Tasks in the validation split (train is unbounded).
    pub validation_tasks: u64,
    /// Tasks in the test split.
    pub test_tasks: u64,
    /// Reward penalties.
    pub penalties: Penalties,
}

impl Default for MultiObjectiveKnobs {
    fn default() -> Self {
        Self {
            seed: 0,
            min_questions: 1,
            max_questions: 4,
            distractors_per_question: 2,
            confusable_prob: 0.5,
            filler_docs: 8,
            max_context_tokens: 400,
            max_turns: 24,
            max_turn_tokens: 512,
            budget_mode: BudgetMode::Enforce,
            id_style: IdStyle::Sequential,
            context_tool: ContextTool::Prune,
            show_usage: true,
            bm25: Bm25Params::default(),
            validation_tasks: 200,
            test_tasks: 500,
            penalties: Penalties::default(),
        }
    }
}

impl MultiObjectiveKnobs {
    fn validate(&self) -> Result<(), EnvError> {
        let err = |m: &str| Err(EnvError::Knobs { env: "multiobjective".into(), message: m.into() });
        if self.min_questions == 0 || self.max_questions > 8 || self.min_questions > self.max_questions {
            return err("need 1 <= min_questions <= max_questions <= 8");
        }
        if self.distractors_per_question > 16 || self.filler_docs > 1000 {
            return err("distractors_per_question must be <= 16 and filler_docs <= 1000");
        }
        if !(0.0..=1.0).contains(&self.confusable_prob) {
            return err("confusable_prob must be in [0, 1]");
        }
        if self.max_turns == 0 {
            return err("max_turns must be at least 1");
        }
        Ok(())
    }
}

const SYSTEM: &str = "You answer several questions about a document collection. Use search to find documents, and answer each question with answer(question_id, text) as soon as you know it; answers are final. Core principle: active context management. Your working context has a hard token budget. Every tool result starts with its record id, like [r3]. When you no longer need records, call prune_context with a short memory note of what to keep and the ids to delete; the note stays and can be pruned later too. Reply with tool calls only.";
const SYSTEM_NO_EDITS: &str = "You answer several questions about a document collection. Use search to find documents, and answer each question with answer(question_id, text) as soon as you know it; answers are final. Your working context has a hard token budget and cannot be edited: search only for what you need. Reply with tool calls only.";
const SYSTEM_SUMMARIZE: &str = "You answer several questions about a document collection. Use search to find documents, and answer each question with answer(question_id, text) as soon as you know it; answers are final. Core principle: active context management. Your working context has a hard token budget. When it grows large, call summarize with everything you still need: the context is then reset to the task plus your summary. Reply with tool calls only.";

/// What a record in the context holds (for the scripted policies).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RecordInfo {
    Search { query: String, doc_ids: Vec<String> },
    Other,
}

pub(crate) struct Episode {
    task: KbTask,
    index: Bm25Index,
    ctx: WorkingContext,
    records: HashMap<String, RecordInfo>,
    sheet: QuestionSheet,
    ledger: Ledger,
    turn: u32,
    done: bool,
}

/// The `multiobjective` environment.
pub struct MultiObjectiveEnv {
    knobs: MultiObjectiveKnobs,
    counter: Arc<dyn TokenCounter>,
    tools: ToolSet,
    ep: Option<Episode>,
}

impl MultiObjectiveEnv {
    /// Builds the environment; errors if the knobs are inconsistent.
    pub fn new(knobs: MultiObjectiveKnobs, counter: Arc<dyn TokenCounter>) -> Result<Self, EnvError> {
        knobs.validate()?;
        let mut kinds = vec![ToolKind::Search];
        match knobs.context_tool {
            ContextTool::Prune => kinds.push(ToolKind::PruneContext),
            ContextTool::Summarize => kinds.push(ToolKind::Summarize),
            ContextTool::Both => kinds.extend([ToolKind::PruneContext, ToolKind::Summarize]),
            ContextTool::None => {}
        }
        kinds.push(ToolKind::Answer);
        Ok(Self { tools: ToolSet::new(&kinds), knobs, counter, ep: None })
    }

    /// The offered tools' names, for error messages ("search, prune_context or answer").
    fn tool_names(&self) -> String {
        let names: Vec<&str> = self.tools.kinds().iter().map(|k| k.name()).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        }
    }

    /// The knobs in force.
    pub fn knobs(&self) -> &MultiObjectiveKnobs {
        &self.knobs
    }

    /// The task for `id` (deterministic).
    pub fn task(&self, id: TaskId) -> KbTask {
        let k = &self.knobs;
        kb::generate(
            &KbParams {
                min_questions: k.min_questions,
                max_questions: k.max_questions,
                distractors_per_question: k.distractors_per_question,
                confusable_prob: k.confusable_prob,
                filler_docs: k.filler_docs,
                seed: k.seed,
            },
            id,
        )
    }

    fn turn(&self, ep: &Episode, edit: ContextEdit) -> Turn {
        let tokens = ep.ctx.working_tokens(self.counter.as_ref());
        Turn::new(ep.turn, ep.ctx.messages(), &self.tools, edit, self.knobs.max_turn_tokens, tokens)
    }

    fn usage(&self, ep: &Episode) -> String {
        if self.knobs.show_usage {
            format!(" (context used: {}/{} tokens)", ep.ctx.working_tokens(self.counter.as_ref()), self.knobs.max_context_tokens)
        } else {
            String::new()
        }
    }

    /// Executes one valid action; returns (ok, observation, edit caused).
    fn execute(&self, ep: &mut Episode, h: AssistantHandle, call: usize, action: &Action) -> (bool, String, Option<ContextEdit>) {
        let usage = self.usage(ep);
        match action {
            Action::Search { query, k } => {
                ep.ledger.stats.ops.search += 1;
                let hits = ep.index.top_k(query, *k);
                let doc_ids: Vec<String> = hits.iter().map(|(i, _)| ep.task.docs[*i].id.clone()).collect();
                let body: String = hits.iter().map(|(i, _)| format!("\n({}) {}", ep.task.docs[*i].id, ep.task.docs[*i].text)).collect();
                let summary = format!("search {query:?}: {} results", hits.len());
                let id = ep
                    .ctx
                    .push_tool(h, call, |id| format!("[{id}] search {query:?}{usage}:{}", if body.is_empty() { "\n(no results)".to_string() } else { body }));
                ep.records.insert(id, RecordInfo::Search { query: query.clone(), doc_ids });
                (true, summary, None)
            }
            Action::Answer { question_id, text } => {
                let (ok, obs) = match ep.sheet.answer(question_id, text) {
                    Ok(()) => {
                        ep.ledger.stats.ops.answer += 1;
                        (true, format!("answer recorded for {question_id}"))
                    }
                    Err(e) => {
                        ep.ledger.format_error();
                        (false, format!("error: {e}"))
                    }
                };
                let id = ep.ctx.push_tool(h, call, |id| format!("[{id}] {obs}{usage}"));
                ep.records.insert(id, RecordInfo::Other);
                (ok, obs, None)
            }
            Action::PruneContext { memory, delete_ids } => {
                let (ok, obs, edit) = match ep.ctx.prune(memory, delete_ids) {
                    Ok(out) => {
                        ep.ledger.stats.ops.prune += 1;
                        let mut obs = format!("pruned {} records", out.removed_records);
                        if !out.unknown_ids.is_empty() {
                            obs.push_str(&format!("; unknown ids: {}", out.unknown_ids.join(", ")));
                        }
                        (true, obs, (out.removed_records > 0).then_some(ContextEdit::Pruned))
                    }
                    Err(e) => {
                        ep.ledger.format_error();
                        (false, format!("error: {e}"), None)
                    }
                };
                let live: std::collections::HashSet<String> = ep.ctx.record_ids().into_iter().collect();
                ep.records.retain(|id, _| live.contains(id));
                let usage = self.usage(ep);
                let id = ep.ctx.push_tool(h, call, |id| format!("[{id}] {obs}{usage}"));
                ep.records.insert(id, RecordInfo::Other);
                (ok, obs, edit)
            }
            Action::Summarize { summary } => {
                if summary.trim().is_empty() {
                    ep.ledger.format_error();
                    let id = ep.ctx.push_tool(h, call, |id| format!("[{id}] error: summary is empty"));
                    ep.records.insert(id, RecordInfo::Other);
                    return (false, "error: summary is empty".into(), None);
                }
                ep.ledger.stats.ops.summarize += 1;
                ep.ctx.summarize(h);
                ep.records.clear();
                let usage = self.usage(ep);
                let id = ep.ctx.push_tool(h, call, |id| format!("[{id}] context reset to the task and your summary{usage}"));
                ep.records.insert(id, RecordInfo::Other);
                (true, "summarized".into(), Some(ContextEdit::Summarized))
            }
            other => {
                ep.ledger.format_error();
                (false, format!("error: {} is not available here", other.kind().name()), None)
            }
        }
    }

    fn finish(&self, ep: &mut Episode, termination: Termination) -> Next {
        ep.done = true;
        Next::Done(ep.ledger.finish(termination, ep.sheet.score(|p, q| exact_match(p, &q.gold))))
    }
}

impl Env for MultiObjectiveEnv {
    fn name(&self) -> &'static str {
        "multiobjective"
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
        let texts: Vec<&str> = t.docs.iter().map(|d| d.text.as_str()).collect();
        let index = Bm25Index::new(&texts, self.knobs.bm25);
        let sheet = QuestionSheet {
            questions: t
                .questions
                .iter()
                .enumerate()
                .map(|(i, q)| Question { id: format!("q{}", i + 1), text: q.text.clone(), gold: q.answer.clone(), category: None, prediction: None })
                .collect(),
        };
        let listing: String = sheet.questions.iter().map(|q| format!("\n{}: {}", q.id, q.text)).collect();
        let prompt = format!(
            "Answer the following {} question{}.{listing}\n\nThe collection has {} documents. Your working context budget is {} tokens (this instruction excluded).",
            sheet.questions.len(),
            if sheet.questions.len() == 1 { "" } else { "s" },
            t.docs.len(),
            self.knobs.max_context_tokens
        );
        let system = match self.knobs.context_tool {
            ContextTool::Summarize => SYSTEM_SUMMARIZE,
            ContextTool::None => SYSTEM_NO_EDITS,
            ContextTool::Prune | ContextTool::Both => SYSTEM,
        };
        let ctx = WorkingContext::new(system.into(), prompt, self.knobs.id_style, seed);
        let ep = Episode {
            task: t,
            index,
            ctx,
            records: HashMap::new(),
            sheet,
            ledger: Ledger::new(self.knobs.penalties, self.knobs.max_context_tokens),
            turn: 0,
            done: false,
        };
        let turn = self.turn(&ep, ContextEdit::Initial);
        self.ep = Some(ep);
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
        let (actions, overflow) = self.tools.parse(completion);
        let spans: Vec<_> = actions.iter().map(|a| a.span.clone()).collect();
        let h = ep.ctx.push_assistant(completion, &spans);
        let mut logs = Vec::new();
        let mut edit = ContextEdit::Appended;
        for (call, pa) in actions.into_iter().enumerate() {
            let log = match pa.result {
                Err(e) => {
                    ep.ledger.format_error();
                    let obs = format!("error: {e}");
                    let id = ep.ctx.push_tool(h, call, |id| format!("[{id}] {obs}"));
                    ep.records.insert(id, RecordInfo::Other);
                    ActionLog { action: None, ok: false, observation: obs }
                }
                Ok(action) => {
                    let (ok, observation, e) = self.execute(&mut ep, h, call, &action);
                    if let Some(e) = e {
                        // A summarize outranks a prune within the same turn.
                        if edit != ContextEdit::Summarized {
                            edit = e;
                        }
                    }
                    ActionLog { action: Some(action), ok, observation }
                }
            };
            logs.push(log);
        }
        if let Some(e) = overflow {
            ep.ledger.format_error();
            logs.push(ActionLog { action: None, ok: false, observation: format!("error: {e}") });
        }
        if spans.is_empty() {
            ep.ledger.format_error();
            let obs = format!("error: no tool call found; use {}", self.tool_names());
            let id = ep.ctx.push_user(|id| format!("[{id}] {obs}"));
            ep.records.insert(id, RecordInfo::Other);
            logs.push(ActionLog { action: None, ok: false, observation: obs });
        }
        let observation = logs.iter().map(|l| format!("- {}", l.observation)).collect::<Vec<_>>().join("\n");
        let tokens = ep.ctx.working_tokens(self.counter.as_ref());
        ep.ledger.observe_context(tokens);
        let over = tokens > self.knobs.max_context_tokens;
        if over {
            ep.ledger.violation(Budget::ContextTokens);
        }
        let next = if ep.sheet.all_answered() {
            self.finish(&mut ep, Termination::Completed)
        } else if over && self.knobs.budget_mode == BudgetMode::Enforce {
            self.finish(&mut ep, Termination::ContextBudget)
        } else if ep.turn >= self.knobs.max_turns {
            ep.ledger.violation(Budget::Turns);
            self.finish(&mut ep, Termination::TurnLimit)
        } else {
            Next::Continue(self.turn(&ep, edit))
        };
        let penalty = ep.ledger.take_turn_penalty();
        self.ep = Some(ep);
        Ok(Step { actions: logs, observation, penalty, next })
    }

    fn scripted(&self, kind: ScriptedKind, _rng: &mut dyn RngCore) -> Result<String, EnvError> {
        let ep = self.ep.as_ref().ok_or(EnvError::NotStarted)?;
        if ep.done {
            return Err(EnvError::Finished);
        }
        Ok(scripted::completion(kind, ep, &self.knobs, self.counter.as_ref()))
    }

    fn stats(&self) -> EpisodeStats {
        self.ep.as_ref().map(|e| e.ledger.stats.clone()).unwrap_or_default()
    }
}

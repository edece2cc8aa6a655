//! The reader protocol for baselines: a model-free manager (or nothing) handles the history,
//! and the reader model answers each question from a context built for it.
//!
//! [`ReaderEnv`] wraps a history environment (`locomo`, `longmemeval`) and exposes only the
//! reader's turns to the policy. It plays the ingestion turns itself with the scripted
//! manager, then, per question, builds one user message (task intro, context, question) and
//! hands it to the model without tools; the model's free-text reply is wrapped in
//! `answer(question_id, text)` and stepped into the inner environment, which scores it with
//! the benchmark's official scorer. Contexts:
//!
//! - [`ReaderContext::MemorySearch`]: the inner environment's own `memory_search(question, k)`
//!   over the memory bank the manager built (oracle, heuristic, no-memory);
//! - [`ReaderContext::FullHistory`]: every turn of the history, chronological, with session
//!   dates; when it does not fit the window, the **most recent turns that fit** are kept;
//! - [`ReaderContext::Bm25Turns`]: BM25 (the memory bank's scorer) over every turn, the top k
//!   turns by the question, shown in chronological order with their session dates.

use std::sync::{Arc, Mutex};

use memrl_envs::bm25::{Bm25Index, Bm25Params};
use memrl_envs::env::{ActionLog, ContextEdit, Env, EnvError, EpisodeStats, Next, ScriptedKind, Step, TaskId, Turn};
use memrl_envs::message::{ChatMessage, Role};
use memrl_envs::stream::{StreamChunk, StreamTask};
use memrl_envs::tokens::{TokenCounter, truncate_to_tokens};
use memrl_envs::tools::{Action, MAX_STRING_BYTES};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// What the reader sees besides the question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ReaderContext {
    /// The memory bank's top-k search hits for the question.
    MemorySearch {
        /// Hits (1..=20, the tool's limit).
        k: usize,
    },
    /// The raw history, most recent turns that fit the window.
    FullHistory,
    /// BM25 top-k turns of the raw history.
    Bm25Turns {
        /// Turns retrieved.
        k: usize,
    },
}

/// Tokens kept free beside the counted prompt: the chat template's markers and default system
/// prompt (SmolLM2 adds one of about 20 tokens) are not part of the counted text.
pub const TEMPLATE_RESERVE_TOKENS: usize = 64;

/// Settings of a reader evaluation.
#[derive(Debug, Clone, Copy)]
pub struct ReaderSettings {
    /// Context source.
    pub context: ReaderContext,
    /// Who writes the memory during the history.
    pub manager: ScriptedKind,
    /// The reader's window in tokens (prompt + answer).
    pub window: usize,
    /// Most tokens of one answer.
    pub answer_tokens: usize,
    /// BM25 parameters for [`ReaderContext::Bm25Turns`].
    pub bm25: Bm25Params,
}

/// What one question's reader context held (for the report).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReaderNote {
    /// Turns in the whole history.
    pub history_turns: usize,
    /// History tokens (counted turn by turn with the reader's tokenizer).
    pub history_tokens: usize,
    /// Items shown to the reader (turns or memories).
    pub items_shown: usize,
    /// Tokens of the reader's user message.
    pub prompt_tokens: usize,
}

/// The history environment seen through the reader protocol (see the module docs).
pub struct ReaderEnv {
    inner: Box<dyn Env>,
    task_id: TaskId,
    task: StreamTask,
    settings: ReaderSettings,
    counter: Arc<dyn TokenCounter>,
    notes: Arc<Mutex<Vec<ReaderNote>>>,
    rng: ChaCha8Rng,
    question: usize,
    turns: u32,
    history: Option<History>,
    done: bool,
}

/// The history's turns with their chunk and token counts, computed once per episode.
struct History {
    /// (chunk index, text, tokens) per turn, chronological.
    turns: Vec<(usize, String, usize)>,
    /// Token count of each chunk's date header.
    header_tokens: Vec<usize>,
    index: Option<Bm25Index>,
}

fn date_header(chunk: &StreamChunk) -> Option<String> {
    chunk.date.as_ref().map(|d| format!("DATE: {d}"))
}

fn is_ingest(turn: &Turn) -> bool {
    turn.offers("memory_add")
}

/// Removes tool-call markers from a reader reply (they would end the wrapping call early)
/// and cuts it to the tool's string limit.
pub fn clean_answer(completion: &str) -> String {
    let text = completion.replace("<tool_call>", "").replace("</tool_call>", "");
    let text = text.trim();
    let mut end = text.len().min(MAX_STRING_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

impl ReaderEnv {
    /// Wraps `inner`, which must play the history task `task` (id `task_id`); each question's
    /// context note is appended to `notes`.
    pub fn new(
        inner: Box<dyn Env>,
        task_id: TaskId,
        task: StreamTask,
        settings: ReaderSettings,
        counter: Arc<dyn TokenCounter>,
        notes: Arc<Mutex<Vec<ReaderNote>>>,
    ) -> Self {
        Self { inner, task_id, task, settings, counter, notes, rng: ChaCha8Rng::seed_from_u64(0), question: 0, turns: 0, history: None, done: false }
    }

    fn ensure_history(&mut self) {
        if self.history.is_none() {
            let mut turns = Vec::new();
            for (c, chunk) in self.task.chunks.iter().enumerate() {
                for unit in &chunk.units {
                    turns.push((c, unit.text.clone(), self.counter.count(&unit.text) + 1));
                }
            }
            let header_tokens = self.task.chunks.iter().map(|c| date_header(c).map_or(0, |h| self.counter.count(&h) + 1)).collect();
            let index = matches!(self.settings.context, ReaderContext::Bm25Turns { .. })
                .then(|| Bm25Index::new(&turns.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(), self.settings.bm25));
            self.history = Some(History { turns, header_tokens, index });
        }
    }

    fn history(&self) -> &History {
        self.history.as_ref().expect("ensure_history runs before the history is read")
    }

    /// Plays scripted ingestion turns until a question turn (or the end) and turns a
    /// question turn into the reader's turn.
    fn advance(&mut self, mut next: Next) -> Result<Next, EnvError> {
        loop {
            match next {
                Next::Done(end) => {
                    self.done = true;
                    return Ok(Next::Done(end));
                }
                Next::Continue(turn) if is_ingest(&turn) => {
                    let completion = self.inner.scripted(self.settings.manager, &mut self.rng)?;
                    next = self.inner.step(&completion)?.next;
                }
                Next::Continue(_) => return Ok(Next::Continue(self.reader_turn()?)),
            }
        }
    }

    fn question_id(&self) -> String {
        format!("q{}", self.question + 1)
    }

    fn reader_turn(&mut self) -> Result<Turn, EnvError> {
        self.ensure_history();
        let q = self
            .task
            .questions
            .get(self.question)
            .ok_or_else(|| EnvError::Data(format!("question {} is beyond the task's {}", self.question + 1, self.task.questions.len())))?
            .clone();
        let (source, listing) = match self.settings.context {
            ReaderContext::MemorySearch { k } => {
                let call = Action::MemorySearch { query: q.query.clone(), k }.to_call_text();
                let step = self.inner.step(&call)?;
                match &step.next {
                    Next::Continue(t) if t.edit == ContextEdit::Appended => {}
                    _ => {
                        return Err(EnvError::Knobs {
                            env: self.inner.name().into(),
                            message: "the reader needs question_turns >= 2 (one memory_search, then the answer)".into(),
                        });
                    }
                }
                let observation = step.actions.first().map(|a| a.observation.as_str()).unwrap_or("");
                let listing = observation.split_once('\n').map_or("(no matching memories)", |(_, rest)| rest).to_string();
                ("memories", vec![listing])
            }
            ReaderContext::FullHistory | ReaderContext::Bm25Turns { .. } => ("conversation", Vec::new()),
        };
        let lead = match self.settings.context {
            ReaderContext::MemorySearch { k } => format!("Below are up to {k} memories about it, best match first."),
            ReaderContext::FullHistory => "Below is the conversation (its most recent part, if it is too long).".to_string(),
            ReaderContext::Bm25Turns { k } => format!("Below are the {k} parts of the conversation most related to the question, in order."),
        };
        let prompt = |body: &str| {
            format!(
                "{} {lead}\n\n{body}\n\nBased on the {source} above, answer the question below with a short phrase, using its exact words where you can.\nQuestion: {}",
                self.task.intro, q.text
            )
        };
        let room = self.settings.window.saturating_sub(self.settings.answer_tokens + TEMPLATE_RESERVE_TOKENS);
        let fixed = self.counter.count(&prompt(""));
        let budget = room.saturating_sub(fixed);
        let (body, shown) = match self.settings.context {
            ReaderContext::MemorySearch { .. } => {
                let listing = listing.concat();
                let shown = if listing.starts_with('(') { 0 } else { listing.lines().count() };
                (truncate_to_tokens(&listing, budget, self.counter.as_ref()).to_string(), shown)
            }
            ReaderContext::FullHistory => self.recent_turns(budget, room, &prompt),
            ReaderContext::Bm25Turns { k } => self.retrieved_turns(&q.query, k, budget),
        };
        let content = prompt(&body);
        let history = self.history();
        let note = ReaderNote {
            history_turns: history.turns.len(),
            history_tokens: history.turns.iter().map(|t| t.2).sum(),
            items_shown: shown,
            prompt_tokens: self.counter.count(&content),
        };
        self.notes.lock().map_err(|_| EnvError::Data("reader notes poisoned".into()))?.push(note);
        let turn = Turn {
            index: self.turns,
            messages: vec![ChatMessage::new(Role::User, content)],
            tools: Arc::from(Vec::new()),
            tools_text: Arc::from(""),
            edit: if self.turns == 0 { ContextEdit::Initial } else { ContextEdit::Rebuilt },
            max_new_tokens: self.settings.answer_tokens,
            context_tokens: note.prompt_tokens,
        };
        Ok(turn)
    }

    /// Renders the turns `keep` (indices into the history, chronological) grouped under
    /// their chunks' date headers.
    fn render(&self, keep: &[usize]) -> String {
        let history = self.history();
        let mut out = String::new();
        let mut chunk = usize::MAX;
        for &i in keep {
            let (c, text, _) = &history.turns[i];
            if *c != chunk {
                chunk = *c;
                if let Some(h) = date_header(&self.task.chunks[*c]) {
                    out.push_str(&h);
                    out.push('\n');
                }
            }
            out.push_str(text);
            out.push('\n');
        }
        out.trim_end().to_string()
    }

    /// The most recent turns whose rendering fits `budget` tokens; the whole prompt is then
    /// re-counted and the oldest kept turn dropped until it fits `room`.
    fn recent_turns(&self, budget: usize, room: usize, prompt: &dyn Fn(&str) -> String) -> (String, usize) {
        let history = self.history();
        let (mut used, mut start, mut chunk) = (0usize, history.turns.len(), usize::MAX);
        for (i, (c, _, tokens)) in history.turns.iter().enumerate().rev() {
            let extra = tokens + if *c != chunk { history.header_tokens[*c] } else { 0 };
            if used + extra > budget {
                break;
            }
            used += extra;
            chunk = *c;
            start = i;
        }
        let total = history.turns.len();
        loop {
            let keep: Vec<usize> = (start..total).collect();
            let body = self.render(&keep);
            if start >= total || self.counter.count(&prompt(&body)) <= room {
                return (body, keep.len());
            }
            start += 1;
        }
    }

    /// The `k` best BM25 turns for `query` (positive scores only), chronological, within `budget`.
    fn retrieved_turns(&self, query: &str, k: usize, budget: usize) -> (String, usize) {
        let history = self.history();
        let mut hits = history.index.as_ref().map(|ix| ix.top_k(query, k)).unwrap_or_default();
        loop {
            let mut keep: Vec<usize> = hits.iter().map(|(i, _)| *i).collect();
            keep.sort_unstable();
            let body = self.render(&keep);
            if hits.is_empty() || self.counter.count(&body) <= budget {
                return (if keep.is_empty() { "(no matching turns)".into() } else { body }, keep.len());
            }
            hits.pop();
        }
    }
}

impl Env for ReaderEnv {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn task_count(&self, split: memrl_envs::env::Split) -> Option<u64> {
        self.inner.task_count(split)
    }

    fn reset(&mut self, task: TaskId, seed: u64) -> Result<Turn, EnvError> {
        if task != self.task_id {
            return Err(EnvError::Data(format!("reader env built for task {:?}, reset with {:?}", self.task_id, task)));
        }
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.question = 0;
        self.turns = 0;
        self.done = false;
        let first = self.inner.reset(task, seed)?;
        match self.advance(Next::Continue(first))? {
            Next::Continue(turn) => Ok(turn),
            Next::Done(_) => Err(EnvError::Data(format!("task {task:?} ended before its first question"))),
        }
    }

    fn step(&mut self, completion: &str) -> Result<Step, EnvError> {
        if self.done {
            return Err(EnvError::Finished);
        }
        let call = Action::Answer { question_id: self.question_id(), text: clean_answer(completion) }.to_call_text();
        let (mut actions, mut penalty) = (Vec::<ActionLog>::new(), 0.0);
        // A rejected answer leaves the question open; the inner env closes it after its turn budget.
        for _ in 0..64 {
            let step = self.inner.step(&call)?;
            actions.extend(step.actions);
            penalty += step.penalty;
            match step.next {
                Next::Continue(turn) if turn.edit == ContextEdit::Appended => continue,
                next => {
                    self.question += 1;
                    self.turns += 1;
                    let next = self.advance(next)?;
                    let observation = actions.iter().map(|a| format!("- {}", a.observation)).collect::<Vec<_>>().join("\n");
                    return Ok(Step { actions, observation, penalty, next });
                }
            }
        }
        Err(EnvError::Data(format!("question {} stayed open after 64 answers", self.question_id())))
    }

    fn scripted(&self, kind: ScriptedKind, _rng: &mut dyn RngCore) -> Result<String, EnvError> {
        Err(EnvError::NoScriptedMove(kind, "the reader protocol's turns are answered by the reader model".into()))
    }

    fn stats(&self) -> EpisodeStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memrl_envs::env::Split;
    use memrl_envs::locomo::{LocomoEnv, LocomoKnobs};
    use memrl_envs::stream::StreamSource;
    use memrl_envs::tokens::WhitespaceCounter;

    fn knobs() -> LocomoKnobs {
        // Tests run in the crate's folder: the data directory is $MEMRL_DATA_DIR, else the
        // `shared/data` beside this checkout.
        let dir = std::env::var_os("MEMRL_DATA_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
        LocomoKnobs {
            data_path: dir.join("locomo/locomo10.json").display().to_string(),
            conversations: Some(vec!["conv-30".into()]),
            questions_per_episode: 1,
            max_questions: Some(6),
            ..LocomoKnobs::default()
        }
    }

    fn reader(context: ReaderContext, manager: ScriptedKind, window: usize, index: u64) -> (ReaderEnv, Arc<Mutex<Vec<ReaderNote>>>, StreamTask) {
        let counter: Arc<dyn TokenCounter> = Arc::new(WhitespaceCounter);
        let env = LocomoEnv::new(knobs(), counter.clone()).unwrap();
        let id = TaskId { split: Split::Validation, index };
        let task = env.source().task(id).unwrap();
        let notes = Arc::new(Mutex::new(Vec::new()));
        let settings = ReaderSettings { context, manager, window, answer_tokens: 16, bm25: Bm25Params::default() };
        (ReaderEnv::new(Box::new(env), id, task.clone(), settings, counter, notes.clone()), notes, task)
    }

    fn user_text(turn: &Turn) -> &str {
        assert_eq!(turn.messages.len(), 1);
        assert_eq!(turn.messages[0].role, Role::User);
        assert!(turn.tools.is_empty() && turn.tools_text.is_empty());
        &turn.messages[0].content
    }

    #[test]
    fn full_history_keeps_the_most_recent_turns_that_fit() {
        let (mut env, notes, task) = reader(ReaderContext::FullHistory, ScriptedKind::NoMemory, 600, 0);
        let turn = env.reset(TaskId { split: Split::Validation, index: 0 }, 3).unwrap();
        let text = user_text(&turn).to_string();
        let all: Vec<&str> = task.chunks.iter().flat_map(|c| c.units.iter().map(|u| u.text.as_str())).collect();
        let last = all.last().unwrap();
        assert!(text.contains(last), "the latest turn is kept");
        assert!(!text.contains(all[0]), "the first turn does not fit");
        let note = notes.lock().unwrap()[0];
        assert!(note.items_shown > 3 && note.items_shown < all.len(), "{note:?}");
        // Exactly the last `items_shown` turns, and the prompt fits the window minus answer and reserve.
        assert!(text.contains(all[all.len() - note.items_shown]) && !text.contains(all[all.len() - note.items_shown - 1]));
        assert!(note.prompt_tokens <= 600 - 16 - TEMPLATE_RESERVE_TOKENS, "{note:?}");
        assert!(text.contains("DATE: ") && text.contains(&task.questions[0].text));
        assert_eq!(turn.max_new_tokens, 16);
    }

    #[test]
    fn bm25_turns_are_chronological_and_the_answer_is_scored() {
        let (mut env, notes, task) = reader(ReaderContext::Bm25Turns { k: 5 }, ScriptedKind::NoMemory, 100_000, 1);
        let turn = env.reset(TaskId { split: Split::Validation, index: 1 }, 0).unwrap();
        let text = user_text(&turn).to_string();
        let all: Vec<&str> = task.chunks.iter().flat_map(|c| c.units.iter().map(|u| u.text.as_str())).collect();
        let mut expected: Vec<usize> = Bm25Index::new(&all, Bm25Params::default()).top_k(&task.questions[0].query, 5).into_iter().map(|(i, _)| i).collect();
        expected.sort_unstable();
        assert_eq!(notes.lock().unwrap()[0].items_shown, expected.len());
        assert_eq!(expected.len(), 5);
        let positions: Vec<usize> = expected.iter().map(|&i| text.find(all[i]).expect("retrieved turn shown")).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "chronological: {positions:?}");
        // The reader's reply becomes the answer; markers are stripped.
        let gold = task.questions[0].ideal.clone();
        let step = env.step(&format!("  <tool_call>{gold}</tool_call>\n")).unwrap();
        match step.next {
            Next::Done(end) => {
                let q = &end.breakdown.questions[0];
                assert_eq!(q.prediction.as_deref(), Some(gold.as_str()));
                assert!(q.score > 0.99, "{q:?}");
            }
            Next::Continue(_) => panic!("one question per episode"),
        }
        assert!(matches!(env.step("again"), Err(EnvError::Finished)));
    }

    #[test]
    fn memory_search_reads_the_managers_bank() {
        let (mut env, notes, task) = reader(ReaderContext::MemorySearch { k: 5 }, ScriptedKind::Oracle, 100_000, 2);
        let turn = env.reset(TaskId { split: Split::Validation, index: 2 }, 0).unwrap();
        let text = user_text(&turn).to_string();
        let evidence = &task.questions[0].evidence;
        let units: Vec<&memrl_envs::stream::Unit> = task.chunks.iter().flat_map(|c| &c.units).filter(|u| evidence.contains(&u.key)).collect();
        assert!(!units.is_empty());
        assert!(units.iter().all(|u| text.contains(&u.text)), "the oracle bank holds the evidence: {text}");
        let shown = notes.lock().unwrap()[0].items_shown;
        assert!(shown >= 1 && shown <= units.len(), "{shown}");
        assert!(env.reset(TaskId { split: Split::Validation, index: 0 }, 0).is_err(), "built for another task");
    }

    #[test]
    fn answers_are_cleaned() {
        assert_eq!(clean_answer("  in May <tool_call> 2023</tool_call>\n"), "in May  2023");
        let long = "é".repeat(MAX_STRING_BYTES);
        let cut = clean_answer(&long);
        assert!(cut.len() <= MAX_STRING_BYTES && cut.chars().all(|c| c == 'é'));
    }
}

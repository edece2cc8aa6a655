//! `longmemeval`: LongMemEval instances on the streaming engine of [`crate::stream`].
//! Each instance is one question over its own haystack: the sessions are streamed in
//! chronological order, one chunk per session (`DATE: <raw>\nCONVERSATION:\n` then
//! `user: …` / `assistant: …` lines), with memory operations per chunk; then the question
//! (with its question date) is answered with `memory_search` + `answer`.
//!
//! Score (knob `scorer`): `proxy` (the deterministic proxy of
//! `memrl_datasets::scoring::longmemeval::proxy`, NOT the official judge) or `judge`
//! (the official judge prompt sent to a [`Judge`] supplied with
//! [`LongMemEvalEnv::with_judge`]; a judge failure scores 0).
//!
//! Split: questions shuffled with `split_seed`, the first `train_fraction` to train, the
//! next `validation_fraction` to validation, the rest to test.
//!
//! Scripted policies as in `locomo`: the oracle stores exactly the `has_answer` turns and
//! answers the gold (for abstention questions, that the information is not enough).

use crate::bm25::Bm25Params;
use crate::data_path;
use crate::env::{Env, EnvError, EpisodeStats, ScriptedKind, Split, Step, TaskId, Turn};
use crate::ids::IdStyle;
use crate::ledger::{Penalties, derive_seed};
use crate::memory::BudgetMode;
use crate::stream::{StreamChunk, StreamEnv, StreamQuestion, StreamSettings, StreamSource, StreamTask, Unit};
use crate::tokens::TokenCounter;
use crate::tools::MAX_STRING_BYTES;
use memrl_datasets::longmemeval::{LongMemEvalDataset, LongMemEvalQuestion, Role};
use memrl_datasets::scoring::longmemeval::{Judge, judge_response, proxy::proxy_verdict};
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// How answers are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LongMemEvalScorer {
    /// Deterministic proxy (not the official metric).
    #[default]
    Proxy,
    /// The official judge prompt through a supplied judge.
    Judge,
}

/// Knobs of the `longmemeval` environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LongMemEvalKnobs {
    /// Path of a LongMemEval JSON file (`_oracle`, `_s` or `_m`; as given, else inside the data directory: [`crate::data_path`]).
    pub data_path: String,
    /// Seed of the question split.
    pub split_seed: u64,
    /// Fraction of questions in train.
    pub train_fraction: f64,
    /// Fraction of questions in validation.
    pub validation_fraction: f64,
    /// Stream at most this many sessions (evidence sessions always kept, then the
    /// earliest others); None streams all.
    pub max_sessions: Option<usize>,
    /// Related memories shown per chunk.
    pub manager_k: usize,
    /// Memory capacity in entries.
    pub capacity: usize,
    /// Memory capacity in tokens.
    pub memory_tokens: usize,
    /// Turns allowed for the question.
    pub question_turns: u32,
    /// Token budget of one completion.
    pub max_turn_tokens: usize,
    /// Scorer.
    pub scorer: LongMemEvalScorer,
    /// Capacity handling.
    pub budget_mode: BudgetMode,
    /// Id spelling.
    pub id_style: IdStyle,
    /// BM25 parameters.
    pub bm25: Bm25Params,
    /// Penalties.
    pub penalties: Penalties,
}

impl Default for LongMemEvalKnobs {
    fn default() -> Self {
        Self {
            data_path: "longmemeval/longmemeval_s_cleaned.json".into(),
            split_seed: 0,
            train_fraction: 0.1,
            validation_fraction: 0.05,
            max_sessions: None,
            manager_k: 10,
            capacity: 1024,
            memory_tokens: 65_536,
            question_turns: 3,
            max_turn_tokens: 4096,
            scorer: LongMemEvalScorer::Proxy,
            budget_mode: BudgetMode::Enforce,
            id_style: IdStyle::Sequential,
            bm25: Bm25Params::default(),
            penalties: Penalties::default(),
        }
    }
}

/// What abstention questions' ideal answer says.
pub const ABSTAIN: &str = "The information provided is not enough to answer this question.";

/// Loads a dataset once per path per process (the `_s` file is hundreds of MB and every
/// episode builds its own environment).
fn load(path: &str) -> Result<Arc<LongMemEvalDataset>, EnvError> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<LongMemEvalDataset>>>> = OnceLock::new();
    let resolved = data_path::resolve(path)?;
    let mut guard = CACHE.get_or_init(Default::default).lock().map_err(|_| EnvError::Data("longmemeval cache poisoned".into()))?;
    if let Some(d) = guard.get(&resolved) {
        return Ok(d.clone());
    }
    let d = Arc::new(LongMemEvalDataset::load(&resolved)?);
    guard.insert(resolved, d.clone());
    Ok(d)
}

/// The LongMemEval task source.
pub struct LongMemEvalSource {
    knobs: LongMemEvalKnobs,
    data: Arc<LongMemEvalDataset>,
    splits: [Vec<usize>; 3],
    judge: Option<Arc<dyn Judge + Send + Sync>>,
}

fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl LongMemEvalSource {
    /// Loads the data and builds the split.
    pub fn new(knobs: LongMemEvalKnobs, judge: Option<Arc<dyn Judge + Send + Sync>>) -> Result<Self, EnvError> {
        let (t, v) = (knobs.train_fraction, knobs.validation_fraction);
        if !(0.0..=1.0).contains(&t) || !(0.0..=1.0).contains(&v) || t + v > 1.0 {
            return Err(EnvError::Knobs {
                env: "longmemeval".into(),
                message: "train_fraction and validation_fraction must be in [0, 1] and sum to at most 1".into(),
            });
        }
        if knobs.capacity == 0 || knobs.question_turns == 0 {
            return Err(EnvError::Knobs { env: "longmemeval".into(), message: "capacity and question_turns must be at least 1".into() });
        }
        if knobs.scorer == LongMemEvalScorer::Judge && judge.is_none() {
            return Err(EnvError::Knobs {
                env: "longmemeval".into(),
                message: "scorer = \"judge\" needs a judge: build with LongMemEvalEnv::with_judge".into(),
            });
        }
        let data = load(&knobs.data_path)?;
        let mut order: Vec<usize> = (0..data.questions.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(&[knobs.split_seed, 0x1E])));
        let n = order.len();
        let nt = (n as f64 * t).round() as usize;
        let nv = ((n as f64 * v).round() as usize).min(n - nt);
        let splits = [order[..nt].to_vec(), order[nt..nt + nv].to_vec(), order[nt + nv..].to_vec()];
        Ok(Self { knobs, data, splits, judge })
    }

    /// The dataset question a task question comes from.
    pub fn question(&self, q: &StreamQuestion) -> Option<&LongMemEvalQuestion> {
        self.data.questions.get(q.item)
    }

    fn sessions(&self, q: &LongMemEvalQuestion) -> Vec<usize> {
        let order = q.chronological_order();
        let Some(max) = self.knobs.max_sessions else { return order };
        let evidence: Vec<usize> = order.iter().copied().filter(|&i| q.answer_session_ids.contains(&q.haystack[i].id)).collect();
        let mut keep = evidence.clone();
        keep.extend(order.iter().copied().filter(|i| !evidence.contains(i)).take(max.saturating_sub(evidence.len())));
        keep.sort_by_key(|&i| q.haystack[i].date.value);
        keep
    }
}

impl StreamSource for LongMemEvalSource {
    fn name(&self) -> &'static str {
        "longmemeval"
    }

    fn task_count(&self, split: Split) -> u64 {
        self.splits[split.code() as usize].len() as u64
    }

    fn task(&self, id: TaskId) -> Result<StreamTask, EnvError> {
        let qi = *self.splits[id.split.code() as usize].get(id.index as usize).ok_or(EnvError::TaskOutOfRange {
            split: id.split,
            index: id.index,
            count: self.task_count(id.split),
        })?;
        let q = &self.data.questions[qi];
        let mut chunks = Vec::new();
        let mut evidence = Vec::new();
        for si in self.sessions(q) {
            let s = &q.haystack[si];
            let mut text = format!("DATE: {}\nCONVERSATION:\n", s.date.raw);
            let mut units = Vec::new();
            for (ti, turn) in s.turns.iter().enumerate() {
                let role = match turn.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                text.push_str(&format!("{role}: {}\n", turn.content.trim()));
                let key = format!("{}:{}", s.id, ti + 1);
                if turn.has_answer {
                    evidence.push(key.clone());
                }
                units.push(Unit { key, text: cut(&format!("On {} the {role} said: {}", s.date.raw, turn.content.trim()), MAX_STRING_BYTES - 64).to_string() });
            }
            chunks.push(StreamChunk { text, date: Some(s.date.raw.clone()), units });
        }
        let ideal = if q.is_abstention() { ABSTAIN.to_string() } else { q.answer.clone() };
        Ok(StreamTask {
            intro: "The history is a series of chat sessions between a user and an assistant.".into(),
            chunks,
            questions: vec![StreamQuestion {
                text: format!("{} (Current date: {})", q.question, q.question_date.raw),
                query: q.question.clone(),
                gold: q.answer.clone(),
                ideal,
                evidence,
                category: Some(q.question_type.name().to_string()),
                item: qi,
            }],
        })
    }

    fn score(&self, sq: &StreamQuestion, prediction: &str) -> f64 {
        let Some(q) = self.data.questions.get(sq.item) else { return 0.0 };
        let correct = match (&self.knobs.scorer, &self.judge) {
            (LongMemEvalScorer::Judge, Some(j)) => judge_response(j.as_ref(), q, prediction).unwrap_or(false),
            _ => proxy_verdict(q, prediction).correct,
        };
        if correct { 1.0 } else { 0.0 }
    }
}

/// The `longmemeval` environment.
pub struct LongMemEvalEnv {
    inner: StreamEnv<LongMemEvalSource>,
}

impl LongMemEvalEnv {
    /// Loads the data and builds the environment (proxy scorer).
    pub fn new(knobs: LongMemEvalKnobs, counter: Arc<dyn TokenCounter>) -> Result<Self, EnvError> {
        Self::build(knobs, counter, None)
    }

    /// As [`LongMemEvalEnv::new`], scoring with `judge` when `scorer = "judge"`.
    pub fn with_judge(knobs: LongMemEvalKnobs, counter: Arc<dyn TokenCounter>, judge: Arc<dyn Judge + Send + Sync>) -> Result<Self, EnvError> {
        Self::build(knobs, counter, Some(judge))
    }

    /// The task source (split, tasks, dataset questions).
    pub fn source(&self) -> &LongMemEvalSource {
        self.inner.source()
    }

    fn build(knobs: LongMemEvalKnobs, counter: Arc<dyn TokenCounter>, judge: Option<Arc<dyn Judge + Send + Sync>>) -> Result<Self, EnvError> {
        let settings = StreamSettings {
            capacity: knobs.capacity,
            memory_tokens: knobs.memory_tokens,
            manager_k: knobs.manager_k,
            question_turns: knobs.question_turns,
            max_turn_tokens: knobs.max_turn_tokens,
            budget_mode: knobs.budget_mode,
            id_style: knobs.id_style,
            bm25: knobs.bm25,
            penalties: knobs.penalties,
        };
        Ok(Self { inner: StreamEnv::new(LongMemEvalSource::new(knobs, judge)?, settings, counter) })
    }
}

impl Env for LongMemEvalEnv {
    fn name(&self) -> &'static str {
        "longmemeval"
    }
    fn task_count(&self, split: Split) -> Option<u64> {
        Some(self.inner.source().task_count(split))
    }
    fn reset(&mut self, task: TaskId, seed: u64) -> Result<Turn, EnvError> {
        self.inner.reset(task, seed)
    }
    fn step(&mut self, completion: &str) -> Result<Step, EnvError> {
        self.inner.step(completion)
    }
    fn scripted(&self, kind: ScriptedKind, _rng: &mut dyn RngCore) -> Result<String, EnvError> {
        self.inner.scripted(kind)
    }
    fn stats(&self) -> EpisodeStats {
        self.inner.stats()
    }
}

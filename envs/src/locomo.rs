//! `locomo`: LoCoMo conversations streamed into a memory bank, then questions answered
//! from memory (Memory-R1's setting, algorithms.md §2, on the streaming engine of
//! [`crate::stream`]).
//!
//! Chunks are whole sessions (default) or `chunk_turns` turns, each headed by the
//! session date exactly as the official QA prompt writes it (`DATE: …\nCONVERSATION:\n`,
//! turns as `<speaker> said, "<text>"`). Category-2 questions get the official suffix.
//! Reward = mean per-question score: the official LoCoMo score (stored, rounded to 3
//! decimals), SQuAD exact match, or token F1 (knob `metric`).
//!
//! Split (knob `split_mode`):
//! - `memory-r1` (default): by conversation, as Memory-R1 did (1:1:8 conversations):
//!   conv-26 → train, conv-30 → validation, the other 8 → test. Without category 5 this is
//!   exactly Memory-R1's 152 / 81 / 1307 questions.
//! - `by-question`: within every conversation, its questions are shuffled with
//!   `split_seed` and cut in the ratio 152 : 81 : 1307.
//!
//! Tasks of a split: for each conversation in file order, its split questions in file
//! order, cut into episodes of `questions_per_episode`.
//!
//! Scripted policies (in [`crate::stream`]): the oracle adds exactly the evidence turns of
//! the episode's questions, searches with the question and answers the best-scoring text
//! (the gold; its part before `;` for category 3; "Not mentioned in the conversation" for
//! category 5). The heuristic (Mem0-style store) adds every turn and, when full,
//! overwrites the least recently updated entries; it answers with its top search hit.
//! Full-context adds every turn ignoring capacity; no-memory stores nothing and answers
//! "unknown".

use crate::bm25::Bm25Params;
use crate::data_path;
use crate::env::{Env, EnvError, EpisodeStats, ScriptedKind, Split, Step, TaskId, Turn};
use crate::ids::IdStyle;
use crate::ledger::{Penalties, derive_seed};
use crate::memory::BudgetMode;
use crate::stream::{StreamChunk, StreamEnv, StreamQuestion, StreamSettings, StreamSource, StreamTask, Unit};
use crate::text::exact_match;
use crate::tokens::TokenCounter;
use memrl_datasets::locomo::{Category, LocomoDataset, LocomoSample, QaItem, Turn as LocomoTurn, render_turn};
use memrl_datasets::scoring::locomo as official;
use rand::RngCore;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// Memory-R1's question counts per split (adversarial excluded).
pub const MEMORY_R1_COUNTS: [usize; 3] = [152, 81, 1307];

/// How questions are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitMode {
    /// By conversation: conv-26 train, conv-30 validation, the rest test.
    #[default]
    MemoryR1,
    /// By question within each conversation, seeded, ratio 152 : 81 : 1307.
    ByQuestion,
}

/// Reward metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocomoMetric {
    /// The official per-category score (README §1.5).
    #[default]
    Official,
    /// SQuAD-normalised exact match against the gold answer (Memory-R1's reward);
    /// category 5 keeps the official phrase rule (it has no gold answer).
    ExactMatch,
    /// Official token F1 against the gold answer, for every category.
    F1,
}

/// Knobs of the `locomo` environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocomoKnobs {
    /// Path of `locomo10.json` (as given, else inside the data directory: [`crate::data_path`]).
    pub data_path: String,
    /// Split rule.
    pub split_mode: SplitMode,
    /// Seed of the by-question split.
    pub split_seed: u64,
    /// Include category 5 (adversarial) questions, asked in the official two-option form.
    pub include_adversarial: bool,
    /// Questions per episode.
    pub questions_per_episode: usize,
    /// 0: one chunk per session; k > 0: chunks of k turns (date header repeated).
    pub chunk_turns: usize,
    /// Stream only the first N sessions (and keep only questions whose evidence lies in
    /// them); None streams everything.
    pub max_sessions: Option<u32>,
    /// Keep only these conversations (sample ids such as `conv-41`), in file order; None
    /// keeps all. An unknown id is an error.
    pub conversations: Option<Vec<String>>,
    /// Keep at most N questions per split, from the fewest conversations that hold N (the first
    /// ones in file order: streaming a conversation is what an evaluation pays for), evenly
    /// spaced over those conversations' questions (positions `floor(j * n / N)`), so that
    /// categories, which the data lists in blocks, stay represented in proportion; None keeps
    /// all. For capped evaluations.
    pub max_questions: Option<usize>,
    /// Related memories shown per chunk (Memory-R1's TopK retrieval).
    pub manager_k: usize,
    /// Memory capacity in entries.
    pub capacity: usize,
    /// Memory capacity in tokens.
    pub memory_tokens: usize,
    /// Turns allowed per question (search, then answer).
    pub question_turns: u32,
    /// Token budget of one completion.
    pub max_turn_tokens: usize,
    /// Reward metric.
    pub metric: LocomoMetric,
    /// Capacity handling.
    pub budget_mode: BudgetMode,
    /// Id spelling.
    pub id_style: IdStyle,
    /// BM25 parameters of memory search.
    pub bm25: Bm25Params,
    /// Penalties.
    pub penalties: Penalties,
}

impl Default for LocomoKnobs {
    fn default() -> Self {
        Self {
            data_path: "locomo/locomo10.json".into(),
            split_mode: SplitMode::MemoryR1,
            split_seed: 0,
            include_adversarial: false,
            questions_per_episode: 10,
            chunk_turns: 0,
            max_sessions: None,
            conversations: None,
            max_questions: None,
            manager_k: 10,
            capacity: 512,
            memory_tokens: 32_768,
            question_turns: 3,
            max_turn_tokens: 4096,
            metric: LocomoMetric::Official,
            budget_mode: BudgetMode::Enforce,
            id_style: IdStyle::Sequential,
            bm25: Bm25Params::default(),
            penalties: Penalties::default(),
        }
    }
}

/// Loads a dataset once per path per process.
fn load(path: &str) -> Result<Arc<LocomoDataset>, EnvError> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<LocomoDataset>>>> = OnceLock::new();
    let resolved = data_path::resolve(path)?;
    let cache = CACHE.get_or_init(Default::default);
    let mut guard = cache.lock().map_err(|_| EnvError::Data("locomo cache poisoned".into()))?;
    if let Some(d) = guard.get(&resolved) {
        return Ok(d.clone());
    }
    let d = Arc::new(LocomoDataset::load(&resolved)?);
    guard.insert(resolved, d.clone());
    Ok(d)
}

/// One episode's worth of questions: (conversation index, question indices).
type Batch = (usize, Vec<usize>);

/// The LoCoMo task source.
pub struct LocomoSource {
    knobs: LocomoKnobs,
    data: Arc<LocomoDataset>,
    tasks: [Vec<Batch>; 3],
    questions: [usize; 3],
}

fn usable(sample: &LocomoSample, qa: &QaItem, knobs: &LocomoKnobs) -> bool {
    if qa.category == Category::Adversarial && !knobs.include_adversarial {
        return false;
    }
    match knobs.max_sessions {
        None => true,
        Some(n) => {
            !qa.evidence.parsed.is_empty() && qa.evidence.unparsed.is_empty() && qa.evidence.parsed.iter().all(|d| d.session <= n && sample.turn(*d).is_some())
        }
    }
}

/// Keeps at most `cap` of the questions of `convs`: the fewest leading conversations that hold
/// `cap` questions, and within them (flattened in order) the evenly spaced positions
/// `floor(j * n / cap)`; conversations left without questions are dropped.
fn spread(mut convs: Vec<Batch>, cap: usize) -> Vec<Batch> {
    let mut held = 0;
    let needed = convs
        .iter()
        .position(|(_, v)| {
            held += v.len();
            held >= cap
        })
        .map_or(convs.len(), |i| i + 1);
    convs.truncate(needed);
    let n: usize = convs.iter().map(|(_, v)| v.len()).sum();
    if n <= cap {
        return convs;
    }
    let keep: HashSet<usize> = (0..cap).map(|j| j * n / cap).collect();
    let mut position = 0;
    convs
        .into_iter()
        .filter_map(|(c, v)| {
            let kept: Vec<usize> = v
                .into_iter()
                .filter(|_| {
                    let k = keep.contains(&position);
                    position += 1;
                    k
                })
                .collect();
            (!kept.is_empty()).then_some((c, kept))
        })
        .collect()
}

impl LocomoSource {
    /// Loads the data and builds the split.
    pub fn new(knobs: LocomoKnobs) -> Result<Self, EnvError> {
        if knobs.questions_per_episode == 0 || knobs.capacity == 0 || knobs.question_turns == 0 {
            return Err(EnvError::Knobs { env: "locomo".into(), message: "questions_per_episode, capacity and question_turns must be at least 1".into() });
        }
        let data = load(&knobs.data_path)?;
        if let Some(wanted) = &knobs.conversations {
            if let Some(unknown) = wanted.iter().find(|w| !data.samples.iter().any(|s| &s.sample_id == *w)) {
                let known: Vec<&str> = data.samples.iter().map(|s| s.sample_id.as_str()).collect();
                return Err(EnvError::Knobs {
                    env: "locomo".into(),
                    message: format!("conversations: unknown sample id {unknown:?} (expected some of {})", known.join(", ")),
                });
            }
        }
        if knobs.max_questions == Some(0) {
            return Err(EnvError::Knobs { env: "locomo".into(), message: "max_questions must be at least 1 (or absent)".into() });
        }
        let mut per_split: [Vec<(usize, Vec<usize>)>; 3] = Default::default();
        for (c, sample) in data.samples.iter().enumerate() {
            if knobs.conversations.as_ref().is_some_and(|w| !w.contains(&sample.sample_id)) {
                continue;
            }
            let mut qs: Vec<usize> = (0..sample.qa.len()).filter(|&i| usable(sample, &sample.qa[i], &knobs)).collect();
            let assign: [Vec<usize>; 3] = match knobs.split_mode {
                SplitMode::MemoryR1 => {
                    let s = match sample.sample_id.as_str() {
                        "conv-26" => 0,
                        "conv-30" => 1,
                        _ => 2,
                    };
                    let mut a: [Vec<usize>; 3] = Default::default();
                    a[s] = qs;
                    a
                }
                SplitMode::ByQuestion => {
                    qs.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(&[knobs.split_seed, c as u64])));
                    let total: usize = MEMORY_R1_COUNTS.iter().sum();
                    let n = qs.len();
                    let train = (n * MEMORY_R1_COUNTS[0] + total / 2) / total;
                    let val = (n * MEMORY_R1_COUNTS[1] + total / 2) / total;
                    let mut a: [Vec<usize>; 3] = [qs[..train].to_vec(), qs[train..train + val].to_vec(), qs[train + val..].to_vec()];
                    a.iter_mut().for_each(|v| v.sort());
                    a
                }
            };
            for (s, v) in assign.into_iter().enumerate() {
                if !v.is_empty() {
                    per_split[s].push((c, v));
                }
            }
        }
        if let Some(cap) = knobs.max_questions {
            per_split = per_split.map(|convs| spread(convs, cap));
        }
        let questions = [0, 1, 2].map(|s| per_split[s].iter().map(|(_, v)| v.len()).sum());
        let tasks = per_split
            .map(|convs| convs.into_iter().flat_map(|(c, v)| v.chunks(knobs.questions_per_episode).map(|b| (c, b.to_vec())).collect::<Vec<_>>()).collect());
        Ok(Self { knobs, data, tasks, questions })
    }

    /// Questions per split (train, validation, test).
    pub fn question_counts(&self) -> [usize; 3] {
        self.questions
    }

    /// The loaded dataset.
    pub fn dataset(&self) -> &LocomoDataset {
        &self.data
    }

    /// Where a task question comes from: (conversation position in the file, index in its
    /// `qa` list).
    pub fn locate(q: &StreamQuestion) -> (usize, usize) {
        (q.item >> 16, q.item & 0xFFFF)
    }

    fn unit(turn: &LocomoTurn) -> Unit {
        let mut text = format!("{} said: {}", turn.speaker, turn.text.trim());
        if let Some(c) = &turn.blip_caption {
            text.push_str(&format!(" (and shared {c})"));
        }
        Unit { key: turn.dia_id.clone(), text }
    }

    fn chunks(&self, sample: &LocomoSample) -> Vec<StreamChunk> {
        let mut out = Vec::new();
        for session in &sample.conversation.sessions {
            if self.knobs.max_sessions.is_some_and(|n| session.number > n) {
                continue;
            }
            let size = if self.knobs.chunk_turns == 0 { session.turns.len().max(1) } else { self.knobs.chunk_turns };
            for turns in session.turns.chunks(size) {
                let mut text = format!("DATE: {}\nCONVERSATION:\n", session.date_time.raw);
                for t in turns {
                    text.push_str(&render_turn(t));
                }
                out.push(StreamChunk { text, date: Some(session.date_time.raw.clone()), units: turns.iter().map(Self::unit).collect() });
            }
        }
        out
    }

    fn question(&self, task: TaskId, sample: &LocomoSample, i: usize, item: usize) -> StreamQuestion {
        let qa = &sample.qa[i];
        let gold = qa.gold().to_string();
        let mut text = qa.question.clone();
        let mut ideal = match (self.knobs.metric, qa.category) {
            (LocomoMetric::Official, Category::OpenDomain) => official::open_domain_gold(&gold).to_string(),
            _ => gold.clone(),
        };
        match qa.category {
            Category::Temporal => text.push_str(" Use DATE of CONVERSATION to answer with an approximate date."),
            Category::Adversarial => {
                // The official two-option form, option order drawn from the task.
                let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(&[task.index, i as u64, 0xAD]));
                let adv = qa.adversarial_answer.clone().unwrap_or_default();
                let (a, b) =
                    if rng.random_bool(0.5) { (official::NOT_MENTIONED_OPTION.to_string(), adv) } else { (adv, official::NOT_MENTIONED_OPTION.to_string()) };
                text = format!("{text} Select the correct answer: (a) {a} (b) {b}.");
                ideal = official::NOT_MENTIONED_OPTION.to_string();
            }
            _ => {}
        }
        StreamQuestion {
            query: qa.question.clone(),
            text,
            gold,
            ideal,
            evidence: qa.evidence.parsed.iter().map(|d| format!("D{}:{}", d.session, d.turn)).collect(),
            category: Some(qa.category.name().to_string()),
            item,
        }
    }
}

/// Maps a one- or three-character reply to a category-5 question (`question_text` as the
/// task shows it, with its two options) to its option text, as the official pipeline does;
/// any other reply is returned unchanged.
pub fn resolve_option(question_text: &str, prediction: &str) -> String {
    let p = prediction.trim().to_lowercase();
    let options = question_text
        .rsplit_once("Select the correct answer: (a) ")
        .and_then(|(_, rest)| rest.split_once(" (b) "))
        .map(|(a, b)| (a.to_string(), b.trim_end_matches('.').to_string()));
    match (options, p.chars().count()) {
        (Some((a, b)), 1) => {
            if p == "a" {
                a
            } else {
                b
            }
        }
        (Some((a, b)), 3) => {
            if p.contains("(a)") {
                a
            } else {
                b
            }
        }
        _ => prediction.to_string(),
    }
}

impl StreamSource for LocomoSource {
    fn name(&self) -> &'static str {
        "locomo"
    }

    fn task_count(&self, split: Split) -> u64 {
        self.tasks[split.code() as usize].len() as u64
    }

    fn task(&self, id: TaskId) -> Result<StreamTask, EnvError> {
        let (c, qs) = self.tasks[id.split.code() as usize].get(id.index as usize).ok_or(EnvError::TaskOutOfRange {
            split: id.split,
            index: id.index,
            count: self.task_count(id.split),
        })?;
        let sample = &self.data.samples[*c];
        let conv = &sample.conversation;
        Ok(StreamTask {
            intro: format!("The history is a conversation between {} and {} ({}).", conv.speaker_a, conv.speaker_b, sample.sample_id),
            chunks: self.chunks(sample),
            questions: qs.iter().map(|&i| self.question(id, sample, i, (*c << 16) | i)).collect(),
        })
    }

    fn score(&self, q: &StreamQuestion, prediction: &str) -> f64 {
        let (c, i) = Self::locate(q);
        let Some(qa) = self.data.samples.get(c).and_then(|s| s.qa.get(i)) else { return 0.0 };
        // Category 5 has no gold answer: every metric uses the official phrase rule.
        if qa.category == Category::Adversarial {
            return official::score_qa(qa, &resolve_option(&q.text, prediction));
        }
        match self.knobs.metric {
            LocomoMetric::Official => official::score_qa(qa, prediction),
            LocomoMetric::ExactMatch => exact_match(prediction, qa.gold()),
            LocomoMetric::F1 => official::token_f1(prediction, qa.gold()),
        }
    }
}

/// The `locomo` environment.
pub struct LocomoEnv {
    inner: StreamEnv<LocomoSource>,
}

impl LocomoEnv {
    /// Loads the data (cached per path) and builds the environment.
    pub fn new(knobs: LocomoKnobs, counter: Arc<dyn TokenCounter>) -> Result<Self, EnvError> {
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
        Ok(Self { inner: StreamEnv::new(LocomoSource::new(knobs)?, settings, counter) })
    }

    /// The task source (split counts, tasks).
    pub fn source(&self) -> &LocomoSource {
        self.inner.source()
    }
}

impl Env for LocomoEnv {
    fn name(&self) -> &'static str {
        "locomo"
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

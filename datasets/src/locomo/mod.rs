//! Typed loader for LoCoMo's `locomo10.json` (snap-research/locomo; schema and quirks in
//! `shared/data/README.md` §1.2).
//!
//! Quirks handled: integer answers (kept as their decimal text), category-5 items without
//! `answer`, orphan `session_N_date_time` keys without a session (sessions are the
//! `session_N` keys, sorted numerically), empty or malformed evidence ids (kept raw, parsed
//! best-effort), and image turns (`img_url`, `blip_caption`, `query`, `re-download`).

mod dates;
mod evidence;
mod render;
mod schema;

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

pub use dates::{LocomoDate, LocomoDateTime, parse_locomo_date, parse_locomo_date_time};
pub use evidence::{DiaId, Evidence};
pub use render::{render_full_context, render_session, render_turn};

use crate::error::{LoadError, from_json_slice, read_file};

/// A QA category, with the official meaning of each integer id (README §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Id 1: combine facts from several turns or sessions (answers are often lists).
    MultiHop,
    /// Id 2: "when" questions, answered relative to session dates.
    Temporal,
    /// Id 3: inference with world knowledge; the gold is often "X; reason".
    OpenDomain,
    /// Id 4: one fact from one turn.
    SingleHop,
    /// Id 5: unanswerable or misattributed; the right reply says it is not mentioned.
    Adversarial,
}

impl Category {
    /// All categories in the official report order: 4, 1, 2, 3, 5.
    pub const REPORT_ORDER: [Category; 5] = [Category::SingleHop, Category::MultiHop, Category::Temporal, Category::OpenDomain, Category::Adversarial];

    /// The category for an integer id 1-5.
    pub fn from_id(id: u64) -> Option<Self> {
        match id {
            1 => Some(Self::MultiHop),
            2 => Some(Self::Temporal),
            3 => Some(Self::OpenDomain),
            4 => Some(Self::SingleHop),
            5 => Some(Self::Adversarial),
            _ => None,
        }
    }

    /// The integer id used in the file.
    pub fn id(self) -> u8 {
        match self {
            Self::MultiHop => 1,
            Self::Temporal => 2,
            Self::OpenDomain => 3,
            Self::SingleHop => 4,
            Self::Adversarial => 5,
        }
    }

    /// The official name: `multi-hop`, `temporal`, `open-domain`, `single-hop`, `adversarial`.
    pub fn name(self) -> &'static str {
        match self {
            Self::MultiHop => "multi-hop",
            Self::Temporal => "temporal",
            Self::OpenDomain => "open-domain",
            Self::SingleHop => "single-hop",
            Self::Adversarial => "adversarial",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The whole benchmark file: one [`LocomoSample`] per conversation, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct LocomoDataset {
    /// The conversations with their QA, in file order.
    pub samples: Vec<LocomoSample>,
}

/// One conversation with its annotations (one element of the top-level array).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LocomoSample {
    /// `"conv-26"` etc.
    pub sample_id: String,
    /// Speakers and sessions.
    pub conversation: Conversation,
    /// The annotated questions; a prediction's `qa_index` is a position in this list.
    pub qa: Vec<QaItem>,
    /// Human-annotated events per session, ascending by session (empty if absent).
    #[serde(default, deserialize_with = "schema::event_summary")]
    pub event_summary: Vec<SessionEvents>,
    /// Generated per-session facts with evidence, ascending by session (empty if absent).
    #[serde(default, deserialize_with = "schema::observations")]
    pub observation: Vec<SessionObservations>,
    /// Generated per-session summaries, ascending by session (empty if absent).
    #[serde(default, deserialize_with = "schema::session_summaries")]
    pub session_summary: Vec<SessionSummary>,
}

/// The dialogue between two speakers.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// First speaker's name.
    pub speaker_a: String,
    /// Second speaker's name.
    pub speaker_b: String,
    /// The sessions (keys `session_N` holding a list), ascending by `N`.
    pub sessions: Vec<Session>,
    /// `session_N_date_time` keys with no `session_N` (conv-26 has 16), ascending by `N`.
    pub orphan_session_dates: Vec<(u32, LocomoDateTime)>,
}

/// One session: its number, timestamp and turns.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The `N` of `session_N`.
    pub number: u32,
    /// The session's `session_N_date_time`.
    pub date_time: LocomoDateTime,
    /// The turns in order.
    pub turns: Vec<Turn>,
}

/// One utterance, possibly sharing an image.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Turn {
    /// The speaker's name (speaker_a or speaker_b).
    pub speaker: String,
    /// The turn id as written, normally `"D<session>:<turn>"` (see [`Turn::id`]).
    pub dia_id: String,
    /// What was said.
    pub text: String,
    /// Image URLs of an image-sharing turn (empty if none).
    #[serde(default)]
    pub img_url: Vec<String>,
    /// BLIP caption of the shared image; the official prompt appends it to the turn.
    #[serde(default)]
    pub blip_caption: Option<String>,
    /// The image-search query used to find the image.
    #[serde(default)]
    pub query: Option<String>,
    /// The `re-download` flag (always `true` where present).
    #[serde(default, rename = "re-download")]
    pub re_download: bool,
}

impl Turn {
    /// The parsed dialogue id, if `dia_id` is well formed.
    pub fn id(&self) -> Option<DiaId> {
        DiaId::parse(&self.dia_id)
    }
}

/// One annotated question.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "schema::RawQaItem")]
pub struct QaItem {
    /// The question text.
    pub question: String,
    /// The gold answer; integers in the file become their decimal text. Always present
    /// for categories 1-4 (the loader enforces it); usually absent for category 5.
    pub answer: Option<String>,
    /// Category 5 only: the tempting but wrong answer.
    pub adversarial_answer: Option<String>,
    /// Evidence turn ids, raw and parsed.
    pub evidence: Evidence,
    /// The question's category.
    pub category: Category,
}

/// The annotated life events of both speakers in one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEvents {
    /// The session number.
    pub session: u32,
    /// The session date.
    pub date: LocomoDate,
    /// Events per speaker, in file order (lists may be empty).
    pub by_speaker: Vec<(String, Vec<String>)>,
}

/// The generated observations (facts) of one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionObservations {
    /// The session number.
    pub session: u32,
    /// Facts per speaker, in file order.
    pub by_speaker: Vec<(String, Vec<Observation>)>,
}

/// One generated fact and the dialogue ids supporting it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The fact.
    pub fact: String,
    /// Supporting dialogue ids as written (one string or several in the file).
    pub evidence: Vec<String>,
}

/// The generated prose summary of one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    /// The session number.
    pub session: u32,
    /// The summary paragraph.
    pub summary: String,
}

/// Counts over a dataset (what `memrl data stats` prints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocomoCounts {
    /// Number of conversations.
    pub conversations: usize,
    /// Number of sessions.
    pub sessions: usize,
    /// Number of turns.
    pub turns: usize,
    /// Turns with at least one `img_url`.
    pub image_turns: usize,
    /// Number of questions.
    pub questions: usize,
    /// Questions per category, in the official report order (4, 1, 2, 3, 5).
    pub by_category: Vec<(Category, usize)>,
}

impl LocomoDataset {
    /// Loads and validates `locomo10.json`.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        Self::from_json_slice(&read_file(path)?, path)
    }

    /// Parses the file's bytes; `path` is only used in error messages.
    pub fn from_json_slice(bytes: &[u8], path: &Path) -> Result<Self, LoadError> {
        let samples: Vec<LocomoSample> = from_json_slice(bytes, path)?;
        let mut seen = HashSet::new();
        for (index, sample) in samples.iter().enumerate() {
            if !seen.insert(sample.sample_id.as_str()) {
                return Err(LoadError::Schema {
                    path: path.to_path_buf(),
                    json_path: format!("$[{index}].sample_id"),
                    message: format!("duplicate sample_id {:?}; expected every conversation to have its own id", sample.sample_id),
                });
            }
        }
        Ok(Self { samples })
    }

    /// The conversation with this `sample_id`.
    pub fn sample(&self, sample_id: &str) -> Option<&LocomoSample> {
        self.samples.iter().find(|sample| sample.sample_id == sample_id)
    }

    /// Every question with its conversation id and position in that conversation's `qa`.
    pub fn questions(&self) -> impl Iterator<Item = (&str, usize, &QaItem)> {
        self.samples.iter().flat_map(|sample| sample.qa.iter().enumerate().map(move |(index, qa)| (sample.sample_id.as_str(), index, qa)))
    }

    /// Conversation, session, turn and question counts.
    pub fn counts(&self) -> LocomoCounts {
        let sessions = self.samples.iter().map(|s| s.conversation.sessions.len()).sum();
        let turns_iter = || self.samples.iter().flat_map(|s| &s.conversation.sessions).flat_map(|s| &s.turns);
        let by_category =
            Category::REPORT_ORDER.iter().map(|&category| (category, self.questions().filter(|(_, _, qa)| qa.category == category).count())).collect();
        LocomoCounts {
            conversations: self.samples.len(),
            sessions,
            turns: turns_iter().count(),
            image_turns: turns_iter().filter(|turn| !turn.img_url.is_empty()).count(),
            questions: self.questions().count(),
            by_category,
        }
    }
}

impl LocomoSample {
    /// The session with number `n`.
    pub fn session(&self, n: u32) -> Option<&Session> {
        self.conversation.sessions.iter().find(|session| session.number == n)
    }

    /// The turn with this dialogue id.
    pub fn turn(&self, id: DiaId) -> Option<&Turn> {
        self.session(id.session)?.turns.iter().find(|turn| turn.id() == Some(id))
    }
}

impl QaItem {
    /// The gold text the official scorer compares against (`answer`; empty if absent,
    /// which only happens for category 5, whose score ignores the gold).
    pub fn gold(&self) -> &str {
        self.answer.as_deref().unwrap_or("")
    }
}

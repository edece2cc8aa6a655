//! Typed loader for LongMemEval (`longmemeval_s`, `_m`, `_oracle`; schema in
//! `shared/data/README.md` §2.2): a JSON array of question instances, each with its own
//! haystack of chat sessions.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use chrono::NaiveDateTime;
use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::error::{LoadError, from_json_slice, read_file};

/// The six LongMemEval question types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuestionType {
    /// `single-session-user`: a fact the user stated in one session.
    SingleSessionUser,
    /// `single-session-assistant`: something the assistant said in one session.
    SingleSessionAssistant,
    /// `single-session-preference`: a personalised reply; the gold answer is a rubric.
    SingleSessionPreference,
    /// `multi-session`: combine information across sessions.
    MultiSession,
    /// `temporal-reasoning`: reasoning over dates and durations.
    TemporalReasoning,
    /// `knowledge-update`: the latest of several changing values.
    KnowledgeUpdate,
}

impl QuestionType {
    /// All six types, in the order upstream's `print_qa_metrics.py` reports them.
    pub const ALL: [QuestionType; 6] = [
        QuestionType::SingleSessionUser,
        QuestionType::SingleSessionPreference,
        QuestionType::SingleSessionAssistant,
        QuestionType::MultiSession,
        QuestionType::TemporalReasoning,
        QuestionType::KnowledgeUpdate,
    ];

    /// The name used in the data, e.g. `"single-session-user"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::SingleSessionUser => "single-session-user",
            Self::SingleSessionAssistant => "single-session-assistant",
            Self::SingleSessionPreference => "single-session-preference",
            Self::MultiSession => "multi-session",
            Self::TemporalReasoning => "temporal-reasoning",
            Self::KnowledgeUpdate => "knowledge-update",
        }
    }
}

impl fmt::Display for QuestionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A timestamp like `"2023/05/30 (Tue) 23:40"`, raw and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongMemEvalDate {
    /// The text exactly as in the file (prompts show it verbatim).
    pub raw: String,
    /// The parsed local date and time. The weekday in parentheses is not cross-checked.
    pub value: NaiveDateTime,
}

/// Parses `"YYYY/MM/DD (Ddd) HH:MM"`; the weekday must be three ASCII letters.
pub fn parse_longmemeval_date(text: &str) -> Option<NaiveDateTime> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [date, weekday, time] = parts.as_slice() else {
        return None;
    };
    let weekday = weekday.strip_prefix('(')?.strip_suffix(')')?;
    if weekday.len() != 3 || !weekday.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y/%m/%d %H:%M").ok()
}

impl<'de> Deserialize<'de> for LongMemEvalDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        match parse_longmemeval_date(&raw) {
            Some(value) => Ok(Self { raw, value }),
            None => Err(de::Error::custom(format!("expected a timestamp like \"2023/05/30 (Tue) 23:40\", got {raw:?}"))),
        }
    }
}

/// Who speaks a chat turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user.
    User,
    /// The chat assistant.
    Assistant,
}

/// One message of a history session.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChatTurn {
    /// Who speaks.
    pub role: Role,
    /// The message text.
    pub content: String,
    /// True on evidence turns (used for turn-level retrieval recall); absent means false.
    #[serde(default)]
    pub has_answer: bool,
}

/// One question instance with its history haystack.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawQuestion")]
pub struct LongMemEvalQuestion {
    /// E.g. `"e47becba"`; contains `_abs` for abstention questions.
    pub question_id: String,
    /// The question type (abstention questions keep their base type).
    pub question_type: QuestionType,
    /// The question text.
    pub question: String,
    /// The gold answer (integers become their decimal text). A rubric for
    /// `single-session-preference`; an explanation for abstention questions.
    pub answer: String,
    /// When the question is asked.
    pub question_date: LongMemEvalDate,
    /// The history sessions in file order (sorted by time in `_s`/`_m`, not in `_oracle`).
    pub haystack: Vec<HaystackSession>,
    /// Ids of the evidence sessions.
    pub answer_session_ids: Vec<String>,
}

/// One history session of a question's haystack.
#[derive(Debug, Clone, PartialEq)]
pub struct HaystackSession {
    /// The session id (evidence sessions start with `answer_`).
    pub id: String,
    /// When the session took place.
    pub date: LongMemEvalDate,
    /// The messages in order.
    pub turns: Vec<ChatTurn>,
}

impl LongMemEvalQuestion {
    /// True for abstention questions (upstream: `'_abs' in question_id`).
    pub fn is_abstention(&self) -> bool {
        self.question_id.contains("_abs")
    }

    /// Indices into [`Self::haystack`] ordered by session date (stable for equal dates).
    pub fn chronological_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.haystack.len()).collect();
        order.sort_by_key(|&index| self.haystack[index].date.value);
        order
    }
}

/// A question as written: three parallel haystack arrays.
#[derive(Deserialize)]
struct RawQuestion {
    question_id: String,
    question_type: QuestionType,
    question: String,
    answer: crate::answer::AnswerText,
    question_date: LongMemEvalDate,
    haystack_session_ids: Vec<String>,
    haystack_dates: Vec<LongMemEvalDate>,
    haystack_sessions: Vec<Vec<ChatTurn>>,
    answer_session_ids: Vec<String>,
}

impl TryFrom<RawQuestion> for LongMemEvalQuestion {
    type Error = String;

    fn try_from(raw: RawQuestion) -> Result<Self, String> {
        let (ids, dates, sessions) = (raw.haystack_session_ids.len(), raw.haystack_dates.len(), raw.haystack_sessions.len());
        if ids != dates || ids != sessions {
            return Err(format!(
                "question {:?}: haystack_session_ids ({ids}), haystack_dates ({dates}) and \
                 haystack_sessions ({sessions}) must have the same length",
                raw.question_id
            ));
        }
        let haystack = raw
            .haystack_session_ids
            .into_iter()
            .zip(raw.haystack_dates)
            .zip(raw.haystack_sessions)
            .map(|((id, date), turns)| HaystackSession { id, date, turns })
            .collect();
        Ok(Self {
            question_id: raw.question_id,
            question_type: raw.question_type,
            question: raw.question,
            answer: raw.answer.0,
            question_date: raw.question_date,
            haystack,
            answer_session_ids: raw.answer_session_ids,
        })
    }
}

/// A whole LongMemEval file.
#[derive(Debug, Clone, PartialEq)]
pub struct LongMemEvalDataset {
    /// The questions in file order.
    pub questions: Vec<LongMemEvalQuestion>,
}

/// Counts over a LongMemEval file (what `memrl data stats` prints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongMemEvalCounts {
    /// Number of questions.
    pub questions: usize,
    /// Number of abstention questions.
    pub abstention: usize,
    /// Haystack sessions over all questions (a session shared by questions counts each time).
    pub sessions: usize,
    /// Distinct haystack session ids.
    pub distinct_sessions: usize,
    /// Chat turns over all haystack sessions.
    pub turns: usize,
    /// Per type, in [`QuestionType::ALL`] order: (type, questions, of which abstention).
    pub by_type: Vec<(QuestionType, usize, usize)>,
}

impl LongMemEvalDataset {
    /// Loads and validates a LongMemEval JSON file.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        Self::from_json_slice(&read_file(path)?, path)
    }

    /// Parses the file's bytes; `path` is only used in error messages.
    pub fn from_json_slice(bytes: &[u8], path: &Path) -> Result<Self, LoadError> {
        let questions: Vec<LongMemEvalQuestion> = from_json_slice(bytes, path)?;
        let mut seen = HashSet::new();
        for (index, question) in questions.iter().enumerate() {
            if !seen.insert(question.question_id.as_str()) {
                return Err(LoadError::Schema {
                    path: path.to_path_buf(),
                    json_path: format!("$[{index}].question_id"),
                    message: format!("duplicate question_id {:?}; expected every question to have its own id", question.question_id),
                });
            }
        }
        Ok(Self { questions })
    }

    /// The question with this id.
    pub fn question(&self, question_id: &str) -> Option<&LongMemEvalQuestion> {
        self.questions.iter().find(|question| question.question_id == question_id)
    }

    /// Question, session and turn counts.
    pub fn counts(&self) -> LongMemEvalCounts {
        let sessions = self.questions.iter().map(|q| q.haystack.len()).sum();
        let distinct_sessions = self.questions.iter().flat_map(|q| q.haystack.iter().map(|s| s.id.as_str())).collect::<HashSet<_>>().len();
        let turns = self.questions.iter().flat_map(|q| &q.haystack).map(|s| s.turns.len()).sum();
        let by_type = QuestionType::ALL
            .iter()
            .map(|&kind| {
                let of_type = self.questions.iter().filter(|q| q.question_type == kind);
                let total = of_type.clone().count();
                let abstention = of_type.filter(|q| q.is_abstention()).count();
                (kind, total, abstention)
            })
            .collect();
        LongMemEvalCounts {
            questions: self.questions.len(),
            abstention: self.questions.iter().filter(|q| q.is_abstention()).count(),
            sessions,
            distinct_sessions,
            turns,
            by_type,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates() {
        let value = parse_longmemeval_date("2023/05/30 (Tue) 23:40").unwrap();
        assert_eq!(value.to_string(), "2023-05-30 23:40:00");
        for bad in ["2023/05/30 23:40", "2023-05-30 (Tue) 23:40", "2023/02/30 (Thu) 10:00", "2023/05/30 (Tuesday) 23:40"] {
            assert!(parse_longmemeval_date(bad).is_none(), "{bad:?}");
        }
    }
}

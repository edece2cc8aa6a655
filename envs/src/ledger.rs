//! Per-episode bookkeeping shared by all environments: penalties, statistics, the
//! question sheet, and seed derivation.

use crate::env::{EpisodeEnd, EpisodeStats, QuestionResult, RewardBreakdown, Termination};
use serde::{Deserialize, Serialize};

/// Reward penalties (positive numbers, subtracted from the task score).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Penalties {
    /// Per malformed or rejected call (and per turn with no call where one was needed).
    pub malformed: f64,
    /// Per budget violation (MemAct v1/v3 paper: 0.1).
    pub budget: f64,
    /// Cap on the total penalty of an episode.
    pub max_total: f64,
}

impl Default for Penalties {
    fn default() -> Self {
        Self { malformed: 0.05, budget: 0.1, max_total: 1.0 }
    }
}

/// Accumulates penalties and statistics over an episode.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Statistics so far.
    pub stats: EpisodeStats,
    penalties: Penalties,
    turn_penalty: f64,
}

/// Which budget was violated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Tokens in one completion.
    TurnTokens,
    /// Turns per episode.
    Turns,
    /// Working-context tokens.
    ContextTokens,
    /// Memory entries or tokens.
    Memory,
}

impl Ledger {
    /// A fresh ledger.
    pub fn new(penalties: Penalties, context_budget: usize) -> Self {
        let stats = EpisodeStats { context_budget, ..EpisodeStats::default() };
        Self { stats, penalties, turn_penalty: 0.0 }
    }

    fn charge(&mut self, amount: f64) {
        let room = (self.penalties.max_total - self.stats.penalty).max(0.0);
        let charged = amount.min(room);
        self.stats.penalty += charged;
        self.turn_penalty += charged;
    }

    /// Records a malformed or rejected call.
    pub fn format_error(&mut self) {
        self.stats.format_errors += 1;
        self.charge(self.penalties.malformed);
    }

    /// Records a budget violation.
    pub fn violation(&mut self, budget: Budget) {
        let v = &mut self.stats.violations;
        match budget {
            Budget::TurnTokens => v.turn_tokens += 1,
            Budget::Turns => v.turns += 1,
            Budget::ContextTokens => v.context_tokens += 1,
            Budget::Memory => v.memory += 1,
        }
        self.charge(self.penalties.budget);
    }

    /// Records the working-context size of a turn.
    pub fn observe_context(&mut self, tokens: usize) {
        self.stats.peak_context_tokens = self.stats.peak_context_tokens.max(tokens);
    }

    /// Records memory usage.
    pub fn observe_memory(&mut self, entries: usize, tokens: usize) {
        self.stats.peak_memory_entries = self.stats.peak_memory_entries.max(entries);
        self.stats.peak_memory_tokens = self.stats.peak_memory_tokens.max(tokens);
    }

    /// Penalty charged since the last call (for the per-step report).
    pub fn take_turn_penalty(&mut self) -> f64 {
        std::mem::take(&mut self.turn_penalty)
    }

    /// Scores the episode: reward = mean question score − penalty.
    pub fn finish(&self, termination: Termination, questions: Vec<QuestionResult>) -> EpisodeEnd {
        let task_score = if questions.is_empty() { 0.0 } else { questions.iter().map(|q| q.score).sum::<f64>() / questions.len() as f64 };
        let total = task_score - self.stats.penalty;
        EpisodeEnd {
            reward: total,
            breakdown: RewardBreakdown { task_score, penalty: self.stats.penalty, total, termination, questions, stats: self.stats.clone() },
        }
    }
}

/// One question of an episode and the policy's answer to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// Id shown to the policy (`q1`).
    pub id: String,
    /// Text shown to the policy.
    pub text: String,
    /// Gold answer.
    pub gold: String,
    /// Category label, if any.
    pub category: Option<String>,
    /// The answer given, if any.
    pub prediction: Option<String>,
}

/// The questions of an episode.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuestionSheet {
    /// Questions in order.
    pub questions: Vec<Question>,
}

impl QuestionSheet {
    /// Records an answer. Errors (for the observation) on unknown or already answered ids.
    pub fn answer(&mut self, id: &str, text: &str) -> Result<(), String> {
        let q = self.questions.iter_mut().find(|q| q.id == id).ok_or_else(|| format!("no question has id {id:?}"))?;
        if q.prediction.is_some() {
            return Err(format!("question {id} was already answered"));
        }
        q.prediction = Some(text.to_string());
        Ok(())
    }

    /// True when every question has an answer.
    pub fn all_answered(&self) -> bool {
        self.questions.iter().all(|q| q.prediction.is_some())
    }

    /// Questions not yet answered.
    pub fn open(&self) -> impl Iterator<Item = &Question> {
        self.questions.iter().filter(|q| q.prediction.is_none())
    }

    /// Scores every question with `score(prediction, question)`; unanswered score 0.
    pub fn score(&self, mut score: impl FnMut(&str, &Question) -> f64) -> Vec<QuestionResult> {
        self.questions
            .iter()
            .map(|q| QuestionResult {
                id: q.id.clone(),
                question: q.text.clone(),
                gold: q.gold.clone(),
                prediction: q.prediction.clone(),
                score: q.prediction.as_deref().map(|p| score(p, q)).unwrap_or(0.0),
                category: q.category.clone(),
            })
            .collect()
    }
}

/// Mixes several integers into one seed (SplitMix64 finaliser over a running hash).
pub fn derive_seed(parts: &[u64]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for &p in parts {
        h ^= p.wrapping_add(0x9E37_79B9_7F4A_7C15).wrapping_add(h << 6).wrapping_add(h >> 2);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalties_are_capped_and_reported_per_turn() {
        let mut l = Ledger::new(Penalties { malformed: 0.4, budget: 0.5, max_total: 1.0 }, 10);
        l.format_error();
        l.violation(Budget::Memory);
        assert!((l.take_turn_penalty() - 0.9).abs() < 1e-12);
        l.format_error();
        assert!((l.take_turn_penalty() - 0.1).abs() < 1e-12);
        assert_eq!(l.stats.format_errors, 2);
        assert_eq!(l.stats.violations.memory, 1);
        let end = l.finish(Termination::Completed, vec![]);
        assert_eq!(end.reward, -1.0);
    }

    #[test]
    fn sheet_answers_once() {
        let mut s = QuestionSheet { questions: vec![Question { id: "q1".into(), text: "t".into(), gold: "g".into(), category: None, prediction: None }] };
        assert!(s.answer("q2", "x").is_err());
        s.answer("q1", "g").unwrap();
        assert!(s.answer("q1", "h").is_err());
        assert!(s.all_answered());
        assert_eq!(s.score(|p, q| (p == q.gold) as u8 as f64)[0].score, 1.0);
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(derive_seed(&[1, 2]), derive_seed(&[2, 1]));
        assert_eq!(derive_seed(&[5, 0, 3]), derive_seed(&[5, 0, 3]));
    }
}

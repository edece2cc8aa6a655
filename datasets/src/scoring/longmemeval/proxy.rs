//! A judge-free PROXY for LongMemEval. **This is NOT the official LongMemEval metric**,
//! which needs the GPT-4o judge (see the parent module). Use it only for quick, offline,
//! deterministic signals (smoke tests, rewards during development); never report it as
//! LongMemEval accuracy.
//!
//! Per question:
//! - abstention questions (`_abs`): correct when the response says it cannot answer
//!   ([`says_cannot_answer`]);
//! - `single-session-preference` (the gold is a rubric, not an answer): correct when the
//!   LoCoMo-style token F1 against the rubric is at least [`PREFERENCE_F1_THRESHOLD`];
//! - every other type: correct when the normalised gold answer appears in the normalised
//!   response ([`normalize_answer`] of both, whole-token containment).
//!
//! The token F1 (LoCoMo normalisation and NLTK-Porter stems) is reported beside the label.

use crate::longmemeval::{LongMemEvalQuestion, QuestionType};
use crate::scoring::locomo::{normalize_answer, token_f1};

use super::{Graded, LongMemEvalMetrics, metrics};

/// Token-F1 threshold at which a preference response counts as correct for the proxy.
pub const PREFERENCE_F1_THRESHOLD: f64 = 0.2;

/// Phrases (lowercase) by which a response declines to answer.
const CANNOT_ANSWER_PHRASES: &[&str] = &[
    "not enough information",
    "insufficient information",
    "information provided is not enough",
    "no information",
    "not mentioned",
    "never mentioned",
    "didn't mention",
    "did not mention",
    "haven't mentioned",
    "have not mentioned",
    "don't know",
    "do not know",
    "cannot answer",
    "can't answer",
    "unable to answer",
    "unable to determine",
    "cannot determine",
    "can't determine",
    "not sure",
    "no record",
    "don't have",
    "do not have",
    "unanswerable",
];

/// True when the response says it cannot answer (a fixed phrase list, lowercase match;
/// curly apostrophes are treated as straight ones).
pub fn says_cannot_answer(response: &str) -> bool {
    let lowered = response.to_lowercase().replace('\u{2019}', "'");
    CANNOT_ANSWER_PHRASES.iter().any(|phrase| lowered.contains(phrase))
}

/// True when the normalised `answer` occurs in the normalised `response` on token
/// boundaries. An answer that normalises to nothing never matches.
pub fn contains_answer(response: &str, answer: &str) -> bool {
    let answer = normalize_answer(answer);
    if answer.is_empty() {
        return false;
    }
    format!(" {} ", normalize_answer(response)).contains(&format!(" {answer} "))
}

/// The proxy's verdict on one response (NOT the official judge).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProxyVerdict {
    /// The proxy label (see the module doc).
    pub correct: bool,
    /// LoCoMo-style token F1 of the response against the gold answer (0 for abstention).
    pub token_f1: f64,
}

/// Grades one response with the proxy rule (NOT the official judge).
pub fn proxy_verdict(question: &LongMemEvalQuestion, response: &str) -> ProxyVerdict {
    if question.is_abstention() {
        return ProxyVerdict { correct: says_cannot_answer(response), token_f1: 0.0 };
    }
    let f1 = token_f1(response, &question.answer);
    let correct = match question.question_type {
        QuestionType::SingleSessionPreference => f1 >= PREFERENCE_F1_THRESHOLD,
        _ => contains_answer(response, &question.answer),
    };
    ProxyVerdict { correct, token_f1: f1 }
}

/// Proxy labels aggregated with the official metric definitions, plus the mean token F1.
/// The field names say "proxy" so that nobody mistakes them for judge accuracy.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyMetrics {
    /// Per-type / overall / task-averaged / abstention means of the PROXY labels.
    pub proxy_accuracy: LongMemEvalMetrics,
    /// Mean token F1 over the non-abstention questions graded (`None` if there are none).
    pub proxy_mean_token_f1: Option<f64>,
}

/// Aggregates proxy verdicts, given with their questions.
pub fn proxy_metrics<'a>(verdicts: impl IntoIterator<Item = (&'a LongMemEvalQuestion, ProxyVerdict)>) -> ProxyMetrics {
    let mut graded = Vec::new();
    let (mut f1_sum, mut f1_count) = (0.0, 0usize);
    for (question, verdict) in verdicts {
        graded.push(Graded { question_type: question.question_type, abstention: question.is_abstention(), correct: verdict.correct });
        if !question.is_abstention() {
            f1_sum += verdict.token_f1;
            f1_count += 1;
        }
    }
    ProxyMetrics { proxy_accuracy: metrics(&graded), proxy_mean_token_f1: (f1_count > 0).then(|| f1_sum / f1_count as f64) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::longmemeval::LongMemEvalDataset;

    fn sample() -> LongMemEvalDataset {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/longmemeval_sample.json");
        LongMemEvalDataset::load(&path).unwrap()
    }

    #[test]
    fn containment_and_abstention() {
        assert!(contains_answer("You graduated with a degree in Business Administration.", "Business Administration"));
        assert!(!contains_answer("Business", "Business Administration"));
        assert!(!contains_answer("anything", "the"));
        assert!(contains_answer("You own 3 instruments", "3"));
        assert!(!contains_answer("You own 30 instruments", "3"));
        assert!(says_cannot_answer("I don’t know; you never mentioned a cat."));
        assert!(!says_cannot_answer("Her name was Luna."));
    }

    #[test]
    fn verdicts_on_the_fixture() {
        let data = sample();
        let q = |id: &str| data.question(id).unwrap();
        assert!(proxy_verdict(q("a1b2c3d4"), "Business Administration").correct);
        assert!(!proxy_verdict(q("a1b2c3d4"), "Law").correct);
        assert!(proxy_verdict(q("a7b8c9d0_abs"), "You never mentioned a cat.").correct);
        assert!(!proxy_verdict(q("a7b8c9d0_abs"), "Whiskers").correct);
        assert!(proxy_verdict(q("c3d4e5f6"), "Try a slow-paced science documentary about nature.").correct);
        // Shares only "horror" and "film" with the long rubric: F1 well below the threshold.
        assert!(!proxy_verdict(q("c3d4e5f6"), "Watch a horror film!").correct);
    }

    #[test]
    fn aggregates_are_labelled_proxy() {
        let data = sample();
        let verdicts: Vec<_> = data.questions.iter().map(|q| (q, proxy_verdict(q, &q.answer))).collect();
        let m = proxy_metrics(verdicts);
        assert_eq!(m.proxy_accuracy.count, 8);
        assert_eq!(m.proxy_accuracy.abstention_count, 2);
        // The gold explanations of the two _abs questions say "not enough", so they count.
        assert_eq!(m.proxy_accuracy.abstention, Some(1.0));
        assert_eq!(m.proxy_mean_token_f1, Some(1.0));
        assert_eq!(m.proxy_accuracy.overall, Some(1.0));
    }
}

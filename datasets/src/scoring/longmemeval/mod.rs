//! The official LongMemEval QA evaluation (xiaowu0162/LongMemEval
//! `src/evaluation/evaluate_qa.py` and `print_qa_metrics.py`; README §2.4): an LLM judge
//! answers yes/no to a prompt chosen by question type (or the abstention prompt), the
//! label is "the lowercased reply contains `yes`", and accuracies are averaged per type,
//! overall, over types, and over abstention questions.
//!
//! The judge itself is behind the [`Judge`] trait; a model-backed judge comes from the
//! policies crate. Upstream uses `gpt-4o-2024-08-06`, one user message, temperature 0,
//! at most 10 tokens ([`JUDGE_MAX_TOKENS`]).
//!
//! [`proxy`] holds a judge-free stand-in that is NOT the official metric.

pub mod proxy;

use crate::longmemeval::{LongMemEvalQuestion, QuestionType};

/// The judge model the official numbers require.
pub const OFFICIAL_JUDGE_MODEL: &str = "gpt-4o-2024-08-06";

/// The judge's token budget upstream (`max_tokens = 10`, `temperature = 0`).
pub const JUDGE_MAX_TOKENS: usize = 10;

/// Why a judge gave no reply.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The backend (model, server, process) failed.
    #[error("judge backend failed: {0}")]
    Backend(String),
}

/// Something that answers a judge prompt with free text (the official judge replies
/// "yes" or "no"). Implementations should decode greedily with at most
/// [`JUDGE_MAX_TOKENS`] new tokens to match upstream.
pub trait Judge {
    /// The judge's raw reply to one prompt (sent as a single user message).
    fn judge(&self, prompt: &str) -> Result<String, JudgeError>;
}

/// The official judge prompt for one question and model response.
///
/// The wording, including its spacing (a space before the blank line in the first two
/// templates, none in the others), follows upstream `get_anscheck_prompt` exactly because
/// the judge's verdicts depend on it.
pub fn judge_prompt(question_type: QuestionType, question: &str, answer: &str, response: &str, abstention: bool) -> String {
    const INTRO: &str = "I will give you a question, a correct answer, and a response from a model. \
Please answer yes if the response contains the correct answer. Otherwise, answer no.";
    const STEPS: &str = " If the response is equivalent to the correct answer or contains all the \
intermediate steps to get the correct answer, you should also answer yes. If the response only \
contains a subset of the information required by the answer, answer no.";
    const CLOSE: &str = "Is the model response correct? Answer yes or no only.";
    if abstention {
        return format!(
            "I will give you an unanswerable question, an explanation, and a response from a model. \
Please answer yes if the model correctly identifies the question as unanswerable. The model could \
say that the information is incomplete, or some other information is given but the asked \
information is not.\n\nQuestion: {question}\n\nExplanation: {answer}\n\nModel Response: \
{response}\n\nDoes the model correctly identify the question as unanswerable? Answer yes or no only."
        );
    }
    match question_type {
        QuestionType::SingleSessionUser | QuestionType::SingleSessionAssistant | QuestionType::MultiSession => {
            format!(
                "{INTRO}{STEPS} \n\nQuestion: {question}\n\nCorrect Answer: {answer}\n\nModel Response: \
{response}\n\n{CLOSE}"
            )
        }
        QuestionType::TemporalReasoning => format!(
            "{INTRO}{STEPS} In addition, do not penalize off-by-one errors for the number of days. If the \
question asks for the number of days/weeks/months, etc., and the model makes off-by-one errors \
(e.g., predicting 19 days when the answer is 18), the model's response is still correct. \n\nQuestion: \
{question}\n\nCorrect Answer: {answer}\n\nModel Response: {response}\n\n{CLOSE}"
        ),
        QuestionType::KnowledgeUpdate => format!(
            "{INTRO} If the response contains some previous information along with an updated answer, the \
response should be considered as correct as long as the updated answer is the required \
answer.\n\nQuestion: {question}\n\nCorrect Answer: {answer}\n\nModel Response: {response}\n\n{CLOSE}"
        ),
        QuestionType::SingleSessionPreference => format!(
            "I will give you a question, a rubric for desired personalized response, and a response from a \
model. Please answer yes if the response satisfies the desired response. Otherwise, answer no. The \
model does not need to reflect all the points in the rubric. The response is correct as long as it \
recalls and utilizes the user's personal information correctly.\n\nQuestion: {question}\n\nRubric: \
{answer}\n\nModel Response: {response}\n\n{CLOSE}"
        ),
    }
}

/// The prompt for a loaded question (abstention decided by `_abs` in its id).
pub fn judge_prompt_for(question: &LongMemEvalQuestion, response: &str) -> String {
    judge_prompt(question.question_type, &question.question, &question.answer, response, question.is_abstention())
}

/// The official verdict: true when the stripped, lowercased reply contains `yes`.
pub fn verdict_is_yes(reply: &str) -> bool {
    reply.trim().to_lowercase().contains("yes")
}

/// Asks `judge` about one response and returns the official label.
pub fn judge_response(judge: &dyn Judge, question: &LongMemEvalQuestion, response: &str) -> Result<bool, JudgeError> {
    Ok(verdict_is_yes(&judge.judge(&judge_prompt_for(question, response))?))
}

/// One graded question: its type, whether it is an abstention question, and the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Graded {
    /// The question's type.
    pub question_type: QuestionType,
    /// Whether the question id contains `_abs`.
    pub abstention: bool,
    /// The judge's (or a proxy's) yes/no label.
    pub correct: bool,
}

/// Accuracy of one question type.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeAccuracy {
    /// The question type.
    pub question_type: QuestionType,
    /// Questions graded.
    pub count: usize,
    /// Fraction labelled correct; `None` when none were graded.
    pub accuracy: Option<f64>,
}

/// The metrics `print_qa_metrics.py` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct LongMemEvalMetrics {
    /// Per type, in [`QuestionType::ALL`] order (abstention items count in their base type).
    pub by_type: Vec<TypeAccuracy>,
    /// Questions graded.
    pub count: usize,
    /// Mean label over all graded questions.
    pub overall: Option<f64>,
    /// Unweighted mean of the per-type accuracies, over types with at least one graded
    /// question (upstream would print NaN if a type had none).
    pub task_averaged: Option<f64>,
    /// Abstention questions graded.
    pub abstention_count: usize,
    /// Mean label over the abstention questions.
    pub abstention: Option<f64>,
}

fn mean_of(labels: impl Iterator<Item = bool>) -> (usize, Option<f64>) {
    let (mut count, mut correct) = (0usize, 0usize);
    for label in labels {
        count += 1;
        correct += usize::from(label);
    }
    (count, (count > 0).then(|| correct as f64 / count as f64))
}

/// Computes the official accuracies from graded questions.
pub fn metrics(graded: &[Graded]) -> LongMemEvalMetrics {
    let by_type: Vec<TypeAccuracy> = QuestionType::ALL
        .iter()
        .map(|&question_type| {
            let (count, accuracy) = mean_of(graded.iter().filter(|g| g.question_type == question_type).map(|g| g.correct));
            TypeAccuracy { question_type, count, accuracy }
        })
        .collect();
    let (count, overall) = mean_of(graded.iter().map(|g| g.correct));
    let type_means: Vec<f64> = by_type.iter().filter_map(|t| t.accuracy).collect();
    let task_averaged = (!type_means.is_empty()).then(|| type_means.iter().sum::<f64>() / type_means.len() as f64);
    let (abstention_count, abstention) = mean_of(graded.iter().filter(|g| g.abstention).map(|g| g.correct));
    LongMemEvalMetrics { by_type, count, overall, task_averaged, abstention_count, abstention }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_per_type() {
        let p = judge_prompt(QuestionType::SingleSessionUser, "Q?", "A", "R", false);
        assert!(p.starts_with("I will give you a question, a correct answer, and a response from a model."));
        assert!(p.contains("answer no. \n\nQuestion: Q?\n\nCorrect Answer: A\n\nModel Response: R\n\n"));
        assert!(p.ends_with("Is the model response correct? Answer yes or no only."));
        let t = judge_prompt(QuestionType::TemporalReasoning, "Q?", "A", "R", false);
        assert!(t.contains("do not penalize off-by-one errors") && t.contains("still correct. \n\nQuestion: Q?"));
        let k = judge_prompt(QuestionType::KnowledgeUpdate, "Q?", "A", "R", false);
        assert!(k.contains("updated answer is the required answer.\n\nQuestion: Q?") && !k.contains("intermediate steps"));
        let pref = judge_prompt(QuestionType::SingleSessionPreference, "Q?", "rubric", "R", false);
        assert!(pref.contains("\n\nRubric: rubric\n\n") && pref.contains("personal information correctly."));
        let abs = judge_prompt(QuestionType::MultiSession, "Q?", "why", "R", true);
        assert!(abs.contains("\n\nExplanation: why\n\n"));
        assert!(abs.ends_with("Does the model correctly identify the question as unanswerable? Answer yes or no only."));
    }

    #[test]
    fn verdicts() {
        assert!(verdict_is_yes("Yes."));
        assert!(verdict_is_yes("  YES"));
        assert!(verdict_is_yes("Eyes"), "upstream uses a substring test");
        assert!(!verdict_is_yes("No"));
        assert!(!verdict_is_yes(""));
    }

    #[test]
    fn metric_definitions() {
        use QuestionType::*;
        let g = |question_type, abstention, correct| Graded { question_type, abstention, correct };
        let graded = [
            g(SingleSessionUser, false, true),
            g(SingleSessionUser, true, false),
            g(MultiSession, false, true),
            g(MultiSession, false, true),
            g(MultiSession, true, true),
        ];
        let m = metrics(&graded);
        assert_eq!(m.count, 5);
        assert_eq!(m.overall, Some(0.8));
        assert_eq!(m.by_type[0].accuracy, Some(0.5));
        assert_eq!(m.by_type[3].accuracy, Some(1.0));
        assert_eq!(m.by_type[1].accuracy, None);
        assert_eq!(m.task_averaged, Some(0.75));
        assert_eq!((m.abstention_count, m.abstention), (2, Some(0.5)));
    }

    struct Scripted(&'static str);
    impl Judge for Scripted {
        fn judge(&self, prompt: &str) -> Result<String, JudgeError> {
            if prompt.is_empty() {
                return Err(JudgeError::Backend("empty prompt".into()));
            }
            Ok(self.0.to_string())
        }
    }

    #[test]
    fn judging_through_the_trait() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/longmemeval_sample.json");
        let data = crate::longmemeval::LongMemEvalDataset::load(&path).unwrap();
        let question = &data.questions[0];
        assert!(judge_response(&Scripted("yes"), question, "Business Administration").unwrap());
        assert!(!judge_response(&Scripted("no"), question, "Law").unwrap());
    }
}

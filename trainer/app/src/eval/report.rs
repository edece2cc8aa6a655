//! Scored questions → the tables each benchmark reports, and their printing.
//!
//! LoCoMo: the official score (token F1 with NLTK-Porter stems, category rules) and Mem0's
//! BLEU-1 per category, overall with and without the adversarial category, and J when a judge
//! ran. LongMemEval: accuracy per question type, overall, task-averaged and on abstention
//! questions (judge labels, or the proxy's when no judge ran). Synthetic benchmarks: reward
//! and task score. Unanswered questions (no answer call, or an episode cut off at the context
//! limit) count as 0 everywhere.

use std::fmt::Write as _;

use memrl_datasets::locomo::Category;
use memrl_datasets::longmemeval::QuestionType;
use memrl_datasets::scoring::locomo::aggregate;
use memrl_datasets::scoring::longmemeval::{Graded, metrics};
use serde::Serialize;

use super::bench::QuestionKey;

/// A judge's verdict on one answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgeVerdict {
    /// Labelled correct.
    pub correct: bool,
    /// False when the reply could not be read as a label (counted as wrong).
    pub parsed: bool,
    /// The judge's reply (empty when the question had no answer to judge).
    pub reply: String,
}

/// One evaluated question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuestionRow {
    /// Where it comes from.
    #[serde(flatten)]
    pub key: QuestionKey,
    /// Task (episode) index in the split.
    pub task: u64,
    /// LoCoMo category id (1-5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_id: Option<u8>,
    /// Category or question-type name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The question as the dataset writes it.
    pub question: String,
    /// The gold answer.
    pub gold: String,
    /// The answer as scored (a LoCoMo category-5 option letter resolved to its text);
    /// `None` when the question got no answer.
    pub prediction: Option<String>,
    /// The answer as the policy wrote it, when it differs from `prediction`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_prediction: Option<String>,
    /// The environment's score: LoCoMo's official score; LongMemEval's proxy (0/1); the
    /// synthetic task's exact match.
    pub score: f64,
    /// Mem0-style BLEU-1 (LoCoMo categories 1-4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bleu1: Option<f64>,
    /// The judge's verdict, when a judge ran on this question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeVerdict>,
    /// LongMemEval abstention question.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub abstention: bool,
    /// The episode was cut off (context over the window) before this question was answered.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cut_off: bool,
}

/// One LoCoMo category's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocomoLine {
    /// Category id (1-5), or 0 for the overall lines.
    pub id: u8,
    /// Name.
    pub name: String,
    /// Questions it covers.
    pub questions: usize,
    /// Official score mean (the "F1" papers report).
    pub f1: Option<f64>,
    /// BLEU-1 mean (not defined for category 5).
    pub bleu1: Option<f64>,
    /// Judge accuracy (J), when judged.
    pub judge: Option<f64>,
    /// Questions the judge labelled (J's denominator).
    pub judged: usize,
}

/// The LoCoMo table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocomoTable {
    /// Categories in the official report order (4, 1, 2, 3, 5), only those with questions.
    pub categories: Vec<LocomoLine>,
    /// All categories (micro-average, as the official stats script).
    pub overall: LocomoLine,
    /// Categories 1-4 only (as Mem0 / Memory-R1 report).
    pub overall_without_adversarial: LocomoLine,
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, s) = values.fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
    (n > 0).then(|| s / n as f64)
}

fn locomo_line(id: u8, name: &str, rows: &[&QuestionRow]) -> LocomoLine {
    let scored = aggregate(rows.iter().filter_map(|r| Some((Category::from_id(u64::from(r.category_id?))?, r.score))));
    let judged: Vec<bool> = rows.iter().filter_map(|r| r.judge.as_ref().map(|j| j.correct)).collect();
    LocomoLine {
        id,
        name: name.to_string(),
        questions: rows.len(),
        f1: scored.overall,
        bleu1: mean(rows.iter().filter_map(|r| r.bleu1)),
        judge: mean(judged.iter().map(|&c| f64::from(u8::from(c)))),
        judged: judged.len(),
    }
}

/// Builds the LoCoMo table from its rows.
pub fn locomo_table(rows: &[QuestionRow]) -> LocomoTable {
    let categories = Category::REPORT_ORDER
        .iter()
        .filter_map(|c| {
            let of: Vec<&QuestionRow> = rows.iter().filter(|r| r.category_id == Some(c.id())).collect();
            (!of.is_empty()).then(|| locomo_line(c.id(), c.name(), &of))
        })
        .collect();
    let all: Vec<&QuestionRow> = rows.iter().collect();
    let no_adv: Vec<&QuestionRow> = rows.iter().filter(|r| r.category_id != Some(Category::Adversarial.id())).collect();
    LocomoTable { categories, overall: locomo_line(0, "overall", &all), overall_without_adversarial: locomo_line(0, "overall w/o adversarial", &no_adv) }
}

/// One LongMemEval line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LongMemEvalLine {
    /// Question type (or an overall name).
    pub name: String,
    /// Questions it covers.
    pub questions: usize,
    /// Accuracy.
    pub accuracy: Option<f64>,
}

/// The LongMemEval table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LongMemEvalTable {
    /// "judge" (official prompts through the configured judge) or "proxy" (NOT the official metric).
    pub labels_from: String,
    /// Per question type.
    pub types: Vec<LongMemEvalLine>,
    /// Mean over all questions.
    pub overall: LongMemEvalLine,
    /// Unweighted mean over the types present.
    pub task_averaged: Option<f64>,
    /// Mean over abstention questions.
    pub abstention: LongMemEvalLine,
}

/// Builds the LongMemEval table: judge labels when every question was judged, else the
/// proxy scores of the environment.
pub fn longmemeval_table(rows: &[QuestionRow]) -> LongMemEvalTable {
    let judged = !rows.is_empty() && rows.iter().all(|r| r.judge.is_some());
    let graded: Vec<Graded> = rows
        .iter()
        .filter_map(|r| {
            let question_type = QuestionType::ALL.into_iter().find(|t| Some(t.name()) == r.category.as_deref())?;
            let correct = if judged { r.judge.as_ref().is_some_and(|j| j.correct) } else { r.score > 0.5 };
            Some(Graded { question_type, abstention: r.abstention, correct })
        })
        .collect();
    let m = metrics(&graded);
    LongMemEvalTable {
        labels_from: if judged { "judge".into() } else { "proxy".into() },
        types: m
            .by_type
            .iter()
            .filter(|t| t.count > 0)
            .map(|t| LongMemEvalLine { name: t.question_type.name().into(), questions: t.count, accuracy: t.accuracy })
            .collect(),
        overall: LongMemEvalLine { name: "overall".into(), questions: m.count, accuracy: m.overall },
        task_averaged: m.task_averaged,
        abstention: LongMemEvalLine { name: "abstention".into(), questions: m.abstention_count, accuracy: m.abstention },
    }
}

/// The synthetic benchmarks' numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyntheticTable {
    /// Episodes played.
    pub episodes: usize,
    /// Mean reward (task score − penalties; 0 for a cut-off episode).
    pub reward: f64,
    /// Mean task score (fraction of questions right).
    pub task_score: f64,
    /// Mean per-question score over all questions of finished episodes.
    pub question_score: Option<f64>,
}

/// Cost of the evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Efficiency {
    /// How tokens were counted: exact model token ids, or the counter named.
    pub token_source: String,
    /// Context tokens the policy read over all its turns, per question.
    pub tokens_read_per_question: f64,
    /// Of which on answering turns (search / answer / the reader's prompt).
    pub answer_tokens_read_per_question: f64,
    /// Of which on memory-management turns (reading the history).
    pub memory_tokens_read_per_question: f64,
    /// Tokens the model generated, per question (0 for scripted runs).
    pub generated_tokens_per_question: f64,
    /// Policy turns per question.
    pub turns_per_question: f64,
    /// Mean over episodes of the peak memory-bank entries.
    pub memory_peak_entries: f64,
    /// Mean over episodes of the peak memory-bank tokens (environment counter).
    pub memory_peak_tokens: f64,
    /// Raw-history baselines: mean history turns and tokens, and mean items shown per question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reader_context: Option<ReaderContextStats>,
    /// Memory operations applied (add + update + delete + ...) per finished episode.
    pub memory_ops_per_episode: f64,
    /// Malformed or missing tool calls per finished episode.
    pub format_errors_per_episode: f64,
    /// Episodes cut off at the context window (their questions count as 0).
    pub episodes_cut_off: usize,
    /// Wall time of the whole evaluation, seconds.
    pub wall_seconds: f64,
    /// Seconds inside the model engine while playing.
    pub generate_seconds: f64,
    /// Seconds in the judge.
    pub judge_seconds: f64,
}

/// Reader-protocol context sizes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReaderContextStats {
    /// Turns in the history, mean over questions.
    pub history_turns: f64,
    /// History tokens, mean over questions.
    pub history_tokens: f64,
    /// Turns or memories shown, mean over questions.
    pub items_shown: f64,
    /// Reader prompt tokens (user message), mean over questions.
    pub prompt_tokens: f64,
}

fn cell(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{v:.3}"))
}

/// The LoCoMo table as text.
pub fn format_locomo(t: &LocomoTable, judged: bool) -> String {
    let mut s = String::new();
    let head = if judged { "     J" } else { "" };
    let _ = writeln!(s, "{:<28} {:>5} {:>6} {:>7}{head}", "category", "n", "F1", "BLEU-1");
    let line = |s: &mut String, l: &LocomoLine, label: String| {
        let j = if judged { format!(" {:>6}", cell(l.judge)) } else { String::new() };
        let _ = writeln!(s, "{label:<28} {:>5} {:>6} {:>7}{j}", l.questions, cell(l.f1), cell(l.bleu1));
    };
    for c in &t.categories {
        line(&mut s, c, format!("{} ({})", c.name, c.id));
    }
    line(&mut s, &t.overall, "overall (all categories)".into());
    line(&mut s, &t.overall_without_adversarial, "overall w/o adversarial".into());
    s
}

/// The LongMemEval table as text.
pub fn format_longmemeval(t: &LongMemEvalTable) -> String {
    let mut s = String::new();
    let what = if t.labels_from == "judge" { "accuracy (official judge prompts)" } else { "accuracy (PROXY, not the official judge metric)" };
    let _ = writeln!(s, "{:<28} {:>5} {what}", "question type", "n");
    for l in t.types.iter().chain([&t.overall, &t.abstention]) {
        let _ = writeln!(s, "{:<28} {:>5} {}", l.name, l.questions, cell(l.accuracy));
    }
    let _ = writeln!(s, "{:<28} {:>5} {}", "task-averaged", "", cell(t.task_averaged));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(category: u8, score: f64, bleu: Option<f64>, judge: Option<bool>) -> QuestionRow {
        QuestionRow {
            key: QuestionKey::Locomo { sample_id: "conv-41".into(), qa_index: 0 },
            task: 0,
            category_id: Some(category),
            category: Category::from_id(u64::from(category)).map(|c| c.name().to_string()),
            question: "q".into(),
            gold: "g".into(),
            prediction: Some("p".into()),
            raw_prediction: None,
            score,
            bleu1: bleu,
            judge: judge.map(|correct| JudgeVerdict { correct, parsed: true, reply: String::new() }),
            abstention: false,
            cut_off: false,
        }
    }

    #[test]
    fn locomo_table_with_and_without_adversarial() {
        let rows = vec![row(4, 1.0, Some(0.5), Some(true)), row(4, 0.0, Some(0.0), Some(false)), row(2, 0.5, Some(0.25), Some(true)), row(5, 1.0, None, None)];
        let t = locomo_table(&rows);
        let ids: Vec<u8> = t.categories.iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![4, 2, 5], "report order, present categories only");
        assert_eq!(t.categories[0].f1, Some(0.5));
        assert_eq!(t.categories[0].judge, Some(0.5));
        assert_eq!(t.overall.questions, 4);
        assert_eq!(t.overall.f1, Some(2.5 / 4.0));
        assert_eq!(t.overall_without_adversarial.questions, 3);
        assert_eq!(t.overall_without_adversarial.f1, Some(0.5));
        assert_eq!(t.overall_without_adversarial.bleu1, Some(0.25));
        assert_eq!((t.overall.judge, t.overall.judged), (Some(2.0 / 3.0), 3));
        let text = format_locomo(&t, true);
        assert!(text.contains("adversarial (5)") && text.contains("overall w/o adversarial") && text.contains(" J"), "{text}");
        assert!(!format_locomo(&t, false).contains(" J\n"));
    }

    #[test]
    fn longmemeval_uses_the_judge_only_when_every_question_was_judged() {
        let mut a = row(0, 1.0, None, None);
        a.category_id = None;
        a.category = Some("multi-session".into());
        let mut b = a.clone();
        b.score = 0.0;
        b.abstention = true;
        let proxy = longmemeval_table(&[a.clone(), b.clone()]);
        assert_eq!(proxy.labels_from, "proxy");
        assert_eq!(proxy.overall.accuracy, Some(0.5));
        assert_eq!(proxy.abstention.accuracy, Some(0.0));
        a.judge = Some(JudgeVerdict { correct: false, parsed: true, reply: "no".into() });
        b.judge = Some(JudgeVerdict { correct: true, parsed: true, reply: "yes".into() });
        let judged = longmemeval_table(&[a, b]);
        assert_eq!(judged.labels_from, "judge");
        assert_eq!((judged.overall.accuracy, judged.abstention.accuracy, judged.task_averaged), (Some(0.5), Some(1.0), Some(0.5)));
        assert!(format_longmemeval(&judged).contains("multi-session"));
    }
}

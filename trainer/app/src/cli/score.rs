//! `memrl score`: score predictions made anywhere with a benchmark's scorer.
//!
//! LoCoMo uses the official scorer (`memrl_datasets::scoring::locomo`). LongMemEval's
//! official metric needs an LLM judge; until a judge is wired in, this command reports a
//! judge-free PROXY and says so on every output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use memrl_datasets::locomo::{Category, LocomoDataset};
use memrl_datasets::longmemeval::LongMemEvalDataset;
use memrl_datasets::scoring::locomo::{LocomoAggregate, aggregate, bleu1, round3_python, score_qa};
use memrl_datasets::scoring::longmemeval::proxy::{ProxyMetrics, proxy_metrics, proxy_verdict};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::out_paths::check_outputs;

use super::data::{Bench, load_locomo, load_longmemeval, require_longmemeval_path, resolve_locomo_path};

/// Arguments of `memrl score`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Predictions:\n  \
LoCoMo (official token-F1 scorer): JSONL, one line per question (or a JSON array):\n    \
{\"sample_id\": \"conv-26\", \"qa_index\": 0, \"prediction\": \"...\"}\n  \
qa_index is the position in that conversation's qa list.\n  \
LongMemEval: JSONL (or a JSON array) of {\"question_id\": ..., \"hypothesis\": ...}; the score\n  \
printed is a judge-free PROXY, not the official GPT-4o judge accuracy.")]
pub struct ScoreArgs {
    /// Which benchmark the predictions answer.
    #[arg(long, value_enum)]
    bench: Bench,
    /// The predictions file (JSONL or a JSON array; format below).
    #[arg(long, value_name = "FILE")]
    predictions: PathBuf,
    /// The benchmark data. LoCoMo defaults to `$MEMRL_DATA_DIR/locomo/locomo10.json`, then
    /// `../shared/data/locomo/locomo10.json`; LongMemEval requires it.
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Also write every question's score and the aggregates to this JSON file (atomically).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Count questions without a prediction as 0 instead of leaving them out of the means.
    #[arg(long)]
    missing_as_zero: bool,
}

/// Runs `memrl score`.
pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    match args.bench {
        Bench::Locomo => score_locomo(&args),
        Bench::Longmemeval => score_longmemeval(&args),
    }
}

/// Refuses an `--out` that is the predictions or the data file.
fn check_out(args: &ScoreArgs, data_path: &Path) -> anyhow::Result<()> {
    if let Some(out) = &args.out {
        check_outputs(&[("--out", out)], &[("--predictions", &args.predictions), ("--data", data_path)])?;
    }
    Ok(())
}

/// Reads a whole text file with a one-line error naming it.
fn read_text(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).map_err(|error| anyhow::anyhow!("{}: cannot read: {error}", path.display()))?;
    // Editors on Windows start UTF-8 files with a byte-order mark; it is not JSON.
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// The entries of a predictions file, each with where it is (`file:line`, or `file: $[i]`):
/// JSONL, one object per line, or one JSON array of such objects. `expected` describes an
/// entry in errors.
fn read_entries<T: DeserializeOwned>(path: &Path, expected: &str) -> anyhow::Result<Vec<(String, T)>> {
    let text = read_text(path)?;
    if text.trim_start().starts_with('[') {
        let list: Vec<T> =
            parse_json(&text).map_err(|message| anyhow::anyhow!("{}: {message}; expected a JSON array of {expected}, or JSONL", path.display()))?;
        return Ok(list.into_iter().enumerate().map(|(i, e)| (format!("{}: $[{i}]", path.display()), e)).collect());
    }
    let mut entries = Vec::new();
    for (line_number, line) in jsonl_lines(&text) {
        let entry: T = parse_json(line).map_err(|message| anyhow::anyhow!("{}:{line_number}: {message}; expected {expected}", path.display()))?;
        entries.push((format!("{}:{line_number}", path.display()), entry));
    }
    Ok(entries)
}

/// Parses one JSON document (a JSONL line or a whole file) into `T`; the error says where
/// (JSON path, column) and what was expected, without the file/line prefix.
fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let position = format!(" at line {} column {}", inner.line(), inner.column());
        let full = inner.to_string();
        let message = full.strip_suffix(&position).unwrap_or(&full).to_string();
        let place = if inner.line() > 1 { format!("line {} column {}", inner.line(), inner.column()) } else { format!("column {}", inner.column()) };
        match inner.classify() {
            serde_json::error::Category::Data => {
                let json_path = if path == "." {
                    "$".to_string()
                } else if path.starts_with('[') {
                    format!("${path}")
                } else {
                    format!("$.{path}")
                };
                format!("at {json_path}: {message} ({place})")
            }
            _ => format!("not valid JSON: {message} ({place})"),
        }
    })?;
    deserializer.end().map_err(|error| format!("trailing characters after the JSON value ({error})"))?;
    Ok(value)
}

/// Non-blank lines with their 1-based numbers.
fn jsonl_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, line)| (i + 1, line.trim())).filter(|(_, line)| !line.is_empty())
}

/// Writes `value` as pretty JSON to `path` atomically (temporary file in the same folder,
/// then rename).
fn write_json_atomically(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    memrl_policies::atomic::write_file_atomic(path, &bytes).map_err(|error| anyhow::anyhow!("{}: cannot write: {}", path.display(), error))
}

/// One line of a LoCoMo predictions file.
#[derive(Deserialize)]
struct LocomoPredictionLine {
    sample_id: String,
    qa_index: usize,
    prediction: String,
}

/// LoCoMo predictions keyed by (conversation position, qa_index), validated against the data.
fn read_locomo_predictions(path: &Path, data: &LocomoDataset) -> anyhow::Result<HashMap<(usize, usize), String>> {
    let sample_position: HashMap<&str, usize> = data.samples.iter().enumerate().map(|(i, s)| (s.sample_id.as_str(), i)).collect();
    let mut first_at: HashMap<(usize, usize), String> = HashMap::new();
    let mut predictions = HashMap::new();
    let expected = "{\"sample_id\": string, \"qa_index\": integer, \"prediction\": string}";
    for (at, entry) in read_entries::<LocomoPredictionLine>(path, expected)? {
        let at = || at.clone();
        let Some(&sample) = sample_position.get(entry.sample_id.as_str()) else {
            let known: Vec<&str> = data.samples.iter().map(|s| s.sample_id.as_str()).collect();
            bail!("{}: unknown sample_id {:?}; expected one of {}", at(), entry.sample_id, known.join(", "));
        };
        let questions = data.samples[sample].qa.len();
        if entry.qa_index >= questions {
            bail!(
                "{}: qa_index {} is out of range for {}, which has {questions} questions (0-{})",
                at(),
                entry.qa_index,
                entry.sample_id,
                questions.saturating_sub(1)
            );
        }
        let key = (sample, entry.qa_index);
        if let Some(first) = first_at.insert(key, at()) {
            bail!("{}: duplicate prediction for {} qa_index {} (first given at {first}); expected one per question", at(), entry.sample_id, entry.qa_index);
        }
        predictions.insert(key, entry.prediction);
    }
    Ok(predictions)
}

/// One scored (or missing) LoCoMo question.
struct LocomoRow<'a> {
    sample_id: &'a str,
    qa_index: usize,
    category: Category,
    /// Official stored score; `None` when the prediction is missing.
    score: Option<f64>,
    /// Mem0-style BLEU-1 against the gold answer (categories 1-4 with a prediction).
    bleu1: Option<f64>,
}

fn score_locomo(args: &ScoreArgs) -> anyhow::Result<()> {
    let data_path = resolve_locomo_path(args.data.as_deref())?;
    check_out(args, &data_path)?;
    let data = load_locomo(&data_path)?;
    let predictions = read_locomo_predictions(&args.predictions, &data)?;

    let mut rows = Vec::new();
    for (s, sample) in data.samples.iter().enumerate() {
        for (q, qa) in sample.qa.iter().enumerate() {
            let prediction = predictions.get(&(s, q));
            let score = prediction.map(|p| score_qa(qa, p));
            let bleu = match (prediction, qa.category) {
                (Some(p), category) if category != Category::Adversarial => Some(bleu1(p, qa.gold())),
                _ => None,
            };
            rows.push(LocomoRow { sample_id: &sample.sample_id, qa_index: q, category: qa.category, score, bleu1: bleu });
        }
    }
    let counted = |row: &LocomoRow| match row.score {
        Some(score) => Some((row.category, score)),
        None if args.missing_as_zero => Some((row.category, 0.0)),
        None => None,
    };
    let result = aggregate(rows.iter().filter_map(counted));
    let missing_by_category = |category: Category| rows.iter().filter(|r| r.category == category && r.score.is_none()).count();
    let missing_total = rows.iter().filter(|r| r.score.is_none()).count();
    let bleu_means = bleu_means(&rows);

    print_locomo_table(&data_path, &args.predictions, &result, &missing_by_category, missing_total, args.missing_as_zero, &bleu_means);

    if let Some(out) = &args.out {
        let questions: Vec<_> = rows
            .iter()
            .map(|row| {
                json!({
                    "sample_id": row.sample_id,
                    "qa_index": row.qa_index,
                    "category": row.category.id(),
                    "category_name": row.category.name(),
                    "missing": row.score.is_none(),
                    "score": row.score.or(if args.missing_as_zero { Some(0.0) } else { None }),
                    "bleu1": row.bleu1,
                })
            })
            .collect();
        let by_category: Vec<_> = result
            .by_category
            .iter()
            .map(|c| {
                json!({
                    "id": c.category.id(),
                    "name": c.category.name(),
                    "count": c.count,
                    "missing": missing_by_category(c.category),
                    "sum": c.sum,
                    "mean": c.mean,
                    "mean_rounded": c.mean.map(round3_python),
                    "bleu1_mean": bleu_means.get(&c.category.id()).copied(),
                })
            })
            .collect();
        let report = json!({
            "bench": "locomo",
            "metric": "official LoCoMo QA score (token F1 with NLTK-Porter stems; category 5 phrase rule)",
            "data": data_path.display().to_string(),
            "predictions": args.predictions.display().to_string(),
            "missing_policy": if args.missing_as_zero { "counted as 0" } else { "excluded from the means" },
            "overall": {
                "count": result.count,
                "missing": missing_total,
                "sum": result.sum,
                "mean": result.overall,
                "mean_rounded": result.overall.map(round3_python),
            },
            "by_category": by_category,
            "bleu1_note": "BLEU-1 as Mem0 reports it (categories 1-4, own tokenisation); not the official LoCoMo metric",
            "questions": questions,
        });
        write_json_atomically(out, &report)?;
        outln!("wrote {}", out.display());
    }
    Ok(())
}

/// Mean BLEU-1 per category id over questions that have one.
fn bleu_means(rows: &[LocomoRow]) -> HashMap<u8, f64> {
    let mut sums: HashMap<u8, (f64, usize)> = HashMap::new();
    for row in rows {
        if let Some(b) = row.bleu1 {
            let entry = sums.entry(row.category.id()).or_default();
            entry.0 += b;
            entry.1 += 1;
        }
    }
    sums.into_iter().map(|(id, (sum, n))| (id, sum / n as f64)).collect()
}

fn format_mean(mean: Option<f64>) -> String {
    mean.map_or_else(|| "-".to_string(), |m| format!("{:.3}", round3_python(m)))
}

fn print_locomo_table(
    data_path: &Path,
    predictions_path: &Path,
    result: &LocomoAggregate,
    missing_by_category: &dyn Fn(Category) -> usize,
    missing_total: usize,
    missing_as_zero: bool,
    bleu_means: &HashMap<u8, f64>,
) {
    outln!("LoCoMo QA, official scorer (token F1 with NLTK-Porter stems; category 5: \"not mentioned\" rule)");
    outln!("data:        {}", data_path.display());
    outln!("predictions: {}", predictions_path.display());
    outln!();
    outln!("  id  category      scored  missing  accuracy  bleu1*");
    for c in &result.by_category {
        let bleu = bleu_means.get(&c.category.id()).map_or_else(|| "-".to_string(), |b| format!("{b:.3}"));
        outln!(
            "  {:>2}  {:<12}  {:>6}  {:>7}  {:>8}  {:>6}",
            c.category.id(),
            c.category.name(),
            c.count,
            missing_by_category(c.category),
            format_mean(c.mean),
            bleu
        );
    }
    outln!("      {:<12}  {:>6}  {:>7}  {:>8}", "overall", result.count, missing_total, format_mean(result.overall));
    outln!();
    if missing_total > 0 {
        if missing_as_zero {
            outln!("{missing_total} questions have no prediction: counted as 0 (--missing-as-zero).");
        } else {
            outln!("{missing_total} questions have no prediction: excluded from the means (use --missing-as-zero to count them as 0).");
        }
    }
    outln!("* bleu1: BLEU-1 as Mem0 reports it (categories 1-4), not the official LoCoMo metric.");
}

/// One entry of a LongMemEval predictions file.
#[derive(Deserialize)]
struct HypothesisEntry {
    question_id: String,
    hypothesis: String,
}

/// LongMemEval hypotheses keyed by question id; JSONL, or a JSON array as upstream accepts.
fn read_longmemeval_predictions(path: &Path, data: &LongMemEvalDataset) -> anyhow::Result<HashMap<String, String>> {
    let entries = read_entries::<HypothesisEntry>(path, "{\"question_id\": string, \"hypothesis\": string}")?;
    let mut hypotheses = HashMap::new();
    for (at, entry) in entries {
        if data.question(&entry.question_id).is_none() {
            bail!("{at}: unknown question_id {:?}; expected an id from the data file", entry.question_id);
        }
        if hypotheses.insert(entry.question_id.clone(), entry.hypothesis).is_some() {
            bail!("{at}: duplicate hypothesis for question_id {:?}; expected one per question", entry.question_id);
        }
    }
    Ok(hypotheses)
}

fn score_longmemeval(args: &ScoreArgs) -> anyhow::Result<()> {
    let data_path = require_longmemeval_path(args.data.as_deref())?;
    check_out(args, &data_path)?;
    let data = load_longmemeval(&data_path)?;
    let hypotheses = read_longmemeval_predictions(&args.predictions, &data)?;
    let mut verdicts = Vec::new();
    let mut per_question = Vec::new();
    for question in &data.questions {
        let verdict = match hypotheses.get(&question.question_id) {
            Some(hypothesis) => Some(proxy_verdict(question, hypothesis)),
            None if args.missing_as_zero => Some(proxy_verdict(question, "")),
            None => None,
        };
        if let Some(v) = verdict {
            verdicts.push((question, v));
        }
        per_question.push(json!({
            "question_id": question.question_id,
            "question_type": question.question_type.name(),
            "abstention": question.is_abstention(),
            "missing": !hypotheses.contains_key(&question.question_id),
            "proxy_correct": verdict.map(|v| v.correct),
            "proxy_token_f1": verdict.map(|v| v.token_f1),
        }));
    }
    let missing = data.questions.len() - hypotheses.len();
    let metrics = proxy_metrics(verdicts);
    print_longmemeval_table(&data_path, &args.predictions, &metrics, missing, args.missing_as_zero);
    if let Some(out) = &args.out {
        let m = &metrics.proxy_accuracy;
        let by_type: Vec<_> = m.by_type.iter().map(|t| json!({"type": t.question_type.name(), "count": t.count, "proxy_accuracy": t.accuracy})).collect();
        let report = json!({
            "bench": "longmemeval",
            "metric": "PROXY (NOT the official LongMemEval metric, which needs the GPT-4o judge): \
                       answer containment / abstention phrases / rubric token F1",
            "data": data_path.display().to_string(),
            "predictions": args.predictions.display().to_string(),
            "missing": missing,
            "missing_policy": if args.missing_as_zero { "counted as wrong" } else { "excluded" },
            "proxy_overall": m.overall,
            "proxy_task_averaged": m.task_averaged,
            "proxy_abstention": m.abstention,
            "proxy_abstention_count": m.abstention_count,
            "proxy_mean_token_f1": metrics.proxy_mean_token_f1,
            "proxy_by_type": by_type,
            "questions": per_question,
        });
        write_json_atomically(out, &report)?;
        outln!("wrote {}", out.display());
    }
    Ok(())
}

fn print_longmemeval_table(data_path: &Path, predictions_path: &Path, metrics: &ProxyMetrics, missing: usize, missing_as_zero: bool) {
    let m = &metrics.proxy_accuracy;
    outln!("LongMemEval: PROXY metric, NOT the official judge accuracy (that needs the GPT-4o judge)");
    outln!("data:        {}", data_path.display());
    outln!("predictions: {}", predictions_path.display());
    outln!();
    outln!("  type                         graded  proxy accuracy");
    for t in &m.by_type {
        outln!("  {:<27}  {:>6}  {:>14}", t.question_type.name(), t.count, format_mean(t.accuracy));
    }
    outln!("  {:<27}  {:>6}  {:>14}", "overall", m.count, format_mean(m.overall));
    outln!("  {:<27}  {:>6}  {:>14}", "task-averaged", "", format_mean(m.task_averaged));
    outln!("  {:<27}  {:>6}  {:>14}", "abstention", m.abstention_count, format_mean(m.abstention));
    outln!("  proxy mean token F1 (non-abstention): {}", format_mean(metrics.proxy_mean_token_f1));
    if missing > 0 {
        let policy = if missing_as_zero { "counted as wrong (--missing-as-zero)" } else { "excluded" };
        outln!("{missing} questions have no hypothesis: {policy}.");
    }
}

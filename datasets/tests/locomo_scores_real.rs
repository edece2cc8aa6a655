//! The LoCoMo scorer on every question of the real `locomo10.json`, with predictions
//! built by the fixed recipes of `scripts/reference/locomo_score.py`, against Python's
//! per-question scores and official aggregates (the fixture holds only ids and numbers).
//! The data file is found as in `locomo_real.rs`; the test fails when it is missing.

use std::path::PathBuf;

use memrl_datasets::locomo::{LocomoDataset, QaItem};
use memrl_datasets::scoring::locomo::{aggregate, python_split, score_answer, score_qa};
use serde_json::Value;

fn real_file() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("MEMRL_DATA_DIR") {
        candidates.push(PathBuf::from(dir).join("locomo/locomo10.json"));
    }
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/locomo/locomo10.json"));
    candidates.iter().find(|path| path.is_file()).cloned().unwrap_or_else(|| panic!("locomo10.json not found; looked at {candidates:?} (set MEMRL_DATA_DIR)"))
}

fn source_text(qa: &QaItem) -> String {
    qa.answer.clone().or_else(|| qa.adversarial_answer.clone()).unwrap_or_default()
}

/// The prediction recipes, mirrored from locomo_score.py.
fn recipe(name: &str, qa: &QaItem) -> String {
    let source = source_text(qa);
    match name {
        "gold" => source,
        "gold_upper_period" => format!("{}.", source.to_ascii_uppercase()),
        "first_half" => {
            let words: Vec<&str> = python_split(&source).collect();
            words[..words.len().div_ceil(2)].join(" ")
        }
        "reversed_parts" => source.split(',').rev().collect::<Vec<_>>().join(", "),
        "question" => qa.question.clone(),
        "not_mentioned" => "Not mentioned in the conversation".to_string(),
        "gold_plus_noise" => format!("{source} and maybe the other one, too"),
        "empty" => String::new(),
        other => panic!("unknown recipe {other}"),
    }
}

#[test]
fn every_question_and_aggregate_matches_python() {
    let data = LocomoDataset::load(&real_file()).unwrap();
    let text = include_str!("fixtures/locomo_scores_real.jsonl");
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let recipes: Vec<&str> = header["recipes"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let expected: Vec<Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    let questions: Vec<_> = data.questions().collect();
    assert_eq!(questions.len(), expected.len());

    let mut mismatches = Vec::new();
    for (r, name) in recipes.iter().enumerate() {
        let mut stored_scores = Vec::new();
        for ((sample_id, index, qa), row) in questions.iter().zip(&expected) {
            assert_eq!((*sample_id, *index as u64), (row["sample_id"].as_str().unwrap(), row["qa_index"].as_u64().unwrap()));
            let prediction = recipe(name, qa);
            let raw = score_answer(qa.category, qa.gold(), &prediction);
            let stored = score_qa(qa, &prediction);
            let (want_raw, want_milli) = (row["raw"][r].as_f64().unwrap(), row["milli"][r].as_i64().unwrap());
            if raw != want_raw || (stored * 1000.0).round() as i64 != want_milli {
                mismatches.push(format!("{name} {sample_id}#{index}: ours ({raw}, {stored}), python ({want_raw}, {want_milli}/1000)"));
            }
            stored_scores.push((qa.category, stored));
        }
        let ours = aggregate(stored_scores);
        let theirs = &header["aggregates"][name];
        assert_eq!(ours.count as u64, theirs["count"].as_u64().unwrap());
        assert_eq!(ours.overall, theirs["overall"].as_f64(), "{name}: overall");
        for category in &ours.by_category {
            let want = &theirs["by_category"][category.category.id().to_string()];
            assert_eq!(category.count as u64, want["count"].as_u64().unwrap(), "{name}");
            assert_eq!(category.mean, want["mean"].as_f64(), "{name}: category {}", category.category);
        }
    }
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.iter().take(30).cloned().collect::<Vec<_>>().join("\n"));
}

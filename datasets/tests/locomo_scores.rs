//! The LoCoMo scorer against expected values from the Python re-implementation
//! (`scripts/reference/locomo_score.py`, real NLTK / regex / numpy): synthetic pairs that
//! cover every category and awkward text, and numpy's summation order.

use memrl_datasets::locomo::Category;
use memrl_datasets::scoring::locomo::{bleu1, numpy_mean, score_answer, stored_score};
use serde_json::Value;

fn category(row: &Value) -> Category {
    Category::from_id(row["category"].as_u64().expect("category")).expect("category 1-5")
}

#[test]
fn synthetic_pairs_match_python_exactly() {
    let text = include_str!("fixtures/locomo_scores_synthetic.jsonl");
    let mut rows = 0;
    let mut failures = Vec::new();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).expect("fixture line is JSON");
        let (gold, prediction) = (row["gold"].as_str().unwrap(), row["prediction"].as_str().unwrap());
        let category = category(&row);
        let raw = score_answer(category, gold, prediction);
        let stored = stored_score(category, gold, prediction);
        let bleu = bleu1(prediction, gold);
        let expected = (row["raw"].as_f64().unwrap(), row["stored"].as_f64().unwrap(), row["bleu1"].as_f64().unwrap());
        // Bit-for-bit equality: the port follows Python's arithmetic step by step.
        if (raw, stored, bleu) != expected {
            failures.push(format!("row {}: ours {:?}, python {:?}", row["id"], (raw, stored, bleu), expected));
        }
        rows += 1;
    }
    assert!(rows >= 600, "{rows} rows");
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn synthetic_pairs_cover_every_category_and_edge() {
    let text = include_str!("fixtures/locomo_scores_synthetic.jsonl");
    let rows: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for id in 1..=5 {
        let of_category: Vec<&Value> = rows.iter().filter(|r| r["category"] == id).collect();
        assert!(of_category.len() > 50, "category {id}");
        assert!(of_category.iter().any(|r| r["stored"].as_f64().unwrap() > 0.0), "category {id} has a positive score");
        assert!(of_category.iter().any(|r| r["prediction"] == ""), "category {id} has an empty prediction");
    }
    assert!(rows.iter().any(|r| r["stored"] != r["raw"]), "some scores are really rounded");
}

#[test]
fn numpy_mean_matches_numpy() {
    let cases: Vec<Value> = serde_json::from_str(include_str!("fixtures/numpy_means.json")).unwrap();
    for case in &cases {
        let values: Vec<f64> = case["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(numpy_mean(&values), case["mean"].as_f64().unwrap(), "n = {}", values.len());
    }
}

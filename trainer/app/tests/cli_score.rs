//! `memrl score` end to end (the real binary via `CARGO_BIN_EXE_memrl`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    repo_root().join("datasets/tests/fixtures").join(name)
}

fn memrl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memrl")).args(args).current_dir(dir).env_remove("MEMRL_DATA_DIR").env("RUST_BACKTRACE", "1").output().expect("memrl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_one_line_error(output: &Output, needles: &[&str]) {
    let err = text(&output.stderr);
    assert!(!output.status.success(), "expected failure, stdout: {}", text(&output.stdout));
    assert_eq!(err.trim_end().lines().count(), 1, "error is not one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
}

fn write_lines(path: &Path, lines: &[Value]) {
    let body: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(path, body.join("\n") + "\n").unwrap();
}

fn score_mini(dir: &Path, predictions: &Path, extra: &[&str]) -> Output {
    let data = fixture("locomo_mini.json");
    let mut args = vec!["score", "--bench", "locomo", "--data", data.to_str().unwrap(), "--predictions", predictions.to_str().unwrap()];
    args.extend_from_slice(extra);
    memrl(dir, &args)
}

#[test]
fn locomo_scores_missing_and_out_file() {
    let dir = tempfile::tempdir().unwrap();
    let predictions = dir.path().join("preds.jsonl");
    write_lines(
        &predictions,
        &[
            json!({"sample_id": "mini-1", "qa_index": 0, "prediction": "a kitten called Pixel"}),
            json!({"sample_id": "mini-1", "qa_index": 1, "prediction": "Porto, Lisbon"}),
            json!({"sample_id": "mini-1", "qa_index": 2, "prediction": "2"}),
            json!({"sample_id": "mini-1", "qa_index": 4, "prediction": "Not mentioned in the conversation"}),
            json!({"sample_id": "mini-2", "qa_index": 0, "prediction": "A “half” marathon"}),
        ],
    );
    let out = dir.path().join("scores.json");
    let output = score_mini(dir.path(), &predictions, &["--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("official scorer"), "{stdout}");
    assert!(stdout.contains("3 questions have no prediction: excluded from the means"), "{stdout}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no temporary files left behind: {leftovers:?}");
    let questions = report["questions"].as_array().unwrap();
    assert_eq!(questions.len(), 8);
    let score = |sample: &str, index: u64| questions.iter().find(|q| q["sample_id"] == sample && q["qa_index"] == index).unwrap()["score"].clone();
    assert_eq!(score("mini-1", 0), json!(1.0));
    assert_eq!(score("mini-1", 1), json!(0.667), "two of three list items");
    assert_eq!(score("mini-1", 2), json!(1.0), "integer gold");
    assert_eq!(score("mini-1", 3), Value::Null, "missing");
    assert_eq!(score("mini-1", 4), json!(1.0));
    // gold "a half marathon" -> {half, marathon}; prediction -> {“half”, marathon}: curly quotes stay.
    assert_eq!(score("mini-2", 0), json!(0.5));
    assert_eq!(report["overall"]["count"], 5);
    assert_eq!(report["overall"]["missing"], 3);
    let single_hop = &report["by_category"][0];
    assert_eq!((single_hop["id"].as_u64(), single_hop["count"].as_u64()), (Some(4), Some(2)));
    assert_eq!(single_hop["mean"], json!(0.75));
    let expected_overall = (1.0 + 0.5 + 0.667 + 1.0 + 1.0) / 5.0;
    assert_eq!(report["overall"]["mean"].as_f64().unwrap(), expected_overall);

    let output = score_mini(dir.path(), &predictions, &["--missing-as-zero", "--out", out.to_str().unwrap()]);
    assert!(output.status.success());
    assert!(text(&output.stdout).contains("counted as 0"));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report["overall"]["count"], 8);
    assert_eq!(report["overall"]["mean"].as_f64().unwrap(), (1.0 + 0.5 + 0.667 + 1.0 + 1.0) / 8.0);
}

#[test]
fn locomo_prediction_errors_are_one_line_and_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"sample_id": "mini-1", "qa_index": 0, "prediction": "x"}"#;
    let cases: [(&str, &[&str]); 8] = [
        ("{\"sample_id\": \"mini-1\", \"qa_index\": 1, \"prediction\": \"x\"", &["preds.jsonl:2:", "not valid JSON", "EOF"]),
        ("{sample_id: 1}", &["preds.jsonl:2:", "not valid JSON", "column"]),
        (r#"{"sample_id": "mini-1", "qa_index": 1}"#, &["preds.jsonl:2:", "missing field `prediction`", "expected {\"sample_id\""]),
        (r#"{"sample_id": "mini-1", "qa_index": "1", "prediction": "x"}"#, &["preds.jsonl:2:", "at $.qa_index", "expected usize"]),
        (r#"{"sample_id": "mini-1", "qa_index": 1, "prediction": null}"#, &["preds.jsonl:2:", "at $.prediction", "expected a string"]),
        (r#"{"sample_id": "conv-99", "qa_index": 1, "prediction": "x"}"#, &["preds.jsonl:2:", "unknown sample_id \"conv-99\"", "mini-1, mini-2"]),
        (r#"{"sample_id": "mini-1", "qa_index": 7, "prediction": "x"}"#, &["preds.jsonl:2:", "qa_index 7 is out of range for mini-1", "(0-6)"]),
        (good, &["preds.jsonl:2:", "duplicate prediction for mini-1 qa_index 0", "first given at", "preds.jsonl:1)"]),
    ];
    for (second_line, needles) in cases {
        let predictions = dir.path().join("preds.jsonl");
        std::fs::write(&predictions, format!("{good}\n{second_line}\n")).unwrap();
        let output = score_mini(dir.path(), &predictions, &[]);
        assert_one_line_error(&output, needles);
    }
    let output = score_mini(dir.path(), &dir.path().join("absent.jsonl"), &[]);
    assert_one_line_error(&output, &["absent.jsonl: cannot read"]);
}

/// A byte-order mark (Windows editors) is skipped; a JSON array of entries is read like JSONL,
/// and an error in it names the entry.
#[test]
fn locomo_predictions_with_a_bom_or_as_a_json_array_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let line = r#"{"sample_id": "mini-1", "qa_index": 0, "prediction": "x"}"#;
    let predictions = dir.path().join("preds.jsonl");
    std::fs::write(&predictions, format!("\u{feff}{line}\n")).unwrap();
    let with_bom = score_mini(dir.path(), &predictions, &[]);
    assert!(with_bom.status.success(), "{}", text(&with_bom.stderr));
    std::fs::write(&predictions, format!("\u{feff}[{line}]")).unwrap();
    let array = score_mini(dir.path(), &predictions, &[]);
    assert!(array.status.success(), "{}", text(&array.stderr));
    assert_eq!(with_bom.stdout, array.stdout);
    std::fs::write(&predictions, format!("[{line}, {{\"sample_id\": \"mini-1\"}}]")).unwrap();
    let output = score_mini(dir.path(), &predictions, &[]);
    assert_one_line_error(&output, &["preds.jsonl", "$[1]", "missing field", "expected a JSON array of {\"sample_id\""]);
}

/// The recipe "gold_plus_noise" of scripts/reference/locomo_score.py.
fn gold_plus_noise(qa: &Value) -> String {
    let source = match (&qa["answer"], &qa["adversarial_answer"]) {
        (Value::String(s), _) => s.clone(),
        (Value::Number(n), _) => n.to_string(),
        (_, Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    format!("{source} and maybe the other one, too")
}

#[test]
fn locomo_real_data_matches_the_python_reference() {
    let data_path = repo_root().join("../shared/data/locomo/locomo10.json");
    let raw: Value = serde_json::from_str(&std::fs::read_to_string(&data_path).expect("locomo10.json is present")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let predictions = dir.path().join("preds.jsonl");
    let mut lines = Vec::new();
    for sample in raw.as_array().unwrap() {
        for (index, qa) in sample["qa"].as_array().unwrap().iter().enumerate() {
            lines.push(json!({"sample_id": sample["sample_id"], "qa_index": index, "prediction": gold_plus_noise(qa)}));
        }
    }
    write_lines(&predictions, &lines);
    let out = dir.path().join("scores.json");
    // Default data path, from the repository root.
    let output = memrl(&repo_root(), &["score", "--bench", "locomo", "--predictions", predictions.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();

    let header_line = include_str!("../../../datasets/tests/fixtures/locomo_scores_real.jsonl").lines().next().unwrap();
    let header: Value = serde_json::from_str(header_line).unwrap();
    let expected = &header["aggregates"]["gold_plus_noise"];
    assert_eq!(report["overall"]["count"], expected["count"]);
    assert_eq!(report["overall"]["mean"].as_f64(), expected["overall"].as_f64());
    for category in report["by_category"].as_array().unwrap() {
        let want = &expected["by_category"][category["id"].to_string()];
        assert_eq!(category["count"], want["count"]);
        assert_eq!(category["mean"].as_f64(), want["mean"].as_f64(), "category {}", category["id"]);
    }
    let stdout = text(&output.stdout);
    assert!(stdout.contains(&format!("overall         1986        0  {:>8.3}", expected["overall"].as_f64().unwrap())), "{stdout}");
}

#[test]
fn longmemeval_proxy_from_jsonl_and_array() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture("longmemeval_sample.json");
    let entries = vec![
        json!({"question_id": "a1b2c3d4", "hypothesis": "You graduated in Business Administration."}),
        json!({"question_id": "gpt4_d4e5f6a7", "hypothesis": "You own 3 instruments."}),
        json!({"question_id": "a7b8c9d0_abs", "hypothesis": "I don't know; you never mentioned a cat."}),
        json!({"question_id": "f6a7b8c9", "hypothesis": "25 minutes 40 seconds"}),
    ];
    let jsonl = dir.path().join("hyp.jsonl");
    write_lines(&jsonl, &entries);
    let array = dir.path().join("hyp.json");
    std::fs::write(&array, serde_json::to_string_pretty(&entries).unwrap()).unwrap();
    for file in [&jsonl, &array] {
        let out = dir.path().join("lme.json");
        let output = memrl(
            dir.path(),
            &["score", "--bench", "longmemeval", "--data", data.to_str().unwrap(), "--predictions", file.to_str().unwrap(), "--out", out.to_str().unwrap()],
        );
        assert!(output.status.success(), "{}", text(&output.stderr));
        let stdout = text(&output.stdout);
        assert!(stdout.contains("PROXY metric, NOT the official judge accuracy"), "{stdout}");
        assert!(stdout.contains("4 questions have no hypothesis: excluded."), "{stdout}");
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert!(report["metric"].as_str().unwrap().starts_with("PROXY (NOT the official"));
        assert_eq!(report["proxy_overall"], json!(0.75));
        assert_eq!(report["proxy_abstention"], json!(1.0));
        assert_eq!(report["missing"], 4);
    }
}

#[test]
fn longmemeval_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture("longmemeval_sample.json");
    let hyp = dir.path().join("hyp.jsonl");
    std::fs::write(&hyp, "{\"question_id\": \"zzz\", \"hypothesis\": \"x\"}\n").unwrap();
    let output = memrl(dir.path(), &["score", "--bench", "longmemeval", "--predictions", hyp.to_str().unwrap()]);
    assert_one_line_error(&output, &["needs --data PATH"]);
    let output = memrl(dir.path(), &["score", "--bench", "longmemeval", "--data", data.to_str().unwrap(), "--predictions", hyp.to_str().unwrap()]);
    assert_one_line_error(&output, &["hyp.jsonl:1:", "unknown question_id \"zzz\""]);
    std::fs::write(&hyp, "[{\"question_id\": \"a1b2c3d4\", \"hypothesis\": 3}]").unwrap();
    let output = memrl(dir.path(), &["score", "--bench", "longmemeval", "--data", data.to_str().unwrap(), "--predictions", hyp.to_str().unwrap()]);
    assert_one_line_error(&output, &["hyp.jsonl:", "at $[0].hypothesis", "expected a string"]);
    std::fs::write(&hyp, "{\"question_id\": \"a1b2c3d4\", \"hypothesis\": \"x\"}\n{\"question_id\": \"a1b2c3d4\", \"hypothesis\": \"y\"}\n").unwrap();
    let output = memrl(dir.path(), &["score", "--bench", "longmemeval", "--data", data.to_str().unwrap(), "--predictions", hyp.to_str().unwrap()]);
    assert_one_line_error(&output, &["hyp.jsonl:2:", "duplicate hypothesis"]);
}

#[test]
fn score_help() {
    let output = memrl(&repo_root(), &["score", "--help"]);
    let help = text(&output.stdout);
    assert!(output.status.success());
    for needle in ["--predictions", "--missing-as-zero", "--out", "qa_index", "PROXY"] {
        assert!(help.contains(needle), "missing {needle} in:\n{help}");
    }
}

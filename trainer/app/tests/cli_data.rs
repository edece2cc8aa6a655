//! `memrl data stats` end to end (the real binary via `CARGO_BIN_EXE_memrl`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    repo_root().join("datasets/tests/fixtures").join(name)
}

/// Runs `memrl <args>` in `dir` without MEMRL_DATA_DIR unless `data_dir` is given.
fn memrl(dir: &Path, data_dir: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_memrl"));
    command.args(args).current_dir(dir).env_remove("MEMRL_DATA_DIR").env("RUST_BACKTRACE", "1");
    if let Some(data_dir) = data_dir {
        command.env("MEMRL_DATA_DIR", data_dir);
    }
    command.output().expect("memrl runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a failed run with exactly one line on stderr containing every `needle`.
fn assert_one_line_error(output: &Output, needles: &[&str]) {
    let err = stderr(output);
    assert!(!output.status.success(), "expected failure, stdout: {}", stdout(output));
    assert_eq!(err.trim_end().lines().count(), 1, "error is not one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
}

#[test]
fn locomo_stats_from_the_default_path() {
    let output = memrl(&repo_root(), None, &["data", "stats", "--bench", "locomo"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for line in ["conversations       10", "sessions           272", "turns            5,882", "questions        1,986"] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    for line in
        ["4  single-hop          841", "1  multi-hop           282", "2  temporal            321", "3  open-domain          96", "5  adversarial         446"]
    {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(text.contains("conv-26    Caroline / Melanie           19    419      77   199    32    37    13    70    47"), "{text}");
}

#[test]
fn locomo_stats_json() {
    let output = memrl(&repo_root(), None, &["data", "stats", "--bench", "locomo", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("stdout is JSON");
    assert_eq!(value["conversations"], 10);
    assert_eq!(value["sessions"], 272);
    assert_eq!(value["turns"], 5882);
    assert_eq!(value["questions"], 1986);
    let by: Vec<(u64, String, u64)> = value["by_category"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_u64().unwrap(), c["name"].as_str().unwrap().to_string(), c["questions"].as_u64().unwrap()))
        .collect();
    let expected = [(4, "single-hop", 841), (1, "multi-hop", 282), (2, "temporal", 321), (3, "open-domain", 96), (5, "adversarial", 446)];
    assert_eq!(by, expected.map(|(i, n, q)| (i, n.to_string(), q)));
}

#[test]
fn memrl_data_dir_is_used_when_there_is_no_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("locomo")).unwrap();
    std::fs::copy(fixture("locomo_mini.json"), dir.path().join("locomo/locomo10.json")).unwrap();
    let output = memrl(dir.path(), Some(dir.path()), &["data", "stats", "--bench", "locomo", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!((value["conversations"].as_u64(), value["questions"].as_u64()), (Some(2), Some(8)));
}

#[test]
fn missing_default_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = memrl(dir.path(), None, &["data", "stats", "--bench", "locomo"]);
    assert_one_line_error(&output, &["no LoCoMo file found", "--data", "MEMRL_DATA_DIR"]);
}

#[test]
fn longmemeval_needs_data_and_reads_the_fixture() {
    let output = memrl(&repo_root(), None, &["data", "stats", "--bench", "longmemeval"]);
    assert_one_line_error(&output, &["--bench longmemeval needs --data PATH"]);

    let path = fixture("longmemeval_sample.json");
    let output = memrl(&repo_root(), None, &["data", "stats", "--bench", "longmemeval", "--data", path.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(value["questions"], 8);
    assert_eq!(value["abstention"], 2);
    assert_eq!(value["by_type"].as_array().unwrap().len(), 6);

    let output = memrl(&repo_root(), None, &["data", "stats", "--bench", "longmemeval", "--data", path.to_str().unwrap()]);
    assert!(stdout(&output).contains("temporal-reasoning                   2           1"), "{}", stdout(&output));
}

#[test]
fn bad_data_files_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.json");
    let full = std::fs::read_to_string(fixture("locomo_mini.json")).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let output = memrl(dir.path(), None, &["data", "stats", "--bench", "locomo", "--data", truncated.to_str().unwrap()]);
    assert_one_line_error(&output, &["truncated.json", "not valid JSON", "EOF"]);

    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, full.replacen("\"category\": 4", "\"category\": \"four\"", 1)).unwrap();
    let output = memrl(dir.path(), None, &["data", "stats", "--bench", "locomo", "--data", wrong.to_str().unwrap()]);
    assert_one_line_error(&output, &["wrong.json", "$[0].qa[0].category", "expected u64"]);

    let output = memrl(dir.path(), None, &["data", "stats", "--bench", "longmemeval", "--data", wrong.to_str().unwrap()]);
    assert_one_line_error(&output, &["wrong.json", "$[0]", "missing field"]);

    let output = memrl(dir.path(), None, &["data", "stats", "--bench", "locomo", "--data", "nope.json"]);
    assert_one_line_error(&output, &["nope.json: cannot read"]);
}

#[test]
fn help_texts() {
    let output = memrl(&repo_root(), None, &["data", "stats", "--help"]);
    let text = stdout(&output);
    assert!(output.status.success());
    assert!(text.contains("--bench") && text.contains("MEMRL_DATA_DIR") && text.contains("--json"), "{text}");
    let output = memrl(&repo_root(), None, &["data", "--help"]);
    assert!(stdout(&output).contains("stats"));
}

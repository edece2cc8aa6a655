//! The LongMemEval loader on a fixture in the exact upstream schema, and its errors.

use std::path::{Path, PathBuf};

use memrl_datasets::longmemeval::{LongMemEvalDataset, QuestionType, Role};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/longmemeval_sample.json")
}

#[test]
fn loads_every_type_and_quirk() {
    let data = LongMemEvalDataset::load(&fixture()).expect("fixture loads");
    let counts = data.counts();
    assert_eq!(counts.questions, 8);
    assert_eq!(counts.abstention, 2);
    assert!(counts.by_type.iter().all(|(_, total, _)| *total >= 1), "{:?}", counts.by_type);
    assert_eq!(counts.sessions, 16);
    assert!(counts.distinct_sessions < counts.sessions, "filler sessions are shared");

    let multi = data.question("gpt4_d4e5f6a7").unwrap();
    assert_eq!(multi.question_type, QuestionType::MultiSession);
    assert_eq!(multi.answer, "3", "integer answers become their decimal text");
    assert_eq!(multi.chronological_order(), [1, 2, 0], "haystack is not sorted, as in _oracle");

    let abs = data.question("gpt4_b8c9d0e1_abs").unwrap();
    assert!(abs.is_abstention());
    assert_eq!(abs.question_type, QuestionType::TemporalReasoning);
    assert!(!data.question("a1b2c3d4").unwrap().is_abstention());

    let first = &data.questions[0];
    assert_eq!(first.question_date.value.to_string(), "2023-05-30 23:40:00");
    assert_eq!(first.haystack[1].id, "answer_5f1e2d3c");
    let evidence = &first.haystack[1].turns[0];
    assert!(evidence.has_answer && evidence.role == Role::User);
    assert!(!first.haystack[1].turns[1].has_answer);
}

fn error_of(json: &str) -> String {
    match LongMemEvalDataset::from_json_slice(json.as_bytes(), Path::new("lme.json")) {
        Ok(_) => panic!("expected an error for {json}"),
        Err(error) => error.to_string(),
    }
}

fn question(overrides: &[(&str, &str)]) -> String {
    let mut fields = vec![
        ("question_id", r#""q1""#),
        ("question_type", r#""single-session-user""#),
        ("question", r#""What?""#),
        ("answer", r#""That""#),
        ("question_date", r#""2023/05/30 (Tue) 23:40""#),
        ("haystack_session_ids", r#"["s1"]"#),
        ("haystack_dates", r#"["2023/05/20 (Sat) 02:21"]"#),
        ("haystack_sessions", r#"[[{"role": "user", "content": "hi"}]]"#),
        ("answer_session_ids", r#"["s1"]"#),
    ];
    for (key, value) in overrides {
        match fields.iter_mut().find(|(k, _)| k == key) {
            Some(field) => field.1 = value,
            None => fields.push((key, value)),
        }
    }
    let body: Vec<String> = fields.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("\"{k}\": {v}")).collect();
    format!("[{{{}}}]", body.join(", "))
}

#[test]
fn minimal_question_loads() {
    let json = question(&[]);
    let data = LongMemEvalDataset::from_json_slice(json.as_bytes(), Path::new("lme.json")).unwrap();
    assert_eq!(data.questions[0].haystack.len(), 1);
}

#[test]
fn schema_errors_name_the_json_path() {
    let cases = [
        (question(&[("question_type", r#""multi-hop""#)]), "$[0].question_type", "unknown variant `multi-hop`"),
        (question(&[("answer", "")]), "$[0]", "missing field `answer`"),
        (question(&[("answer", "[1]")]), "$[0].answer", "a string or an integer"),
        (question(&[("question_date", r#""30 May 2023""#)]), "$[0].question_date", "2023/05/30 (Tue) 23:40"),
        (question(&[("haystack_dates", "[]")]), "$[0]", "must have the same length"),
        (question(&[("haystack_sessions", r#"[[{"role": "system", "content": "x"}]]"#)]), "$[0].haystack_sessions[0][0].role", "unknown variant `system`"),
        (
            question(&[("haystack_sessions", r#"[[{"role": "user", "content": "x", "has_answer": "yes"}]]"#)]),
            "$[0].haystack_sessions[0][0].has_answer",
            "expected a boolean",
        ),
    ];
    for (json, path, expected) in cases {
        let message = error_of(&json);
        assert!(message.starts_with(&format!("lme.json: at {path}")), "wrong path in: {message}");
        assert!(message.contains(expected), "missing {expected:?} in: {message}");
    }
    let truncated = error_of(&question(&[])[..40]);
    assert!(truncated.starts_with("lme.json: not valid JSON"), "{truncated}");
    let json = question(&[]);
    let duplicated = format!("[{}, {}]", &json[1..json.len() - 1], &json[1..json.len() - 1]);
    assert!(error_of(&duplicated).contains("duplicate question_id"));
}

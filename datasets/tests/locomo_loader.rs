//! The LoCoMo loader on a small synthetic file with every quirk of the real one, and its
//! errors on bad input.

use std::path::{Path, PathBuf};

use memrl_datasets::LoadError;
use memrl_datasets::locomo::{Category, DiaId, LocomoDataset, render_turn};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/locomo_mini.json")
}

fn load_mini() -> LocomoDataset {
    LocomoDataset::load(&fixture()).expect("fixture loads")
}

#[test]
fn sessions_are_sorted_numerically_and_orphan_dates_kept() {
    let data = load_mini();
    let conversation = &data.samples[0].conversation;
    let numbers: Vec<u32> = conversation.sessions.iter().map(|s| s.number).collect();
    assert_eq!(numbers, [1, 2, 10]);
    let orphans: Vec<u32> = conversation.orphan_session_dates.iter().map(|(n, _)| *n).collect();
    assert_eq!(orphans, [11, 12]);
    assert_eq!(conversation.sessions[2].date_time.raw, "4:30 pm on 20 June, 2023");
    assert_eq!(conversation.sessions[2].date_time.value.to_string(), "2023-06-20 16:30:00");
}

#[test]
fn qa_quirks() {
    let data = load_mini();
    let qa = &data.samples[0].qa;
    assert_eq!(qa[2].answer.as_deref(), Some("2"), "integer answers become their decimal text");
    assert_eq!(qa[2].category, Category::Temporal);
    assert_eq!(qa[4].answer, None);
    assert_eq!(qa[4].adversarial_answer.as_deref(), Some("the cello"));
    assert_eq!(qa[4].gold(), "");
    assert_eq!(qa[5].answer.as_deref(), Some("No"));
    assert!(qa[3].evidence.raw.is_empty());
    assert_eq!(qa[2].evidence.parsed, [DiaId { session: 2, turn: 1 }, DiaId { session: 1, turn: 1 }]);
    assert_eq!(qa[5].evidence.unparsed, ["D"]);
    assert_eq!(qa[6].evidence.parsed.len(), 2);
    assert_eq!(qa[6].evidence.unparsed, ["D:11:26"]);
}

#[test]
fn image_turns_and_rendering() {
    let data = load_mini();
    let sample = &data.samples[0];
    let image_turn = sample.turn(DiaId { session: 1, turn: 3 }).expect("D1:3 exists");
    assert_eq!(image_turn.img_url, ["https://example.org/pixel.jpg"]);
    assert_eq!(image_turn.query.as_deref(), Some("grey kitten sofa"));
    assert!(image_turn.re_download);
    assert_eq!(render_turn(image_turn), "Ada said, \"Here she is!\"\n and shared a photo of a grey kitten on a sofa.\n");
    let caption_only = sample.turn(DiaId { session: 10, turn: 2 }).unwrap();
    assert!(caption_only.img_url.is_empty() && caption_only.blip_caption.is_some());
    let plain = sample.turn(DiaId { session: 1, turn: 1 }).unwrap();
    assert!(!plain.re_download && plain.blip_caption.is_none());
}

#[test]
fn summaries_observations_and_events() {
    let data = load_mini();
    let sample = &data.samples[0];
    let sessions: Vec<u32> = sample.event_summary.iter().map(|e| e.session).collect();
    assert_eq!(sessions, [1, 2, 10]);
    assert_eq!(sample.event_summary[0].date.value.to_string(), "2023-03-03");
    assert_eq!(sample.event_summary[0].by_speaker[0].0, "Ada");
    assert!(sample.event_summary[2].by_speaker[0].1.is_empty());
    let obs = &sample.observation[0];
    assert_eq!(obs.session, 1);
    assert_eq!(obs.by_speaker[0].1[1].evidence, ["D1:3"]);
    assert_eq!(sample.observation[1].by_speaker[0].1[0].evidence, ["D2:1", "D1:1"]);
    assert_eq!(sample.session_summary.iter().map(|s| s.session).collect::<Vec<_>>(), [1, 2, 10]);
}

#[test]
fn counts() {
    let counts = load_mini().counts();
    assert_eq!((counts.conversations, counts.sessions, counts.turns, counts.image_turns, counts.questions), (2, 4, 9, 1, 8));
    let by_id: Vec<(u8, usize)> = counts.by_category.iter().map(|(c, n)| (c.id(), *n)).collect();
    assert_eq!(by_id, [(4, 2), (1, 1), (2, 2), (3, 1), (5, 2)]);
}

/// Parses `json` as a LoCoMo file named `bad.json` and returns the error text.
fn error_of(json: &str) -> String {
    match LocomoDataset::from_json_slice(json.as_bytes(), Path::new("bad.json")) {
        Ok(_) => panic!("expected an error for {json}"),
        Err(error) => error.to_string(),
    }
}

/// A minimal valid sample with `qa` and `conversation` replaceable.
fn sample(conversation: &str, qa: &str) -> String {
    format!(r#"[{{"sample_id": "x", "conversation": {conversation}, "qa": {qa}}}]"#)
}

const CONV: &str = r#"{"speaker_a": "A", "speaker_b": "B", "session_1_date_time": "1:56 pm on 8 May, 2023",
    "session_1": [{"speaker": "A", "dia_id": "D1:1", "text": "hi"}]}"#;

#[test]
fn minimal_sample_loads() {
    let json = sample(CONV, r#"[{"question": "q", "answer": "a", "evidence": [], "category": 4}]"#);
    let data = LocomoDataset::from_json_slice(json.as_bytes(), Path::new("ok.json")).unwrap();
    assert!(data.samples[0].event_summary.is_empty());
}

#[test]
fn malformed_and_truncated_json() {
    let truncated = error_of(r#"[{"sample_id": "x", "conversation": {"#);
    assert!(truncated.starts_with("bad.json: not valid JSON"), "{truncated}");
    assert!(truncated.contains("line 1"), "{truncated}");
    let malformed = error_of("[{\"sample_id\": x}]");
    assert!(malformed.starts_with("bad.json: not valid JSON"), "{malformed}");
    let trailing = error_of("[] []");
    assert!(trailing.contains("trailing"), "{trailing}");
}

#[test]
fn schema_errors_name_the_json_path() {
    let cases = [
        (sample(CONV, r#"[{"answer": "a", "evidence": [], "category": 4}]"#), "$[0].qa[0]", "missing field `question`"),
        (sample(CONV, r#"[{"question": "q", "answer": "a", "evidence": [], "category": "4"}]"#), "$[0].qa[0].category", "expected u64"),
        (sample(CONV, r#"[{"question": "q", "answer": "a", "evidence": [], "category": 7}]"#), "$[0].qa[0].category", "category 1-5, got 7"),
        (sample(CONV, r#"[{"question": "q", "answer": 1.5, "evidence": [], "category": 4}]"#), "$[0].qa[0].answer", "a string or an integer"),
        (sample(CONV, r#"[{"question": "q", "evidence": [], "category": 4}]"#), "$[0].qa[0]", "has no \"answer\""),
        (sample(CONV, r#"[{"question": "q", "answer": "a", "evidence": "D1:1", "category": 4}]"#), "$[0].qa[0].evidence", "expected a sequence"),
        (sample(&CONV.replace("1:56 pm on 8 May, 2023", "May 8"), "[]"), "$[0].conversation.session_1_date_time", "1:56 pm on 8 May, 2023"),
        (sample(&CONV.replace("\"session_1_date_time\"", "\"session_2_date_time\""), "[]"), "$[0].conversation", "session_1 has no session_1_date_time"),
        (sample(&CONV.replace("\"speaker_b\"", "\"speaker_c\""), "[]"), "$[0].conversation", "unexpected key \"speaker_c\""),
        (sample(&CONV.replace("\"text\": \"hi\"", "\"text\": 3"), "[]"), "$[0].conversation.session_1[0].text", "expected a string"),
        (sample(&CONV.replace("[{\"speaker\"", "\"oops\", [{\"speaker\"").replace("}]}", "}]]}"), "[]"), "$[0].conversation.session_1", "expected a sequence"),
    ];
    for (json, path, expected) in cases {
        let message = error_of(&json);
        assert!(message.starts_with(&format!("bad.json: at {path}")), "wrong path in: {message}");
        assert!(message.contains(expected), "missing {expected:?} in: {message}");
    }
}

#[test]
fn duplicate_sample_ids_are_rejected() {
    let one = sample(CONV, "[]");
    let two = format!("[{}, {}]", &one[1..one.len() - 1], &one[1..one.len() - 1]);
    let message = error_of(&two);
    assert!(message.contains("$[1].sample_id") && message.contains("duplicate sample_id"), "{message}");
}

#[test]
fn missing_file_names_the_file() {
    let error = LocomoDataset::load(Path::new("/nonexistent/locomo10.json")).unwrap_err();
    assert!(matches!(error, LoadError::Io { .. }));
    assert!(error.to_string().starts_with("/nonexistent/locomo10.json: cannot read"), "{error}");
}

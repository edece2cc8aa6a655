//! The loader on the real `locomo10.json` (shared/data/locomo). The file is looked up in
//! `$MEMRL_DATA_DIR/locomo/locomo10.json`, then `../shared/data/locomo/locomo10.json`
//! next to the repository; the test fails (it does not skip) when neither exists.

use std::path::PathBuf;

use memrl_datasets::locomo::{Category, LocomoDataset};

fn real_file() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("MEMRL_DATA_DIR") {
        candidates.push(PathBuf::from(dir).join("locomo/locomo10.json"));
    }
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/locomo/locomo10.json"));
    candidates.iter().find(|path| path.is_file()).cloned().unwrap_or_else(|| panic!("locomo10.json not found; looked at {candidates:?} (set MEMRL_DATA_DIR)"))
}

#[test]
fn official_counts() {
    let data = LocomoDataset::load(&real_file()).expect("the official file loads");
    let counts = data.counts();
    assert_eq!(counts.conversations, 10);
    assert_eq!(counts.sessions, 272);
    assert_eq!(counts.turns, 5_882);
    assert_eq!(counts.image_turns, 910);
    assert_eq!(counts.questions, 1_986);
    let per_id: Vec<(u8, usize)> = counts.by_category.iter().map(|(c, n)| (c.id(), *n)).collect();
    assert_eq!(per_id, [(4, 841), (1, 282), (2, 321), (3, 96), (5, 446)]);
}

#[test]
fn documented_quirks() {
    let data = LocomoDataset::load(&real_file()).unwrap();
    let conv26 = data.sample("conv-26").unwrap();
    let orphans: Vec<u32> = conv26.conversation.orphan_session_dates.iter().map(|(n, _)| *n).collect();
    assert_eq!(orphans, (20..=35).collect::<Vec<_>>());
    assert_eq!(conv26.conversation.sessions.len(), 19);
    assert_eq!(data.samples.iter().map(|s| s.conversation.orphan_session_dates.len()).sum::<usize>(), 16);

    let questions: Vec<_> = data.questions().map(|(_, _, qa)| qa).collect();
    let integer_like = questions.iter().filter(|qa| qa.answer.as_deref().is_some_and(|a| a.parse::<i64>().is_ok())).count();
    assert!(integer_like >= 6, "the 6 integer answers are kept as text ({integer_like} numeric answers)");
    let cat5 = questions.iter().filter(|qa| qa.category == Category::Adversarial);
    assert_eq!(cat5.clone().filter(|qa| qa.answer.is_none()).count(), 444);
    assert_eq!(cat5.clone().filter(|qa| qa.adversarial_answer.is_some()).count(), 446);
    assert_eq!(questions.iter().filter(|qa| qa.evidence.raw.is_empty()).count(), 4);
    let unparsed: Vec<&str> = questions.iter().flat_map(|qa| qa.evidence.unparsed.iter().map(String::as_str)).collect();
    assert_eq!(unparsed, ["D", "D:11:26"]);

    let turns = || data.samples.iter().flat_map(|s| &s.conversation.sessions).flat_map(|s| &s.turns);
    assert_eq!(turns().filter(|t| t.blip_caption.is_some()).count(), 1_226);
    assert_eq!(turns().filter(|t| t.query.is_some()).count(), 888);
    assert_eq!(turns().filter(|t| t.re_download).count(), 206);
    for session in data.samples.iter().flat_map(|s| &s.conversation.sessions) {
        for (index, turn) in session.turns.iter().enumerate() {
            let id = turn.id().expect("every dia_id parses");
            assert_eq!((id.session, id.turn as usize), (session.number, index + 1));
        }
    }

    let facts: usize = data.samples.iter().flat_map(|s| &s.observation).flat_map(|o| &o.by_speaker).map(|(_, f)| f.len()).sum();
    assert_eq!(facts, 2_541);
    assert_eq!(data.samples.iter().map(|s| s.event_summary.len()).sum::<usize>(), 272);
    assert_eq!(data.samples.iter().map(|s| s.session_summary.len()).sum::<usize>(), 272);
}

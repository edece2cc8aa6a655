//! `locomo` on the real `locomo10.json` (from `../shared/data`): split counts, oracle
//! ceiling, baselines, determinism.

mod common;

use common::{mean_reward, mean_score, play};
use memrl_envs::env::{ContextEdit, Env, ScriptedKind, Split};
use memrl_envs::locomo::{LocomoEnv, LocomoKnobs, LocomoMetric, SplitMode};
use memrl_envs::tokens::ByteApproxCounter;
use std::sync::Arc;

/// Default knobs reading the checkout's `locomo10.json` (the tests run in `envs/`, not at the root).
fn knobs() -> LocomoKnobs {
    LocomoKnobs { data_path: common::data_file("locomo/locomo10.json"), ..LocomoKnobs::default() }
}

fn env(knobs: LocomoKnobs) -> LocomoEnv {
    LocomoEnv::new(knobs, Arc::new(ByteApproxCounter::default())).unwrap()
}

#[test]
fn memory_r1_split_reproduces_152_81_1307() {
    let e = env(knobs());
    assert_eq!(e.source().question_counts(), [152, 81, 1307]);
    assert_eq!(e.task_count(Split::Train), Some(16));
    assert_eq!(e.task_count(Split::Validation), Some(9));
    let e = env(LocomoKnobs { split_mode: SplitMode::ByQuestion, ..knobs() });
    let c = e.source().question_counts();
    assert_eq!(c.iter().sum::<usize>(), 1540);
    assert!((145..=160).contains(&c[0]) && (75..=88).contains(&c[1]), "{c:?}");
    let again = env(LocomoKnobs { split_mode: SplitMode::ByQuestion, ..knobs() });
    assert_eq!(again.source().question_counts(), c);
    let with_adv = env(LocomoKnobs { include_adversarial: true, ..knobs() });
    assert_eq!(with_adv.source().question_counts().iter().sum::<usize>(), 1986);
}

#[test]
fn oracle_near_ceiling_and_baselines_below() {
    let mut e = env(knobs());
    let oracle = play(&mut e, ScriptedKind::Oracle, Split::Validation, 9, 0);
    let heuristic = play(&mut e, ScriptedKind::Heuristic, Split::Validation, 9, 0);
    let none = play(&mut e, ScriptedKind::NoMemory, Split::Validation, 9, 0);
    let (o, h, n) = (mean_reward(&oracle), mean_reward(&heuristic), mean_reward(&none));
    eprintln!("locomo validation (official score): oracle {o:.3} heuristic {h:.3} no-memory {n:.3}");
    eprintln!("heuristic stats: {:?}", heuristic[0].end.breakdown.stats);
    assert!(o >= 0.97, "oracle {o}");
    assert!(h < o - 0.3 && n < 0.05);
    // oracle stores only evidence turns; no errors
    assert!(oracle.iter().all(|r| r.end.breakdown.stats.format_errors == 0 && r.end.breakdown.stats.violations.total() == 0));
    assert!(oracle[0].trace.iter().any(|t| t.edit == ContextEdit::Appended));
    assert!(oracle.iter().all(|r| r.fractures == r.labelled_edits));
}

#[test]
fn adversarial_and_exact_match_and_small_chunks() {
    let knobs = LocomoKnobs { include_adversarial: true, max_sessions: Some(4), chunk_turns: 6, ..knobs() };
    let mut e = env(knobs.clone());
    let n = e.task_count(Split::Validation).unwrap();
    let r = play(&mut e, ScriptedKind::Oracle, Split::Validation, n, 0);
    assert!(mean_score(&r) >= 0.97, "{}", mean_score(&r));
    let mut e = env(LocomoKnobs { metric: LocomoMetric::ExactMatch, ..knobs });
    let r = play(&mut e, ScriptedKind::Oracle, Split::Validation, n, 0);
    assert!(mean_score(&r) >= 0.99, "{}", mean_score(&r));
}

#[test]
fn same_seed_same_trace() {
    let knobs = LocomoKnobs { max_sessions: Some(3), id_style: memrl_envs::ids::IdStyle::Random, ..knobs() };
    let trace = |seed| {
        let mut e = env(knobs.clone());
        play(&mut e, ScriptedKind::Heuristic, Split::Test, 3, seed)
            .iter()
            .flat_map(|r| r.trace.iter().map(|t| serde_json::to_string(t).unwrap()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(trace(1), trace(1));
    assert_ne!(trace(1), trace(2));
}

#[test]
fn conversations_and_max_questions_restrict_the_split() {
    let only = LocomoKnobs { conversations: Some(vec!["conv-41".into()]), include_adversarial: true, ..knobs() };
    let e = env(only.clone());
    assert_eq!(e.source().question_counts(), [0, 0, 193]);
    let capped = env(LocomoKnobs { max_questions: Some(50), questions_per_episode: 1000, ..only.clone() });
    assert_eq!(capped.source().question_counts()[2], 50);
    assert_eq!(capped.task_count(Split::Test), Some(1));
    // Evenly spaced: the blocks of categories 4 and 5 at the end of conv-41 are represented.
    use memrl_envs::env::TaskId;
    use memrl_envs::stream::StreamSource;
    let task = capped.source().task(TaskId { split: Split::Test, index: 0 }).unwrap();
    let cats: Vec<&str> = task.questions.iter().filter_map(|q| q.category.as_deref()).collect();
    assert!(cats.contains(&"adversarial") && cats.contains(&"single-hop") && cats.contains(&"multi-hop"), "{cats:?}");
    let positions: Vec<usize> = task.questions.iter().map(|q| memrl_envs::locomo::LocomoSource::locate(q).1).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]) && *positions.last().unwrap() > 150, "{positions:?}");
    // A cap plays the fewest conversations that hold it (the first ones of the split), not a
    // few questions from every conversation: streaming a conversation is the cost.
    let all = LocomoKnobs { include_adversarial: true, questions_per_episode: 1000, ..knobs() };
    let full = env(all.clone());
    let per_conversation: Vec<usize> =
        (0..full.task_count(Split::Test).unwrap()).map(|index| full.source().task(TaskId { split: Split::Test, index }).unwrap().questions.len()).collect();
    assert!(per_conversation.len() > 2 && per_conversation[0] > 10, "{per_conversation:?}");
    let ten = env(LocomoKnobs { max_questions: Some(10), ..all.clone() });
    assert_eq!((ten.source().question_counts()[2], ten.task_count(Split::Test)), (10, Some(1)));
    let over_one = per_conversation[0] + 1;
    let two = env(LocomoKnobs { max_questions: Some(over_one), ..all.clone() });
    assert_eq!((two.source().question_counts()[2], two.task_count(Split::Test)), (over_one, Some(2)));
    // A cap above the split's size keeps everything.
    assert_eq!(env(LocomoKnobs { max_questions: Some(10_000), ..only.clone() }).source().question_counts()[2], 193);
    let err = LocomoEnv::new(LocomoKnobs { conversations: Some(vec!["conv-99".into()]), ..knobs() }, Arc::new(ByteApproxCounter::default()))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("conv-99") && err.contains("conv-41"), "{err}");
    assert!(LocomoEnv::new(LocomoKnobs { max_questions: Some(0), ..knobs() }, Arc::new(ByteApproxCounter::default())).is_err());
}

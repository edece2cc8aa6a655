//! `longmemeval` on a small fixture in the LongMemEval format (the real data is not
//! available offline; the fixture's text is our own).

mod common;

use common::{mean_reward, play};
use memrl_datasets::scoring::longmemeval::{Judge, JudgeError};
use memrl_envs::env::{Env, ScriptedKind, Split};
use memrl_envs::longmemeval::{LongMemEvalEnv, LongMemEvalKnobs, LongMemEvalScorer};
use memrl_envs::tokens::ByteApproxCounter;
use std::sync::Arc;

fn knobs() -> LongMemEvalKnobs {
    LongMemEvalKnobs {
        data_path: concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/longmemeval_tiny.json").into(),
        train_fraction: 0.0,
        validation_fraction: 0.0,
        ..LongMemEvalKnobs::default()
    }
}

#[test]
fn oracle_is_perfect_under_the_proxy_and_baselines_are_not() {
    let mut e = LongMemEvalEnv::new(knobs(), Arc::new(ByteApproxCounter::default())).unwrap();
    assert_eq!(e.task_count(Split::Test), Some(6));
    let oracle = play(&mut e, ScriptedKind::Oracle, Split::Test, 6, 0);
    let none = play(&mut e, ScriptedKind::NoMemory, Split::Test, 6, 0);
    let heuristic = play(&mut e, ScriptedKind::Heuristic, Split::Test, 6, 0);
    eprintln!("longmemeval fixture: oracle {} heuristic {} no-memory {}", mean_reward(&oracle), mean_reward(&heuristic), mean_reward(&none));
    assert_eq!(mean_reward(&oracle), 1.0);
    assert!(mean_reward(&none) < 0.5);
    // the oracle stores exactly the has_answer turns: one per non-abstention question
    let adds: u32 = oracle.iter().map(|r| r.end.breakdown.stats.ops.add).sum();
    assert_eq!(adds, 5);
    assert!(oracle[0].trace[0].context[1].content.contains("DATE: 2023/05/20 (Sat) 02:21"));
}

struct Strict;
impl Judge for Strict {
    fn judge(&self, prompt: &str) -> Result<String, JudgeError> {
        // A stand-in judge: "yes" when the response block repeats the correct answer line.
        let answer = prompt.split("Correct Answer: ").nth(1).and_then(|s| s.lines().next()).unwrap_or("");
        let response = prompt.split("Model Response: ").nth(1).unwrap_or("");
        Ok(if !answer.is_empty() && response.contains(answer.trim()) { "yes".into() } else { "no".into() })
    }
}

#[test]
fn judge_scorer_needs_a_judge_and_uses_it() {
    let k = LongMemEvalKnobs { scorer: LongMemEvalScorer::Judge, ..knobs() };
    assert!(LongMemEvalEnv::new(k.clone(), Arc::new(ByteApproxCounter::default())).is_err());
    let mut e = LongMemEvalEnv::with_judge(k, Arc::new(ByteApproxCounter::default()), Arc::new(Strict)).unwrap();
    let r = play(&mut e, ScriptedKind::Oracle, Split::Test, 6, 0);
    // the stand-in judge cannot recognise abstentions or rubric answers from their text
    assert!(mean_reward(&r) > 0.5, "{}", mean_reward(&r));
}

#[test]
fn missing_data_is_a_clear_error() {
    let k = LongMemEvalKnobs { data_path: "no/such/file.json".into(), ..LongMemEvalKnobs::default() };
    let err = LongMemEvalEnv::new(k, Arc::new(ByteApproxCounter::default())).err().unwrap().to_string();
    assert!(err.contains("no/such/file.json") && err.contains("data_path"), "{err}");
}

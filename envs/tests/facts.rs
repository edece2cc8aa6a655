//! `facts` end to end: scripted policies, capacity pressure, determinism, knobs.

mod common;

use common::{mean_reward, mean_score, play};
use memrl_envs::env::{ContextEdit, Env, Next, ScriptedKind, Split, TaskId};
use memrl_envs::facts::{FactsEnv, FactsKnobs, MemoryMode};
use memrl_envs::tokens::ByteApproxCounter;
use std::sync::Arc;

fn env(knobs: FactsKnobs) -> FactsEnv {
    FactsEnv::new(knobs, Arc::new(ByteApproxCounter::default())).unwrap()
}

#[test]
fn oracle_is_perfect_and_baselines_are_below_under_capacity_pressure() {
    let mut e = env(FactsKnobs::default());
    let oracle = play(&mut e, ScriptedKind::Oracle, Split::Validation, 100, 0);
    let heuristic = play(&mut e, ScriptedKind::Heuristic, Split::Validation, 100, 0);
    let none = play(&mut e, ScriptedKind::NoMemory, Split::Validation, 100, 0);
    let full = play(&mut e, ScriptedKind::FullContext, Split::Validation, 100, 0);
    let (o, h, n, f) = (mean_reward(&oracle), mean_reward(&heuristic), mean_reward(&none), mean_score(&full));
    eprintln!("facts defaults: oracle {o:.3} heuristic {h:.3} no-memory {n:.3} full-context(score) {f:.3}");
    assert!(o >= 0.99, "oracle {o}");
    assert!(h < o - 0.2, "heuristic {h} should be clearly below oracle {o}");
    assert!(n < 0.05, "no-memory {n}");
    assert!(oracle.iter().all(|r| r.end.breakdown.stats.format_errors == 0 && r.end.breakdown.stats.violations.total() == 0));
    // full context overflows the bank: refused adds count as memory violations
    assert!(full.iter().map(|r| r.end.breakdown.stats.violations.memory).sum::<u32>() > 0);
}

#[test]
fn every_turn_after_the_first_is_a_fracture_in_bank_mode() {
    let mut e = env(FactsKnobs::default());
    let r = play(&mut e, ScriptedKind::Oracle, Split::Train, 3, 5);
    for ep in &r {
        let turns = ep.trace.len() as u32;
        assert_eq!(ep.fractures, turns - 1);
        assert_eq!(ep.labelled_edits, turns - 1);
        assert_eq!(ep.trace[0].edit, ContextEdit::Initial);
        assert!(ep.trace[1..].iter().all(|t| t.edit == ContextEdit::Rebuilt));
    }
}

#[test]
fn retractions_are_handled_by_oracle_and_heuristic_deletes() {
    let mut e = env(FactsKnobs { retraction_prob: 0.5, ..FactsKnobs::default() });
    let oracle = play(&mut e, ScriptedKind::Oracle, Split::Validation, 50, 0);
    assert!(mean_reward(&oracle) >= 0.99, "{}", mean_reward(&oracle));
    let heuristic = play(&mut e, ScriptedKind::Heuristic, Split::Validation, 50, 0);
    assert!(heuristic.iter().map(|r| r.end.breakdown.stats.ops.delete).sum::<u32>() > 0);
}

#[test]
fn overwrite_mode_oracle_is_perfect() {
    let mut e = env(FactsKnobs { memory_mode: MemoryMode::Overwrite, ..FactsKnobs::default() });
    let oracle = play(&mut e, ScriptedKind::Oracle, Split::Validation, 50, 0);
    let heuristic = play(&mut e, ScriptedKind::Heuristic, Split::Validation, 50, 0);
    let (o, h) = (mean_reward(&oracle), mean_reward(&heuristic));
    eprintln!("facts overwrite: oracle {o:.3} heuristic {h:.3}");
    assert!(o >= 0.99, "{o}");
    assert!(h < o);
    assert!(oracle[0].trace[1..].iter().all(|t| t.edit == ContextEdit::Overwritten));
}

#[test]
fn same_seed_gives_byte_identical_traces() {
    let trace = |seed: u64| -> String {
        let mut e = env(FactsKnobs { id_style: memrl_envs::ids::IdStyle::Random, ..FactsKnobs::default() });
        play(&mut e, ScriptedKind::Heuristic, Split::Train, 5, seed)
            .iter()
            .flat_map(|r| r.trace.iter().map(|t| serde_json::to_string(t).unwrap()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(trace(3), trace(3));
    assert_ne!(trace(3), trace(4));
}

#[test]
fn malformed_completions_are_penalised_not_fatal() {
    let mut e = env(FactsKnobs::default());
    e.reset(TaskId { split: Split::Train, index: 0 }, 0).unwrap();
    let garbage = [
        "",
        "hello",
        "<tool_call>{",
        "<tool_call>{\"name\":\"memory_add\",\"arguments\":{\"content\":5}}</tool_call>",
        // question phase: memory tools are no longer offered
        "<tool_call>{\"name\":\"noop\",\"arguments\":{}}</tool_call>",
    ];
    let mut penalties = 0.0;
    for g in garbage {
        let step = e.step(g).unwrap();
        penalties += step.penalty;
        assert!(step.observation.contains("error"), "{}", step.observation);
        if let Next::Done(end) = step.next {
            assert!(end.reward < 0.0);
            break;
        }
    }
    assert!(penalties > 0.0);
    assert_eq!(e.stats().format_errors, 5);
}

#[test]
fn turn_limit_ends_the_episode_with_a_violation() {
    let mut e = env(FactsKnobs { max_turns: Some(2), ..FactsKnobs::default() });
    e.reset(TaskId { split: Split::Train, index: 0 }, 0).unwrap();
    let noop = "<tool_call>{\"name\":\"noop\",\"arguments\":{}}</tool_call>";
    assert!(matches!(e.step(noop).unwrap().next, Next::Continue(_)));
    let Next::Done(end) = e.step(noop).unwrap().next else { panic!("should end") };
    assert_eq!(end.breakdown.stats.violations.turns, 1);
    assert!(e.step(noop).is_err());
}

#[test]
fn out_of_range_and_bad_knobs_are_errors() {
    let mut e = env(FactsKnobs { validation_tasks: 3, ..FactsKnobs::default() });
    assert!(e.reset(TaskId { split: Split::Validation, index: 3 }, 0).is_err());
    assert!(e.step("x").is_err());
    assert!(FactsEnv::new(FactsKnobs { questions: 99, ..FactsKnobs::default() }, Arc::new(ByteApproxCounter::default())).is_err());
}

#[test]
fn terse_prompt_plays_the_same_episodes_in_fewer_tokens() {
    use memrl_envs::facts::PromptStyle;
    let knobs = FactsKnobs { retraction_prob: 0.3, ..FactsKnobs::default() };
    let mut full = env(knobs.clone());
    let mut terse = env(FactsKnobs { prompt: PromptStyle::Terse, ..knobs });
    for kind in [ScriptedKind::Oracle, ScriptedKind::Heuristic] {
        let (f, t) = (play(&mut full, kind, Split::Validation, 20, 1), play(&mut terse, kind, Split::Validation, 20, 1));
        // same tasks, same completions, same rewards: only the wording around the facts differs
        for (a, b) in f.iter().zip(&t) {
            assert_eq!(a.end.reward, b.end.reward);
            let completions = |r: &memrl_envs::rollout::EpisodeResult| r.trace.iter().map(|t| t.completion.clone()).collect::<Vec<_>>();
            assert_eq!(completions(a), completions(b));
            for (ta, tb) in a.trace.iter().zip(&b.trace) {
                let text = |t: &memrl_envs::rollout::TraceTurn| t.context.iter().map(|m| m.content.as_str()).collect::<String>();
                let (long, short) = (text(ta), text(tb));
                assert!(short.len() * 3 < long.len() * 2, "terse {} bytes vs full {}", short.len(), long.len());
                // every line of the full prompt but its wording lines (facts, memory entries,
                // results, questions) is in the terse one
                let wording = ["Track these people", "Memory (", "Results of your", "Chunk ", "Update the memory", "All chunks have been shown", "q"];
                for line in ta.context[1].content.lines().filter(|l| !l.is_empty() && !wording.iter().any(|w| l.starts_with(w))) {
                    assert!(short.contains(line), "terse prompt lost {line:?}");
                }
            }
        }
    }
    // questions are asked as the memory line's key: `q1: Vera pet?`
    let last = &play(&mut terse, ScriptedKind::Oracle, Split::Validation, 1, 0)[0];
    let questions: Vec<&str> = last.trace.last().unwrap().context[1].content.lines().filter(|l| l.starts_with('q')).collect();
    assert!(!questions.is_empty());
    for q in questions {
        let words: Vec<&str> = q.split(' ').collect();
        assert!(
            words.len() == 3 && words[2].ends_with('?') && memrl_envs::facts::generator::ATTRIBUTES.iter().any(|a| format!("{}?", a.key) == words[2]),
            "{q}"
        );
    }
    let turn = terse.reset(TaskId { split: Split::Validation, index: 0 }, 0).unwrap();
    assert!(turn.tools_text.is_empty() && turn.offers("memory_add") && !turn.offers("answer"));
    assert!(turn.messages[1].content.starts_with("Track: "));
    let bad = FactsEnv::new(
        FactsKnobs { prompt: PromptStyle::Terse, memory_mode: MemoryMode::Overwrite, ..FactsKnobs::default() },
        Arc::new(ByteApproxCounter::default()),
    );
    assert!(bad.err().unwrap().to_string().contains("terse"));
}

#[test]
fn one_question_per_turn_asks_each_question_alone_with_the_same_scores() {
    let knobs = FactsKnobs { retraction_prob: 0.3, ..FactsKnobs::default() };
    let mut all = env(knobs.clone());
    let mut single = env(FactsKnobs { questions_per_turn: 1, ..knobs.clone() });
    for kind in [ScriptedKind::Oracle, ScriptedKind::Heuristic, ScriptedKind::NoMemory] {
        let (a, s) = (play(&mut all, kind, Split::Validation, 20, 1), play(&mut single, kind, Split::Validation, 20, 1));
        for (a, s) in a.iter().zip(&s) {
            // the same memory turns and answers, split over one answer turn per question
            assert_eq!(a.end.reward, s.end.reward);
            assert_eq!(s.trace.len(), a.trace.len() - 1 + knobs.questions);
            let answer_turns = &s.trace[a.trace.len() - 1..];
            for (i, turn) in answer_turns.iter().enumerate() {
                let asked: Vec<&str> = turn.context[1].content.lines().filter(|l| l.starts_with('q')).collect();
                assert_eq!(asked.len(), 1, "{asked:?}");
                assert!(asked[0].starts_with(&format!("q{}:", i + 1)), "{asked:?}");
                assert_eq!(turn.completion.matches("<tool_call>").count(), 1, "{}", turn.completion);
            }
        }
    }
    let bad = FactsEnv::new(FactsKnobs { questions_per_turn: 5, ..knobs }, Arc::new(ByteApproxCounter::default()));
    assert!(bad.err().unwrap().to_string().contains("questions_per_turn"));
}

#[test]
fn name_pool_limits_the_people_and_is_validated() {
    use memrl_envs::facts::PromptStyle;
    let knobs = FactsKnobs { name_pool: 6, prompt: PromptStyle::Terse, ..FactsKnobs::default() };
    let pool = &memrl_envs::facts::generator::NAMES[..6];
    let mut e = env(knobs.clone());
    for ep in play(&mut e, ScriptedKind::Oracle, Split::Validation, 20, 0) {
        assert!(ep.end.reward >= 0.99);
        for turn in &ep.trace {
            for line in turn.context[1].content.lines().filter(|l| l.ends_with('.') && !l.starts_with("Track")) {
                let name = line.split(|c: char| c == ' ' || c == '\'').next().unwrap();
                assert!(pool.contains(&name), "{name} of {line:?} is outside the pool");
            }
        }
    }
    // the default pool is unchanged: the same tasks as before the knob existed
    assert_eq!(FactsKnobs::default().name_pool, 0);
    for (pool, needle) in [(3, "entities + distractor_entities"), (41, "name_pool")] {
        let bad = FactsEnv::new(FactsKnobs { name_pool: pool, ..FactsKnobs::default() }, Arc::new(ByteApproxCounter::default()));
        assert!(bad.err().unwrap().to_string().contains(needle), "name_pool {pool}");
    }
}

#[test]
fn heuristic_noise_varies_the_demonstrations_deterministically() {
    use memrl_envs::facts::Eviction;
    use std::collections::BTreeSet;
    let base = FactsKnobs {
        entities: 2,
        distractor_entities: 2,
        attributes: 1,
        updates_per_key: 0,
        capacity: 2,
        chunk_size: 1,
        questions: 2,
        ..FactsKnobs::default()
    };
    let deletes = |r: &[memrl_envs::rollout::EpisodeResult]| -> BTreeSet<String> {
        r.iter().flat_map(|ep| ep.trace.iter().filter(|t| t.completion.contains("memory_delete")).map(|t| format!("{}:{}", t.turn, t.completion))).collect()
    };
    let count = |r: &[memrl_envs::rollout::EpisodeResult], op: &str| r.iter().flat_map(|ep| &ep.trace).filter(|t| t.completion.contains(op)).count();
    let mut plain = env(base.clone());
    let mut noisy = env(FactsKnobs { heuristic_eviction: Eviction::Random, heuristic_skip: 0.3, ..base.clone() });
    let (p, n) = (play(&mut plain, ScriptedKind::Heuristic, Split::Validation, 40, 0), play(&mut noisy, ScriptedKind::Heuristic, Split::Validation, 40, 0));
    // the plain heuristic evicts the oldest entry: always the first line of a full bank
    for ep in &p {
        for t in ep.trace.iter().filter(|t| t.completion.contains("memory_delete")) {
            let first_id = t.context[1].content.lines().find(|l| l.starts_with("[m")).unwrap()[1..].split(']').next().unwrap().to_string();
            assert!(t.completion.contains(&format!("\"id\":\"{first_id}\"")), "{}", t.completion);
        }
    }
    // noise: some evictions of a newer entry and some skipped facts (noop turns)
    let newer_victim = n.iter().flat_map(|ep| &ep.trace).filter(|t| t.completion.contains("memory_delete")).any(|t| {
        let first_id = t.context[1].content.lines().find(|l| l.starts_with("[m")).unwrap()[1..].split(']').next().unwrap().to_string();
        !t.completion.contains(&format!("\"id\":\"{first_id}\""))
    });
    assert!(newer_victim, "random eviction never chose a newer entry");
    assert_eq!(count(&p, "\"noop\""), 0);
    assert!(count(&n, "\"noop\"") > 5, "skips: {}", count(&n, "\"noop\""));
    assert_ne!(deletes(&p), deletes(&n));
    // same seeds, same demonstrations
    let again = play(&mut noisy, ScriptedKind::Heuristic, Split::Validation, 40, 0);
    let completions = |r: &[memrl_envs::rollout::EpisodeResult]| r.iter().flat_map(|ep| ep.trace.iter().map(|t| t.completion.clone())).collect::<Vec<_>>();
    assert_eq!(completions(&n), completions(&again));
    // the oracle ignores the heuristic's knobs
    let (o1, o2) = (play(&mut plain, ScriptedKind::Oracle, Split::Validation, 10, 0), play(&mut noisy, ScriptedKind::Oracle, Split::Validation, 10, 0));
    assert_eq!(completions(&o1), completions(&o2));
    let bad = FactsEnv::new(FactsKnobs { heuristic_skip: 1.5, ..base }, Arc::new(ByteApproxCounter::default()));
    assert!(bad.err().unwrap().to_string().contains("heuristic_skip"));
}

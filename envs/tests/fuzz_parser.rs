//! Seeded mutation fuzzing of the tool-call parser and of `Env::step`.
//!
//! Default: 100,000 parser cases (CI). Set `MEMRL_FUZZ_CASES=1000000` for the long run.
//! Properties: no panic; spans in bounds, on char boundaries, ordered and disjoint;
//! at most `max_calls` calls; every accepted action re-renders to text that parses back
//! to the same action; input size and nesting are capped.

use memrl_envs::env::{Env, Next, Split, TaskId};
use memrl_envs::facts::{FactsEnv, FactsKnobs};
use memrl_envs::multiobjective::{MultiObjectiveEnv, MultiObjectiveKnobs};
use memrl_envs::tokens::ByteApproxCounter;
use memrl_envs::toolcall::ParseLimits;
use memrl_envs::tools::{ALL_TOOLS, Action, ToolSet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

const DICT: &[&str] = &[
    "<tool_call>",
    "</tool_call>",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    ":",
    ",",
    "\"name\"",
    "\"arguments\"",
    "\"content\"",
    "\"id\"",
    "\"query\"",
    "\"k\"",
    "\"memory\"",
    "\"delete_ids\"",
    "\"summary\"",
    "\"question_id\"",
    "\"text\"",
    "null",
    "true",
    "-1",
    "0",
    "3",
    "21",
    "1e400",
    "3.5",
    "\"m1\"",
    "\"r2\"",
    "\n",
    " ",
    "é",
    "🦀",
    "\u{0}",
    "\\u0000",
    "\\ud800",
    "<tool_call",
    "tool_call>",
    "\"memory_add\"",
    "\"memory_update\"",
    "\"memory_delete\"",
    "\"noop\"",
    "\"search\"",
    "\"prune_context\"",
    "\"summarize\"",
    "\"answer\"",
    "[[[[[[[[[[[[[[[[[[[[",
    "{\"a\":{\"a\":{\"a\":{\"a\":",
    "\"\"",
];

fn seeds() -> Vec<String> {
    let actions = vec![
        Action::MemoryAdd { content: "Alice city: Paris".into() },
        Action::MemoryUpdate { id: "m1".into(), content: "Bob job: nurse".into() },
        Action::MemoryDelete { id: "m2".into() },
        Action::Noop,
        Action::MemorySearch { query: "alice".into(), k: 4 },
        Action::Search { query: "Who founded the Vornak Institute?".into(), k: 3 },
        Action::PruneContext { memory: "[STATUS] q1 done".into(), delete_ids: vec!["r1".into(), "r3".into()] },
        Action::Summarize { summary: "so far: q1 = Lisa".into() },
        Action::Answer { question_id: "q1".into(), text: "1873".into() },
    ];
    let mut out: Vec<String> = actions.iter().map(Action::to_call_text).collect();
    out.push(format!("Let me think.\n{}{}done", actions[0].to_call_text(), actions[6].to_call_text()));
    out.push(actions.iter().map(Action::to_call_text).collect());
    out
}

fn mutate(rng: &mut ChaCha8Rng, input: &str, pool: &[String]) -> String {
    let mut bytes = input.as_bytes().to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = bytes.len();
        match rng.random_range(0..8) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                bytes[i] = rng.random();
            }
            1 => {
                let i = rng.random_range(0..=len);
                bytes.insert(i, rng.random());
            }
            2 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..=len.min(a + 16));
                bytes.drain(a..b);
            }
            3 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..=len.min(a + 32));
                let piece = bytes[a..b].to_vec();
                let at = rng.random_range(0..=bytes.len());
                bytes.splice(at..at, piece);
            }
            4 | 5 => {
                let w = DICT[rng.random_range(0..DICT.len())].as_bytes();
                let at = rng.random_range(0..=len);
                bytes.splice(at..at, w.iter().copied());
            }
            6 => {
                let other = pool[rng.random_range(0..pool.len())].as_bytes();
                let at = rng.random_range(0..=len);
                bytes.splice(at..at, other.iter().copied());
            }
            _ if len > 0 => bytes.truncate(rng.random_range(0..len)),
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn random_input(rng: &mut ChaCha8Rng) -> String {
    (0..rng.random_range(0..40)).map(|_| DICT[rng.random_range(0..DICT.len())]).collect()
}

fn check(set: &ToolSet, input: &str) -> usize {
    let (actions, _) = set.parse(input);
    assert!(actions.len() <= ParseLimits::default().max_calls);
    let mut end = 0;
    for a in &actions {
        assert!(a.span.start >= end && a.span.end <= input.len() && a.span.start < a.span.end, "bad span {:?} in {input:?}", a.span);
        assert!(input.is_char_boundary(a.span.start) && input.is_char_boundary(a.span.end));
        end = a.span.end;
        if let Ok(action) = &a.result {
            let (again, _) = set.parse(&action.to_call_text());
            assert_eq!(again.len(), 1);
            assert_eq!(again[0].result.as_ref(), Ok(action), "round trip of {input:?}");
        }
    }
    actions.iter().filter(|a| a.result.is_ok()).count()
}

#[test]
fn parser_survives_random_and_mutated_inputs() {
    let cases: u64 = std::env::var("MEMRL_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let set = ToolSet::new(&ALL_TOOLS);
    let mut pool = seeds();
    let mut rng = ChaCha8Rng::seed_from_u64(0xF022);
    let (mut accepted, mut max_len) = (0usize, 0usize);
    for i in 0..cases {
        let input = if i % 10 == 0 {
            random_input(&mut rng)
        } else {
            let base = pool[rng.random_range(0..pool.len())].clone();
            mutate(&mut rng, &base, &pool)
        };
        max_len = max_len.max(input.len());
        let ok = check(&set, &input);
        accepted += ok;
        // Keep interesting survivors (still parse to something) as new seeds, bounded.
        if ok > 0 && pool.len() < 2000 && input.len() < 4096 {
            pool.push(input);
        }
    }
    // Pathological shapes.
    check(&set, &"<tool_call>".repeat(10_000));
    check(&set, &format!("<tool_call>{}</tool_call>", "[".repeat(100_000)));
    check(&set, &"x".repeat(1 << 20));
    eprintln!("fuzzed {cases} inputs (max {max_len} bytes), {accepted} calls accepted");
    assert!(accepted > 0);
}

#[test]
fn env_step_survives_mutated_completions() {
    let counter = Arc::new(ByteApproxCounter::default());
    let mut envs: Vec<Box<dyn Env>> = vec![
        Box::new(FactsEnv::new(FactsKnobs::default(), counter.clone()).unwrap()),
        Box::new(MultiObjectiveEnv::new(MultiObjectiveKnobs::default(), counter).unwrap()),
    ];
    let pool = seeds();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for env in envs.iter_mut() {
        for episode in 0..300u64 {
            env.reset(TaskId { split: Split::Train, index: episode }, episode).unwrap();
            for _ in 0..200 {
                let base = rng.random_range(0..pool.len());
                let text = mutate(&mut rng, &pool[base], &pool);
                match env.step(&text).expect("step never errors on policy output").next {
                    Next::Continue(t) => assert!(!t.messages.is_empty()),
                    Next::Done(end) => {
                        assert!(end.reward.is_finite() && end.reward >= -1.0 && end.reward <= 1.0);
                        break;
                    }
                }
            }
        }
    }
}

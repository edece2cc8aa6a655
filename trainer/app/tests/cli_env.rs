//! `memrl env play` and `memrl bench envs`, through the library and the real binary.

use memrl_trainer::cli::env::{PlayArgs, play};
use std::process::Command;

fn args(env: &str, policy: &str, episodes: u64) -> PlayArgs {
    PlayArgs {
        env: env.into(),
        policy: policy.into(),
        episodes,
        seed: 0,
        split: "validation".into(),
        set: vec![],
        trace: None,
        json: true,
        counter: "approx".into(),
    }
}

#[test]
fn oracle_beats_baselines_on_facts_and_multiobjective() {
    for env in ["facts", "multiobjective"] {
        let (oracle, _) = play(&args(env, "oracle", 60)).unwrap();
        let (heuristic, _) = play(&args(env, "heuristic", 60)).unwrap();
        let (none, _) = play(&args(env, "no-memory", 60)).unwrap();
        assert!(oracle.reward.mean >= 0.99, "{env}: {:?}", oracle.reward);
        assert!(heuristic.reward.mean < oracle.reward.mean - 0.1, "{env}: {:?}", heuristic.reward);
        assert!(none.reward.mean < 0.05);
        assert_eq!(oracle.violations_per_episode, 0.0);
    }
    let (prune, _) = play(&args("multiobjective", "oracle", 60)).unwrap();
    assert!(prune.fractures_per_episode > 0.0 && prune.ops_per_episode["prune"] > 0.0);
}

#[test]
fn knob_overrides_apply_and_unknown_knobs_fail() {
    let mut a = args("facts", "oracle", 10);
    a.set = vec!["entities=3".into(), "capacity=6".into(), "questions=6".into()];
    let (s, _) = play(&a).unwrap();
    assert_eq!(s.peak_memory_entries_max, 6);
    a.set = vec!["capacityy=6".into()];
    let err = play(&a).unwrap_err().to_string();
    assert!(err.contains("capacityy"), "{err}");
}

fn memrl(args: &[&str], threads: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_memrl")).args(args).env("RAYON_NUM_THREADS", threads).output().unwrap()
}

#[test]
fn binary_traces_are_byte_identical_across_runs_and_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: &str, threads: &str| {
        let path = dir.path().join(name);
        let p = path.to_str().unwrap();
        let out = memrl(
            &[
                "env",
                "play",
                "--env",
                "multiobjective",
                "--policy",
                "heuristic",
                "--episodes",
                "12",
                "--seed",
                seed,
                "--set",
                "id_style=random",
                "--trace",
                p,
                "--json",
            ],
            threads,
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["episodes"], 12);
        std::fs::read(path).unwrap()
    };
    let a = run("a.jsonl", "5", "1");
    let b = run("b.jsonl", "5", "2");
    let c = run("c.jsonl", "6", "2");
    assert_eq!(a, b);
    assert_ne!(a, c);
    let first: serde_json::Value = serde_json::from_slice(a.split(|&x| x == b'\n').next().unwrap()).unwrap();
    for key in ["episode", "turn", "context", "completion", "actions", "observation", "edit"] {
        assert!(first.get(key).is_some(), "trace line lacks {key}");
    }
}

#[test]
fn binary_reports_bad_input_and_benches() {
    let out = memrl(&["env", "play", "--env", "facts", "--policy", "wizard"], "1");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wizard"));
    let out = memrl(&["bench", "envs", "--env", "facts", "--env", "nope", "--seconds", "0.2", "--json"], "1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["results"][0]["steps"].as_u64().unwrap() > 0);
    assert!(v["results"][0]["env_us_per_step"].as_f64().unwrap() > 0.0);
    assert!(v["results"][1]["skipped"].as_str().unwrap().contains("unknown environment"));
}

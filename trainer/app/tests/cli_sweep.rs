//! `memrl sweep` through the real binary: a 2-setting × 2-seed sweep of a tiny training config,
//! its summary files, skipping finished trials, resuming a killed one, retrying a failed one,
//! refusing a changed sweep file, and `--overwrite`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

/// A few-second training run: tiny model, small `facts` episodes, a short SFT, 2 RL steps,
/// 2 evaluation episodes, a checkpoint every step.
const BASE: &str = r#"
[run]
name = "tiny"
steps = 2
checkpoint_every = 1
keep_checkpoints = 3
plot_every = 0
rollouts_every = 0

[env]
name = "facts"

[env.options]
entities = 1
distractor_entities = 1
capacity = 2
chunk_size = 3
questions = 2
updates_per_key = 1

[policy]
model = "tiny-2l-64d"

[rollout]
batch_size = 2
group_size = 2
max_new_tokens = 32
max_turns = 4
max_context_tokens = 512

[trainer]
lr = 1e-4
micro_batch_tokens = 4096

[sft]
enabled = true
source = "heuristic"
episodes = 4
epochs = 1
lr = 1e-3
batch_size = 4

[eval]
split = "validation"
episodes = 2
every = 1
"#;

const SWEEP: &str = r#"
name = "tiny"
base = "configs/base.toml"
seeds = [0, 1]

[grid]
"trainer.lr" = [1e-4, 1e-3]
"#;

const TRIALS: [&str; 4] = ["s00-seed0", "s00-seed1", "s01-seed0", "s01-seed1"];

/// A private link to the `memrl` binary built for this test, inside `dir`. Several worktrees
/// may share one cargo target directory, where another build can replace `target/debug/memrl`
/// while this test runs; a hard link keeps this build's file (a copy where linking fails).
fn own_binary(dir: &Path) -> PathBuf {
    let built = Path::new(env!("CARGO_BIN_EXE_memrl"));
    let own = dir.join("memrl-under-test");
    if std::fs::hard_link(built, &own).is_err() {
        std::fs::copy(built, &own).expect("copy the memrl binary");
    }
    own
}

fn sweep(cwd: &Path, extra: &[&str]) -> Output {
    let exe = cwd.join("memrl-under-test");
    Command::new(if exe.exists() { exe } else { own_binary(cwd) })
        .current_dir(cwd)
        .args(["sweep", "exp/sweep.toml", "-j", "2", "--json", "--quiet"])
        .args(extra)
        .output()
        .expect("memrl runs")
}

fn report(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| panic!("no report; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// A run's metrics file: its bytes and modification time.
fn fingerprint(run: &Path) -> (Vec<u8>, SystemTime) {
    let path = run.join("metrics.jsonl");
    (std::fs::read(&path).unwrap(), std::fs::metadata(&path).unwrap().modified().unwrap())
}

fn csv_rows(path: &Path) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    (headers, reader.records().map(Result::unwrap).collect())
}

fn field<'a>(headers: &csv::StringRecord, row: &'a csv::StringRecord, name: &str) -> &'a str {
    &row[headers.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"))]
}

#[test]
fn sweep_runs_summarises_skips_resumes_and_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    std::fs::create_dir_all(cwd.join("exp/configs")).unwrap();
    std::fs::write(cwd.join("exp/configs/base.toml"), BASE).unwrap();
    std::fs::write(cwd.join("exp/sweep.toml"), SWEEP).unwrap();
    let out_dir = cwd.join("sweeps/tiny");
    let run = |id: &str| -> PathBuf { out_dir.join("runs").join(id) };

    // 1. The whole sweep.
    let first = sweep(cwd, &[]);
    assert!(first.status.success(), "stderr: {}", String::from_utf8_lossy(&first.stderr));
    let r = report(&first);
    assert_eq!((r["trials"].as_u64(), r["started"].as_u64(), r["finished"].as_u64()), (Some(4), Some(4), Some(4)), "{r}");
    let trials = json(&out_dir.join("trials.json"));
    let ids: Vec<&str> = trials["trials"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, TRIALS);
    assert_eq!(trials["settings"][1]["label"], "lr=0.001");
    for id in TRIALS {
        let cfg = std::fs::read_to_string(run(id).join("config.toml")).unwrap();
        let lr = if id.starts_with("s00") { "lr = 0.0001" } else { "lr = 0.001" };
        assert!(cfg.contains(lr) && cfg.contains(&format!("seed = {}", &id[id.len() - 1..])), "{id}: {cfg}");
        let result = json(&out_dir.join("results").join(format!("{id}.json")));
        assert_eq!(result["status"], "finished");
        assert_eq!(result["summary"]["steps"], 2);
    }
    let (headers, rows) = csv_rows(&out_dir.join("summary.csv"));
    assert_eq!(rows.iter().filter(|r| &r[0] == "trial").count(), 4);
    assert_eq!(rows.iter().filter(|r| &r[0] == "setting").count(), 2);
    for row in rows.iter().filter(|r| &r[0] == "trial") {
        assert_eq!(field(&headers, row, "status"), "finished");
        assert_eq!(field(&headers, row, "final_step"), "2");
        assert!(field(&headers, row, "final_mean").parse::<f64>().unwrap().is_finite());
        assert!(field(&headers, row, "start_mean").parse::<f64>().is_ok());
        assert!(field(&headers, row, "wall_seconds").parse::<f64>().unwrap() > 0.0);
    }
    for row in rows.iter().filter(|r| &r[0] == "setting") {
        assert_eq!(field(&headers, row, "n"), "2");
        assert!(field(&headers, row, "final_std").parse::<f64>().is_ok(), "two seeds give a std");
    }
    let md = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(md.contains("## Settings") && md.contains("| s01 | 0.001 | 2/2 |"), "{md}");
    assert_eq!(md.lines().filter(|l| l.starts_with("| s0") && l.contains("-seed")).count(), 4, "{md}");
    let png = std::fs::read(out_dir.join("final_metric.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");

    // 2. A killed trial (its final checkpoint and its results file gone) is resumed; a trial
    //    whose run directory cannot be created fails, is recorded, and does not stop the others.
    let before: Vec<_> = TRIALS.iter().map(|id| fingerprint(&run(id))).collect();
    std::fs::remove_file(out_dir.join("results/s00-seed1.json")).unwrap();
    std::fs::remove_dir_all(run("s00-seed1").join("checkpoints/step-2")).unwrap();
    std::fs::remove_file(out_dir.join("results/s01-seed0.json")).unwrap();
    std::fs::remove_dir_all(run("s01-seed0")).unwrap();
    std::fs::write(run("s01-seed0"), "a file where the run directory should be").unwrap();
    let second = sweep(cwd, &[]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(stderr.contains("1 of 4 trials failed (s01-seed0)"), "{stderr}");
    let r = report(&second);
    assert_eq!((r["already_finished"].as_u64(), r["started"].as_u64(), r["resumed"].as_u64()), (Some(2), Some(1), Some(1)), "{r}");
    let resumed = json(&out_dir.join("results/s00-seed1.json"));
    assert_eq!(resumed["status"], "finished");
    assert_eq!(resumed["attempts"][0]["start"], "resume");
    assert_eq!(resumed["attempts"][0]["from_step"], 1);
    assert_eq!(resumed["summary"]["resumed_from"], 1);
    let failed = json(&out_dir.join("results/s01-seed0.json"));
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["attempts"][0]["start"], "fresh");
    let tail = out_dir.join(failed["attempts"][0]["stderr_tail"].as_str().unwrap());
    assert!(std::fs::read_to_string(&tail).unwrap().contains("error:"), "{}", tail.display());
    assert!(failed["attempts"][0]["error"].as_str().unwrap().starts_with("error:"), "{failed}");
    let (headers, rows) = csv_rows(&out_dir.join("summary.csv"));
    let row = rows.iter().find(|r| &r[1] == "s01-seed0").unwrap();
    assert_eq!(field(&headers, row, "status"), "failed");
    assert!(field(&headers, row, "error").contains("stderr: logs/s01-seed0.attempt-1.stderr.txt"));
    let setting = rows.iter().find(|r| &r[0] == "setting" && &r[1] == "s01").unwrap();
    assert_eq!((field(&headers, setting, "n"), field(&headers, setting, "final_std")), ("1", ""));
    for i in [0, 3] {
        assert_eq!(fingerprint(&run(TRIALS[i])), before[i], "{} was rerun", TRIALS[i]);
    }
    let resumed_metrics = std::fs::read_to_string(run("s00-seed1").join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = resumed_metrics.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [0, 1, 2], "the resumed run redid step 2 once");

    // 3. With the obstacle gone, the failed trial is retried from scratch; nothing else reruns.
    std::fs::remove_file(run("s01-seed0")).unwrap();
    let before: Vec<_> = [0, 1, 3].map(|i| fingerprint(&run(TRIALS[i]))).to_vec();
    let third = sweep(cwd, &[]);
    assert!(third.status.success(), "stderr: {}", String::from_utf8_lossy(&third.stderr));
    let r = report(&third);
    assert_eq!((r["already_finished"].as_u64(), r["started"].as_u64(), r["finished"].as_u64()), (Some(3), Some(1), Some(4)), "{r}");
    let retried = json(&out_dir.join("results/s01-seed0.json"));
    assert_eq!(retried["status"], "finished");
    assert_eq!(retried["attempts"].as_array().unwrap().len(), 2);
    let after: Vec<_> = [0, 1, 3].map(|i| fingerprint(&run(TRIALS[i]))).to_vec();
    assert_eq!(after, before);

    // 4. Re-running a finished sweep runs nothing and touches no run.
    let before: Vec<_> = TRIALS.iter().map(|id| fingerprint(&run(id))).collect();
    let fourth = sweep(cwd, &[]);
    assert!(fourth.status.success());
    let r = report(&fourth);
    assert_eq!((r["already_finished"].as_u64(), r["started"].as_u64(), r["resumed"].as_u64()), (Some(4), Some(0), Some(0)));
    assert_eq!(TRIALS.iter().map(|id| fingerprint(&run(id))).collect::<Vec<_>>(), before);

    // 5. A changed sweep file is refused for the same output directory...
    std::fs::write(cwd.join("exp/sweep.toml"), SWEEP.replace("1e-3", "3e-3")).unwrap();
    let changed = sweep(cwd, &[]);
    let stderr = String::from_utf8_lossy(&changed.stderr);
    assert!(!changed.status.success());
    assert!(stderr.contains("holds a different sweep") && stderr.contains("s01") && stderr.contains("--overwrite"), "{stderr}");
    assert_eq!(TRIALS.iter().map(|id| fingerprint(&run(id))).collect::<Vec<_>>(), before);

    // ...unless --overwrite, which starts it again from nothing.
    let small = "name = \"tiny\"\nbase = \"configs/base.toml\"\nseeds = [3]\n[set]\n\"run.steps\" = 1\n";
    std::fs::write(cwd.join("exp/sweep.toml"), small).unwrap();
    let over = sweep(cwd, &["--overwrite"]);
    assert!(over.status.success(), "stderr: {}", String::from_utf8_lossy(&over.stderr));
    assert_eq!(report(&over)["started"], 1);
    assert!(!run("s00-seed0").exists());
    assert!(run("s00-seed3").join("checkpoints/step-1/COMPLETE").is_file());
    let trials = json(&out_dir.join("trials.json"));
    assert_eq!(trials["trials"].as_array().unwrap().len(), 1);
}

#[test]
fn sweep_file_errors_name_the_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("exp/configs")).unwrap();
    std::fs::write(tmp.path().join("exp/configs/base.toml"), BASE).unwrap();
    let cases = [
        (format!("{SWEEP}samples = 3\n"), vec!["exp/sweep.toml", "samples"]),
        (SWEEP.replace("\"trainer.lr\"", "\"trainer.lrr\""), vec!["exp/sweep.toml", "trial s00-seed0", "trainer.lrr"]),
        (SWEEP.replace("[1e-4, 1e-3]", "[1e-4, -1.0]"), vec!["trial s01-seed0", "trainer.lr"]),
        (SWEEP.replace("configs/base.toml", "configs/none.toml"), vec!["configs/none.toml"]),
    ];
    for (text, needles) in cases {
        std::fs::write(tmp.path().join("exp/sweep.toml"), &text).unwrap();
        let out = sweep(tmp.path(), &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        for n in needles {
            assert!(stderr.contains(n), "{n:?} not in {stderr}");
        }
        assert!(!tmp.path().join("sweeps").exists(), "a bad sweep file starts nothing");
    }
}

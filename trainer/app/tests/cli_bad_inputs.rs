//! Bad inputs through the real binary (issue 18): each is refused before any work, with an
//! error naming the key or path and no panic, and leaves every file it was pointed at as it was;
//! or, where the input is legal but hostile (a closed stdout, a metric near f64::MAX), the
//! command ends normally.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const MEMRL: &str = env!("CARGO_BIN_EXE_memrl");

mod common;

/// A small valid training config writing to `run_dir` (no SFT, no evaluation).
fn config_text(run_dir: &Path, steps: u64) -> String {
    common::tiny_config(&format!(
        "name = \"bad-inputs\"\ndir = \"{}\"\nseed = 1\nsteps = {steps}\ncheckpoint_every = 1\nkeep_checkpoints = 0\nrollouts_every = 0\nplot_every = 1",
        run_dir.display()
    ))
}

fn memrl(cwd: &Path, args: &[&str]) -> Output {
    Command::new(MEMRL).current_dir(cwd).args(args).stdin(Stdio::null()).output().expect("memrl runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Files (and their contents) that must survive a refused command.
fn snapshot(files: &[&Path]) -> Vec<(PathBuf, Vec<u8>)> {
    files.iter().map(|f| (f.to_path_buf(), std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))).collect()
}

#[test]
fn refusals_name_the_key_and_touch_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    // The working directory of every case, holding someone's work.
    let work = root.join("work/project");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("thesis.tex"), "years of work").unwrap();
    let run = root.join("run");
    let cfg = root.join("train.toml");
    std::fs::write(&cfg, config_text(&run, 2)).unwrap();
    // A copy of an experiment folder: it has a config.toml, but memrl did not create it.
    let copy = root.join("experiment-copy");
    std::fs::create_dir_all(copy.join("plots")).unwrap();
    std::fs::write(copy.join("config.toml"), "[run]\n").unwrap();
    std::fs::write(copy.join("README.md"), "results").unwrap();
    let preds = root.join("preds.jsonl");
    std::fs::write(&preds, "{\"sample_id\": \"conv-26\", \"qa_index\": 0, \"prediction\": \"x\"}\n").unwrap();
    let data = root.join("locomo.json");
    std::fs::write(&data, "[]").unwrap();
    let ckpt = root.join("checkpoint");
    std::fs::create_dir_all(&ckpt).unwrap();
    std::fs::write(ckpt.join("config.json"), "{}").unwrap();
    let seeds: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let lrs: Vec<String> = (1..=101).map(|i| format!("{}e-6", i)).collect();
    let sweep = root.join("huge-sweep.toml");
    std::fs::write(&sweep, format!("name = \"huge\"\nbase = \"{}\"\nseeds = [{}]\n[grid]\n\"trainer.lr\" = [{}]\n", s(&cfg), seeds.join(", "), lrs.join(", ")))
        .unwrap();
    // The default metric, eval/reward, is never logged by a base config without evaluation.
    let unlogged = root.join("unlogged-metric.toml");
    std::fs::write(&unlogged, format!("name = \"unlogged\"\nbase = \"{}\"\n", s(&cfg))).unwrap();
    // A FIFO given as a model: opening it would block until a writer came.
    let fifo = root.join("model.gguf");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let keep = snapshot(&[&work.join("thesis.tex"), &copy.join("README.md"), &copy.join("config.toml"), &preds, &data, &ckpt.join("config.json")]);

    let (cfg, preds_s, data_s, ckpt_s) = (s(&cfg), s(&preds), s(&data), s(&ckpt));
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        // --overwrite: only what memrl made, never the working directory or its ancestors.
        (vec!["train".into(), cfg.clone(), "--overwrite".into(), "--set".into(), "run.dir=.".into()], vec!["refusing to replace", "working directory"]),
        (vec!["train".into(), cfg.clone(), "--overwrite".into(), "--set".into(), "run.dir=..".into()], vec!["refusing to replace", "ancestor"]),
        (vec!["train".into(), cfg.clone(), "--overwrite".into(), "--set".into(), format!("run.dir={}", s(&copy))], vec!["refusing to replace", ".memrl-owned"]),
        // Outputs that are inputs.
        (
            ["score", "--bench", "locomo", "--predictions", &preds_s, "--data", &data_s, "--out", &preds_s].map(String::from).to_vec(),
            vec!["--out", "same file as --predictions"],
        ),
        (
            ["score", "--bench", "locomo", "--predictions", &preds_s, "--data", &data_s, "--out", &data_s].map(String::from).to_vec(),
            vec!["--out", "same file as --data"],
        ),
        (
            ["eval", "--bench", "facts", "--checkpoint", &ckpt_s, "--out", &format!("{ckpt_s}/config.json")].map(String::from).to_vec(),
            vec!["--out", "is inside --checkpoint"],
        ),
        // Inputs checked before the evaluation runs.
        (
            ["eval", "--bench", "facts", "--policy", "oracle", "--judge-model", "/nonexistent/judge.gguf"].map(String::from).to_vec(),
            vec!["judge model", "/nonexistent/judge.gguf", "does not exist"],
        ),
        // Unbounded counts, refused naming the key instead of aborting on allocation.
        (vec!["train".into(), cfg.clone(), "--set".into(), "rollout.task_pool=1000000000000".into()], vec!["rollout.task_pool"]),
        (["eval", "--bench", "facts", "--policy", "oracle", "--limit", "1000000000000"].map(String::from).to_vec(), vec!["--limit"]),
        (["env", "play", "--env", "facts", "--policy", "oracle", "--episodes", "1000000000000"].map(String::from).to_vec(), vec!["--episodes"]),
        (["env", "play", "--env", "facts", "--policy", "oracle", "--episodes", "0"].map(String::from).to_vec(), vec!["--episodes 0"]),
        // An environment knob of the wrong type is named.
        (
            ["env", "play", "--env", "facts", "--policy", "oracle", "--set", "chunk_size=\"many\""].map(String::from).to_vec(),
            vec!["chunk_size", "invalid type"],
        ),
        (vec!["sweep".into(), s(&sweep)], vec!["huge-sweep.toml", "grid", "10100 trials"]),
        (vec!["sweep".into(), s(&unlogged)], vec!["unlogged-metric.toml", "`metric`", "never be logged", "eval.episodes = 0"]),
        // Configs that cannot run, refused naming the key.
        (vec!["train".into(), cfg.clone(), "--set".into(), "eval.split=bogus".into()], vec!["eval.split", "bogus"]),
        (
            ["train", cfg.as_str(), "--set", "policy.model=some-model-dir", "--set", "policy.tokenizer_spaces=isolated"].map(String::from).to_vec(),
            vec!["policy.tokenizer_spaces = \"isolated\"", "tiny preset", "some-model-dir"],
        ),
        (vec!["train".into(), cfg.clone(), "--set".into(), "rollout.max_context_tokens=100000000".into()], vec!["rollout.max_context_tokens", "window"]),
        (
            ["train", cfg.as_str(), "--set", "policy.model=tiny-2l-32d-4h-copy", "--set", "policy.lora.enabled=true"].map(String::from).to_vec(),
            vec!["policy.lora.enabled", "pointer head", "tiny-2l-32d-4h-copy"],
        ),
        (
            ["train", cfg.as_str(), "--set", "policy.model=tiny-2l-32d-2h-match", "--set", "policy.lora.enabled=true"].map(String::from).to_vec(),
            vec!["policy.lora.enabled", "token matching", "tiny-2l-32d-2h-match"],
        ),
        (["generate", "--model", "m.gguf", "--prompt", "hi", "--max-tokens", "0"].map(String::from).to_vec(), vec!["--max-tokens"]),
        // Special files as a model: said to be what they are, not "does not exist".
        (["generate", "--model", "/dev/null", "--prompt", "hi"].map(String::from).to_vec(), vec!["/dev/null", "not a regular file"]),
        (vec!["tokenize".into(), "--model".into(), s(&fifo), "hi".into()], vec!["model.gguf", "FIFO"]),
    ];
    for (args, needles) in &cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = memrl(&work, &argv);
        let e = stderr(&out);
        assert!(!out.status.success(), "{argv:?} succeeded: {e}");
        assert!(!e.contains("panicked"), "{argv:?} panicked: {e}");
        for n in needles {
            assert!(e.contains(n), "{argv:?}: {n:?} not in {e}");
        }
        assert_eq!(snapshot(&keep.iter().map(|(p, _)| p.as_path()).collect::<Vec<_>>()), keep, "{argv:?} changed an input");
    }
    assert!(!run.exists(), "no case started a run");
    assert!(!work.join("runs").exists() && !work.join("sweeps").exists());
}

#[test]
fn errors_print_the_os_error_once_and_failed_starts_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A run whose metrics.jsonl is a directory: reading it fails with EISDIR.
    let run = dir.join("some-run");
    std::fs::create_dir_all(run.join("metrics.jsonl")).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/tests/fixtures/locomo_mini.json");
    let fixture = fixture.to_str().unwrap();
    let cases: [(&[&str], &str, &str); 4] = [
        (&["train", "missing.toml"], "missing.toml", "No such file or directory"),
        (&["sweep", "missing-sweep.toml"], "missing-sweep.toml", "No such file or directory"),
        (&["score", "--bench", "locomo", "--predictions", "missing.jsonl", "--data", fixture], "missing.jsonl", "No such file or directory"),
        (&["plot", "some-run", "--out", "figs"], "metrics.jsonl", "Is a directory"),
    ];
    for (args, path, os_error) in cases {
        let out = memrl(dir, args);
        let e = stderr(&out);
        assert!(!out.status.success(), "{args:?}: {e}");
        assert!(!e.contains("panicked"), "{args:?}: {e}");
        assert!(e.contains(path), "{args:?}: the path is not named: {e}");
        assert_eq!(e.matches(os_error).count(), 1, "{args:?}: the OS error is not printed exactly once: {e}");
    }

    // A start that fails after the run directory was made (the model does not exist) removes
    // it again: trying once more needs no --overwrite.
    let run = tmp.path().join("run");
    let cfg = tmp.path().join("train.toml");
    std::fs::write(&cfg, config_text(&run, 2).replace("tiny-2l-64d", "/nonexistent/model.gguf")).unwrap();
    let out = memrl(tmp.path(), &["train", cfg.to_str().unwrap()]);
    let e = stderr(&out);
    assert!(!out.status.success() && e.contains("/nonexistent/model.gguf"), "{e}");
    assert!(!run.exists(), "the failed start left {}", run.display());
}

#[test]
fn a_live_run_cannot_be_resumed_or_overwritten_by_a_second_process() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("live");
    let cfg = tmp.path().join("train.toml");
    std::fs::write(&cfg, config_text(&run, 2)).unwrap();
    // This test process plays the running trainer: it holds the run directory.
    let live = memrl_trainer::run_dir::RunDir::open(&run, memrl_trainer::run_dir::ExistingRun::Refuse).unwrap();
    std::fs::copy(&cfg, live.config_path()).unwrap();
    for args in [vec!["train", "--resume", run.to_str().unwrap()], vec!["train", cfg.to_str().unwrap(), "--overwrite"]] {
        let out = memrl(tmp.path(), &args);
        let e = stderr(&out);
        assert!(!out.status.success() && e.contains("in use by another memrl process"), "{args:?}: {e}");
        assert!(run.join("config.toml").is_file(), "{args:?} touched the live run");
    }
    assert!(!tmp.path().join("live.old-1").exists());
}

#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/tests/fixtures/locomo_mini.json");
    for args in [
        vec!["env", "list"],
        vec!["env", "play", "--env", "facts", "--policy", "oracle", "--episodes", "2"],
        vec!["data", "stats", "--bench", "locomo", "--data", fixture.to_str().unwrap()],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // `| head -0`: the reader is gone before the first write
        let out = Command::new(MEMRL).current_dir(tmp.path()).args(&args).stdout(writer).output().unwrap();
        let e = stderr(&out);
        assert!(out.status.success(), "{args:?}: {:?} {e}", out.status);
        assert!(!e.contains("panicked"), "{args:?}: {e}");
    }
}

/// Waits for `child`, failing the test if it has not ended after `limit` (a hang).
fn wait_or_fail(mut child: std::process::Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("{what} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_metric_spanning_all_of_f64_still_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("metrics.jsonl"), "{\"step\":1,\"wall_time\":1.0,\"reward/mean\":9e307}\n{\"step\":2,\"wall_time\":2.0,\"reward/mean\":-9e307}\n")
        .unwrap();
    let figs = tmp.path().join("figs");
    let child = Command::new(MEMRL)
        .args(["plot", run.to_str().unwrap(), "--metric", "reward/mean", "--out", figs.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_or_fail(child, Duration::from_secs(120), "memrl plot");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(figs.join("reward_mean.png").is_file());
}

#[test]
fn a_missing_metrics_line_is_redone_on_resume_and_plots_are_cosmetic() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cfg = tmp.path().join("train.toml");
    std::fs::write(&cfg, config_text(&run, 3)).unwrap();
    let out = memrl(tmp.path(), &["train", cfg.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(run.join(".memrl-owned").is_file());
    // A crash that lost step 3's metrics line (a torn write) after its checkpoint committed.
    let metrics = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&metrics).unwrap();
    let kept: Vec<&str> = text.lines().collect();
    assert_eq!(kept.len(), 3);
    std::fs::write(&metrics, format!("{}\n{}\n{{\"step\":3,\"wall", kept[0], kept[1])).unwrap();
    // And a plot that cannot be written: a directory where the figure goes.
    std::fs::remove_file(run.join("plots/reward.png")).unwrap();
    std::fs::create_dir(run.join("plots/reward.png")).unwrap();
    let out = memrl(tmp.path(), &["train", "--resume", run.to_str().unwrap(), "--quiet"]);
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    assert!(e.contains("lacks the step 3 line") && e.contains("warning: plots"), "{e}");
    let steps: Vec<u64> = memrl_trainer::metrics::read_metrics(&metrics).unwrap().iter().map(|r| r.step).collect();
    assert_eq!(steps, [1, 2, 3], "step 3 was redone, not skipped");
    assert!(String::from_utf8_lossy(&out.stdout).contains("resumed from    step 2"));

    // A checkpoint whose trainer state cannot be read: the file and the OS error, once.
    let state = run.join("checkpoints/step-3/trainer_state.json");
    std::fs::remove_file(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    let out = memrl(tmp.path(), &["train", "--resume", run.to_str().unwrap(), "--quiet", "--set", "run.steps=4"]);
    let e = stderr(&out);
    assert!(!out.status.success(), "{e}");
    assert!(e.contains("reading") && e.contains("step-3/trainer_state.json"), "{e}");
    assert_eq!(e.matches("Is a directory").count(), 1, "{e}");
}

#[test]
fn a_sweep_without_grid_summarises_and_an_unlogged_metric_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base.toml");
    std::fs::write(&base, config_text(&tmp.path().join("unused"), 1)).unwrap();
    let sweep = tmp.path().join("sweep.toml");
    std::fs::write(&sweep, "name = \"plain\"\nbase = \"base.toml\"\nmetric = \"reward/typo\"\n").unwrap();
    let out = memrl(tmp.path(), &["sweep", sweep.to_str().unwrap(), "--quiet"]);
    let e = stderr(&out);
    assert!(!out.status.success(), "a summary of dashes is not a success: {e}");
    assert!(e.contains("`reward/typo`") && e.contains("it logged: ") && e.contains("reward/mean"), "{e}");
    let md = std::fs::read_to_string(tmp.path().join("sweeps/plain/summary.md")).unwrap();
    for table in md.split("\n\n").filter(|block| block.starts_with('|')) {
        let widths: Vec<usize> = table.lines().map(|l| l.matches('|').count()).collect();
        assert!(widths.iter().all(|&w| w == widths[0]), "a ragged table: {table}");
    }
    assert!(md.contains("| setting | finished |"), "{md}");
}

#[test]
fn a_broken_chat_template_is_blamed_on_its_file_and_spares_tokenize() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("config.json"), "{}").unwrap();
    let tokenizer = r#"{"version": "1.0", "added_tokens": [], "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}, "model": {"type": "BPE", "vocab": {"h": 0, "i": 1}, "merges": []}}"#;
    std::fs::write(model.join("tokenizer.json"), tokenizer).unwrap();
    std::fs::write(model.join("tokenizer_config.json"), r#"{"chat_template": "{% for m in messages %}{{ m.content }"}"#).unwrap();
    let out = memrl(tmp.path(), &["tokenize", "--model", model.to_str().unwrap(), "hi", "--json"]);
    assert!(out.status.success(), "tokenize needs no chat template: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[0,1]"), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn settings_that_make_training_a_no_op_are_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("train.toml");
    std::fs::write(&cfg, config_text(&tmp.path().join("run"), 1)).unwrap();
    let args = [
        "train",
        cfg.to_str().unwrap(),
        "--quiet",
        "--set",
        "rollout.max_context_tokens=8",
        "--set",
        "rollout.group_size=1",
        "--set",
        "sft.enabled=true",
        "--set",
        "sft.episodes=0",
    ];
    let out = memrl(tmp.path(), &args);
    let e = stderr(&out);
    assert!(!e.contains("panicked"), "{e}");
    assert!(e.contains("warning: sft.enabled = true with sft.episodes = 0"), "{e}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("sft demo reward 0.0000") && !stdout.contains("-0.0000"), "{stdout}");
    assert!(e.contains("warning: rollout.max_context_tokens = 8 is smaller than the first prompt"), "{e}");
    assert!(e.contains("warning: rollout.group_size = 1"), "{e}");
}

#[test]
fn eval_episodes_beyond_the_split_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    // The LoCoMo fixture with its first conversation renamed conv-26: the train split has its
    // questions, the validation split (conv-30) none.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/tests/fixtures/locomo_mini.json");
    let data = tmp.path().join("locomo.json");
    std::fs::write(&data, std::fs::read_to_string(&fixture).unwrap().replacen("\"mini-1\"", "\"conv-26\"", 1)).unwrap();
    let run = tmp.path().join("run");
    let facts_env =
        "[env]\nname = \"facts\"\n\n[env.options]\nentities = 1\ndistractor_entities = 1\ncapacity = 2\nchunk_size = 2\nquestions = 1\nupdates_per_key = 1\n";
    let text = config_text(&run, 1);
    assert!(text.contains(facts_env), "{text}");
    let text = text
        .replace(facts_env, &format!("[env]\nname = \"locomo\"\n\n[env.options]\ndata_path = \"{}\"\n", data.display()))
        .replace("[eval]\nepisodes = 0", "[eval]\nsplit = \"validation\"\nepisodes = 2")
        .replace("task_pool = 4", "task_pool = 0");
    let cfg = tmp.path().join("train.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = memrl(tmp.path(), &["train", cfg.to_str().unwrap(), "--quiet"]);
    let e = stderr(&out);
    assert!(!out.status.success(), "{e}");
    assert!(e.contains("eval.episodes = 2") && e.contains("validation split") && e.contains("only 0 tasks"), "{e}");
    assert!(!run.exists(), "the refused start left {}", run.display());
}

//! `memrl train` with `advantage = "gae"` (PPO with a value head on the shared trunk) end to
//! end on a tiny model: the critic's metrics, its falling value loss, the value head in the
//! checkpoints, and an exact resume after SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use memrl_rl::metrics::is_timing_key;
use memrl_trainer::metrics::read_metrics;

mod common;

const MEMRL: &str = env!("CARGO_BIN_EXE_memrl");

/// The tiny facts run of the bad-input tests (no SFT, no evaluation) with gae, `steps` RL steps.
fn write_config(dir: &Path, name: &str, steps: u64, algorithm: &str) -> PathBuf {
    let run_dir = dir.join(name);
    let run_table =
        format!("name = \"{name}\"\ndir = \"{}\"\nseed = 5\nsteps = {steps}\ncheckpoint_every = 1\nkeep_checkpoints = 0\nplot_every = 0", run_dir.display());
    let text = format!("{}\n[algorithm]\n{algorithm}\n", common::tiny_config(&run_table));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// gae, with overlong masking off: the untrained tiny model runs out of turns in every episode,
/// and masked episodes would leave the value loss nothing to learn from.
const GAE: &str = "advantage = \"gae\"\ngamma = 0.99\nlam = 0.95\nmask_overlong = false";

fn memrl(args: &[&str]) -> Output {
    Command::new(MEMRL).args(args).arg("--quiet").output().expect("memrl runs")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "memrl failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The metrics rows without timing fields, values as bit patterns.
fn comparable(run_dir: &Path) -> Vec<(u64, Vec<(String, u64)>)> {
    read_metrics(&run_dir.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .map(|row| (row.step, row.fields.into_iter().filter(|(k, _)| !is_timing_key(k)).map(|(k, v)| (k, v.to_bits())).collect()))
        .collect()
}

/// `key` of every logged step, in order.
fn series(run_dir: &Path, key: &str) -> Vec<f64> {
    read_metrics(&run_dir.join("metrics.jsonl")).unwrap().into_iter().filter_map(|row| row.fields.get(key).copied()).collect()
}

#[test]
fn gae_trains_on_facts_and_its_value_loss_falls() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "gae", 8, GAE);
    ok(&memrl(&["train", cfg.to_str().unwrap()]));
    let run = tmp.path().join("gae");
    let value_loss = series(&run, "loss/value");
    assert_eq!(value_loss.len(), 8, "one loss/value per step");
    for key in ["value/explained_variance", "value/mean", "value/clipfrac"] {
        assert_eq!(series(&run, key).len(), 8, "{key}");
    }
    assert!(value_loss.iter().all(|v| v.is_finite()), "{value_loss:?}");
    assert!(value_loss[7] < value_loss[0], "the critic learns: loss/value {value_loss:?}");
    // The value head is in the checkpoint's weights, and its moments in the optimizer's.
    let names = |file: &str| String::from_utf8_lossy(&std::fs::read(run.join("checkpoints/step-8").join(file)).unwrap()).into_owned();
    assert!(names("model.safetensors").contains("value_head.weight"));
    assert!(names("optimizer.safetensors").contains("value_head.weight.exp_avg"));

    // A GRPO run of the same config logs no critic metrics and saves no value head.
    let grpo = write_config(tmp.path(), "grpo", 1, "");
    ok(&memrl(&["train", grpo.to_str().unwrap()]));
    let rows = read_metrics(&tmp.path().join("grpo/metrics.jsonl")).unwrap();
    assert!(rows.iter().all(|r| r.fields.keys().all(|k| k != "loss/value" && !k.starts_with("value/"))));
    let weights = String::from_utf8_lossy(&std::fs::read(tmp.path().join("grpo/checkpoints/step-1/model.safetensors")).unwrap()).into_owned();
    assert!(!weights.contains("value_head"));
}

#[test]
fn gae_sigkill_mid_step_then_resume_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = write_config(tmp.path(), "reference", 4, GAE);
    ok(&memrl(&["train", reference.to_str().unwrap()]));
    let cfg = write_config(tmp.path(), "killed", 4, GAE);
    let run = tmp.path().join("killed");
    let lines = || std::fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |t| t.lines().filter(|l| l.contains("loss/value")).count());
    // Somewhere inside step 2 (after step 1's line, plus an arbitrary delay).
    common::kill_when(&["train", cfg.to_str().unwrap()], "the kill point", || lines() >= 1, Duration::from_millis(150));
    let stdout = ok(&memrl(&["train", "--resume", run.to_str().unwrap()]));
    assert!(stdout.contains("resumed from"), "{stdout}");
    assert_eq!(comparable(&tmp.path().join("reference")), comparable(&run));
}

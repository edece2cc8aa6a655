//! `memrl train` end to end on a tiny model: the run directory, refusals, exact resume after
//! SIGKILL (also at a sampler epoch boundary), bit-identical metrics across thread counts, and
//! LoRA (only the adapters train; PEFT adapter + merged export per checkpoint; exact resume).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use memrl_rl::metrics::is_timing_key;
use memrl_trainer::metrics::read_metrics;
use memrl_trainer::run_dir::latest_complete_checkpoint;

mod common;

const MEMRL: &str = env!("CARGO_BIN_EXE_memrl");

/// A run small enough for a test: tiny-2l-64d, two facts per chunk, 4 RL steps of 2 × 2 episodes.
/// `task_pool = 4` makes every second step start a new sampler epoch.
fn write_config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let run_dir = dir.join(name);
    let text = format!(
        r#"
[run]
name = "{name}"
dir = "{run_dir}"
seed = 3
steps = 4
checkpoint_every = 1
keep_checkpoints = 0
rollouts_every = 2
plot_every = 2

[env]
name = "facts"

[env.options]
entities = 1
distractor_entities = 1
capacity = 2
chunk_size = 2
questions = 1
updates_per_key = 1

[policy]
model = "tiny-2l-64d"

[rollout]
batch_size = 2
group_size = 2
max_new_tokens = 12
max_turns = 6
max_context_tokens = 512
task_pool = 4

[trainer]
lr = 1e-3
micro_batch_tokens = 1024

[sft]
enabled = true
source = "heuristic"
episodes = 4
epochs = 1
batch_size = 4

[eval]
split = "validation"
episodes = 2
every = 2
{extra}
"#,
        run_dir = run_dir.display()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn memrl(args: &[&str], threads: Option<usize>) -> Output {
    let mut cmd = Command::new(MEMRL);
    cmd.args(args).arg("--quiet");
    if let Some(n) = threads {
        cmd.env("RAYON_NUM_THREADS", n.to_string());
    }
    cmd.output().expect("memrl runs")
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "memrl failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &Output) -> String {
    assert!(!out.status.success(), "memrl should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The metrics rows with timing fields removed, values as bit patterns: what must be
/// identical between equal runs.
fn comparable(run_dir: &Path) -> Vec<(u64, Vec<(String, u64)>)> {
    read_metrics(&run_dir.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .map(|row| {
            let fields = row.fields.into_iter().filter(|(k, _)| !is_timing_key(k)).map(|(k, v)| (k, v.to_bits())).collect();
            (row.step, fields)
        })
        .collect()
}

#[test]
fn train_writes_the_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "full", "");
    let stdout = ok(&memrl(&["train", cfg.to_str().unwrap(), "--json"], None));
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["steps"], 4);
    assert!(summary["eval_reward_start"].is_number() && summary["eval_reward_end"].is_number());
    assert!(summary["eval_task_score_start"].is_number() && summary["eval_task_score_end"].is_number());
    // The end-of-run table: the model-free policies on the same held-out tasks, the SFT source marked.
    let baselines = summary["baselines"].as_array().expect("baselines");
    let policies: Vec<&str> = baselines.iter().map(|b| b["policy"].as_str().unwrap()).collect();
    assert_eq!(policies, ["heuristic", "oracle", "no-memory"]);
    let score = |name: &str| baselines.iter().find(|b| b["policy"] == name).unwrap()["task_score"].as_f64().unwrap();
    assert_eq!(score("oracle"), 1.0, "the oracle answers every facts question");
    assert_eq!(score("no-memory"), 0.0, "without retractions, no memory answers nothing right");
    assert!(score("heuristic") > 0.0 && score("heuristic") < 1.0);
    let teachers: Vec<bool> = baselines.iter().map(|b| b["teacher"].as_bool().unwrap()).collect();
    assert_eq!(teachers.iter().filter(|t| **t).count(), 1, "exactly the SFT source is the teacher: {baselines:?}");
    let run = tmp.path().join("full");
    for file in [
        "config.toml",
        "metrics.jsonl",
        "sft_metrics.jsonl",
        "tokenizer/tokenizer.json",
        "plots/reward.png",
        "plots/task_score.png",
        "plots/sft_nll.png",
        "eval/facts-step-0.json",
        "eval/facts-step-4.json",
        "eval/facts-baselines.json",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    // Checkpoints after SFT (step 0) and every step, each complete with trainer state and optimizer.
    for step in 0..=4 {
        let ckpt = run.join(format!("checkpoints/step-{step}"));
        for file in ["COMPLETE", "model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "optimizer.safetensors", "trainer_state.json"] {
            assert!(ckpt.join(file).is_file(), "step-{step}/{file} missing");
        }
    }
    // Files written atomically have the mode of those written plainly (0644 under umask 022), not 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |f: &str| std::fs::metadata(run.join(f)).unwrap().permissions().mode() & 0o777;
        for file in [
            "config.toml",
            "checkpoints/step-4/trainer_state.json",
            "checkpoints/step-4/model.safetensors",
            "eval/facts-step-4.json",
            "eval/facts-baselines.json",
            "plots/reward.png",
        ] {
            assert_eq!(mode(file), mode("metrics.jsonl"), "{file}: mode {:o}", mode(file));
        }
    }
    let rows = comparable(&run);
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    let step1: std::collections::BTreeMap<String, f64> = rows[1].1.iter().map(|(k, v)| (k.clone(), f64::from_bits(*v))).collect();
    for key in [
        "reward/mean",
        "reward/std",
        "adv/mean",
        "segments/count",
        "segments/fractures",
        "loss/pg",
        "clip/frac_high",
        "kl/approx",
        "grad_norm",
        "lr",
        "rollout/context_tokens_mean",
    ] {
        assert!(step1.contains_key(key), "metrics lack {key}: {:?}", step1.keys());
    }
    // facts rebuilds the context every chunk: every trajectory has fractures under DCPO.
    assert!(step1["segments/fractures"] >= 1.0);
    // Rollouts are readable Parquet with exact tokens.
    let rollouts = memrl_trainer::rollout_store::read_rollouts(&run.join("rollouts/step-2.parquet")).unwrap();
    assert!(!rollouts.is_empty());
    assert!(rollouts.iter().all(|r| r.segment.response_ids.len() == r.segment.loss_mask.len()));
    // The checkpoint loads again as a policy.
    let (model, _tok) = memrl_policies::load_policy(memrl_policies::BurnBackend::flex(), &run.join("checkpoints/step-4")).unwrap();
    assert_eq!(model.config.num_hidden_layers, 2);
}

#[test]
fn same_seed_same_metrics_whatever_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let a = write_config(tmp.path(), "one", "");
    let b = write_config(tmp.path(), "two", "");
    ok(&memrl(&["train", a.to_str().unwrap(), "--set", "run.steps=3"], Some(1)));
    ok(&memrl(&["train", b.to_str().unwrap(), "--set", "run.steps=3"], Some(2)));
    assert_eq!(comparable(&tmp.path().join("one")), comparable(&tmp.path().join("two")));

    // `memrl plot` compares the two runs: one PNG per metric, a line per run.
    let (one, two, figs) = (tmp.path().join("one"), tmp.path().join("two"), tmp.path().join("figs"));
    let plot = |args: &[&str]| Command::new(MEMRL).arg("plot").args([one.to_str().unwrap(), two.to_str().unwrap()]).args(args).output().unwrap();
    let printed = ok(&plot(&["--metric", "reward/mean", "--out", figs.to_str().unwrap()]));
    let png = std::fs::read(figs.join("reward_mean.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 1000, "{printed}");
    let e = err(&plot(&["--metric", "no/such", "--out", figs.to_str().unwrap()]));
    assert!(e.contains("no/such"), "{e}");
    let e = err(&plot(&[]));
    assert!(e.contains("--out"), "{e}");
}

/// Kills a run with SIGKILL once `ready` holds (polled), then resumes it to the end.
fn kill_then_resume(cfg: &Path, run: &Path, ready: impl Fn() -> bool, extra_delay: Duration) -> String {
    common::kill_when(&["train", cfg.to_str().unwrap()], "the kill point", ready, extra_delay);
    ok(&memrl(&["train", "--resume", run.to_str().unwrap()], None))
}

fn rl_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |t| t.lines().filter(|l| l.contains("reward/mean")).count())
}

#[test]
fn sigkill_mid_step_then_resume_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = write_config(tmp.path(), "reference", "");
    ok(&memrl(&["train", reference.to_str().unwrap()], None));
    let cfg = write_config(tmp.path(), "killed", "");
    let run = tmp.path().join("killed");
    // Somewhere inside step 2 (after step 1's line, plus an arbitrary delay).
    let stdout = kill_then_resume(&cfg, &run, || rl_lines(&run) >= 1, Duration::from_millis(150));
    assert!(stdout.contains("resumed from"), "{stdout}");
    assert_eq!(comparable(&tmp.path().join("reference")), comparable(&run));
}

/// A tiny preset with the pointer head and token matching (`-copy-match`): SIGKILL mid-step and
/// resume ends as an uninterrupted run does (their weights and AdamW moments are checkpointed
/// like any other), its checkpoint declares both, and `memrl eval` plays it.
#[test]
fn a_pointer_and_token_matching_preset_resumes_exactly_and_its_checkpoint_evaluates() {
    let tmp = tempfile::tempdir().unwrap();
    let pointer = |name: &str| {
        let path = write_config(tmp.path(), name, "");
        let text = std::fs::read_to_string(&path).unwrap().replace("\"tiny-2l-64d\"", "\"tiny-2l-32d-2h-copy-match\"");
        std::fs::write(&path, text).unwrap();
        path
    };
    let reference = pointer("reference");
    ok(&memrl(&["train", reference.to_str().unwrap()], None));
    let cfg = pointer("killed");
    let run = tmp.path().join("killed");
    let stdout = kill_then_resume(&cfg, &run, || rl_lines(&run) >= 1, Duration::from_millis(100));
    assert!(stdout.contains("resumed from"), "{stdout}");
    assert_eq!(comparable(&tmp.path().join("reference")), comparable(&run));
    let checkpoint = run.join("checkpoints/step-4");
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(checkpoint.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["copy_head"], true);
    assert_eq!(config["token_match"], true);
    let stored = tensors(&checkpoint.join("model.safetensors"));
    for name in [memrl_policies::copy_head::COPY_SENTINEL, memrl_policies::token_match::MATCH_BIAS, memrl_policies::token_match::CANON_WEIGHT] {
        assert!(stored.contains_key(name), "{name}");
    }
    let out = tmp.path().join("eval.json");
    let args = ["eval", "--checkpoint", checkpoint.to_str().unwrap(), "--bench", "facts", "--split", "validation", "--limit", "2", "--max-new-tokens", "8"];
    ok(&Command::new(MEMRL).args(args).args(["--no-progress", "--out", out.to_str().unwrap()]).output().expect("memrl runs"));
    assert!(out.exists());
}

#[test]
fn sigkill_at_an_epoch_boundary_then_resume_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = write_config(tmp.path(), "reference", "");
    ok(&memrl(&["train", reference.to_str().unwrap()], None));
    let cfg = write_config(tmp.path(), "killed", "");
    let run = tmp.path().join("killed");
    // task_pool 4 / batch 2: step 2 ends the sampler's first epoch. Kill as soon as its checkpoint is complete.
    let ckpts = run.join("checkpoints");
    kill_then_resume(&cfg, &run, || latest_complete_checkpoint(&ckpts).ok().flatten().is_some_and(|(s, _)| s >= 2), Duration::ZERO);
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("checkpoints/step-2/trainer_state.json")).unwrap()).unwrap();
    // Step 2 drew the last two tasks of epoch 0: the next draw starts epoch 1.
    assert_eq!((state["sampler"]["epoch"].as_u64(), state["sampler"]["position"].as_u64()), (Some(0), Some(4)), "{state}");
    let after: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("checkpoints/step-3/trainer_state.json")).unwrap()).unwrap();
    assert_eq!(after["sampler"]["epoch"], 1, "{after}");
    assert_eq!(comparable(&tmp.path().join("reference")), comparable(&run));
}

#[test]
fn a_half_written_checkpoint_is_never_picked_up() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "run", "");
    ok(&memrl(&["train", cfg.to_str().unwrap(), "--set", "run.steps=2"], None));
    let run = tmp.path().join("run");
    // A crash while writing step 3 leaves step-3.tmp with partial files and no COMPLETE marker.
    let partial = run.join("checkpoints/step-3.tmp");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("model.safetensors"), b"partial").unwrap();
    let stdout = ok(&memrl(&["train", "--resume", run.to_str().unwrap(), "--set", "run.steps=3"], None));
    assert!(stdout.contains("resumed from    step 2"), "{stdout}");
    assert!(run.join("checkpoints/step-3/COMPLETE").is_file());
}

#[test]
fn refusals_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "run", "");
    let run = tmp.path().join("run");
    ok(&memrl(&["train", cfg.to_str().unwrap(), "--set", "run.steps=1"], None));

    let e = err(&memrl(&["train", cfg.to_str().unwrap()], None));
    assert!(e.contains("already exists") && e.contains("--resume") && e.contains("--overwrite"), "{e}");

    let e = err(&memrl(&["train", "--resume", run.to_str().unwrap(), "--set", "trainer.lr=0.5"], None));
    assert!(e.contains("trainer.lr") && e.contains("cannot resume"), "{e}");

    // Allowed: more steps.
    ok(&memrl(&["train", "--resume", run.to_str().unwrap(), "--set", "run.steps=2"], None));

    // A corrupt checkpoint is named.
    let latest = run.join("checkpoints/step-2/model.safetensors");
    std::fs::write(&latest, b"not safetensors").unwrap();
    let e = err(&memrl(&["train", "--resume", run.to_str().unwrap(), "--set", "run.steps=3"], None));
    assert!(e.contains("step-2") && e.contains("model.safetensors"), "{e}");

    // No checkpoint at all.
    let empty = write_config(tmp.path(), "nockpt", "");
    let nockpt = tmp.path().join("nockpt");
    std::fs::create_dir_all(&nockpt).unwrap();
    std::fs::copy(&empty, nockpt.join("config.toml")).unwrap();
    let e = err(&memrl(&["train", "--resume", nockpt.to_str().unwrap()], None));
    assert!(e.contains("no complete checkpoint"), "{e}");

    // Nothing to resume.
    let e = err(&memrl(&["train", "--resume", tmp.path().join("missing").to_str().unwrap()], None));
    assert!(e.contains("missing"), "{e}");

    // A bad config key is named with its path.
    let e = err(&memrl(&["train", cfg.to_str().unwrap(), "--overwrite", "--set", "trainer.lrr=1"], None));
    assert!(e.contains("trainer.lrr"), "{e}");
}

#[test]
fn sft_alone_writes_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "sft", "");
    let stdout = ok(&memrl(&["sft", cfg.to_str().unwrap()], None));
    assert!(stdout.contains("sft demo reward"), "{stdout}");
    let run = tmp.path().join("sft");
    assert!(run.join("checkpoints/step-0/COMPLETE").is_file());
    assert!(run.join("sft_metrics.jsonl").is_file());
}

/// `write_config`'s run with a longer SFT stage (batch 1, three epochs: some dozens of steps),
/// an SFT checkpoint every 3 steps and 2 RL steps.
fn write_sft_config(dir: &Path, name: &str) -> PathBuf {
    let path = write_config(dir, name, "");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace("[sft]\nenabled = true\n", "[sft]\nenabled = true\ncheckpoint_every = 3\n")
        .replace("epochs = 1\nbatch_size = 4\n", "epochs = 3\nbatch_size = 1\n")
        .replace("steps = 4\n", "steps = 2\n");
    assert!(text.contains("checkpoint_every = 3") && text.contains("batch_size = 1"), "{text}");
    std::fs::write(&path, text).unwrap();
    path
}

/// The SFT metrics rows, timing fields removed, values as bit patterns.
fn sft_comparable(run_dir: &Path) -> Vec<(u64, Vec<(String, u64)>)> {
    read_metrics(&run_dir.join("sft_metrics.jsonl"))
        .unwrap()
        .into_iter()
        .map(|row| (row.step, row.fields.into_iter().filter(|(k, _)| !is_timing_key(k)).map(|(k, v)| (k, v.to_bits())).collect()))
        .collect()
}

#[test]
fn sigkill_during_sft_then_resume_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = write_sft_config(tmp.path(), "reference");
    ok(&memrl(&["train", reference.to_str().unwrap()], None));
    let reference = tmp.path().join("reference");
    let sft_steps = sft_comparable(&reference).len();
    assert!(sft_steps >= 30, "a long enough SFT stage to stop in: {sft_steps} steps");
    let ckpts = reference.join("checkpoints");
    let names: Vec<String> = std::fs::read_dir(&ckpts).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().all(|n| !n.starts_with("sft-step-")), "SFT checkpoints are removed after step-0: {names:?}");

    // Kill the run as soon as its first SFT checkpoint is complete.
    let cfg = write_sft_config(tmp.path(), "killed");
    let run = tmp.path().join("killed");
    let first = run.join("checkpoints/sft-step-3/COMPLETE");
    common::kill_when(&["train", cfg.to_str().unwrap()], "its first SFT checkpoint", || first.is_file(), Duration::ZERO);
    assert!(!run.join("checkpoints/step-0").exists(), "the kill landed after SFT: the test stopped nothing");
    // What a kill inside a checkpoint write leaves (whether or not this one did), and a
    // directory of the user's, which is not memrl's to remove.
    std::fs::create_dir_all(run.join("checkpoints/sft-step-999.memrl-tmp")).unwrap();
    std::fs::write(run.join("checkpoints/sft-step-999.memrl-tmp/model.safetensors"), "partial").unwrap();
    std::fs::create_dir_all(run.join("checkpoints/my-notes")).unwrap();

    let out = memrl(&["train", "--resume", run.to_str().unwrap()], None);
    let stdout = ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("resumed from    sft step"), "{stdout}");
    assert!(stderr.contains("sft: resuming after step") && stderr.contains("sft-step-999.memrl-tmp"), "{stderr}");
    assert_eq!(sft_comparable(&reference), sft_comparable(&run));
    assert_eq!(comparable(&reference), comparable(&run));
    for file in [
        "checkpoints/step-0/model.safetensors",
        "checkpoints/step-2/model.safetensors",
        "checkpoints/step-2/optimizer.safetensors",
        "checkpoints/step-0/trainer_state.json",
    ] {
        assert!(std::fs::read(reference.join(file)).unwrap() == std::fs::read(run.join(file)).unwrap(), "{file} differs");
    }
    let mut left: Vec<String> = std::fs::read_dir(run.join("checkpoints")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, ["my-notes", "step-0", "step-1", "step-2"]);
}

/// `[policy.lora]` for `write_config`'s runs: rank 4 on three projections, with dropout (so a
/// resumed run must draw the masks an uninterrupted one draws).
const LORA: &str = "\n[policy.lora]\nenabled = true\nrank = 4\nalpha = 8.0\ndropout = 0.1\ntarget_modules = [\"q_proj\", \"v_proj\", \"down_proj\"]\n";

/// The tensors of a safetensors file by name.
fn tensors(path: &Path) -> std::collections::BTreeMap<String, memrl_policies::weights::HostTensor> {
    memrl_policies::train::checkpoint::read_safetensors(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).into_iter().collect()
}

/// The HF-layout weights of the plain model in `dir`, as bit patterns.
fn weight_bits(dir: &Path) -> Vec<(String, Vec<u32>)> {
    let (model, _) = memrl_policies::load_policy(memrl_policies::BurnBackend::flex(), dir).unwrap();
    bits(memrl_policies::train::hf_state_dict(&model))
}

fn bits(tensors: Vec<(String, memrl_policies::weights::HostTensor)>) -> Vec<(String, Vec<u32>)> {
    tensors.into_iter().map(|(n, t)| (n, t.data.iter().map(|x| x.to_bits()).collect())).collect()
}

#[test]
fn lora_sft_then_rl_trains_only_the_adapters_and_checkpoints_adapter_and_merged_model() {
    use memrl_policies::train::tiny::{TinyPreset, init_tiny};
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "lora", LORA);
    ok(&memrl(&["train", cfg.to_str().unwrap(), "--set", "run.steps=2"], None));
    let run = tmp.path().join("lora");
    assert_eq!(comparable(&run).iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 1, 2]);
    let ckpt = |step: u64| run.join(format!("checkpoints/step-{step}"));

    // The frozen base of every checkpoint is the tiny preset as initialised from run.seed, bit for bit.
    let vocab = memrl_policies::load_config(&ckpt(2)).unwrap().vocab_size;
    let init = init_tiny(memrl_policies::BurnBackend::flex(), TinyPreset::parse("tiny-2l-64d").unwrap(), vocab, 3).unwrap();
    let base = bits(memrl_policies::train::hf_state_dict(&init));
    for step in [0, 2] {
        assert!(weight_bits(&ckpt(step)) == base, "step-{step}: the base weights changed");
    }

    // The adapters (PEFT names and layout) trained in SFT (B starts at zero) and again in RL.
    let adapters = |step: u64| tensors(&ckpt(step).join("adapter_model.safetensors"));
    let (sft, rl) = (adapters(0), adapters(2));
    assert_eq!(sft.len(), 2 * 3 * 2, "two layers × three modules × (A, B): {:?}", sft.keys());
    let b = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";
    assert_eq!(sft[b].shape, vec![64, 4]);
    assert!(sft[b].data.iter().any(|x| *x != 0.0), "SFT left lora_B at zero");
    assert!(sft.keys().all(|k| rl[k].data != sft[k].data), "RL left an adapter unchanged");
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ckpt(2).join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!((config["peft_type"].as_str(), config["r"].as_u64(), config["lora_alpha"].as_f64()), (Some("LORA"), Some(4), Some(8.0)), "{config}");

    // AdamW holds moments for the adapters only.
    let moments = tensors(&ckpt(2).join("optimizer.safetensors"));
    assert_eq!(moments.len(), 2 * rl.len());
    assert!(moments.keys().all(|k| k.contains(".lora_A.") || k.contains(".lora_B.")), "{:?}", moments.keys());

    // The merged export is the adapted model as one plain HF model: what memrl computes from
    // base + adapters, and not the base.
    let merged_dir = ckpt(2).join("merged");
    for file in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        assert!(merged_dir.join(file).is_file(), "merged/{file} missing");
    }
    assert!(!merged_dir.join("adapter_config.json").exists() && !merged_dir.join("optimizer.safetensors").exists());
    let (adapted, _) = memrl_policies::train::load_lora_checkpoint(memrl_policies::BurnBackend::flex(), &ckpt(2)).unwrap();
    let merged = weight_bits(&merged_dir);
    assert!(merged == bits(memrl_policies::train::hf_state_dict(&adapted)));
    assert!(merged != base);

    // A LoRA checkpoint given as a model is read through its merged export (`memrl eval`,
    // `policy.model`), and refused, not read as its bare base, without one.
    assert_eq!(memrl_trainer::train::policy::plain_model_path(&ckpt(2)).unwrap(), merged_dir);
    let out = tmp.path().join("eval.json");
    let eval = || {
        Command::new(MEMRL)
            .args(["eval", "--checkpoint", ckpt(2).to_str().unwrap(), "--bench", "facts", "--limit", "1", "--out", out.to_str().unwrap()])
            .output()
            .unwrap()
    };
    ok(&eval());
    assert!(out.is_file());
    std::fs::remove_dir_all(&merged_dir).unwrap();
    let e = err(&eval());
    assert!(e.contains("LoRA checkpoint") && e.contains("merged"), "{e}");
}

#[test]
fn lora_sigkill_mid_step_then_resume_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = write_config(tmp.path(), "reference", LORA);
    ok(&memrl(&["train", reference.to_str().unwrap(), "--set", "run.steps=3"], None));
    let cfg = write_config(tmp.path(), "killed", LORA);
    let run = tmp.path().join("killed");
    common::kill_when(&["train", cfg.to_str().unwrap(), "--set", "run.steps=3"], "step 1", || rl_lines(&run) >= 1, Duration::from_millis(100));
    let stdout = ok(&memrl(&["train", "--resume", run.to_str().unwrap(), "--set", "run.steps=3"], None));
    assert!(stdout.contains("resumed from"), "{stdout}");
    let reference = tmp.path().join("reference");
    assert_eq!(comparable(&reference), comparable(&run));
    for file in ["adapter_model.safetensors", "optimizer.safetensors", "model.safetensors", "merged/model.safetensors"] {
        let f = format!("checkpoints/step-3/{file}");
        assert!(std::fs::read(reference.join(&f)).unwrap() == std::fs::read(run.join(&f)).unwrap(), "{f} differs");
    }
}

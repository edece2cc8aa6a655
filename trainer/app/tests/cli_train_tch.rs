//! `memrl train` with `policy.backend = "tch"`: in a build with the `tch` feature (CPU here;
//! `scripts/test.sh` runs it against the CI venv's PyTorch) a tiny run trains, checkpoints,
//! resumes and trains in bf16 too; in a build without it the key is refused with how to build it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MEMRL: &str = env!("CARGO_BIN_EXE_memrl");

/// Two RL steps of 2 × 2 episodes of a small `facts` on tiny-2l-64d, with a short SFT warm start,
/// a KL reference (so the reference model is loaded on the backend too) and an entropy bonus.
fn write_config(dir: &Path, name: &str, policy: &str) -> PathBuf {
    let run_dir = dir.join(name);
    let text = format!(
        r#"
[run]
name = "{name}"
dir = "{run_dir}"
seed = 5
steps = 2
checkpoint_every = 1
plot_every = 0
rollouts_every = 1

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
{policy}

[rollout]
batch_size = 2
group_size = 2
max_new_tokens = 12
max_turns = 6
max_context_tokens = 512
task_pool = 4

[algorithm]
kl_coef = 0.01
# Rewards of a fresh tiny model are often equal within a group (zero advantages); the entropy
# bonus gives every RL step a non-zero gradient to check. A fresh model rarely completes an
# episode, and masked (overlong) trajectories would leave no gradient at all.
entropy_coef = 0.01
mask_overlong = false

[trainer]
lr = 1e-3
micro_batch_tokens = 1024

[sft]
enabled = true
source = "heuristic"
episodes = 2
epochs = 1
batch_size = 2

[eval]
split = "validation"
episodes = 1
every = 1
"#,
        run_dir = run_dir.display()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn memrl(args: &[&str]) -> Output {
    Command::new(MEMRL).args(args).arg("--quiet").output().expect("memrl runs")
}

#[cfg(feature = "tch")]
mod with_tch {
    use super::*;
    use memrl_trainer::metrics::read_metrics;

    fn ok(out: &Output) -> String {
        assert!(out.status.success(), "memrl failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn rl_rows(run: &Path) -> Vec<memrl_trainer::metrics::MetricsRow> {
        read_metrics(&run.join("metrics.jsonl")).unwrap().into_iter().filter(|r| r.fields.iter().any(|(k, _)| k == "reward/mean")).collect()
    }

    #[test]
    fn tch_cpu_run_trains_checkpoints_and_resumes() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = write_config(tmp.path(), "tch", "backend = \"tch\"\ndevice = \"cpu\"");
        let run = tmp.path().join("tch");
        let stdout = ok(&memrl(&["train", cfg.to_str().unwrap(), "--json", "--set", "run.steps=1"]));
        let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(summary["steps"], 1);
        assert!(summary["eval_reward_end"].is_number());
        assert!(run.join("checkpoints/step-1/optimizer.safetensors").is_file());
        assert!(run.join("rollouts/step-1.parquet").is_file());
        // Resume on tch: the model and the AdamW moments load back onto libtorch.
        ok(&memrl(&["train", "--resume", run.to_str().unwrap(), "--set", "run.steps=2"]));
        let rows = rl_rows(&run);
        assert_eq!(rows.iter().map(|r| r.step).collect::<Vec<_>>(), vec![1, 2]);
        for row in &rows {
            let get = |k: &str| row.fields.iter().find(|(n, _)| n.as_str() == k).map(|(_, v)| *v).unwrap_or_else(|| panic!("step {}: no {k}", row.step));
            assert!(get("grad_norm").is_finite() && get("grad_norm") > 0.0, "step {}: grad_norm {}", row.step, get("grad_norm"));
            assert!(get("loss/pg").is_finite());
            assert!(get("kl/approx").is_finite());
        }
        let sft = read_metrics(&run.join("sft_metrics.jsonl")).unwrap();
        assert!(!sft.is_empty());
        for row in &sft {
            let g = row.fields.iter().find(|(k, _)| k.as_str() == "sft/grad_norm").map(|(_, v)| *v).unwrap();
            assert!(g.is_finite() && g > 0.0, "SFT step {}: grad_norm {g}", row.step);
        }
        // The checkpoint is an ordinary HF checkpoint: burn loads what tch trained.
        let (model, _) = memrl_policies::load_policy(memrl_policies::BurnBackend::flex(), &run.join("checkpoints/step-2")).unwrap();
        assert_eq!(model.config.num_hidden_layers, 2);
    }

    #[test]
    fn tch_bf16_run_trains() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = write_config(tmp.path(), "bf16", "backend = \"tch\"\ndtype = \"bf16\"");
        let run = tmp.path().join("bf16");
        ok(&memrl(&["train", cfg.to_str().unwrap(), "--set", "run.steps=1"]));
        let rows = rl_rows(&run);
        assert_eq!(rows.len(), 1);
        let grad_norm = rows[0].fields.iter().find(|(k, _)| k.as_str() == "grad_norm").map(|(_, v)| *v).unwrap();
        assert!(grad_norm.is_finite() && grad_norm > 0.0, "grad_norm {grad_norm}");
        // Master weights are f32, so the checkpoint is f32 safetensors that load as usual.
        memrl_policies::load_policy(memrl_policies::BurnBackend::flex(), &run.join("checkpoints/step-1")).unwrap();
        let cuda = memrl(&["train", cfg.to_str().unwrap(), "--overwrite", "--set", "policy.device=cuda:999"]);
        let e = String::from_utf8_lossy(&cuda.stderr);
        assert!(!cuda.status.success() && e.contains("cuda:999") && e.contains("not available"), "{e}");
    }
}

#[cfg(not(feature = "tch"))]
#[test]
fn tch_is_refused_without_the_feature_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "tch", "backend = \"tch\"");
    let out = memrl(&["train", cfg.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("policy.backend = \"tch\"") && e.contains("--features tch"), "{e}");
    assert!(!tmp.path().join("tch").exists(), "a refused run must not create its directory");
}

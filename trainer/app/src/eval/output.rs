//! Where `memrl eval` writes its results.
//!
//! - `--out FILE` wins.
//! - A checkpoint inside a run directory (`runs/X/checkpoints/step-N`) writes
//!   `runs/X/eval/<bench>-step-N.json` for `--policy model`, and
//!   `runs/X/eval/<bench>-step-N-<policy>.json` for a baseline read by that checkpoint.
//! - Any other checkpoint (an HF directory or a `.gguf` file) writes
//!   `eval/<bench>-<name>[-<policy>].json` under the current directory, `<name>` being the
//!   directory name or the file stem.
//! - Without a checkpoint (scripted policies): `eval/<bench>-<policy>.json`.
//!
//! LoCoMo and LongMemEval evaluations also write the predictions beside it
//! (`<stem>.predictions.jsonl`) in the format `memrl score` reads.

use std::path::{Path, PathBuf};

use super::bench::BenchKind;
use super::policy::EvalPolicy;

/// The run directory of a checkpoint laid out as `<run>/checkpoints/step-N`.
pub fn run_dir_of(checkpoint: &Path) -> Option<PathBuf> {
    let name = checkpoint.file_name()?.to_str()?;
    let parent = checkpoint.parent()?;
    (name.starts_with("step-") && parent.file_name()? == "checkpoints").then(|| parent.parent().map(Path::to_path_buf)).flatten()
}

/// The training step of a checkpoint: `step-N` in its directory name, else the `"step"` of its
/// `trainer_state.json`.
pub fn checkpoint_step(checkpoint: &Path) -> Option<u64> {
    let from_name = checkpoint.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("step-")).and_then(|n| n.parse().ok());
    from_name.or_else(|| {
        let text = std::fs::read_to_string(checkpoint.join("trainer_state.json")).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?.get("step")?.as_u64()
    })
}

/// The default result path (see the module docs).
pub fn default_output(bench: BenchKind, policy: EvalPolicy, checkpoint: Option<&Path>) -> PathBuf {
    let suffix = if policy == EvalPolicy::Model { String::new() } else { format!("-{}", policy.name()) };
    match checkpoint {
        Some(c) => match (run_dir_of(c), checkpoint_step(c)) {
            (Some(run), Some(step)) => run.join("eval").join(format!("{}-step-{step}{suffix}.json", bench.name())),
            _ => {
                let stem = if c.is_dir() { c.file_name() } else { c.file_stem() };
                let stem = stem.and_then(|s| s.to_str()).unwrap_or("model");
                PathBuf::from("eval").join(format!("{}-{stem}{suffix}.json", bench.name()))
            }
        },
        None => PathBuf::from("eval").join(format!("{}-{}.json", bench.name(), policy.name())),
    }
}

/// The predictions file written beside a result file.
pub fn predictions_path(result: &Path) -> PathBuf {
    let stem = result.file_stem().and_then(|s| s.to_str()).unwrap_or("eval");
    result.with_file_name(format!("{stem}.predictions.jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_run_layout() {
        let ckpt = Path::new("runs/x/checkpoints/step-200");
        assert_eq!(run_dir_of(ckpt), Some(PathBuf::from("runs/x")));
        assert_eq!(checkpoint_step(ckpt), Some(200));
        assert_eq!(default_output(BenchKind::Locomo, EvalPolicy::Model, Some(ckpt)), PathBuf::from("runs/x/eval/locomo-step-200.json"));
        assert_eq!(default_output(BenchKind::Locomo, EvalPolicy::Bm25Rag, Some(ckpt)), PathBuf::from("runs/x/eval/locomo-step-200-bm25-rag.json"));
        let gguf = Path::new("models/SmolLM2.Q4_1.gguf");
        assert_eq!(run_dir_of(gguf), None);
        assert_eq!(default_output(BenchKind::Facts, EvalPolicy::Oracle, Some(gguf)), PathBuf::from("eval/facts-SmolLM2.Q4_1-oracle.json"));
        assert_eq!(default_output(BenchKind::Facts, EvalPolicy::Oracle, None), PathBuf::from("eval/facts-oracle.json"));
        assert_eq!(predictions_path(Path::new("a/locomo-step-2.json")), PathBuf::from("a/locomo-step-2.predictions.jsonl"));
    }
}

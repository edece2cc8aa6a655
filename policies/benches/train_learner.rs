//! Learner and decode throughput on SmolLM2-135M (GGUF): forward + backward + clip + AdamW at
//! batch × seq tokens (full fine-tuning, or LoRA with `--lora RANK`), and greedy decode through
//! the engine at batch 1 and 8. Compare with `scripts/reference/torch_learner_bench.py` and
//! `scripts/reference/hf_generate_bench.py` run on the same machine.
//!
//!     cargo bench -p memrl-policies --bench train_learner -- [--gguf PATH] [--batch 4] [--seq 256]
//!         [--warmup 1] [--steps 3] [--lora RANK] [--decode] [--no-learner]
//!
//! Prints one JSON object per measurement.

use std::path::PathBuf;
use std::sync::Arc;

use memrl_policies::train::bench::{LearnerBenchConfig, decode_throughput, learner_throughput};
use memrl_policies::train::{LoraConfig, apply_lora};
use memrl_policies::{BurnBackend, load_model};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn num<T: std::str::FromStr>(name: &str, default: T) -> T {
    arg(name).map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not a number: {v}"))).unwrap_or(default)
}

fn main() {
    let gguf = arg("--gguf").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("MEMRL_SMOLLM2_GGUF")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"))
    });
    let config = LearnerBenchConfig {
        batch: num("--batch", 4),
        seq: num("--seq", 256),
        warmup_steps: num("--warmup", 1),
        steps: num("--steps", 3),
        ..LearnerBenchConfig::default()
    };
    if !flag("--no-learner") {
        let model = load_model(BurnBackend::flex_autodiff(), &gguf).expect("loading the model");
        let report = match arg("--lora") {
            Some(r) => {
                let lora = LoraConfig { rank: r.parse().expect("--lora RANK"), alpha: 2.0 * r.parse::<f64>().unwrap(), ..LoraConfig::default() };
                let mut m = apply_lora(model, &lora).expect("LoRA");
                learner_throughput(&mut m, &config).expect("learner benchmark")
            }
            None => {
                let mut m = model;
                learner_throughput(&mut m, &config).expect("learner benchmark")
            }
        };
        println!("{}", serde_json::json!({"bench": "learner", "model": gguf.display().to_string(), "report": report}));
    }
    if flag("--decode") {
        let model = Arc::new(load_model(BurnBackend::flex(), &gguf).expect("loading the model"));
        for batch in [1, 8] {
            let r = decode_throughput(model.clone(), batch, num("--prompt-tokens", 64), num("--new-tokens", 64), 3).expect("decode benchmark");
            println!("{}", serde_json::json!({"bench": "decode", "report": r}));
        }
    }
}
